# ruff: noqa: RUF001  (Chinese test utterances use full-width punctuation on purpose)
"""POST /api/intent and `salesboost intent` against the real server and the real CLI."""

from __future__ import annotations

import json

import httpx
import pytest
from appliance.practice.model import INTENTS
from appliance.testing import ServerProcess, cli


@pytest.mark.parametrize("role", ["trainee", "manager", "admin"])
def test_every_signed_in_role_gets_label_and_confidence(
    clients: dict[str, httpx.Client], role: str
) -> None:
    response = clients[role].post("/api/intent", json={"text": "How much is the annual fee?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"label", "confidence"}
    assert body["label"] == "price_inquiry"
    assert 0 < body["confidence"] <= 1


def test_chinese_and_stage(clients: dict[str, httpx.Client]) -> None:
    client = clients["trainee"]
    zh = client.post("/api/intent", json={"text": "太贵了，这个年费我负担不起。"}).json()
    assert zh["label"] == "price_objection"
    text = "That sounds really good."
    plain = client.post("/api/intent", json={"text": text}).json()
    closing = client.post("/api/intent", json={"text": text, "stage": "CLOSING"}).json()
    assert plain["label"] == "positive_feedback"
    assert closing["label"] == "final_confirmation"
    assert closing["label"] in INTENTS


def test_bad_input_gets_typed_errors_and_the_server_keeps_serving(
    clients: dict[str, httpx.Client],
) -> None:
    client = clients["trainee"]
    cases = [
        ({"text": ""}, "empty_message"),
        ({"text": "   "}, "empty_message"),
        ({"text": "x" * 2001}, "message_too_long"),
        ({"text": "hello", "stage": "LUNCH"}, "unknown_stage"),
    ]
    for body, code in cases:
        response = client.post("/api/intent", json=body)
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["code"] == code
        assert error["message"]
    unknown = client.post("/api/intent", json={"text": "hi", "extra": 1})
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "invalid_request"
    missing = client.post("/api/intent", json={"stage": "OPENING"})
    assert missing.status_code == 400
    ok = client.post("/api/intent", json={"text": "x" * 2000})
    assert ok.status_code == 200


def test_anonymous_is_refused(anon: httpx.Client) -> None:
    response = anon.post("/api/intent", json={"text": "hello"})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_cli_prints_label_and_confidence(server: ServerProcess) -> None:
    result = cli(server.state_dir, "intent", "I'm really busy right now, make it quick.")
    assert result.returncode == 0, result.stderr
    label, confidence = result.stdout.strip().split("\t")
    assert label == "time_pressure"
    assert 0 < float(confidence) <= 1
    staged = cli(server.state_dir, "intent", "--stage", "CLOSING", "--json", "That sounds great.")
    assert staged.returncode == 0, staged.stderr
    assert json.loads(staged.stdout)["label"] == "final_confirmation"
    again = cli(
        server.state_dir, "intent", "What's the fee?", "--previous", "price_inquiry", "--json"
    )
    assert json.loads(again.stdout)["label"] == "price_objection"


def test_cli_bad_input_exits_2_with_the_code(server: ServerProcess) -> None:
    empty = cli(server.state_dir, "intent", "")
    assert empty.returncode == 2
    assert "empty_message" in empty.stderr
    stage = cli(server.state_dir, "intent", "hello", "--stage", "NOPE")
    assert stage.returncode == 2
    assert "unknown_stage" in stage.stderr


def test_cli_train_writes_the_model(server: ServerProcess) -> None:
    result = cli(server.state_dir, "intent", "train")
    assert result.returncode == 0, result.stderr
    assert "15 labels" in result.stdout
    again = cli(server.state_dir, "intent", "train", "--if-needed")
    assert again.returncode == 0, again.stderr
    assert "already up to date" in again.stdout
    doctor = cli(server.state_dir, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["intent classifier"]["status"] == "ok"
