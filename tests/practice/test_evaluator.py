"""The evaluator on the real LLM: quick scores, a 6-turn report with verbatim evidence, the guard."""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec
import pytest
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.practice.agents.compliance import RuleCompliance
from appliance.practice.agents.evaluator import (
    DimensionOut,
    ReportOut,
    RubricEvaluator,
    asks_a_question,
    meaningful,
    product_terms,
)
from appliance.practice.model import ComplianceIncident, Report, SessionContext, TurnRecord
from appliance.practice.stages import ALL_SLOTS
from appliance.web.reports import radar_svg, scored_by

from tests.practice.conftest import PRODUCT, RUBRIC, LoopThread, context

LINES = [
    (
        "Good morning Mr. Chen, this is Anna from the bank. Thank you for calling.",
        "I want to cancel my Platinum Card. The fee is too high.",
        "price_objection",
        "NEEDS_DISCOVERY",
        0.4,
    ),
    (
        "I understand. How much do you spend on the card each year?",
        "About 40,000 dollars, mostly on supplies for my restaurant.",
        "unclear",
        "NEEDS_DISCOVERY",
        0.45,
    ),
    (
        "What matters most to you when you travel for the business?",
        "Lounges, I suppose. But another bank offers a card with no fee.",
        "competitor_comparison",
        "OBJECTION_HANDLING",
        0.45,
    ),
    (
        "This card is guaranteed risk-free, so you should keep it.",
        "Nothing is risk-free. That sounds like a sales pitch.",
        "hesitation",
        "OBJECTION_HANDLING",
        0.3,
    ),
    (
        "I understand your concern. At 40,000 USD a year your 695 USD annual fee is waived.",
        "Waived? Nobody told me that. That changes things.",
        "positive_feedback",
        "CLOSING",
        0.55,
    ),
    (
        "Shall I confirm the waiver for this card year so you keep your lounge access?",
        "Yes, please do that.",
        "final_confirmation",
        "CLOSING",
        0.7,
    ),
]


def six_turns(language: str = "en") -> SessionContext:
    history = [
        TurnRecord(
            turn=i + 1,
            trainee_text=trainee,
            npc_text=npc,
            intent=intent,
            stage=stage,  # type: ignore[arg-type]
            mood=mood,
        )
        for i, (trainee, npc, intent, stage, mood) in enumerate(LINES)
    ]
    covered = ["greeting_done", "customer_addressed_by_name", "rapport", "pain_point", "budget"]
    covered += ["objection_identified", "objection_addressed", "concern_resolved"]
    covered += ["closing_attempt", "next_step_agreed", "commitment", "value_proposition"]
    slots = {slot: slot in covered for slot in ALL_SLOTS}
    return context(session_id=301, history=history, stage="CLOSING", slots=slots, language=language)


def incidents(ctx: SessionContext) -> list[ComplianceIncident]:
    agent = RuleCompliance()
    return [
        ComplianceIncident(
            turn=turn.turn, who=f.who, rule=f.rule, severity=f.severity, excerpt=f.excerpt
        )
        for turn in ctx.history
        for f in agent.check(turn.trainee_text, "trainee", ctx.rules)
    ]


def check_report(report: Report, ctx: SessionContext) -> None:
    """Every rubric dimension, in order, 0-10, with evidence quoting real turns."""
    turns = {t.turn: t for t in ctx.history}
    assert [d.key for d in report.dimensions] == [d.key for d in RUBRIC.dimensions]
    for dim in report.dimensions:
        assert 0 <= dim.score <= 10 and isinstance(dim.score, int)
        assert 1 <= len(dim.evidence) <= 3, dim
        for ev in dim.evidence:
            turn = turns[ev.turn]
            assert ev.quote and (ev.quote in turn.trainee_text or ev.quote in turn.npc_text)
    total = sum(d.weight for d in report.dimensions)
    assert report.overall == round(sum(d.score * d.weight for d in report.dimensions) / total, 2)
    assert report.turns == 6 and report.rubric_id == 1 and report.rubric_version == 1
    assert report.slots_missed == [
        "timeline",
        "decision_maker",
        "feature_linked_to_benefit",
        "interest_signal",
    ]
    assert report.slot_coverage == {slot: slot not in report.slots_missed for slot in ALL_SLOTS}
    assert (4, "No risk-free claims") in [(c.turn, c.rule) for c in report.compliance]
    assert report.strengths and report.improvements and report.recommended_focus
    prose = [*report.strengths, *report.improvements, report.recommended_focus]
    prose += [d.comment for d in report.dimensions]
    assert all(meaningful(p) for p in prose), prose


