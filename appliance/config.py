"""Settings: one msgspec Struct tree <- salesboost.toml <- SALESBOOST__SECTION__KEY env.

Precedence, lowest first: the defaults written below, the TOML file, the environment.
Every field carries a description (``msgspec.Meta``); ``salesboost config docs`` renders
them into ``docs/configuration.md`` and a test keeps the two in agreement.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "SALESBOOST__"
DEFAULT_CONFIG_FILE = "salesboost.toml"


def _doc(text: str, **constraints: Any) -> msgspec.Meta:
    return msgspec.Meta(description=text, **constraints)


class ServerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The HTTP/WebSocket listener."""

    host: Annotated[str, _doc("Address to listen on; 0.0.0.0 serves the whole LAN.")] = "0.0.0.0"  # noqa: S104
    port: Annotated[int, _doc("TCP port to listen on.", ge=1, le=65535)] = 8000
    graceful_timeout_s: Annotated[
        int, _doc("On SIGTERM, seconds in-flight requests may take to finish.", ge=0)
    ] = 20
    max_body_bytes: Annotated[
        int,
        _doc(
            "Largest request body accepted; larger gets 413. Room for one document of"
            " knowledge.max_file_bytes and the form around it (`doctor` warns when it is not).",
            ge=1024,
        ),
    ] = 101 * 1024 * 1024
    tls_certfile: Annotated[str, _doc("PEM certificate for HTTPS; empty serves plain HTTP.")] = ""
    tls_keyfile: Annotated[str, _doc("PEM private key matching tls_certfile.")] = ""
    allowed_origins: Annotated[
        list[Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#*\s]+/?$")]],
        _doc(
            "Origins besides the appliance's own (scheme://host[:port], as a browser sends "
            "Origin; no path, no wildcard) whose pages may call the API: the same-origin check "
            "lets their POST/PATCH/DELETE requests and WebSockets through, and they get CORS "
            "headers (a preflight is answered without a login; methods GET, POST, PATCH, "
            "DELETE; request headers Authorization, Content-Type, X-Request-ID; X-Request-ID, "
            "Retry-After and Content-Disposition readable; no credentials, so such a page "
            "calls with 'Authorization: Bearer <token>', not the login cookie). Empty: only "
            "the appliance's own origin, and no CORS headers at all."
        ),
    ] = msgspec.field(default_factory=list)
    gc_freeze: Annotated[
        bool,
        _doc(
            "Once started (and again once the demo pack is in), move every object alive into "
            "the garbage collector's permanent generation, so that a later full collection "
            "does not walk the libraries and models again: a 0.3-0.5 s pause of every "
            "connection otherwise, on a 2-core box."
        ),
    ] = True


class PathsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where the appliance keeps its files."""

    state_dir: Annotated[
        str, _doc("State directory: SQLite database, sessions, uploads, LanceDB, file keyring.")
    ] = str(PROJECT_ROOT / "state")
    models_dir: Annotated[str, _doc("Directory holding model files and manifest.toml.")] = str(
        PROJECT_ROOT / "models"
    )


class LogConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Logging."""

    level: Annotated[
        Literal["debug", "info", "warning", "error"], _doc("Lowest level written.")
    ] = "info"
    json: Annotated[bool, _doc("One JSON object per line (true) or human-readable lines.")] = True
    access: Annotated[bool, _doc("Write one line per HTTP request.")] = True
    stall_s: Annotated[
        float,
        _doc(
            "Log it when the event loop is held this long (s): by Python code (with its "
            "stack) or by a garbage collection (with its generation). At most once a minute "
            "each.",
            ge=0.01,
        ),
    ] = 0.5


class AuthConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Logins, sessions, tokens and throttling."""

    session_max_age_s: Annotated[int, _doc("Browser session lifetime in seconds.", ge=60)] = (
        12 * 3600
    )
    secure_cookies: Annotated[
        Literal["auto", "always", "never"],
        _doc("Mark cookies Secure: auto = when TLS is configured."),
    ] = "auto"
    lockout_threshold: Annotated[
        int, _doc("Failed logins per user and IP that lock the pair out.", ge=1)
    ] = 5
    lockout_window_s: Annotated[int, _doc("Window in which failed logins are counted.", ge=1)] = 900
    lockout_s: Annotated[int, _doc("How long a locked user+IP pair must wait.", ge=1)] = 300
    login_rate_per_minute: Annotated[
        int, _doc("Login requests per minute per client IP (all users).", ge=1)
    ] = 30
    api_rate_per_minute: Annotated[
        int,
        _doc(
            "Requests per minute per client IP across the API (probes exempt); "
            "raise it when many browsers share one NAT address.",
            ge=1,
        ),
    ] = 12_000
    password_min_length: Annotated[int, _doc("Shortest password accepted.", ge=8)] = 10
    socket_recheck_s: Annotated[
        float,
        _doc(
            "How often an open WebSocket re-checks its login (disabled, password reset, token "
            "revoked, role or team changed) in any case. Changes made through this server's API "
            "close the user's sockets at once, and those the CLI makes within about a second "
            "(the server watches the database for another process's audited changes); this "
            "period is the backstop.",
            gt=0,
        ),
    ] = 30.0


class SecretsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where named secrets are read from, after $CREDENTIALS_DIRECTORY."""

    keyring: Annotated[
        Literal["auto", "system", "file"],
        _doc(
            "auto: the OS keyring if one is usable, else the file keyring in the state dir; "
            "system: the OS keyring only; file: the file keyring (keyrings.alt, mode 0600)."
        ),
    ] = "auto"


class ReadinessConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What /readyz demands."""

    min_free_disk_mb: Annotated[
        int, _doc("Free space the state dir needs to count as ready.", ge=0)
    ] = 512
    require_models: Annotated[
        bool, _doc("Not ready while a model in the manifest is missing or corrupt.")
    ] = True


class MetricsConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Prometheus metrics at /metrics."""

    enabled: Annotated[bool, _doc("Serve /metrics.")] = True
    public: Annotated[
        bool, _doc("Serve /metrics without login (for a scraper); false needs an admin.")
    ] = True


class LLMConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The language model runtime (llama.cpp in-process, or a remote OpenAI-compatible server)."""

    backend: Annotated[
        Literal["llama_cpp", "remote"],
        _doc("llama_cpp: the model runs in this process; remote: an OpenAI-compatible server."),
    ] = "llama_cpp"
    model: Annotated[
        str, _doc("Name of the chat model in models/manifest.toml (llama_cpp backend).")
    ] = "gemma3-270m-q4-k-m"
    context_tokens: Annotated[
        int, _doc("Context window of the shared llama.cpp context, all sequences together.", ge=512)
    ] = 32768
    batch_tokens: Annotated[int, _doc("Logical batch size (n_batch) for prefill.", ge=32)] = 512
    threads: Annotated[int, _doc("CPU threads for llama.cpp; 0 = physical cores.", ge=0)] = 0
    gpu_layers: Annotated[
        int, _doc("Layers offloaded to the GPU when the build supports it; -1 = all.", ge=-1)
    ] = -1
    exact_reuse: Annotated[
        bool,
        _doc(
            "Keep a reused KV prefix bit-identical to a cold prefill (no weight repacking, "
            "decode batches of at most 63 rows); false trades that for some prefill speed."
        ),
    ] = True
    max_sequences: Annotated[
        int, _doc("Sequences decoded together in one batch (concurrent generations).", ge=1)
    ] = 16
    kv_cache_type: Annotated[
        Literal["f16", "q8_0"],
        _doc(
            "Element type of the KV cache: q8_0 halves its memory (with flash attention); "
            "f16 is llama.cpp's default."
        ),
    ] = "f16"
    queue_max: Annotated[
        int, _doc("Requests waiting for a sequence before new ones get `busy`.", ge=0)
    ] = 64
    request_timeout_s: Annotated[
        float, _doc("Longest a generation may take, queueing included.", gt=0)
    ] = 120.0
    remote_url: Annotated[
        str, _doc("Base URL of the OpenAI-compatible server (…/v1) for the remote backend.")
    ] = ""
    remote_model: Annotated[str, _doc("Model name sent to the remote server.")] = ""
    remote_api: Annotated[
        Literal["chat", "completions"],
        _doc(
            "chat: /chat/completions with role messages; completions: /completions with the "
            "transcript prompt (base models served without a chat template)."
        ),
    ] = "chat"
    remote_json_format: Annotated[
        Literal["json_schema", "json_object", "none"],
        _doc(
            "How structured output is requested: json_schema (OpenAI, vLLM, llama-server), "
            "json_object with a schema (llama-cpp-python's server), none (validation only)."
        ),
    ] = "json_schema"
    remote_timeout_s: Annotated[
        float, _doc("Seconds the remote server may stay silent (connect, read, write).", gt=0)
    ] = 30.0
    remote_api_key_secret: Annotated[
        str, _doc("Name of the secret holding the remote server's API key (empty: none).")
    ] = "llm_remote_api_key"  # noqa: S105 - the secret's name, not a secret
    remote_context_tokens: Annotated[
        int,
        _doc(
            "Context window of the remote model in tokens, for trimming long prompts; 0 = as "
            "the server reports it (vLLM max_model_len, llama-server n_ctx), else 4096. Set it "
            "for llama-cpp-python's server, which does not report it.",
            ge=0,
        ),
    ] = 0
    remote_tokenizer: Annotated[
        Literal["auto", "estimate"],
        _doc(
            "How prompt tokens are counted for trimming: auto = the server's tokenize endpoint "
            "when it has one (llama-cpp-python, llama-server, vLLM), else an estimate; "
            "estimate = one token per 3 UTF-8 bytes (over-counts English, so it trims early)."
        ),
    ] = "auto"
    breaker_failures: Annotated[
        int, _doc("Consecutive failures that open the backend's circuit breaker.", ge=1)
    ] = 5
    breaker_reset_s: Annotated[
        float, _doc("Seconds an open breaker waits before a half-open probe.", gt=0)
    ] = 15.0


class RealtimeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Practice sessions over WebSocket: message limits, heartbeat, per-connection throttling."""

    max_message_chars: Annotated[
        int, _doc("Longest trainee line accepted (characters); longer -> message_too_long.", ge=1)
    ] = 2000
    max_frame_bytes: Annotated[
        int, _doc("Largest WebSocket frame the handlers decode; larger -> bad_frame.", ge=256)
    ] = 16384
    idle_timeout_s: Annotated[
        float,
        _doc("Close a practice connection that sent nothing (not even ping) for this long.", gt=0),
    ] = 120.0
    rate_per_s: Annotated[
        float, _doc("Frames per second a connection may send, sustained (token bucket).", gt=0)
    ] = 5.0
    rate_burst: Annotated[
        int, _doc("Frames a connection may send in a burst above the sustained rate.", ge=1)
    ] = 20
    backlog: Annotated[
        int,
        _doc(
            "Events queued for a slow connection; past it deltas are dropped, and a connection "
            "still behind is closed (it resumes from the event log on reconnect).",
            ge=8,
        ),
    ] = 512
    report_attempts: Annotated[
        int, _doc("Tries at generating an end-of-session report before leaving it pending.", ge=1)
    ] = 3


class KnowledgeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Document ingestion, OCR, chunking, embedding and search."""

    max_file_bytes: Annotated[int, _doc("Largest document accepted.", ge=1024)] = 100 * 1024 * 1024
    max_pages: Annotated[int, _doc("Most pages a document may have.", ge=1)] = 2000
    max_image_pixels: Annotated[
        int, _doc("Largest image (width x height) decoded; bigger is `too_large`.", ge=1)
    ] = 80_000_000
    max_unzipped_bytes: Annotated[
        int,
        _doc("Most bytes a DOCX/XLSX may unpack to (zip-bomb cap); more is `too_large`.", ge=1024),
    ] = 1024 * 1024 * 1024
    max_zip_ratio: Annotated[
        float,
        _doc(
            "Highest unpacked/packed ratio of a DOCX/XLSX member over 1 MiB (zip-bomb cap).", ge=1
        ),
    ] = 200.0
    ocr_dpi: Annotated[
        int, _doc("Resolution PDF pages are rendered at for OCR.", ge=50, le=600)
    ] = 150
    ocr_min_chars: Annotated[
        int, _doc("A PDF page with fewer text-layer characters than this is OCRed.", ge=0)
    ] = 40
    ocr_image_coverage: Annotated[
        float,
        _doc(
            "A PDF page whose images cover at least this share of it is 'mostly image' and is"
            " OCRed unless its text layer has `ocr_image_page_chars` characters or more.",
            ge=0,
            le=1,
        ),
    ] = 0.5
    ocr_image_page_chars: Annotated[
        int, _doc("Text-layer characters that make a mostly-image PDF page keep its text.", ge=0)
    ] = 400
    ocr_threads: Annotated[
        int, _doc("onnxruntime threads for OCR; 0 = one per CPU core.", ge=0)
    ] = 0
    ocr_det_limit_side_len: Annotated[
        int,
        _doc("Longest side (pixels) an image is scaled down to for text detection.", ge=320),
    ] = 1280
    ocr_use_cls: Annotated[
        bool, _doc("Run the text-direction classifier (for upside-down scans; slower).")
    ] = False
    ocr_squeeze: Annotated[
        float,
        _doc(
            "Horizontal scale of the page for text detection and of Latin text lines (each line"
            " is cut from the full page and narrowed): recognition time grows with line width;"
            " 1 = none.",
            gt=0.3,
            le=1,
        ),
    ] = 0.6
    ocr_squeeze_cjk: Annotated[
        float,
        _doc(
            "Horizontal scale of text lines on a page that reads as Chinese/Japanese/Korean"
            " (square glyphs need about half the width per character of Latin text); lines"
            " that read as mostly Latin there are read again at the Latin scale.",
            gt=0.2,
            le=1,
        ),
    ] = 0.4
    ocr_low_confidence: Annotated[
        float, _doc("Pages whose mean OCR line confidence is below this are flagged.", ge=0, le=1)
    ] = 0.75
    ocr_idle_release_s: Annotated[
        float,
        _doc(
            "Release the OCR models (onnxruntime sessions, ~0.3 GB) after this many seconds"
            " without a page; they load again on the next page. 0 = keep them loaded.",
            ge=0,
        ),
    ] = 120.0
    parent_tokens: Annotated[
        int, _doc("Target size of a parent chunk (what the LLM gets).", ge=32)
    ] = 512
    child_tokens: Annotated[
        int, _doc("Target size of a child chunk (what is embedded).", ge=16)
    ] = 128
    child_overlap_tokens: Annotated[int, _doc("Overlap between neighbouring children.", ge=0)] = 24
    embedding_model: Annotated[
        str, _doc("Name of the embedding model in models/manifest.toml.")
    ] = "all-minilm-l6-v2"
    embedding_device: Annotated[
        Literal["auto", "cpu", "cuda"], _doc("Where embeddings run; auto = CUDA when present.")
    ] = "auto"
    embedding_batch_size: Annotated[int, _doc("Texts per embedding batch.", ge=1)] = 64
    embedding_batch_tokens: Annotated[
        int,
        _doc(
            "ONNX path: most tokens in one model call, counting padding (texts of similar"
            " length are batched together, at most embedding_batch_size of them). Small batches"
            " stay in the CPU cache: on 2 cores 512 ran 1.15x faster than 64 texts a batch on"
            " ~85-token chunks and 1.8x on mixed lengths (256 to 4096 measured; 512-1024 best)."
            " 0 = batches of embedding_batch_size texts.",
            ge=0,
        ),
    ] = 512
    embedding_backend: Annotated[
        Literal["auto", "flagembedding", "onnx"],
        _doc(
            "flagembedding: FlagEmbedding on torch; onnx: the model exported locally to ONNX"
            " on first use and run on onnxruntime (same vectors; on a 2-core CPU a query takes"
            " 3 ms instead of 22 ms, passages run at the same speed; not for BGE-M3);"
            " auto: onnx on a CPU, else flagembedding."
        ),
    ] = "auto"
    reranker_model: Annotated[
        str,
        _doc("Name of a reranker in models/manifest.toml (role reranker); empty = no reranking."),
    ] = ""
    workers: Annotated[int, _doc("Ingestion jobs processed at the same time.", ge=1)] = 2
    vector_index_min_rows: Annotated[
        int,
        _doc("Build an ANN vector index in the background once a table has this many rows.", ge=1),
    ] = 100_000
    vector_index_type: Annotated[
        Literal["IVF_FLAT", "IVF_PQ"],
        _doc(
            "ANN index kind: IVF_FLAT keeps exact vectors (fast and exact within the searched"
            " partitions; 1.5 KB a child at 384 dims); IVF_PQ compresses them to 24 bytes"
            " (for millions of children; approximate, see search_refine_factor)."
        ),
    ] = "IVF_FLAT"
    rrf_k: Annotated[int, _doc("Reciprocal-rank-fusion constant for hybrid search.", ge=1)] = 60
    search_k: Annotated[
        int, _doc("Results returned by search when k is not given.", ge=1, le=100)
    ] = 8
    search_candidates: Annotated[
        int, _doc("Candidates each search mode (dense, full-text) contributes before fusion.", ge=1)
    ] = 50
    search_nprobes: Annotated[
        int,
        _doc(
            "IVF partitions the ANN vector index searches per query (more: better recall, slower).",
            ge=1,
        ),
    ] = 32
    search_refine_factor: Annotated[
        int,
        _doc(
            "IVF_PQ only: re-score candidates x this many hits on exact vectors; 0 = off.",
            ge=0,
        ),
    ] = 4


class DemoConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The bundled demo pack (a credit card, personas, scenarios, rubric, rules, documents)."""

    load_on_empty: Annotated[
        bool,
        _doc(
            "At `serve` start, load the demo pack when the practice tables are empty; its"
            " documents are ingested in the background (readiness does not wait)."
        ),
    ] = True
    collection: Annotated[
        str, _doc("Knowledge collection the demo documents go to and its scenarios search.")
    ] = "demo"


class IntentConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The local intent classifier (appliance.practice.agents.intent)."""

    features: Annotated[
        Literal["chars", "chars+embedding"],
        _doc(
            "chars: character n-grams only; chars+embedding: plus the MiniLM vector of English"
            " text (see `salesboost bench intent`). A change retrains the model at start."
        ),
    ] = "chars"
    min_confidence: Annotated[
        float, _doc("Below this top probability an utterance is labelled `unclear`.", ge=0, le=1)
    ] = 0.25


class PracticeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Practice sessions: the customer, the coach, the evaluator and their tools."""

    npc_max_tokens: Annotated[
        int,
        _doc(
            "Length of a customer (NPC) reply, in tokens: past it the reply ends at its next "
            "sentence end.",
            ge=8,
            le=512,
        ),
    ] = 60
    npc_finish_tokens: Annotated[
        int,
        _doc(
            "Tokens a customer reply may run past `npc_max_tokens` to finish its sentence; a "
            "sentence still unfinished there is dropped, never shown.",
            ge=0,
            le=256,
        ),
    ] = 32
    npc_temperature: Annotated[
        float, _doc("Sampling temperature of the customer's replies (0 = greedy).", ge=0, le=2)
    ] = 0.7
    coach_max_tokens: Annotated[
        int, _doc("Longest coach script example, in tokens.", ge=8, le=512)
    ] = 48
    coach_timeout_s: Annotated[
        float, _doc("Longest the coach's script generation may take, queueing included.", gt=0)
    ] = 20.0
    evaluator_max_tokens: Annotated[
        int, _doc("Token budget of the end-of-session report's JSON.", ge=128)
    ] = 700
    evaluator_timeout_s: Annotated[
        float, _doc("Longest one report generation may take, queueing included.", gt=0)
    ] = 180.0
    tool_timeout_s: Annotated[
        float, _doc("Per-call timeout of a coach tool (knowledge search, fee calculator...).", gt=0)
    ] = 3.0
    tool_concurrency: Annotated[
        int, _doc("Read-only tool calls run at the same time (all sessions together).", ge=1)
    ] = 4
    tool_breaker_failures: Annotated[
        int, _doc("Consecutive failures of one tool that open its circuit breaker.", ge=1)
    ] = 3
    tool_breaker_reset_s: Annotated[
        float, _doc("Seconds an open tool breaker waits before a half-open probe.", gt=0)
    ] = 30.0
    coach_search_k: Annotated[
        int, _doc("Knowledge search results the coach's tool returns.", ge=1, le=20)
    ] = 3
    idle_end_minutes: Annotated[
        float,
        _doc(
            "A live session with no trainee line for this many minutes (counted from its "
            "last turn, or its start) is ended by the server with reason `idle`, and its "
            "report written (not scored when it had no turns). 0 leaves sessions open until "
            "someone ends them.",
            ge=0,
            le=10080,
        ),
    ] = 60.0
    idle_check_interval_s: Annotated[
        float, _doc("Seconds between two checks for idle sessions (idle_end_minutes > 0).", gt=0)
    ] = 60.0
    retention_days: Annotated[
        int,
        _doc(
            "Days an ended practice session (transcript, events, report, tool calls) is kept "
            "after it ended; older ones are deleted by a background sweep (hourly and at "
            "start). 0 keeps them forever.",
            ge=0,
            le=36500,
        ),
    ] = 0
    retention_sweep_interval_s: Annotated[
        float, _doc("Seconds between two retention sweeps (with retention_days > 0).", ge=1)
    ] = 3600.0
    retention_batch: Annotated[
        int,
        _doc(
            "Sessions deleted per write transaction by the retention sweep and "
            "`sessions purge` (small batches keep the SQLite write lock short).",
            ge=1,
            le=10000,
        ),
    ] = 100


class BackupConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Scheduled backups the server writes itself (the archive of `salesboost backup`)."""

    dir: Annotated[
        str,
        _doc(
            "Directory the server writes a backup archive into on a schedule: another disk or "
            "a mounted share, not the state directory's disk. Empty turns scheduled backups off."
        ),
    ] = ""
    every_hours: Annotated[
        float, _doc("Hours between two scheduled backups (counted from the newest one).", gt=0)
    ] = 24.0
    keep: Annotated[
        int, _doc("Scheduled archives kept in `dir`; older ones are deleted.", ge=1, le=1000)
    ] = 7
    with_secrets: Annotated[
        bool,
        _doc(
            "Put the file keyring in the archives (the session key and any remote LLM key, in "
            "plain text), as `salesboost backup --with-secrets` does."
        ),
    ] = False
    first_delay_s: Annotated[
        float,
        _doc("Seconds after start before the first backup when `dir` holds none yet.", ge=0),
    ] = 300.0
    retry_minutes: Annotated[
        float, _doc("Minutes before another try after a failed scheduled backup.", gt=0)
    ] = 60.0


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole configuration."""

    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    paths: PathsConfig = msgspec.field(default_factory=PathsConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    secrets: SecretsConfig = msgspec.field(default_factory=SecretsConfig)
    readiness: ReadinessConfig = msgspec.field(default_factory=ReadinessConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    llm: LLMConfig = msgspec.field(default_factory=LLMConfig)
    knowledge: KnowledgeConfig = msgspec.field(default_factory=KnowledgeConfig)
    realtime: RealtimeConfig = msgspec.field(default_factory=RealtimeConfig)
    demo: DemoConfig = msgspec.field(default_factory=DemoConfig)
    intent: IntentConfig = msgspec.field(default_factory=IntentConfig)
    practice: PracticeConfig = msgspec.field(default_factory=PracticeConfig)
    backup: BackupConfig = msgspec.field(default_factory=BackupConfig)

    @property
    def state_dir(self) -> Path:
        """The state directory as a Path."""
        return Path(self.paths.state_dir)

    @property
    def models_dir(self) -> Path:
        """The models directory as a Path."""
        return Path(self.paths.models_dir)

    @property
    def db_path(self) -> Path:
        """The SQLite database file."""
        return self.state_dir / "salesboost.db"

    @property
    def tls(self) -> bool:
        """Whether the server speaks HTTPS itself."""
        return bool(self.server.tls_certfile)


class ConfigError(Exception):
    """A configuration value is wrong; ``key`` names its path (``server.port``)."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"config error at {key or '(root)'}: {why}")
        self.key = key
        self.why = why


Source = Literal["default", "file", "env", "cli"]


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each leaf value came from."""

    settings: Settings
    sources: dict[str, Source]
    file: Path | None


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(path), "is a section, not a value")
        node = child
    node[path[-1]] = value


def _env_value(raw: str) -> Any:
    text = raw.strip()
    if text.startswith(("[", "{")):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return raw
    return raw


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """Turn SALESBOOST__SECTION__KEY variables into a nested dict of raw strings."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(path) < 2:
            raise ConfigError(name, "environment overrides need SALESBOOST__SECTION__KEY")
        _set_path(tree, path, _env_value(raw))
    return tree


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _leaves(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaves(value, path + ".")
        else:
            yield path, value


def _error_key(err: msgspec.ValidationError) -> tuple[str, str]:
    text = str(err)
    key = ""
    if " - at `$." in text:
        text, _, where = text.rpartition(" - at `$.")
        key = where.rstrip("`")
    if text.startswith("Object contains unknown field `"):
        field = text.split("`")[1]
        key = f"{key}.{field}" if key else field
        text = "unknown key"
    return key, text


def _convert(tree: Mapping[str, Any], strict: bool) -> Settings:
    try:
        return msgspec.convert(tree, Settings, strict=strict)
    except msgspec.ValidationError as err:
        key, why = _error_key(err)
        raise ConfigError(key, why) from None


def load_settings(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """Build the effective settings; raises ConfigError naming the bad key."""
    environ = os.environ if environ is None else environ
    if config_file is None:
        env_file = environ.get("SALESBOOST_CONFIG")
        if env_file:
            config_file = Path(env_file)
        elif Path(DEFAULT_CONFIG_FILE).is_file():
            config_file = Path(DEFAULT_CONFIG_FILE)
    file_tree: dict[str, Any] = {}
    if config_file is not None:
        try:
            file_tree = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("", f"config file {config_file} does not exist") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError("", f"{config_file} is not valid TOML: {err}") from None
        _convert(file_tree, strict=True)  # type errors in the file are reported as such
    env_tree = env_overrides(environ)
    cli_tree: dict[str, Any] = {}
    for dotted, value in (cli or {}).items():
        if value is not None:
            _set_path(cli_tree, dotted.split("."), value)
    merged = _merge(_merge(file_tree, env_tree), cli_tree)
    settings = _convert(merged, strict=False)
    sources: dict[str, Source] = {key: "default" for key, _ in _leaves(to_tree(settings))}
    for layer, name in ((file_tree, "file"), (env_tree, "env"), (cli_tree, "cli")):
        for key, _ in _leaves(layer):
            sources[key] = name  # type: ignore[assignment]
    return LoadedSettings(settings=settings, sources=sources, file=config_file)


def to_tree(settings: Settings) -> dict[str, Any]:
    """The settings as plain nested dicts."""
    tree: dict[str, Any] = msgspec.to_builtins(settings)
    return tree


def describe_fields() -> list[tuple[str, str, Any, str]]:
    """Every leaf key as (dotted key, type, default, description), in declaration order."""
    rows: list[tuple[str, str, Any, str]] = []
    defaults = to_tree(Settings())
    for section in msgspec.structs.fields(Settings):
        section_type = section.type
        section_info = msgspec.inspect.type_info(section_type)
        assert isinstance(section_info, msgspec.inspect.StructType)
        for info in section_info.fields:
            key = f"{section.name}.{info.name}"
            schema = getattr(info.type, "extra_json_schema", None) or {}
            description = str(schema.get("description", ""))
            rows.append(
                (key, _type_name(info.type), defaults[section.name][info.name], description)
            )
    return rows


def _type_name(info: msgspec.inspect.Type) -> str:
    inner = info
    if isinstance(inner, msgspec.inspect.Metadata):
        inner = inner.type
    if isinstance(inner, msgspec.inspect.LiteralType):
        return " | ".join(repr(v) for v in inner.values)
    if isinstance(inner, msgspec.inspect.ListType):
        return f"list[{_type_name(inner.item_type)}]"
    return type(inner).__name__.removesuffix("Type").lower()
