"""/schema tells the truth: what a client generated from it, or a validator reading it, expects
is what the real server sends.

Every response below is a real one from the session's server, checked against the document
that server serves: its status code must be documented, with its content type, and its body
must validate (JSON Schema 2020-12, as OpenAPI 3.1 says) against the schema given for both.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
from appliance.testing import ServerProcess

PUBLIC = {
    ("get", "/healthz"),
    ("head", "/healthz"),
    ("get", "/readyz"),
    ("head", "/readyz"),
    ("get", "/metrics"),
    ("post", "/api/auth/login"),
}
"""The operations open to anyone (``access("public")``; /metrics with ``metrics.public``)."""
METHODS = ("get", "head", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema(anon: httpx.Client) -> dict[str, Any]:
    response = anon.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def anon(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation of the document."""
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield method, path, item[method]


def validate(schema: dict[str, Any], fragment: dict[str, Any], instance: object) -> None:
    """Validate ``instance`` against a schema fragment of the document (its $refs resolved)."""
    validator = jsonschema_rs.Draft202012Validator({**fragment, "components": schema["components"]})
    problems = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(instance)]
    assert problems == [], problems[:5]


def check(schema: dict[str, Any], method: str, path: str, response: httpx.Response) -> None:
    """``response`` is documented for ``method path``: its status, its content type, its body."""
    operation = schema["paths"][path][method]
    status = str(response.status_code)
    documented = operation["responses"]
    assert status in documented, (
        f"{method.upper()} {path} answered {status}, documented {sorted(documented)}: "
        f"{response.text[:300]}"
    )
    content = documented[status].get("content")
    if response.status_code == 204 or method == "head":
        assert not response.content
        return
    assert content, f"{method.upper()} {path} {status}: a body, documented as none"
    media_type = response.headers["content-type"].split(";")[0].strip()
    assert media_type in content, f"{method.upper()} {path} {status}: {media_type} not in {content}"
    body: object = response.json() if media_type == "application/json" else response.text
    validate(schema, content[media_type]["schema"], body)


