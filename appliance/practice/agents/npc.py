# ruff: noqa: RUF001 (Chinese prompt and reply text has full-width punctuation)
"""The customer (NPC): streams the persona's reply in character.

Prompt layout (for KV reuse: the llama_cpp backend evaluates only the tokens that differ from
the session's previous prompt, so everything that does not change sits first, byte-stable):

1. A system preamble built only from fixed data: the persona (name, description, goals,
   objections, what they know), the scenario's description and the product facts a customer
   would plausibly know (the product's name and description, its yearly fees and rates, its
   benefits: what a statement or a brochure shows; waiver conditions and eligibility rules are
   not given, finding those is the trainee's job). Written in Chinese for zh sessions.
2. The committed history as alternating lines under the trainee's name and the persona's.
3. The trainee's new line.
4. What changes per turn, last: a stage direction such as "Mr. Chen sounds impatient. The
   call is at the needs-discovery stage.", as a narrator line for transcript (base) models, or
   appended to the trainee's message for chat-template models (their templates require roles
   to alternate).

The reply is cleaned as it streams: a leading speaker label (the persona's own name, or a
role word such as "Assistant:") is dropped, parenthesised asides such as "(smiles)" are
removed, runs of whitespace collapse to one space, and the reply ends at a line break or at another
speaker's label (both are also stop sequences, so the backend stops there). If the model
produced nothing usable (empty, or only punctuation), the reply is a short in-character
fallback sentence chosen by mood (three per language), and ``CustomerReply.fallback`` says so.

The reply ends on a whole sentence, and says nothing twice. Its first sentence streams as it is
generated (the trainee sees the customer start at once); every later sentence is released only
when it is complete. A sentence that repeats one the reply already said (small models loop:
"I'm going to keep my card. ... I'm going to keep my card.") ends the reply before it. Past
``practice.npc_max_tokens`` the reply stops at its next sentence end; it may run
``practice.npc_finish_tokens`` further to reach one, and a sentence still unfinished there is
dropped (it was held, never shown). Nor does it say a sentence the customer said in an
earlier turn (the bundled model loops across turns too: "I have a few questions about the card
and the fees." four turns running): an opening sentence is held back while it could still be
one of those and is left out when it is; a later one ends the reply before it. When nothing is
left, the fallback line is one the customer has not said yet.

Mood (``next_mood``): a deterministic update from the trainee's line. Each trainee intent has
a base delta (``MOOD_DELTAS``: rapport and needs questions help, pressure and unclear lines
hurt), scaled by the classifier's confidence; each compliance flag on the trainee's line
subtracts 0.05 (warn) or 0.15 (block). Positive deltas are multiplied by 1.5 / 1.0 / 0.6 and
negative ones by 0.6 / 1.0 / 1.4 for an easy / medium / hard persona. The result is clamped to
[0, 1] and rounded to 3 decimals.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING

from appliance.llm.base import Completion, GenerateRequest, LLMBackend, Message
from appliance.llm.sentences import (
    CJK_END,
    SENTENCE_END,
    ends_sentence,
    sentence_key,
    sentence_keys,
)
from appliance.practice.fees import fee_label, is_rate, money
from appliance.practice.model import (
    ComplianceFlag,
    IntentResult,
    Language,
    Persona,
    Product,
    Scenario,
    SessionContext,
    Stage,
)

if TYPE_CHECKING:
    from appliance.llm.base import TextStream

MOOD_DELTAS: dict[str, float] = {
    "greeting": 0.03,
    "product_inquiry": 0.05,
    "benefit_inquiry": 0.05,
    "case_request": 0.03,
    "price_inquiry": 0.02,
    "negotiation": 0.04,
    "positive_feedback": 0.04,
    "final_confirmation": 0.03,
    "competitor_comparison": 0.0,
    "price_objection": -0.02,
    "hesitation": -0.02,
    "soft_rejection": -0.04,
    "time_pressure": -0.08,
    "filler": -0.02,
    "unclear": -0.03,
}
FLAG_PENALTY = {"warn": 0.05, "block": 0.15}
POSITIVE_SCALE = {"easy": 1.5, "medium": 1.0, "hard": 0.6}
NEGATIVE_SCALE = {"easy": 0.6, "medium": 1.0, "hard": 1.4}

_CLAIM_EN = (  # in-between words: a name (capitalised) or a job title's, not "tired of calls"
    r"\b(?i:i'm|i am|this is|my name is)\s+(?:[A-Z][\w.'-]*\s+){0,3}(?i:calling\s+)?"
    r"(?i:from)\s+(?:(?i:the|your|our)\s+)?(?:[A-Z][\w-]*\s+)?(?i:bank)\b"
    r"|\b(?i:i'm|i am|this is)\s+(?:(?i:the|a|an|your|our|bank's|branch|senior|personal|"
    r"customer|card)\s+|[A-Z][\w.'-]*\s+){0,4}(?i:sales\s+(?:rep|representative|manager|advisor"
    r"|adviser)|relationship\s+manager|account\s+manager|representative|advisor|adviser)\b"
)
_CLAIM_ZH = (
    r"(?:我是|我们是|这里是)[^，。！？,.!?]{0,6}?"
    r"(?:银行(?!的?(?:老|忠实|长期|贵宾)?(?:客户|用户|会员|持卡人))|客户经理|销售|理财顾问|客服|专员)"
)
_GREETINGS = ("", "hello ", "hi ", "hey ", "good morning ", "good afternoon ", "good evening ")
_GREETINGS_ZH = ("", "您好 ", "你好 ")
_STARTS = ("this is", "my name is", "i m", "i am")
_STARTS_ZH = ("我是", "我们是", "这里是")


class SalesRoleClaim:
    """A customer's sentence in which the speaker takes the bank's side: the small model
    continuing the transcript can play the salesperson ("Hello, I'm Li from the bank.",
    "I'm the branch sales representative ...", "我是银行的客户经理"; "我是银行的老客户" is the
    customer's own). ``said`` checks a whole sentence; ``may_become`` an opening one still being
    written (it is held back while it may, so that it can be left out)."""

    def __init__(self, salesperson: str = "") -> None:
        name = salesperson.strip()
        named = len(name) > 1 and name.lower() not in {
            w.lower() for w in ROLE_WORDS + ROLE_WORDS_ZH
        }
        by_name = (
            rf"|\b(?i:i'm|i am|this is|my name is)\s+(?i:{re.escape(name)})\b|我是{re.escape(name)}"
        )
        self._said = re.compile(_CLAIM_EN + "|" + _CLAIM_ZH + (by_name if named else ""))
        name_key = sentence_key(name) if named else ""
        after = "calling|from|with|at|the|a|an|your" + (
            f"|{re.escape(name_key)}" if name_key else ""
        )
        greeting = r"(?:(?:hello|hi|hey|good (?:morning|afternoon|evening|day)) )?"
        self._may = re.compile(
            rf"^{greeting}(?:this is|my name is|i m|i am) (?:{after})\b"
            r"|^(?:(?:您好|你好) )?(?:我是|我们是|这里是)"
        )
        self._starts = [g + s for g in _GREETINGS for s in _STARTS] + [
            g + s for g in _GREETINGS_ZH for s in _STARTS_ZH
        ]

    def said(self, sentence: str) -> bool:
        """Whether the whole sentence takes the salesperson's part."""
        return bool(self._said.search(sentence))

    def may_become(self, text: str) -> bool:
        """Whether an unfinished opening sentence may still turn out to be one."""
        key = sentence_key(text)
        return bool(self._may.match(key)) or any(s.startswith(key) for s in self._starts)


ROLE_WORDS = ("Assistant", "User", "AI", "Customer", "Salesperson", "Narrator", "System")
ROLE_WORDS_ZH = ("客户", "销售", "旁白", "助手", "用户", "系统")

_MOOD_EN = (
    (0.2, "sounds annoyed and close to ending the call"),
    (0.4, "sounds impatient"),
    (0.6, "sounds guarded"),
    (0.8, "sounds interested"),
    (1.01, "sounds warm and positive"),
)
_MOOD_ZH = (
    (0.2, "听起来很不耐烦，快要挂电话了"),
    (0.4, "听起来有些不耐烦"),
    (0.6, "听起来有所保留"),
    (0.8, "听起来有兴趣"),
    (1.01, "听起来很友好、很积极"),
)
_STAGE_EN: dict[Stage, str] = {
    "OPENING": "the opening",
    "NEEDS_DISCOVERY": "the needs-discovery stage",
    "PRODUCT_INTRO": "the product-introduction stage",
    "OBJECTION_HANDLING": "the objection-handling stage",
    "CLOSING": "the closing stage",
    "COMPLETED": "its end",
}
_STAGE_ZH: dict[Stage, str] = {
    "OPENING": "开场阶段",
    "NEEDS_DISCOVERY": "需求挖掘阶段",
    "PRODUCT_INTRO": "产品介绍阶段",
    "OBJECTION_HANDLING": "异议处理阶段",
    "CLOSING": "成交阶段",
    "COMPLETED": "结束阶段",
}
FALLBACKS: dict[Language, tuple[str, str, str]] = {
    "en": (
        "I'm really not convinced. Why should I keep paying for this?",
        "Hmm, I'm not sure. Can you explain that again?",
        "Okay, that sounds reasonable. Tell me more.",
    ),
    "zh": (
        "我真的不太认同，我为什么还要继续付这笔钱？",
        "嗯，我不太确定，你能再解释一下吗？",
        "好的，听起来还不错，再多说一点吧。",
    ),
}


def fallback_line(language: Language, mood: float, avoid: Sequence[str] = ()) -> str:
    """The in-character fallback sentence for a mood (low < 0.35 <= mid < 0.65 <= high); one
    of the others when that one is among ``avoid`` (what the customer said before)."""
    low, mid, high = FALLBACKS[language]
    first = low if mood < 0.35 else mid if mood < 0.65 else high
    said = {key for text in avoid for key in sentence_keys(text)}
    fresh = [line for line in (first, mid, low, high) if not said.intersection(sentence_keys(line))]
    return fresh[0] if fresh else first


def mood_words(language: Language, mood: float) -> str:
    """How the customer sounds at this mood, as a stage direction."""
    table = _MOOD_ZH if language == "zh" else _MOOD_EN
    return next(words for limit, words in table if mood < limit)


def known_product_facts(product: Product, language: Language) -> list[str]:
    """What a customer plausibly knows about the product (see the module docstring)."""
    facts: list[str] = []
    colon = "：" if language == "zh" else ": "
    if product.description:
        facts.append(f"{product.name}{colon}{product.description}")
    else:
        facts.append(product.name)
    for key, value in product.fees.items():
        shown = f"{value:g}%" if is_rate(key) else money(value, product.currency, language)
        facts.append(f"{fee_label(key, language)}{colon}{shown}")
    facts.extend(product.benefits)
    return facts


def preamble(
    persona: Persona,
    scenario: Scenario,
    product: Product | None,
    trainee: str,
    language: Language,
) -> str:
    """The fixed system text of a session (built only from data that does not change)."""
    name = persona.name
    facts = known_product_facts(product, language) if product is not None else []
    if language == "zh":
        lines = [
            f"以下是一段销售电话的文字记录。{trainee}是银行的销售顾问，{name}是客户。",
            f"关于{name}：{persona.description}",
        ]
        if persona.goals:
            lines.append(f"{name}的目标：" + "；".join(persona.goals))
        if persona.objections:
            lines.append(f"{name}常说的异议：" + "；".join(persona.objections))
        known = [*persona.knows, *facts]
        if known:
            lines.append(f"{name}知道的事实：" + "；".join(known))
        lines.append(f"情境：{scenario.description}")
        lines.append(
            f"{name}只说上面列出的事实，不编造数字或条款；每次用一两句简短的中文口语回答，"
            f"始终以客户的身份说话。"
        )
        return "\n".join(lines)
    lines = [
        f"This is a transcript of a sales phone call. {trainee} is the bank's sales "
        f"representative and {name} is the customer.",
        f"About {name}: {persona.description}",
    ]
    if persona.goals:
        lines.append(f"{name}'s goals: " + "; ".join(persona.goals))
    if persona.objections:
        lines.append(f"{name}'s objections, in their own words: " + "; ".join(persona.objections))
    known = [*persona.knows, *facts]
    if known:
        lines.append(f"What {name} knows: " + "; ".join(known))
    lines.append(f"Situation: {scenario.description}")
    lines.append(
        f"{name} only mentions the facts listed here and never invents numbers or terms. "
        f"{name} answers in one or two short spoken sentences and always speaks as the customer."
    )
    return "\n".join(lines)


def stage_direction(ctx: SessionContext) -> str:
    """What changes per turn (mood and stage), phrased as a stage direction."""
    name = ctx.persona.name
    if ctx.language == "zh":
        stage = _STAGE_ZH[ctx.stage.stage]
        return f"{name}{mood_words('zh', ctx.mood)}。通话处于{stage}。"
    stage = _STAGE_EN[ctx.stage.stage]
    return f"{name} {mood_words('en', ctx.mood)}. The call is at {stage}."


class CustomerReply:
    """The customer's reply as it streams; afterwards ``text``, ``completion``, ``fallback``."""

    def __init__(
        self,
        stream: TextStream,
        *,
        labels: Sequence[str],
        fallback: str,
        soft_tokens: int | None = None,
        earlier: Sequence[str] = (),
        salesperson: str = "",
    ) -> None:
        self._stream = stream
        self._fallback_text = fallback
        self._soft_tokens = soft_tokens
        self._pieces = 0
        self._said: set[str] = set()  # the sentences released so far, normalized
        self._earlier = {key for text in earlier for key in sentence_keys(text)}
        self._claim = SalesRoleClaim(salesperson)
        self._skip = 0  # the cleaned reply before this was a sentence left out (see below)
        self._shown = 0  # how much of the opening sentence streamed before it ended
        self._scan = 0  # where the next sentence of the cleaned reply starts
        self._stopped = False  # ended early: a repeated sentence, or the soft limit reached
        names = sorted({label for label in labels if label}, key=len, reverse=True)
        alternation = "|".join(re.escape(n) for n in names)
        self._lead = re.compile(rf"^\s*(?:(?:{alternation})\s*[:：]\s*)*", re.IGNORECASE)
        self._cut = re.compile(rf"\n|(?:{alternation})\s*[:：]", re.IGNORECASE)
        self._labels = [n.lower() for n in names]
        self._hold = max((len(n) for n in names), default=0) + 1
        self._generator = self._run()
        self.text = ""
        self.completion: Completion | None = None
        self.fallback = False

    def __aiter__(self) -> CustomerReply:
        return self

    async def __anext__(self) -> str:
        return await self._generator.__anext__()

    async def aclose(self) -> None:
        """Stop the generation."""
        await self._generator.aclose()

    def _clean(self, raw: str) -> str:
        """Parenthesised asides removed (an unclosed one hides the rest), whitespace collapsed."""
        out: list[str] = []
        depth = 0
        for ch in raw:
            if ch in "(（[【":
                depth += 1
            elif ch in ")）]】" and depth:
                depth -= 1
            elif depth == 0:
                out.append(ch)
        return re.sub(r"\s+", " ", "".join(out)).lstrip(" ,，.。")

    def _label_prefix(self, text: str) -> bool:
        """Whether ``text`` could be the start of a speaker label ("Name:")."""
        lowered = text.lower()
        return any((label + colon).startswith(lowered) for label in self._labels for colon in ":：")

    def _held(self, raw: str) -> int:
        """How many trailing characters might start a label and must wait for more text."""
        for k in range(min(self._hold, len(raw)), 0, -1):
            if self._label_prefix(raw[-k:]):
                return k
        return 0

    def _releasable(self, clean: str, *, final: bool) -> int:
        """How much of the cleaned reply may be shown now (see the module docstring); sets
        ``_stopped`` when the reply should end there."""
        upto = self._scan
        for match in SENTENCE_END.finditer(clean, self._scan):
            end = match.end()
            if end == len(clean) and not final and not CJK_END.search(match[0]):
                break  # "USD 25." may go on as "USD 25.00": wait for what follows
            if not ends_sentence(clean, match):
                continue
            key = sentence_key(clean[self._scan : end])
            streamed = self._shown > self._scan  # part of it is on screen: it stays
            if key and not streamed and self._unsayable(key, clean[self._scan : end]):
                if not self._said:
                    # the reply opens with a sentence of an earlier turn (small models loop
                    # across turns: "I have a few questions about the card." four turns
                    # running) or with the salesperson's part ("我是银行的客户经理"): it was
                    # held back while it could be one, and is left out
                    self._scan = self._skip = upto = end
                    continue
                self._stopped = True  # a later one ends the reply before it
                return upto
            if key and key in self._said:  # said twice in this reply: it ends before
                self._stopped = True
                return upto
            if key:
                self._said.add(key)
            self._scan = upto = end
            if self._soft_tokens is not None and self._pieces >= self._soft_tokens:
                self._stopped = True
                return upto
        return self._unfinished(clean, upto, final=final)

    def _unfinished(self, clean: str, upto: int, *, final: bool) -> int:
        """How much of the sentence still being written may be shown (``upto``: where the
        whole sentences end)."""
        tail = clean[self._scan :]
        if not self._said:  # the first sentence streams as it comes, unless it may be left out
            partial = sentence_key(tail)
            held = bool(partial) and (
                any(k.startswith(partial) for k in self._earlier) or self._claim.may_become(tail)
            )
            if held and (not final or self._unsayable(partial, tail)):
                return upto  # (at the end: it did turn out to be one, and is left out)
            self._shown = len(clean)
            return len(clean)
        if final:
            key = sentence_key(tail)
            truncated = self._stream.completion is not None and (
                self._stream.completion.finish_reason == "length"
            )
            if key and key not in self._said and not self._unsayable(key, tail) and not truncated:
                return len(clean)  # the model ended here (a line break, a label, its end)
        return upto

    def _unsayable(self, key: str, sentence: str) -> bool:
        """A sentence the customer must not say: one of an earlier turn, or the salesperson's
        part (:class:`SalesRoleClaim`)."""
        return key in self._earlier or self._claim.said(sentence)

    def _chunk(self, clean: str, sent: int, upto: int) -> tuple[str, int]:
        """What of the cleaned reply to yield now and how far it is then sent (a sentence left
        out as an earlier turn's is passed over, never yielded)."""
        sent = max(sent, self._skip)
        if upto <= sent:
            return "", sent
        chunk = clean[sent:upto]
        return (chunk.lstrip() if not self.text else chunk), upto

    async def _run(self) -> AsyncGenerator[str, None]:
        acc = ""
        start: int | None = None
        sent = 0  # characters of the cleaned reply already yielded
        cut_short = False
        try:
            async for piece in self._stream:
                acc += piece
                self._pieces += 1
                if start is None:
                    head = acc.lstrip()
                    lead = self._lead.match(acc)
                    assert lead is not None  # the pattern matches the empty string
                    if not head or (self._label_prefix(head) and not lead[0].strip()):
                        continue  # it may still turn out to be a leading label
                    start = lead.end()
                raw = acc[start:]
                cut = self._cut.search(raw)
                if cut is not None:
                    cut_short = True
                    break
                clean = self._clean(raw[: len(raw) - self._held(raw)]).rstrip()
                chunk, sent = self._chunk(clean, sent, self._releasable(clean, final=False))
                if chunk:
                    self.text += chunk
                    yield chunk
                if self._stopped:
                    cut_short = True
                    break
        finally:
            if cut_short:
                await self._stream.aclose()
        self.completion = self._stream.completion
        if not self._stopped:
            if start is None:
                start = self._lead.match(acc).end()  # type: ignore[union-attr]
            raw = acc[start:]
            cut = self._cut.search(raw)
            clean = self._clean(raw[: cut.start()] if cut is not None else raw).rstrip()
            rest = self._chunk(clean, sent, self._releasable(clean, final=True))[0].rstrip()
            if rest:
                self.text += rest
                yield rest
        if not re.search(r"\w", self.text):
            self.fallback = True
            extra = self._fallback_text if not self.text else " " + self._fallback_text
            self.text += extra
            yield extra


class LLMCustomer:
    """The Customer agent on an LLM backend."""

    def __init__(
        self,
        llm: LLMBackend,
        *,
        max_tokens: int = 60,
        finish_tokens: int = 32,
        temperature: float = 0.7,
        top_p: float = 0.9,
        timeout_s: float | None = None,
    ) -> None:
        self.llm = llm
        self.max_tokens = max_tokens
        self.finish_tokens = finish_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.timeout_s = timeout_s

    @staticmethod
    def trainee_label(ctx: SessionContext) -> str:
        """The trainee's speaker label."""
        if ctx.trainee_name.strip():
            return ctx.trainee_name.strip()
        return "销售" if ctx.language == "zh" else "Salesperson"

    def messages(self, ctx: SessionContext, trainee_text: str) -> list[Message]:
        """The prompt's messages (see the module docstring for the layout)."""
        trainee = self.trainee_label(ctx)
        persona = ctx.persona.name
        msgs = [
            Message(
                role="system",
                content=preamble(ctx.persona, ctx.scenario, ctx.product, trainee, ctx.language),
            )
        ]
        for turn in ctx.history:
            msgs.append(Message(role="user", content=turn.trainee_text, name=trainee))
            msgs.append(Message(role="assistant", content=turn.npc_text, name=persona))
        direction = stage_direction(ctx)
        if getattr(self.llm, "chat_template", False):
            msgs.append(Message(role="user", content=f"{trainee_text}\n\n{direction}"))
        else:
            narrator = "旁白" if ctx.language == "zh" else "Narrator"
            msgs.append(Message(role="user", content=trainee_text, name=trainee))
            msgs.append(Message(role="user", content=direction, name=narrator))
        return msgs

    def request(self, ctx: SessionContext, trainee_text: str) -> GenerateRequest:
        """The generation request for this turn."""
        trainee = self.trainee_label(ctx)
        others = [trainee, *ROLE_WORDS, *ROLE_WORDS_ZH]
        stops = ["\n", *(f"{o}:" for o in others), *(f"{o}：" for o in others)]
        return GenerateRequest(
            messages=self.messages(ctx, trainee_text),
            max_tokens=self.max_tokens + self.finish_tokens,  # to end on a whole sentence
            temperature=self.temperature,
            top_p=self.top_p,
            seed=ctx.session_id * 1000 + len(ctx.history) + 1,
            stop=tuple(dict.fromkeys(stops)),
            priority="interactive",
            session_key=f"practice:{ctx.session_id}",
            reply_name=ctx.persona.name,
            timeout_s=self.timeout_s,
        )

    async def warm(self, ctx: SessionContext) -> None:
        """Evaluate the session's fixed prefix (preamble + history) now, at background priority.

        The next turn then evaluates only the trainee's new line: a session's first reply does
        not pay for the whole preamble while the trainee waits (the coordinator calls this when
        a trainee connects). One token is generated and thrown away.
        """
        messages = self.messages(ctx, "")[: 1 + 2 * len(ctx.history)]
        request = GenerateRequest(
            messages=messages,
            max_tokens=1,
            priority="background",
            session_key=f"practice:{ctx.session_id}",
            reply_name=self.trainee_label(ctx),
            timeout_s=self.timeout_s,
        )
        await self.llm.generate(request)

    def reply(self, ctx: SessionContext, trainee_text: str) -> CustomerReply:
        """The customer's reply, streamed (an async iterator of text pieces); it says no
        sentence it said in an earlier turn."""
        stream = self.llm.stream(self.request(ctx, trainee_text))
        labels = [ctx.persona.name, self.trainee_label(ctx), *ROLE_WORDS, *ROLE_WORDS_ZH]
        earlier = [turn.npc_text for turn in ctx.history]
        return CustomerReply(
            stream,
            labels=labels,
            fallback=fallback_line(ctx.language, ctx.mood, avoid=earlier),
            soft_tokens=self.max_tokens,
            earlier=earlier,
            salesperson=self.trainee_label(ctx),
        )

    def next_mood(
        self, ctx: SessionContext, trainee_intent: IntentResult, flags: Sequence[ComplianceFlag]
    ) -> float:
        """The customer's mood after the trainee's line (see the module docstring)."""
        difficulty = ctx.persona.difficulty
        confidence = min(1.0, max(0.0, trainee_intent.confidence))
        base = MOOD_DELTAS.get(trainee_intent.label, 0.0) * confidence
        penalty = sum(FLAG_PENALTY[f.severity] for f in flags if f.who == "trainee")
        delta = base * POSITIVE_SCALE[difficulty] if base > 0 else base * NEGATIVE_SCALE[difficulty]
        delta -= penalty * NEGATIVE_SCALE[difficulty]
        return round(min(1.0, max(0.0, ctx.mood + delta)), 3)
