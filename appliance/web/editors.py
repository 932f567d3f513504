"""The manager's editors: which domain resources there are and the form fields of each.

The forms post JSON to the domain API (``/api/<resource>``); its validation messages are shown
next to the form (and next to the field they name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

FieldKind = Literal["text", "textarea", "number", "int", "select", "lines", "json", "ref", "refs"]


@dataclass(frozen=True)
class Field:
    """One form field: its JSON key, kind, options and whether it may be left empty."""

    key: str
    label: str
    kind: FieldKind = "text"
    options: tuple[str, ...] = ()
    required: bool = False
    step: str = "any"
    hint: str = ""
    default: str = ""
    """The value a new item starts with (a select's API default)."""
    source: str = ""
    """Where the choices come from (an API list path): for ``ref`` (one item, picked by name
    from a list; a required one offers no "none", only a "pick one" prompt until something is
    picked), ``refs`` (several, ticked) and a ``text`` field that suggests the names found
    there (it may still name a new one)."""


@dataclass(frozen=True)
class Resource:
    """A domain resource the editor handles."""

    kind: str
    title_key: str
    api: str
    fields: list[Field] = field(default_factory=list)


LANGS = ("en", "zh")

RESOURCES: dict[str, Resource] = {
    r.kind: r
    for r in [
        Resource(
            "courses",
            "courses_t",
            "/api/courses",
            [
                Field("name", "Name", required=True),
                Field("description", "Description", "textarea"),
            ],
        ),
        Resource(
            "scenarios",
            "scenarios_t",
            "/api/scenarios",
            [
                Field("name", "Name", required=True),
                Field("description", "Description", "textarea", required=True),
                Field("objective", "Objective", "textarea", required=True),
                Field(
                    "kind", "Kind", "select", ("retention", "new_sale", "other"), default="other"
                ),
                Field("language", "Language", "select", LANGS),
                Field("course_id", "Course", "ref", source="/api/courses"),
                Field("product_id", "Product", "ref", source="/api/products"),
                # required: a session is scored by it (the select offers no "none")
                Field("rubric_id", "Rubric", "ref", required=True, source="/api/rubrics"),
                Field("persona_ids", "Personas", "refs", source="/api/personas"),
                Field(
                    "knowledge_collection",
                    "Knowledge collection",
                    default="default",
                    source="/api/knowledge/collections",
                ),
            ],
        ),
        Resource(
            "personas",
            "personas_t",
            "/api/personas",
            [
                Field("name", "Name", required=True),
                Field(
                    "difficulty",
                    "Difficulty",
                    "select",
                    ("easy", "medium", "hard"),
                    default="medium",
                ),
                Field("description", "Description", "textarea", required=True),
                Field("goals", "Goals", "lines"),
                Field("objections", "Objections", "lines"),
                Field("knows", "Knows", "lines"),
                Field("language", "Language", "select", LANGS),
                Field("initial_mood", "Initial mood (0-1)", "number", step="0.05", default="0.5"),
            ],
        ),
        Resource(
            "rubrics",
            "rubrics_t",
            "/api/rubrics",
            [
                Field("name", "Name", required=True),
                Field(
                    "dimensions",
                    "Dimensions",
                    "json",
                    required=True,
                    hint='[{"key": "rapport", "name": "Rapport", "weight": 1, "description": "…"}]',
                ),
            ],
        ),
        Resource(
            "products",
            "products_t",
            "/api/products",
            [
                Field("name", "Name", required=True),
                Field("currency", "Currency", default="USD"),
                Field(
                    "fees",
                    "Fees",
                    "json",
                    hint='{"annual_fee": 300, "late_payment_fee": 40, "foreign_transaction_pct": 3}',
                ),
                Field(
                    "waivers",
                    "Waivers",
                    "json",
                    hint='[{"fee": "annual_fee", "condition": "…", "min_annual_spend": 50000}]',
                ),
                Field("benefits", "Benefits", "lines"),
                Field("eligibility", "Eligibility", "lines"),
                Field("description", "Description", "textarea"),
            ],
        ),
        Resource(
            "compliance-rules",
            "rules_t",
            "/api/compliance-rules",
            [
                Field("name", "Name", required=True),
                Field("kind", "Kind", "select", ("phrase", "regex")),
                Field("pattern", "Pattern", required=True),
                Field("severity", "Severity", "select", ("warn", "block")),
                Field(
                    "applies_to",
                    "Applies to",
                    "select",
                    ("trainee", "customer", "both"),
                    default="both",
                ),
                Field("message", "Message"),
            ],
        ),
    ]
}
