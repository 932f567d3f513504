# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""The tool runner: parallel read-only tools, serial side-effect tools, timeouts, breakers."""

from __future__ import annotations

import asyncio
import time

import msgspec
import pytest
from appliance.knowledge.service import KnowledgeService
from appliance.practice.agents.coach_tools import (
    KnowledgeSearchTool,
    describe_quote,
    fee_calculator,
    objection_playbook,
    parse_spend,
    product_facts,
)
from appliance.practice.model import Waiver
from appliance.practice.tools import Tool, ToolCall, ToolRunner, args_digest

from tests.practice.conftest import COLLECTION, PRODUCT, LoopThread


class Probe:
    """Records how many calls overlap (a real async tool that sleeps)."""

    def __init__(self) -> None:
        self.active = 0
        self.peak = 0

    async def __call__(self, *, delay: float, tag: str = "") -> str:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(delay)
        finally:
            self.active -= 1
        return tag


async def fault_injection_always_fails(**_: object) -> None:
    """A deliberately failing tool (fault injection)."""
    raise RuntimeError("fault injected on purpose")


def test_read_only_tools_run_concurrently_bounded() -> None:
    probe = Probe()
    runner = ToolRunner([Tool("probe", probe, read_only=True, timeout_s=5)], concurrency=4)
    calls = [ToolCall("probe", {"delay": 0.2, "tag": str(i)}) for i in range(8)]
    started = time.perf_counter()
    results = asyncio.run(runner.run_many(calls))
    elapsed = time.perf_counter() - started
    assert [r.value for r in results] == [str(i) for i in range(8)]
    assert probe.peak == 4  # bounded by the semaphore, and really parallel
    assert 0.35 < elapsed < 0.9, elapsed  # two waves of 0.2 s, not eight
    assert all(r.ok and r.record.ok and r.record.name == "probe" for r in results)


def test_side_effect_tools_run_one_at_a_time() -> None:
    probe = Probe()
    runner = ToolRunner([Tool("write", probe, read_only=False, timeout_s=5)], concurrency=4)
    calls = [ToolCall("write", {"delay": 0.05, "tag": str(i)}) for i in range(4)]
    started = time.perf_counter()
    results = asyncio.run(runner.run_many(calls))
    assert time.perf_counter() - started >= 0.2
    assert probe.peak == 1
    assert [r.value for r in results] == ["0", "1", "2", "3"]


def test_timeout_and_failure_do_not_fail_the_others() -> None:
    probe = Probe()
    runner = ToolRunner(
        [
            Tool("slow", probe, timeout_s=0.1),
            Tool("fault_injection", fault_injection_always_fails, timeout_s=1),
            Tool("fast", probe, timeout_s=1),
        ]
    )
    results = asyncio.run(
        runner.run_many(
            [
                ToolCall("slow", {"delay": 2.0}),
                ToolCall("fault_injection", {}),
                ToolCall("fast", {"delay": 0.01, "tag": "ok"}),
                ToolCall("nope", {}),
            ]
        )
    )
    slow, fault, fast, unknown = results
    assert not slow.ok and slow.error is not None and slow.error.code == "tool_timeout"
    assert slow.record.error == "tool_timeout" and 90 <= slow.record.ms < 1000
    assert not fault.ok and fault.record.error == "tool_error"
    assert "fault injected" in (fault.error.message if fault.error else "")
    assert fast.ok and fast.value == "ok" and fast.record.error == ""
    assert unknown.record.error == "unknown_tool"


def test_breaker_opens_after_repeated_failures() -> None:
    async def scenario() -> tuple[list[str], str]:
        runner = ToolRunner(
            [Tool("fault_injection", fault_injection_always_fails, timeout_s=1)],
            breaker_failures=2,
            breaker_reset_s=60,
        )
        codes = []
        for _ in range(4):
            result = await runner.run(ToolCall("fault_injection", {"n": 1}))
            codes.append(result.record.error)
        return codes, await runner.breaker_state("fault_injection")

    codes, state = asyncio.run(scenario())
    assert codes == ["tool_error", "tool_error", "tool_unavailable", "tool_unavailable"]
    assert state == "opened"


def test_records_carry_a_canonical_args_digest() -> None:
    assert args_digest({"a": 1, "b": [1, 2]}) == args_digest({"b": [1, 2], "a": 1})
    assert args_digest({"a": 1}) != args_digest({"a": 2})
    assert len(args_digest({})) == 16
    runner = ToolRunner([Tool("fee_calculator", fee_calculator)])
    args = {"product": PRODUCT, "annual_spend": 40000.0}
    (result,) = asyncio.run(runner.run_many([ToolCall("fee_calculator", args)]))
    assert result.record.args_digest == args_digest(args)
    assert result.record.ms >= 0


def test_fee_calculator_figures() -> None:
    met = asyncio.run(fee_calculator(product=PRODUCT, annual_spend=40000))
    assert met.gross == 695 and met.waived == 695 and met.net == 0
    assert met.fees[0].waived and met.rates == {"foreign_transaction_pct": 0.0}
    assert met.other_conditions == ["annual fee: first year free for new applicants"]
    short = asyncio.run(fee_calculator(product=PRODUCT, text="I only spend $12,500 a year"))
    assert short.annual_spend == 12500 and short.net == 695
    assert short.fees[0].shortfall == 17500
    unknown = asyncio.run(fee_calculator(product=PRODUCT))
    assert unknown.annual_spend is None and unknown.net == 695


