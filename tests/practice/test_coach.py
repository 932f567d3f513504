# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""The coach on the real LLM and a real knowledge index: tools, grounded advice, citations."""

from __future__ import annotations

from pathlib import Path

import msgspec
from appliance.config import LLMConfig, load_settings
from appliance.knowledge.service import KnowledgeService
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.practice.agents.coach import GroundedCoach
from appliance.practice.agents.coach_tools import coach_tools, load_playbook
from appliance.practice.agents.compliance import RuleCompliance
from appliance.practice.agents.intent import load_intent_classifier
from appliance.practice.factory import build_agents
from appliance.practice.model import TurnRecord
from appliance.practice.tools import ToolRunner

from tests.practice.conftest import MODEL, RULES, LoopThread, context

PRICE_TURN = TurnRecord(
    turn=1,
    trainee_text="Mr. Chen, how much do you spend on the card each year?",
    npc_text="The annual fee is too high. I spend about $40,000 a year and still pay the fee.",
    intent="price_objection",
    intent_confidence=0.9,
    stage="OBJECTION_HANDLING",
)


def test_price_objection_tip_is_grounded_with_citations(
    loop: LoopThread, llm: LlamaCppBackend, knowledge: KnowledgeService
) -> None:
    agents = build_agents(llm=llm, knowledge=knowledge)
    ctx = context(session_id=201, stage="OBJECTION_HANDLING")
    tip, records = loop.run(agents.coach.tip(ctx, PRICE_TURN))
    assert {r.name for r in records} == {
        "fee_calculator",
        "objection_playbook",
        "knowledge_search",
        "product_facts",
    }
    assert all(r.ok and len(r.args_digest) == 16 for r in records), records
    # fee calculator figures at the stated $40,000: the 695 USD fee is waived, net 0
    assert "40,000 USD" in tip.advice and "695 USD is waived" in tip.advice
    assert "Net yearly cost: 0 USD" in tip.advice
    documents = [c for c in tip.citations if c.kind == "document"]
    assert documents, tip.citations
    sheet = documents[0]
    assert sheet.title == "platinum-product-sheet" and sheet.document_id is not None
    assert sheet.page == 2, sheet  # the fee and waiver facts are on page 2 of the PDF
    assert f"{sheet.title} p.2" in tip.advice
    # one part per line: the technique, the fee figures, the product facts, the document
    lines = tip.advice.split("\n")
    assert len(lines) == 4 and all(line.strip() for line in lines), lines
    assert "40,000 USD" in lines[1] and lines[3].startswith(f"From {sheet.title} p.2")
    assert any(c.kind == "product" and c.title == "Platinum Card" for c in tip.citations)
    assert tip.stage_hint == "OBJECTION_HANDLING"
    assert tip.script_example.strip()
    blocks = RuleCompliance().check(tip.script_example, "trainee", RULES)
    assert not [f for f in blocks if f.severity == "block"]


def test_chinese_tip_and_playbook_fallback_when_llm_unavailable(
    loop: LoopThread, knowledge: KnowledgeService
) -> None:
    # fault injection: a real backend that was never started raises llm_not_started
    unstarted = LlamaCppBackend(LLMConfig(), MODEL)
    coach = GroundedCoach(unstarted, ToolRunner(coach_tools(knowledge)))
    turn = TurnRecord(
        turn=1,
        trainee_text="陈先生，您每年用这张卡消费多少？",
        npc_text="年费太贵了，我每年消费4万美元还要付年费。",
        intent="price_objection",
        stage="OBJECTION_HANDLING",
    )
    tip, records = loop.run(coach.tip(context(session_id=202, language="zh"), turn))
    assert all(r.ok for r in records)
    assert "按年消费 40,000 美元 计算" in tip.advice and "已满足减免条件" in tip.advice
    assert tip.script_example.startswith("我理解这笔年费让您觉得贵")  # the playbook's example
    assert any(c.kind == "document" for c in tip.citations)


