"""Text embeddings with FlagEmbedding (BGE-M3 dense + sparse, or a FlagModel such as MiniLM).

Models load from their directory under ``models/`` only (never a hub id). Passages are
embedded in batches; every vector is cached by sha256(model name + text), so unchanged
text is never embedded twice. An ONNX Runtime backend (the model exported locally with
``torch.onnx.export`` into the state dir on first use) is the faster CPU alternative for
FlagModel-style models; both give the same vectors (see the tests).

The ONNX path keeps torch out of the serving process: the export runs in a child process
(``python -m appliance.knowledge.embedding EXPORT``), the tokenizer is the ``tokenizers``
library on the model's ``tokenizer.json``, and "auto" finds a CUDA device through the driver
rather than torch. Importing torch and transformers costs the server ~300 MB that never
comes back (measured in BENCHMARKS.md, fan-out).

The export is "fused": the encoder is traced with eager attention and then rewritten by
onnxruntime's own transformer optimizer (fused Attention, EmbedLayerNormalization,
SkipLayerNormalization, BiasGelu with the exact erf Gelu), kept only when its vectors match
the plain trace (cosine >= 0.9999 on sample texts). Passages are batched by length under a
padded-token budget (``knowledge.embedding_batch_tokens``): small batches of similar length
keep activations in cache and padding low (measured in BENCHMARKS.md, embedding).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from appliance.config import KnowledgeConfig
from appliance.errors import AppError
from appliance.models import load_manifest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # FlagEmbedding's per-batch progress bars

Vectors = npt.NDArray[np.float32]
Sparse = dict[str, float]
Backend = Literal["flagembedding", "onnx"]

BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


class EmbeddingModelError(AppError):
    """The configured embedding model is unknown, not an embedding model, or missing files."""

    status_code = 503
    code = "embedding_model_unavailable"


@dataclass(frozen=True)
class ModelSpec:
    """How to run one embedding model."""

    name: str
    path: Path
    m3: bool  # BGE-M3: dense + sparse lexical weights
    pooling: Literal["cls", "mean"]
    query_instruction: str | None
    languages: tuple[str, ...] = ()
    """What the model reads (the manifest's ``languages``); empty for any."""


_CJK_CHAR = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def text_language(text: str) -> Literal["zh", "en"]:
    """``zh`` when CJK characters outnumber the other letters and digits, else ``en``."""
    cjk = len(_CJK_CHAR.findall(text))
    other = sum(1 for c in text if c.isalnum()) - cjk
    return "zh" if cjk > other else "en"


def resolve_model(models_dir: Path, name: str) -> ModelSpec:
    """Find an embedding model in the manifest and decide pooling and query handling."""
    manifest = load_manifest(models_dir)
    entry = next((m for m in manifest.model if m.name == name), None)
    if entry is None:
        known = ", ".join(m.name for m in manifest.model if m.role == "embedding")
        raise EmbeddingModelError(
            f"embedding model {name!r} is not in the manifest (known: {known})"
        )
    if entry.role != "embedding":
        raise EmbeddingModelError(f"model {name!r} has role {entry.role!r}, not 'embedding'")
    path = models_dir / entry.path
    if not (path / "config.json").is_file():
        raise EmbeddingModelError(f"embedding model {name!r}: {path} has no config.json")
    lowered = name.lower()
    # BGE-M3 ships its sparse head beside the encoder; the name is the fallback for a copy
    # placed without it (FlagEmbedding then starts that head untrained and says so)
    m3 = (path / "sparse_linear.pt").is_file() or ("m3" in lowered and "bge" in lowered)
    pooling: Literal["cls", "mean"] = "cls"
    pooling_config = path / "1_Pooling" / "config.json"
    if pooling_config.is_file():  # a sentence-transformers layout says how it was trained
        cfg = json.loads(pooling_config.read_text(encoding="utf-8"))
        pooling = "mean" if cfg.get("pooling_mode_mean_tokens") else "cls"
    instruction = BGE_QUERY_INSTRUCTION if lowered.startswith("bge") and not m3 else None
    return ModelSpec(name, path, m3, pooling, instruction, tuple(entry.languages))


def cuda_device_count() -> int:
    """CUDA devices the driver reports (0 without a driver); asks libcuda, not torch."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def pick_device(setting: str) -> str:
    """auto -> cuda when the driver reports a GPU, else cpu."""
    if setting != "auto":
        return setting
    return "cuda" if cuda_device_count() > 0 else "cpu"


class EmbeddingCache:
    """sha256(model + text) -> vector (and sparse weights), in its own SQLite file."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL, "
            "sparse TEXT)"
        )
        self._lock = threading.Lock()

    @staticmethod
    def key(model: str, text: str) -> bytes:
        """The cache key of a text under a model."""
        return hashlib.sha256(f"{model}\0{text}".encode()).digest()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, tuple[Vectors, Sparse | None]]:
        """Cached entries for the keys that have one."""
        found: dict[bytes, tuple[Vectors, Sparse | None]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                part = list(keys[start : start + 500])
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT key, vector, sparse FROM embeddings WHERE key IN ({marks})",  # noqa: S608
                    part,
                ).fetchall()
                for key, blob, sparse in rows:
                    found[key] = (
                        np.frombuffer(blob, dtype=np.float32),
                        json.loads(sparse) if sparse else None,
                    )
        return found

    def put_many(self, items: Sequence[tuple[bytes, Vectors, Sparse | None]]) -> None:
        """Store entries."""
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR REPLACE INTO embeddings (key, vector, sparse) VALUES (?, ?, ?)",
                [
                    (k, np.asarray(v, dtype=np.float32).tobytes(), json.dumps(s) if s else None)
                    for k, v, s in items
                ],
            )
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()


