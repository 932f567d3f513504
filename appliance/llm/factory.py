"""Build the configured backend (called by the app's composition root and the CLI)."""

from __future__ import annotations

from appliance.config import Settings
from appliance.llm.base import LLMBackend
from appliance.llm.errors import LLMError
from appliance.models import ModelError, load_manifest
from appliance.secrets import SecretStore


def chat_model_path(settings: Settings) -> str:
    """The file of the chat model named by llm.model in the manifest."""
    manifest = load_manifest(settings.models_dir)
    for entry in manifest.model:
        if entry.name == settings.llm.model:
            if entry.role != "chat":
                raise ModelError(f"model {entry.name} has role {entry.role}, not chat")
            return str(settings.models_dir / entry.path)
    raise ModelError(
        f"llm.model = {settings.llm.model!r} is not in {settings.models_dir / 'manifest.toml'}"
    )


def build_backend(settings: Settings, secrets: SecretStore | None = None) -> LLMBackend:
    """The llama_cpp or remote backend, per llm.backend (not started)."""
    from pathlib import Path

    cfg = settings.llm
    if cfg.backend == "remote":
        from appliance.llm.remote import RemoteBackend

        if not cfg.remote_url:
            raise LLMError("llm.backend = 'remote' needs llm.remote_url")
        key = None
        if cfg.remote_api_key_secret and secrets is not None:
            key = secrets.get(cfg.remote_api_key_secret)
        return RemoteBackend(cfg, key)
    from appliance.llm.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(cfg, Path(chat_model_path(settings)))
