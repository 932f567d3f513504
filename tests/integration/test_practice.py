"""Practice sessions end to end: a real server with the demo pack, the bundled LLM, real WebSockets."""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from appliance.testing import ServerProcess
from websockets.exceptions import ConnectionClosed

from tests.conftest import Account, add_user, login
from tests.integration.practice_helpers import WS, demo_server, logged_in, new_session, stored

pytestmark = pytest.mark.timeout(900)

PEOPLE = {
    "trainee": Account("pt-trainee", "trainee", "alpha"),
    "trainee2": Account("pt-trainee2", "trainee", "alpha"),
    "manager": Account("pt-manager", "manager", "alpha"),
    "manager_b": Account("pt-manager-b", "manager", "beta"),
}

LINES = [
    "Good morning Mr. Chen, thanks for taking my call. How has the card been for you?",
    "I understand the annual fee feels high. What do you mostly spend on each month?",
    "This card is guaranteed risk-free, you cannot lose anything.",
    "With your spending the fee waiver applies, so you would pay no annual fee at all.",
    "Many business owners use the lounge access and the travel insurance a lot.",
    "Shall I set up the waiver for you today and send a summary by email?",
]


@pytest.fixture(scope="module")
def practice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """An appliance whose first start loads the demo pack (scenarios, personas, rubric, rules)."""
    with demo_server(tmp_path_factory.mktemp("practice-state"), PEOPLE) as srv:
        yield srv


