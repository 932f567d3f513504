"""Online backup and restore of the state directory: one tar archive, checked member by member.

The archive (``salesboost backup DEST``) holds, after ``manifest.json`` (always the first
member):

- ``salesboost.db``: a snapshot from SQLite's online backup API (one read transaction, so a
  running server keeps writing and the copy is consistent), never a file copy;
- ``lancedb/``: the live LanceDB tables at one version each. Lance data and index files are
  immutable, but the server's optimizer deletes an old version's files 60 s after a newer
  version exists, so the copy is checked (it opens at the version copied and reads as many
  rows as the source had at that version) and taken again when a file vanished under it;
- ``documents/<sha256>``: the uploaded originals that the database snapshot references;
- ``secrets/keyring.cfg``: the file keyring, only when asked (``--with-secrets``).

Order matters: the SQLite snapshot first, then LanceDB, then the files. A document whose
ingestion job was not done in the snapshot resumes after a restore (jobs are durable and
idempotent: a rerun replaces the document's rows); the reverse order could keep a "done"
row whose chunks are not in the index copy.

Caches the appliance rebuilds (``onnx/``, ``model-hashes.json``, the embedding cache), the
login sessions (``sessions/``) and logs are left out.

``salesboost restore ARCHIVE`` checks every member's sha256 while extracting into a sibling
temporary directory, migrates that database, and only then swaps it in with renames (an old
state is moved aside to ``<state>.before-restore-<timestamp>``, never deleted). Before the swap,
the erasures and deletions the replaced database recorded after the archive's snapshot are
applied again to the restored copy (:mod:`appliance.deletion_replay`); when there is no such
database (an empty box) or it is another appliance's, they are read from the newest later
archive of the same appliance in the archive's folder (only its manifest and database members
are read).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import stat
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, TypeVar

from appliance import __version__
from appliance.config import Settings
from appliance.db.ids import carry_marks
from appliance.deletion_replay import Replayed, replay_deletions
from appliance.errors import AppError
from appliance.secrets import file_keyring_path
from appliance.statelock import LOCK_NAME, hold_state_lock, release_state_lock

FORMAT = "salesboost-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_NAME = "salesboost.db"
LANCE_DIR = "lancedb"
DOCUMENTS_DIR = "documents"
SECRETS_MEMBER = "secrets/keyring.cfg"
LANCE_META = "index.json"
LANCE_ATTEMPTS = 5
_CHUNK = 1 << 20
_U64_MAX = 2**64 - 1
T = TypeVar("T")


class BackupFailed(AppError):
    """The backup could not be taken (no database, an unwritable destination, an index that never settled)."""

    status_code = 500
    code = "backup_failed"


class ArchiveCorrupt(AppError):
    """The archive is truncated, damaged or not a SalesBoost backup; the message names the member."""

    code = "archive_corrupt"


class ArchiveMissing(AppError):
    """There is no archive at the path given."""

    status_code = 404
    code = "archive_not_found"


class ArchiveVersion(AppError):
    """The archive's format version is one this build cannot read."""

    code = "archive_version"


class RestoreRefused(AppError):
    """The restore would overwrite a state that the operator did not agree to lose (no --force)."""

    status_code = 409
    code = "state_exists"


class RestoreFailed(AppError):
    """The archive is fine but the restore could not finish (a migration, a rename)."""

    status_code = 500
    code = "restore_failed"


# --- manifest ---------------------------------------------------------------------------------
@dataclass
class BackupResult:
    """What `backup` wrote."""

    path: Path
    size: int
    seconds: float
    manifest: dict[str, Any]
    missing_documents: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class RestoreResult:
    """What `restore` did."""

    state_dir: Path
    manifest: dict[str, Any]
    moved_aside: Path | None
    migrations: list[str]
    secrets: str  # "archive", "kept", "none"
    seconds: float
    warnings: list[str] = field(default_factory=list)
    replayed: Replayed = field(default_factory=Replayed)
    """Erasures and deletions the replaced database recorded after the snapshot, applied again."""


def _sha256_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as src:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# --- staging: link or copy ---------------------------------------------------------------------
def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link an immutable file into the staging dir (instant, immune to a later delete);
    copy it when the file systems differ."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        shutil.copyfile(src, dst)


