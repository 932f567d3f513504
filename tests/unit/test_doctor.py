"""doctor's checks that need no running server (a real Settings tree, no probes faked)."""

from __future__ import annotations

from appliance.config import load_settings
from appliance.doctor import UPLOAD_FORM_BYTES, _uploads


def test_the_default_body_limit_takes_a_document_of_the_largest_size() -> None:
    """QA (integrator pass): the documented 100 MiB document could not be uploaded, because
    the 64 MiB body limit refused it first with 413."""
    settings = load_settings(environ={}).settings
    assert settings.server.max_body_bytes >= settings.knowledge.max_file_bytes + UPLOAD_FORM_BYTES
    assert _uploads(settings).status == "ok"


def test_a_body_limit_below_the_document_limit_is_named() -> None:
    settings = load_settings(
        environ={"SALESBOOST__SERVER__MAX_BODY_BYTES": str(64 * 1024 * 1024)}
    ).settings
    check = _uploads(settings)
    assert check.status == "warn"
    assert "server.max_body_bytes (67,108,864)" in check.detail
    assert "knowledge.max_file_bytes (104,857,600)" in check.detail
    assert "salesboost ingest" in check.detail
