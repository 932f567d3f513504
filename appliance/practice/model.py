"""The practice domain's shared types: what the repositories return, what agents take and give.

Everything here is a plain msgspec Struct or a Protocol, so the coordinator, the agents, the
repositories and the API agree on one shape without importing each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from typing import Literal, Protocol

import msgspec

Language = Literal["en", "zh"]
Stage = Literal[
    "OPENING", "NEEDS_DISCOVERY", "PRODUCT_INTRO", "OBJECTION_HANDLING", "CLOSING", "COMPLETED"
]
STAGES: tuple[Stage, ...] = (
    "OPENING",
    "NEEDS_DISCOVERY",
    "PRODUCT_INTRO",
    "OBJECTION_HANDLING",
    "CLOSING",
    "COMPLETED",
)
Speaker = Literal["trainee", "customer"]
Severity = Literal["warn", "block"]

INTENTS: tuple[str, ...] = (
    "price_inquiry",
    "price_objection",
    "product_inquiry",
    "benefit_inquiry",
    "case_request",
    "competitor_comparison",
    "negotiation",
    "hesitation",
    "soft_rejection",
    "time_pressure",
    "positive_feedback",
    "final_confirmation",
    "greeting",
    "filler",
    "unclear",
)


# --- domain (configured by managers; stored by appliance.db.domain) ---------------------------


class Course(msgspec.Struct, kw_only=True):
    """A group of scenarios."""

    id: int
    name: str
    description: str = ""


class Scenario(msgspec.Struct, kw_only=True):
    """A practice situation: what the trainee must achieve, with which product and rubric."""

    id: int
    course_id: int | None
    name: str
    description: str
    """What the trainee reads before starting."""
    objective: str
    """What success means (e.g. "keep the customer; agree a fee waiver")."""
    kind: Literal["retention", "new_sale", "other"] = "other"
    product_id: int | None = None
    rubric_id: int | None = None
    language: Language = "en"
    persona_ids: list[int] = []
    """Personas this scenario may be practised with (empty = any)."""
    knowledge_collection: str = "default"


class Persona(msgspec.Struct, kw_only=True):
    """The customer the NPC plays."""

    id: int
    name: str
    """How the trainee addresses them, e.g. "Mr. Chen"."""
    difficulty: Literal["easy", "medium", "hard"] = "medium"
    description: str
    """Who they are, in a few sentences (written into the NPC prompt)."""
    goals: list[str] = []
    objections: list[str] = []
    """What they push back with, in their own words."""
    knows: list[str] = []
    """What they already know (facts they may mention); anything else they must not invent."""
    language: Language = "en"
    initial_mood: float = 0.5
    """0 = hostile, 1 = delighted."""


class RubricDimension(msgspec.Struct, kw_only=True):
    """One scored dimension of a rubric."""

    key: str
    """Stable identifier, e.g. "needs_discovery"."""
    name: str
    weight: float
    description: str
    stages: list[Stage] = []
    """Stages where this dimension applies (empty = all)."""


class Rubric(msgspec.Struct, kw_only=True):
    """A rubric at one version: an old report keeps the version it was scored with."""

    id: int
    version: int
    name: str
    dimensions: list[RubricDimension]


class Waiver(msgspec.Struct, kw_only=True):
    """A condition that waives a fee, e.g. spend >= 50,000 a year waives the annual fee."""

    fee: str
    """Which fee (a key of Product.fees)."""
    condition: str
    min_annual_spend: float | None = None
    """When the waiver is spend-based: the yearly spend that earns it (for the fee calculator)."""


class Product(msgspec.Struct, kw_only=True):
    """Structured product facts: what the NPC may know and the coach may quote."""

    id: int
    name: str
    currency: str = "USD"
    fees: dict[str, float] = {}
    """e.g. {"annual_fee": 695, "foreign_transaction_pct": 0}."""
    waivers: list[Waiver] = []
    benefits: list[str] = []
    eligibility: list[str] = []
    description: str = ""


class ComplianceRule(msgspec.Struct, kw_only=True):
    """A phrase or regex that must not be said."""

    id: int
    name: str
    kind: Literal["phrase", "regex"]
    pattern: str
    severity: Severity
    applies_to: Literal["trainee", "customer", "both"]
    message: str = ""
    """Why it matters / what to say instead."""


# --- a running session, as the agents see it --------------------------------------------------


class TurnRecord(msgspec.Struct, kw_only=True):
    """One committed turn: the trainee's line and the customer's reply."""

    turn: int
    """1-based."""
    trainee_text: str
    npc_text: str
    intent: str = "unclear"
    """The customer's reply's intent."""
    intent_confidence: float = 0.0
    trainee_intent: str = "unclear"
    stage: Stage = "OPENING"
    """Stage after this turn."""
    mood: float = 0.5
    """Customer mood after this turn."""


class StageState(msgspec.Struct, kw_only=True):
    """Where the conversation stands: the stage and every slot filled so far (all stages)."""

    stage: Stage = "OPENING"
    slots: dict[str, bool] = {}
    """slot key -> filled; keys are appliance.practice.stages.SLOTS' (all stages)."""


