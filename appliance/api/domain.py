"""/api/courses, scenarios, personas, rubrics, products, compliance-rules: the practice catalogue.

Thin controllers: decode -> CatalogService (validation, references, audit) -> Struct out.
Trainees read courses, scenarios and personas (they pick them); managers read the rest and
make every write. DELETE archives: the row leaves lists, GET by id still answers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import FromQuery, JSONBody, KwargDefinition
from msgspec import UNSET, UnsetType

from appliance.api.auth import actor_of
from appliance.api.openapi import documented, errors
from appliance.api.params import PathId, QueryId, RowId
from appliance.api.schema_hints import (
    Amount,
    Collection,
    Currency,
    DimensionText,
    Item,
    Items,
    Key,
    Mood,
    Name,
    OptionalText,
    Pattern,
    RuleMessage,
    StageName,
    Text,
    Weight,
)
from appliance.auth.guards import access, principal_of
from appliance.db.domain import DomainRepository, Kind, RowMeta
from appliance.errors import NotFound
from appliance.practice.catalog import AuditActor, CatalogService
from appliance.practice.model import (
    STAGES,
    ComplianceRule,
    Course,
    Language,
    Persona,
    Product,
    Rubric,
    RubricDimension,
    Scenario,
    Severity,
    Waiver,
)
from appliance.practice.validation import MAX_ITEMS

Difficulty = Literal["easy", "medium", "hard"]
ScenarioKind = Literal["retention", "new_sale", "other"]
RuleKind = Literal["phrase", "regex"]
AppliesTo = Literal["trainee", "customer", "both"]

T = TypeVar("T", bound=msgspec.Struct)

READ_ALL = access("user")
MANAGE = access("manager")


# --- output: the model Structs plus row bookkeeping -------------------------------------------


class CourseOut(Course, kw_only=True):
    """A course with its archived flag and timestamps."""

    archived: bool = False
    created_at: str = ""
    updated_at: str = ""


class ScenarioOut(Scenario, kw_only=True):
    """A scenario with its archived flag and timestamps."""

    archived: bool = False
    created_at: str = ""
    updated_at: str = ""


class PersonaOut(Persona, kw_only=True):
    """A persona with its archived flag and timestamps."""

    archived: bool = False
    created_at: str = ""
    updated_at: str = ""


class PersonaBrief(msgspec.Struct, kw_only=True):
    """What a trainee sees of a persona: who the customer is, not the script they play
    (goals, objections and what they know stay with managers, or the exercise is spoiled)."""

    id: int
    name: str
    difficulty: Literal["easy", "medium", "hard"]
    description: str
    language: Language
    archived: bool = False
    created_at: str = ""
    updated_at: str = ""


def _persona_view(
    request: Request[Any, Any, Any], persona: PersonaOut
) -> PersonaOut | PersonaBrief:
    """The full record for managers and admins, the brief for trainees."""
    principal = principal_of(request)
    if principal is not None and principal.at_least("manager"):
        return persona
    return PersonaBrief(
        id=persona.id,
        name=persona.name,
        difficulty=persona.difficulty,
        description=persona.description,
        language=persona.language,
        archived=persona.archived,
        created_at=persona.created_at,
        updated_at=persona.updated_at,
    )


class RubricOut(Rubric, kw_only=True):
    """A rubric at one version, with every version it has."""

    versions: list[int] = []
    latest_version: int = 1
    archived: bool = False
    created_at: str = ""
    updated_at: str = ""


class ProductOut(Product, kw_only=True):
    """A product with its archived flag and timestamps."""

    archived: bool = False
    created_at: str = ""
    updated_at: str = ""


class ComplianceRuleOut(ComplianceRule, kw_only=True):
    """A compliance rule with its archived flag and timestamps."""

    archived: bool = False
    created_at: str = ""
    updated_at: str = ""


def _out(cls: type[T], obj: msgspec.Struct, meta: RowMeta | None, **extra: Any) -> T:
    fields = msgspec.structs.asdict(obj)
    if meta is not None:
        fields.update(
            archived=meta.archived, created_at=meta.created_at, updated_at=meta.updated_at
        )
    return cls(**fields, **extra)


# --- input ------------------------------------------------------------------------------------


class CourseIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A course to create."""

    name: Name
    description: OptionalText = ""


class CoursePatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent fields stay as they are."""

    name: Name | UnsetType = UNSET
    description: OptionalText | UnsetType = UNSET


class ScenarioIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A scenario to create (references must name live rows; ``rubric_id`` is required: absent
    it is ``invalid_request``, null ``empty_field``)."""

    name: Name
    description: Text
    objective: Text
    rubric_id: RowId | None  # required; null is empty_field, like a blank name
    course_id: RowId | None = None
    kind: ScenarioKind = "other"
    product_id: RowId | None = None
    language: Language = "en"
    persona_ids: Annotated[list[int], KwargDefinition(max_items=MAX_ITEMS)] = []
    knowledge_collection: Collection = "default"


class ScenarioPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent fields stay as they are (null clears a reference, but not the
    rubric: that is ``empty_field``). A reference sent with its stored value is no change, and
    passes even when what it names was archived since."""

    name: Name | UnsetType = UNSET
    description: Text | UnsetType = UNSET
    objective: Text | UnsetType = UNSET
    course_id: RowId | UnsetType | None = UNSET
    kind: ScenarioKind | UnsetType = UNSET
    product_id: RowId | UnsetType | None = UNSET
    rubric_id: RowId | UnsetType | None = UNSET
    language: Language | UnsetType = UNSET
    persona_ids: Annotated[list[int], KwargDefinition(max_items=MAX_ITEMS)] | UnsetType = UNSET
    knowledge_collection: Collection | UnsetType = UNSET


class PersonaIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A persona to create."""

    name: Name
    description: Text
    difficulty: Difficulty = "medium"
    goals: Items = []
    objections: Items = []
    knows: Items = []
    language: Language = "en"
    initial_mood: Mood = 0.5


class PersonaPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent fields stay as they are."""

    name: Name | UnsetType = UNSET
    description: Text | UnsetType = UNSET
    difficulty: Difficulty | UnsetType = UNSET
    goals: Items | UnsetType = UNSET
    objections: Items | UnsetType = UNSET
    knows: Items | UnsetType = UNSET
    language: Language | UnsetType = UNSET
    initial_mood: Mood | UnsetType = UNSET


class DimensionIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rubric dimension (stages are checked by name: unknown ones are `unknown_stage`)."""

    key: Key
    name: Name
    weight: Weight
    description: DimensionText
    stages: Annotated[list[StageName], KwargDefinition(max_items=len(STAGES))] = []


Dimensions = Annotated[list[DimensionIn], KwargDefinition(min_items=1, max_items=50)]
"""A rubric's dimensions: 1 to 50, with unique keys."""


class RubricIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rubric to create (version 1)."""

    name: Name
    dimensions: Dimensions


class RubricPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new name and/or dimensions; new dimensions make a new version."""

    name: Name | UnsetType = UNSET
    dimensions: Dimensions | UnsetType = UNSET


class WaiverIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A condition that waives one of the product's fees."""

    fee: Key
    condition: Item
    min_annual_spend: Amount | None = None

    def waiver(self) -> Waiver:
        """The model's Waiver."""
        return Waiver(
            fee=self.fee, condition=self.condition, min_annual_spend=self.min_annual_spend
        )


class ProductIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A product to create."""

    name: Name
    currency: Currency = "USD"
    fees: dict[Key, Amount] = {}
    waivers: Annotated[list[WaiverIn], KwargDefinition(max_items=MAX_ITEMS)] = []
    benefits: Items = []
    eligibility: Items = []
    description: OptionalText = ""


class ProductPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent fields stay as they are."""

    name: Name | UnsetType = UNSET
    currency: Currency | UnsetType = UNSET
    fees: dict[Key, Amount] | UnsetType = UNSET
    waivers: Annotated[list[WaiverIn], KwargDefinition(max_items=MAX_ITEMS)] | UnsetType = UNSET
    benefits: Items | UnsetType = UNSET
    eligibility: Items | UnsetType = UNSET
    description: OptionalText | UnsetType = UNSET


class ComplianceRuleIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A compliance rule to create (a regex must compile: else `invalid_pattern`)."""

    name: Name
    kind: RuleKind
    pattern: Pattern
    severity: Severity
    applies_to: AppliesTo = "both"
    message: RuleMessage = ""


class ComplianceRulePatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Fields to change; absent fields stay as they are."""

    name: Name | UnsetType = UNSET
    kind: RuleKind | UnsetType = UNSET
    pattern: Pattern | UnsetType = UNSET
    severity: Severity | UnsetType = UNSET
    applies_to: AppliesTo | UnsetType = UNSET
    message: RuleMessage | UnsetType = UNSET


def changes_of(patch_body: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body sets."""
    return {
        f: getattr(patch_body, f)
        for f in patch_body.__struct_fields__
        if getattr(patch_body, f) is not UNSET
    }


def _dimensions(dims: list[DimensionIn]) -> list[RubricDimension]:
    # stage names are validated by appliance.practice.validation (unknown_stage)
    return [
        RubricDimension(
            key=d.key,
            name=d.name,
            weight=d.weight,
            description=d.description,
            stages=d.stages,  # type: ignore[arg-type]
        )
        for d in dims
    ]


def _catalog(state: State) -> CatalogService:
    service: CatalogService = state.catalog
    return service


def _repo(state: State) -> DomainRepository:
    return _catalog(state).repo


def _actor(request: Request[Any, Any, Any]) -> AuditActor:
    actor = actor_of(request)
    return AuditActor(name=actor.name, id=actor.id, ip=actor.ip)


async def _metas(state: State, kind: Kind, ids: list[int]) -> dict[int, RowMeta]:
    return await _repo(state).metas(kind, ids)


def _missing(kind: str, row_id: int) -> NotFound:
    return NotFound(f"no {kind} {row_id}")


# --- controllers ------------------------------------------------------------------------------


@documented
class CourseController(Controller):
    """Courses: groups of scenarios."""

    path = "/api/courses"

    @get("/", opt=READ_ALL)
    async def list_courses(
        self, state: State, include_archived: FromQuery[bool] = False
    ) -> list[CourseOut]:
        """Courses (archived ones only with include_archived=true)."""
        found = await _repo(state).list_courses(include_archived=include_archived)
        metas = await _metas(state, "course", [c.id for c in found])
        return [_out(CourseOut, c, metas.get(c.id)) for c in found]

    @post("/", status_code=201, opt=MANAGE)
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[CourseIn]
    ) -> CourseOut:
        """Create a course."""
        made = await _catalog(state).create_course(
            _actor(request), Course(id=0, name=data.name, description=data.description)
        )
        return _out(CourseOut, made, await _repo(state).meta("course", made.id))

    @get("/{course_id:int}", opt=READ_ALL)
    async def detail(self, state: State, course_id: PathId) -> CourseOut:
        """One course (archived too)."""
        found = await _repo(state).get_course(course_id)
        if found is None:
            raise _missing("course", course_id)
        return _out(CourseOut, found, await _repo(state).meta("course", course_id))

    @patch("/{course_id:int}", opt=MANAGE)
    async def update(
        self,
        request: Request[Any, Any, Any],
        state: State,
        course_id: PathId,
        data: JSONBody[CoursePatch],
    ) -> CourseOut:
        """Change some fields."""
        made = await _catalog(state).update_course(_actor(request), course_id, changes_of(data))
        return _out(CourseOut, made, await _repo(state).meta("course", course_id))

    @delete("/{course_id:int}", status_code=204, opt=MANAGE)
    async def archive(
        self, request: Request[Any, Any, Any], state: State, course_id: PathId
    ) -> None:
        """Archive (hidden from the list; GET by id still works)."""
        await _catalog(state).archive(_actor(request), "course", course_id)


@documented
class ScenarioController(Controller):
    """Scenarios: what the trainee practises."""

    path = "/api/scenarios"

    @get("/", opt=READ_ALL)
    async def list_scenarios(
        self,
        request: Request[Any, Any, Any],
        state: State,
        include_archived: FromQuery[bool] = False,
        course_id: QueryId = None,
        language: FromQuery[Language | None] = None,
    ) -> list[ScenarioOut]:
        """Scenarios, optionally of one course or language. A trainee's list leaves out those
        that cannot start a session: one with no rubric (stored before a rubric was required)."""
        found = await _repo(state).list_scenarios(
            include_archived=include_archived, course_id=course_id, language=language
        )
        principal = principal_of(request)
        if principal is None or not principal.at_least("manager"):
            found = [s for s in found if s.rubric_id is not None]
        metas = await _metas(state, "scenario", [s.id for s in found])
        return [_out(ScenarioOut, s, metas.get(s.id)) for s in found]

    @post("/", status_code=201, opt=MANAGE, responses=errors(422))
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[ScenarioIn]
    ) -> ScenarioOut:
        """Create a scenario."""
        made = await _catalog(state).create_scenario(
            _actor(request), Scenario(id=0, **msgspec.structs.asdict(data))
        )
        return _out(ScenarioOut, made, await _repo(state).meta("scenario", made.id))

    @get("/{scenario_id:int}", opt=READ_ALL)
    async def detail(self, state: State, scenario_id: PathId) -> ScenarioOut:
        """One scenario (archived too)."""
        found = await _repo(state).get_scenario(scenario_id)
        if found is None:
            raise _missing("scenario", scenario_id)
        return _out(ScenarioOut, found, await _repo(state).meta("scenario", scenario_id))

    @patch("/{scenario_id:int}", opt=MANAGE, responses=errors(422))
    async def update(
        self,
        request: Request[Any, Any, Any],
        state: State,
        scenario_id: PathId,
        data: JSONBody[ScenarioPatch],
    ) -> ScenarioOut:
        """Change some fields."""
        made = await _catalog(state).update_scenario(_actor(request), scenario_id, changes_of(data))
        return _out(ScenarioOut, made, await _repo(state).meta("scenario", scenario_id))

    @delete("/{scenario_id:int}", status_code=204, opt=MANAGE)
    async def archive(
        self, request: Request[Any, Any, Any], state: State, scenario_id: PathId
    ) -> None:
        """Archive (hidden from the list; sessions that use it keep working)."""
        await _catalog(state).archive(_actor(request), "scenario", scenario_id)


@documented
class PersonaController(Controller):
    """Personas: the customers the NPC plays."""

    path = "/api/personas"

    @get("/", opt=READ_ALL)
    async def list_personas(
        self,
        request: Request[Any, Any, Any],
        state: State,
        include_archived: FromQuery[bool] = False,
        language: FromQuery[Language | None] = None,
    ) -> list[PersonaOut | PersonaBrief]:
        """Personas, optionally of one language (trainees get each one's brief)."""
        found = await _repo(state).list_personas(
            include_archived=include_archived, language=language
        )
        metas = await _metas(state, "persona", [p.id for p in found])
        return [_persona_view(request, _out(PersonaOut, p, metas.get(p.id))) for p in found]

    @post("/", status_code=201, opt=MANAGE)
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[PersonaIn]
    ) -> PersonaOut:
        """Create a persona."""
        made = await _catalog(state).create_persona(
            _actor(request), Persona(id=0, **msgspec.structs.asdict(data))
        )
        return _out(PersonaOut, made, await _repo(state).meta("persona", made.id))

    @get("/{persona_id:int}", opt=READ_ALL)
    async def detail(
        self, request: Request[Any, Any, Any], state: State, persona_id: PathId
    ) -> PersonaOut | PersonaBrief:
        """One persona (archived too; a trainee gets its brief)."""
        found = await _repo(state).get_persona(persona_id)
        if found is None:
            raise _missing("persona", persona_id)
        full = _out(PersonaOut, found, await _repo(state).meta("persona", persona_id))
        return _persona_view(request, full)

    @patch("/{persona_id:int}", opt=MANAGE, responses=errors(422))
    async def update(
        self,
        request: Request[Any, Any, Any],
        state: State,
        persona_id: PathId,
        data: JSONBody[PersonaPatch],
    ) -> PersonaOut:
        """Change some fields."""
        made = await _catalog(state).update_persona(_actor(request), persona_id, changes_of(data))
        return _out(PersonaOut, made, await _repo(state).meta("persona", persona_id))

    @delete("/{persona_id:int}", status_code=204, opt=MANAGE)
    async def archive(
        self, request: Request[Any, Any, Any], state: State, persona_id: PathId
    ) -> None:
        """Archive (hidden from the list; sessions with it keep working)."""
        await _catalog(state).archive(_actor(request), "persona", persona_id)


async def _rubric_out(state: State, rubric: Rubric) -> RubricOut:
    repo = _repo(state)
    versions = await repo.rubric_versions(rubric.id)
    return _out(
        RubricOut,
        rubric,
        await repo.meta("rubric", rubric.id),
        versions=versions,
        latest_version=max(versions, default=rubric.version),
    )


@documented
class RubricController(Controller):
    """Rubrics, versioned: an edit of the dimensions makes a new version."""

    path = "/api/rubrics"
    opt = MANAGE

    @get("/")
    async def list_rubrics(
        self, state: State, include_archived: FromQuery[bool] = False
    ) -> list[RubricOut]:
        """Every rubric at its latest version."""
        found = await _repo(state).list_rubrics(include_archived=include_archived)
        return [await _rubric_out(state, r) for r in found]

    @post("/", status_code=201)
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[RubricIn]
    ) -> RubricOut:
        """Create a rubric (version 1)."""
        made = await _catalog(state).create_rubric(
            _actor(request), data.name, _dimensions(data.dimensions)
        )
        return await _rubric_out(state, made)

    @get("/{rubric_id:int}")
    async def detail(self, state: State, rubric_id: PathId, version: QueryId = None) -> RubricOut:
        """A rubric at its latest version, or at ``?version=N`` (every version stays readable)."""
        found = await _repo(state).get_rubric(rubric_id, version)
        if found is None:
            which = f" version {version}" if version is not None else ""
            raise NotFound(f"no rubric {rubric_id}{which}")
        return await _rubric_out(state, found)

    @patch("/{rubric_id:int}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        state: State,
        rubric_id: PathId,
        data: JSONBody[RubricPatch],
    ) -> RubricOut:
        """Rename and/or change dimensions (new dimensions -> a new version)."""
        made = await _catalog(state).update_rubric(
            _actor(request),
            rubric_id,
            name=None if isinstance(data.name, UnsetType) else data.name,
            dimensions=None
            if isinstance(data.dimensions, UnsetType)
            else _dimensions(data.dimensions),
        )
        return await _rubric_out(state, made)

    @delete("/{rubric_id:int}", status_code=204)
    async def archive(
        self, request: Request[Any, Any, Any], state: State, rubric_id: PathId
    ) -> None:
        """Archive (hidden from the list; every version stays readable)."""
        await _catalog(state).archive(_actor(request), "rubric", rubric_id)


