"""GET /api/sessions/export.csv: a team's sessions as a spreadsheet, on a real demo server."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from appliance.testing import ServerProcess

from tests.conftest import Account
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session

pytestmark = pytest.mark.timeout(600)

PEOPLE = {
    "trainee": Account("ex-trainee", "trainee", "alpha"),
    "trainee2": Account("ex-trainee2", "trainee", "alpha"),
    "manager": Account("ex-manager", "manager", "alpha"),
    "manager_b": Account("ex-manager-b", "manager", "beta"),
    "admin": Account("ex-admin", "admin", "hq"),
}
SPOOF = '=HYPERLINK("http://x","張偉")'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with demo_server(tmp_path_factory.mktemp("export-state"), PEOPLE) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    with logged_in(server, PEOPLE) as made:
        yield made


@pytest.fixture(scope="module")
def sessions(server: ServerProcess, people: dict[str, httpx.Client]) -> dict[str, Any]:
    """An ended, scored session of one trainee and a live one of the other (named SPOOF)."""
    me = people["trainee2"].get("/api/auth/me").json()
    people["admin"].patch(f"/api/users/{me['id']}", json={"display_name": SPOOF}).raise_for_status()
    ended = new_session(people["trainee"])
    ws = WS.open(server.url, ended["id"], people["trainee"])
    ws.hello()
    ws.say("Good morning Mr. Chen, how has the card been for you this year?")
    ws.send(type="end")
    ws.until("report_ready", timeout=300)
    ws.close()
    live = new_session(people["trainee2"])
    report = people["trainee"].get(f"/api/sessions/{ended['id']}/report").json()
    return {"ended": ended, "live": live, "report": report}


def _rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert response.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads it as UTF-8
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_a_manager_exports_the_teams_sessions_with_scores(
    people: dict[str, httpx.Client], sessions: dict[str, Any]
) -> None:
    rows = _rows(people["manager"].get("/api/sessions/export.csv", params={"scope": "team"}))
    by_id = {int(r["session_id"]): r for r in rows}
    assert set(by_id) == {sessions["ended"]["id"], sessions["live"]["id"]}
    ended, live, report = (
        by_id[sessions["ended"]["id"]],
        by_id[sessions["live"]["id"]],
        sessions["report"],
    )
    assert ended["trainee"] == "ex-trainee" and ended["team"] == "alpha"
    assert ended["state"] == "ended" and ended["turns"] == "1" and ended["scored"] == "yes"
    assert float(ended["overall"]) == pytest.approx(report["overall"])
    for dim in report["dimensions"]:
        cell = ended[f"{dim['name']} ({dim['key']})"]
        assert (float(cell) if dim["shown"] else cell) == (dim["score"] if dim["shown"] else "")
    assert ended["scenario"] and ended["persona"] and ended["ended_at"]
    assert ended["end_reason"] == "trainee"  # the End frame; "idle" is in test_retention
    assert live["state"] == "active" and live["scored"] == "" and live["overall"] == ""
    assert live["end_reason"] == ""
    # a name that reads as a formula is shown as text, not evaluated
    assert live["display_name"] == "'" + SPOOF


def test_a_dimension_the_call_never_reached_is_out_of_trends_and_team_means(
    people: dict[str, httpx.Client], sessions: dict[str, Any]
) -> None:
    """The one-turn call ended in its opening: closing was never reached. Its 0 counts in that
    call's overall, but the trend and the team page's mean of that dimension leave it out (an
    empty cell in the export, above), so a trainee's short call does not read as a bad closer."""
    report, session_id = sessions["report"], sessions["ended"]["id"]
    dims = {d["key"]: d for d in report["dimensions"]}
    closing = dims["closing"]
    assert closing["shown"] is False and closing["score"] == 0
    assert [e["turn"] for e in closing["evidence"]] == [1]  # where the call ended
    assert dims["rapport"]["shown"] is True
    total = sum(d["weight"] for d in dims.values())
    assert report["overall"] == round(
        sum(d["score"] * d["weight"] for d in dims.values()) / total, 2
    )

    me = people["trainee"].get("/api/auth/me").json()
    trends = people["manager"].get(f"/api/trends/{me['id']}").raise_for_status().json()
    assert [p["session_id"] for p in trends["overall"]] == [session_id]
    for key, dim in dims.items():
        points = [p["session_id"] for p in trends["dimensions"].get(key, [])]
        assert points == ([session_id] if dim["shown"] else []), key

    team = people["manager"].get("/team", params={"lang": "en"})
    assert team.status_code == 200
    head = team.text.split("<thead>", 1)[1].split("</thead>", 1)[0]
    columns = re.findall(r'<th scope="col">(.*?)</th>', head)[3:-1]  # trainee, reports, overall
    row = next(r for r in team.text.split("<tr>") if '<th scope="row">ex-trainee<' in r)
    cells = dict(zip(columns, re.findall(r"<td[^>]*>(.*?)</td>", row)[2:], strict=False))
    assert cells[dims["closing"]["name"]] == "\u2013"  # an en dash: no mean
    assert cells[dims["rapport"]["name"]] == f"{dims['rapport']['score']:.1f}"

    history = people["trainee"].get("/history", params={"lang": "en"})
    assert history.status_code == 200  # the chart: closing has no point, so no line either
    chart = history.text.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert f"{dims['rapport']['name']}: " in chart and f"{dims['closing']['name']}: " not in chart

    page = people["trainee"].get(f"/api/sessions/{session_id}/report.html").text
    assert "not reached in this call" in page
    assert "Turn 1, where the call ended" in page


