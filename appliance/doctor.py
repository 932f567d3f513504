"""`salesboost doctor`: what this box has and whether the appliance can run on it."""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil

from appliance.config import Settings

Status = Literal["ok", "warn", "fail", "info"]


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    status: Status
    detail: str


def _python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check(
        "python",
        "ok" if ok else "fail",
        f"{platform.python_implementation()} {platform.python_version()} at {sys.executable}",
    )


def _cpu() -> Check:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    physical = psutil.cpu_count(logical=False) or 0
    logical = psutil.cpu_count(logical=True) or 0
    mem = psutil.virtual_memory().total / 2**30
    return Check(
        "cpu", "info", f"{model}; {physical} physical / {logical} logical cores; {mem:.1f} GiB RAM"
    )


def _gpu_llama() -> Check:
    if importlib.util.find_spec("llama_cpp") is None:
        return Check("gpu: llama.cpp", "fail", "llama-cpp-python is not installed")
    import llama_cpp

    offload = bool(llama_cpp.llama_supports_gpu_offload())
    return Check(
        "gpu: llama.cpp",
        "ok" if offload else "info",
        f"llama-cpp-python {llama_cpp.__version__}, GPU offload "
        f"{'supported' if offload else 'not in this build (CPU)'}",
    )


def _gpu_onnxruntime() -> Check:
    if importlib.util.find_spec("onnxruntime") is None:
        return Check("gpu: onnxruntime", "fail", "onnxruntime is not installed")
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    cuda = "CUDAExecutionProvider" in providers
    return Check(
        "gpu: onnxruntime",
        "ok" if cuda else "info",
        f"onnxruntime {onnxruntime.__version__}, providers: {', '.join(providers)}",
    )


def _gpu_torch() -> Check:
    if importlib.util.find_spec("torch") is None:
        return Check("gpu: torch", "warn", "torch is not installed")
    import torch

    if torch.cuda.is_available():
        return Check(
            "gpu: torch", "ok", f"torch {torch.__version__}, CUDA: {torch.cuda.get_device_name(0)}"
        )
    return Check("gpu: torch", "info", f"torch {torch.__version__}, no CUDA device (CPU)")


def _models(settings: Settings) -> list[Check]:
    from appliance.models import HASH_CACHE, HashCache, ModelError, load_manifest, verify

    try:
        manifest = load_manifest(settings.models_dir)
    except ModelError as err:
        return [Check("models", "fail", str(err))]
    statuses = verify(
        settings.models_dir, manifest, HashCache(settings.state_dir / HASH_CACHE), deep=True
    )
    out = []
    for entry in manifest.model:
        mine = [s for s in statuses if s.model == entry.name]
        bad = [s for s in mine if s.state != "ok"]
        if bad:
            status: Status = "fail" if entry.required else "warn"
            detail = "; ".join(f"{s.path}: {s.state} ({s.detail})" for s in bad)
        else:
            status, detail = (
                "ok",
                f"{settings.models_dir / entry.path} ({len(mine)} files, sha256 OK)",
            )
            if entry.role == "embedding" and entry.languages:
                detail += (  # what hybrid search does with a query in another language
                    f"; reads {', '.join(entry.languages)}: full-text search alone for "
                    "queries in other languages"
                )
        out.append(Check(f"model {entry.name} [{entry.role}]", status, detail))
    return out


def _state_dir(settings: Settings) -> Check:
    path = settings.state_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as err:
        return Check("state dir", "fail", f"{path} is not writable: {err}")
    free_mb = shutil.disk_usage(path).free // 2**20
    need = settings.readiness.min_free_disk_mb
    status: Status = "ok" if free_mb >= need else "fail"
    return Check("state dir", status, f"{path} writable, {free_mb} MiB free (need {need})")


