"""Turning messages into prompt tokens, for chat-template models and plain base models.

Long-prompt policy (a prompt that does not fit the sequence's context after reserving
``max_tokens`` for the reply), applied by :func:`build_prompt`:

1. System messages are always kept (they carry the persona and instructions).
2. The oldest non-system turns are dropped, as few as possible, keeping the latest turns.
3. If the system messages and the last turn alone still do not fit, the last turn is cut
   from its start (its end, the part being answered, is kept), then the system text is cut
   from its end.
4. As a last resort the token list keeps its head (BOS and instructions) and its tail.

It never raises: a too-long prompt is trimmed, and ``Prompt.dropped_turns`` /
``Prompt.truncated`` say what happened. Note that trimming changes the prompt's prefix, so a
session past its context evaluates its (trimmed) prompt in full each turn.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jinja2

from appliance.llm.errors import LLMError

if TYPE_CHECKING:  # only for annotations; base imports nothing from here at run time
    from appliance.llm.base import Message

Tokenize = Callable[[str, bool], list[int]]
"""(text, parse_special) -> tokens, BOS added as the model requires."""


@dataclass
class Prompt:
    """Prompt tokens plus the stop sequences that end the reply."""

    text: str
    tokens: list[int]
    stops: list[str]
    dropped_turns: int = 0
    truncated: bool = False
    messages: list[Message] = field(default_factory=list)
    """The messages the prompt was rendered from, after trimming (for chat-API backends)."""


@dataclass
class Rendered:
    """A rendered prompt before tokenization."""

    text: str
    stops: list[str]
    parse_special: bool = False
    add_bos: bool = True


class PromptFormat(ABC):
    """How messages become prompt text."""

    @abstractmethod
    def render(self, messages: Sequence[Message], reply_name: str) -> Rendered:
        """The prompt text ending where the reply begins, and its stop sequences."""


@dataclass
class TranscriptFormat(PromptFormat):
    """Plain transcript completion for base models without a chat template.

    System text first, then one ``Name: text`` line per turn, ending with ``Reply-name:``.
    The reply stops at the next ``\\nName:`` of any speaker or at a blank line.
    """

    user_name: str = "User"
    assistant_name: str = "Assistant"
    extra_stops: list[str] = field(default_factory=lambda: ["\n\n"])

    def _label(self, message: Message) -> str:
        if message.name:
            return message.name
        return self.user_name if message.role == "user" else self.assistant_name

    def render(self, messages: Sequence[Message], reply_name: str) -> Rendered:
        """System block, transcript lines, then the reply label."""
        system = "\n\n".join(m.content.strip() for m in messages if m.role == "system")
        lines = [
            f"{self._label(m)}: {' '.join(m.content.split())}"
            for m in messages
            if m.role != "system"
        ]
        reply = reply_name or self.assistant_name
        text = (system + "\n\n" if system else "") + "".join(line + "\n" for line in lines)
        text += f"{reply}:"
        labels = {self._label(m) for m in messages if m.role != "system"}
        labels |= {reply, self.user_name}
        stops = [f"\n{label}:" for label in sorted(labels)] + self.extra_stops
        return Rendered(text=text, stops=stops, parse_special=False, add_bos=True)


def alternate_roles(messages: Sequence[Message]) -> list[Message]:
    """The messages as strict chat templates accept them: one system message, then turns
    that start with the user and alternate user / assistant.

    Many templates (Gemma, Mistral, Llama 2) refuse anything else, and the long-prompt
    policy can drop an odd number of turns: consecutive messages of one role are joined
    (blank line between), and assistant turns before the first user turn are dropped (they
    are the oldest context). A conversation with no user turn is left as it is.
    """
    from appliance.llm.base import Message

    system = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    first_user = next((i for i, m in enumerate(turns) if m.role == "user"), None)
    if first_user is None:
        return list(messages)
    out: list[Message] = []
    if system:
        out.append(Message(role="system", content="\n\n".join(m.content for m in system)))
    for m in turns[first_user:]:
        if out and out[-1].role == m.role:
            out[-1] = Message(role=m.role, content=f"{out[-1].content}\n\n{m.content}")
        else:
            out.append(Message(role=m.role, content=m.content))
    return out


class PromptTemplateError(LLMError):
    """The model's chat template refused the messages even in alternating form."""

    status_code = 500
    code = "llm_prompt_template_error"


