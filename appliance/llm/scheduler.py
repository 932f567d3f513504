"""The decode thread and its queue: priorities, fairness, admission, cancellation, timeouts.

Requests wait in one ordered queue keyed by (priority, the session's place, arrival): all
interactive requests go before coach, evaluator and background ones, and within a
priority a session's second waiting request goes after every other session's first (fair
across sessions). The queue is bounded: when ``llm.queue_max`` requests already wait and no
sequence is free, ``submit`` raises :class:`~appliance.llm.errors.LLMBusy` with the position
the request would have had and a retry hint from the recent request durations.

One thread runs the continuous-batching loop: admit waiting requests into idle sequence
slots, drop cancelled or expired ones, and run one ``llama_decode`` for all active
sequences; each sampled piece goes to its request's asyncio queue (bounded by the
request's max_tokens, so the thread never blocks on a slow consumer). Nothing is admitted
ahead of its turn and running sequences are not pre-empted.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable

from appliance.llm import metrics
from appliance.llm.engine import Job, LlamaEngine
from appliance.llm.errors import LLMBusy, LLMError, LLMNotStarted, LLMTimeout

log = logging.getLogger(__name__)
PRIORITY_NAMES = ("interactive", "coach", "evaluator", "background")


class Scheduler:
    """Feeds the engine from a bounded priority queue on one decode thread."""

    def __init__(self, engine: LlamaEngine, *, queue_max: int, backend: str) -> None:
        self.engine = engine
        self.queue_max = queue_max
        self.backend = backend
        self._cond = threading.Condition()
        self._queue: list[tuple[tuple[int, int, int], Job]] = []
        self._active: list[Job] = []
        self._seq = itertools.count()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._avg_job_s = 2.0
        self._forget: set[str] = set()
        self.finished = Counter[str]()
        self.forgotten = 0
        """Idle slots whose KV was dropped because their session ended (tests, diagnosis)."""

    # --- caller side (event loop) ------------------------------------------------------
    def start(self) -> None:
        """Start the decode thread."""
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="llm-decode", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (blocking); waiting and running requests fail with llm_not_started."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        err = LLMNotStarted("the LLM backend stopped")
        for _, job in self._queue:
            job.emit(err)
        for job in self._active:
            self.engine.release(job)
            job.emit(err)
        self._queue.clear()
        self._active.clear()
        self._gauges()

    def submit(self, job: Job) -> None:
        """Queue a job; LLMBusy when the queue is full."""
        with self._cond:
            if self._stopping or self._thread is None:
                raise LLMNotStarted("the LLM backend is not running")
            free = self.engine.idle_slots() - len(self._queue)
            if free <= 0 and len(self._queue) >= self.queue_max:
                position = len(self._queue) + 1
                raise LLMBusy(
                    f"the language model is busy: {len(self._queue)} requests are waiting",
                    queue_position=position,
                    retry_after=self.retry_after(position),
                )
            same = sum(
                1
                for _, j in self._queue
                if j.priority == job.priority and j.session_key == job.session_key
            )
            fairness = same if job.session_key else 0
            bisect.insort(
                self._queue, ((job.priority, fairness, next(self._seq)), job), key=lambda e: e[0]
            )
            self._gauges()
            self._cond.notify_all()

    def cancel(self, job: Job) -> None:
        """The caller went away: drop the job from the queue, or free its slot at the next step."""
        with self._cond:
            job.cancelled = True
            self._queue = [(k, j) for k, j in self._queue if j is not job]
            self._gauges()
            self._cond.notify_all()

    def forget_sessions(self, keys: Iterable[str]) -> None:
        """These sessions are over: the decode thread drops their idle slots' KV (the copy
        parked in RAM, up to ~36 MB a slot) at its next turn, instead of keeping it until the
        slot is reused."""
        with self._cond:
            if self._stopping or self._thread is None:
                return
            self._forget.update(keys)
            self._cond.notify_all()

    def retry_after(self, position: int) -> int:
        """Seconds after which a request at ``position`` would likely get a sequence."""
        waves = position / max(1, len(self.engine.slots)) + 1
        return max(1, math.ceil(self._avg_job_s * waves))

    def queue_position(self, job: Job) -> int:
        """1-based position of a waiting job; 0 once it runs."""
        with self._cond:
            for i, (_, j) in enumerate(self._queue):
                if j is job:
                    return i + 1
        return 0

    @property
    def active(self) -> int:
        """Jobs holding a sequence."""
        return len(self._active)

    def _gauges(self) -> None:
        depth = Counter(j.priority for _, j in self._queue)
        for i, name in enumerate(PRIORITY_NAMES):
            metrics.QUEUE_DEPTH.labels(self.backend, name).set(depth.get(i, 0))
        metrics.ACTIVE_SEQUENCES.labels(self.backend).set(len(self._active))
        metrics.PARKED_KV_BYTES.labels(self.backend).set(self.engine.parked_bytes())

    # --- decode thread -----------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while (
                    not self._stopping and not self._queue and not self._active and not self._forget
                ):
                    self._cond.wait()
                if self._stopping:
                    return
                if self._forget:
                    keys, self._forget = self._forget, set()
                    self.forgotten += self.engine.forget_sessions(keys)
                self._admit()
                self._gauges()
            self._reap()
            if not self._active:
                continue
            try:
                sampled = self.engine.step(self._active)
            except Exception as err:  # a bug must fail the requests, not kill the thread
                log.exception("llm decode step crashed")
                for job in list(self._active):
                    self._finish(job, error=LLMError(f"decode failed: {type(err).__name__}"))
                continue
            for job, failure in self.engine.failed:  # only the requests whose tokens failed
                log.error("llm decode failed for one request: %s", failure)
                self._finish(job, error=failure)
            now = time.monotonic()
            for job, token in sampled:
                if not job.first_token_at:
                    job.first_token_at = now
                    metrics.TTFT.labels(self.backend, PRIORITY_NAMES[job.priority]).observe(
                        now - job.submitted
                    )
                eog = self.engine.is_eog(token)
                if job.accept(b"" if eog else self.engine.piece(token), eog):
                    self._finish(job)
            metrics.GENERATED_TOKENS.labels(self.backend).inc(len(sampled))

    def _admit(self) -> None:
        now = time.monotonic()
        keep: list[tuple[tuple[int, int, int], Job]] = []
        for key, job in self._queue:
            if job.cancelled:
                continue
            if now > job.deadline:
                job.emit(LLMTimeout("the request timed out waiting for the language model"))
                self.finished["timeout"] += 1
                continue
            if self.engine.idle_slots() == 0:
                keep.append((key, job))
                continue
            try:
                hit = self.engine.acquire(job)
            except LLMError as err:
                job.emit(err)
                continue
            if hit is True:
                metrics.KV_HITS.labels(self.backend).inc()
            elif hit is False:
                metrics.KV_MISSES.labels(self.backend).inc()
            metrics.PROMPT_TOKENS_CACHED.labels(self.backend).inc(job.cached)
            self._active.append(job)
        self._queue = keep

    def _reap(self) -> None:
        now = time.monotonic()
        for job in list(self._active):
            if job.cancelled:
                self._finish(job, outcome="cancelled")
            elif now > job.deadline:
                self._finish(job, error=LLMTimeout("the generation ran past its timeout"))

    def _finish(
        self, job: Job, *, error: LLMError | None = None, outcome: str | None = None
    ) -> None:
        from appliance.llm.base import Completion

        self.engine.release(job)
        if job in self._active:
            self._active.remove(job)
        metrics.PROMPT_TOKENS_EVALUATED.labels(self.backend).inc(job.evaluated_prompt)
        elapsed = time.monotonic() - job.submitted
        self._avg_job_s = 0.8 * self._avg_job_s + 0.2 * elapsed
        if error is not None:
            outcome = "timeout" if isinstance(error, LLMTimeout) else "error"
            job.emit(error)
        elif outcome is None:
            outcome = "ok"
            job.emit(
                Completion(
                    text="".join(job.text),
                    finish_reason="length" if job.finish_reason == "length" else "stop",
                    prompt_tokens=len(job.prompt),
                    completion_tokens=job.generated,
                    cached_tokens=job.cached,
                    ttft_s=(job.first_token_at - job.submitted) if job.first_token_at else 0.0,
                )
            )
        self.finished[outcome] += 1
        metrics.REQUESTS.labels(self.backend, outcome).inc()
        with self._cond:
            self._gauges()
