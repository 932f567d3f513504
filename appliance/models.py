"""The model manifest (``models/manifest.toml``): what each model is, where its files lie, their sha256.

Bundled models come from PyPI packages that ship them; :func:`place_bundled` copies (or
assembles) them under ``models/``. Nothing here downloads anything.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import shutil
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

MANIFEST = "manifest.toml"
HASH_CACHE = "model-hashes.json"


class ModelFile(msgspec.Struct, kw_only=True, frozen=True):
    """One file of a model, relative to the models directory."""

    path: str
    sha256: str


class ModelEntry(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    """One model in the manifest."""

    name: str
    role: Literal["chat", "embedding", "reranker", "ocr_det", "ocr_rec", "ocr_cls"]
    path: str
    files: list[ModelFile]
    source: str
    license: str = ""
    format: str = ""
    context_length: int = 0
    chat_template: bool = False
    arch: str = ""
    """Model architecture from the GGUF metadata (``general.architecture``)."""
    bundled_from: str = ""
    """How install places it: ``module:subpath`` to copy out of an installed package, or
    ``module:assemble()`` for a package that reassembles its file; empty for operator-placed files."""
    required: bool = True
    languages: list[str] = msgspec.field(default_factory=list)
    """For an embedding model: the languages it was trained to read (``en``, ``zh``); empty
    for any. Hybrid search leaves the dense ranking out for a query in another language."""


class Manifest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole manifest file."""

    model: list[ModelEntry] = msgspec.field(default_factory=list)


class ModelError(Exception):
    """A model file is missing or corrupt; the message names the file."""

    code = "model_error"


def load_manifest(models_dir: Path) -> Manifest:
    """Parse and validate ``manifest.toml``."""
    path = models_dir / MANIFEST
    try:
        return msgspec.convert(tomllib.loads(path.read_text(encoding="utf-8")), Manifest)
    except FileNotFoundError:
        raise ModelError(f"{path} is missing") from None
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as err:
        raise ModelError(f"{path} is invalid: {err}") from None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileStatus:
    """The check of one model file."""

    model: str
    path: Path
    state: Literal["ok", "missing", "corrupt"]
    detail: str = ""


class HashCache:
    """sha256 by (path, size, mtime) in the state dir, so start-up does not re-hash gigabytes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, list[object]] = {}
        if path is not None and path.is_file():
            try:
                self._data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                self._data = {}

    def sha256(self, file: Path, *, trust_cache: bool) -> str:
        """The file's sha256, from the cache when its size and mtime are unchanged."""
        st = file.stat()
        key = str(file.resolve())
        hit = self._data.get(key)
        if trust_cache and hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return str(hit[2])
        digest = sha256_file(file)
        self._data[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        """Write the cache (best effort: a read-only state dir only costs a re-hash)."""
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._data), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass


def verify(
    models_dir: Path, manifest: Manifest, cache: HashCache | None = None, *, deep: bool = False
) -> list[FileStatus]:
    """Check every file of every model: present and matching its sha256."""
    cache = cache or HashCache(None)
    out: list[FileStatus] = []
    for entry in manifest.model:
        for f in entry.files:
            path = models_dir / f.path
            if not path.is_file():
                out.append(FileStatus(entry.name, path, "missing", "file not found"))
                continue
            digest = cache.sha256(path, trust_cache=not deep)
            if digest != f.sha256:
                out.append(
                    FileStatus(
                        entry.name,
                        path,
                        "corrupt",
                        f"sha256 {digest[:12]}… expected {f.sha256[:12]}…",
                    )
                )
            else:
                out.append(FileStatus(entry.name, path, "ok"))
    cache.save()
    return out


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"package {module!r} is not installed (needed to place a bundled model)")
    return Path(next(iter(spec.submodule_search_locations)))


def place_bundled(models_dir: Path, manifest: Manifest) -> list[str]:
    """Copy or assemble every bundled model whose files are missing or wrong; returns what was placed."""
    placed = []
    for entry in manifest.model:
        if not entry.bundled_from:
            continue
        statuses = verify(models_dir, Manifest(model=[entry]))
        if all(s.state == "ok" for s in statuses):
            continue
        module, _, subpath = entry.bundled_from.partition(":")
        target = models_dir / entry.path
        if subpath == "assemble()":
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".partial")
            importlib.import_module(module).assemble(output_path=tmp, overwrite=True)
            tmp.replace(target)
        else:
            source = _package_dir(module) / subpath
            if source.is_dir():
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(source, target)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
        bad = [s for s in verify(models_dir, Manifest(model=[entry]), deep=True) if s.state != "ok"]
        if bad:
            raise ModelError(
                f"placed {entry.name} but {bad[0].path} is {bad[0].state}: {bad[0].detail}"
            )
        placed.append(entry.name)
    return placed


