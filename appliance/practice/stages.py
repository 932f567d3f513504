"""The stage FSM and its slot extraction step (pure Python, deterministic, no LLM).

Stages run OPENING -> NEEDS_DISCOVERY -> PRODUCT_INTRO -> OBJECTION_HANDLING -> CLOSING ->
COMPLETED. Each stage has slots (``SLOTS``); a turn fills slots of any stage (what was covered
early still counts), then the stage moves:

1. Rules first, on a customer intent of at least ``JUMP_MIN_CONFIDENCE`` (0.4: below it the
   classifier's top label is too often wrong to skip stages on; "谢谢。" read as a soft
   rejection at 0.37 jumped a call from its opening to objection handling).
   - Early objection: a customer intent in ``EARLY_OBJECTION_INTENTS`` while the stage is
     OPENING, NEEDS_DISCOVERY or PRODUCT_INTRO jumps to OBJECTION_HANDLING
     (reason ``early_objection``).
   - Closing signal: a customer ``final_confirmation`` in OBJECTION_HANDLING jumps to CLOSING
     (reason ``closing_signal``).
2. Then coverage: while the current stage's share of filled slots is at least its
   ``THRESHOLDS`` value (0.6 / 0.7 / 0.7 / 0.8 / 0.8), move to the next stage (reason
   ``coverage``); one turn may pass several stages whose slots were covered earlier.
   CLOSING advances to COMPLETED the same way. :meth:`StageFSM.end` closes a session that ends
   before that (reason ``ended``).

Slot extraction, per turn (trainee line first, then the customer's reply; patterns are English
and Simplified Chinese, case-insensitive; "trainee:" = in the trainee's text):

OPENING
    greeting_done: trainee intent ``greeting`` or a greeting in trainee: hello/hi/good
    morning.../你好/您好/早上好...
    customer_addressed_by_name: trainee uses the persona's name, its surname ("Mr. Chen" ->
    "Chen"), or for a Chinese name its surname with an honorific ("陈先生" -> 陈先生/陈总/
    陈女士...).
    rapport: trainee: how are you / thank you for your time / appreciate / loyal customer /
    nice to talk / 最近怎么样 / 感谢 / 老客户 / 很高兴...
NEEDS_DISCOVERY
    pain_point: trainee asks about concerns or needs (what's bothering / why cancel /
    challenge / what matters most to you / how do you use / 顾虑 / 困扰 / 为什么要销 / 最看重 /
    平时怎么用...) or the customer names a problem (frustrated / problem / 不满意 / 麻烦...).
    budget: budget / spend / afford / per month / 预算 / 消费 / 花多少 / 每月... in either text.
    timeline: trainee asks when / how soon / renewal / next trip / 什么时候 / 多久 / 近期...
    decision_maker: decide / decision / partner / wife / accountant / 决定 / 商量 / 做主 /
    合伙人... in either text.
PRODUCT_INTRO
    value_proposition: trainee names what the customer gets (you'll save / earn / get, waiver,
    points, cashback, lounge, insurance / 权益 / 省 / 返现 / 积分 / 免年费...).
    feature_linked_to_benefit: trainee names a feature and links it to a result in the same
    line (which means / so you / saves you / helps you / 这样 / 意味着 / 帮您 / 让您 / 就能...).
    interest_signal: outside OPENING, customer intent positive_feedback, benefit_inquiry,
    product_inquiry, case_request or final_confirmation.
OBJECTION_HANDLING
    objection_identified: customer intent in ``OBJECTION_INTENTS`` (early-objection intents plus
    hesitation), or the trainee names the concern (I understand your concern / 理解您的顾虑).
    objection_addressed: the objection was identified in an earlier turn and the trainee answers
    it (understand / fair point / actually / let me explain / waive / compared / worth / 理解 /
    其实 / 免 / 相比 / 划算 / 值得...).
    concern_resolved: the objection has been addressed (earlier or this turn) and the customer
    replies positive_feedback / final_confirmation or "makes sense / fair enough / 有道理 /
    可以接受...".
CLOSING
    closing_attempt: trainee asks for the business (shall we / would you like to / ready to /
    sign you up / go ahead / 要不要 / 帮您办 / 现在就 / 办理吗...).
    next_step_agreed: customer intent final_confirmation, or a next step (send the form /
    call back / appointment / 发给您 / 预约 / 下周...) in either text with a customer
    positive_feedback.
    commitment: customer intent final_confirmation or "I'll take it / sign me up / I'll keep it /
    我办 / 就这么办 / 不销了 / 成交...".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

from appliance.practice.model import (
    IntentResult,
    Stage,
    StageChange,
    StageState,
    StageTracker,
    StageUpdate,
)

Reason = Literal["coverage", "early_objection", "closing_signal", "ended"]
SLOTS: dict[Stage, tuple[str, ...]] = {
    "OPENING": ("greeting_done", "customer_addressed_by_name", "rapport"),
    "NEEDS_DISCOVERY": ("pain_point", "budget", "timeline", "decision_maker"),
    "PRODUCT_INTRO": ("value_proposition", "feature_linked_to_benefit", "interest_signal"),
    "OBJECTION_HANDLING": ("objection_identified", "objection_addressed", "concern_resolved"),
    "CLOSING": ("closing_attempt", "next_step_agreed", "commitment"),
    "COMPLETED": (),
}
ALL_SLOTS: tuple[str, ...] = tuple(s for slots in SLOTS.values() for s in slots)
THRESHOLDS: dict[Stage, float] = {
    "OPENING": 0.6,
    "NEEDS_DISCOVERY": 0.7,
    "PRODUCT_INTRO": 0.7,
    "OBJECTION_HANDLING": 0.8,
    "CLOSING": 0.8,
}
NEXT: dict[Stage, Stage] = {
    "OPENING": "NEEDS_DISCOVERY",
    "NEEDS_DISCOVERY": "PRODUCT_INTRO",
    "PRODUCT_INTRO": "OBJECTION_HANDLING",
    "OBJECTION_HANDLING": "CLOSING",
    "CLOSING": "COMPLETED",
}
EARLY_STAGES: frozenset[Stage] = frozenset({"OPENING", "NEEDS_DISCOVERY", "PRODUCT_INTRO"})
JUMP_MIN_CONFIDENCE = 0.4
"""The least confidence of the customer's intent for a stage jump by rule. On the held-out
intent set (2026-11-25) it keeps 68 of the 73 right early-objection labels the 0.25 gate
passes and drops 8 of the 13 wrong ones; the coach's customer-side check uses the same bar."""
EARLY_OBJECTION_INTENTS = frozenset(
    {"price_objection", "soft_rejection", "competitor_comparison", "negotiation"}
)
OBJECTION_INTENTS = EARLY_OBJECTION_INTENTS | {"hesitation"}
INTEREST_INTENTS = frozenset(
    {
        "positive_feedback",
        "benefit_inquiry",
        "product_inquiry",
        "case_request",
        "final_confirmation",
    }
)
RESOLVED_INTENTS = frozenset({"positive_feedback", "final_confirmation"})


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(parts), re.IGNORECASE)