def test_quick_scores_are_deterministic(llm: LlamaCppBackend) -> None:
    evaluator = RubricEvaluator(llm)
    ctx = six_turns()
    scores = {t.turn: evaluator.score_turn(ctx, t).scores for t in ctx.history}
    # turn 2: 5 + a question 2 + an acknowledgement after an objection 1 + mood went up 1
    assert scores[2]["needs_discovery"] == 9.0
    assert scores[4]["compliance"] == 0.0  # two block hits: 10 - 5 - 5
    assert scores[5]["compliance"] == 10.0
    assert "rapport" in scores[1] and "rapport" not in scores[3]  # rapport is an OPENING dimension
    assert scores[5]["objection_handling"] > scores[4]["objection_handling"]
    assert scores == {t.turn: evaluator.score_turn(ctx, t).scores for t in ctx.history}


def test_six_turn_report_has_verbatim_evidence(loop: LoopThread, llm: LlamaCppBackend) -> None:
    evaluator = RubricEvaluator(llm)
    ctx = six_turns()
    report = loop.run(evaluator.report(ctx, incidents(ctx)), timeout=400)
    check_report(report, ctx)
    assert report.generated_by.startswith("llama_cpp:") or report.generated_by.startswith(
        "deterministic"
    )


class FaultInjectionInconsistentFirstAnswer(RubricEvaluator):
    """Fault injection: the first answer contradicts its evidence; later asks go to the real LLM."""

    def __init__(self, llm: LlamaCppBackend) -> None:
        super().__init__(llm)
        self.asked: list[Sequence[str]] = []

    async def _ask(self, ctx: SessionContext, problems: Sequence[str]) -> ReportOut:
        self.asked.append(list(problems))
        if len(self.asked) == 1:
            return ReportOut(
                dimensions=[
                    DimensionOut(key="rapport", score=9, evidence=[9], comment="Great."),
                    DimensionOut(key="needs_discovery", score=1, evidence=[2], comment="Poor."),
                    DimensionOut(key="objection_handling", score=10, evidence=[4], comment="x"),
                    DimensionOut(key="compliance", score=10, evidence=[4], comment="Clean."),
                ],
                strengths=["Friendly"],
                improvements=["Ask more"],
                recommended_focus="Needs discovery",
            )
        return await super()._ask(ctx, problems)


def test_consistency_guard_re_asks_once_then_resolves(
    loop: LoopThread, llm: LlamaCppBackend
) -> None:
    evaluator = FaultInjectionInconsistentFirstAnswer(llm)
    ctx = six_turns()
    found = incidents(ctx)
    report = loop.run(evaluator.report(ctx, found), timeout=400)
    assert len(evaluator.asked) == 2  # asked once more, never a third time
    problems = " | ".join(evaluator.asked[1])
    assert "rapport: evidence turns [9] do not exist" in problems
    assert "needs_discovery: score 1 is low but the per-turn scores' average" in problems
    assert "compliance: score 10 is high but evidence turns [4] have compliance incidents" in (
        problems
    )
    check_report(report, ctx)
    # whatever the second answer was, nothing inconsistent survives into the report
    by_key = {d.key: d for d in report.dimensions}
    assert not (
        by_key["compliance"].score >= 7 and 4 in [e.turn for e in by_key["compliance"].evidence]
    )
    assert all(e.turn <= 6 for d in report.dimensions for e in d.evidence)
    if "Based on the per-turn scores" in by_key["compliance"].comment:
        # resolved deterministically: the worst turn (the risk-free claim) decides compliance
        assert by_key["compliance"].score == 0
        assert [e.turn for e in by_key["compliance"].evidence] == [4]