def test_scopes_follow_the_session_list(
    people: dict[str, httpx.Client], sessions: dict[str, Any]
) -> None:
    mine = _rows(people["trainee"].get("/api/sessions/export.csv"))
    assert [int(r["session_id"]) for r in mine] == [sessions["ended"]["id"]]
    assert people["trainee"].get("/api/sessions/export.csv?scope=team").status_code == 403
    assert people["manager"].get("/api/sessions/export.csv?scope=all").status_code == 403
    assert _rows(people["manager_b"].get("/api/sessions/export.csv?scope=team")) == []
    everyone = _rows(people["admin"].get("/api/sessions/export.csv?scope=all"))
    assert {int(r["session_id"]) for r in everyone} >= {
        sessions["ended"]["id"],
        sessions["live"]["id"],
    }


def test_dates_bound_the_export(people: dict[str, httpx.Client], sessions: dict[str, Any]) -> None:
    today = datetime.now(UTC).date()
    tomorrow = today + timedelta(days=1)
    manager = people["manager"]
    params = {"scope": "team", "since": today.isoformat(), "until": today.isoformat()}
    assert len(_rows(manager.get("/api/sessions/export.csv", params=params))) == 2
    later = {"scope": "team", "since": tomorrow.isoformat()}
    assert _rows(manager.get("/api/sessions/export.csv", params=later)) == []
    backwards = manager.get(
        "/api/sessions/export.csv",
        params={"scope": "team", "since": tomorrow.isoformat(), "until": today.isoformat()},
    )
    assert backwards.status_code == 400 and "until" in backwards.json()["message"]
    assert manager.get("/api/sessions/export.csv", params={"since": "yesterday"}).status_code == 400


def test_the_pages_link_the_export(
    people: dict[str, httpx.Client], sessions: dict[str, Any]
) -> None:
    assert "/api/sessions/export.csv?scope=team" in people["manager"].get("/team").text
    assert "/api/sessions/export.csv?scope=all" in people["admin"].get("/team").text
    assert "/api/sessions/export.csv?scope=mine" in people["trainee"].get("/history").text


def test_a_report_not_written_yet_is_a_page_that_reloads_and_back_links_fit_the_reader(
    people: dict[str, httpx.Client], sessions: dict[str, Any]
) -> None:
    """QA: the report link of a session whose report was not written yet showed the API's
    JSON; and a manager reading a trainee's report was sent "back" to their own history."""
    live = sessions["live"]["id"]
    pending = people["trainee2"].get(
        f"/api/sessions/{live}/report.html", headers={"Accept": "text/html"}
    )
    assert pending.status_code == 202
    assert pending.headers["content-type"].startswith("text/html")
    assert '<meta http-equiv="refresh"' in pending.text
    assert "The report is being written" in pending.text
    assert 'href="/history"' in pending.text
    by_manager = people["manager"].get(f"/api/sessions/{live}/report.html")
    assert by_manager.status_code == 202 and 'href="/team">← Team<' in by_manager.text
    assert people["trainee2"].get(f"/api/sessions/{live}/report").json()["code"] == (
        "report_pending"
    )  # the JSON API is unchanged
    ended = sessions["ended"]["id"]
    mine = people["trainee"].get(f"/api/sessions/{ended}/report.html").text
    assert 'href="/history">← History<' in mine
    theirs = people["manager"].get(f"/api/sessions/{ended}/report.html").text
    assert 'href="/team">← Team<' in theirs