GREETING = _rx(
    r"\b(hello|hi|hey|good (morning|afternoon|evening|day)|greetings)\b",
    r"你好|您好|早上好|上午好|下午好|晚上好|^喂",
)
RAPPORT = _rx(
    r"how are you|how('s| is) (your|everything|it going)|hope (you('re| are)|all is) well",
    r"thanks? (you )?for (your time|taking|being|speaking|calling|coming)",
    r"\bappreciate\b|loyal|long[- ]time|valued customer|nice to (meet|talk|speak|hear)",
    r"great to (meet|talk|speak|hear)|pleasure",
    r"最近(怎么样|好吗|还好)|您好吗|感谢|谢谢您|老客户|很高兴|辛苦|打扰",
)
PAIN_ASK = _rx(
    r"what('s| is) (bothering|wrong|the (problem|issue|concern))|why (do|would) you want to cancel",
    r"\b(concerns?|challenges?|frustrat\w*|pain points?|unhappy|dissatisf\w*)\b",
    r"what (made|makes) you (want|consider|think)|what('s| is) not working",
    r"what matters (most )?to you|what('s| is) (most )?important to you|what do you need",
    r"how do you (usually |mostly |normally )?use|what do you (usually |mostly )?use (it|the card) for",
    r"顾虑|困扰|难处|痛点|什么原因|为什么(要|想)?(销|取消|退)|哪里不满意|什么问题|遇到.{0,4}问题",
    r"最看重|最在意|对您来说.{0,4}重要|平时(怎么|主要)用|主要用.{0,4}(做什么|干什么)",
)
PAIN_SAY = _rx(
    r"\b(problem|issue|frustrat\w*|annoy\w*|fed up|tired of|hassle|worried)\b",
    r"不满意|麻烦|烦|受够|问题是|担心",
)
BUDGET = _rx(
    r"\bbudget|\bspend(ing|s)?\b|\bafford|per (month|year)|a month|monthly|annual spend",
    r"how much do you (usually )?(spend|put|charge)",
    r"预算|消费|花多少|花费|每月|每个月|开销|支出|刷多少",
)
TIMELINE = _rx(
    r"\bwhen (do|would|are|will|is|did)\b|timeline|how soon|by when|renewal|upcoming",
    r"next (trip|week|month|year|quarter)|this (month|year|quarter)|deadline",
    r"什么时候|何时|多久|时间表|近期|下个月|下周|今年|年底|到期",
)
DECISION = _rx(
    r"\bdecid\w*|decision|\b(partner|spouse|wife|husband|accountant|boss|family)\b",
    r"anyone else|who (else )?(makes|handles|signs)",
    r"决定|商量|做主|拍板|老婆|太太|老公|爱人|合伙人|会计|家人",
)
VALUE = _rx(
    r"you('ll| will| would| can| could)? (save|earn|get|enjoy|receive|keep)",
    r"\b(waive[drs]?|waiver|points|miles|cash ?back|lounge|insurance|rewards?|benefits?)\b",
    r"权益|优惠|省|返现|积分|里程|免年费|减免|贵宾厅|贵宾室|保险|回馈|好处|礼遇",
)
LINK = _rx(
    r"which means|that means|this means|so (that )?you|that way|saves you|helps you|lets you",
    r"so you('ll| can| could)|you('ll| will) never|covers? you|pays? for itself",
    r"这样|意味着|帮您|让您|就能|您就|可以为您|相当于|等于|(用|派)得上|能用上|适合您|的话.{0,30}(都|就)",
)
CONCERN_NAMED = _rx(
    r"understand your (concern|point|frustration|worry)|i hear you",
    r"\b(understand|know|see|realise|realize)\b.{0,40}\b(worr(y|ies|ied)|concern(s|ed)?|bother(s|ed)?"
    r"|frustrat\w*|put(s)? you off)\b",
    r"理解您的(顾虑|担心|想法|感受)|明白您的(顾虑|意思|担心)",
    r"(理解|明白|知道).{0,12}(顾虑|担心|不满|犹豫)",
)
ADDRESS = _rx(
    r"understand|i hear you|fair (point|concern)|let me (explain|show)|\bactually\b|in fact",
    r"\bwaive|compared|the difference|worth|offset|make up for|more than covers",
    r"理解|明白|其实|实际上|免|相比|对比|划算|值得|抵消|弥补|算一下",
)
RESOLVED = _rx(
    r"makes sense|fair enough|that helps|okay,? then|that works|sounds (fair|reasonable)",
    r"有道理|那还行|可以接受|这样的话|那就好|说得通",
)
CLOSE_ASK = _rx(
    r"shall we|would you like (me )?to|are you ready|ready to|sign you up|go ahead",
    r"can i (go ahead|set|sign|process|put)|let's get you|apply (now|today)|proceed",
    r"(how about|why don't) we (just )?(keep|go ahead|set|start|sign|try|open|apply)",
    r"let's (keep|go ahead|set|start|sign|try|open|apply)",
    r"要不要|帮您(办|申请|开通|处理|保留|留着)|现在就|办理吗|我们就|给您办",
    r"我们(先|就)?.{0,8}(保留|留着|办理|申请|开通|试用|定下来)",
)
NEXT_STEP = _rx(
    r"send (you|me) (the |a )?(form|email|link|details|application)|call (you|me) back",
    r"follow[- ]up|schedule|appointment|next week|tomorrow|by friday",
    r"(call|ring|phone) you (again|next|on|in)|get back to you|check in with you",
    r"发给您|发给我|预约|回访|下周|明天|回电|(再|会)给您打电话|再联系您|跟进",
)
COMMIT = _rx(
    r"i'll take it|sign me up|let's do it|i'll keep (it|the card)|i'm in|it's a deal|i'll apply",
    r"我办(?!不)|就这么办|不销了|我要了|成交|就这么定|我申请",
)

