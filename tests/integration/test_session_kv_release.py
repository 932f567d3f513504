"""An ended session's KV does not stay in RAM.

Soak finding: each LLM slot kept the KV of the session it last served, parked in RAM for a next
turn (up to ~36 MB a slot), also after the session had ended and its report was written, until
another session happened to reuse the slot; a busy box settled ~0.3 GB higher. A real server
with the demo pack and the bundled model; the parked bytes are read from /metrics.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from appliance.testing import ServerProcess

from tests.conftest import Account
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session

pytestmark = pytest.mark.timeout(300)

PEOPLE = {"trainee": Account("kv-trainee", "trainee", "alpha")}


def parked_bytes(server: ServerProcess) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=30).text.splitlines():
        if line.startswith('salesboost_llm_parked_kv_bytes{backend="llama_cpp"}'):
            return float(line.split()[-1])
    raise AssertionError("no salesboost_llm_parked_kv_bytes on /metrics")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with demo_server(tmp_path_factory.mktemp("kv-release"), PEOPLE) as srv:
        yield srv


def test_the_kv_of_an_ended_session_is_dropped_once_its_report_is_written(
    server: ServerProcess,
) -> None:
    with logged_in(server, PEOPLE) as clients:
        trainee = clients["trainee"]
        session = new_session(trainee)
        ws = WS.open(server.url, session["id"], trainee)
        try:
            ws.hello()
            ws.say("Good morning, is this a good time to talk about your card?")
            ws.until("turn_score", timeout=180)  # the turn's background work is done too
            assert parked_bytes(server) > 0  # kept for the next turn
            ws.send(type="end")
            ws.until("report_ready", timeout=240)
        finally:
            ws.conn.close()
        deadline = time.monotonic() + 30
        while parked_bytes(server) > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert parked_bytes(server) == 0
        report = trainee.get(f"/api/sessions/{session['id']}/report")
        assert report.status_code == 200, report.text