def _resolve(schema: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in fragment:
        fragment = schema["components"]["schemas"][fragment["$ref"].rsplit("/", 1)[1]]
    return fragment


# --- the document itself -----------------------------------------------------------------------


def test_security_schemes_are_declared_and_every_guarded_operation_names_them(
    schema: dict[str, Any], anon: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    cookie = schemes["session"]
    assert (cookie["type"], cookie["in"]) == ("apiKey", "cookie")
    assert cookie["name"] in clients["trainee"].cookies  # the cookie a real login sets
    unguarded = set()
    for method, path, operation in operations(schema):
        if operation.get("security"):
            assert operation["security"] == [{"bearer": []}, {"session": []}], path
            assert "401" in operation["responses"], (method, path)
        else:
            unguarded.add((method, path))
    assert unguarded == PUBLIC
    # the document is right about them: without a login, 401 in the documented shape
    for method, path, operation in operations(schema):
        if method == "get" and operation.get("security") and "{" not in path:
            refused = anon.get(path)
            check(schema, method, path, refused)
            assert refused.status_code == 401, path
    token = clients["trainee"].post("/api/tokens", json={"name": "openapi"}).json()["token"]
    me = anon.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    check(schema, "get", "/api/auth/me", me)
    assert me.status_code == 200


def test_every_operation_says_what_it_does_here_and_on_the_schema_page(
    schema: dict[str, Any], anon: httpx.Client
) -> None:
    missing = [(m, p) for m, p, op in operations(schema) if not op.get("description", "").strip()]
    assert missing == []
    export = schema["paths"]["/api/sessions/export.csv"]["get"]["description"]
    assert "one row per session" in export  # the handler's docstring
    page = anon.get("/schema")
    assert page.status_code == 200
    # the page shows whole sentences, not a docstring's first wrapped line
    assert "a spreadsheet: one row per session with its scores per rubric dimension" in page.text
    assert "Prometheus metrics" in page.text


def test_every_error_response_is_the_error_shape(schema: dict[str, Any]) -> None:
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message"}
    assert set(error["properties"]) == {"code", "message", "detail"}
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) < 400 or method == "head" or path == "/readyz":
                continue  # /readyz's 503 is its own body: the checks that failed
            ref = response["content"]["application/json"]["schema"]
            assert ref == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_request_bodies_say_what_the_server_refuses(
    schema: dict[str, Any], anon: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    bodies = 0
    for method, path, operation in operations(schema):
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            continue
        body = content["application/json"]["schema"]
        refs = [s for s in body.get("oneOf", [body]) if s.get("type") != "null"]
        for ref in refs:
            assert _resolve(schema, ref).get("additionalProperties") is False, (method, path)
            bodies += 1
    assert bodies > 20
    # as the document says: an unknown field is refused
    extra = anon.post("/api/auth/login", json={"username": "x", "password": "y", "admin": True})
    check(schema, "post", "/api/auth/login", extra)
    assert extra.status_code == 400 and extra.json()["code"] == "invalid_request"
    token = clients["trainee"].post("/api/tokens", json={"name": "t", "expires": 1})
    check(schema, "post", "/api/tokens", token)
    assert token.status_code == 400
    # and a body that may be left out is not required
    reset = schema["paths"]["/api/users/{user_id}/reset-password"]["post"]["requestBody"]
    assert reset["required"] is False
    assert schema["paths"]["/api/auth/login"]["post"]["requestBody"]["required"] is True


def test_the_schemas_own_pages_are_not_operations(
    schema: dict[str, Any], anon: httpx.Client
) -> None:
    assert not [p for p in schema["paths"] if p.startswith("/schema")]
    assert anon.get("/schema/nothing").status_code == 404


# --- real responses against it -----------------------------------------------------------------


def test_catalogue_users_and_tokens_answer_as_documented(
    schema: dict[str, Any], anon: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    admin, manager, trainee = clients["admin"], clients["manager"], clients["trainee"]
    name = f"oa-{uuid.uuid4().hex[:8]}"

    made = admin.post("/api/users", json={"username": name, "role": "trainee", "team": "alpha"})
    check(schema, "post", "/api/users", made)
    assert made.status_code == 201
    user_id = made.json()["user"]["id"]
    again = admin.post("/api/users", json={"username": name, "role": "trainee"})
    check(schema, "post", "/api/users", again)
    assert again.status_code == 409
    check(schema, "get", "/api/users", admin.get("/api/users"))
    check(schema, "get", "/api/users/{user_id}", admin.get(f"/api/users/{user_id}"))
    missing = admin.get("/api/users/999999")
    check(schema, "get", "/api/users/{user_id}", missing)
    assert missing.status_code == 404
    huge = admin.get(f"/api/users/{2**64}")
    check(schema, "get", "/api/users/{user_id}", huge)
    assert huge.status_code == 400 and isinstance(huge.json()["detail"], list)
    reset = admin.post(f"/api/users/{user_id}/reset-password")  # no body at all
    check(schema, "post", "/api/users/{user_id}/reset-password", reset)
    assert reset.status_code == 200
    patched = admin.patch(f"/api/users/{user_id}", json={"display_name": "O. A."})
    check(schema, "patch", "/api/users/{user_id}", patched)
    denied = trainee.get("/api/users")
    check(schema, "get", "/api/users", denied)
    assert denied.status_code == 403
    check(schema, "get", "/api/audit", admin.get("/api/audit", params={"limit": 5}))

    token = trainee.post("/api/tokens", json={"name": name})
    check(schema, "post", "/api/tokens", token)
    check(schema, "get", "/api/tokens", trainee.get("/api/tokens"))
    revoked = trainee.delete(f"/api/tokens/{token.json()['id']}")
    check(schema, "delete", "/api/tokens/{token_id}", revoked)
    assert revoked.status_code == 204

    rubric = manager.post(
        "/api/rubrics",
        json={
            "name": f"{name} rubric",
            "dimensions": [
                {"key": "rapport", "name": "Rapport", "weight": 1, "description": "Builds it."}
            ],
        },
    )
    check(schema, "post", "/api/rubrics", rubric)
    persona = manager.post(
        "/api/personas",
        json={"name": f"Mr. {name}", "description": "A careful buyer.", "goals": ["a fair fee"]},
    )
    check(schema, "post", "/api/personas", persona)
    persona_id = persona.json()["id"]
    # a manager gets the whole persona, a trainee its brief: both are documented bodies
    for who in (manager, trainee):
        check(schema, "get", "/api/personas", who.get("/api/personas"))
        check(schema, "get", "/api/personas/{persona_id}", who.get(f"/api/personas/{persona_id}"))
    assert "goals" in manager.get(f"/api/personas/{persona_id}").json()
    assert "goals" not in trainee.get(f"/api/personas/{persona_id}").json()
    scenario = {
        "name": f"{name} scenario",
        "description": "A renewal call.",
        "objective": "Keep the customer.",
        "rubric_id": rubric.json()["id"],
        "persona_ids": [persona_id],
    }
    unknown = manager.post("/api/scenarios", json={**scenario, "persona_ids": [999999]})
    check(schema, "post", "/api/scenarios", unknown)
    assert unknown.status_code == 422
    created = manager.post("/api/scenarios", json=scenario)
    check(schema, "post", "/api/scenarios", created)
    check(schema, "get", "/api/scenarios", trainee.get("/api/scenarios"))
    check(schema, "get", "/api/rubrics", manager.get("/api/rubrics"))
    check(schema, "get", "/api/products", manager.get("/api/products"))
    check(schema, "get", "/api/compliance-rules", manager.get("/api/compliance-rules"))
    check(schema, "get", "/api/courses", trainee.get("/api/courses"))

    archived = manager.delete(f"/api/scenarios/{created.json()['id']}")
    check(schema, "delete", "/api/scenarios/{scenario_id}", archived)
    check(schema, "post", "/api/intent", trainee.post("/api/intent", json={"text": "Too pricey."}))
    check(schema, "get", "/api/knowledge/documents", trainee.get("/api/knowledge/documents"))
    check(schema, "get", "/api/knowledge/collections", trainee.get("/api/knowledge/collections"))
    check(schema, "get", "/api/auth/me", trainee.get("/api/auth/me"))


def test_sessions_reports_and_the_export_answer_as_documented(
    schema: dict[str, Any], clients: dict[str, httpx.Client]
) -> None:
    admin, manager, trainee = clients["admin"], clients["manager"], clients["trainee"]
    tag = uuid.uuid4().hex[:8]
    rubric = manager.post(
        "/api/rubrics",
        json={
            "name": f"s-{tag}",
            "dimensions": [{"key": "close", "name": "Close", "weight": 1, "description": "Asks."}],
        },
    ).json()
    persona = manager.post(
        "/api/personas", json={"name": f"Ms. {tag}", "description": "Busy."}
    ).json()
    scenario = manager.post(
        "/api/scenarios",
        json={
            "name": f"s-{tag}",
            "description": "A call.",
            "objective": "Sell.",
            "rubric_id": rubric["id"],
            "persona_ids": [persona["id"]],
        },
    ).json()
    made = trainee.post(
        "/api/sessions", json={"scenario_id": scenario["id"], "persona_id": persona["id"]}
    )
    check(schema, "post", "/api/sessions", made)
    assert made.status_code == 201
    session_id = made.json()["id"]
    try:
        check(schema, "get", "/api/sessions", trainee.get("/api/sessions"))
        check(schema, "get", "/api/sessions", trainee.get("/api/sessions?scope=all"))  # 403
        detail = trainee.get(f"/api/sessions/{session_id}")
        check(schema, "get", "/api/sessions/{session_id}", detail)
        pending = trainee.get(f"/api/sessions/{session_id}/report")
        check(schema, "get", "/api/sessions/{session_id}/report", pending)
        assert pending.json()["code"] == "report_pending"
        page = trainee.get(f"/api/sessions/{session_id}/report.html")
        check(schema, "get", "/api/sessions/{session_id}/report.html", page)
        assert page.status_code == 202
        gone = trainee.get("/api/sessions/999999/report.html")
        check(schema, "get", "/api/sessions/{session_id}/report.html", gone)
        assert gone.status_code == 404 and gone.headers["content-type"] == "application/json"
        export = manager.get("/api/sessions/export.csv", params={"scope": "team"})
        check(schema, "get", "/api/sessions/export.csv", export)
        assert export.headers["content-type"] == "text/csv; charset=utf-8"
        backwards = manager.get(
            "/api/sessions/export.csv", params={"since": "2030-01-02", "until": "2030-01-01"}
        )
        check(schema, "get", "/api/sessions/export.csv", backwards)
        assert backwards.status_code == 400
        trends = trainee.get(f"/api/trends/{made.json()['user_id']}")
        check(schema, "get", "/api/trends/{user_id}", trends)
    finally:
        deleted = admin.delete(f"/api/sessions/{session_id}")
        check(schema, "delete", "/api/sessions/{session_id}", deleted)


def test_probes_and_metrics_answer_as_documented(
    schema: dict[str, Any], anon: httpx.Client
) -> None:
    check(schema, "get", "/healthz", anon.get("/healthz"))
    check(schema, "get", "/readyz", anon.get("/readyz"))
    metrics = anon.get("/metrics")
    check(schema, "get", "/metrics", metrics)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert list(schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]


# --- malformed input -----------------------------------------------------------------------------


def test_json_nested_past_the_decoders_depth_is_a_400(
    schema: dict[str, Any], server: ServerProcess, anon: httpx.Client
) -> None:
    """QA: a 1,000-deep array in a login body was a 500 with a RecursionError traceback."""
    deep = "[" * 1000 + "]" * 1000
    response = anon.post(
        "/api/auth/login",
        content=f'{{"username": {deep}, "password": "x"}}',
        headers={"Content-Type": "application/json"},
    )
    check(schema, "post", "/api/auth/login", response)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert "RecursionError" not in server.log_path.read_text()
    # an ordinary malformed body answers with the same code
    broken = anon.post("/api/auth/login", content="{", headers={"Content-Type": "application/json"})
    assert (broken.status_code, broken.json()["code"]) == (400, "invalid_request")
    assert re.match(r"malformed request", response.json()["message"])
