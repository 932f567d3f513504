"""A practice socket is closed as idle (4408) only when nothing is in flight.

Soak test finding: a trainee waiting on a slow reply (a loaded box: the first token after
140 s) was closed 4408 at ``realtime.idle_timeout_s``, because only frames the client sent
counted, and the turn in flight was lost to it. A real server with the demo pack and an idle
timeout far shorter than a reply; the client never pings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from appliance.testing import ServerProcess
from websockets.exceptions import ConnectionClosed

from tests.conftest import Account
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session

pytestmark = pytest.mark.timeout(300)

IDLE_S = 0.3
PEOPLE = {"trainee": Account("idle-ws-trainee", "trainee", "alpha")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with demo_server(
        tmp_path_factory.mktemp("ws-idle"), PEOPLE, SALESBOOST__REALTIME__IDLE_TIMEOUT_S=str(IDLE_S)
    ) as srv:
        yield srv


def test_a_slow_reply_is_not_idleness_but_silence_after_it_is(server: ServerProcess) -> None:
    with logged_in(server, PEOPLE) as clients:
        trainee: httpx.Client = clients["trainee"]
        session = new_session(trainee)
        ws = WS.open(server.url, session["id"], trainee)
        try:
            ws.send(type="hello")
            assert ws.recv(timeout=30)["type"] == "welcome"
            started = time.monotonic()
            ws.send(type="say", client_turn_id=uuid.uuid4().hex, text="Hello, is this Mr. Chen?")
            done = None
            while done is None:  # no ping: the reply takes far longer than IDLE_S
                event = ws.recv(timeout=120)
                if event["type"] == "npc_done":
                    done = event
            assert time.monotonic() - started > IDLE_S * 2  # the wait was longer than idle
            assert done["text"]
            with pytest.raises(ConnectionClosed) as closed:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # the turn's last events, then silence
                    ws.recv(timeout=60)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408
        finally:
            ws.conn.close()
