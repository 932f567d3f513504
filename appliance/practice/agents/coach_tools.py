# ruff: noqa: RUF001 (Chinese prompt and reply text has full-width punctuation)
"""The coach's tools: knowledge search, product facts, a fee calculator and a playbook.

All four are read-only and deterministic given their inputs (knowledge search depends on the
ingested documents). They are plain async functions taking keyword arguments, registered
with a :class:`~appliance.practice.tools.ToolRunner` by :func:`coach_tools`.

Spend parsing (``parse_spend``) is hand-written (no library covers "4万" and "$40k"): it finds
amounts written with a currency sign (``$40,000``, ``¥5000``), a unit (``40k``, ``40
thousand``, ``4万``, ``4.5万``, ``3千``, ``40000元``, ``40,000 dollars``) or at least four
digits, and returns the largest one; Chinese numerals written as words (四万) are not parsed.
An amount is read as spend only when its surroundings do not make it a price: one next to a
fee or cost word ("the $695 annual fee", "年费695元") is skipped unless a spend word is
there too ("I spend $2,000 a month"), and a monthly amount counts twelve times.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache, partial
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec

from appliance.practice.fees import fee_label, is_rate, money, times_a_year
from appliance.practice.model import Citation, Language, Product
from appliance.practice.tools import Tool

if TYPE_CHECKING:
    from appliance.knowledge.service import KnowledgeService

# --- results ------------------------------------------------------------------------------


class KnowledgeHit(msgspec.Struct, kw_only=True):
    """A parent chunk found by knowledge search, with where it comes from."""

    text: str
    score: float
    citation: Citation


class ProductFact(msgspec.Struct, kw_only=True):
    """One fact about the product, in words, with its topic."""

    topic: str
    """fee, waiver, benefit, eligibility or description."""
    text: str
    citation: Citation


class FeeLine(msgspec.Struct, kw_only=True):
    """One yearly fee: its amount, and whether the stated spend waives it."""

    fee: str
    amount: float
    """As charged: a year's, a month's, or one charge's amount."""
    waived: bool
    per_year: int = 1
    """Times a year it is charged (:func:`times_a_year`); 0: only when it applies."""
    waiver: str = ""
    """The condition that waives it (met or not); empty when none is spend-based."""
    shortfall: float | None = None
    """Spend still missing to earn the waiver (None when met or not spend-based)."""


class FeeQuote(msgspec.Struct, kw_only=True):
    """What the product costs a year at a stated spend."""

    product: str
    currency: str
    annual_spend: float | None
    fees: list[FeeLine]
    rates: dict[str, float]
    """Percentage fees (e.g. foreign transactions), not part of the yearly total."""
    gross: float
    """Fees every customer pays in a year (annual, and monthly x 12), before waivers."""
    waived: float
    net: float
    other_conditions: list[str] = []
    """Waivers that are not spend-based: the coach may mention them, the calculator cannot apply them."""


class PlaybookEntry(msgspec.Struct, kw_only=True):
    """A technique and an example phrasing for one customer intent, or for the next slot of
    the stage when the customer's line gives nothing to answer (``slot``)."""

    intent: str
    technique: str
    example: str
    slot: str | None = None


# --- spend parsing --------------------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?P<cur>[$¥￥€£]|usd\s?|rmb\s?|cny\s?)?\s*"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*"
    r"(?P<unit>k\b|thousand\b|万|千|元|块|dollars?\b|usd\b|rmb\b)?",
    re.IGNORECASE,
)
_MULTIPLIER = {"k": 1_000.0, "thousand": 1_000.0, "万": 10_000.0, "千": 1_000.0}


_SPEND_CUE = re.compile(
    r"spend|spent|spending|put\s+on|charge[ds]?\s+(?:on|to)|purchases|消费|刷|花",
    re.IGNORECASE,
)
_PRICE_CUE = re.compile(
    r"\bfees?\b|\bcosts?\b|\bprice\b|\bcharges?\b(?!\s+(?:on|to))|\bpay(?:s|ing)?\b|"
    r"年费|费用|收费|手续费|价格|多少钱",
    re.IGNORECASE,
)
_MONTHLY = re.compile(
    r"^\W{0,3}(?:a|per|each|every|/)\s*(?:month|mo\b)|^\s*(?:每月|一个月|/月)",
    re.IGNORECASE,
)
_MONTHLY_BEFORE = re.compile(r"(?:monthly|每月|每个月|一个月)[^.,;。，；\d]{0,20}$", re.IGNORECASE)
_WINDOW = 32  # characters either side of an amount that say what it is


