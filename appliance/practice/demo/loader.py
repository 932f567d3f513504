"""Load the bundled demo pack: the catalogue rows (upserted by name) and its four documents.

The pack (``pack.json``) is decoded with msgspec into the types of appliance.practice.model
and validated like any API write. Rows are matched by name: loading twice creates nothing
new; ``replace=True`` resets the demo rows to the pack's content (and un-archives them).
The documents go through the real ingestion pipeline (KnowledgeService.upload), which
detects duplicates by sha256; their jobs run in the background.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec

from appliance.db.audit import AuditRepository
from appliance.db.database import Database
from appliance.db.domain import DomainRepository, Kind
from appliance.practice.catalog import AuditActor, CatalogService
from appliance.practice.model import (
    ComplianceRule,
    Course,
    Language,
    Persona,
    Product,
    RubricDimension,
    Scenario,
)

log = logging.getLogger("appliance.practice.demo")

DEMO_DIR = Path(__file__).resolve().parent
PACK_PATH = DEMO_DIR / "pack.json"
FILES_DIR = DEMO_DIR / "files"
DEMO_ACTOR = AuditActor(name="demo-pack")
DEMO_TAG = "demo"


class PackCourse(Course, kw_only=True):
    """A course of the pack (no id yet)."""

    id: int = 0


class PackProduct(Product, kw_only=True):
    """A product of the pack."""

    id: int = 0


class PackPersona(Persona, kw_only=True):
    """A persona of the pack."""

    id: int = 0


class PackRule(ComplianceRule, kw_only=True):
    """A compliance rule of the pack."""

    id: int = 0


class PackRubric(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A rubric of the pack."""

    name: str
    dimensions: list[RubricDimension]


