"""Validation of practice-domain objects before they are stored, with typed errors per problem.

Every error names the offending field in its message and in ``detail["field"]``. The API and the
demo-pack loader both go through these checks, so nothing invalid reaches the repository.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import cast

from appliance.errors import InvalidInput, check_text
from appliance.practice.model import (
    STAGES,
    ComplianceRule,
    Course,
    Persona,
    Product,
    RubricDimension,
    Scenario,
    Stage,
)

MAX_NAME = 200
MAX_TEXT = 20_000
MAX_ITEMS = 100
MAX_PATTERN = 1000
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_COLLECTION = re.compile(r"^[\w.\-]{1,100}$")


class DomainInvalid(InvalidInput):
    """A domain field has a wrong value (the message and ``detail.field`` say which)."""

    code = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", detail={"field": field})
        self.field = field


class EmptyField(DomainInvalid):
    """A required text is empty or blank."""

    code = "empty_field"


class OutOfRange(DomainInvalid):
    """A number is outside its allowed range."""

    code = "out_of_range"


class InvalidWeight(DomainInvalid):
    """A rubric dimension's weight is not > 0."""

    code = "invalid_weight"


class NoDimensions(DomainInvalid):
    """A rubric has no dimensions."""

    code = "no_dimensions"


class DuplicateDimension(DomainInvalid):
    """Two rubric dimensions share a key."""

    code = "duplicate_dimension"


class UnknownStage(DomainInvalid):
    """A stage name that is not one of appliance.practice.model.STAGES."""

    code = "unknown_stage"


class InvalidPattern(DomainInvalid):
    """A compliance rule's regex does not compile (or a phrase is blank)."""

    code = "invalid_pattern"


class UnknownReference(DomainInvalid):
    """A reference to a course, product, rubric or persona that is missing or archived."""

    status_code = 422
    code = "unknown_reference"


class LanguageMismatch(DomainInvalid):
    """A scenario and a persona it offers speak different languages."""

    status_code = 422
    code = "language_mismatch"

    def __init__(self, field: str, scenario: Scenario, persona: Persona) -> None:
        which = f"{scenario.id} " if scenario.id else ""  # a new scenario has no id yet
        scenario_name = f"scenario {which}{scenario.name!r}"
        super().__init__(
            field,
            f"{scenario_name} is in {scenario.language!r} but persona {persona.id} "
            f"{persona.name!r} is in {persona.language!r}; a scenario offers only personas "
            "of its own language",
        )
        self.detail = {
            "field": field,
            "scenario_id": scenario.id or None,
            "scenario_language": scenario.language,
            "persona_id": persona.id,
            "persona_language": persona.language,
        }


def same_language(field: str, scenario: Scenario, persona: Persona) -> None:
    """LanguageMismatch unless ``persona`` speaks ``scenario``'s language."""
    if persona.language != scenario.language:
        raise LanguageMismatch(field, scenario, persona)


def text(
    field: str,
    value: str,
    *,
    required: bool = True,
    limit: int = MAX_TEXT,
    single_line: bool = False,
) -> str:
    """``value`` stripped; EmptyField when required and blank; DomainInvalid when too long;
    InvalidText (``invalid_text``) for a control character, or a bidi control in a single line."""
    value = check_text(field, value.strip(), single_line=single_line)
    if required and not value:
        raise EmptyField(field, "must not be empty")
    if len(value) > limit:
        raise DomainInvalid(field, f"at most {limit} characters")
    return value


def name(field: str, value: str) -> str:
    """A single-line name or title (no control or bidi control characters), at most MAX_NAME."""
    return text(field, value, limit=MAX_NAME, single_line=True)


def texts(field: str, values: Sequence[str]) -> list[str]:
    """A list of non-blank strings (blank entries are an error, not silently dropped)."""
    if len(values) > MAX_ITEMS:
        raise DomainInvalid(field, f"at most {MAX_ITEMS} entries")
    return [text(f"{field}[{n}]", v, limit=2000) for n, v in enumerate(values)]


def course(c: Course) -> Course:
    """A validated (stripped) course."""
    return Course(
        id=c.id,
        name=name("name", c.name),
        description=text("description", c.description, required=False),
    )


def persona(p: Persona) -> Persona:
    """A validated persona (initial_mood in 0..1)."""
    if not 0.0 <= p.initial_mood <= 1.0:
        raise OutOfRange("initial_mood", f"must be between 0 and 1, got {p.initial_mood}")
    return Persona(
        id=p.id,
        name=name("name", p.name),
        difficulty=p.difficulty,
        description=text("description", p.description),
        goals=texts("goals", p.goals),
        objections=texts("objections", p.objections),
        knows=texts("knows", p.knows),
        language=p.language,
        initial_mood=p.initial_mood,
    )


def stages(field: str, names: Sequence[str]) -> list[str]:
    """Stage names, each one of STAGES."""
    for n, name in enumerate(names):
        if name not in STAGES:
            raise UnknownStage(
                f"{field}[{n}]", f"unknown stage {name!r}; one of {', '.join(STAGES)}"
            )
    return list(dict.fromkeys(names))