class ChatTemplateFormat(PromptFormat):
    """The model's own chat template, rendered with Jinja as llama-cpp-python renders it.

    Messages are given to it in alternating form (:func:`alternate_roles`).
    """

    def __init__(self, template: str, *, bos_token: str, eos_token: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._formatter = Jinja2ChatFormatter(
            template=template, bos_token=bos_token, eos_token=eos_token
        )
        self.eos_token = eos_token

    def render(self, messages: Sequence[Message], reply_name: str) -> Rendered:
        """Render with add_generation_prompt; the template's own stop strings are kept."""
        payload: list[Any] = [
            {"role": m.role, "content": m.content} for m in alternate_roles(messages)
        ]
        try:
            result = self._formatter(messages=payload)
        except (ValueError, TypeError, jinja2.TemplateError) as err:  # its raise_exception()
            raise PromptTemplateError(
                f"the model's chat template refused the prompt: {err}"
            ) from err
        stops: list[str] = []
        if isinstance(result.stop, str):
            stops.append(result.stop)
        elif result.stop:
            stops.extend(result.stop)
        if self.eos_token and self.eos_token not in stops:
            stops.append(self.eos_token)
        added = bool(getattr(result, "added_special", False))
        return Rendered(text=result.prompt, stops=stops, parse_special=True, add_bos=not added)


def _cut_head(text: str) -> str:
    return text[len(text) // 4 + 1 :]


def _cut_tail(text: str) -> str:
    return text[: len(text) * 3 // 4]


def build_prompt(
    fmt: PromptFormat,
    tokenize: Callable[[str, bool, bool], list[int]],
    messages: Sequence[Message],
    *,
    reply_name: str,
    budget: int,
) -> Prompt:
    """Render and tokenize ``messages`` within ``budget`` tokens (see the module's policy)."""
    from appliance.llm.base import Message

    def attempt(msgs: Sequence[Message]) -> tuple[Rendered, list[int]]:
        rendered = fmt.render(msgs, reply_name)
        return rendered, tokenize(rendered.text, rendered.add_bos, rendered.parse_special)

    rendered, tokens = attempt(messages)
    if len(tokens) <= budget:
        return Prompt(rendered.text, tokens, rendered.stops, messages=list(messages))
    system = [m for m in messages if m.role == "system"]
    turns = [m for m in messages if m.role != "system"]
    # binary search for the fewest oldest turns to drop (keeping at least the last one)
    lo, hi = 1, len(turns) - 1  # never drop the last turn
    best: tuple[int, Rendered, list[int]] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        r, t = attempt(system + turns[mid:])
        if len(t) <= budget:
            best = (mid, r, t)
            hi = mid - 1
        else:
            lo = mid + 1
    if best is not None:
        kept = [*system, *turns[best[0] :]]
        return Prompt(best[1].text, best[2], best[1].stops, dropped_turns=best[0], messages=kept)
    dropped = max(0, len(turns) - 1)
    last = turns[-1:] if turns else []
    for _ in range(40):
        r, t = attempt(system + last)
        if len(t) <= budget:
            return Prompt(
                r.text,
                t,
                r.stops,
                dropped_turns=dropped,
                truncated=True,
                messages=[*system, *last],
            )
        if last and len(last[0].content) > 16:
            last = [
                Message(role=last[0].role, content=_cut_head(last[0].content), name=last[0].name)
            ]
        elif system and any(len(m.content) > 16 for m in system):
            system = [
                Message(role=m.role, content=_cut_tail(m.content), name=m.name) for m in system
            ]
        else:
            break
    r, t = attempt(system + last)
    keep_head = min(len(t), budget // 4)
    t = t[:keep_head] + t[len(t) - (budget - keep_head) :]
    return Prompt(
        r.text, t, r.stops, dropped_turns=dropped, truncated=True, messages=[*system, *last]
    )