class _FlagBackend:
    """FlagEmbedding: BGEM3FlagModel for BGE-M3, FlagModel otherwise."""

    def __init__(self, spec: ModelSpec, device: str, batch_size: int) -> None:
        from FlagEmbedding import BGEM3FlagModel, FlagModel

        self.spec = spec
        self.batch_size = batch_size
        fp16 = device.startswith("cuda")
        self.model: Any
        if spec.m3:
            self.model = BGEM3FlagModel(
                str(spec.path), use_fp16=fp16, devices=device, batch_size=batch_size
            )
        else:
            self.model = FlagModel(
                str(spec.path),
                pooling_method=spec.pooling,
                normalize_embeddings=True,
                use_fp16=fp16,
                devices=device,
                batch_size=batch_size,
                query_instruction_for_retrieval=spec.query_instruction,
            )
        self.tokenizer = self.model.tokenizer

    def encode(
        self, texts: list[str], *, query: bool, gate: Gate = contextlib.nullcontext
    ) -> tuple[Vectors, list[Sparse] | None]:
        if len(texts) > self.batch_size:  # one batch per turn of the gate
            parts = [
                self.encode(texts[i : i + self.batch_size], query=query, gate=gate)
                for i in range(0, len(texts), self.batch_size)
            ]
            sparse_parts = [p[1] for p in parts]
            return np.concatenate([p[0] for p in parts]), (
                [w for part in sparse_parts for w in part or []] if self.spec.m3 else None
            )
        with gate():
            return self._encode(texts, query=query)

    def _encode(self, texts: list[str], *, query: bool) -> tuple[Vectors, list[Sparse] | None]:
        if self.spec.m3:
            out = self.model.encode(
                texts, batch_size=self.batch_size, return_dense=True, return_sparse=True
            )
            sparse = [{str(k): float(v) for k, v in w.items()} for w in out["lexical_weights"]]
            return np.asarray(out["dense_vecs"], dtype=np.float32), sparse
        fn = self.model.encode_queries if query else self.model.encode_corpus
        vectors = fn(texts, batch_size=self.batch_size)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1), None

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def lexical_score(self, query: Sparse, doc: Sparse) -> float:
        return float(self.model.compute_lexical_matching_score(query, doc))