def test_greeting_runs_only_the_cheap_tools(loop: LoopThread, knowledge: KnowledgeService) -> None:
    coach = GroundedCoach(LlamaCppBackend(LLMConfig(), MODEL), ToolRunner(coach_tools(knowledge)))
    turn = TurnRecord(turn=1, trainee_text="Hello", npc_text="Hi, who is this?", intent="greeting")
    calls = coach.calls(context(), turn)
    assert [c.name for c in calls] == ["objection_playbook", "product_facts"]


def test_a_script_that_speaks_as_the_customer_is_not_used(knowledge: KnowledgeService) -> None:
    """The bundled model continuing the transcript sometimes takes the customer's side
    ("Good morning, I'm Mr. Chen."): such a line is no script for the trainee."""
    coach = GroundedCoach(LlamaCppBackend(LLMConfig(), MODEL), ToolRunner(coach_tools(knowledge)))
    turn = TurnRecord(turn=1, trainee_text="Hello", npc_text="Hi, who is this?", intent="greeting")
    en, zh = context(), context(language="zh")
    assert not coach._usable(en, turn, "Good morning, I'm Mr. Chen.  How can I help?")
    assert not coach._usable(en, turn, "Hello, this is Chen speaking, what do you want?")
    assert coach._usable(en, turn, "Good morning Mr. Chen, may I ask how you use the card?")
    assert not coach._usable(zh, turn, "您好，我是陈先生，请问有什么事吗？")
    assert coach._usable(zh, turn, "陈先生您好，我是银行的李娜，想了解一下您平时怎么用卡？")


def test_a_script_on_the_customers_side_or_said_before_is_not_used(
    knowledge: KnowledgeService, tmp_path: Path
) -> None:
    """Scripts the bundled model wrote in demo sessions: "I'm sorry, I don't have a card."
    (the customer's side: the intent classifier reads a soft rejection) and, at turn 6, the
    trainee's own first line again. The playbook's example is used instead."""
    environ = {"SALESBOOST__PATHS__MODELS_DIR": str(tmp_path)}
    classifier = load_intent_classifier(load_settings(None, environ=environ).settings)
    coach = GroundedCoach(
        LlamaCppBackend(LLMConfig(), MODEL), ToolRunner(coach_tools(knowledge)), intent=classifier
    )
    first = "Good morning Mr. Chen, this is Li from the bank. Do you have a few minutes?"
    history = [
        TurnRecord(turn=1, trainee_text=first, npc_text="Yes.", intent="filler"),
        TurnRecord(turn=2, trainee_text="How do you use the card?", npc_text="I travel."),
    ]
    ctx = context(history=history)
    turn = history[-1]
    assert not coach._usable(ctx, turn, "I'm sorry, I don't have a card.")
    assert not coach._usable(ctx, turn, "I don't want to pay the fee anymore.")
    assert not coach._usable(ctx, turn, first)
    assert coach._usable(
        ctx, turn, "Since you travel, the lounge access pays for itself, Mr. Chen."
    )
    assert coach._usable(ctx, turn, "Roughly how much do you put on the card in a year?")


