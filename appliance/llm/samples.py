"""Sample sales conversations shared by the tests, `salesboost bench llm` and demos.

Each persona is a clearly different topic, so a reply that borrowed another session's
tokens or KV cells would show it.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from appliance.llm.base import GenerateRequest, Message, Priority

PERSONAS: dict[str, tuple[str, list[str]]] = {
    "cars": (
        "A customer at a car dealership talks with a salesperson about buying a family car.",
        [
            "Hello and welcome! What kind of car are you looking for today?",
            "We have a few hybrid SUVs with seven seats. How many children do you have?",
            "The Highlander hybrid gets about 36 miles per gallon. Would you like a test drive?",
            "The price is 42,000 dollars, and we can offer financing at 3.9 percent.",
            "We also have a certified used model from last year for 35,000 dollars.",
        ],
    ),
    "software": (
        "A customer who manages an IT team talks with a salesperson about project software.",
        [
            "Thanks for joining the call. How does your team track projects today?",
            "Our tool connects to Jira and GitHub. How many engineers are on your team?",
            "For forty users the business plan costs twelve dollars per user per month.",
            "Single sign-on and audit logs are included in the business plan.",
            "We can set up a thirty-day trial with your own data this week.",
        ],
    ),
    "insurance": (
        "A young homeowner talks with an insurance agent about a home insurance policy.",
        [
            "Good morning! Are you looking to insure a house or an apartment?",
            "Is the house in an area with flooding or wildfire risk?",
            "A standard policy covers fire, theft and water damage from burst pipes.",
            "Your yearly premium would be about 1,100 dollars with a 1,000 dollar deductible.",
            "If you bundle it with car insurance you save fifteen percent.",
        ],
    ),
    "coffee": (
        "The owner of a small cafe talks with a sales rep from a coffee bean roaster.",
        [
            "Hi! I brought samples of our new Ethiopian and Colombian beans.",
            "The Ethiopian has notes of blueberry and jasmine. Which one did you like more?",
            "We deliver every Tuesday, and a five kilo bag costs ninety euros.",
            "We can also train your baristas on the espresso machine for free.",
            "If you sign a one-year contract, the grinder is included.",
        ],
    ),
}


def conversation(
    persona: str,
    turns: int,
    *,
    replies: list[str] | None = None,
    session_key: str = "",
    max_tokens: int = 24,
    priority: Priority = "interactive",
) -> GenerateRequest:
    """Turn ``turns`` (1-based) of a persona's conversation: salesperson lines, customer replies."""
    system, lines = PERSONAS[persona]
    messages = [Message(role="system", content=system)]
    for i in range(turns):
        messages.append(Message(role="user", name="Salesperson", content=lines[i % len(lines)]))
        if i < turns - 1:
            reply = (replies or [])[i] if replies and i < len(replies) else "I see, go on."
            messages.append(Message(role="assistant", name="Customer", content=reply))
    return GenerateRequest(
        messages=messages,
        max_tokens=max_tokens,
        reply_name="Customer",
        session_key=session_key,
        priority=priority,
    )


class TurnScore(msgspec.Struct, kw_only=True):
    """A small, realistic structured output: a score for the salesperson's last turn."""

    score: Annotated[int, msgspec.Meta(ge=0, le=10)]
    reason: Annotated[str, msgspec.Meta(max_length=80)]


class StageUpdate(msgspec.Struct, kw_only=True):
    """Which sales stage the conversation is in, and whether the customer objected."""

    stage: Annotated[str, msgspec.Meta(max_length=20)]
    objection: bool
    sentiment: Annotated[int, msgspec.Meta(ge=-2, le=2)]


def score_request(persona: str, *, max_tokens: int = 48) -> GenerateRequest:
    """Ask for a TurnScore of a persona's second salesperson turn."""
    base = conversation(persona, 2, max_tokens=max_tokens, priority="evaluator")
    messages = [
        *base.messages,
        Message(
            role="user",
            name="Coach",
            content="Rate the salesperson's last line from 0 to 10 as JSON with score and reason.",
        ),
    ]
    return msgspec.structs.replace(base, messages=messages, reply_name="Coach")