# --- SQLite -----------------------------------------------------------------------------------
def _snapshot_sqlite(db_path: Path, dst: Path) -> None:
    """A consistent copy through the online backup API (a running server keeps writing)."""
    if not db_path.is_file():
        raise BackupFailed(
            f"no database at {db_path}: nothing to back up (is the state dir right?)"
        )
    src = sqlite3.connect(db_path, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        out = sqlite3.connect(dst)
        try:
            src.backup(out)  # pages=-1: every page in one step, inside one read transaction
            ok = out.execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise BackupFailed(f"the database snapshot failed its integrity check: {ok}")
        finally:
            out.close()
    except sqlite3.Error as err:
        raise BackupFailed(f"could not snapshot {db_path}: {err}") from err
    finally:
        src.close()


_COUNT_QUERIES = {
    "users": "SELECT COUNT(*) FROM users",
    "sessions": "SELECT COUNT(*) FROM practice_sessions",
    "reports": "SELECT COUNT(*) FROM practice_reports",
    "documents": "SELECT COUNT(*) FROM documents",
    "jobs_unfinished": "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
}


def _db_facts(db: Path) -> tuple[int, dict[str, int], list[str]]:
    """(schema version, row counts, referenced document sha256s) of a database file."""
    conn = sqlite3.connect(db)
    try:
        row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
        schema = int(row[0]) if row else 0
        counts = {}
        for key, query in _COUNT_QUERIES.items():
            try:
                counts[key] = int(conn.execute(query).fetchone()[0])
            except sqlite3.OperationalError:  # an older schema without the table
                counts[key] = 0
        try:
            shas = [str(r[0]) for r in conn.execute("SELECT DISTINCT sha256 FROM documents")]
        except sqlite3.OperationalError:
            shas = []
        return schema, counts, sorted(shas)
    finally:
        conn.close()


# --- LanceDB ----------------------------------------------------------------------------------
class _Unsettled(Exception):
    """The copy of a table does not read back as its source version (a file vanished)."""


def _manifest_version(name: str) -> int | None:
    """A Lance manifest file's version (V2 names count down from 2**64-1; V1 names count up)."""
    stem, dot, ext = name.partition(".")
    if ext != "manifest" or not dot or not stem.isdigit():
        return None
    number = int(stem)
    return _U64_MAX - number if number > 2**63 else number


def _latest_manifest(table_dir: Path) -> tuple[int, Path]:
    versions = [
        (v, p)
        for p in (table_dir / "_versions").glob("*.manifest")
        if (v := _manifest_version(p.name)) is not None
    ]
    if not versions:
        raise _Unsettled(f"{table_dir.name} has no version manifest")
    return max(versions)


def _copy_table(src: Path, dst: Path) -> tuple[int, int]:
    """Stage one table at its latest version; returns (version, skipped vanished files).

    Only that version's manifest is staged (older versions may already have lost files), and
    of the data files and index directories only those it names: a superseded version's
    files (kept by the optimizer for 60 s after a compaction) stay out of the archive.
    """
    version, manifest = _latest_manifest(src)
    _link_or_copy(manifest, dst / "_versions" / manifest.name)
    named = (dst / "_versions" / manifest.name).read_bytes()
    keep_data = _named(src / "data", named, lambda n: n.encode())
    keep_indices = _named(src / "_indices", named, _uuid_bytes)
    skipped = 0
    for root, _dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        top = rel.parts[0] if rel.parts else ""
        if top == "_versions":
            continue
        if top == "_indices" and len(rel.parts) > 1 and not keep_indices(rel.parts[1]):
            continue
        for file in files:
            if file == "latest_version_hint.json" or file.endswith((".tmp", ".partial")):
                continue
            if top == "data" and not keep_data(file):
                continue
            try:
                _link_or_copy(Path(root) / file, dst / rel / file)
            except FileNotFoundError:
                skipped += 1  # an old version's file, deleted by the optimizer while we walked
    return version, skipped


def _uuid_bytes(name: str) -> bytes | None:
    try:
        return uuid.UUID(name).bytes  # how a Lance manifest names an index (protobuf bytes)
    except ValueError:
        return None


def _named(
    directory: Path, manifest: bytes, key: Callable[[str], bytes | None]
) -> Callable[[str], bool]:
    """Which entries of ``directory`` the manifest names. When it names none of them although
    there are some (a manifest layout this code does not know), everything is kept."""
    try:
        entries = [p.name for p in directory.iterdir()]
    except FileNotFoundError:
        entries = []
    named = set()
    for entry in entries:
        found = key(entry)
        if found is not None and found in manifest:
            named.add(entry)
    if entries and not named:
        return lambda _entry: True
    return lambda entry: entry in named or key(entry) is None


def _count_at(root: Path, name: str, version: int) -> int:
    import lancedb

    table = lancedb.connect(str(root)).open_table(name)
    try:
        table.checkout(version)
    except Exception as err:  # the version was cleaned up since we listed it
        raise _Unsettled(f"{name} version {version} is gone from the source: {err}") from err
    return int(table.count_rows())


def _verify_table(root: Path, name: str, version: int, expected: int, dim: int | None) -> None:
    """Open the staged table at its latest version, read every row and query every index."""
    import lancedb

    try:
        table = lancedb.connect(str(root)).open_table(name)
        if table.version != version:
            raise _Unsettled(f"{name}: the copy opens at version {table.version}, not {version}")
        rows = table.search().select(["id"]).limit(None).to_arrow().num_rows
        if rows != expected or table.count_rows() != expected:
            raise _Unsettled(f"{name}: the copy reads {rows} rows, the source had {expected}")
        if expected:
            for index in table.list_indices():
                _touch_index(table, index.index_type, index.columns[0], dim)
    except _Unsettled:
        raise
    except Exception as err:  # a missing data or index file: LanceDB's own error types
        raise _Unsettled(f"{name}: the copy does not read: {err}") from err


def _touch_index(table: Any, kind: str, column: str, dim: int | None) -> None:
    """One query that has to read the index (a missing index file fails it)."""
    import numpy as np

    if kind == "FTS":
        table.search("the", query_type="fts", fts_columns=column).limit(1).to_arrow()
    elif kind.startswith(("Ivf", "IVF", "Hnsw", "HNSW")) and dim:
        query = table.search(np.ones(dim, dtype=np.float32), vector_column_name=column)
        query.limit(1).to_arrow()
    else:  # a scalar index (BTREE on the parents' id): an equality lookup uses it
        first = table.search().select([column]).limit(1).to_arrow()[column][0].as_py()
        if isinstance(first, (str, int)):
            value = "'" + first.replace("'", "''") + "'" if isinstance(first, str) else first
            table.search().where(f"{column} = {value}").limit(1).to_arrow()


def _snapshot_lance(src: Path, dst: Path) -> dict[str, dict[str, int]]:
    """Stage the live LanceDB tables; returns {table: {version, rows, attempts}}; retried
    until a copy reads back whole."""
    meta_file = src / LANCE_META
    if not meta_file.is_file():
        return {}
    last: Exception | None = None
    for attempt in range(LANCE_ATTEMPTS):
        shutil.rmtree(dst, ignore_errors=True)
        dst.mkdir(parents=True)
        try:
            meta_text = meta_file.read_text(encoding="utf-8")
            meta = json.loads(meta_text)
            (dst / LANCE_META).write_text(meta_text, encoding="utf-8")
            names = [f"children_g{int(meta['generation'])}", "parents"]
            tables: dict[str, dict[str, int]] = {}
            for name in names:
                if not (src / f"{name}.lance").is_dir():
                    continue
                version, _ = _copy_table(src / f"{name}.lance", dst / f"{name}.lance")
                rows = _count_at(src, name, version)
                tables[name] = {"version": version, "rows": rows, "attempts": attempt + 1}
            if meta_file.read_text(encoding="utf-8") != meta_text:
                raise _Unsettled("a reindex switched the live generation during the copy")
            for name, info in tables.items():
                dim = int(meta.get("dim", 0)) if name.startswith("children") else None
                _verify_table(dst, name, info["version"], info["rows"], dim)
            return tables
        except (_Unsettled, FileNotFoundError) as err:
            last = err
            time.sleep(0.25 * (attempt + 1))
    shutil.rmtree(dst, ignore_errors=True)
    raise BackupFailed(
        f"the copy of the knowledge index ({src}) never read back whole in {LANCE_ATTEMPTS}"
        f" attempts (its files kept changing, or the index is damaged: try `salesboost"
        f" reindex`): {last}"
    )


# --- backup -----------------------------------------------------------------------------------
def backup(settings: Settings, dest: Path, *, with_secrets: bool = False) -> BackupResult:
    """Write one archive of the state dir to ``dest`` (gzip when it ends .gz/.tgz)."""
    started = time.monotonic()
    state = settings.state_dir
    dest = dest.expanduser().absolute()
    if dest.is_dir():
        raise BackupFailed(
            f"{dest} is a directory: name the archive file (e.g. {dest}/salesboost.tar)"
        )
    if not dest.parent.is_dir():
        raise BackupFailed(f"the directory {dest.parent} does not exist")
    if not state.is_dir():
        raise BackupFailed(f"no state directory at {state}: nothing to back up")
    # staging inside the state dir: the same file system, so immutable files are hard links;
    # beside DEST (copies) when the state dir is read-only to this user
    try:
        staging = Path(tempfile.mkdtemp(prefix=".backup-", dir=state))
    except OSError:
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-", dir=dest.parent))
        except OSError as err:
            raise BackupFailed(f"cannot write in {dest.parent}: {err.strerror}") from err
    try:
        return _backup_into(settings, staging, dest, with_secrets, started)
    except OSError as err:  # a full disk, a permission: typed, not a traceback
        raise BackupFailed(f"backup to {dest} failed: {err}") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _backup_into(
    settings: Settings, staging: Path, dest: Path, with_secrets: bool, started: float
) -> BackupResult:
    state = settings.state_dir
    warnings: list[str] = []
    _snapshot_sqlite(settings.db_path, staging / DB_NAME)
    schema, counts, shas = _db_facts(staging / DB_NAME)
    tables = _snapshot_lance(state / LANCE_DIR, staging / LANCE_DIR)
    missing: list[str] = []
    for sha in shas:
        try:
            _link_or_copy(state / DOCUMENTS_DIR / sha, staging / DOCUMENTS_DIR / sha)
        except FileNotFoundError:
            missing.append(sha)  # deleted since the snapshot (or lost before): reported
    if with_secrets:
        keyring_file = file_keyring_path(state)
        if keyring_file.is_file():
            _link_or_copy(keyring_file, staging / SECRETS_MEMBER)
        else:
            warnings.append(
                "--with-secrets: no file keyring in the state dir (secrets live in the OS "
                "keyring or systemd credentials), so the archive holds no secrets"
            )
    members = _hash_members(staging)
    for sha in shas:
        got = members.get(f"{DOCUMENTS_DIR}/{sha}")
        if got is not None and got["sha256"] != sha:
            warnings.append(f"documents/{sha} does not hash to its name (damaged on disk?)")
    children = next((t for n, t in tables.items() if n.startswith("children")), None)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "appliance_version": __version__,
        "schema_version": schema,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "state_dir": str(state),
        "with_secrets": SECRETS_MEMBER in members,
        "counts": {
            **counts,
            "children": children["rows"] if children else 0,
            "parents": tables.get("parents", {}).get("rows", 0),
        },
        "lancedb": tables,
        "missing_documents": missing,
        "members": members,
    }
    size = _write_archive(staging, manifest, dest)
    return BackupResult(dest, size, time.monotonic() - started, manifest, missing, warnings)


