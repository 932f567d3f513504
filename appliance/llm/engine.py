"""The llama.cpp core: one model, one context, one KV sequence slot per live session.

Everything here runs on the decode thread (see :mod:`appliance.llm.scheduler`) except
``load``/``close`` and the read-only tokenizer calls.

Design (measured in BENCHMARKS.md, "LLM"):

- One context with ``n_seq_max = llm.max_sequences`` and a *non-unified* KV cache: each
  sequence gets ``context_tokens / max_sequences`` cells and attention only reads its own
  cells. On the 2-core dev box that gave 2.5x aggregate decode at 16 streams against 1.8x
  with a unified cache. ``swa_full`` keeps the whole sliding-window cache so a sequence's
  tail can be removed and re-evaluated (partial ``llama_memory_seq_rm``).
- Exactness (``llm.exact_reuse``): a reused prefix must give the same greedy output as a
  cold prefill. llama.cpp's CPU kernels take one path for batches under 8 rows, another from
  8 to 63 rows and a third from 64 rows, and they round differently; the repacked
  (``use_extra_bufts``) kernels also round differently with the chunk split. Measured on the
  bundled model: with repacking off, any split of a prompt into chunks of 8..63 rows gives
  bit-identical logits. So in exact mode weights are not repacked, each llama_decode carries
  at most :data:`EXACT_MAX_ROWS` rows, every prefill chunk has at least :data:`MIN_CHUNK`
  rows, and when a request ends its generated tokens' KV (computed a row at a time) is
  dropped: the next turn re-evaluates the reply as part of its new prompt tokens. The cost
  is some prefill throughput (see BENCHMARKS.md); ``exact_reuse = false`` lifts the caps.
- A slot remembers the tokens in its KV cells. A request for the same session key takes its
  slot back and evaluates only the tokens past the common prefix; other requests take an
  idle slot (unowned first, then least recently used: LRU eviction). A miss is a full
  prefill and still correct. The KV memory budget is ``llm.context_tokens``.
- Idle slots are parked: on release the sequence's KV is copied to RAM
  (``llama_state_seq_get_data``) and its cells are freed; the next request that takes the
  slot and keeps a prefix restores it (``llama_state_seq_set_data``). With a non-unified
  cache a decode step attends over every sequence id from the lowest to the highest active
  one, over as many cells as the fullest holds, so an idle session's ~900-token prefix left
  in the cache made every concurrent step several times dearer (BENCHMARKS.md, "LLM").
  The cost of the span is measured even with the idle ids' cells empty, so a request also
  takes the lowest free sequence id (an idle slot's KV is in RAM, so ids can be traded).
- Each ``llama_decode`` carries one token for every generating sequence plus prefill chunks
  of the others (continuous batching, like llama.cpp's server slots); logits are requested
  only for each sequence's last token. Greedy sampling is an argmax over the row of logits
  read in place (no copy of the 262k-entry vocabulary into Python objects); temperature
  sampling and grammars use llama.cpp's sampler chain.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
import math
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from appliance.config import LLMConfig
from appliance.llm.errors import LLMError, SchemaError

log = logging.getLogger(__name__)

MIN_CHUNK = 8
"""Fewest rows in a prefill chunk (see the module docstring: exactness of reuse)."""
EXACT_MAX_ROWS = 63
"""Most rows in one llama_decode in exact mode (the 8..63-row kernel path)."""
_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])


def physical_cores() -> int:
    """Physical CPU cores (llama.cpp runs best with one thread per core)."""
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass
class Slot:
    """A KV sequence: the tokens its cells hold, and which session owns it."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    owner: str = ""
    busy: bool = False
    last_used: float = 0.0
    parked: Any = None
    """While idle: the sequence's KV state in RAM (``llama_state_seq_get_data``), its cells freed."""


