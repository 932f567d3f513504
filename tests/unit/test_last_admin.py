"""The last enabled admin stays, also when two admins act on each other at the same moment
(the AuthService on a real SQLite file with the appliance's migrations)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from appliance.auth.service import Actor, AuthService
from appliance.config import AuthConfig
from appliance.db.database import Database
from appliance.db.migrations import migrate
from appliance.errors import LastAdmin

PASSWORD = "correct-horse-battery-staple-9"


async def _two_admins(auth: AuthService) -> tuple[Actor, Actor]:
    cli = Actor(name="cli")
    ann, _ = await auth.create_user(cli, username="ann", role="admin", team=None, password=PASSWORD)
    bob, _ = await auth.create_user(cli, username="bob", role="admin", team=None, password=PASSWORD)
    return Actor(name="ann", id=ann.id), Actor(name="bob", id=bob.id)


async def _enabled_admins(db: Database) -> int:
    return int(
        await db.fetchval("SELECT count(*) FROM users WHERE role = 'admin' AND disabled = 0")
    )


@pytest.mark.parametrize("change", ["demote", "disable", "erase"])
def test_two_admins_acting_on_each_other_at_once_leave_one(tmp_path: Path, change: str) -> None:
    path = tmp_path / "salesboost.db"
    migrate(path)

    async def act(auth: AuthService, actor: Actor, target: Actor) -> None:
        assert target.id is not None
        if change == "demote":
            await auth.update_user(actor, target.id, role="manager")
        elif change == "disable":
            await auth.update_user(actor, target.id, disabled=True)
        else:
            await auth.erase_user(actor, target.id)

    async def run() -> tuple[list[BaseException | None], int]:
        async with Database(path) as db:
            auth = AuthService(db, AuthConfig(), b"k" * 32)
            ann, bob = await _two_admins(auth)
            results = await asyncio.gather(
                act(auth, ann, bob), act(auth, bob, ann), return_exceptions=True
            )
            return [r if isinstance(r, BaseException) else None for r in results], (
                await _enabled_admins(db)
            )

    outcomes, admins_left = asyncio.run(run())
    assert admins_left == 1
    refused = [o for o in outcomes if o is not None]
    assert len(refused) == 1 and isinstance(refused[0], LastAdmin), outcomes
    assert refused[0].code == "last_admin"


def test_one_admin_may_still_demote_another(tmp_path: Path) -> None:
    path = tmp_path / "salesboost.db"
    migrate(path)

    async def run() -> int:
        async with Database(path) as db:
            auth = AuthService(db, AuthConfig(), b"k" * 32)
            ann, bob = await _two_admins(auth)
            assert bob.id is not None
            await auth.update_user(ann, bob.id, role="trainee")
            with pytest.raises(LastAdmin):
                assert ann.id is not None
                await auth.update_user(ann, ann.id, disabled=True)
            return await _enabled_admins(db)

    assert asyncio.run(run()) == 1
