"""`salesboost backup` taken from a live appliance mid-ingestion, restored into a new state dir.

A demo server ingests the demo pack, a trainee plays a turn and ends the session (report
written), a second collection is ingested; then, while a thread keeps uploading documents,
`salesboost backup` runs as a real CLI subprocess. The archive is restored into a new state
dir and served: logins, the transcript and report, the documents and the dense search results
are identical, and the jobs that were mid-way in the snapshot finish after the restart.
Damaged archives (truncated, a flipped bit, a foreign format version) are refused with their
typed codes and leave the target untouched; restore and a second `serve` are refused on a
state dir a server is running on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sqlite3
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance.testing import ServerProcess, cli

from tests.conftest import Account, login
from tests.integration.knowledge_helpers import ingest, upload, wait_jobs
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session

# the module's first test sets up a demo appliance, a session with its report and an ingestion
pytestmark = pytest.mark.timeout(600)

PEOPLE = {
    "admin": Account("bk-admin", "admin", "hq"),
    "manager": Account("bk-manager", "manager", "alpha"),
    "trainee": Account("bk-trainee", "trainee", "alpha"),
}
QUERIES = [
    ("What is the annual fee?", "demo"),
    ("lounge access and travel insurance", "demo"),
    ("年费减免", "demo"),
    ("refund policy for the premium card", "pre"),
]
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
]


def _doc(rng: random.Random, n: int, words: int = 220) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"# Live sheet {n}\n\n## Part one\n\n{body}.\n\n## Part two\n\n{body[::-1]}.\n"


PRE_DOCS = {
    "refunds.md": "# Refunds\n\nThe premium card refund policy: a refund of the annual fee is "
    "given pro rata within 90 days of renewal. Contact the branch for a refund form.\n",
    "fx.md": "# Foreign exchange\n\nNo foreign transaction fee on the premium card. Cash "
    "advances abroad cost 5 percent of the amount, at least 10 dollars.\n",
}


@dataclass
class Taken:
    """What the source appliance looked like when the backup ran, and the archive."""

    state: Path
    archive: Path
    seconds: float
    stdout: str
    session_id: int
    detail: dict[str, Any]
    report: dict[str, Any]
    documents: dict[int, dict[str, Any]]
    searches: list[list[dict[str, Any]]]
    cookie_client: httpx.Client
    live_jobs: list[int] = field(default_factory=list)


def _members(archive: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return tar.getmembers()


def _manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive) as tar:
        first = tar.next()
        assert first is not None and first.name == "manifest.json"
        src = tar.extractfile(first)
        assert src is not None
        data: dict[str, Any] = json.loads(src.read())
        return data


def _searches(client: httpx.Client) -> list[list[dict[str, Any]]]:
    out = []
    for q, collection in QUERIES:
        response = client.get(
            "/api/knowledge/search", params={"q": q, "mode": "dense", "collection": collection}
        )
        assert response.status_code == 200, response.text
        out.append(response.json()["results"])
    return out


def _documents(client: httpx.Client) -> dict[int, dict[str, Any]]:
    rows = client.get("/api/knowledge/documents").raise_for_status().json()
    items = rows["items"] if isinstance(rows, dict) else rows
    return {int(d["id"]): d for d in items}


def _tree_digest(root: Path) -> dict[str, str]:
    """Every file under root with its sha256 (what "untouched" means; the lock file holds
    the pid of whoever took the lock last, not state)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "salesboost.lock"
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A demo appliance (demo pack ingested), running for the whole module."""
    with demo_server(tmp_path_factory.mktemp("bk-source"), PEOPLE) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(source: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    with logged_in(source, PEOPLE) as made:
        yield made


@pytest.fixture(scope="module")
def taken(
    source: ServerProcess,
    people: dict[str, httpx.Client],
    tmp_path_factory: pytest.TempPathFactory,
) -> Taken:
    manager, trainee = people["manager"], people["trainee"]
    # the demo pack's documents are ingested
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        docs = _documents(manager)
        if len(docs) >= 4 and all(d["state"] == "done" for d in docs.values()):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"demo documents not done: {docs}")
    # a trainee session: one turn over the socket, ended, its report written
    session = new_session(trainee)
    ws = WS.open(source.url, session["id"], trainee)
    ws.hello()
    ws.say("Good morning Mr. Chen, how has the card been for you?")
    ws.send(type="end")
    ws.until("report_ready", timeout=300)
    ws.close()
    detail = trainee.get(f"/api/sessions/{session['id']}").raise_for_status().json()
    report = trainee.get(f"/api/sessions/{session['id']}/report").raise_for_status().json()
    ingest(manager, dict(PRE_DOCS), collection="pre")
    documents = _documents(manager)
    searches = _searches(manager)
    assert all(searches), searches

    # a thread keeps uploading while the backup runs: the snapshot is taken mid-write
    stop = threading.Event()
    live_jobs: list[int] = []
    errors: list[BaseException] = []

    def uploader() -> None:
        rng = random.Random(7)
        n = 0
        client = login(source, PEOPLE["manager"])
        try:
            while not stop.is_set() and n < 60:
                batch: dict[str, str | bytes] = {
                    f"live{n + i:03d}.md": _doc(rng, n + i) for i in range(4)
                }
                n += 4
                items = upload(client, batch, collection="live")
                live_jobs.extend(i["job"]["id"] for i in items if i["job"])
                stop.wait(0.4)
        except BaseException as err:  # surfaced by the test below
            errors.append(err)
        finally:
            client.close()

    thread = threading.Thread(target=uploader, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 120
        while (
            time.monotonic() < deadline and not errors
        ):  # some live documents written to LanceDB already
            if live_jobs and manager.get(f"/api/knowledge/jobs/{live_jobs[0]}").json()["state"] in (
                "done",
                "failed",
            ):
                break
            time.sleep(0.2)
        archive = tmp_path_factory.mktemp("bk-dest") / "salesboost-backup.tar"
        started = time.monotonic()
        result = cli(source.state_dir, "backup", str(archive), env=source.env)
        seconds = time.monotonic() - started
    finally:
        stop.set()
        thread.join(30)
    assert not errors, errors
    assert result.returncode == 0, result.stderr
    return Taken(
        state=source.state_dir,
        archive=archive,
        seconds=seconds,
        stdout=result.stdout,
        session_id=int(session["id"]),
        detail=detail,
        report=report,
        documents=documents,
        searches=searches,
        cookie_client=trainee,
        live_jobs=live_jobs,
    )


def test_backup_is_one_archive_with_a_manifest_first_and_no_caches(taken: Taken) -> None:
    archive = taken.archive
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    # nothing half-written is left beside it, nor staging in the state dir
    assert [p.name for p in archive.parent.iterdir()] == [archive.name]
    assert not list(taken.state.glob(".backup-*"))
    assert "wrote" in taken.stdout and "MiB" in taken.stdout
    names = [m.name for m in _members(archive)]
    assert names[0] == "manifest.json" and names[1] == "salesboost.db"
    manifest = _manifest(archive)
    assert manifest["format_version"] == 1 and manifest["schema_version"] >= 6
    assert set(manifest["members"]) == set(names[1:])
    for prefix in ("onnx/", "sessions/", "secrets/", "model-hashes", "embedding_cache", "serve"):
        assert not any(n.startswith(prefix) for n in names), prefix
    assert any(n.startswith("lancedb/children_g") for n in names)
    counts = manifest["counts"]
    assert counts["users"] == 3 and counts["sessions"] >= 1 and counts["reports"] >= 1
    assert counts["documents"] >= 6 and counts["children"] > 0
    # the snapshot was taken mid-ingestion (the point of this test)
    assert counts["jobs_unfinished"] > 0, f"the backup ran after the uploads: {counts}"
    # every referenced original is in the archive
    assert not manifest["missing_documents"]
    assert all(t["rows"] >= 0 and t["attempts"] >= 1 for t in manifest["lancedb"].values())
    checked = cli(taken.state, "backup", "--verify", str(archive))
    assert checked.returncode == 0, checked.stderr
    assert "ok" in checked.stdout
    print(
        f"\nbackup of the demo state: {taken.seconds:.1f} s, {archive.stat().st_size} bytes,"
        f" lancedb {manifest['lancedb']}"
    )


def test_restore_into_a_new_state_dir_serves_the_same_data(
    taken: Taken, tmp_path_factory: pytest.TempPathFactory
) -> None:
    target = tmp_path_factory.mktemp("bk-restored") / "state"
    result = cli(target, "restore", str(taken.archive))
    assert result.returncode == 0, result.stderr
    assert "everyone signs in again" in result.stdout
    with sqlite3.connect(target / "salesboost.db") as conn:
        mid_way = [
            int(r[0])
            for r in conn.execute("SELECT id FROM jobs WHERE state IN ('queued', 'running')")
        ]
    assert mid_way, "no job was mid-way in the snapshot"
    with ServerProcess(target) as server, logged_in(server, PEOPLE) as clients:
        # the old box's cookie is not valid here (no secrets in the archive)
        stale = httpx.Client(base_url=server.url, cookies=taken.cookie_client.cookies)
        assert stale.get("/api/auth/me").status_code == 401
        trainee, manager = clients["trainee"], clients["manager"]
        sid = taken.session_id
        assert trainee.get(f"/api/sessions/{sid}").json() == taken.detail
        assert trainee.get(f"/api/sessions/{sid}/report").json() == taken.report
        # the documents of before the backup are there, as they were
        restored = _documents(manager)
        for doc_id, doc in taken.documents.items():
            assert restored.get(doc_id) == doc, doc_id
        assert _searches(manager) == taken.searches
        # the jobs that were mid-way in the snapshot resume and finish
        jobs = wait_jobs(manager, mid_way, timeout=240)
        assert {j["state"] for j in jobs.values()} == {"done"}, jobs
        done = _documents(manager)
        assert all(d["state"] == "done" for d in done.values())
        # no duplicates: the index holds exactly the documents' chunks
        stats = manager.get("/api/knowledge/index").json()
        assert stats["children"] == sum(d["chunk_count"] for d in done.values())
        resumed = next(j["document_id"] for j in jobs.values())
        hits = manager.get(
            "/api/knowledge/search", params={"q": "bravo delta", "document": resumed}
        ).json()["results"]
        assert hits and all(h["citation"]["document_id"] == resumed for h in hits)


def test_damaged_archives_are_refused_and_the_target_is_untouched(
    taken: Taken, tmp_path: Path
) -> None:
    target = tmp_path / "state"
    assert cli(target, "restore", str(taken.archive)).returncode == 0
    before = _tree_digest(target)
    data = taken.archive.read_bytes()
    db_member = next(m for m in _members(taken.archive) if m.name == "salesboost.db")

    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: db_member.offset_data + db_member.size + 700])
    flipped = tmp_path / "flipped.tar"
    bits = bytearray(data)
    bits[db_member.offset_data + db_member.size // 2] ^= 0x10
    flipped.write_bytes(bytes(bits))
    foreign = tmp_path / "future.tar"
    body = json.dumps({"format": "salesboost-backup", "format_version": 99, "members": {}})
    with tarfile.open(foreign, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body.encode()))
    not_tar = tmp_path / "notes.tar"
    not_tar.write_text("just some text\n")

    cases = [
        (truncated, "archive_corrupt", "member"),
        (flipped, "archive_corrupt", "'salesboost.db' is damaged"),
        (foreign, "archive_version", "format version 99"),
        (not_tar, "archive_corrupt", "not a SalesBoost backup"),
        (tmp_path / "gone.tar", "archive_not_found", "gone.tar: no such file"),
    ]
    for archive, code, words in cases:
        for args in (("restore", "--force", str(archive)), ("restore", "--check", str(archive))):
            result = cli(target, *args)
            assert result.returncode == 1, (args, result.stdout)
            assert code in result.stderr and words in result.stderr, (args, result.stderr)
        assert _tree_digest(target) == before, archive.name
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith((".state", "state."))]
        assert leftovers == [], leftovers
    # without --force an existing database is never replaced
    refused = cli(target, "restore", str(taken.archive))
    assert refused.returncode == 1 and "state_exists" in refused.stderr
    assert _tree_digest(target) == before
    # with --force the old state is moved aside, not deleted
    forced = cli(target, "restore", "--force", str(taken.archive))
    assert forced.returncode == 0, forced.stderr
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("state.before-restore-")]
    assert len(aside) == 1 and _tree_digest(aside[0]) == before


def test_restore_and_a_second_serve_are_refused_while_a_server_runs(
    source: ServerProcess, taken: Taken
) -> None:
    db = source.state_dir / "salesboost.db"
    stamp = db.stat().st_ino
    result = cli(source.state_dir, "restore", "--force", str(taken.archive), env=source.env)
    assert result.returncode == 1
    assert "state_in_use" in result.stderr and "serve" in result.stderr
    # the holder is named once: its pid and what it is, no guess beside it
    assert ": salesboost serve): stop it first" in result.stderr, result.stderr
    assert "(a running" not in result.stderr
    assert db.stat().st_ino == stamp
    second = ServerProcess(source.state_dir, log_path=source.state_dir.parent / "second.log")
    with pytest.raises(RuntimeError, match="in use by another process"):
        second.start(timeout=60)
    assert second.proc is not None and second.proc.returncode == 1
    assert httpx.get(source.url + "/readyz", timeout=5).status_code == 200


def test_with_secrets_carries_the_file_keyring(source: ServerProcess, tmp_path: Path) -> None:
    archive = tmp_path / "with-secrets.tar.gz"
    result = cli(source.state_dir, "backup", "--with-secrets", str(archive), env=source.env)
    assert result.returncode == 0, result.stderr
    assert "INCLUDED" in result.stdout
    assert "secrets/keyring.cfg" in [m.name for m in _members(archive)]
    target = tmp_path / "state"
    restored = cli(target, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    keyring = Path("secrets/keyring.cfg")
    assert (target / keyring).read_bytes() == (source.state_dir / keyring).read_bytes()
    assert stat.S_IMODE((target / keyring).stat().st_mode) == 0o600
    assert os.access(target / "salesboost.db", os.R_OK)


@pytest.mark.parametrize(
    "lost", ["children_g*.lance/data/*.lance", "parents.lance/_indices/*/*"], ids=["data", "index"]
)
def test_fault_injection_index_missing_its_files_is_a_typed_backup_error(
    taken: Taken, tmp_path: Path, lost: str
) -> None:
    """A LanceDB table whose latest version lost its data files (or an index's files) never
    reads back whole: the backup retries, then fails with backup_failed and writes nothing."""
    state = tmp_path / "state"
    assert cli(state, "restore", str(taken.archive)).returncode == 0
    files = sorted((state / "lancedb").glob(lost))
    assert files
    for file in files:  # the fault
        file.unlink()
    archive = tmp_path / "never.tar"
    result = cli(state, "backup", str(archive))
    assert result.returncode == 1
    assert "never read back whole" in result.stderr, result.stderr
    assert not archive.exists() and not list(tmp_path.glob(".never.tar*"))
    assert not list(state.glob(".backup-*"))


def test_index_snapshot_under_a_writer_that_compacts_and_cleans_up_at_once(
    taken: Taken, tmp_path: Path
) -> None:
    """A harsher writer than the server (optimize with cleanup_older_than=0 every third
    append, so an old version's files go at once): every snapshot opens at the version it
    copied and reads exactly the rows the source had at that version."""
    from datetime import timedelta

    import lancedb
    import numpy as np
    import pyarrow as pa
    from appliance.backup import _snapshot_lance
    from appliance.knowledge.store import children_schema

    state = tmp_path / "state"
    assert cli(state, "restore", str(taken.archive)).returncode == 0
    src = state / "lancedb"
    meta = json.loads((src / "index.json").read_text())
    name = f"children_g{meta['generation']}"
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        table = lancedb.connect(str(src)).open_table(name)
        k = 0
        while not stop.is_set():
            rows = [
                {
                    "id": f"{800000 + k}:1:c{i}",
                    "document_id": 800000 + k,
                    "version": 1,
                    "parent_index": 0,
                    "child_index": i,
                    "page": -1,
                    "section": "",
                    "collection": "race",
                    "tags": "",
                    "text": "alpha bravo charlie",
                    "cjk": "",
                    "sparse": "",
                    "vector": np.ones(meta["dim"], dtype=np.float32).tolist(),
                }
                for i in range(5)
            ]
            table.add(pa.Table.from_pylist(rows, schema=children_schema(meta["dim"])))
            k += 1
            if k % 3 == 0:
                table.optimize(cleanup_older_than=timedelta(seconds=0))
            written.append(table.count_rows())

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        seen = []
        for i in range(6):
            copy = tmp_path / f"copy{i}"
            tables = _snapshot_lance(src, copy)
            table = lancedb.connect(str(copy)).open_table(name)
            assert table.version == tables[name]["version"]
            assert table.count_rows() == table.to_arrow().num_rows == tables[name]["rows"]
            seen.append(tables[name]["rows"])
    finally:
        stop.set()
        thread.join(30)
    assert len(set(seen)) > 1, f"the writer did not move between snapshots: {seen} {written}"


def test_an_older_schema_is_migrated_and_a_newer_one_refused(taken: Taken, tmp_path: Path) -> None:
    """An archive from an older build gets the missing migrations on restore; one from a newer
    build (a migration this build lacks) is refused and nothing is put in place."""
    old_state, new_state = tmp_path / "old", tmp_path / "new"
    for state in (old_state, new_state):
        assert cli(state, "restore", str(taken.archive)).returncode == 0
    with sqlite3.connect(old_state / "salesboost.db") as conn:  # as if 0006-0008 never ran
        conn.execute("ALTER TABLE practice_sessions DROP COLUMN end_reason")
        for table in ("users", "api_tokens", "practice_sessions", "documents", "jobs"):
            conn.execute(f"DROP TRIGGER {table}_max_id")
        conn.execute("DELETE FROM schema_version WHERE version IN (6, 7, 8)")
    with sqlite3.connect(new_state / "salesboost.db") as conn:  # as if a later build ran 0099
        conn.execute(
            "INSERT INTO schema_version (version, name, checksum) VALUES (99, 'future', 'x')"
        )
    old_archive, new_archive = tmp_path / "old.tar", tmp_path / "new.tar"
    assert cli(old_state, "backup", str(old_archive)).returncode == 0
    assert cli(new_state, "backup", str(new_archive)).returncode == 0
    assert _manifest(old_archive)["schema_version"] == 5

    target = tmp_path / "target"
    restored = cli(target, "restore", str(old_archive))
    assert restored.returncode == 0, restored.stderr
    assert "applied 0006_unscored_reports.sql" in restored.stdout
    assert "applied 0007_session_end_reason.sql" in restored.stdout
    assert "applied 0008_ids_never_reused.sql" in restored.stdout
    with sqlite3.connect(target / "salesboost.db") as conn:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == 8
        conn.execute("SELECT end_reason FROM practice_sessions").fetchall()

    other = tmp_path / "other"
    refused = cli(other, "restore", str(new_archive))
    assert refused.returncode == 1
    assert "restore_failed" in refused.stderr and "older than the database" in refused.stderr
    assert not other.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".other")]


def test_a_referenced_original_that_is_gone_is_reported_not_fatal(
    taken: Taken, tmp_path: Path
) -> None:
    """An original deleted between the snapshot and the copy of the files (here: before the
    backup, a fault injected by hand) is named on stderr and in the manifest; the rest is kept."""
    state = tmp_path / "state"
    assert cli(state, "restore", str(taken.archive)).returncode == 0
    originals = sorted((state / "documents").iterdir())
    gone = originals[0].name
    originals[0].unlink()  # the fault
    archive = tmp_path / "partial.tar"
    result = cli(state, "backup", str(archive))
    assert result.returncode == 0, result.stderr
    assert f"documents/{gone} is referenced but gone" in result.stderr
    manifest = _manifest(archive)
    assert manifest["missing_documents"] == [gone]
    kept = {n for n in manifest["members"] if n.startswith("documents/")}
    assert kept == {f"documents/{p.name}" for p in originals[1:]}