def parse_spend(text: str, *, need_cue: bool = False) -> float | None:
    """The largest amount in ``text`` that reads as spend (module docstring), or None. With
    ``need_cue`` only an amount with a spend word near it ("you spend about $40,000"): what a
    salesperson says is mostly the product's own figures ("the USD 300 travel credit")."""
    best: float | None = None
    for match in _AMOUNT.finditer(text):
        number = float(match["num"].replace(",", ""))
        unit = (match["unit"] or "").lower()
        has_cur = bool(match["cur"])
        if not has_cur and not unit and number < 1000:
            continue  # "2 cards", "3 years": not money
        before = text[max(0, match.start() - _WINDOW) : match.start()]
        after = text[match.end() : match.end() + _WINDOW]
        around = before + " " + after
        spend_said = bool(_SPEND_CUE.search(around))
        if _PRICE_CUE.search(around) and not spend_said:
            continue  # "the $695 annual fee": a price, not what the customer spends
        if need_cue and not spend_said:
            continue
        value = number * _MULTIPLIER.get(unit, 1.0)
        if _MONTHLY.search(after) or _MONTHLY_BEFORE.search(before):
            value *= 12
        if best is None or value > best:
            best = value
    return best


# --- the tools --------------------------------------------------------------------------------


def product_citation(product: Product, snippet: str) -> Citation:
    """A citation of a product fact."""
    return Citation(kind="product", title=product.name, snippet=snippet[:300])


def fee_quote(product: Product, annual_spend: float | None) -> FeeQuote:
    """The yearly fees, which spend-based waivers the spend meets, and the net cost."""
    rates = {k: v for k, v in product.fees.items() if is_rate(k)}
    lines: list[FeeLine] = []
    others: list[str] = []
    for waiver in product.waivers:
        if waiver.min_annual_spend is None:
            others.append(f"{fee_label(waiver.fee)}: {waiver.condition}")
    for key, amount in product.fees.items():
        if key in rates:
            continue
        spend_waivers = [
            w for w in product.waivers if w.fee == key and w.min_annual_spend is not None
        ]
        met = [
            w
            for w in spend_waivers
            if annual_spend is not None and annual_spend >= (w.min_annual_spend or 0.0)
        ]
        per_year = times_a_year(key)
        if met:
            lines.append(
                FeeLine(
                    fee=key, amount=amount, waived=True, waiver=met[0].condition, per_year=per_year
                )
            )
        elif spend_waivers:
            cheapest = min(spend_waivers, key=lambda w: w.min_annual_spend or 0.0)
            short = (
                None
                if annual_spend is None
                else max(0.0, (cheapest.min_annual_spend or 0.0) - annual_spend)
            )
            lines.append(
                FeeLine(
                    fee=key,
                    amount=amount,
                    waived=False,
                    waiver=cheapest.condition,
                    shortfall=short,
                    per_year=per_year,
                )
            )
        else:
            lines.append(FeeLine(fee=key, amount=amount, waived=False, per_year=per_year))
    gross = sum(line.amount * line.per_year for line in lines)
    waived = sum(line.amount * line.per_year for line in lines if line.waived)
    return FeeQuote(
        product=product.name,
        currency=product.currency,
        annual_spend=annual_spend,
        fees=lines,
        rates=rates,
        gross=gross,
        waived=waived,
        net=gross - waived,
        other_conditions=others,
    )