@pytest.fixture(scope="module")
def people(practice_server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    """Logged-in clients by role name."""
    with logged_in(practice_server, PEOPLE) as made:
        yield made


def _dimension_keys(client: httpx.Client, rubric_id: int, version: int) -> set[str]:
    rubric = client.get(f"/api/rubrics/{rubric_id}", params={"version": version}).json()
    return {d["key"] for d in rubric["dimensions"]}


def test_full_session_six_turns_report_with_evidence(
    practice_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee = people["trainee"]
    session = new_session(trainee)
    ws = WS.open(practice_server.url, session["id"], trainee)
    welcome = ws.hello()
    assert welcome["role"] == "trainee" and welcome["history"] == []
    assert welcome["stage"] == "OPENING"
    turns = []
    for line in LINES:
        turn = ws.say(line)
        done = turn.done
        # deltas arrive before npc_done and their concatenation is its text
        assert turn.deltas, "the reply was not streamed"
        assert "".join(d["text"] for d in turn.deltas) == done["text"]
        assert [d["index"] for d in turn.deltas] == list(range(len(turn.deltas)))
        assert done["text"].strip()
        assert 0.0 <= done["mood"] <= 1.0
        turns.append(turn)
    assert [t.done["turn"] for t in turns] == [1, 2, 3, 4, 5, 6]
    # every npc_done carries the slots after its turn (filled ones stay filled), so the page's
    # list keeps up when a turn fills slots without moving the stage
    slot_lists = [t.done["slots"] for t in turns]
    assert all(set(s) == set(slot_lists[0]) and len(s) == 16 for s in slot_lists)
    for before, after in itertools.pairwise(slot_lists):
        assert all(after[k] for k, v in before.items() if v)
    stage_changes = [e for t in turns for e in t.seen if e["type"] == "stage_changed"]
    for change in stage_changes:  # the same state as the turn's npc_done
        assert change["slots"] == turns[change["turn"] - 1].done["slots"]

    # the trainee's "guaranteed risk-free" is flagged, naming the rule
    flags = [e for e in turns[2].seen if e["type"] == "compliance_flag" and e["who"] == "trainee"]
    assert flags, [e["type"] for e in turns[2].seen]
    assert all(f["rule"] and f["turn"] == 3 for f in flags)

    ws.send(type="end")
    events = ws.until("report_ready", timeout=600)
    types = [e["type"] for e in events]
    assert "session_ended" in types
    # every turn got its quick score and its coach tip before the report
    everything = ws.received
    for n in range(1, 7):
        assert any(e["type"] == "turn_score" and e["turn"] == n for e in everything), n
        assert any(e["type"] == "coach_tip" and e["turn"] == n for e in everything), n
    # stored events carry strictly increasing seqs
    seqs = [s for s, _ in stored(everything)]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    ws.close()

    report = trainee.get(f"/api/sessions/{session['id']}/report").raise_for_status().json()
    # rubrics are a manager's to read: the report must cover that exact version
    keys = _dimension_keys(people["manager"], session["rubric_id"], session["rubric_version"])
    assert {d["key"] for d in report["dimensions"]} == keys
    transcript = trainee.get(f"/api/sessions/{session['id']}").json()["transcript"]
    by_turn = {t["turn"]: t for t in transcript}
    assert len(transcript) == 6
    for dim in report["dimensions"]:
        assert 0 <= dim["score"] <= 10
        assert dim["evidence"], dim
        for evidence in dim["evidence"]:
            turn = by_turn[evidence["turn"]]
            assert evidence["quote"].strip()
            assert (
                evidence["quote"] in turn["trainee_text"] or evidence["quote"] in turn["npc_text"]
            ), (evidence, turn)
    assert any(c["turn"] == 3 and c["who"] == "trainee" for c in report["compliance"])
    assert isinstance(report["slots_missed"], list)
    html = trainee.get(f"/api/sessions/{session['id']}/report.html")
    assert html.status_code == 200 and "<svg" in html.text
    assert "text/html" in html.headers["content-type"]
    trends = trainee.get(f"/api/trends/{session['user_id']}").raise_for_status().json()
    assert trends["overall"] and trends["overall"][-1]["session_id"] == session["id"]


def test_same_say_twice_yields_one_reply_also_across_reconnect(
    practice_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee = people["trainee"]
    session = new_session(trainee)
    ws = WS.open(practice_server.url, session["id"], trainee)
    ws.hello()
    cid = uuid.uuid4().hex
    first = ws.say("Hello Mr. Chen, do you have a minute?", cid)
    # a double click: the same client_turn_id again, same connection
    again = ws.say("Hello Mr. Chen, do you have a minute?", cid)
    assert again.done["turn"] == first.done["turn"] == 1
    assert again.done["text"] == first.done["text"]
    assert again.done["seq"] == first.done["seq"]
    last_seq = max(s for s, _ in stored(ws.received))
    ws.close()
    # across a reconnect
    ws2 = WS.open(practice_server.url, session["id"], trainee)
    welcome = ws2.hello(last_seq=last_seq)
    assert len(welcome["history"]) == 1
    third = ws2.say("Hello Mr. Chen, do you have a minute?", cid)
    assert third.done["seq"] == first.done["seq"]
    ws2.close()
    detail = trainee.get(f"/api/sessions/{session['id']}").json()
    assert len(detail["transcript"]) == 1


def test_second_say_during_a_turn_is_turn_in_progress(
    practice_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee = people["trainee"]
    session = new_session(trainee)
    ws = WS.open(practice_server.url, session["id"], trainee)
    ws.hello()
    ws.send(type="say", client_turn_id="a", text="Hello, this is Sam from the bank.")
    ws.send(type="say", client_turn_id="b", text="Are you there?")
    seen = ws.until("npc_done", timeout=180)
    errors = [e for e in seen if e["type"] == "error"]
    assert any(e["code"] == "turn_in_progress" and e["client_turn_id"] == "b" for e in errors)
    ws.close()


def test_bad_input_gets_typed_errors_and_the_connection_stays(
    practice_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee = people["trainee"]
    session = new_session(trainee)
    ws = WS.open(practice_server.url, session["id"], trainee)
    ws.send(type="say", client_turn_id="x", text="too early")
    assert ws.until("error", timeout=10)[-1]["code"] == "not_ready"
    ws.hello()
    cases = [
        ('{"type": "say", "client_turn_id": "e", "text": "   "}', "empty_message"),
        (
            '{"type": "say", "client_turn_id": "l", "text": "' + "a" * 2001 + '"}',
            "message_too_long",
        ),
        ('{"type": "dance"}', "unknown_type"),
        ("this is not json", "bad_frame"),
        ('{"type": "say"}', "invalid_message"),
        ('{"type": "say", "client_turn_id": "big", "text": "' + "b" * 20000 + '"}', "bad_frame"),
    ]
    for frame, code in cases:
        ws.send_raw(frame)
        assert ws.until("error", timeout=10)[-1]["code"] == code, frame[:40]
    ws.send(type="ping")
    assert ws.until("pong", timeout=10)
    # an ended session refuses turns
    trainee.post(f"/api/sessions/{session['id']}/end").raise_for_status()
    ws.send(type="say", client_turn_id="late", text="one more thing")
    assert ws.until("error", timeout=10, client_turn_id="late")[-1]["code"] == "session_ended"
    ws.close()


def test_someone_elses_session_is_closed_4404_or_4403(
    practice_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    """One they may not see closes like a missing one (4404); one they may see but not
    drive, 4403; a trainee on the observe route, 4403 (more in test_ws_refusals)."""
    session = new_session(people["trainee"])
    for who, kind, code in (
        ("trainee2", "practice", 4404),
        ("manager_b", "observe", 4404),
        ("manager", "practice", 4403),
        ("trainee2", "observe", 4403),
    ):
        ws = WS.open(practice_server.url, session["id"], people[who], kind=kind)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code, (who, kind)
    assert people["trainee2"].get(f"/api/sessions/{session['id']}").status_code == 404


def test_observer_sees_the_same_events_in_the_same_order(
    practice_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    trainee = people["trainee"]
    session = new_session(trainee)
    ws = WS.open(practice_server.url, session["id"], trainee)
    ws.hello()
    observer = WS.open(practice_server.url, session["id"], people["manager"], kind="observe")
    welcome = observer.hello()
    assert welcome["role"] == "observer"
    joined = ws.until("observer_joined", timeout=30)[-1]
    assert joined["observer"] == PEOPLE["manager"].username
    for line in LINES[:2]:
        ws.say(line)
    ws.until("coach_tip", timeout=300, turn=2)
    observer.until("coach_tip", timeout=300, turn=2)
    trainee_view = [x for x in stored(ws.received) if x[0] > joined["seq"]]
    observer_view = [x for x in stored(observer.received) if x[0] > joined["seq"]]
    assert trainee_view == observer_view
    assert any(t == "npc_done" for _, t in observer_view)
    # the observer saw the reply stream too
    assert any(e["type"] == "npc_delta" for e in observer.received)
    # observers are read-only
    observer.send(type="say", client_turn_id="obs", text="hi")
    assert observer.until("error", timeout=10)[-1]["code"] == "read_only"
    ws.close()
    observer.close()
    team = people["manager"].get("/api/sessions", params={"scope": "team"}).json()
    assert any(s["id"] == session["id"] for s in team)


def test_flood_on_one_connection_does_not_stop_another_session(
    practice_server: ServerProcess, people: dict[str, httpx.Client]
) -> None:
    flooder_session = new_session(people["trainee2"])
    victim_session = new_session(people["trainee"])
    flooder = WS.open(practice_server.url, flooder_session["id"], people["trainee2"])
    flooder.hello()
    victim = WS.open(practice_server.url, victim_session["id"], people["trainee"])
    victim.hello()
    result: dict[str, object] = {}

    def victim_turn() -> None:
        started = time.monotonic()
        result["turn"] = victim.say("Good afternoon Mr. Chen, how are you today?")
        result["s"] = time.monotonic() - started

    thread = threading.Thread(target=victim_turn)
    thread.start()
    for i in range(300):
        flooder.send_raw("garbage" if i % 3 == 0 else '{"type": "nope"}')
    thread.join(300)
    assert "turn" in result, "the other session's turn did not complete"
    codes = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            event = flooder.recv(timeout=2)
        except TimeoutError:
            break
        if event["type"] == "error":
            codes.add(event["code"])
    assert "rate_limited" in codes and codes & {"bad_frame", "unknown_type"}, codes
    time.sleep(1.5)
    flooder.send(type="ping")  # still connected once it slows down
    assert flooder.until("pong", timeout=10)
    flooder.close()
    victim.close()


def test_kill9_after_turn3_then_resume_at_turn4(tmp_path: Path) -> None:
    account = Account("kill-trainee", "trainee", "alpha")
    add_user(tmp_path, account)
    server = ServerProcess(tmp_path, SALESBOOST__DEMO__LOAD_ON_EMPTY="true")
    server.start()
    try:
        client = login(server, account)
        session = new_session(client)
        ws = WS.open(server.url, session["id"], client)
        ws.hello()
        texts = []
        for line in LINES[:3]:
            texts.append(ws.say(line).done["text"])
        last_seq = max(s for s, _ in stored(ws.received))
        # turn 4 is in flight when the power goes
        ws.send(type="say", client_turn_id="t4", text=LINES[3])
        ws.until("npc_delta", timeout=120, turn=4)
        server.kill()
        client.close()
    except BaseException:
        server.stop()
        raise
    server.start()
    try:
        client = login(server, account)
        ws = WS.open(server.url, session["id"], client)
        welcome = ws.hello(last_seq=last_seq)
        history = welcome["history"]
        assert [t["npc_text"] for t in history[:3]] == texts
        assert len(history) in (3, 4)
        replayed = [e for e in ws.received if e["type"] == "npc_done"]
        if len(history) == 4:  # wholly there: its npc_done is replayed
            assert [e["turn"] for e in replayed] == [4]
        else:  # wholly absent: nothing of it is stored
            assert replayed == []
        # resend turn 4 (same id): stored result or a fresh run, never two
        turn4 = ws.say(LINES[3], "t4")
        assert turn4.done["turn"] == 4
        turn5 = ws.say(LINES[4])
        assert turn5.done["turn"] == 5
        detail = client.get(f"/api/sessions/{session['id']}").json()
        assert [t["turn"] for t in detail["transcript"]] == [1, 2, 3, 4, 5]
        assert re.sub(r"\s+", " ", detail["transcript"][0]["npc_text"]) == re.sub(
            r"\s+", " ", texts[0]
        )
        ws.close()
        client.close()
    finally:
        server.stop()