def dimensions(dims: Sequence[RubricDimension]) -> list[RubricDimension]:
    """Validated rubric dimensions: at least one, weights > 0, unique keys, known stages."""
    if not dims:
        raise NoDimensions("dimensions", "a rubric needs at least one dimension")
    if len(dims) > 50:
        raise DomainInvalid("dimensions", "at most 50 dimensions")
    seen: set[str] = set()
    out: list[RubricDimension] = []
    for n, d in enumerate(dims):
        field = f"dimensions[{n}]"
        key = check_text(f"{field}.key", d.key.strip(), single_line=True)
        if not _KEY.match(key):
            raise DomainInvalid(
                f"{field}.key", "must be a lowercase identifier (a-z, 0-9, _), 1-64 characters"
            )
        if key in seen:
            raise DuplicateDimension(f"{field}.key", f"duplicate dimension key {key!r}")
        seen.add(key)
        if not d.weight > 0 or d.weight != d.weight or d.weight > 1e6:
            raise InvalidWeight(f"{field}.weight", f"must be > 0 and at most 1e6, got {d.weight}")
        out.append(
            RubricDimension(
                key=key,
                name=name(f"{field}.name", d.name),
                weight=d.weight,
                description=text(f"{field}.description", d.description, limit=4000),
                stages=cast("list[Stage]", stages(f"{field}.stages", d.stages)),
            )
        )
    return out


def product(p: Product) -> Product:
    """A validated product: fees >= 0, waivers naming a fee it has, 3-letter currency."""
    currency = check_text("currency", p.currency.strip(), single_line=True).upper()
    if not _CURRENCY.match(currency):
        raise DomainInvalid("currency", "must be a 3-letter ISO 4217 code, e.g. USD or CNY")
    fees: dict[str, float] = {}
    for key, amount in p.fees.items():
        check_text(f"fees.{key!r}", key, single_line=True)
        if not _KEY.match(key):
            raise DomainInvalid(f"fees.{key}", "fee keys are lowercase identifiers (a-z, 0-9, _)")
        if not amount >= 0:
            raise OutOfRange(f"fees.{key}", f"must be >= 0, got {amount}")
        fees[key] = amount
    waivers = []
    for n, w in enumerate(p.waivers):
        check_text(f"waivers[{n}].fee", w.fee, single_line=True)
        if w.fee not in fees:
            raise UnknownReference(
                f"waivers[{n}].fee", f"{w.fee!r} is not one of this product's fees"
            )
        if w.min_annual_spend is not None and not w.min_annual_spend >= 0:
            raise OutOfRange(f"waivers[{n}].min_annual_spend", "must be >= 0")
        waivers.append(
            type(w)(
                fee=w.fee,
                condition=text(f"waivers[{n}].condition", w.condition, limit=2000),
                min_annual_spend=w.min_annual_spend,
            )
        )
    return Product(
        id=p.id,
        name=name("name", p.name),
        currency=currency,
        fees=fees,
        waivers=waivers,
        benefits=texts("benefits", p.benefits),
        eligibility=texts("eligibility", p.eligibility),
        description=text("description", p.description, required=False),
    )


def rule(r: ComplianceRule) -> ComplianceRule:
    """A validated rule: a non-blank phrase, or a regex that compiles."""
    pattern = r.pattern if r.kind == "regex" else r.pattern.strip()
    check_text("pattern", pattern, single_line=False)
    if not pattern.strip():
        raise InvalidPattern("pattern", "must not be empty")
    if len(pattern) > MAX_PATTERN:
        raise InvalidPattern("pattern", f"at most {MAX_PATTERN} characters")
    if r.kind == "regex":
        try:
            compiled = re.compile(pattern)
        except re.error as err:
            raise InvalidPattern("pattern", f"not a valid regular expression: {err}") from None
        if compiled.match(""):
            raise InvalidPattern(
                "pattern", "the regex matches the empty string (it would flag everything)"
            )
    return ComplianceRule(
        id=r.id,
        name=name("name", r.name),
        kind=r.kind,
        pattern=pattern,
        severity=r.severity,
        applies_to=r.applies_to,
        message=text("message", r.message, required=False, limit=2000),
    )


def scenario(s: Scenario) -> Scenario:
    """A validated scenario: a rubric is required (``empty_field`` on ``rubric_id``); the
    references are checked against the database by the caller."""
    check_text("knowledge_collection", s.knowledge_collection.strip(), single_line=True)
    if not _COLLECTION.match(s.knowledge_collection.strip()):
        raise DomainInvalid("knowledge_collection", "1-100 letters, digits, '_', '-' or '.'")
    if len(s.persona_ids) > MAX_ITEMS:
        raise DomainInvalid("persona_ids", f"at most {MAX_ITEMS} personas")
    checked_name = name("name", s.name)
    description = text("description", s.description)
    objective = text("objective", s.objective)
    if s.rubric_id is None:  # a session is scored by its scenario's rubric: none, no session
        raise EmptyField(
            "rubric_id", "a scenario needs a rubric (its sessions are scored by it): pick one"
        )
    return Scenario(
        id=s.id,
        course_id=s.course_id,
        name=checked_name,
        description=description,
        objective=objective,
        kind=s.kind,
        product_id=s.product_id,
        rubric_id=s.rubric_id,
        language=s.language,
        persona_ids=list(dict.fromkeys(s.persona_ids)),
        knowledge_collection=s.knowledge_collection.strip(),
    )
