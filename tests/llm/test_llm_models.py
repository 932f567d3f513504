"""`salesboost models add PATH --role chat` and `models list`, on a copy of the manifest."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from appliance.testing import appliance_env, cli

from tests.llm.conftest import MODEL, ROOT


def models_dir(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    target.mkdir()
    shutil.copyfile(ROOT / "models" / "manifest.toml", target / "manifest.toml")
    (target / "operator-chat.gguf").symlink_to(MODEL)  # an operator copied a GGUF in
    (target / "notes.gguf").write_text("not a model")
    return target


def test_models_add_reads_the_gguf_metadata_and_hashes_it(tmp_path: Path) -> None:
    models = models_dir(tmp_path)
    env = appliance_env(tmp_path / "state", SALESBOOST__PATHS__MODELS_DIR=str(models))
    result = cli(
        tmp_path, "models", "add", str(models / "operator-chat.gguf"), "--role", "chat", env=env
    )
    assert result.returncode == 0, result.stderr
    assert "gemma3" in result.stdout and "context 32768" in result.stdout
    manifest = tomllib.loads((models / "manifest.toml").read_text())
    entry = next(m for m in manifest["model"] if m["name"] == "operator-chat")
    assert entry["role"] == "chat" and entry["arch"] == "gemma3"
    assert entry["context_length"] == 32768 and entry["chat_template"] is False
    assert entry["files"][0]["sha256"].startswith("a5fd3b62230a")
    listed = cli(tmp_path, "models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "operator-chat\tchat\tok" in listed.stdout and "transcript" in listed.stdout
    again = cli(
        tmp_path, "models", "add", str(models / "operator-chat.gguf"), "--role", "chat", env=env
    )
    assert again.returncode == 1 and "already in the manifest" in again.stderr


def test_models_add_refuses_what_is_not_a_gguf_naming_the_file(tmp_path: Path) -> None:
    models = models_dir(tmp_path)
    env = appliance_env(tmp_path / "state", SALESBOOST__PATHS__MODELS_DIR=str(models))
    before = (models / "manifest.toml").read_text()
    result = cli(tmp_path, "models", "add", str(models / "notes.gguf"), "--role", "chat", env=env)
    assert result.returncode == 1
    assert "notes.gguf is not a GGUF file" in result.stderr
    outside = cli(
        tmp_path, "models", "add", str(MODEL.parent / "manifest.toml"), "--role", "chat", env=env
    )
    assert outside.returncode == 1 and "copy it there first" in outside.stderr
    assert (models / "manifest.toml").read_text() == before
