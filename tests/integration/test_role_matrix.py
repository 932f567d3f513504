"""Every route the app registers declares who may call it, and the real server enforces it.

A route added later without ``opt=access(...)`` fails ``test_every_route_declares_access``;
one whose guard does not hold fails the matrix below.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from appliance.app import create_app
from appliance.auth.guards import ACCESS_LEVELS
from appliance.config import load_settings
from appliance.secrets import SecretStore
from appliance.testing import ServerProcess
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler, WebsocketRouteHandler

from tests.conftest import Account, add_user, login

RANK = {"anonymous": 0, "trainee": 1, "manager": 2, "admin": 3}
NEEDS = {"public": 0, "user": 1, "manager": 2, "admin": 3}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    state = tmp_path_factory.mktemp("matrix")
    settings = load_settings(
        None,
        environ={
            "SALESBOOST__PATHS__STATE_DIR": str(state),
            "SALESBOOST__SECRETS__KEYRING": "file",
        },
    ).settings
    store = SecretStore(settings)
    store.ensure_generated()
    return create_app(settings, store)


def routes(app: Litestar) -> Iterator[tuple[str, str, str | None]]:
    """(path, method, declared access) for every HTTP and WebSocket handler.

    HEAD and the OPTIONS handlers Litestar generates are skipped: the guard lets every
    generated OPTIONS handler through (it only lists the path's methods; see test_cors).
    """
    for route in app.routes:
        handlers = getattr(route, "route_handlers", None) or [route.route_handler]  # type: ignore[attr-defined]
        for handler in handlers:
            level = handler.opt.get("access")
            if isinstance(handler, HTTPRouteHandler):
                for method in sorted(handler.http_methods):
                    if method in ("HEAD", "OPTIONS"):
                        continue
                    yield route.path, method, level
            elif isinstance(handler, WebsocketRouteHandler):
                yield route.path, "WS", level


def test_every_route_declares_access(app: Litestar) -> None:
    found = list(routes(app))
    assert len(found) >= 15, "route enumeration found suspiciously few routes"
    assert any(method == "WS" for _, method, _ in found), "WebSocket routes must be enumerated too"
    missing = [(p, m) for p, m, level in found if level not in ACCESS_LEVELS]
    assert missing == [], f"routes without opt=access(...): {missing}"


def concrete(path: str) -> str:
    """Fill path parameters with a value that exists nowhere (so nothing is harmed)."""
    path = re.sub(r"\{[^}:]+:int\}", "999999", path)
    path = re.sub(r"\{[^}:]+:path\}", "nothing", path)
    return re.sub(r"\{[^}]+\}", "nothing", path)


@pytest.fixture(scope="module")
def role_clients(server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    """Fresh users of each role, so that calling logout in the matrix harms no other test."""
    made: dict[str, httpx.Client] = {"anonymous": httpx.Client(base_url=server.url, timeout=30)}
    for role in ("trainee", "manager", "admin"):
        account = Account(f"m{role[:3]}{uuid.uuid4().hex[:8]}", role, "alpha")
        add_user(server.state_dir, account)
        made[role] = login(server, account)
    yield made
    for client in made.values():
        client.close()


def test_role_matrix(app: Litestar, role_clients: dict[str, httpx.Client]) -> None:
    failures = []
    checked = 0
    for path, method, level in routes(app):
        if method == "WS" or level is None or path.startswith("/schema/"):
            continue
        url = concrete(path)
        for who, client in role_clients.items():
            if path == "/api/auth/logout" and who != "anonymous":
                continue  # would end the session the rest of the matrix uses; tested in test_auth
            response = client.request(
                method, url, json={} if method in ("POST", "PATCH", "PUT") else None
            )
            allowed = RANK[who] >= NEEDS[level]
            denied_as = 401 if who == "anonymous" else 403
            checked += 1
            if allowed and response.status_code in (401, 403):
                failures.append(f"{who} refused {method} {path} ({level}): {response.status_code}")
            if not allowed and response.status_code != denied_as:
                failures.append(
                    f"{who} got {response.status_code} on {method} {path} ({level}), wanted {denied_as}"
                )
    assert checked > 40
    assert failures == []


def test_websocket_routes_enforce_access(
    app: Litestar, server: ServerProcess, role_clients: dict[str, httpx.Client]
) -> None:
    """A refused socket is accepted, then closed 4401 (anonymous) or 4403 (role): a browser
    sees close codes, not handshake statuses. One allowed in stays open, or (a session id
    that exists nowhere) closes 4404."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    ws_routes = [(p, level) for p, m, level in routes(app) if m == "WS"]
    assert ws_routes
    for path, level in ws_routes:
        url = server.url.replace("http://", "ws://") + concrete(path)
        for who, client in role_clients.items():
            cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
            headers = {"Cookie": cookie} if cookie else {}
            allowed = RANK[who] >= NEEDS[str(level)]
            with connect(url, additional_headers=headers, open_timeout=10) as conn:
                try:
                    conn.recv(timeout=1)
                    code = None  # it sent something: open
                except TimeoutError:
                    code = None  # open and listening
                except ConnectionClosed as closed:
                    assert closed.rcvd is not None, (who, path)
                    code = closed.rcvd.code
            if not allowed:
                wanted = 4401 if who == "anonymous" else 4403
                assert code == wanted, f"{who} on WS {path} ({level}): closed {code}"
            else:
                assert code in (None, 4404), f"{who} on WS {path} ({level}): closed {code}"