EXPORT_FORMAT = "fused1"  # part of the export's file name: a new format is a new file
FUSED_MIN_COSINE = 0.9999  # the fused graph is kept only when its vectors match the plain one


def export_onnx(spec: ModelSpec, target: Path, *, fused: bool = True) -> Path:
    """Export a FlagModel-style encoder (pooling + L2 normalisation inside) to ONNX, atomically;
    ``fused``: eager attention, then onnxruntime's transformer fusions (see the module doc)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(spec.path))
    extra = {"attn_implementation": "eager"} if fused else {}  # the pattern the fuser knows
    model = AutoModel.from_pretrained(str(spec.path), **extra).eval()

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask
            ).last_hidden_state
            if spec.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    sample = tokenizer(
        ["an example", "another example sentence"], padding=True, return_tensors="pt"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")  # two processes may export at once
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings():  # the tracer's notes about this graph are expected noise
        warnings.simplefilter("ignore")
        _export(torch, Pooled(), sample, tmp, axes)
    if fused:
        config = model.config
        _fuse(tmp, tokenizer, int(config.num_attention_heads), int(config.hidden_size))
    tmp.replace(target)
    return target


def _fuse(path: Path, tokenizer: Any, heads: int, hidden: int) -> None:
    """Rewrite an exported BERT-style graph in place with onnxruntime's transformer fusions,
    unless its vectors would move (then the plain graph stays)."""
    import onnxruntime as ort

    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        options = FusionOptions("bert")
        options.enable_gelu_approximation = False  # FastGelu moves the numbers; keep erf Gelu
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fused = optimize_model(
                str(path),
                model_type="bert",
                num_heads=heads,
                hidden_size=hidden,
                optimization_options=options,
                opt_level=0,
                use_gpu=False,
            )
    except Exception as err:  # a graph the fuser does not know: the plain one still works
        print(f"onnx fusion skipped: {err!r}", file=sys.stderr)
        return
    candidate = path.with_suffix(".fused.tmp")
    fused.save_model_to_file(str(candidate))
    texts = [
        "an example",
        "The annual fee for the Platinum card is 95 dollars, waived in the first year.",
        "白金卡的年费是九十五美元。",
        " ".join(["Travel insurance covers lost luggage up to 2,000 euros."] * 12),
    ]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="np")
    feeds = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    cpu = ["CPUExecutionProvider"]
    plain = ort.InferenceSession(str(path), providers=cpu).run(None, feeds)[0]
    mine = ort.InferenceSession(str(candidate), providers=cpu).run(None, feeds)[0]
    if float(np.min(np.sum(plain * mine, axis=1))) >= FUSED_MIN_COSINE:
        candidate.replace(path)
    else:
        candidate.unlink()


def export_onnx_in_child(spec: ModelSpec, target: Path, *, fused: bool = True) -> Path:
    """Run `export_onnx` in a child process, so torch never enters the serving process."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "appliance.knowledge.embedding",
            str(spec.path),
            spec.pooling,
            str(target),
            "fused" if fused else "plain",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not target.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise EmbeddingModelError(
            f"exporting {spec.name} to ONNX failed (exit {result.returncode}): " + " | ".join(tail)
        )
    return target


