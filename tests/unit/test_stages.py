# ruff: noqa: RUF001  (Chinese test utterances use full-width punctuation on purpose)
"""The stage FSM: thresholds, rule jumps, bilingual slot extraction, COMPLETED, missed slots."""

from __future__ import annotations

import pytest
from appliance.practice.model import IntentResult, Stage, StageState, StageUpdate
from appliance.practice.stages import (
    ALL_SLOTS,
    SLOTS,
    THRESHOLDS,
    StageFSM,
    coverage,
    missed_slots,
    name_patterns,
)

FSM = StageFSM()


def intent(label: str) -> IntentResult:
    return IntentResult(label=label, confidence=0.9)


def turn(
    state: StageState,
    trainee: str,
    npc: str = "Okay.",
    *,
    customer: str = "filler",
    trainee_label: str = "unclear",
    persona: str = "Mr. Chen",
) -> StageUpdate:
    return FSM.update(
        state,
        trainee_text=trainee,
        npc_text=npc,
        trainee_intent=intent(trainee_label),
        customer_intent=intent(customer),
        persona_name=persona,
    )


def filled(*slots: str, stage: Stage = "OPENING") -> StageState:
    return StageState(stage=stage, slots={s: True for s in slots})


def test_slot_table_and_thresholds_match_the_spec() -> None:
    assert [len(SLOTS[s]) for s in THRESHOLDS] == [3, 4, 3, 3, 3]
    assert list(THRESHOLDS.values()) == [0.6, 0.7, 0.7, 0.8, 0.8]
    assert len(set(ALL_SLOTS)) == 16


def test_opening_greeting_and_name_in_english_reaches_coverage() -> None:
    up = turn(StageState(), "Good morning Mr. Chen, this is Anna from the bank.", "Hello.")
    assert {"greeting_done", "customer_addressed_by_name"} <= set(up.filled)
    assert "rapport" not in up.filled
    assert up.state.stage == "NEEDS_DISCOVERY"  # 2/3 >= 0.6
    assert [(c.from_stage, c.to_stage, c.reason) for c in up.changes] == [
        ("OPENING", "NEEDS_DISCOVERY", "coverage")
    ]


def test_opening_in_chinese_surname_with_honorific() -> None:
    up = turn(StageState(), "陈总，您好！感谢您抽时间接电话。", "你好。", persona="陈先生")
    assert {"greeting_done", "customer_addressed_by_name", "rapport"} <= set(up.filled)
    assert up.state.stage == "NEEDS_DISCOVERY"


def test_one_slot_is_below_the_opening_threshold() -> None:
    up = turn(StageState(), "Hello there.", "Hi.")
    assert up.filled == ["greeting_done"]
    assert up.state.stage == "OPENING"
    assert up.changes == []
    assert coverage(up.state) == pytest.approx(1 / 3)


def test_name_matching() -> None:
    en = name_patterns("Mr. Chen")
    assert en is not None and en.search("thanks, chen") and not en.search("kitchen")
    zh = name_patterns("王女士")
    assert zh is not None and zh.search("王总您好") and not zh.search("您好")
    assert name_patterns("") is None


def test_needs_discovery_needs_three_of_four() -> None:
    state = filled("greeting_done", "customer_addressed_by_name", stage="NEEDS_DISCOVERY")
    up = turn(state, "What made you want to cancel? How much do you spend a month on it?")
    assert {"pain_point", "budget"} <= set(up.filled)
    assert up.state.stage == "NEEDS_DISCOVERY"  # 2/4 < 0.7
    up = turn(up.state, "Who else is involved in the decision?")
    assert "decision_maker" in up.filled
    assert up.state.stage == "PRODUCT_INTRO"  # 3/4 >= 0.7


@pytest.mark.parametrize(
    "line",
    [
        "May I ask how you use your card at the moment, and what matters most to you?",
        "What is most important to you in a card?",
        "您平时怎么用这张卡？",
        "对您来说什么最重要？",
    ],
)
def test_asking_what_matters_to_the_customer_is_needs_discovery(line: str) -> None:
    assert "pain_point" in turn(StageState(stage="OPENING"), line).filled


def test_small_talk_is_not_needs_discovery() -> None:
    assert "pain_point" not in turn(StageState(stage="OPENING"), "How do you do?").filled


def test_needs_discovery_in_chinese() -> None:
    state = StageState(stage="NEEDS_DISCOVERY")
    up = turn(state, "您每个月的消费大概有多少？有什么顾虑吗？", "我得和合伙人商量。")
    assert {"budget", "pain_point", "decision_maker"} <= set(up.filled)
    up2 = turn(StageState(stage="NEEDS_DISCOVERY"), "您打算什么时候出差？")
    assert "timeline" in up2.filled


