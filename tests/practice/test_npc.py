# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""The customer (NPC) on the real bundled model: streaming, in character, KV reuse, Chinese."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from appliance.llm.base import Completion, TextStream
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.practice.agents.npc import FALLBACKS, CustomerReply, LLMCustomer, fallback_line
from appliance.practice.model import ComplianceFlag, IntentResult, TurnRecord

from tests.practice.conftest import LoopThread, context

LABELS = re.compile(r"(Assistant|User|Anna|Mr\. Chen|Narrator|Salesperson)\s*:", re.IGNORECASE)


async def collect(customer: LLMCustomer, ctx_kwargs: dict[str, object], text: str) -> tuple:  # type: ignore[type-arg]
    reply = customer.reply(context(**ctx_kwargs), text)  # type: ignore[arg-type]
    pieces = [piece async for piece in reply]
    return pieces, reply


def test_two_turns_stream_in_character_and_reuse_kv(loop: LoopThread, llm: LlamaCppBackend) -> None:
    customer = LLMCustomer(llm, max_tokens=40)
    first_line = "Good morning Mr. Chen, this is Anna from the bank. How can I help you today?"
    pieces, reply = loop.run(collect(customer, {"session_id": 101}, first_line))
    assert len(pieces) >= 1 and "".join(pieces) == reply.text
    assert reply.text.strip() == reply.text and reply.text
    assert "\n" not in reply.text and not LABELS.search(reply.text)
    history = [TurnRecord(turn=1, trainee_text=first_line, npc_text=reply.text, mood=0.4)]
    second_line = "I understand. How much do you spend on the card each year?"
    pieces2, reply2 = loop.run(
        collect(customer, {"session_id": 101, "history": history}, second_line)
    )
    assert "".join(pieces2) == reply2.text and reply2.text
    assert "\n" not in reply2.text and not LABELS.search(reply2.text)
    if reply2.completion is not None:  # None only when the reply was cut at an inline label
        assert reply2.completion.cached_tokens > 0
        # the preamble and the first turn were reused: far more than a handful of tokens
        assert reply2.completion.cached_tokens >= reply2.completion.prompt_tokens // 2
    else:
        raise AssertionError("the second turn was cut short; no completion to check KV reuse")


def test_chinese_persona_answers_in_chinese(loop: LoopThread, llm: LlamaCppBackend) -> None:
    customer = LLMCustomer(llm, max_tokens=40)
    request = customer.request(context(session_id=102, language="zh"), "陈先生您好")
    assert "陈先生" in request.messages[0].content and "客户" in request.messages[0].content
    pieces, reply = loop.run(
        collect(customer, {"session_id": 102, "language": "zh"}, "陈先生您好，我是银行的李娜。")
    )
    assert "".join(pieces) == reply.text
    assert re.search(r"[\u4e00-\u9fff]", reply.text), reply.text
    if reply.fallback:
        assert reply.text.endswith(tuple(FALLBACKS["zh"]))


def test_prompt_prefix_is_stable_and_direction_comes_last(llm: LlamaCppBackend) -> None:
    customer = LLMCustomer(llm)
    calm = customer.messages(context(mood=0.9, stage="OPENING"), "Hello")
    upset = customer.messages(context(mood=0.1, stage="CLOSING"), "Hello")
    assert calm[0] == upset[0]  # the preamble does not move with mood or stage
    assert calm[-1] != upset[-1] and calm[-1].name == "Narrator"
    assert "warm" in calm[-1].content and "annoyed" in upset[-1].content


def test_next_mood_is_deterministic_and_bounded(llm: LlamaCppBackend) -> None:
    customer = LLMCustomer(llm)
    ctx = context(mood=0.5)  # a hard persona
    good = IntentResult(label="benefit_inquiry", confidence=1.0)
    bad = IntentResult(label="time_pressure", confidence=1.0)
    assert customer.next_mood(ctx, good, []) == 0.53  # +0.05 * 0.6 (hard)
    assert customer.next_mood(ctx, bad, []) == 0.388  # -0.08 * 1.4
    block = ComplianceFlag(
        rule_id=1, rule="r", severity="block", who="trainee", excerpt="x", start=0, end=1
    )
    assert customer.next_mood(ctx, good, [block]) == round(0.5 + 0.03 - 0.15 * 1.4, 3)
    assert customer.next_mood(context(mood=0.0), bad, [block, block]) == 0.0
    assert customer.next_mood(context(mood=1.0), good, []) == 1.0


def fault_injection_model_output(pieces: list[str]) -> TextStream:
    """Fault injection: a stream of bad model output (labels, asides), as a backend would send it."""

    async def events() -> AsyncGenerator[str | Completion, None]:
        for piece in pieces:
            yield piece
        yield Completion(text="".join(pieces), finish_reason="stop")

    return TextStream(events())


def clean_reply(pieces: list[str], language: str = "en") -> tuple[list[str], CustomerReply]:
    labels = ["Mr. Chen", "Anna", "Assistant", "Narrator"]
    fallback = fallback_line(language, 0.5)  # type: ignore[arg-type]

    async def run() -> tuple[list[str], CustomerReply]:
        reply = CustomerReply(
            fault_injection_model_output(pieces), labels=labels, fallback=fallback
        )
        return [p async for p in reply], reply

    return asyncio.run(run())


def test_reply_cleaning_strips_labels_asides_and_cuts_at_other_speakers() -> None:
    out, reply = clean_reply(
        [" Mr.", " Chen:", " (sighs)", " The fee", " is too", " high. An", "na: ok"]
    )
    assert "".join(out) == reply.text == "The fee is too high."
    out, reply = clean_reply([" Assistant: Well", ", maybe.\nAnna: yes"])
    assert reply.text == "Well, maybe." and not reply.fallback
    out, reply = clean_reply([" A lot", " of money", " for nothing."])
    assert out[0] == "A lot" and reply.text == "A lot of money for nothing."
    out, reply = clean_reply([" (He looks", " away.)"])
    assert reply.fallback and reply.text == FALLBACKS["en"][1] == "".join(out)
    out, reply = clean_reply(["（叹气）", "太贵了。"], "zh")
    assert reply.text == "太贵了。" and reply.completion is not None
