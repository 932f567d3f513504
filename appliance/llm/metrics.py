"""Prometheus metrics of the LLM runtime (the default registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TTFT = Histogram(
    "salesboost_llm_ttft_seconds",
    "Time from a request to its first generated token.",
    ["backend", "priority"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
GENERATED_TOKENS = Counter(
    "salesboost_llm_generated_tokens",
    "Tokens generated (rate() of this is tokens/s).",
    ["backend"],
)
PROMPT_TOKENS_EVALUATED = Counter(
    "salesboost_llm_prompt_tokens_evaluated",
    "Prompt tokens evaluated (not served from a reused KV prefix).",
    ["backend"],
)
PROMPT_TOKENS_CACHED = Counter(
    "salesboost_llm_prompt_tokens_cached",
    "Prompt tokens served from a reused KV prefix.",
    ["backend"],
)
QUEUE_DEPTH = Gauge(
    "salesboost_llm_queue_depth", "Requests waiting for a sequence.", ["backend", "priority"]
)
ACTIVE_SEQUENCES = Gauge(
    "salesboost_llm_active_sequences", "Sequences being prefilled or decoded.", ["backend"]
)
PARKED_KV_BYTES = Gauge(
    "salesboost_llm_parked_kv_bytes",
    "KV of idle sessions kept in RAM for their next turn (dropped when a session ends).",
    ["backend"],
)
KV_HITS = Counter(
    "salesboost_llm_kv_reuse_hits",
    "Requests that found their session's KV prefix in a sequence slot.",
    ["backend"],
)
KV_MISSES = Counter(
    "salesboost_llm_kv_reuse_misses",
    "Requests with a session key whose KV prefix was not cached (full prefill).",
    ["backend"],
)
REQUESTS = Counter(
    "salesboost_llm_requests", "Finished requests by outcome.", ["backend", "outcome"]
)
BREAKER_STATE = Gauge(
    "salesboost_llm_breaker_open",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["backend"],
)