@documented
class ProductController(Controller):
    """Products: the structured facts the NPC may know and the coach may quote."""

    path = "/api/products"
    opt = MANAGE

    @get("/")
    async def list_products(
        self, state: State, include_archived: FromQuery[bool] = False
    ) -> list[ProductOut]:
        """Products."""
        found = await _repo(state).list_products(include_archived=include_archived)
        metas = await _metas(state, "product", [p.id for p in found])
        return [_out(ProductOut, p, metas.get(p.id)) for p in found]

    @post("/", status_code=201)
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[ProductIn]
    ) -> ProductOut:
        """Create a product."""
        fields = msgspec.structs.asdict(data)
        fields["waivers"] = [w.waiver() for w in data.waivers]
        made = await _catalog(state).create_product(_actor(request), Product(id=0, **fields))
        return _out(ProductOut, made, await _repo(state).meta("product", made.id))

    @get("/{product_id:int}")
    async def detail(self, state: State, product_id: PathId) -> ProductOut:
        """One product (archived too)."""
        found = await _repo(state).get_product(product_id)
        if found is None:
            raise _missing("product", product_id)
        return _out(ProductOut, found, await _repo(state).meta("product", product_id))

    @patch("/{product_id:int}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        state: State,
        product_id: PathId,
        data: JSONBody[ProductPatch],
    ) -> ProductOut:
        """Change some fields."""
        changes = changes_of(data)
        if "waivers" in changes:
            changes["waivers"] = [w.waiver() for w in changes["waivers"]]
        made = await _catalog(state).update_product(_actor(request), product_id, changes)
        return _out(ProductOut, made, await _repo(state).meta("product", product_id))

    @delete("/{product_id:int}", status_code=204)
    async def archive(
        self, request: Request[Any, Any, Any], state: State, product_id: PathId
    ) -> None:
        """Archive (hidden from the list; scenarios and sessions keep reading it)."""
        await _catalog(state).archive(_actor(request), "product", product_id)


