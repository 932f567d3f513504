"""The practice catalogue service: validated, audited writes of the domain (what the API calls).

Creates take a model Struct (its ``id`` is ignored); updates take the changed fields only
(absent = unchanged), merge them into the stored row, validate the result and check the
references that changed (a missing or archived course/product/rubric/persona is
``unknown_reference``; one sent again with its stored value is not a change). Every write
leaves an audit row.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from appliance.db.audit import AuditRepository
from appliance.db.domain import DomainRepository, Kind
from appliance.errors import NotFound
from appliance.practice import validation as v
from appliance.practice.model import (
    ComplianceRule,
    Course,
    Persona,
    Product,
    Rubric,
    RubricDimension,
    Scenario,
)

S = TypeVar("S", bound=msgspec.Struct)


class AuditActor(msgspec.Struct, kw_only=True, frozen=True):
    """Who makes a change (a user, the CLI, the demo loader)."""

    name: str
    id: int | None = None
    ip: str = ""


SYSTEM = AuditActor(name="system")


def _merge(current: S, changes: dict[str, Any]) -> S:
    return msgspec.structs.replace(current, **changes)


class CatalogService:
    """Create, update, archive the domain with validation and audit."""

    def __init__(self, repo: DomainRepository, audit: AuditRepository) -> None:
        self.repo = repo
        self.audit = audit

    async def _record(
        self, actor: AuditActor, action: str, kind: Kind, row_id: int, fields: list[str]
    ) -> None:
        await self.audit.record(
            f"{kind}.{action}",
            actor=actor.name,
            actor_id=actor.id,
            target=f"{kind}:{row_id}",
            ip=actor.ip,
            detail={"fields": sorted(fields)} if fields else None,
        )

    async def _require_live(self, kind: Kind, field: str, row_id: int | None) -> None:
        if row_id is not None and not await self.repo.is_live(kind, row_id):
            raise v.UnknownReference(
                field, f"no {kind.replace('_', ' ')} {row_id} (or it is archived)"
            )

    async def archive(self, actor: AuditActor, kind: Kind, row_id: int) -> None:
        """Archive a row (idempotent); NotFound when there is none."""
        if not await self.repo.archive(kind, row_id):
            raise NotFound(f"no {kind.replace('_', ' ')} {row_id}")
        await self._record(actor, "archive", kind, row_id, [])

    # --- courses --------------------------------------------------------------------------

    async def create_course(self, actor: AuditActor, course: Course) -> Course:
        """Validate and insert."""
        created = await self.repo.create_course(v.course(course))
        await self._record(actor, "create", "course", created.id, [])
        return created

    async def update_course(
        self, actor: AuditActor, course_id: int, changes: dict[str, Any]
    ) -> Course:
        """Merge, validate, store."""
        current = await self.repo.get_course(course_id)
        if current is None:
            raise NotFound(f"no course {course_id}")
        if not changes:  # an empty PATCH changes nothing and leaves no audit row
            return current
        updated = await self.repo.update_course(v.course(_merge(current, changes)))
        await self._record(actor, "update", "course", course_id, list(changes))
        return updated

    # --- products -------------------------------------------------------------------------

    async def create_product(self, actor: AuditActor, product: Product) -> Product:
        """Validate and insert."""
        created = await self.repo.create_product(v.product(product))
        await self._record(actor, "create", "product", created.id, [])
        return created

    async def update_product(
        self, actor: AuditActor, product_id: int, changes: dict[str, Any]
    ) -> Product:
        """Merge, validate, store."""
        current = await self.repo.get_product(product_id)
        if current is None:
            raise NotFound(f"no product {product_id}")
        if not changes:  # an empty PATCH changes nothing and leaves no audit row
            return current
        updated = await self.repo.update_product(v.product(_merge(current, changes)))
        await self._record(actor, "update", "product", product_id, list(changes))
        return updated

    # --- personas -------------------------------------------------------------------------

    async def create_persona(self, actor: AuditActor, persona: Persona) -> Persona:
        """Validate and insert."""
        created = await self.repo.create_persona(v.persona(persona))
        await self._record(actor, "create", "persona", created.id, [])
        return created

    async def update_persona(
        self, actor: AuditActor, persona_id: int, changes: dict[str, Any]
    ) -> Persona:
        """Merge, validate, store."""
        current = await self.repo.get_persona(persona_id)
        if current is None:
            raise NotFound(f"no persona {persona_id}")
        if not changes:  # an empty PATCH changes nothing and leaves no audit row
            return current
        checked = v.persona(_merge(current, changes))
        if checked.language != current.language:
            await self._scenarios_speak(checked)
        updated = await self.repo.update_persona(checked)
        await self._record(actor, "update", "persona", persona_id, list(changes))
        return updated

    async def _scenarios_speak(self, persona: Persona) -> None:
        """LanguageMismatch when a live scenario offering ``persona`` is in another language."""
        for scenario in await self.repo.list_scenarios():
            if persona.id in scenario.persona_ids:
                v.same_language("language", scenario, persona)

    # --- rubrics --------------------------------------------------------------------------

    async def create_rubric(
        self, actor: AuditActor, name: str, dimensions: list[RubricDimension]
    ) -> Rubric:
        """Validate and insert at version 1."""
        created = await self.repo.create_rubric(v.name("name", name), v.dimensions(dimensions))
        await self._record(actor, "create", "rubric", created.id, [])
        return created

    async def update_rubric(
        self,
        actor: AuditActor,
        rubric_id: int,
        *,
        name: str | None = None,
        dimensions: list[RubricDimension] | None = None,
    ) -> Rubric:
        """New dimensions write a new version (the old one stays readable); a name alone does not."""
        current = await self.repo.get_rubric(rubric_id)
        if current is None:
            raise NotFound(f"no rubric {rubric_id}")
        if name is None and dimensions is None:
            return current
        new_name = v.name("name", current.name if name is None else name)
        new_dims = v.dimensions(current.dimensions if dimensions is None else dimensions)
        updated = await self.repo.update_rubric(rubric_id, name=new_name, dimensions=new_dims)
        assert updated is not None
        fields = [f for f, val in (("name", name), ("dimensions", dimensions)) if val is not None]
        await self.audit.record(
            "rubric.update",
            actor=actor.name,
            actor_id=actor.id,
            target=f"rubric:{rubric_id}",
            ip=actor.ip,
            detail={"fields": fields, "version": updated.version, "from_version": current.version},
        )
        return updated

    # --- scenarios ------------------------------------------------------------------------

    async def _scenario_refs(
        self, s: Scenario, fields: set[str] | None, stored: Scenario | None = None
    ) -> None:
        """Check references: all on a create (``fields`` None); on an update only those the
        change sets to a new value. A reference equal to the stored one (a persona id the
        scenario already offers) passes even when archived since: the editor sends every
        field, and an archived course must not make the rest of the scenario uneditable."""

        def changed(name: str) -> bool:
            if fields is not None and name not in fields:
                return False
            return stored is None or getattr(s, name) != getattr(stored, name)

        if changed("course_id"):
            await self._require_live("course", "course_id", s.course_id)
        if changed("product_id"):
            await self._require_live("product", "product_id", s.product_id)
        if changed("rubric_id"):
            await self._require_live("rubric", "rubric_id", s.rubric_id)
        if changed("persona_ids"):
            kept = set(stored.persona_ids) if stored is not None else set()
            for n, pid in enumerate(s.persona_ids):
                if pid not in kept:
                    await self._require_live("persona", f"persona_ids[{n}]", pid)
        if changed("persona_ids") or changed("language"):
            for n, pid in enumerate(s.persona_ids):
                persona = await self.repo.get_persona(pid)
                if persona is not None:
                    v.same_language(f"persona_ids[{n}]", s, persona)

    async def create_scenario(self, actor: AuditActor, scenario: Scenario) -> Scenario:
        """Validate (references included) and insert."""
        checked = v.scenario(scenario)
        await self._scenario_refs(checked, None)
        created = await self.repo.create_scenario(checked)
        await self._record(actor, "create", "scenario", created.id, [])
        return created

    async def update_scenario(
        self, actor: AuditActor, scenario_id: int, changes: dict[str, Any]
    ) -> Scenario:
        """Merge, validate, check the changed references, store."""
        current = await self.repo.get_scenario(scenario_id)
        if current is None:
            raise NotFound(f"no scenario {scenario_id}")
        if not changes:  # an empty PATCH changes nothing and leaves no audit row
            return current
        checked = v.scenario(_merge(current, changes))
        await self._scenario_refs(checked, set(changes), current)
        updated = await self.repo.update_scenario(checked)
        await self._record(actor, "update", "scenario", scenario_id, list(changes))
        return updated

    # --- compliance rules -----------------------------------------------------------------

    async def create_rule(self, actor: AuditActor, rule: ComplianceRule) -> ComplianceRule:
        """Validate (the regex compiles) and insert."""
        created = await self.repo.create_rule(v.rule(rule))
        await self._record(actor, "create", "compliance_rule", created.id, [])
        return created

    async def update_rule(
        self, actor: AuditActor, rule_id: int, changes: dict[str, Any]
    ) -> ComplianceRule:
        """Merge, validate, store."""
        current = await self.repo.get_rule(rule_id)
        if current is None:
            raise NotFound(f"no compliance rule {rule_id}")
        if not changes:  # an empty PATCH changes nothing and leaves no audit row
            return current
        updated = await self.repo.update_rule(v.rule(_merge(current, changes)))
        await self._record(actor, "update", "compliance_rule", rule_id, list(changes))
        return updated