def gguf_metadata(path: Path) -> dict[str, str]:
    """A GGUF file's metadata (architecture, context length, chat template...); ModelError if unreadable."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise ModelError(f"{path} cannot be read: {err.strerror}") from None
    if magic != b"GGUF":
        raise ModelError(f"{path} is not a GGUF file")
    import logging

    from llama_cpp import Llama

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    try:
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as err:
        raise ModelError(f"{path} is not a loadable GGUF model: {err}") from None
    meta = {str(k): str(v) for k, v in llm.metadata.items()}
    llm.close()
    return meta


def add_model(
    models_dir: Path,
    file: Path,
    *,
    role: str,
    name: str = "",
    languages: Sequence[str] = (),
) -> ModelEntry:
    """Register an operator-copied model under models/ in manifest.toml (metadata + sha256).

    ``chat``: a GGUF file. ``embedding`` / ``reranker``: a Hugging Face model directory
    (``config.json``, weights, tokenizer), every file hashed. ``languages``: what an
    embedding model reads (empty: any; see :attr:`ModelEntry.languages`).
    """
    file = file.absolute()  # not resolve(): a symlink placed under models/ is fine
    root = models_dir.absolute()
    if not file.exists():
        raise ModelError(f"{file} does not exist")
    if not file.is_relative_to(root):
        raise ModelError(f"{file} is not under {root}: copy it there first")
    manifest = load_manifest(models_dir)
    rel = file.relative_to(root).as_posix()
    name = name or file.name.removesuffix(".gguf").lower().replace("_", "-").replace(".", "-")
    for entry in manifest.model:
        if entry.name == name or entry.path == rel:
            raise ModelError(f"{entry.path} is already in the manifest as {entry.name}")
    if role == "chat":
        entry = _gguf_entry(file, rel, name)
    else:
        entry = _directory_entry(root, file, rel, name, role)
    if languages:
        entry = msgspec.structs.replace(entry, languages=sorted(set(languages)))
    _append_entry(models_dir, entry)
    return entry


def _gguf_entry(file: Path, rel: str, name: str) -> ModelEntry:
    if not file.is_file():
        raise ModelError(f"{file} is not a file: a chat model is one GGUF file")
    meta = gguf_metadata(file)
    arch = meta.get("general.architecture", "")
    return ModelEntry(
        name=name,
        role="chat",
        path=rel,
        files=[ModelFile(path=rel, sha256=sha256_file(file))],
        source="operator",
        license=meta.get("general.license", ""),
        format="gguf",
        context_length=int(meta.get(f"{arch}.context_length", "0") or 0),
        chat_template=bool(meta.get("tokenizer.chat_template")),
        arch=arch,
    )


def _directory_entry(root: Path, folder: Path, rel: str, name: str, role: str) -> ModelEntry:
    """An embedding or reranker model: a Hugging Face directory, checked against its role."""
    if not folder.is_dir():
        raise ModelError(f"{folder} is not a directory: an {role} model is a model directory")
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(
            f"{folder} has no config.json: not a Hugging Face model directory"
        ) from None
    except (OSError, json.JSONDecodeError) as err:
        raise ModelError(f"{folder / 'config.json'} cannot be read: {err}") from None
    architectures = [str(a) for a in config.get("architectures") or []]
    arch = architectures[0] if architectures else str(config.get("model_type", ""))
    classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
    if role == "reranker" and not classifier:
        raise ModelError(
            f"{folder} is a {arch or 'model of unknown architecture'}, not a cross-encoder "
            "(a reranker's config.json names a ...ForSequenceClassification architecture)"
        )
    if role == "embedding" and classifier:
        raise ModelError(f"{folder} is a cross-encoder ({arch}): add it with --role reranker")
    weights = [p for p in ("model.safetensors", "pytorch_model.bin") if (folder / p).is_file()]
    if not weights and not any(folder.glob("*.safetensors")):
        raise ModelError(f"{folder} has no weights (model.safetensors or pytorch_model.bin)")
    if not any((folder / t).is_file() for t in ("tokenizer.json", "tokenizer_config.json")):
        raise ModelError(f"{folder} has no tokenizer (tokenizer.json)")
    files = [
        ModelFile(path=p.relative_to(root).as_posix(), sha256=sha256_file(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    if (folder / "sparse_linear.pt").is_file():
        fmt = "bge-m3"  # dense + sparse lexical weights (appliance.knowledge.embedding)
    elif (folder / "modules.json").is_file():
        fmt = "sentence-transformers"
    else:
        fmt = "transformers"
    return ModelEntry(
        name=name,
        role=role,  # type: ignore[arg-type]
        path=rel,
        files=files,
        source="operator",
        format=fmt,
        context_length=int(config.get("max_position_embeddings", 0) or 0),
        arch=arch,
    )


def _toml_entry(entry: ModelEntry) -> str:
    lines = [
        "",
        "[[model]]",
        f"name = {json.dumps(entry.name)}",
        f"role = {json.dumps(entry.role)}",
        f"format = {json.dumps(entry.format)}",
        f"arch = {json.dumps(entry.arch)}",
        f"path = {json.dumps(entry.path)}",
        "files = [",
        *(
            f"  {{ path = {json.dumps(f.path)}, sha256 = {json.dumps(f.sha256)} }},"
            for f in entry.files
        ),
        "]",
        f"context_length = {entry.context_length}",
    ]
    if entry.role == "chat":
        lines.append(f"chat_template = {'true' if entry.chat_template else 'false'}")
    if entry.languages:
        lines.append(f"languages = {json.dumps(entry.languages)}")
    lines += [f"source = {json.dumps(entry.source)}", f"license = {json.dumps(entry.license)}", ""]
    return "\n".join(lines)


def _append_entry(models_dir: Path, entry: ModelEntry) -> None:
    """Append one entry to manifest.toml; the file is left as it was if the result is invalid."""
    block = _toml_entry(entry)
    path = models_dir / MANIFEST
    before = path.read_text(encoding="utf-8")
    path.write_text(before.rstrip("\n") + "\n" + block, encoding="utf-8")
    try:
        load_manifest(models_dir)
    except ModelError:
        path.write_text(before, encoding="utf-8")
        raise
