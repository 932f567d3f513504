# ruff: noqa: RUF001 (Chinese comment text has full-width punctuation)
"""The evaluator: a quick deterministic score per turn, and the end-of-session report.

Quick score (``score_turn``, no LLM), per rubric dimension that applies to the turn (its
``stages`` empty, or containing the stage the turn started in or ended in, or the turn covered
a slot of one of those stages: ``turn_slots``; others are left out of ``TurnScore.scores``).
The slots matter after an early objection: the call jumps past NEEDS_DISCOVERY, and "How much
do you spend on the card a year?" asked while handling it is still discovery. Start at 5,
then, from the trainee's line:

- compliance dimension (key containing "compliance"): 10, minus 5 per block flag and 2 per
  warn flag of the session's rules on the trainee's line; nothing else counts;
- every other dimension: +2 for a question (not small talk: ``asks_a_question``) when the
  dimension covers needs discovery (its key mentions "need"/"discover" or its stages include
  NEEDS_DISCOVERY); +1 for addressing the customer by name when it covers the opening or
  rapport; +2 for a concrete fact (a number, or a distinctive word of the product's name,
  fees, benefits or waivers: ``product_terms``; "your card" is not one) when it covers
  product, objections or closing; +1 for an acknowledgement ("I understand", "理解"...) right
  after a customer objection; -2 for a very short line (under 4 words, or 6 CJK characters);
  +1 / -1 when the customer's mood went up / down this turn; -4 per block and -1 per warn
  compliance flag. Clamped to 0..10.

Report (``report``): one ``generate_json`` call (priority ``evaluator``) into the fixed
:class:`ReportOut` type, registered at construction. Its dimensions map to the rubric's by
key, else by position. Evidence quotes are then filled deterministically and verbatim from
the referenced turns (the trainee's line, cut at a word boundary to 200 characters).

Consistency guard: a dimension's output is *inconsistent* when

1. an evidence turn number is beyond the transcript (``evidence_out_of_range``);
2. score >= 7 while an evidence turn carries a block-severity trainee compliance incident
   (``high_score_with_incident``);
3. score >= 7 for a dimension with stages while none of its evidence turns took place in one
   of those stages (``off_stage``); at any score when some turns did take place there (or did
   their work) and the evidence names none of them (a 0 for closing quoting the greeting, when
   turn 6 tried to close);
4. the score is 5 or more points below (``low_vs_quick``) or above (``high_vs_quick``) the
   mean quick score of the dimension over its turns (for a compliance dimension: the lowest,
   since the worst turn decides compliance; a 0 after a "risk-free" claim is right);
5. the output has no entry for the dimension (``missing``).

When any dimension is inconsistent the model is asked once more, with each problem stated. A
dimension still inconsistent after that is resolved deterministically: its score becomes the
rounded mean quick score, its evidence the (up to 3) turns with its best quick scores (for a
compliance dimension: the lowest quick score, and the turns that scored it: the worst turn
decides compliance), and its comment says what the score rests on, in the session's language
(why the model's answer was not used is logged, not shown to the trainee). If the LLM fails altogether (busy, unavailable, invalid output twice), the whole
report is built deterministically that way and ``generated_by`` says so (``deterministic
(busy)``; ``deterministic (inconsistent: MODEL)`` when the model answered but nothing of its
answer was kept: the bundled 270M model mostly copies the skeleton's 0 and "..."). A dimension
the model scored without a comment is resolved the same way: from the per-turn scores when it
has any (a bare 0 beside the 9.0 the practice page showed for a turn reads as a contradiction
nobody can explain), else "not shown in this call" (a bare number would read as a judgement of
turns that were never in its stages). The model's comment, when it has one, is kept before the
deterministic one.

A session that ended with no turns is not scored: its report has ``scored`` False and
``not_scored_reason`` "no_turns", no dimension scores, and the LLM is not called.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Collection, Sequence
from typing import Annotated

import msgspec

from appliance.llm.base import GenerateRequest, LLMBackend, Message
from appliance.llm.errors import LLMError
from appliance.practice.agents.compliance import RuleCompliance
from appliance.practice.fees import fee_label
from appliance.practice.model import (
    ComplianceIncident,
    DimensionScore,
    Evidence,
    IntentResult,
    Product,
    Report,
    RubricDimension,
    SessionContext,
    Stage,
    StageState,
    TurnRecord,
    TurnScore,
)
from appliance.practice.stages import ALL_SLOTS, SLOTS, extract, missed_slots

log = logging.getLogger(__name__)

MAX_TURNS = 200
GAP = 5.0
"""Points between a model score and the mean quick score that count as a contradiction."""
QUOTE_CHARS = 200
OBJECTIONS = frozenset(
    {
        "price_objection",
        "competitor_comparison",
        "hesitation",
        "soft_rejection",
        "negotiation",
        "time_pressure",
    }
)
_ACK = re.compile(
    r"\b(i understand|i see|i hear you|that makes sense|fair point|i appreciate|understandable)\b"
    r"|理解|明白|确实|您说得对",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"[?？]|吗|呢|^\s*(what|how|why|when|which|who|could|can|would|do|does|are|is)\b",
    re.IGNORECASE,
)
_SMALL_TALK = re.compile(
    r"\bhow (are|have) you( been| doing)?( today| this morning)?\b|\bhow('s| is) (your day|"
    r"it going|everything|life)\b|\bhow do you do\b|你好吗|您好吗|最近(怎么样|好吗|还好吗)|"
    r"还好吗|今天好吗|过得怎么样",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?。！？]+[.!?。！？]*")


def asks_a_question(text: str) -> bool:
    """Whether the line asks something other than small talk ("How are you today?" is a
    greeting, not needs discovery)."""
    return any(
        _QUESTION.search(sentence) and not _SMALL_TALK.search(sentence)
        for sentence in _SENTENCE.findall(text)
    )


def unscored_report(ctx: SessionContext, compliance: Sequence[ComplianceIncident]) -> Report:
    """The report of a session that ended before the trainee said anything: ``scored`` False,
    no dimension scores (so no 0 that trends would average in), and no LLM call."""
    focus = (
        "本次练习没有对话轮次，因此未评分。请至少与客户交流一轮后再结束练习。"
        if ctx.language == "zh"
        else "This session had no turns, so it was not scored. "
        "Talk with the customer at least once before ending a session."
    )
    return Report(
        session_id=ctx.session_id,
        rubric_id=ctx.rubric.id,
        rubric_version=ctx.rubric.version,
        overall=0.0,
        dimensions=[],
        strengths=[],
        improvements=[],
        recommended_focus=focus,
        slot_coverage={slot: bool(ctx.stage.slots.get(slot)) for slot in ALL_SLOTS},
        slots_missed=missed_slots(ctx.stage),
        compliance=list(compliance),
        turns=0,
        generated_by="not scored (no turns)",
        scored=False,
        not_scored_reason="no_turns",
    )


# --- the fixed output type of the report call ---------------------------------------------


class DimensionOut(msgspec.Struct, kw_only=True):
    """One dimension as the model scores it."""

    key: Annotated[str, msgspec.Meta(max_length=40)]
    score: Annotated[int, msgspec.Meta(ge=0, le=10)]
    evidence: Annotated[
        list[Annotated[int, msgspec.Meta(ge=1, le=MAX_TURNS)]],
        msgspec.Meta(min_length=1, max_length=3),
    ]
    comment: Annotated[str, msgspec.Meta(max_length=200)]


class ReportOut(msgspec.Struct, kw_only=True):
    """What the model writes for a report (quotes are filled in afterwards)."""

    dimensions: Annotated[list[DimensionOut], msgspec.Meta(min_length=1, max_length=12)]
    strengths: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=160)]], msgspec.Meta(max_length=3)
    ]
    improvements: Annotated[
        list[Annotated[str, msgspec.Meta(max_length=160)]], msgspec.Meta(max_length=3)
    ]
    recommended_focus: Annotated[str, msgspec.Meta(max_length=200)]


def meaningful(text: str) -> bool:
    """Whether model prose says something (not empty, not a copied "..." placeholder)."""
    return len(re.findall(r"[A-Za-z\u4e00-\u9fff]", text)) >= 2


def quote_of(turn: TurnRecord) -> str:
    """A verbatim quote of the turn: the trainee's line (else the customer's), <= 200 chars."""
    text = turn.trainee_text.strip() or turn.npc_text.strip()
    if len(text) <= QUOTE_CHARS:
        return text
    cut = text[:QUOTE_CHARS]
    space = cut.rfind(" ")
    return cut[:space] if space > QUOTE_CHARS // 2 else cut


def _is_compliance(dim: RubricDimension) -> bool:
    return "complian" in dim.key.lower()


def _covers(dim: RubricDimension, stage: Stage, *words: str) -> bool:
    key = (dim.key + " " + dim.name).lower()
    return stage in dim.stages or any(w in key for w in words)


GENERIC_WORDS = frozenset(
    (  # noqa: SIM905 - a word list reads better as one string
        "about after also against before card cards each else every everything first "
        "free from further have into late like more next only other over paid pass "
        "service than that their them then there they this through when will with year "
        "years your"
    ).split()
)
"""Words of four letters or more that a product's texts use but any call says too ("your card
this year"): they are not a sign of product knowledge."""