def test_a_product_fact_is_a_distinctive_word_not_your_card_this_year() -> None:
    ctx = context()
    said = RubricEvaluator._mentions_product
    assert not said(ctx, "How often do you use your card every year, and what do you like?")
    assert not said(ctx, "Could we talk later? I'll pass it on.")  # "late", "pass": generic
    assert said(ctx, "Do you use the lounges when you fly?")  # plural of a benefit word
    assert said(ctx, "The annual fee can be waived.")
    assert said(ctx, "Your Platinum membership")
    chinese = msgspec.structs.replace(
        PRODUCT,
        name="极光白金卡",
        benefits=["通过极光贵宾室通行证，持卡人可无限次使用机场贵宾室"],  # noqa: RUF001
        waivers=[],
    )
    ctx_zh = msgspec.structs.replace(context(language="zh"), product=chinese)
    assert said(ctx_zh, "您可以免费使用机场贵宾室。")
    assert not said(ctx_zh, "您平时用这张卡消费多吗？")  # noqa: RUF001
    words, cjk = product_terms(chinese)
    assert "贵宾室" in cjk and "card" not in words


def test_discovery_after_an_early_objection_still_scores_needs_discovery(
    llm: LlamaCppBackend,
) -> None:
    """The customer objects at once, the call jumps to OBJECTION_HANDLING; the trainee's
    question about spend there covers a NEEDS_DISCOVERY slot, so needs discovery scores it."""
    history = [
        TurnRecord(
            turn=1,
            trainee_text="Good morning Mr. Chen, thank you for calling.",
            npc_text="I want to cancel. The fee is too high.",
            intent="price_objection",
            stage="OBJECTION_HANDLING",
            mood=0.4,
        ),
        TurnRecord(
            turn=2,
            trainee_text="I understand. How much do you spend on the card each year?",
            npc_text="About 40,000 dollars.",
            stage="OBJECTION_HANDLING",
            mood=0.45,
        ),
    ]
    ctx = context(session_id=303, history=history, stage="OBJECTION_HANDLING")
    evaluator = RubricEvaluator(llm)
    assert "budget" in evaluator.turn_slots(ctx)[2]
    assert "needs_discovery" not in evaluator.score_turn(ctx, history[0]).scores
    assert evaluator.score_turn(ctx, history[1]).scores["needs_discovery"] == 9.0
    assert evaluator._quick(ctx)["needs_discovery"] == [(2, 9.0)]


def test_small_talk_is_not_a_discovery_question() -> None:
    assert not asks_a_question("Good morning, thank you for taking my call. How are you today?")
    assert not asks_a_question("您好，今天好吗？")  # noqa: RUF001
    assert asks_a_question("How are you? And what do you spend on the card each month?")
    assert asks_a_question("How is your business going?")
    assert asks_a_question("您平时用这张卡消费多吗？")  # noqa: RUF001


class FaultInjectionUncommentedUnreachedDimension(RubricEvaluator):
    """Fault injection: the model scores a dimension no turn reached, with no comment."""

    def __init__(self, llm: LlamaCppBackend) -> None:
        super().__init__(llm)
        self.asked = 0

    async def _ask(self, ctx: SessionContext, problems: Sequence[str]) -> ReportOut:
        self.asked += 1
        return ReportOut(
            dimensions=[
                DimensionOut(key="rapport", score=6, evidence=[1], comment="Warm greeting."),
                DimensionOut(key="needs_discovery", score=0, evidence=[1, 2], comment="..."),
                DimensionOut(
                    key="objection_handling",
                    score=2,
                    evidence=[2],
                    comment="No objection came up to handle.",
                ),
                DimensionOut(key="compliance", score=10, evidence=[1], comment="Clean."),
            ],
            strengths=["A warm greeting"],
            improvements=["Ask about needs"],
            recommended_focus="Needs discovery",
        )


