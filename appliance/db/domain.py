"""The practice domain as stored: courses, scenarios, personas, versioned rubrics, products, rules.

Reads return the Structs of :mod:`appliance.practice.model`. Nothing is deleted: ``archive_*``
sets a flag that hides the row from lists while ``get_*`` keeps returning it, so sessions and
reports that reference it keep working. A rubric whose dimensions change gets a new version;
old versions stay readable. Validation is the caller's job (appliance.practice.validation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar

import aiosqlite
import msgspec

from appliance.db.database import Database, Row
from appliance.practice.model import (
    ComplianceRule,
    Course,
    Persona,
    Product,
    Rubric,
    RubricDimension,
    Scenario,
    Waiver,
)

Kind = Literal["course", "scenario", "persona", "rubric", "product", "compliance_rule"]
TABLES: dict[Kind, str] = {
    "course": "courses",
    "scenario": "scenarios",
    "persona": "personas",
    "rubric": "rubrics",
    "product": "products",
    "compliance_rule": "compliance_rules",
}

T = TypeVar("T")


class RowMeta(msgspec.Struct, kw_only=True, frozen=True):
    """Bookkeeping of a domain row: archived flag and timestamps."""

    archived: bool
    created_at: str
    updated_at: str


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _load(raw: str, kind: type[T]) -> T:
    return msgspec.json.decode(raw, type=kind)


def _course(row: Row) -> Course:
    return Course(id=row["id"], name=row["name"], description=row["description"])


def _product(row: Row) -> Product:
    return Product(
        id=row["id"],
        name=row["name"],
        currency=row["currency"],
        fees=_load(row["fees"], dict[str, float]),
        waivers=_load(row["waivers"], list[Waiver]),
        benefits=_load(row["benefits"], list[str]),
        eligibility=_load(row["eligibility"], list[str]),
        description=row["description"],
    )


def _persona(row: Row) -> Persona:
    return Persona(
        id=row["id"],
        name=row["name"],
        difficulty=row["difficulty"],
        description=row["description"],
        goals=_load(row["goals"], list[str]),
        objections=_load(row["objections"], list[str]),
        knows=_load(row["knows"], list[str]),
        language=row["language"],
        initial_mood=row["initial_mood"],
    )


def _rule(row: Row) -> ComplianceRule:
    return ComplianceRule(
        id=row["id"],
        name=row["name"],
        kind=row["kind"],
        pattern=row["pattern"],
        severity=row["severity"],
        applies_to=row["applies_to"],
        message=row["message"],
    )


def _rubric(row: Row) -> Rubric:
    return Rubric(
        id=row["rubric_id"],
        version=row["version"],
        name=row["name"],
        dimensions=_load(row["dimensions"], list[RubricDimension]),
    )


def _scenario(row: Row, persona_ids: list[int]) -> Scenario:
    return Scenario(
        id=row["id"],
        course_id=row["course_id"],
        name=row["name"],
        description=row["description"],
        objective=row["objective"],
        kind=row["kind"],
        product_id=row["product_id"],
        rubric_id=row["rubric_id"],
        language=row["language"],
        persona_ids=persona_ids,
        knowledge_collection=row["knowledge_collection"],
    )


def _archived_clause(include_archived: bool) -> str:
    return "" if include_archived else " WHERE archived = 0"


async def _set_personas(conn: aiosqlite.Connection, scenario_id: int, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM scenario_personas WHERE scenario_id = ?", (scenario_id,))
    await conn.executemany(
        "INSERT OR IGNORE INTO scenario_personas (scenario_id, persona_id, position) "
        "VALUES (?, ?, ?)",
        [(scenario_id, pid, n) for n, pid in enumerate(ids)],
    )


_RUBRIC_SELECT = (
    "SELECT v.rubric_id, v.version, v.name, v.dimensions FROM rubric_versions v "
    "JOIN rubrics r ON r.id = v.rubric_id"
)


class DomainRepository:
    """Reads and writes of the practice domain (one class: the kinds reference each other)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- shared ---------------------------------------------------------------------------

    async def meta(self, kind: Kind, row_id: int) -> RowMeta | None:
        """Archived flag and timestamps of one row, or None when there is no such row."""
        row = await self.db.fetchone(
            f"SELECT archived, created_at, updated_at FROM {TABLES[kind]} WHERE id = ?",  # noqa: S608 - table from a fixed map
            (row_id,),
        )
        if row is None:
            return None
        return RowMeta(
            archived=bool(row["archived"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )

    async def metas(self, kind: Kind, ids: Sequence[int]) -> dict[int, RowMeta]:
        """RowMeta of many rows by id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(
            f"SELECT id, archived, created_at, updated_at FROM {TABLES[kind]} "  # noqa: S608
            f"WHERE id IN ({marks})",
            tuple(ids),
        )
        return {
            r["id"]: RowMeta(
                archived=bool(r["archived"]), created_at=r["created_at"], updated_at=r["updated_at"]
            )
            for r in rows
        }

    async def is_live(self, kind: Kind, row_id: int) -> bool:
        """Whether the row exists and is not archived."""
        found = await self.meta(kind, row_id)
        return found is not None and not found.archived

    async def archive(self, kind: Kind, row_id: int) -> bool:
        """Archive a row (idempotent); False when there is no such row."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                f"UPDATE {TABLES[kind]} SET archived = 1, "  # noqa: S608
                "updated_at = CASE archived WHEN 1 THEN updated_at ELSE strftime('%Y-%m-%dT%H:%M:%fZ', 'now') END WHERE id = ?",
                (row_id,),
            )
            return cur.rowcount > 0

    async def unarchive(self, kind: Kind, row_id: int) -> bool:
        """Bring an archived row back; False when there is no such row."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                f"UPDATE {TABLES[kind]} SET archived = 0, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",  # noqa: S608
                (row_id,),
            )
            return cur.rowcount > 0

    async def find_by_name(self, kind: Kind, name: str) -> int | None:
        """The lowest id of a row (archived or not) with exactly this name."""
        value = await self.db.fetchval(
            f"SELECT min(id) FROM {TABLES[kind]} WHERE name = ?",  # noqa: S608
            (name,),
        )
        return None if value is None else int(value)

    async def count_all(self) -> int:
        """Rows in every domain table, archived included (0 = a fresh appliance)."""
        total = 0
        for table in TABLES.values():
            total += int(await self.db.fetchval(f"SELECT count(*) FROM {table}") or 0)  # noqa: S608
        return total

    # --- courses --------------------------------------------------------------------------

    async def get_course(self, course_id: int) -> Course | None:
        """A course by id (archived too)."""
        row = await self.db.fetchone("SELECT * FROM courses WHERE id = ?", (course_id,))
        return None if row is None else _course(row)

    async def list_courses(self, *, include_archived: bool = False) -> list[Course]:
        """Courses by id."""
        rows = await self.db.fetchall(
            "SELECT * FROM courses" + _archived_clause(include_archived) + " ORDER BY id"  # noqa: S608
        )
        return [_course(r) for r in rows]

    async def create_course(self, course: Course) -> Course:
        """Insert (``course.id`` is ignored); returns it with its id."""
        new_id = await self.db.execute(
            "INSERT INTO courses (name, description) VALUES (?, ?)",
            (course.name, course.description),
        )
        return msgspec.structs.replace(course, id=new_id)

    async def update_course(self, course: Course) -> Course:
        """Overwrite every field of the course with this id."""
        await self.db.execute(
            "UPDATE courses SET name = ?, description = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (course.name, course.description, course.id),
        )
        return course

    async def archive_course(self, course_id: int) -> bool:
        """Archive (hidden from lists; scenarios keep their course_id)."""
        return await self.archive("course", course_id)

    # --- products -------------------------------------------------------------------------

    async def get_product(self, product_id: int) -> Product | None:
        """A product by id (archived too)."""
        row = await self.db.fetchone("SELECT * FROM products WHERE id = ?", (product_id,))
        return None if row is None else _product(row)

    async def list_products(self, *, include_archived: bool = False) -> list[Product]:
        """Products by id."""
        rows = await self.db.fetchall(
            "SELECT * FROM products" + _archived_clause(include_archived) + " ORDER BY id"  # noqa: S608
        )
        return [_product(r) for r in rows]

    @staticmethod
    def _product_params(p: Product) -> tuple[Any, ...]:
        return (
            p.name,
            p.currency,
            _json(p.fees),
            _json(p.waivers),
            _json(p.benefits),
            _json(p.eligibility),
            p.description,
        )

    async def create_product(self, product: Product) -> Product:
        """Insert (``product.id`` is ignored); returns it with its id."""
        new_id = await self.db.execute(
            "INSERT INTO products (name, currency, fees, waivers, benefits, eligibility, "
            "description) VALUES (?, ?, ?, ?, ?, ?, ?)",
            self._product_params(product),
        )
        return msgspec.structs.replace(product, id=new_id)

    async def update_product(self, product: Product) -> Product:
        """Overwrite every field of the product with this id."""
        await self.db.execute(
            "UPDATE products SET name = ?, currency = ?, fees = ?, waivers = ?, benefits = ?, "
            "eligibility = ?, description = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (*self._product_params(product), product.id),
        )
        return product

    async def archive_product(self, product_id: int) -> bool:
        """Archive (hidden from lists; scenarios and sessions keep reading it)."""
        return await self.archive("product", product_id)

    # --- personas -------------------------------------------------------------------------

    async def get_persona(self, persona_id: int) -> Persona | None:
        """A persona by id (archived too)."""
        row = await self.db.fetchone("SELECT * FROM personas WHERE id = ?", (persona_id,))
        return None if row is None else _persona(row)

    async def list_personas(
        self, *, include_archived: bool = False, language: str | None = None
    ) -> list[Persona]:
        """Personas by id, optionally of one language."""
        rows = await self.db.fetchall(
            "SELECT * FROM personas" + _archived_clause(include_archived) + " ORDER BY id"  # noqa: S608
        )
        found = [_persona(r) for r in rows]
        return [p for p in found if language is None or p.language == language]

    @staticmethod
    def _persona_params(p: Persona) -> tuple[Any, ...]:
        return (
            p.name,
            p.difficulty,
            p.description,
            _json(p.goals),
            _json(p.objections),
            _json(p.knows),
            p.language,
            p.initial_mood,
        )

    async def create_persona(self, persona: Persona) -> Persona:
        """Insert (``persona.id`` is ignored); returns it with its id."""
        new_id = await self.db.execute(
            "INSERT INTO personas (name, difficulty, description, goals, objections, knows, "
            "language, initial_mood) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            self._persona_params(persona),
        )
        return msgspec.structs.replace(persona, id=new_id)

    async def update_persona(self, persona: Persona) -> Persona:
        """Overwrite every field of the persona with this id."""
        await self.db.execute(
            "UPDATE personas SET name = ?, difficulty = ?, description = ?, goals = ?, "
            "objections = ?, knows = ?, language = ?, initial_mood = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
            "WHERE id = ?",
            (*self._persona_params(persona), persona.id),
        )
        return persona

    async def archive_persona(self, persona_id: int) -> bool:
        """Archive (hidden from lists; sessions keep reading it)."""
        return await self.archive("persona", persona_id)

    # --- rubrics --------------------------------------------------------------------------

    async def get_rubric(self, rubric_id: int, version: int | None = None) -> Rubric | None:
        """A rubric at a version (None = latest), archived too; None when either is unknown."""
        if version is None:
            row = await self.db.fetchone(
                _RUBRIC_SELECT + " WHERE r.id = ? AND v.version = r.latest_version", (rubric_id,)
            )
        else:
            row = await self.db.fetchone(
                _RUBRIC_SELECT + " WHERE r.id = ? AND v.version = ?", (rubric_id, version)
            )
        return None if row is None else _rubric(row)

    async def list_rubrics(self, *, include_archived: bool = False) -> list[Rubric]:
        """Every rubric at its latest version, by id."""
        where = "" if include_archived else " AND r.archived = 0"
        rows = await self.db.fetchall(
            _RUBRIC_SELECT + " WHERE v.version = r.latest_version" + where + " ORDER BY r.id"
        )
        return [_rubric(r) for r in rows]

    async def rubric_versions(self, rubric_id: int) -> list[int]:
        """The versions a rubric has, oldest first."""
        rows = await self.db.fetchall(
            "SELECT version FROM rubric_versions WHERE rubric_id = ? ORDER BY version",
            (rubric_id,),
        )
        return [int(r["version"]) for r in rows]

    async def create_rubric(self, name: str, dimensions: Sequence[RubricDimension]) -> Rubric:
        """A new rubric at version 1."""
        async with self.db.transaction() as conn:
            cur = await conn.execute("INSERT INTO rubrics (name) VALUES (?)", (name,))
            rubric_id = cur.lastrowid or 0
            await conn.execute(
                "INSERT INTO rubric_versions (rubric_id, version, name, dimensions) "
                "VALUES (?, 1, ?, ?)",
                (rubric_id, name, _json(list(dimensions))),
            )
        return Rubric(id=rubric_id, version=1, name=name, dimensions=list(dimensions))

    async def update_rubric(
        self, rubric_id: int, *, name: str, dimensions: Sequence[RubricDimension]
    ) -> Rubric | None:
        """Change a rubric: new dimensions write a new version; a new name alone does not.

        None when there is no such rubric.
        """
        dims = list(dimensions)
        async with self.db.transaction() as conn:
            async with conn.execute(
                "SELECT v.version, v.dimensions FROM rubric_versions v JOIN rubrics r "
                "ON r.id = v.rubric_id WHERE r.id = ? AND v.version = r.latest_version",
                (rubric_id,),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            version = int(row[0])
            if _load(row[1], list[RubricDimension]) != dims:
                version += 1
                await conn.execute(
                    "INSERT INTO rubric_versions (rubric_id, version, name, dimensions) "
                    "VALUES (?, ?, ?, ?)",
                    (rubric_id, version, name, _json(dims)),
                )
            else:
                await conn.execute(
                    "UPDATE rubric_versions SET name = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                    "WHERE rubric_id = ? AND version = ?",
                    (name, rubric_id, version),
                )
            await conn.execute(
                "UPDATE rubrics SET name = ?, latest_version = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
                "WHERE id = ?",
                (name, version, rubric_id),
            )
        return Rubric(id=rubric_id, version=version, name=name, dimensions=dims)

    async def archive_rubric(self, rubric_id: int) -> bool:
        """Archive (hidden from lists; every version stays readable)."""
        return await self.archive("rubric", rubric_id)

    # --- scenarios ------------------------------------------------------------------------

    async def _persona_links(self, scenario_ids: Sequence[int]) -> dict[int, list[int]]:
        if not scenario_ids:
            return {}
        marks = ",".join("?" * len(scenario_ids))
        rows = await self.db.fetchall(
            "SELECT scenario_id, persona_id FROM scenario_personas "  # noqa: S608
            f"WHERE scenario_id IN ({marks}) ORDER BY scenario_id, position",
            tuple(scenario_ids),
        )
        links: dict[int, list[int]] = {sid: [] for sid in scenario_ids}
        for r in rows:
            links[r["scenario_id"]].append(r["persona_id"])
        return links

    async def get_scenario(self, scenario_id: int) -> Scenario | None:
        """A scenario by id (archived too), with its persona ids."""
        row = await self.db.fetchone("SELECT * FROM scenarios WHERE id = ?", (scenario_id,))
        if row is None:
            return None
        return _scenario(row, (await self._persona_links([scenario_id]))[scenario_id])

    async def list_scenarios(
        self,
        *,
        include_archived: bool = False,
        course_id: int | None = None,
        language: str | None = None,
    ) -> list[Scenario]:
        """Scenarios by id, optionally of one course or language."""
        rows = await self.db.fetchall(
            "SELECT * FROM scenarios" + _archived_clause(include_archived) + " ORDER BY id"  # noqa: S608
        )
        rows = [
            r
            for r in rows
            if (course_id is None or r["course_id"] == course_id)
            and (language is None or r["language"] == language)
        ]
        links = await self._persona_links([r["id"] for r in rows])
        return [_scenario(r, links[r["id"]]) for r in rows]

    @staticmethod
    def _scenario_params(s: Scenario) -> tuple[Any, ...]:
        return (
            s.course_id,
            s.name,
            s.description,
            s.objective,
            s.kind,
            s.product_id,
            s.rubric_id,
            s.language,
            s.knowledge_collection,
        )

    async def create_scenario(self, scenario: Scenario) -> Scenario:
        """Insert with its persona links (``scenario.id`` is ignored); returns it with its id."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "INSERT INTO scenarios (course_id, name, description, objective, kind, "
                "product_id, rubric_id, language, knowledge_collection) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                self._scenario_params(scenario),
            )
            new_id = cur.lastrowid or 0
            await _set_personas(conn, new_id, scenario.persona_ids)
        return msgspec.structs.replace(scenario, id=new_id)

    async def update_scenario(self, scenario: Scenario) -> Scenario:
        """Overwrite every field (and the persona links) of the scenario with this id."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "UPDATE scenarios SET course_id = ?, name = ?, description = ?, objective = ?, "
                "kind = ?, product_id = ?, rubric_id = ?, language = ?, knowledge_collection = ?, "
                "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                (*self._scenario_params(scenario), scenario.id),
            )
            await _set_personas(conn, scenario.id, scenario.persona_ids)
        return scenario

    async def archive_scenario(self, scenario_id: int) -> bool:
        """Archive (hidden from lists; its sessions keep working)."""
        return await self.archive("scenario", scenario_id)

    # --- compliance rules -----------------------------------------------------------------

    async def get_rule(self, rule_id: int) -> ComplianceRule | None:
        """A compliance rule by id (archived too)."""
        row = await self.db.fetchone("SELECT * FROM compliance_rules WHERE id = ?", (rule_id,))
        return None if row is None else _rule(row)

    async def list_rules(self, *, include_archived: bool = False) -> list[ComplianceRule]:
        """Compliance rules by id (the live ones are what sessions check against)."""
        rows = await self.db.fetchall(
            "SELECT * FROM compliance_rules" + _archived_clause(include_archived) + " ORDER BY id"  # noqa: S608
        )
        return [_rule(r) for r in rows]

    @staticmethod
    def _rule_params(r: ComplianceRule) -> tuple[Any, ...]:
        return (r.name, r.kind, r.pattern, r.severity, r.applies_to, r.message)

    async def create_rule(self, rule: ComplianceRule) -> ComplianceRule:
        """Insert (``rule.id`` is ignored); returns it with its id."""
        new_id = await self.db.execute(
            "INSERT INTO compliance_rules (name, kind, pattern, severity, applies_to, message) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            self._rule_params(rule),
        )
        return msgspec.structs.replace(rule, id=new_id)

    async def update_rule(self, rule: ComplianceRule) -> ComplianceRule:
        """Overwrite every field of the rule with this id."""
        await self.db.execute(
            "UPDATE compliance_rules SET name = ?, kind = ?, pattern = ?, severity = ?, "
            "applies_to = ?, message = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
            (*self._rule_params(rule), rule.id),
        )
        return rule

    async def archive_rule(self, rule_id: int) -> bool:
        """Archive (hidden from lists and no longer checked; old reports keep its name)."""
        return await self.archive("compliance_rule", rule_id)