def test_the_fee_figures_use_only_a_spend_said_in_the_call(knowledge: KnowledgeService) -> None:
    """The waiver threshold the trainee quotes is not the customer's spend, and what the persona
    knows but has not said (about 40,000 USD a year) is the trainee's to find out."""
    coach = GroundedCoach(LlamaCppBackend(LLMConfig(), MODEL), ToolRunner(coach_tools(knowledge)))
    ctx = context()
    assert any("40,000" in fact for fact in ctx.persona.knows)
    quoting = TurnRecord(
        turn=1,
        trainee_text="The annual fee is waived when you spend 30,000 USD in a card year.",
        npc_text="Is that so?",
        intent="price_inquiry",
    )
    assert coach.stated_spend(ctx, quoting) is None
    zh = TurnRecord(
        turn=1,
        trainee_text="其实当年消费满30,000美元就可以免下一年的年费。",
        npc_text="是吗？",
        intent="price_inquiry",
    )
    assert coach.stated_spend(context(language="zh"), zh) is None
    said = TurnRecord(
        turn=2, trainee_text="How much do you spend?", npc_text="About $18,000 a year."
    )
    assert coach.stated_spend(ctx, said) == 18000
    # the trainee's product figures are not the customer's spend (an English demo session
    # quoted fees "at an annual spend of 300 USD" after "the 300 USD travel credit")
    credit = TurnRecord(
        turn=1,
        trainee_text="You travel a lot: the lounge access and the 300 USD travel credit alone "
        "cover much of the fee.",
        npc_text="I don't use the lounge.",
        intent="price_objection",
    )
    assert coach.stated_spend(ctx, credit) is None
    confirmed = TurnRecord(
        turn=1, trainee_text="So you spend about $40,000 a year on it?", npc_text="Hmm."
    )
    assert coach.stated_spend(ctx, confirmed) == 40000


def test_a_vague_reply_gets_advice_for_the_stages_next_open_slot(
    loop: LoopThread, knowledge: KnowledgeService
) -> None:
    """After a customer's line that says nothing to answer (intent unclear), every tip said
    "clarify: restate what you heard" (four times in a row in a Chinese demo session). The coach
    now steers by the stage: the first slot still open, then the next once that is covered."""
    unstarted = LlamaCppBackend(LLMConfig(), MODEL)  # fault injection: the playbook's example
    coach = GroundedCoach(unstarted, ToolRunner(coach_tools(knowledge)))
    vague = TurnRecord(
        turn=2,
        trainee_text="陈先生，您平时主要用这张卡做什么？",
        npc_text="我会听得更好。",
        intent="unclear",
        intent_confidence=0.3,
        stage="NEEDS_DISCOVERY",
    )
    opening = {"greeting_done": True, "customer_addressed_by_name": True, "rapport": True}
    ctx = context(
        session_id=203,
        language="zh",
        stage="NEEDS_DISCOVERY",
        slots={**opening, "pain_point": True},
    )
    tip, _ = loop.run(coach.tip(ctx, vague))
    assert tip.advice.startswith("问一问客户的消费金额")  # budget: the first slot still open
    assert tip.script_example == "您一年大概在卡上消费多少？"
    assert tip.stage_hint == "NEEDS_DISCOVERY"
    assert "产品资料：年费减免" in tip.advice  # what the spend is for: the waiver threshold
    later = context(
        session_id=203,
        language="zh",
        stage="NEEDS_DISCOVERY",
        slots={**opening, "pain_point": True, "budget": True},
    )
    tip, _ = loop.run(coach.tip(later, vague))
    assert tip.advice.startswith("问一问时间")  # timeline, once the spend was asked
    assert "产品资料" not in tip.advice  # no fact serves it, none shares a word with the reply
    # a vague reply again after one in this stage: the next open slot, not the same advice
    earlier = TurnRecord(
        turn=1, trainee_text="您好。", npc_text="嗯。", intent="filler", stage="NEEDS_DISCOVERY"
    )
    again = msgspec.structs.replace(later, history=[earlier, vague])
    tip, _ = loop.run(coach.tip(again, vague))
    assert tip.advice.startswith("问一问还有谁参与决定")  # decision maker, after timeline
    # a line with something to answer keeps its own advice (a price objection: the fees)
    priced = TurnRecord(
        turn=2,
        trainee_text="陈先生，您平时主要用这张卡做什么？",
        npc_text="年费太贵了。",
        intent="price_objection",
        stage="NEEDS_DISCOVERY",
    )
    tip, _ = loop.run(coach.tip(ctx, priced))
    assert tip.advice.split("\n")[0] == load_playbook()["price_objection"]["zh"]["technique"]
    assert tip.stage_hint == "OBJECTION_HANDLING"