def _in_brackets(sentence: str) -> str:
    """A sentence made to stand inside brackets mid-sentence: no final stop, and a capital
    that only started the sentence lower-cased ("The annual fee ..." -> "the annual fee ...";
    "USD 695 ..." stays)."""
    text = sentence.strip().rstrip(" .。")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def describe_quote(quote: FeeQuote, language: Language) -> str:
    """The quote in one or two sentences (deterministic): the yearly fees, with what waives
    them, and the net yearly cost; then the charges that apply only when they do (a late
    payment, an extra card), named but not added to it."""
    zh = language == "zh"

    m = partial(money, currency=quote.currency, language=language)
    parts: list[str] = []
    when_due: list[str] = []
    for line in quote.fees:
        label = fee_label(line.fee, language)
        if line.per_year == 0 and not line.waiver:
            when_due.append(f"{label} {m(line.amount)}")
            continue
        if line.waiver:  # a condition written as a sentence reads "(the ... year);" in brackets
            line = msgspec.structs.replace(line, waiver=_in_brackets(line.waiver))
        if zh:
            if line.waived:
                parts.append(f"{label} {m(line.amount)}：已满足减免条件（{line.waiver}）")
            elif line.shortfall is not None and line.shortfall > 0:
                parts.append(
                    f"{label} {m(line.amount)}：距离减免（{line.waiver}）"
                    f"还差 {m(line.shortfall)} 消费"
                )
            else:
                parts.append(f"{label} {m(line.amount)}")
        elif line.waived:
            parts.append(f"the {label} of {m(line.amount)} is waived ({line.waiver})")
        elif line.shortfall is not None and line.shortfall > 0:
            parts.append(
                f"the {label} of {m(line.amount)} applies; "
                f"{m(line.shortfall)} more spend would waive it ({line.waiver})"
            )
        else:
            parts.append(f"the {label} is {m(line.amount)}")
    if zh:
        spend = f"按年消费 {m(quote.annual_spend)} 计算，" if quote.annual_spend is not None else ""
        text = (
            f"{spend}{'；'.join(parts)}。年度净费用 {m(quote.net)}。"
            if parts
            else "没有按年收取的费用。"
        )
        if when_due:
            text += f"发生时才收取：{'、'.join(when_due)}。"
        return text
    spend = (
        f"At an annual spend of {m(quote.annual_spend)}, "
        if quote.annual_spend is not None
        else "With no spend stated, "
    )
    text = (
        f"{spend}{'; '.join(parts)}. Net yearly cost: {m(quote.net)}."
        if parts
        else "There is no yearly fee."
    )
    if when_due:
        text += f" Charged only when they apply: {', '.join(when_due)}."
    return text


def product_fact_list(product: Product, language: Language = "en") -> list[ProductFact]:
    """Every fact of the product as a sentence (fees, waivers, benefits, eligibility); fee
    names and the words around them in ``language``."""
    facts: list[ProductFact] = []
    zh = language == "zh"

    def add(topic: str, text: str) -> None:
        facts.append(ProductFact(topic=topic, text=text, citation=product_citation(product, text)))

    if product.description:
        add("description", f"{product.name}{'：' if zh else ': '}{product.description}")
    for key, amount in product.fees.items():
        shown = f"{amount:g}%" if is_rate(key) else money(amount, product.currency, language)
        label = fee_label(key, language)
        add("fee", f"{label}：{shown}" if zh else f"{label}: {shown}")
    for waiver in product.waivers:
        label = fee_label(waiver.fee, language)
        add(
            "waiver",
            f"{label}减免：{waiver.condition}" if zh else f"{label} waived: {waiver.condition}",
        )
    for benefit in product.benefits:
        add("benefit", benefit)
    for rule in product.eligibility:
        add("eligibility", rule)
    return facts


TOPICS_BY_INTENT: dict[str, tuple[str, ...]] = {
    "price_objection": ("fee", "waiver"),
    "price_inquiry": ("fee", "waiver"),
    "negotiation": ("waiver", "fee"),
    "competitor_comparison": ("benefit", "fee", "waiver"),
    "benefit_inquiry": ("benefit",),
    "product_inquiry": ("description", "benefit", "eligibility"),
    "case_request": ("benefit",),
    "hesitation": ("benefit", "waiver"),
    "soft_rejection": ("benefit", "waiver"),
}


def _words(text: str) -> set[str]:
    latin = {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}
    return latin | set(re.findall(r"[\u4e00-\u9fff]{2}", text))


TOPICS_BY_SLOT: dict[str, tuple[str, ...]] = {
    "pain_point": ("benefit",),
    "budget": ("waiver", "fee"),
    "value_proposition": ("benefit", "description"),
    "feature_linked_to_benefit": ("benefit",),
    "interest_signal": ("benefit",),
    "objection_identified": ("fee", "waiver"),
    "objection_addressed": ("waiver", "fee"),
    "closing_attempt": ("waiver", "benefit"),
}
"""The facts that serve the advice for a stage slot (see ``objection_playbook``); a slot not
listed (greeting, timeline, who decides) needs none."""


async def product_facts(
    *,
    product: Product,
    intent: str = "unclear",
    query: str = "",
    limit: int = 4,
    language: Language = "en",
    slot: str | None = None,
) -> list[ProductFact]:
    """The product facts most relevant to the intent (by topic) and the query (word overlap),
    worded in ``language``. For an intent with no topics of its own the topics of the stage
    ``slot`` the coach steers to; with none either, only facts that share a word with the
    query (a vague reply does not bring the same two facts back every turn)."""
    topics = TOPICS_BY_INTENT.get(intent) or TOPICS_BY_SLOT.get(slot or "", ())
    words = _words(query)

    def rank(item: tuple[int, ProductFact]) -> tuple[int, int, int]:
        i, fact = item
        topic_rank = topics.index(fact.topic) if fact.topic in topics else len(topics)
        return (topic_rank, -len(words & _words(fact.text)), i)

    ranked = sorted(enumerate(product_fact_list(product, language)), key=rank)
    if not topics:
        ranked = [(i, f) for i, f in ranked if words & _words(f.text)]
    return [fact for _, fact in ranked[: max(1, limit)]]