HONORIFICS_EN = re.compile(r"^(mr|mrs|ms|miss|dr|prof|sir|madam)\.?\s+", re.IGNORECASE)
HONORIFICS_ZH = ("先生", "女士", "小姐", "太太", "总", "经理", "老师", "阿姨", "叔叔")
_CJK = re.compile(r"[\u4e00-\u9fff]")


def name_patterns(persona_name: str) -> re.Pattern[str] | None:
    """What counts as addressing ``persona_name``: the name, its surname (+ honorific in zh)."""
    name = persona_name.strip()
    if not name:
        return None
    forms = {re.escape(name)}
    if _CJK.search(name):
        bare = name
        for h in HONORIFICS_ZH:
            if bare.endswith(h) and len(bare) > len(h):
                bare = bare[: -len(h)]
                break
        surname = bare[:1]
        forms.add(re.escape(bare) if len(bare) > 1 else "")
        forms.add(re.escape(surname) + "(" + "|".join(HONORIFICS_ZH) + ")")
        return re.compile("|".join(f for f in forms if f))
    bare = HONORIFICS_EN.sub("", name)
    words = bare.split()
    if words:
        forms.add(r"\b" + re.escape(words[-1]) + r"\b")  # the surname
        if len(words) > 1:
            forms.add(r"\b" + re.escape(words[0]) + r"\b")  # a first name
    return re.compile("|".join(forms), re.IGNORECASE)


