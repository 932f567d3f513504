"""The real `salesboost serve` process: start-up, bootstrap admin, refusal on bad models, SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from appliance.config import PROJECT_ROOT, load_settings
from appliance.secrets import SecretStore
from appliance.testing import ServerProcess, appliance_env, cli


def test_ready_within_15s_and_bootstrap_admin_logs_in(tmp_path: Path) -> None:
    state = tmp_path / "state"
    boot = cli(state, "users", "bootstrap-admin")
    assert boot.returncode == 0, boot.stderr
    password = boot.stdout.split("change it at first login): ")[1].strip()
    again = cli(state, "users", "bootstrap-admin")
    assert "already exists" in again.stdout and password not in again.stdout  # printed exactly once
    started = time.monotonic()
    with ServerProcess(state) as server:
        assert time.monotonic() - started < 15
        with httpx.Client(base_url=server.url) as client:
            r = client.post("/api/auth/login", json={"username": "admin", "password": password})
            assert r.status_code == 200, r.text
            assert r.json()["must_change_password"] is True
            assert client.get("/api/users").json()["code"] == "password_change_required"


def small_models_dir(tmp_path: Path) -> Path:
    """A models dir: a copy of the OCR classifier (small, safe to corrupt), a link to the chat model."""
    manifest = tomllib.loads((PROJECT_ROOT / "models" / "manifest.toml").read_text())
    models = tmp_path / "models"
    (models / "ocr").mkdir(parents=True)
    lines = []
    for role in ("ocr_cls", "chat"):
        entry = next(m for m in manifest["model"] if m["role"] == role)
        source = PROJECT_ROOT / "models" / entry["path"]
        if role == "chat":
            (models / entry["path"]).symlink_to(source)
        else:
            shutil.copyfile(source, models / entry["path"])
        lines += [
            "[[model]]",
            f'name = "{entry["name"]}"',
            f'role = "{role}"',
            f'path = "{entry["path"]}"',
            f'source = "{entry["source"]}"',
            f'files = [{{ path = "{entry["path"]}", sha256 = "{entry["files"][0]["sha256"]}" }}]',
        ]
    (models / "manifest.toml").write_text("\n".join(lines) + "\n")
    return models


def test_corrupt_model_is_named_by_doctor_and_refused_by_serve(tmp_path: Path) -> None:
    models = small_models_dir(tmp_path)
    state = tmp_path / "state"
    env = appliance_env(state, SALESBOOST__PATHS__MODELS_DIR=str(models))
    ok = cli(state, "doctor", env=env)
    assert "OK    model ppocr-mobile-v2-cls" in ok.stdout, ok.stdout
    onnx = models / "ocr" / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
    with onnx.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00corrupted\x00")
    doctor = cli(state, "doctor", env=env)
    assert doctor.returncode == 1
    assert f"{onnx}: corrupt" in doctor.stdout
    serve = cli(state, "serve", "--port", "1", env=env)
    assert serve.returncode == 1
    assert str(onnx) in serve.stderr and "corrupt" in serve.stderr
    onnx.unlink()
    serve = cli(state, "serve", "--port", "1", env=env)
    assert serve.returncode == 1 and "missing" in serve.stderr


def test_readyz_names_a_model_missing_at_runtime(tmp_path: Path) -> None:
    models = small_models_dir(tmp_path)
    state = tmp_path / "state"
    with ServerProcess(state, SALESBOOST__PATHS__MODELS_DIR=str(models)) as server:
        onnx = models / "ocr" / "ch_ppocr_mobile_v2.0_cls_mobile.onnx"
        assert httpx.get(server.url + "/readyz").status_code == 200
        onnx.unlink()
        # readiness re-checks presence cheaply on every probe
        r = httpx.get(server.url + "/readyz")
        assert r.status_code == 503
        assert r.json()["not_ready"] == ["models"]
        assert str(onnx) in str(r.json()["checks"])
        probe = httpx.head(server.url + "/readyz")
        assert (probe.status_code, probe.content) == (503, b"")


def test_sigterm_lets_the_request_in_flight_finish(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = ServerProcess(state)
    server.start()
    try:
        body = b'{"username": "nobody-here", "password": "some-password"}'
        sock = socket.create_connection(("127.0.0.1", server.port))
        head = (
            f"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock.sendall(head + body[:10])  # the request is in flight: headers read, body pending
        time.sleep(0.3)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert server.proc.poll() is None, "the server must wait for the request in flight"
        with pytest.raises(httpx.TransportError):  # the listener is already closed
            httpx.get(server.url + "/healthz", timeout=2)
        sock.sendall(body[10:])
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        sock.close()
        assert response.startswith(b"HTTP/1.1 401"), response[:200]
        # uvicorn finishes the lifespan (database closed), then re-raises SIGTERM so the exit
        # status says how it ended; systemd counts that as a clean stop
        assert server.proc.wait(15) in (0, -signal.SIGTERM)
        log = server.log()
        assert "Waiting for connections to close" in log
        assert "Application shutdown complete" in log
    finally:
        server.stop()


def test_login_has_its_own_stricter_rate_limit(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "state", SALESBOOST__AUTH__LOGIN_RATE_PER_MINUTE="3") as server:
        codes = []
        for n in range(5):
            bad = {"username": f"user{n}", "password": "wrong-password"}
            codes.append(httpx.post(server.url + "/api/auth/login", json=bad))
        assert [r.status_code for r in codes] == [401, 401, 401, 429, 429]
        limited = codes[-1]
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) > 0
        # the rest of the API is not throttled by the login limit
        for _ in range(10):
            assert httpx.get(server.url + "/api/auth/me").status_code == 401


def test_global_rate_limit_spares_the_probes(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "state", SALESBOOST__AUTH__API_RATE_PER_MINUTE="20") as server:
        codes = [httpx.get(server.url + "/api/auth/me").status_code for _ in range(25)]
        assert codes[:20] == [401] * 20
        assert set(codes[20:]) == {429}
        limited = httpx.get(server.url + "/api/auth/me")
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) > 0
        assert all(httpx.get(server.url + "/healthz").status_code == 200 for _ in range(30))
        assert httpx.get(server.url + "/readyz").status_code == 200


def test_logs_are_json_with_request_ids_and_no_secrets(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with ServerProcess(state) as server:
        r = httpx.get(server.url + "/api/auth/me", headers={"x-request-id": "req-abc-123"})
        assert r.status_code == 401
        metrics = httpx.get(server.url + "/metrics").text
    settings = load_settings(None, environ=server.env).settings
    secret_value = SecretStore(settings).require("session_key").reveal()
    log = server.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "request"]
    assert any(
        line["request_id"] == "req-abc-123"
        and line["path"] == "/api/auth/me"
        and line["status"] == 401
        for line in access
    )
    assert len(secret_value) > 20
    assert secret_value not in log and secret_value not in metrics