class PackScenario(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A scenario of the pack; it names its course, product, rubric and personas."""

    name: str
    description: str
    objective: str
    kind: str = "other"
    language: Language = "en"
    course: str | None = None
    product: str | None = None
    rubric: str | None = None
    personas: list[str] = []


class DemoPack(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The whole pack."""

    version: int
    courses: list[PackCourse]
    products: list[PackProduct]
    rubrics: list[PackRubric]
    personas: list[PackPersona]
    rules: list[PackRule]
    scenarios: list[PackScenario]
    documents: list[str]


class Uploader(Protocol):
    """What the loader needs of appliance.knowledge.service.KnowledgeService."""

    async def upload(
        self,
        *,
        filename: str,
        data: bytes | Path,
        uploader_id: int | None,
        collection: str = "default",
        tags: list[str] | None = None,
        title: str | None = None,
    ) -> object:
        """Store a file, dedupe it, queue its ingestion job."""
        ...


@dataclass
class DemoLoadResult:
    """What a load did: rows created/updated/kept per kind, and each document's upload."""

    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    kept: dict[str, int] = field(default_factory=dict)
    uploads: list[object] = field(default_factory=list)
    """KnowledgeService.Upload per document, in pack order."""

    def count(self, bucket: dict[str, int], kind: str) -> None:
        """Add one to ``bucket[kind]``."""
        bucket[kind] = bucket.get(kind, 0) + 1


def read_pack(path: Path = PACK_PATH) -> DemoPack:
    """The demo pack, decoded and type-checked."""
    return msgspec.json.decode(path.read_bytes(), type=DemoPack)


def _plain(cls: type[msgspec.Struct], obj: msgspec.Struct, **changes: object) -> msgspec.Struct:
    """``obj`` (a Pack* subclass) as the model Struct ``cls``."""
    fields = {f: getattr(obj, f) for f in cls.__struct_fields__}
    fields.update(changes)
    return cls(**fields)


class _Loader:
    def __init__(self, db: Database, *, replace: bool, collection: str) -> None:
        self.repo = DomainRepository(db)
        self.catalog = CatalogService(self.repo, AuditRepository(db))
        self.replace = replace
        self.collection = collection
        self.result = DemoLoadResult()
        self.ids: dict[tuple[Kind, str], int] = {}

    async def _existing(self, kind: Kind, name: str) -> int | None:
        found = await self.repo.find_by_name(kind, name)
        if found is not None:
            self.ids[(kind, name)] = found
        return found

    async def _done(self, kind: Kind, name: str, row_id: int, *, created: bool) -> None:
        self.ids[(kind, name)] = row_id
        if created:
            self.result.count(self.result.created, kind)
        elif self.replace:
            await self.repo.unarchive(kind, row_id)
            self.result.count(self.result.updated, kind)
        else:
            self.result.count(self.result.kept, kind)

    def ref(self, kind: Kind, name: str | None) -> int | None:
        """The id a pack name resolved to."""
        return None if name is None else self.ids[(kind, name)]

    async def courses(self, pack: DemoPack) -> None:
        for c in pack.courses:
            row = await self._existing("course", c.name)
            course = Course(id=0, name=c.name, description=c.description)
            if row is None:
                row = (await self.catalog.create_course(DEMO_ACTOR, course)).id
                await self._done("course", c.name, row, created=True)
                continue
            if self.replace:
                await self.catalog.update_course(
                    DEMO_ACTOR, row, {"name": c.name, "description": c.description}
                )
            await self._done("course", c.name, row, created=False)

    async def products(self, pack: DemoPack) -> None:
        for p in pack.products:
            row = await self._existing("product", p.name)
            plain = _plain(Product, p)
            assert isinstance(plain, Product)
            if row is None:
                row = (await self.catalog.create_product(DEMO_ACTOR, plain)).id
                await self._done("product", p.name, row, created=True)
                continue
            if self.replace:
                changes = msgspec.structs.asdict(plain)
                changes.pop("id")
                await self.catalog.update_product(DEMO_ACTOR, row, changes)
            await self._done("product", p.name, row, created=False)

    async def personas(self, pack: DemoPack) -> None:
        for p in pack.personas:
            row = await self._existing("persona", p.name)
            plain = _plain(Persona, p)
            assert isinstance(plain, Persona)
            if row is None:
                row = (await self.catalog.create_persona(DEMO_ACTOR, plain)).id
                await self._done("persona", p.name, row, created=True)
                continue
            if self.replace:
                changes = msgspec.structs.asdict(plain)
                changes.pop("id")
                await self.catalog.update_persona(DEMO_ACTOR, row, changes)
            await self._done("persona", p.name, row, created=False)

    async def rules(self, pack: DemoPack) -> None:
        for r in pack.rules:
            row = await self._existing("compliance_rule", r.name)
            plain = _plain(ComplianceRule, r)
            assert isinstance(plain, ComplianceRule)
            if row is None:
                row = (await self.catalog.create_rule(DEMO_ACTOR, plain)).id
                await self._done("compliance_rule", r.name, row, created=True)
                continue
            if self.replace:
                changes = msgspec.structs.asdict(plain)
                changes.pop("id")
                await self.catalog.update_rule(DEMO_ACTOR, row, changes)
            await self._done("compliance_rule", r.name, row, created=False)

    async def rubrics(self, pack: DemoPack) -> None:
        for r in pack.rubrics:
            row = await self._existing("rubric", r.name)
            if row is None:
                row = (await self.catalog.create_rubric(DEMO_ACTOR, r.name, r.dimensions)).id
                await self._done("rubric", r.name, row, created=True)
                continue
            if self.replace:  # a new version only when the dimensions differ
                await self.catalog.update_rubric(
                    DEMO_ACTOR, row, name=r.name, dimensions=r.dimensions
                )
            await self._done("rubric", r.name, row, created=False)

    async def scenarios(self, pack: DemoPack) -> None:
        for s in pack.scenarios:
            row = await self._existing("scenario", s.name)
            scenario = msgspec.convert(
                {
                    "id": 0,
                    "course_id": self.ref("course", s.course),
                    "name": s.name,
                    "description": s.description,
                    "objective": s.objective,
                    "kind": s.kind,
                    "product_id": self.ref("product", s.product),
                    "rubric_id": self.ref("rubric", s.rubric),
                    "language": s.language,
                    "persona_ids": [self.ids[("persona", p)] for p in s.personas],
                    "knowledge_collection": self.collection,
                },
                Scenario,
            )
            if row is None:
                row = (await self.catalog.create_scenario(DEMO_ACTOR, scenario)).id
                await self._done("scenario", s.name, row, created=True)
                continue
            if self.replace:
                changes = msgspec.structs.asdict(scenario)
                changes.pop("id")
                await self.catalog.update_scenario(DEMO_ACTOR, row, changes)
            await self._done("scenario", s.name, row, created=False)


async def load_demo(
    db: Database,
    knowledge_service: Uploader | None,
    *,
    replace: bool,
    collection: str = "demo",
    pack_path: Path = PACK_PATH,
) -> DemoLoadResult:
    """Upsert the demo pack by name and upload its documents into ``collection``.

    Idempotent: a second load creates no rows and the documents are deduplicated by
    sha256. ``replace`` resets existing demo rows to the pack's content. With
    ``knowledge_service=None`` only the catalogue is loaded.
    """
    pack = read_pack(pack_path)
    loader = _Loader(db, replace=replace, collection=collection)
    # order matters: scenarios reference the rest
    await loader.courses(pack)
    await loader.products(pack)
    await loader.rubrics(pack)
    await loader.personas(pack)
    await loader.rules(pack)
    await loader.scenarios(pack)
    if knowledge_service is not None:
        for name in pack.documents:
            path = pack_path.parent / "files" / name
            loader.result.uploads.append(
                await knowledge_service.upload(
                    filename=name,
                    data=path,
                    uploader_id=None,
                    collection=collection,
                    tags=[DEMO_TAG],
                )
            )
    log.info(
        "demo pack loaded",
        extra={
            "rows_created": loader.result.created,  # not "created": a LogRecord attribute
            "rows_updated": loader.result.updated,
            "rows_kept": loader.result.kept,
            "documents": len(loader.result.uploads),
        },
    )
    return loader.result


FIRST_LOAD_KEY = "demo_first_load"


async def load_demo_if_empty(
    db: Database, knowledge_service: Uploader, *, collection: str
) -> DemoLoadResult | None:
    """Load the pack when the practice tables hold no row at all (a fresh appliance), or
    finish a first-start load that a crash or stop interrupted (the load is idempotent)."""
    state = await db.fetchval("SELECT value FROM appliance_state WHERE key = ?", (FIRST_LOAD_KEY,))
    if state != "started" and await DomainRepository(db).count_all() > 0:
        return None
    await _set_state(db, FIRST_LOAD_KEY, "started")
    result = await load_demo(db, knowledge_service, replace=False, collection=collection)
    await _set_state(db, FIRST_LOAD_KEY, "done")
    return result


async def _set_state(db: Database, key: str, value: str) -> None:
    await db.execute(
        "INSERT INTO appliance_state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
        "SET value = excluded.value, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        (key, value),
    )