def _export(torch: Any, module: Any, sample: Any, tmp: Path, axes: dict[int, str]) -> None:
    torch.onnx.export(
        module,
        (sample["input_ids"], sample["attention_mask"]),
        str(tmp),
        input_names=["input_ids", "attention_mask"],
        output_names=["embedding"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )


def _pad_token(model_dir: Path) -> str:
    """The padding token named by special_tokens_map.json ("[PAD]" for BERT-style models)."""
    special = model_dir / "special_tokens_map.json"
    if special.is_file():
        pad = json.loads(special.read_text(encoding="utf-8")).get("pad_token")
        if isinstance(pad, dict):
            pad = pad.get("content")
        if isinstance(pad, str):
            return pad
    return "[PAD]"


class _FastTokenizer:
    """The model's tokenizer.json on the `tokenizers` library: same ids as transformers' fast
    tokenizer (tested), without importing transformers (and torch) into the server."""

    def __init__(self, path: Path, max_length: int = 512) -> None:
        from tokenizers import Tokenizer

        self._count = Tokenizer.from_file(str(path))
        self._count.no_truncation()
        self._count.no_padding()
        self._ids = Tokenizer.from_file(str(path))
        self._ids.enable_truncation(max_length)
        self._ids.no_padding()  # batches are padded after bucketing by length
        self.pad_id = self._ids.token_to_id(_pad_token(path.parent)) or 0

    def count(self, text: str) -> int:
        return len(self._count.encode(text, add_special_tokens=False).ids)

    def ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to the model's length, unpadded."""
        return [e.ids for e in self._ids.encode_batch(texts)]


class _HFTokenizer:
    """transformers' AutoTokenizer, for a model directory without a tokenizer.json."""

    def __init__(self, path: Path) -> None:
        from transformers import AutoTokenizer

        self._tok = AutoTokenizer.from_pretrained(str(path))
        self.pad_id = int(self._tok.pad_token_id or 0)

    def count(self, text: str) -> int:
        return len(self._tok(text, add_special_tokens=False)["input_ids"])

    def ids(self, texts: list[str]) -> list[list[int]]:
        """Token ids with special tokens, truncated to 512, unpadded."""
        return [list(i) for i in self._tok(texts, truncation=True, max_length=512)["input_ids"]]


def length_batches(lengths: Sequence[int], max_tokens: int, max_texts: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, shortest first: a batch holds at most
    ``max_texts`` texts and, padded to its longest, ``max_tokens`` tokens (always >= 1 text);
    ``max_tokens`` 0 means by count only."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:  # ascending, so lengths[i] is the padded length if i joins
        full = len(current) >= max_texts or (
            max_tokens > 0 and (len(current) + 1) * lengths[i] > max_tokens
        )
        if current and full:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def onnx_export_name(spec: ModelSpec, *, fused: bool = True) -> str:
    """The file name of a model's ONNX export: changes when its weights, pooling or the export
    format do (``fused=False``: the plain export's name, as placed before the fused format)."""
    weights = spec.path / "model.safetensors"
    size = weights.stat().st_size if weights.exists() else 0
    tag = f":{EXPORT_FORMAT}" if fused else ""
    stamp = hashlib.sha256(f"{spec.name}:{spec.pooling}:{size}{tag}".encode()).hexdigest()[:12]
    return f"{spec.name}-{stamp}.onnx"


def place_onnx_export(models_dir: Path, name: str) -> Path | None:
    """Export an embedding model to ``models/onnx`` (install time), unless it is there or the
    model is BGE-M3 (no ONNX path); returns the file written, None when nothing was to do.
    A plain export left by an older install is removed once the fused one is written."""
    spec = resolve_model(models_dir, name)
    target = models_dir / "onnx" / onnx_export_name(spec)
    if spec.m3 or target.is_file():
        return None
    written = export_onnx_in_child(spec, target)
    (models_dir / "onnx" / onnx_export_name(spec, fused=False)).unlink(missing_ok=True)
    return written


def find_onnx_export(spec: ModelSpec, dirs: Sequence[Path]) -> tuple[Path, bool]:
    """The export to run and whether it exists: the fused one in the first of ``dirs`` that
    has it, else a plain one from an older install (same vectors, a little slower), else
    where the fused one should be made (the last dir)."""
    fused = [d / onnx_export_name(spec) for d in dirs]
    plain = [d / onnx_export_name(spec, fused=False) for d in dirs]
    found = next((p for p in fused + plain if p.is_file()), None)
    return (found, True) if found is not None else (fused[-1], False)


class _OnnxBackend:
    """ONNX Runtime on a locally exported copy of the model (CUDA provider when available)."""

    def __init__(
        self,
        spec: ModelSpec,
        device: str,
        batch_size: int,
        cache_dirs: Sequence[Path],
        *,
        batch_tokens: int = 0,
        export: Path | None = None,
    ) -> None:
        """Use ``export`` if given, else the first export found in ``cache_dirs`` (models/onnx,
        placed at install, then the state dir's), else export into the last one."""
        import onnxruntime as ort

        if spec.m3:
            raise EmbeddingModelError("the onnx backend does not do BGE-M3 sparse weights")
        self.spec = spec
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        fast = spec.path / "tokenizer.json"
        self.tokenizer = _FastTokenizer(fast) if fast.is_file() else _HFTokenizer(spec.path)
        if export is not None:
            path = export
        else:
            path, exists = find_onnx_export(spec, cache_dirs)
            if not exists:
                export_onnx_in_child(spec, path)
        self.path = path
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        options = ort.SessionOptions()
        self.session = ort.InferenceSession(str(path), options, providers=providers)

    def encode(
        self, texts: list[str], *, query: bool, gate: Gate = contextlib.nullcontext
    ) -> tuple[Vectors, list[Sparse] | None]:
        if query and self.spec.query_instruction:
            texts = [self.spec.query_instruction + t for t in texts]
        ids = self.tokenizer.ids(texts)
        out = np.zeros((len(texts), 0), dtype=np.float32)
        batches = length_batches([len(i) for i in ids], self.batch_tokens, self.batch_size)
        parts: list[Vectors] = []
        for batch in batches:
            width = max(len(ids[i]) for i in batch)
            tokens = np.full((len(batch), width), self.tokenizer.pad_id, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                tokens[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            feeds = {"input_ids": tokens, "attention_mask": mask}
            with gate():
                parts.append(np.asarray(self.session.run(None, feeds)[0], dtype=np.float32))
        if parts:
            stacked = np.concatenate(parts)
            out = np.empty_like(stacked)
            out[np.asarray([i for batch in batches for i in batch])] = stacked
        return out, None

    def count_tokens(self, text: str) -> int:
        return self.tokenizer.count(text)

    def lexical_score(self, query: Sparse, doc: Sparse) -> float:
        return 0.0


Gate = Callable[[], contextlib.AbstractContextManager[None]]


class ModelTurns:
    """One model run at a time, queries first: a query waits for the batch that is running,
    never for the rest of an ingestion (at 64 x 4 passages a turn, that was up to ~3 s)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._queries_waiting = 0

    @property
    def busy(self) -> bool:
        """Whether a batch is running."""
        return self._busy

    @contextlib.contextmanager
    def hold(self, query: bool) -> Iterator[None]:
        """Run one batch; a passage batch waits while any query is waiting."""
        with self._cond:
            self._queries_waiting += int(query)
            try:
                while self._busy or (not query and self._queries_waiting):
                    self._cond.wait()
            finally:
                self._queries_waiting -= int(query)
            self._busy = True
        try:
            yield
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()


class Embedder:
    """Embeds passages (cached) and queries with the configured model; thread-safe, blocking."""

    def __init__(
        self,
        config: KnowledgeConfig,
        models_dir: Path,
        state_dir: Path,
        *,
        backend: Backend | None = None,
        model: str | None = None,
        onnx_export: Path | None = None,
    ) -> None:
        """``onnx_export``: run this ONNX file instead of finding the model's export (benches,
        tests)."""
        self.spec = resolve_model(models_dir, model or config.embedding_model)
        self.name = self.spec.name
        self.device = pick_device(config.embedding_device)
        chosen = backend or config.embedding_backend
        if chosen == "auto":
            chosen = "onnx" if self.device == "cpu" else "flagembedding"
        self.backend_name: Backend = "flagembedding" if self.spec.m3 else chosen
        self.batch_size = config.embedding_batch_size
        self.batch_tokens = config.embedding_batch_tokens
        self._onnx_export = onnx_export
        self._state_dir = state_dir
        self._models_dir = models_dir
        self._backend: _FlagBackend | _OnnxBackend | None = None
        self._load_lock = threading.Lock()
        self.turns = ModelTurns()  # one batch at a time (the cores are shared), queries first
        self.cache = EmbeddingCache(state_dir / "embedding_cache.sqlite")
        self.embedded = 0  # texts actually run through the model (cache misses)

    @property
    def sparse(self) -> bool:
        """Whether this model yields sparse lexical weights (BGE-M3)."""
        return self.spec.m3

    def reads(self, text: str) -> bool:
        """Whether the model reads the language of this text: any text when the manifest names
        no languages; else a text mostly in CJK characters needs ``zh``, any other ``en``."""
        if not self.spec.languages:
            return True
        return text_language(text) in self.spec.languages

    def load(self) -> _FlagBackend | _OnnxBackend:
        """Load the model (once)."""
        with self._load_lock:
            if self._backend is None:
                if self.backend_name == "onnx":
                    self._backend = _OnnxBackend(
                        self.spec,
                        self.device,
                        self.batch_size,
                        [self._models_dir / "onnx", self._state_dir / "onnx"],
                        batch_tokens=self.batch_tokens,
                        export=self._onnx_export,
                    )
                else:
                    self._backend = _FlagBackend(self.spec, self.device, self.batch_size)
            return self._backend

    @property
    def dim(self) -> int:
        """Dense vector size."""
        vectors, _ = self.load().encode(
            ["dimension probe"], query=False, gate=lambda: self.turns.hold(query=False)
        )
        return int(vectors.shape[1])

    def count_tokens(self, text: str) -> int:
        """Tokens in a text by the model's own tokenizer (no special tokens)."""
        return self.load().count_tokens(text)

    def embed_passages(
        self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None
    ) -> tuple[Vectors, list[Sparse] | None]:
        """Vectors (and sparse weights for BGE-M3) for passages, cache first, in batches."""
        backend = self.load()
        keys = [EmbeddingCache.key(self.name, t) for t in texts]
        cached = self.cache.get_many(keys)
        missing = sorted({i for i, k in enumerate(keys) if k not in cached}, key=keys.__getitem__)
        unique: dict[bytes, int] = {}
        for i in missing:
            unique.setdefault(keys[i], i)
        todo = sorted(unique.values(), key=lambda i: len(texts[i]))  # similar lengths together
        done = len(texts) - len(todo)
        step = max(self.batch_size * 4, 1)
        for start in range(0, len(todo), step):
            idx = todo[start : start + step]
            vectors, sparse = backend.encode(
                [texts[i] for i in idx], query=False, gate=lambda: self.turns.hold(query=False)
            )
            self.embedded += len(idx)
            entries = [
                (keys[i], vectors[n], sparse[n] if sparse else None) for n, i in enumerate(idx)
            ]
            self.cache.put_many(entries)
            cached.update({k: (v, s) for k, v, s in entries})
            done += len(idx)
            if progress:
                progress(min(done, len(texts)), len(texts))
        if progress and not todo:
            progress(len(texts), len(texts))
        dense = (
            np.stack([cached[k][0] for k in keys]).astype(np.float32)
            if keys
            else np.zeros((0, 0), dtype=np.float32)
        )
        sparse_out = [cached[k][1] or {} for k in keys] if self.sparse else None
        return dense, sparse_out

    def embed_query(self, text: str) -> tuple[Vectors, Sparse | None]:
        """A query's vector (with the model's query instruction) and, for BGE-M3, its weights."""
        backend = self.load()
        vectors, sparse = backend.encode([text], query=True, gate=lambda: self.turns.hold(True))
        return vectors[0], (sparse[0] if sparse else None)

    def lexical_score(self, query: Sparse, doc: Sparse) -> float:
        """BGE-M3 sparse matching score (0 for dense-only models)."""
        return self.load().lexical_score(query, doc)

    def close(self) -> None:
        """Close the cache file."""
        self.cache.close()


if __name__ == "__main__":  # the child of export_onnx_in_child: MODEL_DIR POOLING TARGET KIND
    _dir, _pooling, _target = sys.argv[1:4]
    export_onnx(
        ModelSpec(Path(_dir).name, Path(_dir), False, "cls" if _pooling == "cls" else "mean", None),
        Path(_target),
        fused=sys.argv[4:5] != ["plain"],
    )