def extract(
    state: StageState,
    *,
    trainee_text: str,
    npc_text: str,
    trainee_intent: IntentResult,
    customer_intent: IntentResult,
    persona_name: str,
) -> set[str]:
    """The slots this turn covers (already-filled ones included); rules in the module doc."""
    before = state.slots
    t, c = trainee_text, npc_text
    cust = customer_intent.label
    both = f"{t}\n{c}"
    found: set[str] = set()

    def when(slot: str, condition: bool) -> None:
        if condition:
            found.add(slot)

    when("greeting_done", trainee_intent.label == "greeting" or bool(GREETING.search(t)))
    names = name_patterns(persona_name)
    when("customer_addressed_by_name", names is not None and bool(names.search(t)))
    when("rapport", bool(RAPPORT.search(t)))
    when("pain_point", bool(PAIN_ASK.search(t) or PAIN_SAY.search(c)))
    when("budget", bool(BUDGET.search(both)))
    when("timeline", bool(TIMELINE.search(t)))
    when("decision_maker", bool(DECISION.search(both)))
    when("value_proposition", bool(VALUE.search(t)))
    when("feature_linked_to_benefit", bool(VALUE.search(t) and LINK.search(t)))
    when("interest_signal", state.stage != "OPENING" and cust in INTEREST_INTENTS)
    identified = cust in OBJECTION_INTENTS or bool(CONCERN_NAMED.search(t))
    when("objection_identified", identified)
    addressed = before.get("objection_identified", False) and bool(ADDRESS.search(t))
    when("objection_addressed", addressed)
    when(
        "concern_resolved",
        (before.get("objection_addressed", False) or addressed)
        and (cust in RESOLVED_INTENTS or bool(RESOLVED.search(c))),
    )
    when("closing_attempt", bool(CLOSE_ASK.search(t)))
    when(
        "next_step_agreed",
        cust == "final_confirmation"
        or (bool(NEXT_STEP.search(both)) and cust == "positive_feedback"),
    )
    when("commitment", cust == "final_confirmation" or bool(COMMIT.search(c)))
    return found