class SessionContext(msgspec.Struct, kw_only=True):
    """Everything an agent may know about a session at the start of a turn."""

    session_id: int
    trainee_name: str
    scenario: Scenario
    persona: Persona
    product: Product | None
    rubric: Rubric
    rules: list[ComplianceRule]
    history: list[TurnRecord]
    """Committed turns, oldest first."""
    stage: StageState
    mood: float
    language: Language = "en"


class IntentResult(msgspec.Struct, kw_only=True, frozen=True):
    """A label of appliance.practice.model.INTENTS with a confidence in [0, 1]."""

    label: str
    confidence: float


class ComplianceFlag(msgspec.Struct, kw_only=True, frozen=True):
    """A rule hit in some text."""

    rule_id: int
    rule: str
    """The rule's name."""
    severity: Severity
    who: Speaker
    excerpt: str
    """The matched text with a little context."""
    start: int
    end: int
    """Character offsets of the match in the checked text."""


class Citation(msgspec.Struct, kw_only=True, frozen=True):
    """Where a coach tip's grounding comes from: a document page, or a product fact."""

    kind: Literal["document", "product"]
    title: str
    document_id: int | None = None
    version: int | None = None
    page: int | None = None
    passage: int | None = None
    """The cited passage of a document without pages (Word, Excel, text): its document page
    marks it (``?passage=N``)."""
    snippet: str = ""


class CoachTip(msgspec.Struct, kw_only=True):
    """The coach's advice for the trainee's next line."""

    advice: str
    script_example: str
    stage_hint: Stage | None = None
    citations: list[Citation] = []


class ToolCallRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One tool call, recorded with its turn."""

    name: str
    args_digest: str
    ms: float
    ok: bool
    error: str = ""


class TurnScore(msgspec.Struct, kw_only=True):
    """The evaluator's quick score of one turn: rubric dimension key -> 0-10."""

    turn: int
    scores: dict[str, float]


class Evidence(msgspec.Struct, kw_only=True):
    """A quote from the transcript that supports a score."""

    turn: int
    quote: str
    """Verbatim text of that turn (the trainee's line unless noted)."""


class DimensionScore(msgspec.Struct, kw_only=True):
    """One rubric dimension in a report."""

    key: str
    name: str
    score: int
    """0-10."""
    weight: float
    comment: str
    evidence: list[Evidence]
    shown: bool = True
    """False when no turn of the call reached the dimension's stages: the score stands in the
    report's overall (the call did not show it), but trends, team means and the CSV export
    leave it out, since it measures how the call ended, not the skill; its evidence is the
    turn where the call ended."""


class ComplianceIncident(msgspec.Struct, kw_only=True):
    """A compliance flag as the report lists it."""

    turn: int
    who: Speaker
    rule: str
    severity: Severity
    excerpt: str


class Report(msgspec.Struct, kw_only=True):
    """The end-of-session report."""

    session_id: int
    rubric_id: int
    rubric_version: int
    overall: float
    """Weighted mean of the dimension scores, 0-10."""
    dimensions: list[DimensionScore]
    strengths: list[str]
    improvements: list[str]
    recommended_focus: str
    slot_coverage: dict[str, bool]
    slots_missed: list[str]
    compliance: list[ComplianceIncident]
    turns: int
    generated_by: str
    """Which model / path produced the prose (e.g. "llama_cpp:gemma-3-270m")."""
    scored: bool = True
    """False when there was nothing to score (``not_scored_reason`` says why): then ``overall``
    is 0 and means nothing, ``dimensions`` is empty, and the report stays out of trends."""
    not_scored_reason: Literal["no_turns"] | None = None
    """Why the report is not scored: ``no_turns`` = the session ended before any trainee line."""


