"""The llama_cpp backend's own promises, on the bundled model: KV reuse, batching, scheduling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import msgspec
import pytest
from appliance.llm.base import Completion, GenerateRequest, Message
from appliance.llm.engine import MIN_CHUNK, common_prefix
from appliance.llm.errors import LLMBusy, LLMTimeout, SchemaError
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.llm.samples import PERSONAS, conversation
from prometheus_client import REGISTRY, generate_latest

from tests.llm.conftest import MODEL, LoopThread, engine_config


def cold(request: GenerateRequest) -> GenerateRequest:
    return msgspec.structs.replace(request, reuse_kv=False, session_key="")


def test_second_turn_evaluates_only_new_tokens_and_matches_a_cold_run(
    local_llm: LlamaCppBackend, loop: LoopThread
) -> None:
    engine = local_llm.engine
    for persona in ("cars", "software"):
        key = f"reuse-{persona}"
        turn1 = conversation(persona, 1, session_key=key, max_tokens=24)
        first = loop.run(local_llm.generate(turn1))
        turn2 = conversation(persona, 2, replies=[first.text], session_key=key, max_tokens=24)
        prompt1 = local_llm.prompt(turn1).tokens
        prompt2 = local_llm.prompt(turn2).tokens
        before = engine.prompt_tokens_evaluated
        second = loop.run(local_llm.generate(turn2))
        evaluated = engine.prompt_tokens_evaluated - before
        shared = common_prefix(prompt1, prompt2)
        assert shared >= len(prompt1) - 2  # the new prompt extends the old one
        # only the tokens past the first turn's prompt are evaluated (the reply among them)
        assert evaluated == len(prompt2) - second.cached_tokens
        assert second.cached_tokens >= shared - MIN_CHUNK
        assert evaluated <= len(prompt2) - len(prompt1) + MIN_CHUNK + 2
        cold_run = loop.run(local_llm.generate(cold(turn2)))
        assert cold_run.cached_tokens == 0
        assert second.text == cold_run.text


def test_turn_ten_reuses_the_session_prefix(local_llm: LlamaCppBackend, loop: LoopThread) -> None:
    replies: list[str] = []
    for turn in range(1, 11):
        request = conversation(
            "insurance", turn, replies=replies, session_key="long", max_tokens=16
        )
        completion = loop.run(local_llm.generate(request))
        replies.append(completion.text or "Okay.")
        if turn > 1:
            assert completion.cached_tokens > completion.prompt_tokens // 2, turn


CODE_WORDS = ("walrus", "saffron", "quartz", "meadow")


def code_word_request(word: str) -> GenerateRequest:
    """A prompt whose only sensible answer is its own code word."""
    return GenerateRequest(
        messages=[
            Message(
                role="system",
                content=f"Note from the manager: today's door code word is {word.upper()}. "
                "Staff must say the code word to enter.",
            ),
            Message(role="user", content="What is today's door code word?", name="Guard"),
        ],
        max_tokens=8,
        reply_name="Staff",
        reuse_kv=False,
    )


def test_four_concurrent_sessions_give_what_each_gives_alone(
    local_llm: LlamaCppBackend, loop: LoopThread
) -> None:
    """Greedy and decoded together, each session gives what it gives alone.

    llama.cpp's kernels round differently when a step's shape differs (which sequences share
    it, how many rows, how many KV cells the fullest holds), and which requests share a step
    depends on when each arrives. So a near-tie can flip a token: the issue allows that, and
    BENCHMARKS.md ("LLM", agreement) records the rate; at most one of the four streams may
    differ here. Mixing up two sessions' KV never may: four sessions, each told its own code
    word, decoded together, each say their own word and no other.
    """
    requests = [conversation(p, 2, max_tokens=32) for p in PERSONAS]
    alone = [loop.run(local_llm.generate(cold(r))).text for r in requests]
    assert len(set(alone)) == len(alone)  # clearly different prompts, different replies

    async def together(reqs: list[GenerateRequest]) -> list[Completion]:
        return list(await asyncio.gather(*(local_llm.generate(cold(r)) for r in reqs)))

    before = local_llm.engine.decode_calls
    batched = loop.run(together(requests))
    # decoded together: far fewer llama_decode calls than tokens generated
    assert local_llm.engine.decode_calls - before < sum(c.completion_tokens for c in batched)
    identical = sum(c.text == a for c, a in zip(batched, alone, strict=True))
    print(f"{identical} of {len(alone)} streams identical to their run alone")
    assert identical >= len(alone) - 1, ([c.text for c in batched], alone)

    before = local_llm.engine.decode_calls
    coded = loop.run(together([code_word_request(w) for w in CODE_WORDS]))
    assert local_llm.engine.decode_calls - before < sum(c.completion_tokens for c in coded)
    for word, completion in zip(CODE_WORDS, coded, strict=True):
        said = completion.text.lower()
        assert word in said and not [w for w in CODE_WORDS if w != word and w in said], said


@pytest.fixture(scope="module")
def one_slot(loop: LoopThread) -> Iterator[LlamaCppBackend]:
    """One sequence, three waiting places: scheduling made observable."""
    backend = LlamaCppBackend(
        engine_config(context_tokens=2048, max_sequences=1, queue_max=3), MODEL
    )
    loop.run(backend.start())
    yield backend
    loop.run(backend.stop())


LONG = GenerateRequest(
    messages=[Message(role="user", content="Count from one to one hundred: one, two, three,")],
    max_tokens=64,
    priority="background",
    session_key="filler",
)


async def hold_the_slot(backend: LlamaCppBackend) -> tuple[asyncio.Task[Completion], float]:
    """Start a long background generation and wait until it runs."""
    started = asyncio.get_running_loop().create_future()

    async def run() -> Completion:
        stream = backend.stream(LONG)
        async for _ in stream:
            if not started.done():
                started.set_result(time.monotonic())
        assert stream.completion is not None
        return stream.completion

    task = asyncio.create_task(run())
    return task, await started


def test_interactive_overtakes_queued_background(
    one_slot: LlamaCppBackend, loop: LoopThread
) -> None:
    async def scenario() -> dict[str, float]:
        filler, _ = await hold_the_slot(one_slot)
        first_piece: dict[str, float] = {}

        async def timed(name: str, request: GenerateRequest) -> None:
            async for _ in one_slot.stream(request):
                first_piece.setdefault(name, time.monotonic())
            first_piece.setdefault(name, time.monotonic())

        tasks = []
        for i in range(2):
            tasks.append(
                asyncio.create_task(
                    timed(f"bg{i}", conversation("coffee", 1, max_tokens=8, priority="background"))
                )
            )
            await asyncio.sleep(0.02)
        tasks.append(asyncio.create_task(timed("ia", conversation("cars", 1, max_tokens=8))))
        await asyncio.sleep(0.05)
        assert not filler.done(), "the filler ended before the queue formed"
        await asyncio.gather(filler, *tasks)
        return first_piece

    first = loop.run(scenario())
    assert first["ia"] < first["bg0"] < first["bg1"]


def test_a_full_queue_answers_busy_with_position_and_retry_hint(
    one_slot: LlamaCppBackend, loop: LoopThread
) -> None:
    async def scenario() -> LLMBusy:
        filler, _ = await hold_the_slot(one_slot)
        waiting = [
            asyncio.create_task(one_slot.generate(conversation("coffee", 1, max_tokens=4)))
            for _ in range(3)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(LLMBusy) as info:
            await one_slot.generate(conversation("cars", 1, max_tokens=4))
        await asyncio.gather(filler, *waiting)
        return info.value

    busy = loop.run(scenario())
    assert busy.code == "busy"
    assert busy.detail["queue_position"] == 4
    assert busy.detail["retry_after"] >= 1


def test_cancelled_request_frees_its_sequence(one_slot: LlamaCppBackend, loop: LoopThread) -> None:
    engine = one_slot.engine

    async def scenario() -> tuple[int, Completion]:
        stream = one_slot.stream(LONG)
        async for _ in stream:
            break  # the client went away after one piece
        await stream.aclose()
        for _ in range(100):
            if engine.idle_slots() == 1:
                break
            await asyncio.sleep(0.01)
        idle = engine.idle_slots()
        # the only sequence serves the next request at once
        return idle, await one_slot.generate(conversation("cars", 1, max_tokens=4))

    idle, after = loop.run(scenario())
    assert idle == 1
    assert after.completion_tokens >= 1
    assert one_slot.scheduler.finished["cancelled"] >= 1


def test_a_queued_request_times_out_with_a_typed_error(
    one_slot: LlamaCppBackend, loop: LoopThread
) -> None:
    async def scenario() -> None:
        filler, _ = await hold_the_slot(one_slot)
        with pytest.raises(LLMTimeout):
            await one_slot.generate(
                msgspec.structs.replace(conversation("cars", 1, max_tokens=4), timeout_s=0.05)
            )
        await filler

    loop.run(scenario())


def test_a_prompt_longer_than_the_context_is_trimmed_not_fatal(
    one_slot: LlamaCppBackend, loop: LoopThread
) -> None:
    replies = ["That sounds expensive, tell me more about it please."] * 200
    request = conversation("software", 200, replies=replies, max_tokens=16)
    prompt = one_slot.prompt(request)
    assert len(prompt.tokens) <= one_slot.engine.n_ctx_seq - 16
    assert prompt.dropped_turns > 0
    assert prompt.text.startswith(PERSONAS["software"][0])  # the system prompt is kept
    completion = loop.run(one_slot.generate(request))
    assert completion.completion_tokens >= 1
    huge = GenerateRequest(messages=[Message(role="user", content="word " * 20_000)], max_tokens=8)
    assert loop.run(one_slot.generate(huge)).completion_tokens >= 1


def test_a_schema_that_cannot_be_expressed_fails_at_registration(
    local_llm: LlamaCppBackend,
) -> None:
    class Callback(msgspec.Struct):
        run: type = int

    with pytest.raises(SchemaError) as info:
        local_llm.register_schema(Callback)
    assert info.value.code == "llm_schema_unsupported"


def test_metrics_are_exported(local_llm: LlamaCppBackend, loop: LoopThread) -> None:
    loop.run(local_llm.generate(conversation("cars", 1, max_tokens=4, session_key="metrics")))
    text = generate_latest(REGISTRY).decode()
    for name in (
        "salesboost_llm_ttft_seconds_bucket",
        "salesboost_llm_generated_tokens_total",
        "salesboost_llm_queue_depth",
        "salesboost_llm_kv_reuse_hits_total",
        "salesboost_llm_kv_reuse_misses_total",
        "salesboost_llm_active_sequences",
        "salesboost_llm_breaker_open",
    ):
        assert name in text, name


def test_a_failing_request_does_not_poison_the_others(
    local_llm: LlamaCppBackend, loop: LoopThread
) -> None:
    """Fault injected on purpose: a job whose grammar llama.cpp rejects, next to normal ones."""
    from appliance.llm.engine import Job

    errors: list[BaseException] = []
    broken = Job(
        prompt=local_llm.prompt(conversation("cars", 1)).tokens,
        stops=[],
        max_tokens=4,
        grammar="root ::= this is not gbnf (",
        emit=lambda item: errors.append(item) if isinstance(item, BaseException) else None,
    )

    async def scenario() -> list[Completion]:
        local_llm.scheduler.submit(broken)
        requests = [cold(conversation(p, 1, max_tokens=8)) for p in ("cars", "coffee")]
        return list(await asyncio.gather(*(local_llm.generate(r) for r in requests)))

    done = loop.run(scenario())
    assert [type(e).__name__ for e in errors] == ["SchemaError"]
    assert all(c.completion_tokens >= 1 for c in done)
    assert local_llm.engine.idle_slots() == len(local_llm.engine.slots)  # nothing leaked


def test_idle_sessions_are_parked_and_requests_take_the_lowest_sequence_ids(
    local_llm: LlamaCppBackend, loop: LoopThread
) -> None:
    import llama_cpp

    engine = local_llm.engine
    for persona in ("cars", "software"):
        loop.run(local_llm.generate(conversation(persona, 1, session_key=f"park-{persona}")))
        owned = next(s for s in engine.slots if s.owner == f"park-{persona}")
        assert owned.seq == 0 and owned.tokens and owned.parked is not None
    # no idle sequence keeps KV cells in the cache (they would widen every decode step)
    for slot in engine.slots:
        assert llama_cpp.llama_memory_seq_pos_max(engine.mem, slot.seq) == -1, slot.seq
    again = conversation("cars", 1, session_key="park-cars")
    assert loop.run(local_llm.generate(again)).cached_tokens > 0  # restored from RAM


def test_an_ended_sessions_parked_kv_is_dropped_and_the_next_turn_is_still_right(
    local_llm: LlamaCppBackend, loop: LoopThread
) -> None:
    """Soak finding: an ended session's KV stayed parked in RAM (up to ~36 MB a slot) until its
    slot was reused. ``forget_sessions`` drops it on the decode thread; a later request with
    that key is a miss (full prefill) with the same greedy output."""
    engine, scheduler = local_llm.engine, local_llm.scheduler
    turn = conversation("cars", 1, session_key="ended-cars")
    first = loop.run(local_llm.generate(turn))
    owned = next(s for s in engine.slots if s.owner == "ended-cars")
    assert owned.parked is not None
    before = scheduler.forgotten
    local_llm.forget_sessions(["ended-cars", "never-seen"])
    deadline = time.monotonic() + 10
    while scheduler.forgotten == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scheduler.forgotten == before + 1
    assert owned.owner == "" and owned.parked is None and not owned.tokens
    assert not [s for s in engine.slots if s.owner == "ended-cars"]
    again = loop.run(local_llm.generate(turn))
    assert again.cached_tokens == 0 and again.text == first.text


def test_fault_injection_a_rejected_grammar_leaves_the_sessions_prefix_parked(
    local_llm: LlamaCppBackend, loop: LoopThread
) -> None:
    """Fault injected on purpose: a session's next request carries a grammar llama.cpp
    rejects. It fails alone; the session's parked prefix stays parked (no KV cells left in the
    cache to widen every decode step) and its next request still reuses it."""
    import llama_cpp
    from appliance.llm.engine import Job

    engine = local_llm.engine
    key = "grammar-victim"
    first = conversation("coffee", 1, session_key=key, max_tokens=8)
    loop.run(local_llm.generate(first))
    errors: list[BaseException] = []
    broken = Job(
        prompt=local_llm.prompt(first).tokens,
        stops=[],
        max_tokens=4,
        grammar="root ::= this is not gbnf (",
        session_key=key,
        emit=lambda item: errors.append(item) if isinstance(item, BaseException) else None,
    )

    async def scenario() -> None:
        local_llm.scheduler.submit(broken)
        for _ in range(200):
            if errors:
                return
            await asyncio.sleep(0.05)

    loop.run(scenario())
    assert [type(e).__name__ for e in errors] == ["SchemaError"]
    owned = next(s for s in engine.slots if s.owner == key)
    assert owned.parked is not None and owned.tokens
    for slot in engine.slots:
        assert llama_cpp.llama_memory_seq_pos_max(engine.mem, slot.seq) == -1, slot.seq
    assert loop.run(local_llm.generate(first)).cached_tokens > 0


def test_fault_injection_a_failed_decode_fails_only_the_request_whose_tokens_fail(
    local_llm: LlamaCppBackend, loop: LoopThread
) -> None:
    """Fault injected on purpose: a job whose prompt carries a token id past the vocabulary.

    llama.cpp refuses the whole batch it sits in (llama_decode returns -1). The engine rolls
    the batch back and retries its jobs one per llama_decode: the poisoned job alone fails,
    and the others give exactly what they give alone.
    """
    import threading

    from appliance.llm.engine import EngineError, Job

    engine = local_llm.engine
    prompts = [local_llm.prompt(conversation(p, 1)).tokens for p in ("cars", "coffee")]
    poisoned = [*prompts[0][:10], engine.n_vocab + 7, *prompts[0][10:]]
    results: dict[int, list[object]] = {0: [], 1: [], 2: []}
    finished = {i: threading.Event() for i in results}

    def job(i: int, tokens: list[int]) -> Job:
        def emit(item: object) -> None:
            results[i].append(item)
            if isinstance(item, Completion | BaseException):
                finished[i].set()

        return Job(prompt=tokens, stops=[], max_tokens=12, reuse_kv=False, emit=emit)

    jobs = [job(0, prompts[0]), job(1, poisoned), job(2, prompts[1])]
    retries = engine.decode_retries
    with local_llm.scheduler._cond:  # all three are admitted together: one batch
        for j in jobs:
            local_llm.scheduler.submit(j)
    for event in finished.values():
        assert event.wait(60)
    assert engine.decode_retries == retries + 1  # the shared batch failed and was split
    assert isinstance(results[1][-1], EngineError)
    assert results[1][-1].code == "llm_error"
    good = [results[0][-1], results[2][-1]]
    assert all(isinstance(c, Completion) and c.completion_tokens == 12 for c in good)
    for i, tokens in ((0, prompts[0]), (2, prompts[1])):
        alone: list[object] = []
        done = threading.Event()

        def emit(item: object, alone: list[object] = alone, done: threading.Event = done) -> None:
            alone.append(item)
            if isinstance(item, Completion | BaseException):
                done.set()

        local_llm.scheduler.submit(
            Job(prompt=tokens, stops=[], max_tokens=12, reuse_kv=False, emit=emit)
        )
        assert done.wait(60)
        assert isinstance(alone[-1], Completion)
        assert alone[-1].text == results[i][-1].text  # type: ignore[union-attr]
    assert engine.idle_slots() == len(engine.slots)  # nothing leaked
