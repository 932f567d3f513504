# ruff: noqa: RUF001 (Chinese prompt text has full-width punctuation)
"""The coach: advice for the trainee's next line, grounded by tools run in parallel.

After the customer's reply, the customer's intent (``turn.intent``) picks the tools
(``TOOLS_BY_INTENT``; e.g. a price objection runs the fee calculator, the playbook and a
knowledge search). They run concurrently through the :class:`ToolRunner`; a tool that fails or
times out is left out, and its record says why.

- ``advice`` is deterministic text built from what the tools returned: the playbook technique,
  then the concrete facts found (the fee calculator's figures at the spend stated in the
  conversation, the top product facts, and the first sentence of the best knowledge hit with
  its document and page).
- ``citations`` list exactly the tool results that ``advice`` used: the knowledge hit
  (document, version, page) and ``kind="product"`` for product facts and fee figures.
- ``script_example`` comes from the LLM (priority ``coach``, short), prompted with the
  technique and the facts, kept to whole sentences each said once (``whole_sentences``: a
  small model loops, or runs out of tokens mid-sentence); when the output is unusable (under 5
  words / 8 CJK characters, a line introducing itself as the customer, a
  speaker label, more than 70% of its words taken from the customer's line or from one the
  trainee already said, a line the intent classifier reads as the customer's side (a soft
  rejection, price objection or hesitation: "I'm sorry, I don't have a card."), a compliance
  block hit, or the LLM raised busy / unavailable / timeout) the playbook's own example is used.
- When the customer's line gives nothing to answer (intent ``unclear`` or ``filler``), the
  technique is the advice for the current stage's first open slot instead
  (``data/slot_playbook.json``: "Ask about their spend", "Ask who else has a say"), so the coach
  steers the call on rather than saying "clarify what you heard" after every vague reply.
- ``stage_hint`` is the stage the intent points to (``STAGE_BY_INTENT``), else the current
  stage when the advice is for one of its slots, else None.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from appliance.llm.base import GenerateRequest, LLMBackend, Message
from appliance.llm.errors import LLMError
from appliance.llm.sentences import whole_sentences
from appliance.practice.agents.coach_tools import (
    STEERED_INTENTS,
    FeeQuote,
    KnowledgeHit,
    PlaybookEntry,
    ProductFact,
    describe_quote,
    objection_playbook,
    parse_spend,
    product_citation,
)
from appliance.practice.agents.compliance import RuleCompliance
from appliance.practice.model import (
    Citation,
    CoachTip,
    IntentClassifier,
    SessionContext,
    Stage,
    ToolCallRecord,
    TurnRecord,
)
from appliance.practice.stages import open_slots
from appliance.practice.tools import ToolCall, ToolResult, ToolRunner

log = logging.getLogger(__name__)

PRICE = ("fee_calculator", "objection_playbook", "knowledge_search", "product_facts")
TOOLS_BY_INTENT: dict[str, tuple[str, ...]] = {
    "price_objection": PRICE,
    "price_inquiry": PRICE,
    "negotiation": PRICE,
    "competitor_comparison": PRICE,
    "product_inquiry": ("product_facts", "knowledge_search", "objection_playbook"),
    "benefit_inquiry": ("product_facts", "knowledge_search", "objection_playbook"),
    "case_request": ("knowledge_search", "objection_playbook", "product_facts"),
    "hesitation": ("objection_playbook", "knowledge_search", "product_facts"),
    "soft_rejection": ("objection_playbook", "fee_calculator", "product_facts"),
    "time_pressure": ("objection_playbook", "product_facts"),
}
DEFAULT_TOOLS = ("objection_playbook", "product_facts")

STAGE_BY_INTENT: dict[str, Stage] = {
    "price_objection": "OBJECTION_HANDLING",
    "competitor_comparison": "OBJECTION_HANDLING",
    "hesitation": "OBJECTION_HANDLING",
    "soft_rejection": "OBJECTION_HANDLING",
    "negotiation": "OBJECTION_HANDLING",
    "time_pressure": "OBJECTION_HANDLING",
    "price_inquiry": "PRODUCT_INTRO",
    "product_inquiry": "PRODUCT_INTRO",
    "benefit_inquiry": "PRODUCT_INTRO",
    "case_request": "PRODUCT_INTRO",
    "positive_feedback": "CLOSING",
    "final_confirmation": "CLOSING",
    "greeting": "NEEDS_DISCOVERY",
}


CUSTOMER_SIDE = frozenset({"soft_rejection", "price_objection", "hesitation"})
"""Intents of a line that reads as the customer's: a script example the classifier reads so
(at ``CUSTOMER_SIDE_CONFIDENCE`` or more) is the small model taking the other side, and the
playbook's example is used instead (which costs little when the line was in fact fine)."""
CUSTOMER_SIDE_CONFIDENCE = 0.4