@documented
class ComplianceRuleController(Controller):
    """Compliance rules: phrases and regexes that must not be said."""

    path = "/api/compliance-rules"
    opt = MANAGE

    @get("/")
    async def list_rules(
        self, state: State, include_archived: FromQuery[bool] = False
    ) -> list[ComplianceRuleOut]:
        """Rules (the live ones are checked in sessions)."""
        found = await _repo(state).list_rules(include_archived=include_archived)
        metas = await _metas(state, "compliance_rule", [r.id for r in found])
        return [_out(ComplianceRuleOut, r, metas.get(r.id)) for r in found]

    @post("/", status_code=201)
    async def create(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[ComplianceRuleIn]
    ) -> ComplianceRuleOut:
        """Create a rule."""
        made = await _catalog(state).create_rule(
            _actor(request), ComplianceRule(id=0, **msgspec.structs.asdict(data))
        )
        return _out(ComplianceRuleOut, made, await _repo(state).meta("compliance_rule", made.id))

    @get("/{rule_id:int}")
    async def detail(self, state: State, rule_id: PathId) -> ComplianceRuleOut:
        """One rule (archived too)."""
        found = await _repo(state).get_rule(rule_id)
        if found is None:
            raise _missing("compliance rule", rule_id)
        return _out(ComplianceRuleOut, found, await _repo(state).meta("compliance_rule", rule_id))

    @patch("/{rule_id:int}")
    async def update(
        self,
        request: Request[Any, Any, Any],
        state: State,
        rule_id: PathId,
        data: JSONBody[ComplianceRulePatch],
    ) -> ComplianceRuleOut:
        """Change some fields."""
        made = await _catalog(state).update_rule(_actor(request), rule_id, changes_of(data))
        return _out(ComplianceRuleOut, made, await _repo(state).meta("compliance_rule", rule_id))

    @delete("/{rule_id:int}", status_code=204)
    async def archive(self, request: Request[Any, Any, Any], state: State, rule_id: PathId) -> None:
        """Archive (no longer checked; old reports keep its name)."""
        await _catalog(state).archive(_actor(request), "compliance_rule", rule_id)


DOMAIN_CONTROLLERS: list[type[Controller]] = [
    CourseController,
    ScenarioController,
    PersonaController,
    RubricController,
    ProductController,
    ComplianceRuleController,
]