def product_terms(product: Product) -> tuple[frozenset[str], frozenset[str]]:
    """What names the product: its distinctive Latin words (four letters or more, from its
    name, fee names, benefits and waiver conditions, less :data:`GENERIC_WORDS`), and every
    three-character CJK run of those texts (a Chinese line names the product when it shares
    one: "贵宾室", "免年费")."""
    texts = [product.name, *product.benefits, *(w.condition for w in product.waivers)]
    texts += [fee_label(k, "en") for k in product.fees] + [fee_label(k, "zh") for k in product.fees]
    words = {w for t in texts for w in re.findall(r"[a-z]{4,}", t.lower())} - GENERIC_WORDS
    cjk = frozenset().union(*(cjk_trigrams(t) for t in texts))
    return frozenset(words | {w.removesuffix("s") for w in words}), cjk


def cjk_trigrams(text: str) -> set[str]:
    """Every run of three CJK characters in ``text``."""
    return {
        run[i : i + 3]
        for run in re.findall(r"[\u4e00-\u9fff]{3,}", text)
        for i in range(len(run) - 2)
    }


class RubricEvaluator:
    """The Evaluator agent."""

    def __init__(
        self,
        llm: LLMBackend,
        *,
        compliance: RuleCompliance | None = None,
        max_tokens: int = 700,
        timeout_s: float | None = 180.0,
    ) -> None:
        self.llm = llm
        self.compliance = compliance or RuleCompliance()
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        llm.register_schema(ReportOut)  # an inexpressible schema fails here, at start-up

    # --- quick per-turn score -----------------------------------------------------------------

    @staticmethod
    def turn_stages(ctx: SessionContext, turn: TurnRecord) -> tuple[Stage, Stage]:
        """The stage the turn started in and the one it ended in."""
        before: Stage = "OPENING"
        for record in ctx.history:
            if record.turn < turn.turn:
                before = record.stage
        return before, turn.stage

    @staticmethod
    def turn_slots(ctx: SessionContext) -> dict[int, set[str]]:
        """Turn number -> the slots it covered: the stage FSM's extraction step replayed over
        the history, as the coordinator ran it (intents as recorded)."""
        state = StageState()
        covered: dict[int, set[str]] = {}
        for record in ctx.history:
            found = extract(
                state,
                trainee_text=record.trainee_text,
                npc_text=record.npc_text,
                trainee_intent=IntentResult(label=record.trainee_intent, confidence=1.0),
                customer_intent=IntentResult(
                    label=record.intent, confidence=record.intent_confidence
                ),
                persona_name=ctx.persona.name,
            )
            covered[record.turn] = found
            state = StageState(
                stage=record.stage, slots={**state.slots, **dict.fromkeys(found, True)}
            )
        return covered

    @staticmethod
    def applies(
        dim: RubricDimension, stages: tuple[Stage, Stage], slots: Collection[str] = ()
    ) -> bool:
        """Whether a dimension scores a turn that took place in these stages and covered these
        slots."""
        if not dim.stages or any(s in dim.stages for s in stages):
            return True
        return any(slot in SLOTS[stage] for stage in dim.stages for slot in slots)

    def score_turn(
        self, ctx: SessionContext, turn: TurnRecord, slots: Collection[str] | None = None
    ) -> TurnScore:
        """A quick, deterministic score of one turn (see the module docstring); ``slots``: the
        ones it covered, when the caller has :meth:`turn_slots` already."""
        stages = self.turn_stages(ctx, turn)
        if slots is None:
            history = [r for r in ctx.history if r.turn < turn.turn] + [turn]
            slots = self.turn_slots(msgspec.structs.replace(ctx, history=history))[turn.turn]
        text = turn.trainee_text
        flags = self.compliance.check(text, "trainee", ctx.rules)
        blocks = sum(1 for f in flags if f.severity == "block")
        warns = len(flags) - blocks
        previous = [r for r in ctx.history if r.turn < turn.turn]
        prior_mood = previous[-1].mood if previous else ctx.persona.initial_mood
        prior_intent = previous[-1].intent if previous else ""
        words = len(re.findall(r"[A-Za-z0-9]+", text)) + len(re.findall(r"[\u4e00-\u9fff]", text))
        short = words < 4 if not re.search(r"[\u4e00-\u9fff]", text) else words < 6
        question = asks_a_question(text)
        surname = ctx.persona.name.split()[-1] if ctx.persona.name else ""
        named = bool(ctx.persona.name) and (
            ctx.persona.name.lower() in text.lower() or (surname and surname in text)
        )
        fact = bool(re.search(r"\d", text)) or self._mentions_product(ctx, text)
        scores: dict[str, float] = {}
        for dim in ctx.rubric.dimensions:
            if not self.applies(dim, stages, slots):
                continue
            if _is_compliance(dim):
                scores[dim.key] = float(max(0, 10 - 5 * blocks - 2 * warns))
                continue
            score = 5.0
            if question and _covers(dim, "NEEDS_DISCOVERY", "need", "discover"):
                score += 2
            if named and _covers(dim, "OPENING", "rapport", "opening", "greet"):
                score += 1
            if fact and (
                _covers(dim, "PRODUCT_INTRO", "product", "value")
                or _covers(dim, "OBJECTION_HANDLING", "objection")
                or _covers(dim, "CLOSING", "clos")
            ):
                score += 2
            if prior_intent in OBJECTIONS and _ACK.search(text):
                score += 1
            if short:
                score -= 2
            if turn.mood > prior_mood:
                score += 1
            elif turn.mood < prior_mood:
                score -= 1
            score -= 4 * blocks + warns
            scores[dim.key] = float(min(10.0, max(0.0, score)))
        return TurnScore(turn=turn.turn, scores=scores)

    @staticmethod
    def _mentions_product(ctx: SessionContext, text: str) -> bool:
        """Whether the line names something of the product (see :func:`product_terms`)."""
        if ctx.product is None:
            return False
        words, cjk = product_terms(ctx.product)
        lowered = text.lower()
        said = set(re.findall(r"[a-z]+", lowered))
        if any(w in words or w.removesuffix("s") in words for w in said):
            return True
        return not cjk.isdisjoint(cjk_trigrams(text))

    # --- report -----------------------------------------------------------------------------

    def _quick(self, ctx: SessionContext) -> dict[str, list[tuple[int, float]]]:
        """Dimension key -> [(turn, quick score)] over the turns it applies to."""
        table: dict[str, list[tuple[int, float]]] = {d.key: [] for d in ctx.rubric.dimensions}
        covered = self.turn_slots(ctx)
        for turn in ctx.history:
            for key, value in self.score_turn(ctx, turn, covered[turn.turn]).scores.items():
                table[key].append((turn.turn, value))
        return table

    def prompt(self, ctx: SessionContext, problems: Sequence[str] = ()) -> list[Message]:
        """The report request's messages (transcript, rubric, and any problems to fix)."""
        trainee = ctx.trainee_name or "Salesperson"
        lines = [
            f"Turn {t.turn}. {trainee}: {' '.join(t.trainee_text.split())}\n"
            f"Turn {t.turn}. {ctx.persona.name}: {' '.join(t.npc_text.split())}"
            for t in ctx.history
        ]
        dims = "\n".join(
            f"{i + 1}. key={d.key} ({d.name}): {d.description}"
            for i, d in enumerate(ctx.rubric.dimensions)
        )
        language = "Chinese" if ctx.language == "zh" else "English"
        entries = ", ".join(
            f'{{"key": "{d.key}", "score": 0-10, "evidence": [turn numbers], "comment": "..."}}'
            for d in ctx.rubric.dimensions
        )
        skeleton = (
            f'{{"dimensions": [{entries}], "strengths": ["..."], "improvements": ["..."], '
            '"recommended_focus": "..."}'
        )
        system = (
            f"You evaluate a sales training call. {trainee} is the trainee, "
            f"{ctx.persona.name} the customer. Scenario objective: {ctx.scenario.objective}\n"
            f"Score {trainee} on each rubric dimension below, in this order, 0-10, citing 1-3 "
            f"turn numbers (1-{len(ctx.history)}) as evidence, with a one-sentence comment. "
            f"Then list strengths, improvements and a recommended focus. Write in {language}. "
            "Answer with JSON only, one entry per rubric dimension, in this shape:\n"
            f"{skeleton}\n"
            f"Rubric:\n{dims}"
        )
        user = "Transcript:\n" + "\n".join(lines)
        if problems:
            user += "\n\nYour previous answer had these problems; fix them:\n" + "\n".join(
                f"- {p}" for p in problems
            )
        return [Message(role="system", content=system), Message(role="user", content=user)]

    async def _ask(self, ctx: SessionContext, problems: Sequence[str]) -> ReportOut:
        request = GenerateRequest(
            messages=self.prompt(ctx, problems),
            max_tokens=self.max_tokens,
            temperature=0.0,
            priority="evaluator",
            session_key=f"evaluator:{ctx.session_id}",
            reply_name="Evaluation (JSON)",
            timeout_s=self.timeout_s,
        )
        return await self.llm.generate_json(ReportOut, request)

    @staticmethod
    def match(ctx: SessionContext, out: ReportOut) -> dict[str, DimensionOut]:
        """Rubric key -> the model's entry: by key, else by position."""
        by_key = {d.key: d for d in out.dimensions}
        matched: dict[str, DimensionOut] = {}
        for i, dim in enumerate(ctx.rubric.dimensions):
            if dim.key in by_key:
                matched[dim.key] = by_key[dim.key]
            elif i < len(out.dimensions) and out.dimensions[i].key not in {
                d.key for d in ctx.rubric.dimensions
            }:
                matched[dim.key] = out.dimensions[i]
        return matched

    def problems(
        self,
        ctx: SessionContext,
        matched: dict[str, DimensionOut],
        quick: dict[str, list[tuple[int, float]]],
        incidents: Sequence[ComplianceIncident],
    ) -> dict[str, str]:
        """Dimension key -> what is inconsistent about it (see the module docstring)."""
        turns = {t.turn: t for t in ctx.history}
        blocked = {i.turn for i in incidents if i.who == "trainee" and i.severity == "block"}
        found: dict[str, str] = {}
        for dim in ctx.rubric.dimensions:
            out = matched.get(dim.key)
            if out is None:
                found[dim.key] = f"{dim.key}: missing from the answer"
                continue
            beyond = [e for e in out.evidence if e not in turns]
            applicable = {t for t, _ in quick[dim.key]}
            values = [v for _, v in quick[dim.key]]
            mean = sum(values) / len(values) if values else None
            what = "average"
            if values and _is_compliance(dim):  # the worst turn decides, as in _resolved
                mean, what = min(values), "lowest is"
            if beyond:
                found[dim.key] = (
                    f"{dim.key}: evidence turns {beyond} do not exist "
                    f"(the transcript has turns 1-{len(turns)})"
                )
            elif out.score >= 7 and any(e in blocked for e in out.evidence):
                found[dim.key] = (
                    f"{dim.key}: score {out.score} is high but evidence turns "
                    f"{sorted(set(out.evidence) & blocked)} have compliance incidents"
                )
            elif out.score >= 7 and dim.stages and not applicable.intersection(out.evidence):
                found[dim.key] = (
                    f"{dim.key}: score {out.score} is high but no evidence turn took place in "
                    f"its stages ({', '.join(dim.stages)}) or did their work"
                )
            elif dim.stages and quick[dim.key] and not applicable.intersection(out.evidence):
                found[dim.key] = (
                    f"{dim.key}: evidence turns {sorted(out.evidence)} are not the turns that "
                    f"took place in its stages ({', '.join(dim.stages)}) or did their work: "
                    f"{sorted(applicable)}"
                )
            elif mean is not None and out.score <= mean - GAP:
                found[dim.key] = (
                    f"{dim.key}: score {out.score} is low but the per-turn scores' {what} "
                    f"{mean:.1f}"
                )
            elif mean is not None and out.score >= mean + GAP:
                found[dim.key] = (
                    f"{dim.key}: score {out.score} is high but the per-turn scores' {what} "
                    f"{mean:.1f}"
                )
        return found

    def _resolved(
        self, ctx: SessionContext, dim: RubricDimension, quick: list[tuple[int, float]], why: str
    ) -> tuple[int, list[int], str]:
        """A dimension's score, evidence and comment from the quick scores alone.

        The comment tells the trainee what the score rests on, in the session's language; why
        the model's own answer was not used (``why``, in English for the model) goes to the log.
        """
        log.info("evaluator: %s scored from the per-turn scores (%s)", dim.key, why)
        zh = ctx.language == "zh"
        if quick and _is_compliance(dim):  # the worst turn decides compliance
            worst = min(v for _, v in quick)
            mean = worst
            evidence = sorted(t for t, v in quick if v == worst)[:3]
            where = (
                "第 " + "、".join(str(t) for t in evidence) + " 轮"
                if zh
                else ("turn " if len(evidence) == 1 else "turns ")
                + ", ".join(str(t) for t in evidence)
            )
            comment = (
                f"依据逐轮评分：最低 {worst:g}/10（{where}），合规看最差的一轮。"
                if zh
                else f"Based on the per-turn scores: the lowest, {worst:g}/10 ({where}); "
                "compliance is as good as the worst turn."
            )
        elif quick:
            mean = sum(v for _, v in quick) / len(quick)
            best = sorted(quick, key=lambda tv: (-tv[1], tv[0]))[:3]
            evidence = sorted(t for t, _ in best)
            comment = (
                f"依据逐轮评分：{len(quick)} 轮平均 {mean:.1f} 分。"
                if zh
                else f"Based on the per-turn scores: {mean:.1f} on average over "
                f"{len(quick)} turn{'s' if len(quick) != 1 else ''}."
            )
        else:  # no turn in the dimension's stages: nothing was shown
            mean = 0.0
            last = ctx.history[-1].turn if ctx.history else 0
            evidence = [last] if last else []  # where the call ended, before those stages
            comment = (
                f"本次通话在第 {last} 轮结束，没有进入这一维度对应的阶段，无从体现。"
                if zh
                else f"Not shown in this call: it ended at turn {last}, before any turn reached "
                "the stages this dimension covers."
            )
        return round(mean), evidence, comment

    async def _judged(
        self,
        ctx: SessionContext,
        quick: dict[str, list[tuple[int, float]]],
        compliance: Sequence[ComplianceIncident],
    ) -> tuple[ReportOut | None, dict[str, DimensionOut], dict[str, str], str]:
        """The model's answer, its entries per dimension, what stays inconsistent, and by whom."""
        generated_by = f"{self.llm.name}:{self._model_name()}"
        try:
            if not ctx.history:
                raise LLMError("no turns to evaluate")
            out = await self._ask(ctx, ())
            matched = self.match(ctx, out)
            issues = self.problems(ctx, matched, quick, compliance)
            if issues:
                log.info("evaluator: re-asking once: %s", "; ".join(issues.values()))
                second = await self._ask(ctx, list(issues.values()))
                second_matched = self.match(ctx, second)
                second_issues = self.problems(ctx, second_matched, quick, compliance)
                # keep each dimension's consistent answer, from the second try first
                for key in [d.key for d in ctx.rubric.dimensions]:
                    if key not in second_issues:
                        matched[key] = second_matched[key]
                        issues.pop(key, None)
                    elif key in issues:
                        issues[key] = second_issues[key]
                out = second if len(second_issues) <= len(issues) else out
        except LLMError as err:
            log.warning("evaluator: LLM failed (%s); deterministic report", err.code)
            why = "the model gave no usable answer"
            issues = {d.key: why for d in ctx.rubric.dimensions}
            return None, {}, issues, f"deterministic ({err.code})"
        return out, matched, issues, generated_by

    async def report(self, ctx: SessionContext, compliance: Sequence[ComplianceIncident]) -> Report:
        """The final report (see the module docstring); a session with no turns is not scored."""
        if not ctx.history:
            return unscored_report(ctx, compliance)
        quick = await asyncio.to_thread(self._quick, ctx)  # ~30 ms at 200 turns: off the loop
        out, matched, issues, generated_by = await self._judged(ctx, quick, compliance)
        turns = {t.turn: t for t in ctx.history}
        dimensions: list[DimensionScore] = []
        from_model = 0
        for dim in ctx.rubric.dimensions:
            entry = matched.get(dim.key)
            if entry is not None and not meaningful(entry.comment):
                issues[dim.key] = "the model gave a score without a comment"
            if dim.key in issues or entry is None:
                score, evidence, comment = self._resolved(
                    ctx, dim, quick[dim.key], issues.get(dim.key, "missing")
                )
                if entry is not None and meaningful(entry.comment):
                    comment = f"{entry.comment.strip()} {comment}"
            else:
                from_model += 1
                score, evidence, comment = entry.score, entry.evidence, entry.comment.strip()
            unique = sorted({e for e in evidence if e in turns})
            dimensions.append(
                DimensionScore(
                    key=dim.key,
                    name=dim.name,
                    score=max(0, min(10, score)),
                    weight=dim.weight,
                    comment=comment,
                    evidence=[Evidence(turn=e, quote=quote_of(turns[e])) for e in unique],
                    shown=bool(quick[dim.key]),
                )
            )
        total_weight = sum(d.weight for d in dimensions) or 1.0
        overall = round(sum(d.score * d.weight for d in dimensions) / total_weight, 2)
        # what to improve and focus on: the weakest of what the call showed; a dimension it
        # never reached is named as such, not as a weakness (its 0 says where the call ended)
        ranked = sorted((d for d in dimensions if d.shown), key=lambda d: d.score) or sorted(
            dimensions, key=lambda d: d.score
        )
        unreached = [d for d in dimensions if not d.shown]
        strengths = [s.strip() for s in (out.strengths if out else []) if meaningful(s)]
        improvements = [s.strip() for s in (out.improvements if out else []) if meaningful(s)]
        focus = out.recommended_focus.strip() if out and meaningful(out.recommended_focus) else ""
        if out is not None and not (from_model or strengths or improvements or focus):
            # nothing the model said was kept: the report must not claim it was the model's
            generated_by = f"deterministic (inconsistent: {generated_by})"
        if not strengths:
            strengths = [f"{d.name} ({d.score}/10)" for d in reversed(ranked) if d.score >= 6][:2]
        if not improvements:
            improvements = [f"{d.name}: {self._description(ctx, d.key)}" for d in ranked[:2]]
            if unreached and any(d.shown for d in dimensions):
                names = ", ".join(d.name for d in unreached)
                improvements.append(
                    f"本次通话没有进入：{names}。下次把对话推进到这些阶段。"
                    if ctx.language == "zh"
                    else f"Not reached in this call: {names}. Take the next call that far."
                )
        if not focus and ranked:
            focus = f"{ranked[0].name}: {self._description(ctx, ranked[0].key)}"
        return Report(
            session_id=ctx.session_id,
            rubric_id=ctx.rubric.id,
            rubric_version=ctx.rubric.version,
            overall=overall,
            dimensions=dimensions,
            strengths=strengths,
            improvements=improvements,
            recommended_focus=focus,
            slot_coverage={slot: bool(ctx.stage.slots.get(slot)) for slot in ALL_SLOTS},
            slots_missed=missed_slots(ctx.stage),
            compliance=list(compliance),
            turns=len(ctx.history),
            generated_by=generated_by,
        )

    @staticmethod
    def _description(ctx: SessionContext, key: str) -> str:
        return next((d.description for d in ctx.rubric.dimensions if d.key == key), "")

    def _model_name(self) -> str:
        config = self.llm.config
        return config.remote_model if config.backend == "remote" else config.model
