# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""The customer (NPC) on the real bundled model: streaming, in character, KV reuse, Chinese."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence

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


def fault_injection_model_output(pieces: list[str], finish: str = "stop") -> TextStream:
    """Fault injection: a stream of bad model output (labels, asides, loops, a cut-off
    sentence), as a backend would send it; ``finish`` "length" = it hit max_tokens."""

    async def events() -> AsyncGenerator[str | Completion, None]:
        for piece in pieces:
            yield piece
        yield Completion(text="".join(pieces), finish_reason=finish)  # type: ignore[arg-type]

    return TextStream(events())


def clean_reply(
    pieces: list[str],
    language: str = "en",
    *,
    finish: str = "stop",
    soft: int | None = None,
    earlier: Sequence[str] = (),
) -> tuple[list[str], CustomerReply]:
    labels = ["Mr. Chen", "Anna", "Assistant", "Narrator"]
    fallback = fallback_line(language, 0.5, avoid=earlier)  # type: ignore[arg-type]

    async def run() -> tuple[list[str], CustomerReply]:
        reply = CustomerReply(
            fault_injection_model_output(pieces, finish),
            labels=labels,
            fallback=fallback,
            soft_tokens=soft,
            earlier=earlier,
            salesperson="Anna",
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


def test_a_reply_says_nothing_twice_and_ends_on_a_whole_sentence() -> None:
    # the first sentence streams piece by piece; a repeated sentence ends the reply before it
    out, reply = clean_reply(
        [" I will", " keep", " my card.", " It is", " fine.", " I will keep", " my card.", " And"]
    )
    assert out[:2] == ["I will", " keep"]
    assert "".join(out) == reply.text == "I will keep my card. It is fine."
    # cut off by max_tokens: the unfinished sentence was held back and is dropped; "Mr." and
    # "25.00" do not end a sentence
    out, reply = clean_reply(
        [
            " Thank",
            " you,",
            " Mr.",
            " Chen.",
            " The fee",
            " is USD 25.",
            "00 a",
            " year.",
            " And I",
        ],
        finish="length",
    )
    assert "".join(out) == reply.text == "Thank you, Mr. Chen. The fee is USD 25.00 a year."
    # the model's own end (not max_tokens) keeps its last words, punctuated or not
    out, reply = clean_reply([" Sure", " thing.", " Maybe", " later"])
    assert reply.text == "Sure thing. Maybe later"
    # past the soft limit the reply ends at the next sentence end
    out, reply = clean_reply([" One.", " Two.", " Three.", " Four.", " Five."], soft=3)
    assert "".join(out) == reply.text == "One. Two."
    out, reply = clean_reply(["好的。", "我知道了。", "好的。", "再见"], "zh", finish="length")
    assert reply.text == "好的。我知道了。"


def test_real_replies_repeat_no_sentence_and_a_cut_one_ends_whole(
    loop: LoopThread, llm: LlamaCppBackend
) -> None:
    """The bundled model with a tight budget: every reply that hit max_tokens still ends on a
    sentence end, and no reply says a sentence twice."""
    customer = LLMCustomer(llm, max_tokens=14, finish_tokens=0)
    lines = [
        "Good morning Mr. Chen, this is Anna from the bank.",
        "Can you tell me how you use the card when you travel?",
        "What would make the annual fee worth it for you?",
        "Would you like me to explain the fee waiver?",
    ]
    cut = 0
    texts: list[str] = []
    for i, line in enumerate(lines):
        pieces, reply = loop.run(collect(customer, {"session_id": 300 + i}, line))
        texts.append(reply.text)
        assert "".join(pieces) == reply.text and reply.text
        keys = [
            k
            for k in (
                " ".join(re.findall(r"\w+", x.lower()))
                for x in re.split(r"(?<=[.!?])\s+", reply.text)
            )
            if k
        ]
        assert len(keys) == len(set(keys)), reply.text
        if reply.completion is not None and reply.completion.finish_reason == "length":
            cut += 1
            if re.search(r"[.!?]\s", reply.text):  # past its first sentence: ends on a whole one
                assert re.search(r"[.!?][\"')]*$", reply.text), reply.text
    print(f"{cut} of {len(lines)} replies reached max_tokens: {texts}")


def test_the_chinese_preamble_names_fees_in_chinese() -> None:
    """The customer's prompt is one language: a Chinese session's facts read in Chinese ("年费" for
    annual_fee), not by the product's keys ("foreign transaction pct")."""
    from appliance.practice.agents.npc import preamble

    from tests.practice.conftest import PERSONA_EN, PERSONA_ZH, PRODUCT, SCENARIO

    zh = preamble(PERSONA_ZH, SCENARIO, PRODUCT, "安娜", "zh")
    facts = next(line for line in zh.splitlines() if "知道的事实" in line)
    assert "年费：695 美元" in facts and "境外交易手续费：0%" in facts
    assert "annual fee" not in facts and "pct" not in facts and "USD" not in facts
    en = preamble(PERSONA_EN, SCENARIO, PRODUCT, "Anna", "en")
    assert "annual fee: 695 USD" in en and "foreign transaction fee: 0%" in en


def test_a_reply_says_no_sentence_of_an_earlier_turn() -> None:
    """The bundled model said "I have a few questions about the card and the fees." four turns
    running (and "客户的消费是消费的收入。" in Chinese): an opening repeat is held back while it
    could be one and left out, a later one ends the reply, the fallback is a fresh line."""
    before = ["I have a few questions about the card and the fees.", "Okay."]
    out, reply = clean_reply(
        [" I have", " a few", " questions", " about the card", " and the fees.", " Why", " now?"],
        earlier=before,
    )
    assert reply.text == "Why now?" == "".join(out)
    assert "I have" not in "".join(out)  # held while it could still be the earlier sentence
    # a fresh opening streams at once, as before
    out, reply = clean_reply([" We", " travel", " a lot.", " Okay."], earlier=before)
    assert out[0] == "We" and reply.text == "We travel a lot."  # "Okay." was said before
    # one that starts like an earlier sentence is held only until it differs
    out, reply = clean_reply([" I have", " two", " cards."], earlier=before)
    assert out[0] == "I have two" and reply.text == "I have two cards."
    # nothing new at all: a fallback line the customer has not said
    said = ["Hmm, I'm not sure. Can you explain that again?"]
    out, reply = clean_reply(
        [" Hmm,", " I'm not sure.", " Can you explain that again?"], earlier=said
    )
    assert reply.fallback and reply.text not in said and reply.text in FALLBACKS["en"]
    out, reply = clean_reply(
        ["客户的", "消费是", "消费的收入。", "你们的年费太贵了。"],
        "zh",
        earlier=["客户的消费是消费的收入。"],
    )
    assert reply.text == "你们的年费太贵了。"


def test_a_reply_does_not_take_the_salespersons_part() -> None:
    """The bundled model continuing the transcript sometimes answers as the bank ("我是银行的
    客户经理", "I'm the branch sales representative for Aurora Platinum."): such an opening
    sentence is held back until it ends and left out; a later one ends the reply."""
    out, reply = clean_reply(["我是", "银行的", "客户经理。", "年费太贵了。"], "zh")
    assert reply.text == "年费太贵了。" == "".join(out)
    out, reply = clean_reply(
        [" I'm", " the branch", " sales representative", " for Aurora.", " The fee", " is high."]
    )
    assert reply.text == "The fee is high." == "".join(out)
    out, reply = clean_reply([" The fee", " is high.", " This is Anna", " from the bank."])
    assert reply.text == "The fee is high."
    # the customer's own "I'm ..." and "我是..." stream once they cannot be that any more
    out, reply = clean_reply([" I'm", " not", " sure", " about it."])
    assert out[0] == "I'm not" and reply.text == "I'm not sure about it."
    out, reply = clean_reply(["我是", "陈建国。", "你们有什么事？"], "zh")
    assert reply.text == "我是陈建国。你们有什么事？"
    out, reply = clean_reply([" I'm", " the owner"])  # the model's own end, unpunctuated
    assert reply.text == "I'm the owner"
    # a greeting that turns into the salesperson's introduction (an English demo call's first
    # reply: "Hello, I'm Li from the bank."), by the trainee's name or the bank
    out, reply = clean_reply([" Hello,", " I'm", " Anna", " from", " the bank.", " What", " now?"])
    assert reply.text == "What now?" == "".join(out)
    out, reply = clean_reply([" Hello,", " Mr.", " Li.", " Go", " on."])
    assert out[0].startswith("Hello, Mr") and reply.text == "Hello, Mr. Li. Go on."
    # the customer's own words about the bank stay
    out, reply = clean_reply(["我是", "银行的", "老客户。"], "zh")
    assert reply.text == "我是银行的老客户。"
    out, reply = clean_reply([" I'm", " tired", " of calls", " from the bank."])
    assert reply.text == "I'm tired of calls from the bank."