PROPOSAL_SLOTS = ("value_proposition", "objection_addressed", "closing_attempt")


def proposes(state: StageState, trainee_text: str) -> bool:
    """Whether the customer has been offered something to agree to: a benefit, an answer to an
    objection or a closing question, earlier in the call (``PROPOSAL_SLOTS``) or in this line.
    The customer's "yes" before that answers a question; it confirms nothing."""
    if any(state.slots.get(s, False) for s in PROPOSAL_SLOTS):
        return True
    return bool(VALUE.search(trainee_text) or CLOSE_ASK.search(trainee_text))


def coverage(state: StageState, stage: Stage | None = None) -> float:
    """Share of ``stage``'s (default: the current stage's) slots that are filled."""
    slots = SLOTS[stage or state.stage]
    if not slots:
        return 1.0
    return sum(1 for s in slots if state.slots.get(s, False)) / len(slots)


def open_slots(state: StageState) -> list[str]:
    """The current stage's slots not filled yet, in order (what the trainee could do next)."""
    return [s for s in SLOTS[state.stage] if not state.slots.get(s, False)]


def missed_slots(state: StageState) -> list[str]:
    """Every slot never filled, in stage order (for the report)."""
    return [s for s in ALL_SLOTS if not state.slots.get(s, False)]


def _full(slots: dict[str, bool], filled: Iterable[str] = ()) -> dict[str, bool]:
    out = {s: bool(slots.get(s, False)) for s in ALL_SLOTS}
    for s in filled:
        out[s] = True
    return out


class StageFSM:
    """The StageTracker of appliance.practice.model (stateless: the state travels in and out)."""

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
        """Fill slots from one turn, then advance the stage by rule, then by coverage."""
        found = extract(
            state,
            trainee_text=trainee_text,
            npc_text=npc_text,
            trainee_intent=trainee_intent,
            customer_intent=customer_intent,
            persona_name=persona_name,
        )
        filled = [s for s in ALL_SLOTS if s in found and not state.slots.get(s, False)]
        new = StageState(stage=state.stage, slots=_full(state.slots, found))
        changes: list[StageChange] = []

        def move(to: Stage, reason: Reason) -> None:
            changes.append(StageChange(from_stage=new.stage, to_stage=to, reason=reason))
            new.stage = to

        cust = customer_intent.label if customer_intent.confidence >= JUMP_MIN_CONFIDENCE else ""
        if new.stage in EARLY_STAGES and cust in EARLY_OBJECTION_INTENTS:
            move("OBJECTION_HANDLING", "early_objection")
        elif new.stage == "OBJECTION_HANDLING" and cust == "final_confirmation":
            move("CLOSING", "closing_signal")
        while new.stage != "COMPLETED" and coverage(new) >= THRESHOLDS[new.stage] - 1e-9:
            move(NEXT[new.stage], "coverage")
        covered = [s for s in ALL_SLOTS if s in found]
        return StageUpdate(state=new, filled=filled, changes=changes, covered=covered)

    def end(self, state: StageState) -> StageUpdate:
        """The session ended: COMPLETED (reason ``ended``) unless it already is."""
        new = StageState(stage="COMPLETED", slots=_full(state.slots))
        changes = (
            []
            if state.stage == "COMPLETED"
            else [StageChange(from_stage=state.stage, to_stage="COMPLETED", reason="ended")]
        )
        return StageUpdate(state=new, filled=[], changes=changes)


def _conforms(fsm: StageFSM) -> StageTracker:
    return fsm  # mypy: StageFSM satisfies the StageTracker Protocol
