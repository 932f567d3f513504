"""CORS for ``server.allowed_origins``: a browser page there calls the API with a Bearer token.

Real servers on loopback: one with two allowed origins (one written with its default port,
which browsers leave out of Origin), and the suite's default one with none (no CORS header at
all). Requests are sent as a browser would (Origin, preflight headers) with httpx.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from appliance.config import ConfigError, load_settings
from appliance.testing import ServerProcess

from tests.conftest import Account, add_user, login

pytestmark = pytest.mark.timeout(300)

LMS = "https://lms.example"
OTHER_ALLOWED = "http://10.0.0.5:8080"
EVIL = "https://evil.example"
ADMIN = Account("cors-admin", "admin", "hq")


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    state = tmp_path_factory.mktemp("cors-state")
    add_user(state, ADMIN)
    origins = json.dumps([f"{LMS}:443", OTHER_ALLOWED])
    with ServerProcess(state, SALESBOOST__SERVER__ALLOWED_ORIGINS=origins) as srv:
        yield srv


@pytest.fixture(scope="module")
def token(cors_server: ServerProcess) -> Iterator[str]:
    """An admin API token (what the LMS page holds)."""
    client = login(cors_server, ADMIN)
    try:
        made = client.post("/api/tokens", json={"name": "lms"})
        assert made.status_code == 201, made.text
        yield made.json()["token"]
    finally:
        client.close()


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def listed(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def preflight(server: ServerProcess, path: str, origin: str, method: str) -> httpx.Response:
    return httpx.options(
        server.url + path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=30,
    )


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_login(
    cors_server: ServerProcess,
) -> None:
    for origin in (LMS, OTHER_ALLOWED):
        for path, method in (
            ("/api/users", "GET"),
            ("/api/users/1", "PATCH"),
            ("/api/tokens/1", "DELETE"),
            ("/api/courses", "POST"),
        ):
            pre = preflight(cors_server, path, origin, method)
            assert pre.status_code == 204, (origin, path, pre.text)
            assert pre.headers["access-control-allow-origin"] == origin
            assert method.lower() in listed(pre.headers["access-control-allow-methods"])
            assert {"authorization", "content-type"} <= listed(
                pre.headers["access-control-allow-headers"]
            )
            assert "access-control-allow-credentials" not in pre.headers  # token, not cookie
            assert pre.headers["access-control-max-age"] == "600"
            assert "origin" in listed(pre.headers["vary"])
    # a method the API does not use is not offered
    assert preflight(cors_server, "/api/users", LMS, "PUT").status_code == 400


def test_an_allowed_origin_reads_and_writes_with_a_token(
    cors_server: ServerProcess, token: str
) -> None:
    page = httpx.Client(
        base_url=cors_server.url,
        headers={"Origin": LMS, "Authorization": f"Bearer {token}"},
        timeout=30,
    )
    with page:
        users = page.get("/api/users")
        assert users.status_code == 200
        assert users.headers["access-control-allow-origin"] == LMS
        assert "access-control-allow-credentials" not in users.headers
        assert {"x-request-id", "retry-after", "content-disposition"} <= listed(
            users.headers["access-control-expose-headers"]
        )
        # an unsafe method from the allowed origin passes the same-origin check
        made = page.post("/api/tokens", json={"name": "from the lms"})
        assert made.status_code == 201, made.text
        assert made.headers["access-control-allow-origin"] == LMS
        gone = page.delete(f"/api/tokens/{made.json()['id']}")
        assert gone.status_code == 204 and gone.headers["access-control-allow-origin"] == LMS
        # errors are readable too, so the page can tell "log in again" from the rest
        bad = page.get("/api/users", headers={"Authorization": "Bearer sb_forged"})
        assert bad.status_code == 401 and bad.json()["code"] == "not_authenticated"
        assert bad.headers["access-control-allow-origin"] == LMS


def test_an_origin_not_in_the_list_gets_no_cors_headers(
    cors_server: ServerProcess, token: str
) -> None:
    pre = preflight(cors_server, "/api/users", EVIL, "GET")
    assert pre.status_code == 400 and cors_headers(pre) == {}
    bearer = {"Authorization": f"Bearer {token}"}
    read = httpx.get(cors_server.url + "/api/users", headers={**bearer, "Origin": EVIL})
    assert read.status_code == 200 and cors_headers(read) == {}  # the browser keeps it unread
    write = httpx.post(
        cors_server.url + "/api/tokens", json={"name": "x"}, headers={**bearer, "Origin": EVIL}
    )
    assert write.status_code == 403 and write.json()["code"] == "forbidden"
    assert write.json()["message"] == "cross-origin request refused"
    assert cors_headers(write) == {}
    # nor does the appliance's own origin (a same-origin page needs none)
    own = httpx.get(cors_server.url + "/api/users", headers={**bearer, "Origin": cors_server.url})
    assert own.status_code == 200 and cors_headers(own) == {}


def test_no_allowed_origins_means_no_cors_headers_at_all(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    for origin in (LMS, EVIL):
        pre = preflight(server, "/api/users", origin, "PATCH")
        assert cors_headers(pre) == {}, origin
        got = clients["admin"].get("/api/users", headers={"Origin": origin})
        assert got.status_code == 200 and cors_headers(got) == {}
        refused = clients["admin"].post(
            "/api/tokens", json={"name": "x"}, headers={"Origin": origin}
        )
        assert refused.status_code == 403 and cors_headers(refused) == {}


@pytest.mark.parametrize("who", ["anonymous", "admin"])
def test_options_without_an_origin_answers_allow_for_anyone(
    server: ServerProcess, clients: dict[str, httpx.Client], who: str
) -> None:
    client = httpx.Client(base_url=server.url, timeout=30) if who == "anonymous" else clients[who]
    for path in ("/api/courses", "/api/users", "/api/tokens/1"):
        answer = client.options(path)
        assert answer.status_code == 204, (who, path, answer.text)
        # the Allow of the route the request matched (a path whose methods Litestar keeps
        # as several routes lists those of one of them)
        assert "OPTIONS" in {m.upper() for m in listed(answer.headers["allow"])}, path
        assert cors_headers(answer) == {}
    if who == "anonymous":
        client.close()


@pytest.mark.parametrize(
    "origin", ["*", "https://*.example", "https://lms.example/app", "lms.example", ""]
)
def test_an_origin_that_is_not_scheme_host_port_is_a_config_error(
    tmp_path: Path, origin: str
) -> None:
    """No wildcard, path or bare host: CORS and the same-origin check would read it apart."""
    environ = {
        "SALESBOOST__PATHS__STATE_DIR": str(tmp_path),
        "SALESBOOST__SERVER__ALLOWED_ORIGINS": json.dumps([origin]),
    }
    with pytest.raises(ConfigError) as refused:
        load_settings(None, environ=environ)
    assert "server.allowed_origins" in str(refused.value)
    environ["SALESBOOST__SERVER__ALLOWED_ORIGINS"] = json.dumps([f"{LMS}:443/", OTHER_ALLOWED])
    assert load_settings(None, environ=environ).settings.server.allowed_origins