def test_product_intro_needs_all_three_and_interest_comes_from_the_customer() -> None:
    state = StageState(stage="PRODUCT_INTRO")
    up = turn(
        state,
        "The lounge access covers you and a guest, which means you save on every trip.",
        customer="filler",
    )
    assert {"value_proposition", "feature_linked_to_benefit"} <= set(up.filled)
    assert up.state.stage == "PRODUCT_INTRO"  # 2/3 < 0.7
    up = turn(
        up.state, "And points never expire.", "Oh, that's nice.", customer="positive_feedback"
    )
    assert "interest_signal" in up.filled
    assert up.state.stage == "OBJECTION_HANDLING"


def test_feature_linked_to_benefit_in_chinese() -> None:
    up = turn(StageState(stage="PRODUCT_INTRO"), "年消费满五万就免年费，这样您一分钱年费都不用交。")
    assert {"value_proposition", "feature_linked_to_benefit"} <= set(up.filled)


def test_a_bare_feature_is_not_linked_to_a_benefit() -> None:
    up = turn(StageState(stage="PRODUCT_INTRO"), "The card has lounge access.")
    assert "value_proposition" in up.filled
    assert "feature_linked_to_benefit" not in up.filled


@pytest.mark.parametrize(
    "label", ["price_objection", "soft_rejection", "competitor_comparison", "negotiation"]
)
@pytest.mark.parametrize("stage", ["OPENING", "NEEDS_DISCOVERY", "PRODUCT_INTRO"])
def test_early_objection_jumps(label: str, stage: Stage) -> None:
    up = turn(StageState(stage=stage), "Let me tell you about the card.", customer=label)
    assert up.state.stage == "OBJECTION_HANDLING"
    assert up.changes[0].reason == "early_objection"
    assert up.changes[0].from_stage == stage
    assert "objection_identified" in up.filled


@pytest.mark.parametrize(
    ("label", "stage", "confidence", "to"),
    [
        ("soft_rejection", "OPENING", 0.37, "OPENING"),  # QA: "谢谢。" read at 0.37
        ("price_objection", "NEEDS_DISCOVERY", 0.278, "NEEDS_DISCOVERY"),
        ("price_objection", "NEEDS_DISCOVERY", 0.4, "OBJECTION_HANDLING"),
        ("final_confirmation", "OBJECTION_HANDLING", 0.3, "OBJECTION_HANDLING"),
        ("final_confirmation", "OBJECTION_HANDLING", 0.7, "CLOSING"),
    ],
)
def test_a_stage_jumps_only_on_a_confident_label(
    label: str, stage: Stage, confidence: float, to: Stage
) -> None:
    up = FSM.update(
        StageState(stage=stage),
        trainee_text="Let me tell you about the card.",
        npc_text="谢谢。",
        trainee_intent=intent("unclear"),
        customer_intent=IntentResult(label=label, confidence=confidence),
        persona_name="Mr. Chen",
    )
    assert up.state.stage == to


def test_hesitation_is_an_objection_slot_but_no_jump() -> None:
    up = turn(StageState(stage="NEEDS_DISCOVERY"), "Any questions?", customer="hesitation")
    assert up.state.stage == "NEEDS_DISCOVERY"
    assert "objection_identified" in up.filled


def test_objection_handling_addressed_then_resolved_advances_to_closing() -> None:
    state = StageState(stage="OBJECTION_HANDLING")
    up = turn(state, "Let me explain.", "It's too expensive.", customer="price_objection")
    # the trainee spoke before the objection was known: not yet addressed
    assert up.filled == ["objection_identified"]
    up = turn(
        up.state,
        "I understand. Actually, if you spend 50,000 a year the fee is waived.",
        "Oh, that makes sense.",
        customer="positive_feedback",
    )
    assert {"objection_addressed", "concern_resolved"} <= set(up.filled)
    assert up.state.stage == "CLOSING"
    assert up.changes[-1].reason == "coverage"


def test_objection_in_chinese() -> None:
    state = StageState(stage="OBJECTION_HANDLING", slots={"objection_identified": True})
    up = turn(state, "理解您的顾虑，其实年消费满五万就能免年费。", "有道理。", customer="filler")
    assert {"objection_addressed", "concern_resolved"} <= set(up.filled)
    assert up.state.stage == "CLOSING"