def test_an_uncommented_score_of_a_stage_never_reached_says_not_shown(
    loop: LoopThread, llm: LlamaCppBackend
) -> None:
    history = [
        TurnRecord(turn=1, trainee_text=LINES[0][0], npc_text="Hello.", stage="OPENING"),
        TurnRecord(
            turn=2, trainee_text="Nice to talk to you today.", npc_text="Yes.", stage="OPENING"
        ),
    ]
    ctx = context(session_id=302, history=history)
    evaluator = FaultInjectionUncommentedUnreachedDimension(llm)
    report = loop.run(evaluator.report(ctx, []), timeout=60)
    assert evaluator.asked == 1  # nothing inconsistent to re-ask about
    by_key = {d.key: d for d in report.dimensions}
    assert by_key["needs_discovery"].score == 0
    assert by_key["needs_discovery"].comment == (
        "Not shown in this call: it ended at turn 2, before any turn reached the stages this "
        "dimension covers."
    )
    assert [e.turn for e in by_key["needs_discovery"].evidence] == [2]
    # neither stage was reached: trends and team means leave both out, whatever the score
    assert [d.key for d in report.dimensions if not d.shown] == [
        "needs_discovery",
        "objection_handling",
    ]
    # a commented answer about a stage never reached stands as the model gave it
    assert by_key["objection_handling"].comment == "No objection came up to handle."
    assert by_key["objection_handling"].score == 2
    assert by_key["rapport"].comment == "Warm greeting."


class FaultInjectionUncommentedReachedDimension(RubricEvaluator):
    """Fault injection: every dimension answered consistently with the per-turn scores and a
    comment, but objection handling gets a bare score 4 below its turns' mean (inside the
    guard's gap, so no re-ask) and "..." for a comment: what the 270M model did in a QA call,
    where the practice page had shown 9.0 for a turn and the report said 0 with no reason."""

    def __init__(self, llm: LlamaCppBackend) -> None:
        super().__init__(llm)
        self.asked = 0

    async def _ask(self, ctx: SessionContext, problems: Sequence[str]) -> ReportOut:
        self.asked += 1
        quick = self._quick(ctx)
        dims = []
        for d in RUBRIC.dimensions:
            values = [v for _, v in quick[d.key]]
            turns = sorted(t for t, _ in quick[d.key])
            if d.key == "compliance":
                worst = min(values)
                evidence = [t for t, v in quick[d.key] if v == worst][:3]
                dims.append(
                    DimensionOut(
                        key=d.key,
                        score=round(worst),
                        evidence=evidence,
                        comment="A risk-free claim.",
                    )
                )
                continue
            mean = round(sum(values) / len(values))
            if d.key == "objection_handling":
                dims.append(
                    DimensionOut(
                        key=d.key, score=max(0, mean - 4), evidence=turns[:3], comment="..."
                    )
                )
            else:
                dims.append(
                    DimensionOut(key=d.key, score=mean, evidence=turns[:3], comment="Fair.")
                )
        return ReportOut(
            dimensions=dims,
            strengths=["Asked about spend"],
            improvements=["No guarantees"],
            recommended_focus="Compliance",
        )


def test_an_uncommented_score_of_a_reached_dimension_comes_from_the_turns(
    loop: LoopThread, llm: LlamaCppBackend
) -> None:
    ctx = six_turns()
    evaluator = FaultInjectionUncommentedReachedDimension(llm)
    report = loop.run(evaluator.report(ctx, incidents(ctx)), timeout=60)
    check_report(report, ctx)
    assert evaluator.asked == 1  # consistent within the gap: no second question
    quick = evaluator._quick(ctx)["objection_handling"]
    mean = sum(v for _, v in quick) / len(quick)
    by_key = {d.key: d for d in report.dimensions}
    handled = by_key["objection_handling"]
    assert handled.score == round(mean) and handled.shown
    assert handled.comment == (
        f"Based on the per-turn scores: {mean:.1f} on average over {len(quick)} turns."
    )
    assert by_key["needs_discovery"].comment == "Fair."  # the commented answers stand
    # compliance 0 after turn 4's "guaranteed risk-free" is right: the guard compares it with the
    # worst turn, not the mean (it re-asked, then overruled the model, before)
    assert by_key["compliance"].score == 0 and by_key["compliance"].comment == "A risk-free claim."
    assert report.generated_by == "llama_cpp:gemma3-270m-q4-k-m"


