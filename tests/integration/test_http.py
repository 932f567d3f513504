"""HTTP basics: error shapes, size limit, headers, same-origin, probes, metrics, schema."""

from __future__ import annotations

import time

import httpx
from appliance.config import ServerConfig
from appliance.testing import ServerProcess


def test_unknown_route_is_json_404(anon: httpx.Client) -> None:
    r = anon.get("/api/does-not-exist")
    assert r.status_code == 404
    assert r.json() == {"code": "not_found", "message": "no route GET /api/does-not-exist"}


def test_malformed_json_is_400(anon: httpx.Client) -> None:
    r = anon.post(
        "/api/auth/login",
        content=b'{"username": "a", "password":',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_request"


def test_wrong_type_names_the_field(anon: httpx.Client) -> None:
    r = anon.post("/api/auth/login", json={"username": 5, "password": "x"})
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_request"
    assert "username" in str(body["detail"])


def test_missing_field_names_it(clients: dict[str, httpx.Client]) -> None:
    r = clients["admin"].post("/api/users", json={"username": "nobody"})
    assert r.status_code == 400
    assert "role" in str(r.json()["detail"])


def test_oversize_body_is_413(server: ServerProcess) -> None:
    big = b"x" * (ServerConfig().max_body_bytes + 1)
    r = httpx.post(
        server.url + "/api/auth/login",
        content=big,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert r.status_code == 413
    assert r.json()["code"] == "too_large"
    assert "server.max_body_bytes" in r.json()["message"]  # says which limit, not just "too large"


def test_security_headers_and_request_id(anon: httpx.Client) -> None:
    for path in ("/healthz", "/api/auth/me", "/nope"):
        r = anon.get(path)
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert len(r.headers["x-request-id"]) == 32
    echoed = anon.get("/healthz", headers={"x-request-id": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    assert "server" not in anon.get("/healthz").headers


def test_cross_origin_writes_are_refused(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    r = clients["admin"].post(
        "/api/tokens", json={"name": "x"}, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden"
    same = clients["admin"].post(
        "/api/tokens", json={"name": "same-origin"}, headers={"origin": server.url}
    )
    assert same.status_code == 201
    # no CORS headers are offered without server.allowed_origins (see test_cors)
    pre = httpx.options(
        server.url + "/api/tokens",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert not [h for h in pre.headers if h.lower().startswith("access-control-")]


def test_probes(anon: httpx.Client) -> None:
    assert anon.get("/healthz").json() == {"status": "ok"}
    ready = anon.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert [c["name"] for c in body["checks"]][:3] == ["database", "models", "disk"]
    assert all(c["ok"] for c in body["checks"])
    # uptime monitors and load balancers probe with HEAD: the GET status, no body
    for path in ("/healthz", "/readyz"):
        probe = anon.head(path)
        assert (probe.status_code, probe.content) == (200, b""), path


def test_metrics_and_schema(anon: httpx.Client, clients: dict[str, httpx.Client]) -> None:
    clients["trainee"].get("/api/auth/me")
    text = anon.get("/metrics").text
    assert "salesboost_requests_total" in text
    assert "/api/auth/me" in text
    schema = anon.get("/schema/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/auth/login" in paths and "/api/users" in paths
    # the upload reads its form itself; its multipart body is still documented
    upload = paths["/api/knowledge/documents"]["post"]["requestBody"]["content"]
    form = upload["multipart/form-data"]["schema"]
    assert form["required"] == ["files"]
    assert set(form["properties"]) == {"files", "collection", "tags", "title"}


def test_the_event_loop_lag_is_measured_and_shown(
    server: ServerProcess, anon: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    """The server's loop-lag probe runs: /metrics counts its samples (one per 0.25 s) and the
    System page shows the last minutes' percentiles; collections are timed, and what start-up
    made was frozen out of them (server.gc_freeze)."""

    def probes() -> float:
        for line in anon.get("/metrics").text.splitlines():
            if line.startswith("salesboost_event_loop_lag_seconds_count "):
                return float(line.split()[1])
        raise AssertionError("no salesboost_event_loop_lag_seconds on /metrics")

    first = probes()
    time.sleep(1.2)
    assert probes() >= first + 3
    system = clients["admin"].get("/admin/system").text
    row = system.split('id="loop-lag">', 1)[1].split("</dd>", 1)[0]
    assert "p99" in row and "max" in row and " ms" in row, row
    assert 'salesboost_gc_pause_seconds_count{generation="0"}' in anon.get("/metrics").text
    assert "objects kept out of later garbage collections" in server.log_path.read_text()


def test_cookieless_requests_store_no_session(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    sessions = server.state_dir / "sessions"
    before = len(list(sessions.iterdir())) if sessions.exists() else 0
    token = clients["manager"].post("/api/tokens", json={"name": "no-session"}).json()["token"]
    for _ in range(20):
        r = httpx.get(server.url + "/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
        assert "set-cookie" not in r.headers
        assert "set-cookie" not in httpx.get(server.url + "/api/auth/me").headers
    after = len(list(sessions.iterdir())) if sessions.exists() else 0
    assert after == before
    # a logged-in browser's unchanged session is not rewritten or re-sent on every request
    assert "set-cookie" not in clients["manager"].get("/api/auth/me").headers


def test_ids_past_sqlite_integers_are_400_naming_the_parameter_on_every_route(
    clients: dict[str, httpx.Client],
) -> None:
    """Every route with an integer in its path, in its query or in its JSON body: a value
    SQLite cannot bind (a fuzzer's first find) is refused as invalid, never a 500."""
    admin = clients["admin"]
    schema = admin.get("/schema/openapi.json").json()
    huge = 2**64 + 1
    tried = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            params = [
                p
                for p in operation.get("parameters", [])
                if p["in"] in ("path", "query") and _is_integer(p.get("schema", {}))
            ]
            for param in params:
                url = path
                query: dict[str, object] = {}
                for other in operation.get("parameters", []):
                    if other["in"] == "path":
                        value = huge if other is param else 1
                        url = url.replace("{" + other["name"] + "}", str(value))
                if param["in"] == "query":
                    query[param["name"]] = huge
                for bad in (huge, 0) if param["in"] == "path" else (huge,):
                    target = url.replace(str(huge), str(bad)) if param["in"] == "path" else url
                    body = {} if method in ("post", "patch", "put") else None
                    r = admin.request(method.upper(), target, params=query, json=body)
                    tried += 1
                    if param["in"] == "query":  # an id is refused; a limit or k is clamped
                        assert r.status_code in (200, 400), (method, target, query, r.text)
                        continue
                    assert r.status_code == 400, (method, target, query, r.status_code, r.text)
                    assert r.json()["code"] in ("invalid_request", "invalid_input"), r.text
                    assert param["name"] in r.text, (method, target, query, r.text)
    assert tried >= 40  # the id routes of users, tokens, catalogue, knowledge, sessions
    for path, body in (
        ("/api/sessions", {"scenario_id": huge, "persona_id": 1}),
        ("/api/scenarios", {"name": "s", "objective": "o", "course_id": huge}),
    ):
        r = admin.post(path, json=body)
        assert r.status_code == 400 and r.json()["code"] == "invalid_request", r.text
    assert admin.get("/api/auth/me").status_code == 200


def _is_integer(schema: dict[str, object]) -> bool:
    if schema.get("type") == "integer":
        return True
    options = schema.get("oneOf") or schema.get("anyOf") or []
    return any(isinstance(o, dict) and o.get("type") == "integer" for o in options)  # type: ignore[union-attr]