def test_final_confirmation_in_objection_handling_jumps_to_closing() -> None:
    state = StageState(stage="OBJECTION_HANDLING", slots={"objection_identified": True})
    up = turn(state, "So, what do you think?", "Okay, let's do it.", customer="final_confirmation")
    assert up.changes[0].reason == "closing_signal"
    assert up.state.stage == "CLOSING"  # next step + commitment = 2/3 < 0.8
    up = turn(
        up.state,
        "Great, shall we go ahead with the application now?",
        "Yes, sign me up.",
        customer="final_confirmation",
    )
    assert "closing_attempt" in up.filled
    assert up.state.stage == "COMPLETED"
    assert up.changes[-1].to_stage == "COMPLETED"


def test_closing_in_chinese_to_completed() -> None:
    state = StageState(stage="CLOSING")
    up = turn(state, "要不要我现在就帮您办理？", "好，就这么办。", customer="final_confirmation")
    assert {"closing_attempt", "next_step_agreed", "commitment"} <= set(up.filled)
    assert up.state.stage == "COMPLETED"


def test_several_stages_pass_in_one_turn_when_covered_earlier() -> None:
    slots = {s: True for s in SLOTS["NEEDS_DISCOVERY"] + SLOTS["PRODUCT_INTRO"]}
    state = StageState(stage="OPENING", slots=slots)
    up = turn(state, "Hi Mr. Chen!", "Hello.")
    assert up.state.stage == "OBJECTION_HANDLING"
    assert [c.to_stage for c in up.changes] == [
        "NEEDS_DISCOVERY",
        "PRODUCT_INTRO",
        "OBJECTION_HANDLING",
    ]


def test_state_is_not_mutated_and_every_slot_is_reported() -> None:
    state = StageState()
    up = turn(state, "Hello Mr. Chen.")
    assert state.slots == {} and state.stage == "OPENING"
    assert set(up.state.slots) == set(ALL_SLOTS)


def test_missed_slots_and_end() -> None:
    up = turn(StageState(), "Hello Mr. Chen, how are you?")
    missed = missed_slots(up.state)
    assert "greeting_done" not in missed and "budget" in missed
    assert missed[0] == "pain_point"  # stage order
    end = FSM.end(up.state)
    assert end.state.stage == "COMPLETED"
    assert end.changes[0].reason == "ended"
    assert FSM.end(end.state).changes == []
    assert missed_slots(end.state) == missed


def test_empty_turn_fills_nothing() -> None:
    up = turn(StageState(), "", "", customer="unclear", persona="")
    assert up.filled == []
    assert up.state.stage == "OPENING"


@pytest.mark.parametrize(
    ("line", "slots"),
    [  # a Chinese demo session's lines the extraction missed (2026-11-25), and their English
        (
            "我理解年费让您有顾虑。如果一年消费满两万五千美元，下一年的年费可以免掉。",
            {"objection_identified"},
        ),
        (
            "I understand the annual fee worries you. It is waived at 25,000 a year.",
            {"objection_identified"},
        ),
        (
            "另外您经常出差的话，机场贵宾室和旅行意外保险都能用上，每年还有300美元旅行礼遇金。",
            {"value_proposition", "feature_linked_to_benefit"},
        ),
        (
            "那您看我们先帮您保留这张卡，下个月我再给您打电话跟进消费情况，好吗？",
            {"closing_attempt"},
        ),
        (
            "How about we keep the card, and I call you next month to see how it goes?",
            {"closing_attempt"},
        ),
    ],
)
def test_lines_a_demo_session_missed(line: str, slots: set[str]) -> None:
    up = turn(filled(stage="NEEDS_DISCOVERY"), line, "嗯。")
    assert slots <= set(up.covered), up.covered


def test_a_polite_opening_question_is_not_a_closing_attempt() -> None:
    up = turn(
        StageState(),
        "陈先生您好，我是银行的客户经理小李，今天打扰您几分钟可以吗？",
        "可以。",
        persona="陈先生",
    )
    assert "closing_attempt" not in up.covered
    assert {"greeting_done", "customer_addressed_by_name", "rapport"} <= set(up.covered)


def test_a_follow_up_call_agreed_is_a_next_step() -> None:
    state = filled("closing_attempt", stage="CLOSING")
    up = turn(
        state,
        "下个月我再给您打电话跟进消费情况，好吗？",
        "好的，没问题。",
        customer="positive_feedback",
    )
    assert "next_step_agreed" in up.covered
    up = turn(
        state, "I'll call you next month to check in.", "Sounds good.", customer="positive_feedback"
    )
    assert "next_step_agreed" in up.covered


def test_asking_leave_to_talk_is_not_a_closing_attempt() -> None:
    for line in ("我们先了解一下您的情况，好吗？", "How about we talk about how you use the card?"):
        assert "closing_attempt" not in turn(StageState(), line).covered, line
