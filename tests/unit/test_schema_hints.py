"""The catalogue's OpenAPI schema states what the validation accepts, no more and no less.

The hints in appliance/api/schema_hints.py are documentation only (msgspec does not enforce
them; appliance/practice/validation.py does, with typed codes), so these tests tie the two
together: strings generated from each documented pattern pass the validation, and strings the
validation refuses do not match the pattern.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from appliance.api import schema_hints as hints
from appliance.api.domain import DOMAIN_CONTROLLERS
from appliance.errors import InvalidInput
from appliance.practice import validation
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar import Litestar


def _accepted(check: Any, value: str) -> bool:
    try:
        check(value)
    except InvalidInput:
        return False
    return True


CASES = [
    (hints.NAME_PATTERN, lambda v: validation.name("name", v)),
    (hints.TEXT_PATTERN, lambda v: validation.text("description", v)),
    (hints.OPTIONAL_TEXT_PATTERN, lambda v: validation.text("d", v, required=False)),
]


@pytest.mark.parametrize(("pattern", "check"), CASES)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_what_the_pattern_generates_the_validation_accepts(
    pattern: str, check: Any, data: st.DataObject
) -> None:
    value = data.draw(
        st.from_regex(re.compile(pattern), fullmatch=True).filter(lambda v: len(v) < 200)
    )
    assert _accepted(check, value), repr(value)


@pytest.mark.parametrize(("pattern", "check"), CASES)
@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=40))
def test_what_the_validation_refuses_the_pattern_refuses(
    pattern: str, check: Any, value: str
) -> None:
    if not _accepted(check, value):
        assert re.search(pattern, value) is None, repr(value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("Premium card", True),
        ("  ", False),
        ("", False),
        ("a\x00b", False),
        ("evil\u202etxt", False),
        ("two\nlines", False),
        ("年费", True),
    ],
)
def test_name_pattern_examples(value: str, ok: bool) -> None:
    assert (re.search(hints.NAME_PATTERN, value) is not None) is ok
    assert _accepted(lambda v: validation.name("name", v), value) is ok


def test_key_and_currency_patterns_are_the_validations() -> None:
    assert validation._KEY.pattern == hints.KEY_PATTERN
    for key in ("annual_fee", "a", "Fee", "1fee", "a" * 65, "fee-x"):
        assert (re.fullmatch(hints.KEY_PATTERN, key) is not None) is bool(
            validation._KEY.match(key)
        )
    for code in ("USD", "cny", "US", "USDX", "U$D"):
        ok = re.fullmatch(hints.CURRENCY_PATTERN, code) is not None
        assert ok is bool(validation._CURRENCY.match(code.upper())), code


def _schemas() -> dict[str, Any]:
    app = Litestar(route_handlers=DOMAIN_CONTROLLERS)
    schemas: dict[str, Any] = app.openapi_schema.to_schema()["components"]["schemas"]
    return schemas


def test_the_openapi_schema_carries_the_bounds() -> None:
    schemas = _schemas()
    scenario = schemas["ScenarioIn"]
    assert {"name", "description", "objective"} <= set(scenario["required"])
    name = scenario["properties"]["name"]
    assert name["minLength"] == 1 and name["maxLength"] == validation.MAX_NAME
    assert name["pattern"] == hints.NAME_PATTERN
    persona = schemas["PersonaIn"]["properties"]
    assert persona["initial_mood"]["minimum"] == 0 and persona["initial_mood"]["maximum"] == 1
    assert persona["goals"]["maxItems"] == validation.MAX_ITEMS
    rubric = schemas["RubricIn"]["properties"]["dimensions"]
    assert rubric["minItems"] == 1 and rubric["maxItems"] == 50
    dimension = schemas["DimensionIn"]["properties"]
    assert dimension["weight"]["exclusiveMinimum"] == 0
    assert dimension["key"]["pattern"] == hints.KEY_PATTERN
    stages = dimension["stages"]["items"]
    assert stages["enum"][0] == "OPENING"
    product = schemas["ProductIn"]["properties"]
    assert product["fees"]["additionalProperties"]["minimum"] == 0
    assert product["currency"]["pattern"] == hints.CURRENCY_PATTERN


def test_the_hints_do_not_change_decoding() -> None:
    """msgspec ignores the hints: a blank name still reaches the validation (empty_field)."""
    import msgspec
    from appliance.api.domain import CourseIn

    body = msgspec.json.decode(b'{"name": "  "}', type=CourseIn)
    with pytest.raises(validation.EmptyField):
        validation.name("name", body.name)


def test_search_and_intent_document_what_they_refuse() -> None:
    from appliance.api.intent import IntentController
    from appliance.api.knowledge import KnowledgeController

    spec = Litestar(route_handlers=[IntentController, KnowledgeController]).openapi_schema
    document = spec.to_schema()
    search = document["paths"]["/api/knowledge/search"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in search}
    assert by_name["q"]["minLength"] == 1 and by_name["q"]["pattern"] == r"\S"
    assert list(by_name["mode"]["enum"]) == ["hybrid", "dense", "fulltext"]
    intent = document["components"]["schemas"]["IntentIn"]["properties"]
    assert intent["text"]["maxLength"] == 2000 and intent["text"]["pattern"] == r"\S"