def test_the_yearly_cost_counts_only_what_every_customer_pays_each_year() -> None:
    product = msgspec.structs.replace(
        PRODUCT,
        fees={
            "annual_fee": 695.0,
            "monthly_fee": 10.0,
            "supplementary_card_fee": 95.0,
            "late_payment_fee": 40.0,
            "foreign_transaction_pct": 0.0,
        },
    )
    quote = asyncio.run(fee_calculator(product=product, annual_spend=18000))
    assert {line.fee: line.per_year for line in quote.fees} == {
        "annual_fee": 1,
        "monthly_fee": 12,
        "supplementary_card_fee": 0,
        "late_payment_fee": 0,
    }
    assert quote.gross == 695 + 120 and quote.net == 815  # not + 95 + 40: those are per event
    text = describe_quote(quote, "en")
    assert "Net yearly cost: 815 USD." in text
    assert text.endswith(
        "Charged only when they apply: supplementary card fee 95 USD, late payment fee 40 USD."
    )
    zh = describe_quote(quote, "zh")
    assert "年费 695 美元" in zh and "年度净费用 815 美元" in zh
    assert "发生时才收取：附属卡费 95 美元、逾期还款费 40 美元。" in zh
    only_events = msgspec.structs.replace(PRODUCT, fees={"late_payment_fee": 40.0}, waivers=[])
    quote = asyncio.run(fee_calculator(product=only_events))
    assert quote.net == 0
    assert describe_quote(quote, "en") == (
        "There is no yearly fee. Charged only when they apply: late payment fee 40 USD."
    )


def test_product_facts_speak_the_sessions_language() -> None:
    en = asyncio.run(product_facts(product=PRODUCT, intent="price_objection"))
    assert [f.text for f in en[:2]] == ["annual fee: 695 USD", "foreign transaction fee: 0%"]
    zh = asyncio.run(product_facts(product=PRODUCT, intent="price_objection", language="zh"))
    assert [f.text for f in zh[:2]] == ["年费：695 美元", "境外交易手续费：0%"]
    assert "年费减免：card spend of 30,000 USD or more in a card year" in [f.text for f in zh]


def test_parse_spend() -> None:
    assert parse_spend("about $40,000 a year") == 40000
    assert parse_spend("我每年大概消费4万") == 40000
    assert parse_spend("大约4.5万美元") == 45000
    assert parse_spend("around 40k on the card") == 40000
    assert parse_spend("I have 2 cards for 3 years") is None
    assert parse_spend("30000元") == 30000


@pytest.mark.parametrize(
    ("text", "spend"),
    [
        ("The annual fee is $695, that's too much", None),
        ("年费695元太贵了", None),
        ("Why should I pay 695 dollars a year?", None),
        ("It costs $1,200 a year", None),
        ("The fee is $695 but I spend $30,000 a year", 30000),
        ("I spend $2,000 a month on it", 24000),
        ("my monthly spend is about $1,500", 18000),
        ("我每月刷5000元", 60000),
        ("I put about 25k on it annually", 25000),
    ],
)
def test_parse_spend_does_not_read_a_price_as_spend(text: str, spend: float | None) -> None:
    assert parse_spend(text) == spend


def test_playbook_is_bilingual_for_every_intent() -> None:
    from appliance.practice.model import INTENTS

    for intent in INTENTS:
        for language in ("en", "zh"):
            entry = asyncio.run(objection_playbook(intent=intent, language=language))  # type: ignore[arg-type]
            assert entry.intent == intent and entry.technique and entry.example
    assert asyncio.run(objection_playbook(intent="nonsense")).intent == "unclear"


def test_every_stage_slot_has_advice_in_both_languages() -> None:
    from appliance.practice.agents.coach_tools import load_slot_playbook
    from appliance.practice.stages import ALL_SLOTS

    book = load_slot_playbook()
    assert set(book) == set(ALL_SLOTS)
    for slot in ALL_SLOTS:
        for language in ("en", "zh"):
            assert book[slot][language]["technique"].strip(), (slot, language)
            assert book[slot][language]["example"].strip(), (slot, language)
    named = asyncio.run(
        objection_playbook(
            intent="filler",
            language="zh",
            next_slot="customer_addressed_by_name",
            customer="陈先生",
        )
    )
    assert named.slot == "customer_addressed_by_name" and named.example.startswith("陈先生，")
    # with no open slot, or an intent with its own answer, the intent's entry
    assert asyncio.run(objection_playbook(intent="unclear")).slot is None
    own = asyncio.run(objection_playbook(intent="price_objection", next_slot="budget"))
    assert own.intent == "price_objection" and own.slot is None


def test_a_waiver_sentence_reads_inside_the_brackets() -> None:
    product = msgspec.structs.replace(
        PRODUCT,
        waivers=[
            Waiver(
                fee="annual_fee",
                condition="The annual fee of USD 695 is waived for the next card year when the "
                "cardholder spends USD 25,000 or more.",
                min_annual_spend=25000.0,
            )
        ],
    )
    text = describe_quote(asyncio.run(fee_calculator(product=product, annual_spend=300)), "en")
    assert "would waive it (the annual fee of USD 695 is waived for the next card year" in text
    assert "USD 25,000 or more)" in text and "more.)" not in text


def test_a_citation_of_a_document_without_pages_names_its_passage(
    loop: LoopThread, knowledge: KnowledgeService
) -> None:
    """The Chinese FAQ is Markdown: no pages. The tip's citation carries the passage the
    document page marks (QA: such a citation opened the page with nothing marked)."""
    search = KnowledgeSearchTool(knowledge, k=3)
    hits = loop.run(search(query="白金卡年费是多少", collection=COLLECTION))
    faq = [h.citation for h in hits if h.citation.title == "platinum-faq-zh"]
    assert faq, [h.citation for h in hits]
    assert faq[0].page is None and faq[0].passage is not None
    sheet = [h.citation for h in hits if h.citation.title == "platinum-product-sheet"]
    assert all(c.page is not None and c.passage is None for c in sheet)