class Job:
    """One generation as the decode thread sees it."""

    def __init__(
        self,
        *,
        prompt: list[int],
        stops: list[str],
        max_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        grammar: str | None = None,
        priority: int = 0,
        session_key: str = "",
        reuse_kv: bool = True,
        deadline: float = math.inf,
        strip_leading: bool = True,
        emit: Callable[[Any], None] = lambda _: None,
    ) -> None:
        self.prompt = prompt
        self.stops = [s for s in stops if s]
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.seed = seed
        self.grammar = grammar
        self.priority = priority
        self.session_key = session_key
        self.reuse_kv = reuse_kv
        self.deadline = deadline
        self.strip_leading = strip_leading
        self.emit = emit
        self.cancelled = False
        self.submitted = time.monotonic()
        self.first_token_at = 0.0
        # decode-thread state
        self.slot: Slot | None = None
        self.todo: list[int] = []
        self.generating = False
        self.cached = 0
        self.evaluated_prompt = 0
        self.generated = 0
        self.text: list[str] = []
        self._pending = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.sampler: Any = None
        self.grammar_sampler: Any = None
        self.finish_reason = ""

    def _emit_text(self, text: str) -> None:
        if text:
            self.text.append(text)
            self.emit(text)

    def accept(self, piece: bytes, eog: bool) -> bool:
        """Take one sampled token's bytes; emit what is safe to show; True when finished."""
        if eog:
            self._flush()
            self.finish_reason = "stop"
            return True
        self.generated += 1
        self._pending += self._decoder.decode(piece)
        if self.strip_leading and not self.text:
            self._pending = self._pending.lstrip()
        cut = min((i for s in self.stops if (i := self._pending.find(s)) >= 0), default=-1)
        if cut >= 0:
            self._emit_text(self._pending[:cut])
            self._pending = ""
            self.finish_reason = "stop"
            return True
        hold = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(self._pending)), hold, -1):
                if self._pending.endswith(stop[:k]):
                    hold = k
                    break
        ready = len(self._pending) - hold
        self._emit_text(self._pending[:ready])
        self._pending = self._pending[ready:]
        if self.generated >= self.max_tokens:
            self._flush()
            self.finish_reason = "length"
            return True
        return False

    def _flush(self) -> None:
        self._pending += self._decoder.decode(b"", final=True)
        self._emit_text(self._pending)
        self._pending = ""


class EngineError(LLMError):
    """llama_decode failed for a batch."""


