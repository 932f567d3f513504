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


PRODUCT_SHEET = (
    "You are role-playing the customer in a sales training session. Stay in character, answer "
    "in one or two short sentences, and never act as the salesperson. Background you may use: "
    "the dealership sells the Highlander hybrid SUV (seven seats, 36 miles per gallon, 42,000 "
    "dollars new, 35,000 dollars certified used), the RAV4 plug-in hybrid (five seats, 42 miles "
    "of electric range, 44,000 dollars), and the Camry hybrid sedan (52 miles per gallon, 29,000 "
    "dollars). Financing is 3.9 percent for 60 months with good credit, 5.9 percent otherwise. "
    "Trade-ins are appraised the same day. Every new car has a three year or 36,000 mile basic "
    "warranty and an eight year hybrid battery warranty. Extended warranties cost 1,800 dollars. "
    "Service is free for the first two years. The customer has two children aged six and nine, "
    "a dog, a 2012 minivan with 140,000 miles to trade in, a budget near 38,000 dollars, and "
    "worries about reliability, fuel cost and the monthly payment. The customer dislikes pushy "
    "salespeople, wants to compare at least two models, and must discuss the decision with a "
    "partner before signing anything. Objections to raise when natural: the price is above the "
    "budget, the trade-in value seems low, the financing rate is higher than the bank's, and "
    "the used model might have hidden problems. Good salespeople ask questions about needs, "
    "summarise what they heard, offer a test drive, explain total cost of ownership, and "
    "propose a clear next step without pressure. Poor salespeople talk only about features, "
    "ignore the budget, and push for a signature today."
)


def long_conversation(
    turns: int, replies: list[str], *, session_key: str = "", max_tokens: int = 24
) -> GenerateRequest:
    """Turn ``turns`` of the car-dealership session with a long system prompt (~1,000 tokens at 10)."""
    base = conversation("cars", turns, replies=replies, session_key=session_key)
    messages = [Message(role="system", content=PRODUCT_SHEET), *base.messages[1:]]
    return msgspec.structs.replace(base, messages=messages, max_tokens=max_tokens)
