"""An operator's chat model (a GGUF with a chat template) through `models add`, the engine and a
whole practice session.

Sites replace the bundled base model with an instruct model, whose GGUF carries its chat
template. None ships in a PyPI package, so the test derives one: the bundled gemma-3-270m
weights with the Gemma 3 chat template added to the metadata (`gguf-new-metadata`, llama.cpp's
own tool; gemma-3-270m-it has the same architecture, tokenizer and template). The weights are
the base model's, so the replies are poor; what is checked is that every agent's prompt goes
through the template (the strict one: it refuses turns that do not alternate) and that the
session runs to its report.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from appliance.testing import ServerProcess, appliance_env, cli

from tests.conftest import Account, add_user, login
from tests.integration.practice_helpers import WS, new_session
from tests.integration.synthetic_models import models_dir_with_bundled

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "tests" / "llm" / "data" / "gemma3_chat_template.jinja"
NAME = "gemma-3-270m-chat-template"
TRAINEE = Account("ct-trainee", "trainee", "alpha")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled models plus the derived chat-template GGUF, registered by `models add`."""
    root = tmp_path_factory.mktemp("chat-models")
    target = models_dir_with_bundled(root / "models")
    derived = target / f"{NAME}.gguf"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "gguf.scripts.gguf_new_metadata",
            str(ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"),
            str(derived),
            "--chat-template-file",
            str(TEMPLATE),
            "--force",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    env = appliance_env(root / "state", SALESBOOST__PATHS__MODELS_DIR=str(target))
    added = cli(root, "models", "add", str(derived), "--role", "chat", env=env)
    assert added.returncode == 0, added.stderr
    assert "chat template yes" in added.stdout
    entry = next(
        m
        for m in tomllib.loads((target / "manifest.toml").read_text())["model"]
        if m["name"] == NAME
    )
    assert entry["chat_template"] is True and entry["arch"] == "gemma3"
    return target


@pytest.fixture(scope="module")
def server(models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    state = tmp_path_factory.mktemp("chat-state")
    add_user(state, TRAINEE)
    with ServerProcess(
        state,
        SALESBOOST__PATHS__MODELS_DIR=str(models),
        SALESBOOST__LLM__MODEL=NAME,
        SALESBOOST__DEMO__LOAD_ON_EMPTY="true",
    ) as srv:
        yield srv


def test_a_practice_session_on_a_chat_template_model_runs_to_its_report(
    server: ServerProcess,
) -> None:
    trainee: httpx.Client = login(server, TRAINEE)
    ready = httpx.get(f"{server.url}/readyz", timeout=10).json()
    assert ready["ready"] is True, ready
    session = new_session(trainee)
    ws = WS.open(server.url, session["id"], trainee)
    ws.hello()
    lines = [
        "Good morning, thanks for taking my call. How has the card been for you?",
        "I understand the fee feels high. What do you spend on each month?",
        "With your spending the fee waiver applies, so you would pay no annual fee.",
    ]
    for n, line in enumerate(lines, start=1):
        turn = ws.say(line)
        assert turn.done["turn"] == n
        assert turn.done["text"].strip()
        assert "<start_of_turn>" not in turn.done["text"]
        assert "".join(d["text"] for d in turn.deltas) == turn.done["text"]
    ws.send(type="end")
    events = ws.until("report_ready", timeout=600)
    everything = ws.received
    assert not [e for e in everything if e["type"] == "error"], everything
    for n in range(1, len(lines) + 1):
        tips = [e for e in everything if e["type"] == "coach_tip" and e["turn"] == n]
        assert tips and tips[0]["advice"], n
        assert any(e["type"] == "turn_score" and e["turn"] == n for e in everything), n
    assert "session_ended" in [e["type"] for e in events]
    ws.close()
    report = trainee.get(f"/api/sessions/{session['id']}/report").raise_for_status().json()
    assert report["dimensions"] and all(0 <= d["score"] <= 10 for d in report["dimensions"])
    # no agent's request was refused by the template or failed in the engine
    log = (server.state_dir / "serve.log").read_text()
    assert "llm_prompt_template_error" not in log and "Conversation roles" not in log