def _hash_members(staging: Path) -> dict[str, dict[str, Any]]:
    members: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        sha, size = _sha256_file(path)
        members[path.relative_to(staging).as_posix()] = {"sha256": sha, "size": size}
    # the database first after the manifest, then everything else in name order
    return dict(sorted(members.items(), key=lambda kv: (kv[0] != DB_NAME, kv[0])))


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)
    info.type = tarfile.REGTYPE
    return info


def _write_archive(staging: Path, manifest: dict[str, Any], dest: Path) -> int:
    """Write manifest + members to a temporary name beside ``dest`` (0600), fsync, rename."""
    gzip = dest.name.endswith((".gz", ".tgz"))
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as err:
        raise BackupFailed(f"cannot write {dest}: {err.strerror}") from err
    try:
        with os.fdopen(fd, "wb") as raw:
            mode = "w|gz" if gzip else "w|"
            with tarfile.open(fileobj=raw, mode=mode, format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
                body = json.dumps(manifest, indent=2).encode()
                now = time.time()
                tar.addfile(_tarinfo(MANIFEST, len(body), now), io.BytesIO(body))
                for name, info in manifest["members"].items():
                    with (staging / name).open("rb") as src:
                        tar.addfile(_tarinfo(name, int(info["size"]), now), src)
            raw.flush()
            os.fsync(raw.fileno())
        tmp.chmod(0o600)
        tmp.replace(dest)
        _fsync_dir(dest.parent)
        return dest.stat().st_size
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise BackupFailed(f"cannot write {dest}: {err}") from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --- reading an archive -----------------------------------------------------------------------
def _safe_member_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


@contextlib.contextmanager
def _open_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(archive, mode="r|*")  # noqa: SIM115 — closed below; streamed: one pass, any truncation shows
    except FileNotFoundError:
        raise ArchiveMissing(f"{archive}: no such file") from None
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ArchiveCorrupt(
            f"{archive} is not a SalesBoost backup archive (not a tar file: {err})"
        ) from None
    try:
        yield tar
    finally:
        tar.close()


def read_archive(archive: Path, into: Path | None = None) -> dict[str, Any]:
    """Check an archive member by member (sha256, size, format version); extract when ``into``.

    Raises ArchiveCorrupt naming the member (truncated, bit-flipped, missing, unexpected) or
    ArchiveVersion. Nothing outside ``into`` is written.
    """
    current = MANIFEST
    manifest: dict[str, Any] | None = None
    seen: set[str] = set()
    try:
        with _open_tar(archive) as tar:
            for member in tar:
                current = member.name
                if manifest is None:
                    manifest = _read_manifest(tar, member, archive)
                    continue
                expected = manifest["members"].get(member.name)
                if expected is None or not member.isreg() or not _safe_member_name(member.name):
                    raise ArchiveCorrupt(f"{archive}: unexpected member {member.name!r}")
                if member.name in seen:
                    raise ArchiveCorrupt(f"{archive}: member {member.name!r} appears twice")
                seen.add(member.name)
                _check_member(tar, member, expected, archive, into)
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as err:
        # a truncated stream, a bad gzip CRC, a damaged header: name where it happened
        where = "the manifest" if manifest is None else f"member {current!r}"
        raise ArchiveCorrupt(f"{archive} is damaged or truncated at {where}: {err}") from None
    if manifest is None:
        raise ArchiveCorrupt(f"{archive} is empty: no {MANIFEST}")
    lost = [name for name in manifest["members"] if name not in seen]
    if lost:
        raise ArchiveCorrupt(
            f"{archive} is truncated or incomplete: member {lost[0]!r} is missing"
            + (f" (and {len(lost) - 1} more)" if len(lost) > 1 else "")
        )
    return manifest


def read_database(archive: Path, into: Path | None) -> dict[str, Any]:
    """The manifest, and the database member checked (and extracted when ``into``): the
    first two members of an archive, so the rest (documents, the index) is never read."""
    manifest: dict[str, Any] | None = None
    try:
        with _open_tar(archive) as tar:
            for member in tar:
                if manifest is None:
                    manifest = _read_manifest(tar, member, archive)
                    if into is None:
                        return manifest
                    continue
                expected = manifest["members"].get(DB_NAME)
                if member.name != DB_NAME or expected is None or not member.isreg():
                    break
                _check_member(tar, member, expected, archive, into)
                return manifest
    except (tarfile.TarError, OSError, EOFError, ValueError, zlib.error) as err:
        raise ArchiveCorrupt(f"{archive} is damaged or truncated: {err}") from None
    raise ArchiveCorrupt(f"{archive} holds no {DB_NAME} after its {MANIFEST}")


def _read_manifest(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path) -> dict[str, Any]:
    if member.name != MANIFEST or not member.isreg():
        raise ArchiveCorrupt(
            f"{archive} is not a SalesBoost backup: its first member is {member.name!r}, not {MANIFEST}"
        )
    src = tar.extractfile(member)
    if src is None or member.size > 64 << 20:
        raise ArchiveCorrupt(f"{archive}: {MANIFEST} is not readable")
    try:
        data = json.loads(src.read())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ArchiveCorrupt(f"{archive}: member {MANIFEST!r} is not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArchiveCorrupt(f"{archive}: member {MANIFEST!r} is not a SalesBoost backup manifest")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ArchiveVersion(
            f"{archive} has backup format version {version!r}; this build (salesboost "
            f"{__version__}) reads version {FORMAT_VERSION}",
            detail={"format_version": version},
        )
    if not isinstance(data.get("members"), dict):
        raise ArchiveCorrupt(f"{archive}: member {MANIFEST!r} lists no members")
    return data


def _check_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    expected: dict[str, Any],
    archive: Path,
    into: Path | None,
) -> None:
    src = tar.extractfile(member)
    if src is None:
        raise ArchiveCorrupt(f"{archive}: member {member.name!r} is not readable")
    digest = hashlib.sha256()
    size = 0
    out: IO[bytes] | None = None
    try:
        if into is not None:
            out = _writing(into, member.name, lambda: _open_new(into / member.name))
        while chunk := src.read(_CHUNK):  # a read error here is the archive's (caller's except)
            digest.update(chunk)
            size += len(chunk)
            if out is not None:
                _writing(into, member.name, lambda: out.write(chunk))
        if out is not None:
            _writing(into, member.name, lambda: _flush_sync(out))
    finally:
        if out is not None:
            out.close()
    if size != int(expected.get("size", -1)) or digest.hexdigest() != expected.get("sha256"):
        raise ArchiveCorrupt(
            f"{archive}: member {member.name!r} is damaged (its sha256 or size does not match "
            "the manifest)",
            detail={"member": member.name},
        )


