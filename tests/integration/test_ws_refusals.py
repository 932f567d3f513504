"""A refused WebSocket is accepted and closed with a code, never refused at the handshake.

A browser cannot see the HTTP status of a refused handshake, only a socket's close code, so
every refusal is a close code and reason from docs/practice-protocol.md: 4401 "log in again",
4403 "not allowed", 4404 "no such session". A session someone may not see closes exactly like
one that does not exist (as HTTP answers both 404), so ids do not leak. Real server, real
sockets (websockets' client), real users, sessions and tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from appliance.testing import ServerProcess
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import Account, login
from tests.integration.practice_helpers import (
    WS,
    cookie_header,
    demo_server,
    logged_in,
    new_session,
)

pytestmark = pytest.mark.timeout(300)

ALLOWED = "https://lms.example"
MISSING = 999_999  # a session id that exists nowhere
PEOPLE = {
    "admin": Account("wsr-admin", "admin", "hq"),
    "manager": Account("wsr-manager", "manager", "alpha"),
    "manager_b": Account("wsr-manager-b", "manager", "beta"),
    "trainee": Account("wsr-trainee", "trainee", "alpha"),
    "trainee2": Account("wsr-trainee2", "trainee", "alpha"),
}
NOT_AUTHENTICATED = (4401, "not authenticated")
NO_SUCH_SESSION = (4404, "no such session")


@pytest.fixture(scope="module")
def ws_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with demo_server(
        tmp_path_factory.mktemp("wsr-state"),
        PEOPLE,
        SALESBOOST__SERVER__ALLOWED_ORIGINS=f'["{ALLOWED}"]',
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(ws_server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    with logged_in(ws_server, PEOPLE) as made:
        yield made


@pytest.fixture(scope="module")
def session_id(people: dict[str, httpx.Client]) -> int:
    """A session of ``trainee`` (team alpha)."""
    return int(new_session(people["trainee"])["id"])


def closed_with(server: ServerProcess, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """Open ``path`` (the handshake must succeed: 101) and return the close code and reason."""
    url = server.url.replace("http://", "ws://") + path
    with (
        connect(url, additional_headers=headers, open_timeout=15) as conn,
        pytest.raises(ConnectionClosed) as closed,
    ):
        conn.recv(timeout=10)
    assert closed.value.rcvd is not None, f"{path}: closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def cookie(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": cookie_header(client)}


def bearer(client: httpx.Client) -> dict[str, str]:
    """A fresh API token of the client's user, as a header."""
    made = client.post("/api/tokens", json={"name": f"ws-{uuid.uuid4().hex[:8]}"})
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['token']}"}


def test_no_login_closes_4401_on_every_socket(ws_server: ServerProcess, session_id: int) -> None:
    for path in (
        f"/ws/practice/{session_id}",
        f"/ws/practice/{MISSING}",
        f"/ws/observe/{session_id}",
        f"/ws/observe/{MISSING}",
        "/ws/knowledge/jobs",
    ):
        assert closed_with(ws_server, path, {}) == NOT_AUTHENTICATED, path


def test_a_bad_or_revoked_token_closes_4401(
    ws_server: ServerProcess, people: dict[str, httpx.Client], session_id: int
) -> None:
    trainee = people["trainee"]
    made = trainee.post("/api/tokens", json={"name": "soon revoked"}).json()
    assert trainee.delete(f"/api/tokens/{made['id']}").status_code == 204
    for header in ("Bearer sb_forged", "Basic abc", "Bearer ", f"Bearer {made['token']}"):
        for path in (f"/ws/practice/{session_id}", f"/ws/observe/{session_id}"):
            got = closed_with(ws_server, path, {"Authorization": header})
            assert got == NOT_AUTHENTICATED, (header, path)
    # a valid token is a login like the cookie: the trainee's own session opens
    url = ws_server.url.replace("http://", "ws://") + f"/ws/practice/{session_id}"
    with connect(url, additional_headers=bearer(trainee), open_timeout=15) as conn:
        conn.send('{"type": "hello"}')
        assert '"welcome"' in str(conn.recv(timeout=30))


def test_a_trainee_on_the_observe_route_closes_4403_before_any_lookup(
    ws_server: ServerProcess, people: dict[str, httpx.Client], session_id: int
) -> None:
    trainee = people["trainee"]
    for headers in (cookie(trainee), bearer(trainee)):
        own = closed_with(ws_server, f"/ws/observe/{session_id}", headers)
        missing = closed_with(ws_server, f"/ws/observe/{MISSING}", headers)
        assert own == missing == (4403, "needs the manager role")


