"""The audit log for admins: /api/audit filters and pages, and the /admin/audit page."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from appliance.testing import ServerProcess

from tests.conftest import ACCOUNTS


def _token_names(entries: list[dict[str, object]]) -> list[str]:
    return [str(e["detail"].get("name", "")) for e in entries if isinstance(e["detail"], dict)]


def test_filters_and_pages_of_the_audit_api(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    admin, manager = clients["admin"], clients["manager"]
    tag = uuid.uuid4().hex[:8]
    made = []
    for n in range(5):  # each creation is audited as token_created, by the manager
        name = f"audit-{tag}-{n}"
        r = manager.post("/api/tokens", json={"name": name}, headers={"Origin": server.url})
        assert r.status_code == 201, r.text
        made.append(name)

    mine = admin.get(
        "/api/audit", params={"action": "token_created", "actor": ACCOUNTS["manager"].username}
    ).json()
    assert all(e["actor"] == ACCOUNTS["manager"].username for e in mine)
    assert _token_names(mine)[:5] == made[::-1]  # newest first
    ids = [e["id"] for e in mine]
    assert ids == sorted(ids, reverse=True)

    # pages: two, then the next two before the last id seen
    first = admin.get("/api/audit", params={"action": "token_created", "limit": 2}).json()
    after = admin.get(
        "/api/audit", params={"action": "token_created", "limit": 2, "before": first[-1]["id"]}
    ).json()
    assert _token_names(first) == made[:2:-1] and _token_names(after) == made[2:0:-1]

    today = datetime.now(UTC).date()
    params = {"action": "token_created", "since": today.isoformat(), "until": today.isoformat()}
    assert len(admin.get("/api/audit", params=params).json()) >= 5
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert admin.get("/api/audit", params={"since": tomorrow}).json() == []

    for bad in ({"limit": 0}, {"limit": 1001}, {"since": "soon"}, {"before": 0}):
        r = admin.get("/api/audit", params=bad)
        assert r.status_code == 400, (bad, r.text)
        assert next(iter(bad)) in r.text
    assert manager.get("/api/audit").status_code == 403


def test_the_audit_page_shows_filters_and_pages(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    admin, manager = clients["admin"], clients["manager"]
    for n in range(101):  # more than a page of one action
        manager.post(
            "/api/tokens", json={"name": f"page-{n}"}, headers={"Origin": server.url}
        ).raise_for_status()
    html = admin.get("/admin/audit").text
    assert 'href="/admin/audit"' in html  # in the admin's navigation
    assert '<option value="token_created"' in html
    page = admin.get("/admin/audit", params={"action": "token_created"}).text
    rows = re.findall(r'data-entry="(\d+)"', page)
    assert len(rows) == 100
    older = re.search(r'id="audit-older" href="([^"]+)"', page)
    assert older, "a full page links to the older entries"
    href = older.group(1).replace("&amp;", "&")
    assert "action=token_created" in href and f"before={rows[-1]}" in href
    rest = re.findall(r'data-entry="(\d+)"', admin.get(href).text)
    assert rest and int(rest[0]) < int(rows[-1])
    assert manager.get("/admin/audit").status_code in (403, 404)
