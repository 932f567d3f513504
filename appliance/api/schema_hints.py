"""Constraints the OpenAPI schema states that msgspec does not enforce on decoding.

The catalogue's bodies are checked by :mod:`appliance.practice.validation` (for the API, the
CLI and the demo loader alike), which answers with typed codes: ``empty_field``,
``invalid_text``, ``invalid_field``, ``out_of_range``, ``invalid_weight``, ``no_dimensions``.
Declaring the same limits as ``msgspec.Meta`` would make the decoder refuse first, with the
generic ``invalid_request``. So they are stated as Litestar ``KwargDefinition`` markers:
Litestar writes them into the OpenAPI schema (``minLength``, ``pattern``, ``maximum``...),
msgspec ignores them, and the validation keeps its codes. A client (or a fuzzer) reading the
schema then sends what the API accepts. Keep these in step with ``practice/validation.py``;
``tests/unit/test_schema_hints.py`` checks that values inside them pass it and values outside
fail it. (Litestar skips a bound that is 0, as falsy, so zero bounds go in ``schema_extra``.)
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar.params import KwargDefinition

from appliance.practice.model import STAGES
from appliance.practice.validation import MAX_ITEMS, MAX_NAME, MAX_PATTERN, MAX_TEXT

_SINGLE_LINE_BAD = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_MULTILINE_BAD = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"

NAME_PATTERN = rf"^[^{_SINGLE_LINE_BAD}]*[^\s{_SINGLE_LINE_BAD}][^{_SINGLE_LINE_BAD}]*$"
"""One line with something besides spaces, and no control or bidi control character."""

TEXT_PATTERN = rf"^[^{_MULTILINE_BAD}]*[^\s{_MULTILINE_BAD}][^{_MULTILINE_BAD}]*$"
"""Free text with something besides whitespace, and no control character but tab and newlines."""

OPTIONAL_TEXT_PATTERN = rf"^[^{_MULTILINE_BAD}]*$"
"""Free text, possibly empty, with no control character but tab and newlines."""

KEY_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
CURRENCY_PATTERN = r"^[A-Za-z]{3}$"
COLLECTION_PATTERN = r"^[A-Za-z0-9_.\-]{1,100}$"
"""The ASCII part of what a collection name may be (letters of any script are accepted too)."""


class SchemaExtra(dict[str, Any]):
    """A ``schema_extra`` that can sit in a union: typing hashes ``Annotated`` metadata."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(self.items())))


Name = Annotated[str, KwargDefinition(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
"""A name or title: non-blank, one line, at most MAX_NAME characters."""

Text = Annotated[str, KwargDefinition(min_length=1, max_length=MAX_TEXT, pattern=TEXT_PATTERN)]
"""Required free text (a description, an objective): non-blank, at most MAX_TEXT characters."""

OptionalText = Annotated[str, KwargDefinition(max_length=MAX_TEXT, pattern=OPTIONAL_TEXT_PATTERN)]
"""Free text that may be empty."""

DimensionText = Annotated[str, KwargDefinition(min_length=1, max_length=4000, pattern=TEXT_PATTERN)]
"""A rubric dimension's description: non-blank, at most 4,000 characters."""

RuleMessage = Annotated[str, KwargDefinition(max_length=2000, pattern=OPTIONAL_TEXT_PATTERN)]
"""What a compliance flag tells the trainee; may be empty."""

StageName = Annotated[str, KwargDefinition(schema_extra=SchemaExtra(enum=tuple(STAGES)))]
"""A stage name (an unknown one is ``unknown_stage``, from the validation)."""

Item = Annotated[str, KwargDefinition(min_length=1, max_length=2000, pattern=TEXT_PATTERN)]
"""One entry of a list of texts (goals, benefits...): non-blank, at most 2,000 characters."""

Items = Annotated[list[Item], KwargDefinition(max_items=MAX_ITEMS)]
"""A list of at most MAX_ITEMS non-blank texts."""

Key = Annotated[str, KwargDefinition(min_length=1, max_length=64, pattern=KEY_PATTERN)]
"""A lowercase identifier: a rubric dimension's key, a fee's key."""

Pattern = Annotated[
    str, KwargDefinition(min_length=1, max_length=MAX_PATTERN, pattern=TEXT_PATTERN)
]
"""A compliance rule's phrase or regex."""

Currency = Annotated[str, KwargDefinition(min_length=3, max_length=3, pattern=CURRENCY_PATTERN)]
"""An ISO 4217 code (any case; stored upper case)."""

Collection = Annotated[
    str, KwargDefinition(min_length=1, max_length=100, pattern=COLLECTION_PATTERN)
]
"""A knowledge collection name."""

Weight = Annotated[float, KwargDefinition(le=1e6, schema_extra=SchemaExtra(exclusive_minimum=0))]
"""A rubric dimension's weight: > 0, at most 1e6."""

Mood = Annotated[float, KwargDefinition(le=1, schema_extra=SchemaExtra(minimum=0))]
"""A mood between 0 (hostile) and 1 (delighted)."""

Amount = Annotated[float, KwargDefinition(schema_extra=SchemaExtra(minimum=0))]
"""A fee or a yearly spend: >= 0."""