# --- agent interfaces (implemented in appliance.practice.agents, built by the factory) -------


class IntentClassifier(Protocol):
    """Local, fast (< 5 ms) classifier of an utterance's intent."""

    def classify(
        self,
        text: str,
        *,
        stage: Stage | None = None,
        previous: Sequence[str] = (),
        confirmable: bool = True,
    ) -> IntentResult:
        """Label ``text``; ``previous`` = the same speaker's earlier intents, oldest first;
        ``confirmable`` False: nothing was proposed yet, so it cannot be a final confirmation."""
        ...


class Customer(Protocol):
    """The NPC: streams the customer's reply in character."""

    def reply(self, ctx: SessionContext, trainee_text: str) -> AsyncIterator[str]:
        """Text pieces of the customer's reply (priority interactive, session KV reused)."""
        ...

    async def warm(self, ctx: SessionContext) -> None:
        """Prepare the session's prompt prefix ahead of its next turn (KV cache), if useful."""
        ...

    def next_mood(
        self, ctx: SessionContext, trainee_intent: IntentResult, flags: Sequence[ComplianceFlag]
    ) -> float:
        """The customer's mood after the trainee's line (0-1)."""
        ...


class Compliance(Protocol):
    """The rules, run on the trainee's text and on the customer's."""

    def check(
        self, text: str, who: Speaker, rules: Sequence[ComplianceRule]
    ) -> list[ComplianceFlag]:
        """Every rule hit in ``text`` for that speaker."""
        ...

    def remove_blocked(self, text: str, flags: Sequence[ComplianceFlag]) -> str:
        """``text`` without the sentences that carry a block-severity flag."""
        ...


class Coach(Protocol):
    """Advice for the trainee's next line, grounded by tools run in parallel."""

    async def tip(
        self, ctx: SessionContext, turn: TurnRecord
    ) -> tuple[CoachTip, list[ToolCallRecord]]:
        """A tip after ``turn`` (priority coach) and the tool calls it made."""
        ...


class Evaluator(Protocol):
    """Per-turn quick scores and the final report."""

    def score_turn(
        self, ctx: SessionContext, turn: TurnRecord, slots: Collection[str] | None = None
    ) -> TurnScore:
        """A quick, deterministic score of one turn (no LLM); ``slots``: the ones the turn
        covered, when the caller knows them (else they are worked out from the history)."""
        ...

    async def report(
        self,
        ctx: SessionContext,
        compliance: Sequence[ComplianceIncident],
    ) -> Report:
        """The final report (JSON-schema path, priority evaluator; consistency guard re-asks once)."""
        ...


class StageChange(msgspec.Struct, kw_only=True, frozen=True):
    """A stage transition and the reason for it."""

    from_stage: Stage
    to_stage: Stage
    reason: Literal["coverage", "early_objection", "closing_signal", "ended"]


class StageUpdate(msgspec.Struct, kw_only=True):
    """What one turn did to the stage state."""

    state: StageState
    filled: list[str]
    """Slot keys newly filled by this turn."""
    changes: list[StageChange]
    covered: list[str] = []
    """Every slot key this turn's lines cover, those filled before included (the turn's quick
    score counts a dimension whose stage slots the turn covered)."""


class StageTracker(Protocol):
    """The stage FSM with its slot extraction step (appliance.practice.stages)."""

    def update(
        self,
        state: StageState,
        *,
        trainee_text: str,
        npc_text: str,
        trainee_intent: IntentResult,
        customer_intent: IntentResult,
        persona_name: str,
    ) -> StageUpdate:
        """Fill slots from one turn, then advance the stage by coverage or by rule."""
        ...

    def end(self, state: StageState) -> StageUpdate:
        """The session ended: the stage becomes COMPLETED (slots as they were)."""
        ...