class FaultInjectionSkeletonCopy(RubricEvaluator):
    """Fault injection: every answer copies the prompt's skeleton (what the bundled 270M model
    mostly does): every score 0, evidence [1, 2, 3], every comment "..."."""

    async def _ask(self, ctx: SessionContext, problems: Sequence[str]) -> ReportOut:
        return ReportOut(
            dimensions=[
                DimensionOut(key=d.key, score=0, evidence=[1, 2, 3], comment="...")
                for d in RUBRIC.dimensions
            ],
            strengths=["..."],
            improvements=["..."],
            recommended_focus="...",
        )


def test_what_to_improve_is_the_weakest_shown_and_the_rest_is_named_not_reached(
    loop: LoopThread, llm: LlamaCppBackend
) -> None:
    """QA: a call that never left its first stages got "Closing" as its first improvement and
    its recommended focus, the same dimension the page said was not reached."""
    history = [
        TurnRecord(turn=1, trainee_text=LINES[0][0], npc_text="Hello.", stage="OPENING"),
        TurnRecord(
            turn=2, trainee_text="Nice to talk to you today.", npc_text="Yes.", stage="OPENING"
        ),
    ]
    ctx = context(session_id=303, history=history)
    report = loop.run(FaultInjectionSkeletonCopy(llm).report(ctx, []), timeout=60)
    shown = {d.key for d in report.dimensions if d.shown}
    assert shown == {"rapport", "compliance"}
    names = {d.key: d.name for d in report.dimensions}
    assert report.recommended_focus.split(":")[0] in {names[k] for k in shown}
    assert all(i.split(":")[0] in {names[k] for k in shown} for i in report.improvements[:-1])
    assert report.improvements[-1] == (
        "Not reached in this call: Needs discovery, Objection handling. Take the next call that far."
    )
    # the radar says so too, beside the 0 it draws
    svg = radar_svg(
        [d.name for d in report.dimensions],
        [d.score for d in report.dimensions],
        shown=[d.shown for d in report.dimensions],
        not_shown="not reached in this call",
    )
    assert "Needs discovery (not reached in this call)" in svg
    assert "Rapport (not reached" not in svg


def test_a_report_with_nothing_of_the_model_kept_does_not_claim_the_model(
    loop: LoopThread, llm: LlamaCppBackend
) -> None:
    ctx = six_turns()
    report = loop.run(FaultInjectionSkeletonCopy(llm).report(ctx, incidents(ctx)), timeout=60)
    check_report(report, ctx)
    assert report.generated_by == "deterministic (inconsistent: llama_cpp:gemma3-270m-q4-k-m)"
    assert scored_by(report.generated_by, "en") == (
        "scored from the per-turn scores (the answer of llama_cpp:gemma3-270m-q4-k-m did not "
        "match the transcript)"
    )
    assert scored_by("deterministic (busy)", "zh") == "依据逐轮评分（语言模型繁忙）"  # noqa: RUF001
    assert scored_by("llama_cpp:x", "en") == "scored by llama_cpp:x"
    assert scored_by("not scored (no turns)", "zh") == "未评分"


def test_chinese_report(loop: LoopThread, llm: LlamaCppBackend) -> None:
    evaluator = RubricEvaluator(llm)
    ctx = six_turns("zh")
    assert "Write in Chinese" in evaluator.prompt(ctx)[0].content
    problems = evaluator.problems(
        ctx,
        {"rapport": DimensionOut(key="rapport", score=9, evidence=[7], comment="好")},
        {d.key: [] for d in RUBRIC.dimensions},
        [],
    )
    assert problems["rapport"].startswith("rapport: evidence turns [7] do not exist")
    assert problems["compliance"] == "compliance: missing from the answer"
    score, evidence, comment = evaluator._resolved(ctx, RUBRIC.dimensions[0], [(1, 7.0)], "x")
    assert (score, evidence) == (7, [1]) and comment == "依据逐轮评分：1 轮平均 7.0 分。"  # noqa: RUF001
    assert not re.search("[A-Za-z]", comment)  # nothing of the English diagnosis shows