class LlamaEngine:
    """The model, its context, the sequence slots and one batched decode step."""

    def __init__(self, model_path: Path, config: LLMConfig) -> None:
        self.model_path = model_path
        self.config = config
        self.model: Any = None
        self.ctx: Any = None
        self.mem: Any = None
        self.vocab: Any = None
        self.n_vocab = 0
        self.n_ctx_seq = 0
        self.slots: list[Slot] = []
        self.metadata: dict[str, str] = {}
        self.gpu_offload = False
        self.threads = 0
        self.evaluated_tokens = 0
        """Every token llama_decode evaluated (prompt and generated), for tests and benchmarks."""
        self.prompt_tokens_evaluated = 0
        self.decode_calls = 0
        self.decode_retries = 0
        """Failed batches retried one job per llama_decode (see :meth:`step`)."""
        self.failed: list[tuple[Job, EngineError]] = []
        """Jobs the last :meth:`step` dropped, with why."""
        self._batch: Any = None
        self._batch_cap = 0
        self._one = np.zeros(1, dtype=_TOKEN_DATA)
        self._all: Any = None

    # --- life cycle ------------------------------------------------------------------
    def load(self) -> None:
        """Load the model (mmap) and create the context; blocking."""
        # llama-cpp-python prints llama.cpp's log unless its logger's level says otherwise
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        llama_cpp.llama_backend_init()
        mp = llama_cpp.llama_model_default_params()
        mp.use_mmap = True
        # repacked weights break reuse exactness (module docstring)
        mp.use_extra_bufts = not self.config.exact_reuse
        self.gpu_offload = bool(llama_cpp.llama_supports_gpu_offload())
        if self.gpu_offload:
            mp.n_gpu_layers = 10_000 if self.config.gpu_layers < 0 else self.config.gpu_layers
        else:
            mp.n_gpu_layers = 0
        model = llama_cpp.llama_model_load_from_file(str(self.model_path).encode(), mp)
        if not model:
            raise LLMError(f"llama.cpp could not load the model {self.model_path}")
        self.model = model
        self.vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.metadata = self._read_metadata()
        cp = llama_cpp.llama_context_default_params()
        cp.n_ctx = self.config.context_tokens
        cp.n_batch = self.config.batch_tokens
        cp.n_ubatch = self.config.batch_tokens
        cp.n_seq_max = self.config.max_sequences
        self.threads = self.config.threads or physical_cores()
        cp.n_threads = self.threads
        cp.n_threads_batch = self.threads
        cp.kv_unified = False
        if self.config.kv_cache_type == "q8_0":  # a quantized V cache needs flash attention
            cp.type_k = cp.type_v = llama_cpp.GGML_TYPE_Q8_0
            cp.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cp.swa_full = True
        cp.no_perf = True
        ctx = llama_cpp.llama_init_from_model(model, cp)
        if not ctx:
            llama_cpp.llama_model_free(model)
            self.model = None
            raise LLMError(
                f"llama.cpp could not create a context of {cp.n_ctx} tokens for {self.model_path}"
            )
        self.ctx = ctx
        self.mem = llama_cpp.llama_get_memory(ctx)
        self.n_ctx_seq = llama_cpp.llama_n_ctx_seq(ctx)
        self._batch_cap = max(self.config.batch_tokens, self.config.max_sequences)
        self._batch = llama_cpp.llama_batch_init(self._batch_cap, 0, 1)
        self.slots = [Slot(seq=i) for i in range(self.config.max_sequences)]
        self._all = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
        self._all["id"] = np.arange(self.n_vocab, dtype=np.int32)

    def close(self) -> None:
        """Free the context and the model."""
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self.ctx is not None:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model is not None:
            llama_cpp.llama_model_free(self.model)
            self.model = None

    def _read_metadata(self) -> dict[str, str]:
        out: dict[str, str] = {}
        buf = ctypes.create_string_buffer(1 << 20)
        for i in range(llama_cpp.llama_model_meta_count(self.model)):
            n = llama_cpp.llama_model_meta_key_by_index(self.model, i, buf, len(buf))
            if n < 0:
                continue
            key = buf.value.decode("utf-8", "replace")
            if key.startswith("tokenizer.ggml."):
                continue
            n = llama_cpp.llama_model_meta_val_str_by_index(self.model, i, buf, len(buf))
            if n >= 0:
                out[key] = buf.value.decode("utf-8", "replace")
        return out

    # --- tokens ----------------------------------------------------------------------
    def tokenize(self, text: str, add_bos: bool = True, special: bool = False) -> list[int]:
        """Text -> tokens (BOS when the model wants one and ``add_bos``)."""
        data = text.encode("utf-8")
        cap = len(data) + 8
        arr = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), arr, cap, add_bos, special)
        if n < 0:
            cap = -n
            arr = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), arr, cap, add_bos, special)
        return list(arr[:n])

    def piece(self, token: int, special: bool = False) -> bytes:
        """A token's bytes."""
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def token_text(self, token: int) -> str:
        """A special token's text (BOS/EOS for chat templates)."""
        return self.piece(token, special=True).decode("utf-8", "replace")

    def detokenize(self, tokens: list[int]) -> str:
        """Tokens -> text."""
        return b"".join(self.piece(t) for t in tokens).decode("utf-8", "replace")

    def is_eog(self, token: int) -> bool:
        """End-of-generation token (EOS, end of turn)."""
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def check_grammar(self, gbnf: str) -> None:
        """Parse a grammar with llama.cpp's own parser; SchemaError if it refuses it."""
        smpl = llama_cpp.llama_sampler_init_grammar(self.vocab, gbnf.encode(), b"root")
        if not smpl:
            raise SchemaError("llama.cpp rejected the grammar generated for this schema")
        llama_cpp.llama_sampler_free(smpl)

    # --- slots -----------------------------------------------------------------------
    def idle_slots(self) -> int:
        """Slots not serving a request."""
        return sum(1 for s in self.slots if not s.busy)

    def acquire(self, job: Job) -> bool | None:
        """Give ``job`` a slot, keeping the reusable KV prefix; returns whether its session hit.

        None when the job has no session key (no hit or miss to count).
        """
        idle = [s for s in self.slots if not s.busy]
        assert idle, "acquire() without an idle slot"
        # first, so that a rejected grammar leaves every slot as it was (a parked prefix
        # restored for nothing would keep its cells and widen every decode step)
        self._make_samplers(job)
        owned = [s for s in idle if job.session_key and s.owner == job.session_key]
        if owned:
            slot = owned[0]
        else:
            free = [s for s in idle if not s.owner] or idle
            if job.reuse_kv:
                slot = max(free, key=lambda s: (common_prefix(s.tokens, job.prompt), -s.last_used))
            else:
                slot = min(free, key=lambda s: s.last_used)
        # idle slots hold no KV cells (parked), so their sequence ids can be traded: the job
        # takes the lowest free id and active sequences stay in a compact range of ids
        low = min(idle, key=lambda s: s.seq)
        if low is not slot and all(s.parked is not None or not s.tokens for s in (low, slot)):
            low.seq, slot.seq = slot.seq, low.seq
        keep = common_prefix(slot.tokens, job.prompt) if job.reuse_kv else 0
        if slot.parked is not None:
            parked, slot.parked = slot.parked, None
            if keep <= 0 or not llama_cpp.llama_state_seq_set_data(
                self.ctx, parked, len(parked), slot.seq
            ):
                llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
                slot.tokens.clear()
                keep = 0
        if self.config.exact_reuse:
            keep = max(0, min(keep, len(job.prompt) - MIN_CHUNK))  # a full-size last chunk
        else:
            keep = min(keep, len(job.prompt) - 1)  # at least one token, for its logits
        if keep < len(slot.tokens):
            if not llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, keep, -1):
                llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
                keep = 0
            del slot.tokens[keep:]
        slot.owner = job.session_key
        slot.busy = True
        job.slot = slot
        job.cached = keep
        job.todo = job.prompt[keep:]
        if not job.session_key:
            return None
        return bool(owned) and keep > 0

    def release(self, job: Job) -> None:
        """Give the job's slot back (its KV prefix stays for the session's next turn)."""
        slot = job.slot
        if slot is not None:
            prompt_end = len(job.prompt)
            if (
                self.config.exact_reuse and len(slot.tokens) > prompt_end
            ):  # drop the generated tokens' KV (docstring)
                if llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, prompt_end, -1):
                    del slot.tokens[prompt_end:]
                else:
                    self._forget(slot)
            self._park(slot)
            slot.busy = False
            slot.last_used = time.monotonic()
            job.slot = None
        for attr in ("sampler", "grammar_sampler"):
            smpl = getattr(job, attr)
            if smpl is not None:
                llama_cpp.llama_sampler_free(smpl)
                setattr(job, attr, None)

    def parked_bytes(self) -> int:
        """RAM held by the idle slots' parked KV."""
        return sum(len(s.parked) for s in self.slots if s.parked is not None)

    def forget_sessions(self, keys: Collection[str]) -> int:
        """Drop the KV of the idle slots these session keys own (their sessions ended): the
        parked copy in RAM is freed at once and the slot is free for any session. A slot busy
        with one of them keeps it until released. Decode thread only. Returns how many."""
        dropped = 0
        for slot in self.slots:
            if not slot.busy and slot.owner and slot.owner in keys:
                self._forget(slot)
                dropped += 1
        return dropped

    def _forget(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        slot.tokens.clear()
        slot.owner = ""
        slot.parked = None

    def _park(self, slot: Slot) -> None:
        """Move an idle slot's KV to RAM and free its cells (module docstring)."""
        if not slot.tokens:
            return
        size = llama_cpp.llama_state_seq_get_size(self.ctx, slot.seq)
        buf = (ctypes.c_uint8 * size)() if size else None
        if buf is None or llama_cpp.llama_state_seq_get_data(self.ctx, buf, size, slot.seq) != size:
            self._forget(slot)  # a miss next time: slower, still correct
            return
        llama_cpp.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        slot.parked = buf

    def _make_samplers(self, job: Job) -> None:
        if job.grammar is not None:
            job.grammar_sampler = llama_cpp.llama_sampler_init_grammar(
                self.vocab, job.grammar.encode(), b"root"
            )
            if not job.grammar_sampler:
                job.grammar_sampler = None
                raise SchemaError("llama.cpp rejected the grammar for this request")
        if job.temperature > 0:
            chain = llama_cpp.llama_sampler_chain_init(
                llama_cpp.llama_sampler_chain_default_params()
            )
            if job.top_k > 0:
                llama_cpp.llama_sampler_chain_add(
                    chain, llama_cpp.llama_sampler_init_top_k(job.top_k)
                )
            if job.top_p < 1.0:
                llama_cpp.llama_sampler_chain_add(
                    chain, llama_cpp.llama_sampler_init_top_p(job.top_p, 1)
                )
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_temp(job.temperature)
            )
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(job.seed))
            job.sampler = chain

    # --- one step --------------------------------------------------------------------
    def step(self, jobs: list[Job]) -> list[tuple[Job, int]]:
        """One llama_decode over every job's next tokens; returns the tokens sampled.

        A failed llama_decode fails no request by itself: each job's KV is rolled back to
        where it was before the batch and the batch's jobs are retried one per llama_decode,
        so only a job whose own tokens fail is dropped. Those go to :attr:`failed` (reset at
        every step) with their :class:`EngineError`; the caller ends them.
        """
        self.failed = []
        chunks, outputs, n = self._fill_batch(jobs)
        if n == 0:
            return []
        rc = self._decode(n)
        if rc == 0:
            return self._commit(chunks, outputs)
        log.warning("llama_decode failed (code %d) for a batch of %d tokens", rc, n)
        self._rollback(chunks)
        if len(chunks) == 1:
            self._fail(chunks[0][0], rc, n)
            return []
        self.decode_retries += 1
        sampled: list[tuple[Job, int]] = []
        for job, _ in chunks:  # one job per llama_decode: the failure stays with its job
            if any(j is job for j, _ in self.failed):
                continue
            one, out, m = self._fill_batch([job])
            if m == 0:
                continue
            rc = self._decode(m)
            if rc == 0:
                sampled += self._commit(one, out)
            else:
                self._rollback(one)
                self._fail(job, rc, m)
        return sampled

    def _decode(self, n: int) -> int:
        self._batch.n_tokens = n
        rc = int(llama_cpp.llama_decode(self.ctx, self._batch))
        self.decode_calls += 1
        return rc

    def _commit(
        self, chunks: list[tuple[Job, int]], outputs: list[tuple[Job, int]]
    ) -> list[tuple[Job, int]]:
        for job, take in chunks:
            assert job.slot is not None
            job.slot.tokens.extend(job.todo[:take])
            self.evaluated_tokens += take
            if not job.generating:
                job.evaluated_prompt += take
                self.prompt_tokens_evaluated += take
            del job.todo[:take]
        return [(job, self._sample(job, index)) for job, index in outputs]

    def _rollback(self, chunks: list[tuple[Job, int]]) -> None:
        """Drop whatever a failed llama_decode left in the jobs' cells past their known tokens."""
        for job, _ in chunks:
            slot = job.slot
            if slot is not None and not llama_cpp.llama_memory_seq_rm(
                self.mem, slot.seq, len(slot.tokens), -1
            ):
                self._forget(slot)  # KV in an unknown state: the job cannot go on
                self._fail(job, -100, 0)

    def _fail(self, job: Job, rc: int, n: int) -> None:
        if job.slot is not None:
            self._forget(job.slot)
        if all(j is not job for j, _ in self.failed):
            self.failed.append(
                (
                    job,
                    EngineError(
                        f"llama_decode failed with code {rc} for this request ({n} tokens)"
                    ),
                )
            )

    def _chunk(self, job: Job, budget: int) -> int:
        """How many of the job's pending tokens go into this batch."""
        take = min(len(job.todo), budget)
        if self.config.exact_reuse and not job.generating and take < len(job.todo):
            # prefill chunks of >= MIN_CHUNK rows, the last one included
            take = min(take, len(job.todo) - MIN_CHUNK)
            if take < MIN_CHUNK:
                return 0
        return take

    def _fill_batch(
        self, jobs: list[Job]
    ) -> tuple[list[tuple[Job, int]], list[tuple[Job, int]], int]:
        """Decode rows first, then prefill chunks by priority; logits only for last tokens.

        While an interactive request waits for its first token, only interactive requests run:
        a coach's or evaluator's prefill chunk (or decode row) in the same step would make
        every step of that prefill dearer, and the trainee waits on it. Lower priorities resume
        at the next step after the first token.
        """
        if any(j.priority == 0 and not j.first_token_at for j in jobs):
            jobs = [j for j in jobs if j.priority == 0]
        exact = self.config.exact_reuse
        cap = min(self._batch_cap, EXACT_MAX_ROWS) if exact else self._batch_cap
        decoders = [j for j in jobs if j.generating]
        prefills = sorted((j for j in jobs if not j.generating), key=lambda j: j.priority)
        if prefills and len(decoders) > cap - MIN_CHUNK:
            decoders = []  # too many decode rows to fit a chunk: a prefill-only step
        batch = self._batch
        n = 0
        chunks: list[tuple[Job, int]] = []
        outputs: list[tuple[Job, int]] = []
        for job in decoders + prefills:
            slot = job.slot
            take = self._chunk(job, cap - n) if slot is not None and job.todo else 0
            if slot is None or take <= 0:
                continue
            base = len(slot.tokens)
            for k in range(take):
                batch.token[n] = job.todo[k]
                batch.pos[n] = base + k
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq
                last = k == take - 1 and take == len(job.todo)
                batch.logits[n] = last
                if last:
                    outputs.append((job, n))
                n += 1
            chunks.append((job, take))
        return chunks, outputs, n

    def _sample(self, job: Job, index: int) -> int:
        if job.sampler is not None:
            if job.grammar_sampler is not None:
                token = self._sample_grammar(job, index, chain=job.sampler)
            else:
                token = int(llama_cpp.llama_sampler_sample(job.sampler, self.ctx, index))
        elif job.grammar_sampler is not None:
            token = self._sample_grammar(job, index, chain=None)
        else:
            logits = np.ctypeslib.as_array(
                llama_cpp.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,)
            )
            token = int(logits.argmax())
        job.generating = True
        job.todo = [token]
        return token

    def _sample_grammar(self, job: Job, index: int, chain: Any) -> int:
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(self.ctx, index), shape=(self.n_vocab,)
        )
        grammar = job.grammar_sampler
        if chain is None:
            # fast path (as llama.cpp's common sampler does): is the argmax allowed as it is?
            best = int(logits.argmax())
            one = self._one
            one["id"][0] = best
            one["logit"][0] = logits[best]
            if self._apply(grammar, one) and math.isfinite(float(one["logit"][0])):
                llama_cpp.llama_sampler_accept(grammar, best)
                return best
        cands = self._all
        cands["logit"] = logits
        cands["p"] = 0.0
        self._apply(grammar, cands)
        if chain is None:
            token = int(cands["logit"].argmax())
        else:
            allowed = cands["logit"]
            scaled = allowed / max(job.temperature, 1e-3)
            scaled -= scaled[np.isfinite(scaled)].max()
            probs = np.exp(scaled)
            probs /= probs.sum()
            rng = np.random.default_rng(job.seed + job.generated)
            token = int(rng.choice(self.n_vocab, p=probs))
        llama_cpp.llama_sampler_accept(grammar, token)
        return token

    @staticmethod
    def _apply(sampler: Any, data: Any) -> bool:
        arr = llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=len(data),
            selected=-1,
            sorted=False,
        )
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(arr))
        return True