async def fee_calculator(
    *, product: Product, annual_spend: float | None = None, text: str = ""
) -> FeeQuote:
    """A fee quote at ``annual_spend``, or at the spend parsed from ``text`` when not given."""
    if annual_spend is None and text:
        annual_spend = parse_spend(text)
    return fee_quote(product, annual_spend)


@lru_cache(maxsize=1)
def load_playbook() -> dict[str, dict[str, dict[str, str]]]:
    """The bundled bilingual playbook: intent -> language -> {technique, example}."""
    raw = resources.files("appliance.practice").joinpath("data/objection_playbook.json")
    data: dict[str, dict[str, dict[str, str]]] = json.loads(raw.read_text("utf-8"))
    return data


@lru_cache(maxsize=1)
def load_slot_playbook() -> dict[str, dict[str, dict[str, str]]]:
    """The bundled bilingual advice per stage slot: slot -> language -> {technique, example}
    (an example may name the customer: ``{name}``)."""
    raw = resources.files("appliance.practice").joinpath("data/slot_playbook.json")
    data: dict[str, dict[str, dict[str, str]]] = json.loads(raw.read_text("utf-8"))
    return data


STEERED_INTENTS = frozenset({"unclear", "filler"})
"""Customer intents that give the trainee nothing to answer: the coach steers by the stage."""


async def objection_playbook(
    *,
    intent: str,
    language: Language = "en",
    next_slot: str | None = None,
    customer: str = "",
) -> PlaybookEntry:
    """The playbook entry for a customer intent (``unclear``'s for an unknown one). When the
    customer's line gives nothing to answer (``STEERED_INTENTS``) and the stage has a slot
    still open (``next_slot``), the advice for that slot instead: "Ask about their spend"
    rather than "clarify what you heard" after every vague reply."""
    slots = load_slot_playbook()
    if (intent not in load_playbook() or intent in STEERED_INTENTS) and next_slot in slots:
        entry = slots[next_slot].get(language) or slots[next_slot]["en"]
        example = entry["example"].replace("{name}", customer).strip(" ,，")
        return PlaybookEntry(
            intent=intent, technique=entry["technique"], example=example, slot=next_slot
        )
    book = load_playbook()
    key = intent if intent in book else "unclear"
    entry = book[key].get(language) or book[key]["en"]
    return PlaybookEntry(intent=key, technique=entry["technique"], example=entry["example"])


@dataclass
class KnowledgeSearchTool:
    """Knowledge search bound to a KnowledgeService (the coach's grounding in documents)."""

    knowledge: KnowledgeService
    k: int = 3
    mode: str = "hybrid"

    async def __call__(self, *, query: str, collection: str = "default") -> list[KnowledgeHit]:
        """Top parents for ``query`` in ``collection``, each with a document citation."""
        response = await self.knowledge.search(
            query, k=self.k, mode=self.mode, collection=collection
        )
        hits: list[KnowledgeHit] = []
        for result in response.results:
            c = result.citation
            hits.append(
                KnowledgeHit(
                    text=result.text,
                    score=result.score,
                    citation=Citation(
                        kind="document",
                        title=c.title,
                        document_id=c.document_id,
                        version=c.version,
                        page=c.page,
                        passage=None if c.page is not None else c.passage,
                        snippet=c.snippet[:300],
                    ),
                )
            )
        return hits


def coach_tools(
    knowledge: KnowledgeService | None, *, timeout_s: float = 3.0, search_k: int = 3
) -> list[Tool]:
    """The coach's tools, ready to register (knowledge_search only with a KnowledgeService)."""
    tools = [
        Tool("product_facts", product_facts, read_only=True, timeout_s=timeout_s),
        Tool("fee_calculator", fee_calculator, read_only=True, timeout_s=timeout_s),
        Tool("objection_playbook", objection_playbook, read_only=True, timeout_s=timeout_s),
    ]
    if knowledge is not None:
        search: Any = KnowledgeSearchTool(knowledge, k=search_k)
        tools.insert(0, Tool("knowledge_search", search, read_only=True, timeout_s=timeout_s))
    return tools