def first_sentence(text: str, limit: int = 220) -> str:
    """The first sentence of ``text`` (Latin or CJK punctuation), at most ``limit`` chars."""
    flat = " ".join(text.split())
    match = re.search(r"(.+?[.!?。！？])(\s|$)", flat)
    sentence = match.group(1) if match else flat
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


class GroundedCoach:
    """The Coach agent: tools through a ToolRunner, advice from their results, LLM script."""

    def __init__(
        self,
        llm: LLMBackend,
        tools: ToolRunner,
        *,
        compliance: RuleCompliance | None = None,
        intent: IntentClassifier | None = None,
        max_tokens: int = 48,
        timeout_s: float | None = 20.0,
    ) -> None:
        self.llm = llm
        self.tools = tools
        self.compliance = compliance or RuleCompliance()
        self.intent = intent
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    def calls(self, ctx: SessionContext, turn: TurnRecord) -> list[ToolCall]:
        """The tool calls the customer's intent steers to (only registered tools)."""
        names = TOOLS_BY_INTENT.get(turn.intent, DEFAULT_TOOLS)
        query = turn.npc_text.strip() or turn.trainee_text.strip()
        calls: list[ToolCall] = []
        steer = self._steer(ctx, turn)  # for the playbook and the facts alike
        args: dict[str, Any]
        for name in names:
            if name not in self.tools.tools:
                continue
            if name in ("product_facts", "fee_calculator") and ctx.product is None:
                continue
            if name == "knowledge_search":
                if not query:
                    continue
                args = {"query": query, "collection": ctx.scenario.knowledge_collection}
                calls.append(ToolCall(name, args))
            elif name == "product_facts":
                args = {
                    "product": ctx.product,
                    "intent": turn.intent,
                    "query": query,
                    "language": ctx.language,
                    "slot": steer.get("next_slot"),
                }
                calls.append(ToolCall(name, args))
            elif name == "fee_calculator":
                spend = self.stated_spend(ctx, turn)
                calls.append(ToolCall(name, {"product": ctx.product, "annual_spend": spend}))
            elif name == "objection_playbook":
                args = {"intent": turn.intent, "language": ctx.language, **steer}
                calls.append(ToolCall(name, args))
        return calls

    @staticmethod
    def _steer(ctx: SessionContext, turn: TurnRecord) -> dict[str, Any]:
        """The stage's next open slot and the customer's name, for advice when the customer's
        line gives nothing to answer. After vague replies in a row (in this stage) the advice
        moves on to the next open slot, and round again, rather than repeating itself."""
        slots = open_slots(ctx.stage)
        if not slots:
            return {}
        in_a_row = 0
        for record in reversed([r for r in ctx.history if r.turn < turn.turn]):
            if record.stage != ctx.stage.stage or record.intent not in STEERED_INTENTS:
                break
            in_a_row += 1
        return {"next_slot": slots[in_a_row % len(slots)], "customer": ctx.persona.name}

    @staticmethod
    def stated_spend(ctx: SessionContext, turn: TurnRecord) -> float | None:
        """The latest annual spend said in the call (this turn first), if any.

        Only what was said: what the persona knows but has not said is the trainee's to find
        out, so the coach does not give it away. The trainee's lines count only with a spend
        word at the amount ("so you spend about 40,000 a year?"): their other amounts are the
        product's figures ("the USD 300 travel credit" is not what the customer spends). An
        amount equal to one of the product's waiver thresholds is that condition being quoted
        ("the fee is waived when you spend 25,000 a year"), not the customer's spend.
        """
        product = ctx.product
        thresholds = {w.min_annual_spend for w in product.waivers} if product else set()
        for record in [turn, *reversed(ctx.history)]:
            for text, need_cue in ((record.npc_text, False), (record.trainee_text, True)):
                spend = parse_spend(text, need_cue=need_cue)
                if spend is not None and spend not in thresholds:
                    return spend
        return None

    async def tip(
        self, ctx: SessionContext, turn: TurnRecord
    ) -> tuple[CoachTip, list[ToolCallRecord]]:
        """A tip after ``turn`` and the tool calls it made (see the module docstring)."""
        results = await self.tools.run_many(self.calls(ctx, turn))
        by_name = {r.call.name: r for r in results if r.ok}
        found = by_name.get("objection_playbook")
        playbook = found.value if found is not None else None
        if not isinstance(
            playbook, PlaybookEntry
        ):  # the playbook is bundled data: use it directly if the tool failed
            playbook = await objection_playbook(
                intent=turn.intent, language=ctx.language, **self._steer(ctx, turn)
            )
        advice, citations = self.advice(ctx, playbook, by_name)
        script = await self.script(ctx, turn, playbook, advice)
        tip = CoachTip(
            advice=advice,
            script_example=script,
            stage_hint=STAGE_BY_INTENT.get(turn.intent)
            or (ctx.stage.stage if playbook.slot is not None else None),
            citations=citations,
        )
        return tip, [r.record for r in results]

    def advice(
        self, ctx: SessionContext, playbook: PlaybookEntry, by_name: dict[str, ToolResult]
    ) -> tuple[str, list[Citation]]:
        """Deterministic advice: the technique, then the facts found (one per line), with
        their citations."""
        zh = ctx.language == "zh"
        parts = [playbook.technique]
        citations: list[Citation] = []
        quote = by_name.get("fee_calculator")
        if quote is not None and isinstance(quote.value, FeeQuote) and quote.value.fees:
            text = describe_quote(quote.value, ctx.language)
            parts.append(text)
            if ctx.product is not None:
                citations.append(product_citation(ctx.product, text))
        facts_result = by_name.get("product_facts")
        if facts_result is not None and isinstance(facts_result.value, list):
            facts = [f for f in facts_result.value if isinstance(f, ProductFact)]
            if len(citations) > 0:  # the fee figures are already given: only other facts
                facts = [f for f in facts if f.topic != "fee"]
            facts = facts[:2]
            if facts:
                texts = [f.text.rstrip(" .;。；") for f in facts]  # "open.; Unlimited" otherwise
                joined = "；".join(texts) if zh else "; ".join(texts)
                parts.append(
                    ("产品资料：" if zh else "Product facts: ") + joined + ("。" if zh else ".")
                )
                citations.extend(f.citation for f in facts)
        hits_result = by_name.get("knowledge_search")
        if hits_result is not None and isinstance(hits_result.value, list):
            hits = [h for h in hits_result.value if isinstance(h, KnowledgeHit)]
            if hits:
                best = hits[0]
                where = best.citation.title + (
                    f" p.{best.citation.page}" if best.citation.page is not None else ""
                )
                sentence = first_sentence(best.citation.snippet or best.text)
                parts.append(f"{'资料' if zh else 'From'} {where}: {sentence}")
                citations.append(best.citation)
        return "\n".join(parts), citations  # the page shows each part on its own line

    @staticmethod
    def _speaks_as_customer(ctx: SessionContext, text: str) -> bool:
        """Whether the line introduces itself as the customer ("Good morning, I'm Mr. Chen."):
        a small model continuing the transcript can take the other side."""
        name = ctx.persona.name.strip()
        if not name:
            return False
        words = [w for w in re.findall(r"\w+", name) if len(w) > 2 or not w.isascii()]
        names = "|".join(re.escape(n) for n in dict.fromkeys([name, *words]))
        pattern = rf"\b(?:I am|I'm|this is|my name is|it's)\s+(?:{names})\b|我是\s*(?:{names})"
        return re.search(pattern, text, re.IGNORECASE) is not None

    @staticmethod
    def _units(text: str, zh: bool) -> list[str]:
        """A line's CJK characters (zh) or lower-cased words (en)."""
        if zh:
            return re.findall(r"[\u4e00-\u9fff]", text)
        return re.findall(r"[A-Za-z']+", text.lower())

    def _usable(self, ctx: SessionContext, turn: TurnRecord, text: str) -> bool:
        """Long enough, no speaker label, not an echo of the customer's line or of one the
        trainee already said, not a line that reads as the customer's (see ``CUSTOMER_SIDE``),
        no compliance block."""
        zh = ctx.language == "zh"
        units = self._units(text, zh)
        if len(units) < (8 if zh else 5):
            return False
        mine = set(units)
        said = [turn.npc_text, turn.trainee_text, *(r.trainee_text for r in ctx.history)]
        for line in said:  # the customer's line, or the trainee's own ("Good morning ..." again)
            if len(mine & set(self._units(line, zh))) / len(mine) > 0.7:
                return False
        if re.search(r"^\s*\w[\w .]{0,24}[:：]", text):  # a speaker label
            return False
        if self._speaks_as_customer(ctx, text):
            return False
        if self.intent is not None:  # "I'm sorry, I don't have a card.": the customer's side
            read = self.intent.classify(text)
            if read.label in CUSTOMER_SIDE and read.confidence >= CUSTOMER_SIDE_CONFIDENCE:
                return False
        flags = self.compliance.check(text, "trainee", ctx.rules)
        return not any(f.severity == "block" for f in flags)

    async def script(
        self, ctx: SessionContext, turn: TurnRecord, playbook: PlaybookEntry, advice: str
    ) -> str:
        """One line the trainee could say next: the LLM's, else the playbook example."""
        trainee = ctx.trainee_name.strip() or ("销售" if ctx.language == "zh" else "Salesperson")
        if ctx.language == "zh":
            system = (
                f"以下是销售教练给出的示范话术。销售顾问{trainee}正在和客户{ctx.persona.name}通电话。"
                f"\n教练建议：{advice}\n示范（{trainee}的下一句话，一两句，只用上面的事实）："
            )
        else:
            system = (
                f"Below is a model answer written by a sales coach. The sales representative "
                f"{trainee} is on a call with the customer {ctx.persona.name}.\n"
                f"Coach's advice: {advice}\n"
                f"Model answer ({trainee}'s next line, one or two sentences, using only the "
                f"facts above):"
            )
        if getattr(self.llm, "chat_template", False):
            # a chat model answers the user: ask it for the line (its own turn would be the
            # customer's next one)
            if ctx.language == "zh":
                ask = (
                    f"{trainee}说：{turn.trainee_text}\n{ctx.persona.name}说：{turn.npc_text}\n"
                    f"请写出{trainee}的下一句话（一两句），只写这句话本身。"
                )
            else:
                ask = (
                    f"{trainee} said: {turn.trainee_text}\n{ctx.persona.name} said: "
                    f"{turn.npc_text}\nWrite {trainee}'s next line (one or two sentences). "
                    "Reply with the line only."
                )
            messages = [
                Message(role="system", content=system),
                Message(role="user", content=ask),
            ]
        else:  # a base model continues the transcript as the trainee
            messages = [
                Message(role="system", content=system),
                Message(role="user", content=turn.trainee_text, name=trainee),
                Message(role="assistant", content=turn.npc_text, name=ctx.persona.name),
            ]
        request = GenerateRequest(
            messages=messages,
            max_tokens=self.max_tokens,
            temperature=0.0,
            stop=("\n", f"{ctx.persona.name}:", f"{ctx.persona.name}："),
            priority="coach",
            session_key=f"coach:{ctx.session_id}",
            reply_name=trainee,
            timeout_s=self.timeout_s,
        )
        try:
            completion = await self.llm.generate(request)
        except LLMError as err:
            log.info("coach script: LLM %s (%s); playbook example used", err.code, err.message)
            return playbook.example
        text = " ".join(completion.text.split()).strip(" \"'“”")
        text = whole_sentences(text, truncated=completion.finish_reason == "length")
        return text if self._usable(ctx, turn, text) else playbook.example
