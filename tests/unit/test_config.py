"""Configuration: precedence, errors that name the key, `config show`, documented keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from appliance.cli import render_config_docs
from appliance.config import ConfigError, Settings, describe_fields, load_settings
from appliance.testing import appliance_env, cli

ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_run_the_demo() -> None:
    loaded = load_settings(None, environ={})
    assert loaded.settings == Settings()
    assert set(loaded.sources.values()) == {"default"}


def test_file_overrides_default_and_env_overrides_file(tmp_path: Path) -> None:
    toml = write(
        tmp_path / "s.toml", '[server]\nport = 9001\nhost = "127.0.0.1"\n[log]\njson = false\n'
    )
    loaded = load_settings(toml, environ={"SALESBOOST__SERVER__PORT": "9002"})
    assert loaded.settings.server.port == 9002
    assert loaded.settings.server.host == "127.0.0.1"
    assert loaded.settings.log.json is False
    assert loaded.sources["server.port"] == "env"
    assert loaded.sources["server.host"] == "file"
    assert loaded.sources["log.level"] == "default"


def test_cli_flags_beat_env(tmp_path: Path) -> None:
    loaded = load_settings(
        None,
        environ={"SALESBOOST__SERVER__PORT": "9002"},
        cli={"server.port": 9003, "server.host": None},
    )
    assert loaded.settings.server.port == 9003
    assert loaded.sources["server.port"] == "cli"
    assert loaded.sources["server.host"] == "default"


def test_env_lists_are_json() -> None:
    loaded = load_settings(
        None, environ={"SALESBOOST__SERVER__ALLOWED_ORIGINS": '["https://a.example:8443"]'}
    )
    assert loaded.settings.server.allowed_origins == ["https://a.example:8443"]


@pytest.mark.parametrize(
    ("toml", "env", "key", "why"),
    [
        ("[server]\nprot = 1\n", {}, "server.prot", "unknown key"),
        ("[nosuch]\nx = 1\n", {}, "nosuch", "unknown key"),
        ('[server]\nport = "eighty"\n', {}, "server.port", "Expected `int`"),
        ("[server]\nport = 70000\n", {}, "server.port", "<= 65535"),
        ('[log]\nlevel = "loud"\n', {}, "log.level", "Invalid enum value"),
        ("", {"SALESBOOST__SERVER__PORT": "eighty"}, "server.port", "Expected `int`"),
        ("", {"SALESBOOST__AUTH__NOPE": "1"}, "auth.nope", "unknown key"),
    ],
)
def test_bad_values_name_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], key: str, why: str
) -> None:
    path = write(tmp_path / "s.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=env)
    assert info.value.key == key
    assert why in info.value.why


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path / "s.toml", "[server\n"), environ={})


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = write(tmp_path / "s.toml", "[server]\nport = 0\n")
    result = cli(tmp_path, "--config", str(path), "serve")
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_config_show_prints_sources_and_redacts(tmp_path: Path) -> None:
    env = appliance_env(tmp_path, SALESBOOST__SERVER__PORT="9100")
    path = write(tmp_path / "s.toml", '[log]\nlevel = "debug"\n')
    result = cli(tmp_path, "--config", str(path), "config", "show", env=env)
    assert result.returncode == 0, result.stderr
    assert "port = 9100  # env" in result.stdout
    assert 'level = "debug"  # file' in result.stdout
    assert "max_body_bytes = 105906176  # default" in result.stdout
    # no secret value is in the config, and the keyring's session key never shows
    assert "session_key" not in result.stdout


def test_config_show_masks_secrets_only(tmp_path: Path) -> None:
    """Counts, backend names and secret *names* show as they are; URL credentials do not."""
    env = appliance_env(
        tmp_path, SALESBOOST__LLM__REMOTE_URL="http://bob:hunter2@llm.local:8080/v1"
    )
    result = cli(tmp_path, "config", "show", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for line in (
        "context_tokens = 32768  # default",
        "npc_max_tokens = 60  # default",
        "password_min_length = 10  # default",
        'keyring = "file"  # env',
        'remote_tokenizer = "auto"  # default',
        'remote_api_key_secret = "llm_remote_api_key"  # default',
        'remote_url = "http://********@llm.local:8080/v1"  # env',
    ):
        assert line in out, (line, out)
    assert "hunter2" not in out
    shown = cli(tmp_path, "config", "show", "--json", env=env)
    assert json.loads(shown.stdout)["llm.context_tokens"]["value"] == 32768


def test_every_key_is_documented() -> None:
    rows = describe_fields()
    assert rows, "no config keys found"
    undocumented = [key for key, _, _, description in rows if not description.strip()]
    assert undocumented == []


def test_docs_file_matches_the_code() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render_config_docs(), (
        "docs/configuration.md is stale: run `salesboost config docs > docs/configuration.md`"
    )