def test_another_trainees_session_closes_like_a_missing_one(
    ws_server: ServerProcess, people: dict[str, httpx.Client], session_id: int
) -> None:
    other = people["trainee2"]  # same team, not the session's trainee
    for headers in (bearer(other), cookie(other)):
        theirs = closed_with(ws_server, f"/ws/practice/{session_id}", headers)
        missing = closed_with(ws_server, f"/ws/practice/{MISSING}", headers)
        assert theirs == missing == NO_SUCH_SESSION
    # as over HTTP, where both are the same 404
    for sid in (session_id, MISSING):
        answer = other.get(f"/api/sessions/{sid}")
        assert answer.status_code == 404 and answer.json()["code"] == "session_not_found"


def test_a_manager_of_another_team_observing_closes_like_a_missing_session(
    ws_server: ServerProcess, people: dict[str, httpx.Client], session_id: int
) -> None:
    manager_b = people["manager_b"]  # team beta; the session is alpha's
    for headers in (cookie(manager_b), bearer(manager_b)):
        theirs = closed_with(ws_server, f"/ws/observe/{session_id}", headers)
        missing = closed_with(ws_server, f"/ws/observe/{MISSING}", headers)
        assert theirs == missing == NO_SUCH_SESSION
        # nor can they drive it
        assert closed_with(ws_server, f"/ws/practice/{session_id}", headers) == NO_SUCH_SESSION
    assert manager_b.get(f"/api/sessions/{session_id}").status_code == 404


def test_one_who_may_see_a_session_but_not_drive_it_gets_4403(
    ws_server: ServerProcess, people: dict[str, httpx.Client], session_id: int
) -> None:
    for who in ("manager", "admin"):
        assert people[who].get(f"/api/sessions/{session_id}").status_code == 200, who
        got = closed_with(ws_server, f"/ws/practice/{session_id}", cookie(people[who]))
        assert got == (4403, "only its trainee drives a session"), who
        # while a missing one is still 4404 for them
        assert closed_with(ws_server, f"/ws/practice/{MISSING}", cookie(people[who])) == (
            NO_SUCH_SESSION
        )
    # and the team's manager does observe it
    observer = WS.open(ws_server.url, session_id, people["manager"], kind="observe")
    try:
        assert observer.hello()["role"] == "observer"
    finally:
        observer.close()


def test_a_pending_password_change_closes_4403(
    ws_server: ServerProcess, people: dict[str, httpx.Client], session_id: int
) -> None:
    name = f"wsr-new-{uuid.uuid4().hex[:6]}"
    made = people["admin"].post("/api/users", json={"username": name, "role": "manager"})
    assert made.status_code == 201, made.text
    fresh = login(ws_server, Account(name, "manager", "", made.json()["password"]))
    try:
        assert fresh.get("/api/auth/me").json()["must_change_password"] is True
        for path in (f"/ws/observe/{session_id}", f"/ws/practice/{MISSING}"):
            got = closed_with(ws_server, path, cookie(fresh))
            assert got == (4403, "password change required"), path
    finally:
        fresh.close()


def test_a_foreign_origin_closes_4403_and_an_allowed_one_opens(
    ws_server: ServerProcess, people: dict[str, httpx.Client], session_id: int
) -> None:
    trainee = people["trainee"]
    evil = {**cookie(trainee), "Origin": "https://evil.example"}
    for path in (f"/ws/practice/{session_id}", f"/ws/practice/{MISSING}", "/ws/knowledge/jobs"):
        assert closed_with(ws_server, path, evil) == (4403, "cross-origin request refused"), path
    # the origin is checked before the login: a foreign page learns nothing about either
    assert closed_with(
        ws_server, f"/ws/practice/{session_id}", {"Origin": "https://evil.example"}
    ) == (4403, "cross-origin request refused")
    url = ws_server.url.replace("http://", "ws://") + f"/ws/practice/{session_id}"
    for origin in (ws_server.url, ALLOWED):
        headers = {**cookie(trainee), "Origin": origin}
        with connect(url, additional_headers=headers, open_timeout=15) as conn:
            conn.send('{"type": "hello"}')
            assert '"welcome"' in str(conn.recv(timeout=30)), origin


def test_refusals_leave_no_traceback(ws_server: ServerProcess) -> None:
    assert "Traceback" not in ws_server.log()
