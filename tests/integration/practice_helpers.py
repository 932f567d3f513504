"""A real WebSocket client for practice sessions (websockets' sync client) and session set-up."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from appliance.testing import ServerProcess
from websockets.sync.client import ClientConnection, connect

from tests.conftest import Account, add_user, login


def cookie_header(client: httpx.Client) -> str:
    """The Cookie header an httpx client would send."""
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


@dataclass
class Turn:
    """What one ``say`` produced on the wire."""

    deltas: list[dict[str, Any]]
    done: dict[str, Any]
    seen: list[dict[str, Any]]


PING_EVERY_S = 30.0


@dataclass
class WS:
    """One connection to /ws/practice/{id} or /ws/observe/{id}."""

    conn: ClientConnection
    received: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def open(
        cls, base_url: str, session_id: int, client: httpx.Client, *, kind: str = "practice"
    ) -> WS:
        """Connect with the httpx client's session cookie."""
        url = base_url.replace("http://", "ws://") + f"/ws/{kind}/{session_id}"
        conn = connect(
            url,
            additional_headers={"Cookie": cookie_header(client)},
            open_timeout=15,
            max_size=2**20,
            legacy=True,  # a long-lived connection, closed by close(), not a with-block
        )
        return cls(conn)

    def send(self, **message: Any) -> None:
        """Send one JSON frame."""
        self.conn.send(json.dumps(message))

    def send_raw(self, data: str) -> None:
        """Send a frame as is (malformed on purpose)."""
        self.conn.send(data)

    def recv(self, timeout: float = 60) -> dict[str, Any]:
        """The next event."""
        event: dict[str, Any] = json.loads(self.conn.recv(timeout=timeout))
        self.received.append(event)
        return event

    def until(self, kind: str, timeout: float = 120, **match: Any) -> list[dict[str, Any]]:
        """Events up to and including the first of ``kind`` matching ``match``; a ping every
        ``PING_EVERY_S`` of silence, as the practice page sends, so a long wait (a report on a
        busy box) is not closed as idle (4408)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {kind} {match} within {timeout} s; saw {seen[-10:]}")
            try:
                event = self.recv(timeout=min(left, PING_EVERY_S))
            except TimeoutError:
                self.send(type="ping")
                continue
            seen.append(event)
            if event["type"] == kind and all(event.get(k) == v for k, v in match.items()):
                return seen

    def hello(self, last_seq: int | None = None) -> dict[str, Any]:
        """Send hello and return the welcome."""
        if last_seq is None:
            self.send(type="hello")
        else:
            self.send(type="hello", last_seq=last_seq)
        return self.until("welcome", timeout=30)[-1]

    def say(self, text: str, client_turn_id: str | None = None, timeout: float = 180) -> Turn:
        """Say a line and wait for its npc_done (or fail on an error for it)."""
        cid = client_turn_id or uuid.uuid4().hex
        self.send(type="say", client_turn_id=cid, text=text)
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            event = self.recv(timeout=max(0.1, deadline - time.monotonic()))
            seen.append(event)
            if event["type"] == "error" and event.get("client_turn_id") == cid:
                raise AssertionError(f"turn refused: {event}")
            if event["type"] == "npc_done" and event["client_turn_id"] == cid:
                deltas = [
                    e for e in seen if e["type"] == "npc_delta" and e["turn"] == event["turn"]
                ]
                return Turn(deltas=deltas, done=event, seen=seen)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def stored(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(seq, type) of the stored events among ``events`` (everything but deltas, welcome, errors)."""
    skip = {"npc_delta", "welcome", "error", "pong"}
    return [(e["seq"], e["type"]) for e in events if e["type"] not in skip]


def pick_scenario(client: httpx.Client, language: str = "en") -> tuple[int, int]:
    """A demo scenario and one of its personas in the language asked for."""
    scenarios = client.get("/api/scenarios").raise_for_status().json()
    personas = {p["id"]: p for p in client.get("/api/personas").raise_for_status().json()}
    for scenario in scenarios:
        if scenario.get("language", "en") != language:
            continue
        for pid in scenario.get("persona_ids") or list(personas):
            if pid in personas and personas[pid].get("language", "en") == language:
                return scenario["id"], pid
    raise AssertionError(f"no {language} scenario with a persona: {scenarios}")


def new_session(client: httpx.Client, language: str = "en") -> dict[str, Any]:
    """Create a practice session on a demo scenario."""
    scenario_id, persona_id = pick_scenario(client, language)
    response = client.post(
        "/api/sessions", json={"scenario_id": scenario_id, "persona_id": persona_id}
    )
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


@contextmanager
def demo_server(state: Path, people: dict[str, Account], **env: str) -> Iterator[ServerProcess]:
    """An appliance whose first start loads the demo pack, with these users already added
    (``env``: more settings, as ``SALESBOOST__...`` variables)."""
    for account in people.values():
        add_user(state, account)
    with ServerProcess(
        state,
        SALESBOOST__DEMO__LOAD_ON_EMPTY="true",
        SALESBOOST__AUTH__LOGIN_RATE_PER_MINUTE="100000",
        **env,
    ) as srv:
        yield srv


@contextmanager
def logged_in(
    server: ServerProcess, people: dict[str, Account]
) -> Iterator[dict[str, httpx.Client]]:
    """Logged-in clients by role name, closed afterwards."""
    made = {name: login(server, account) for name, account in people.items()}
    try:
        yield made
    finally:
        for client in made.values():
            client.close()