class Node(msgspec.Struct):
    """A recursive type: no grammar can express it."""

    children: list[Node]


def test_nested_and_recursive_structs_in_grammars() -> None:
    from appliance.llm.errors import SchemaError
    from appliance.llm.structured import compile_schema

    nested = compile_schema(ReportOut)  # a Struct inside a Struct: refs inlined for the grammar
    assert "dimensions-item" in nested.gbnf and "$defs" in nested.json_schema

    with pytest.raises(SchemaError, match="recursive"):
        compile_schema(Node)


def test_the_turns_own_slots_score_as_the_replay_does(llm: LlamaCppBackend) -> None:
    """The coordinator gives a turn's quick score the slots the stage FSM found in it
    (``StageUpdate.covered``) instead of replaying the history; both give the same slots and
    the same scores, turn by turn, stage jumps included."""
    from appliance.practice.model import IntentResult, StageState
    from appliance.practice.stages import StageFSM

    lines = [
        ("Good morning Mr. Chen, this is Anna from the bank.", "Hello.", "greeting", 0.9),
        ("How do you use the card, and what matters most to you?", "Travel.", "filler", 0.4),
        ("How much do you spend on the card each year?", "About 40,000.", "filler", 0.5),
        (
            "The fee is too high, I know. It is waived at 30,000.",
            "Too expensive!",
            "price_objection",
            0.8,
        ),
        (
            "Shall we keep the card and talk again next month?",
            "Yes, let's do that.",
            "final_confirmation",
            0.7,
        ),
    ]
    fsm, state = StageFSM(), StageState()
    history: list[TurnRecord] = []
    covered: dict[int, list[str]] = {}
    for n, (said, reply, label, confidence) in enumerate(lines, start=1):
        update = fsm.update(
            state,
            trainee_text=said,
            npc_text=reply,
            trainee_intent=IntentResult(label="unclear", confidence=1.0),
            customer_intent=IntentResult(label=label, confidence=confidence),
            persona_name="Mr. Chen",
        )
        state = update.state
        covered[n] = update.covered
        history.append(
            TurnRecord(
                turn=n,
                trainee_text=said,
                npc_text=reply,
                intent=label,
                intent_confidence=confidence,
                stage=state.stage,
                mood=0.5,
            )
        )
    ctx = context(session_id=304, history=history, stage=state.stage)
    evaluator = RubricEvaluator(llm)
    replayed = evaluator.turn_slots(ctx)
    assert {n: set(slots) for n, slots in covered.items()} == replayed
    assert any(covered.values()) and len({s for c in covered.values() for s in c}) >= 4
    for record in history:
        given = evaluator.score_turn(ctx, record, covered[record.turn]).scores
        assert given == evaluator.score_turn(ctx, record).scores


def test_evidence_that_skips_every_turn_of_the_dimensions_stages_is_inconsistent(
    llm: LlamaCppBackend,
) -> None:
    """A Chinese demo report kept the model's closing 0/10 quoting turns 1-3 (the greeting and
    discovery) while turn 6 had tried to close: the evidence must name a turn that took place
    in the dimension's stages or did their work, when there is one."""
    evaluator = RubricEvaluator(llm)
    ctx = six_turns()
    quick = {d.key: [] for d in RUBRIC.dimensions} | {"objection_handling": [(4, 6.0), (5, 5.0)]}
    off = DimensionOut(key="objection_handling", score=0, evidence=[1, 2, 3], comment="")
    found = evaluator.problems(ctx, {"objection_handling": off}, quick, [])
    assert found["objection_handling"] == (
        "objection_handling: evidence turns [1, 2, 3] are not the turns that took place in its "
        "stages (OBJECTION_HANDLING) or did their work: [4, 5]"
    )
    on = DimensionOut(key="objection_handling", score=3, evidence=[2, 5], comment="Weak answer.")
    assert "objection_handling" not in evaluator.problems(
        ctx, {"objection_handling": on}, quick, []
    )