def _open_new(path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def _flush_sync(out: IO[bytes]) -> None:
    out.flush()
    os.fsync(out.fileno())


def _writing(into: Path | None, name: str, write: Callable[[], T]) -> T:
    """Run one write of the extraction; an OSError there (a full disk) is the target's fault,
    not the archive's: RestoreFailed, not ArchiveCorrupt."""
    try:
        return write()
    except OSError as err:
        raise RestoreFailed(f"cannot write {name} under {into}: {err}") from err


# --- restore ----------------------------------------------------------------------------------
def restore(settings: Settings, archive: Path, *, force: bool = False) -> RestoreResult:
    """Restore an archive into the configured state dir (see the module docstring)."""
    started = time.monotonic()
    target = settings.state_dir.expanduser().absolute()
    if not archive.is_file():
        raise ArchiveMissing(f"{archive}: no such file")
    target.parent.mkdir(parents=True, exist_ok=True)
    locks: list[int] = []
    try:
        if target.is_dir():
            locks.append(hold_state_lock(target, purpose="salesboost restore"))
            if (target / DB_NAME).exists() and not force:
                raise RestoreRefused(
                    f"{target} already holds a database ({DB_NAME}): pass --force to move the "
                    f"current state aside to {target.name}.before-restore-<timestamp> and restore"
                )
        try:
            work = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
        except OSError as err:
            raise RestoreFailed(
                f"cannot create a temporary directory beside {target}: {err.strerror}"
                " (run restore as a user who may write there, e.g. root)"
            ) from err
        try:
            result = _unpack_and_swap(settings, archive, work, target, locks)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    except OSError as err:
        raise RestoreFailed(f"restore into {target} failed: {err}") from err
    finally:
        for fd in locks:
            release_state_lock(fd)
    result.seconds = time.monotonic() - started
    return result


def _unpack_and_swap(
    settings: Settings, archive: Path, work: Path, target: Path, locks: list[int]
) -> RestoreResult:
    """Extract (checking every member) into ``work``, migrate it, then rename it into place."""
    from appliance.db.migrations import MigrationError, migrate

    held_target = bool(locks)  # restore() locked the state dir if it existed then
    manifest = read_archive(archive, into=work)
    secrets = "archive" if manifest.get("with_secrets") else "none"
    own_secrets = target / "secrets"
    if secrets == "none" and own_secrets.is_dir():
        shutil.copytree(own_secrets, work / "secrets")
        secrets = "kept"
    warnings = _model_warnings(settings, work)
    try:
        applied = [m.path.name for m in migrate(work / DB_NAME)]
    except MigrationError as err:
        raise RestoreFailed(f"the restored database cannot be migrated: {err}") from err
    replayed = Replayed(
        skipped="erasures made after this backup cannot be applied again: there is no database "
        "here and no later backup beside the archive to read them from"
    )
    if held_target and (target / DB_NAME).exists():  # nothing erased here comes back
        replayed = replay_deletions(target / DB_NAME, work / DB_NAME)
        carry_marks(target / DB_NAME, work / DB_NAME)  # nor an id given since the backup
        replayed.source = f"the database it replaced ({target / DB_NAME})"  # named again below
    if replayed.skipped:  # an empty box, or another appliance's database: later archives
        replayed = _replay_from_later_archives(archive, manifest, work, target, replayed)
    if replayed.skipped:
        warnings.append(replayed.skipped)
    locks.append(hold_state_lock(work, purpose="salesboost restore"))
    exists = target.is_dir()
    if exists and not held_target:  # made since we looked (a `serve` started meanwhile?)
        locks.append(hold_state_lock(target, purpose="salesboost restore"))
        if (target / DB_NAME).exists():
            raise RestoreRefused(f"{target} was created during the restore: run it again")
    _match_owner(work, target if exists else target.parent, exists)
    moved = None
    if exists and not _only_lock(target):
        stamp = datetime.now(UTC).astimezone().strftime("%Y%m%d-%H%M%S")
        moved = target.with_name(f"{target.name}.before-restore-{stamp}")
        target.rename(moved)
        if replayed.source.startswith("the database it replaced"):  # where it is kept now
            replayed.source = f"the database it replaced, kept in {moved / DB_NAME}"
    elif exists:  # an empty state dir (a stale lock file at most): nothing to keep
        shutil.rmtree(target)
    # a crash between the two renames leaves the old state aside and the new one complete
    # beside it (a hidden .<state>.restore-* dir); running restore again puts it in place
    work.rename(target)
    _fsync_dir(target.parent)
    return RestoreResult(target, manifest, moved, applied, secrets, 0.0, warnings, replayed)


ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def _later_archives(archive: Path, manifest: dict[str, Any]) -> list[tuple[str, Path]]:
    """Backup archives beside ``archive`` taken after it, newest first (unreadable files and
    other tar files are passed over)."""
    taken = str(manifest.get("created_at", ""))
    found: list[tuple[str, Path]] = []
    try:
        beside = list(archive.parent.iterdir())
    except OSError:  # a folder this user may read a file from but not list
        return []
    for path in beside:
        if path == archive or not path.name.endswith(ARCHIVE_SUFFIXES) or not path.is_file():
            continue
        try:
            other = read_database(path, None)
        except AppError:
            continue
        created = str(other.get("created_at", ""))
        if created > taken:
            found.append((created, path))
    return sorted(found, reverse=True)


def _replay_from_later_archives(
    archive: Path, manifest: dict[str, Any], work: Path, target: Path, first: Replayed
) -> Replayed:
    """Replay what the newest later archive beside ``archive`` (of the same appliance) recorded
    after this one's snapshot: how a restore onto an empty box still leaves out the people
    erased since the backup it restores, as far as the archives taken since know."""
    for _, later in _later_archives(archive, manifest):
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.replay-", dir=target.parent))
        try:
            read_database(later, scratch)
            replayed = replay_deletions(scratch / DB_NAME, work / DB_NAME)
            if not replayed.skipped:
                carry_marks(scratch / DB_NAME, work / DB_NAME)
        except AppError:
            continue  # a damaged archive tells nothing: the next older one may
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if not replayed.skipped:
            replayed.source = f"the later archive {later}"
            return replayed
    return first


def _only_lock(state_dir: Path) -> bool:
    return all(p.name == LOCK_NAME for p in state_dir.iterdir())


def _model_warnings(settings: Settings, work: Path) -> list[str]:
    meta_file = work / LANCE_DIR / LANCE_META
    if not meta_file.is_file():
        return []
    model = str(json.loads(meta_file.read_text(encoding="utf-8")).get("model", ""))
    if model and model != settings.knowledge.embedding_model:
        return [
            f"the knowledge index was built with {model!r} but knowledge.embedding_model is "
            f"{settings.knowledge.embedding_model!r}: set it to {model!r} or run `salesboost reindex`"
        ]
    return []


def _match_owner(work: Path, like: Path, like_target: bool) -> None:
    """Give the restored tree the old state dir's mode and (when root) its owner."""
    info = like.stat()
    mode = stat.S_IMODE(info.st_mode) if like_target else 0o750
    work.chmod(mode | 0o700)
    if os.geteuid() != 0 or info.st_uid == 0:
        return
    for root, dirs, files in os.walk(work):
        for name in [*dirs, *files]:
            os.chown(Path(root) / name, info.st_uid, info.st_gid)
    os.chown(work, info.st_uid, info.st_gid)
