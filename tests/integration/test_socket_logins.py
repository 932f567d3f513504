"""A WebSocket that only listens closes as soon as its caller's login is void.

HTTP re-checks the login on every request and the practice socket on every frame; an
observer or the job feed sends none, so the server closes them itself: at once when the
change is made through this server (the admin API), within a few seconds when another process
made it (the CLI; ``auth.socket_recheck_s`` is only the backstop). Real server, real sockets,
real CLI.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from appliance.testing import ServerProcess, cli
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

RECHECK_S = 20  # the fallback period: "at once" below must be far quicker than this
PEOPLE = {
    "admin": Account("sock-admin", "admin", "hq"),
    "manager": Account("sock-manager", "manager", "alpha"),
    "uploader": Account("sock-uploader", "manager", "alpha"),
    "trainee": Account("sock-trainee", "trainee", "alpha"),
    "other": Account("sock-other", "trainee", "alpha"),
    "leaver": Account("sock-leaver", "trainee", "alpha"),
    "watcher": Account("sock-watcher", "manager", "alpha"),
}


@pytest.fixture(scope="module")
def sock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with demo_server(
        tmp_path_factory.mktemp("sock-state"),
        PEOPLE,
        SALESBOOST__AUTH__SOCKET_RECHECK_S=str(RECHECK_S),
    ) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(sock_server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    with logged_in(sock_server, PEOPLE) as made:
        yield made


def closed_code(ws: WS, within_s: float) -> tuple[int, float]:
    """Read until the server closes the socket: (close code, seconds it took)."""
    start = time.monotonic()
    with pytest.raises(ConnectionClosed) as closed:
        while time.monotonic() - start < within_s:
            ws.recv(timeout=max(0.1, within_s - (time.monotonic() - start)))
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, time.monotonic() - start


def user_id(admin: httpx.Client, username: str) -> int:
    users = admin.get("/api/users").raise_for_status().json()
    return next(u["id"] for u in users if u["username"] == username)


def test_disabling_a_manager_closes_their_observer_socket_at_once(
    sock_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    admin, trainee = people["admin"], people["trainee"]
    session = new_session(trainee)
    practice = WS.open(sock_server.url, session["id"], trainee)
    observer = WS.open(sock_server.url, session["id"], people["manager"], kind="observe")
    try:
        practice.hello()
        observer.hello()
        target = user_id(admin, "sock-manager")
        assert admin.patch(f"/api/users/{target}", json={"disabled": True}).status_code == 200
        code, took = closed_code(observer, within_s=RECHECK_S)
        assert code == 4401
        assert took < 5, f"closed after {took:.1f} s: the periodic re-check, not the change"
        # the trainee's own socket is not someone else's disable: it still answers
        practice.send(type="ping")
        assert practice.until("pong", timeout=10)[-1]["type"] == "pong"
    finally:
        observer.close()
        practice.close()


def test_disabling_a_manager_closes_their_job_feed_at_once(
    sock_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    admin, uploader = people["admin"], people["uploader"]
    url = sock_server.url.replace("http://", "ws://") + "/ws/knowledge/jobs"
    headers = {"Cookie": cookie_header(uploader), "Origin": sock_server.url}
    with connect(url, additional_headers=headers, open_timeout=15) as feed:
        time.sleep(0.3)  # subscribed and watching
        target = user_id(admin, "sock-uploader")
        assert admin.patch(f"/api/users/{target}", json={"disabled": True}).status_code == 200
        start = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            feed.recv(timeout=RECHECK_S)
        took = time.monotonic() - start
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert took < 5, f"closed after {took:.1f} s"


def test_a_disable_from_the_cli_closes_a_listening_socket_within_seconds(
    sock_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    leaver = login(sock_server, PEOPLE["leaver"])
    other = people["other"]
    mine = WS.open(sock_server.url, new_session(leaver)["id"], leaver)
    theirs = WS.open(sock_server.url, new_session(other)["id"], other)
    try:
        mine.hello()
        theirs.hello()
        done = cli(sock_server.state_dir, "users", "disable", "sock-leaver")
        assert done.returncode == 0, done.stderr
        # another process changed the database: this server sees it within a second or so,
        # far sooner than the periodic re-check (RECHECK_S) would
        code, took = closed_code(mine, within_s=RECHECK_S + 10)
        assert code == 4401
        assert took < 5, f"closed after {took:.1f} s: the periodic re-check, not the change"
        theirs.send(type="ping")
        assert theirs.until("pong", timeout=10)[-1]["type"] == "pong"
    finally:
        mine.close()
        theirs.close()
        leaver.close()


def test_the_trainee_is_told_who_observes_now_not_who_once_did(
    sock_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee = people["trainee"]
    session = new_session(trainee)
    practice = WS.open(sock_server.url, session["id"], trainee)
    try:
        welcome = practice.hello()
        assert welcome["observers"] == []
        # the welcome names the rubric's dimensions (turn_score events carry only their keys)
        rubric = people["watcher"].get(f"/api/rubrics/{session['rubric_id']}").json()
        assert welcome["dimensions"] == {d["key"]: d["name"] for d in rubric["dimensions"]}
        first = WS.open(sock_server.url, session["id"], people["watcher"], kind="observe")
        second = WS.open(sock_server.url, session["id"], people["watcher"], kind="observe")
        first.hello()
        joined = practice.until("observer_joined")[-1]
        assert (joined["observer"], joined["observers"]) == ("sock-watcher", ["sock-watcher"])
        second.hello()  # the same manager in a second tab
        assert practice.until("observer_joined")[-1]["observers"] == ["sock-watcher"]
        first.close()  # one tab closed: still watching
        assert practice.until("observer_left")[-1]["observers"] == ["sock-watcher"]
        second.close()
        assert practice.until("observer_left")[-1]["observers"] == []
    finally:
        practice.close()
    # a reconnect replays the stored joins and leaves as history; its welcome says who is here
    again = WS.open(sock_server.url, session["id"], trainee)
    try:
        welcome = again.hello(last_seq=0)
        assert welcome["observers"] == []
        replayed = again.until("observer_left", observers=[])
        kinds = [e["type"] for e in replayed if e["type"].startswith("observer_")]
        assert kinds == ["observer_joined", "observer_joined", "observer_left", "observer_left"]
    finally:
        again.close()
