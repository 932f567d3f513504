"""Secrets: systemd credentials beat the keyring (a real keyrings.alt file backend)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from appliance.config import load_settings
from appliance.secrets import SESSION_KEY, SecretError, SecretStore, SecretValue
from appliance.testing import appliance_env, cli


def store(state: Path, creds: Path | None = None) -> SecretStore:
    settings = load_settings(
        None,
        environ={
            "SALESBOOST__PATHS__STATE_DIR": str(state),
            "SALESBOOST__SECRETS__KEYRING": "file",
        },
    ).settings
    return SecretStore(settings, {"CREDENTIALS_DIRECTORY": str(creds)} if creds else {})


def test_keyring_round_trip_and_private_file(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.set("llm_remote_api_key", "sk-keyring")
    again = store(tmp_path)  # a new process would see the same file
    value = again.get("llm_remote_api_key")
    assert value is not None and value.reveal() == "sk-keyring"
    assert again.backend.kind == "file"
    assert again.backend.path is not None
    assert stat.S_IMODE(again.backend.path.stat().st_mode) == 0o600
    assert again.file_mode_ok() is True
    assert again.names() == ["llm_remote_api_key"]


def test_credentials_directory_beats_keyring(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    store(tmp_path / "state").set("llm_remote_api_key", "from-keyring")
    (creds / "llm_remote_api_key").write_text("from-systemd\n")
    s = store(tmp_path / "state", creds)
    value = s.get("llm_remote_api_key")
    assert value is not None and value.reveal() == "from-systemd"
    assert s.source_of("llm_remote_api_key") == "credentials"
    (creds / "llm_remote_api_key").unlink()
    value = s.get("llm_remote_api_key")
    assert value is not None and value.reveal() == "from-keyring"
    assert s.source_of("llm_remote_api_key") == "keyring"


def test_generated_secrets_and_rotation(tmp_path: Path) -> None:
    s = store(tmp_path)
    assert s.ensure_generated() == [SESSION_KEY]
    assert s.ensure_generated() == []
    first = s.require(SESSION_KEY).reveal()
    s.rotate(SESSION_KEY)
    assert s.require(SESSION_KEY).reveal() != first
    with pytest.raises(SecretError, match="give a new value") as refused:
        s.rotate("llm_remote_api_key")
    assert "--stdin" in str(refused.value)  # the message says how to give one


def test_missing_secret_names_it_and_never_a_value(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="'nope' is not set"):
        store(tmp_path).require("nope")
    assert "hunter2" not in repr(SecretValue("hunter2"))
    assert "hunter2" not in str(SecretValue("hunter2"))
    assert "hunter2" not in f"{SecretValue('hunter2')}"


def test_secrets_cli_lists_names_never_values(tmp_path: Path) -> None:
    env = appliance_env(tmp_path)
    assert (
        cli(
            tmp_path, "secrets", "set", "llm_remote_api_key", stdin="sk-very-secret\n", env=env
        ).returncode
        == 0
    )
    assert cli(tmp_path, "secrets", "ensure", env=env).returncode == 0
    listed = cli(tmp_path, "secrets", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "llm_remote_api_key\tkeyring" in listed.stdout
    assert "session_key\tkeyring" in listed.stdout
    assert "backend: file" in listed.stdout
    assert "sk-very-secret" not in listed.stdout + listed.stderr
    key_file = tmp_path / "secrets" / "keyring.cfg"
    before = key_file.read_text()
    rotated = cli(tmp_path, "secrets", "rotate", "session_key", env=env)
    assert rotated.returncode == 0, rotated.stderr
    assert key_file.read_text() != before
    shown = cli(tmp_path, "config", "show", env=env)
    assert "sk-very-secret" not in shown.stdout