def _backups(settings: Settings) -> Check:
    from appliance.scheduled_backup import archives_in

    config = settings.backup
    if not config.dir:
        return Check("backups", "info", "scheduled backups off (backup.dir is empty)")
    path = Path(config.dir).expanduser()
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-"):
            pass
    except OSError as err:
        return Check("backups", "warn", f"backup.dir {path} is not writable: {err}")
    found = archives_in(path)
    age_h = (time.time() - found[-1].stat().st_mtime) / 3600 if found else None
    detail = f"{path}: {len(found)} archives" + (f", newest {age_h:.1f} h old" if found else "")
    if age_h is not None and age_h > 2 * config.every_hours:
        return Check(
            "backups", "warn", detail + f" (more than twice every_hours={config.every_hours:g})"
        )
    span_days = config.keep * config.every_hours / 24
    retention = settings.practice.retention_days
    if 0 < retention < span_days:
        fits = max(1, int(retention * 24 // config.every_hours))
        return Check(
            "backups",
            "warn",
            detail + f"; backup.keep={config.keep} archives every {config.every_hours:g} h span "
            f"{span_days:g} days, longer than practice.retention_days={retention}: what the "
            f"retention deleted stays in the archives that long (backup.keep={fits} fits)",
        )
    state = settings.state_dir
    if state.exists() and path.resolve().stat().st_dev == state.resolve().stat().st_dev:
        return Check(
            "backups", "warn", detail + "; on the state directory's disk: a disk failure loses both"
        )
    return Check("backups", "ok", detail)


def _secrets(settings: Settings) -> Check:
    from appliance.secrets import SESSION_KEY, SecretError, SecretStore

    store = SecretStore(settings)
    try:
        info = store.describe()
        source = store.source_of(SESSION_KEY)
    except SecretError as err:
        return Check("secrets", "fail", str(err))
    where = info["name"] + (f" at {info['path']}" if info["path"] else "")
    if info["backend"] == "file":
        where = f"file keyring ({where}; no OS keyring on this box)"
        if store.file_mode_ok() is False:
            return Check("secrets", "fail", f"{where} is readable by others: chmod 600 it")
    if store.credentials_dir:
        where += f"; systemd credentials in {store.credentials_dir}"
    if source is None:
        return Check("secrets", "fail", f"{where}; session_key missing (salesboost secrets ensure)")
    return Check("secrets", "ok", f"{where}; session_key from {source}")


def _database(settings: Settings) -> Check:
    from appliance.db.migrations import MigrationError, check, connect_sync, discover

    if not settings.db_path.exists():
        return Check(
            "database", "warn", f"{settings.db_path} does not exist yet (salesboost migrate)"
        )
    conn = connect_sync(settings.db_path)
    try:
        pending = check(conn, discover())
    except MigrationError as err:
        return Check("database", "fail", str(err))
    finally:
        conn.close()
    if pending:
        return Check("database", "warn", f"{len(pending)} migrations pending (serve applies them)")
    return Check("database", "ok", f"{settings.db_path}, schema up to date")


def _port(settings: Settings) -> Check:
    host, port = settings.server.host, settings.server.port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            return Check(
                "port",
                "warn",
                f"{host}:{port} is in use or not bindable ({err.strerror}); "
                "is the appliance already running?",
            )
    return Check("port", "ok", f"{host}:{port} is free")


UPLOAD_FORM_BYTES = 1024 * 1024
"""What a multipart upload of one file carries besides the file (the form's other fields)."""


def _uploads(settings: Settings) -> Check:
    """A document of knowledge.max_file_bytes must fit in one request body."""
    body, file = settings.server.max_body_bytes, settings.knowledge.max_file_bytes
    if body < file + UPLOAD_FORM_BYTES:
        return Check(
            "uploads",
            "warn",
            f"server.max_body_bytes ({body:,}) leaves no room for a document of "
            f"knowledge.max_file_bytes ({file:,}) in one upload: larger documents get 413 over "
            f"HTTP (`salesboost ingest` still takes them); raise it to {file + UPLOAD_FORM_BYTES:,}",
        )
    return Check("uploads", "ok", f"one document up to {file:,} bytes per upload")


def _intent(settings: Settings) -> Check:
    from appliance.practice.agents.intent import model_status

    state, detail = model_status(settings)
    if state == "ok":
        return Check("intent classifier", "ok", f"trained model {detail}")
    return Check(
        "intent classifier",
        "warn",
        f"model {state} ({detail}): serve trains it in-process at start;"
        " `salesboost intent train` does it now",
    )


def _onnx_export(settings: Settings) -> Check:
    from appliance.knowledge.embedding import onnx_export_name, resolve_model

    spec = resolve_model(settings.models_dir, settings.knowledge.embedding_model)
    if spec.m3:
        return Check("embedding onnx export", "info", "BGE-M3 runs on FlagEmbedding (no export)")
    path = settings.models_dir / "onnx" / onnx_export_name(spec)
    if path.is_file():
        return Check("embedding onnx export", "ok", str(path))
    plain = settings.models_dir / "onnx" / onnx_export_name(spec, fused=False)
    if plain.is_file():
        return Check(
            "embedding onnx export",
            "warn",
            f"{plain} is the plain export of an older install (same vectors, slower):"
            " `salesboost models place` replaces it with the fused one",
        )
    return Check(
        "embedding onnx export",
        "warn",
        f"{path} missing: the first CPU embedding exports it (a few seconds, in a child);"
        " `salesboost models place` does it now",
    )


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in report order; one failing check never stops the others."""
    checks: list[Check] = []
    steps: list[Callable[[], Check | list[Check]]] = [
        _python,
        _cpu,
        _gpu_llama,
        _gpu_onnxruntime,
        _gpu_torch,
        lambda: _models(settings),
        lambda: _state_dir(settings),
        lambda: _secrets(settings),
        lambda: _backups(settings),
        lambda: _database(settings),
        lambda: _port(settings),
        lambda: _uploads(settings),
        lambda: _intent(settings),
        lambda: _onnx_export(settings),
    ]
    for step in steps:
        try:
            result = step()
        except Exception as err:  # a broken probe is a finding, not a crash
            result = Check(
                getattr(step, "__name__", "check").strip("_"),
                "fail",
                f"{type(err).__name__}: {err}",
            )
        checks.extend(result if isinstance(result, list) else [result])
    checks.append(
        Check("offline", "info", "HF_HUB_OFFLINE=" + os.environ.get("HF_HUB_OFFLINE", ""))
    )
    return checks
