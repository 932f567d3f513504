"""``metrics.public = false``: /metrics for admins only, by token or by cookie.

QA (integrator pass, read off the code): /metrics skipped the session and auth middleware, so
with ``metrics.public`` off the admin guard never saw a login and refused everyone, the admin's
Prometheus scraper with its token included. A real server with the setting off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from appliance.testing import ServerProcess

from tests.conftest import Account, add_user, login

ADMIN = Account("mp-admin", "admin", "hq")
TRAINEE = Account("mp-trainee", "trainee", "alpha")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    state: Path = tmp_path_factory.mktemp("metrics-private")
    add_user(state, ADMIN)
    add_user(state, TRAINEE)
    with ServerProcess(state, SALESBOOST__METRICS__PUBLIC="false") as srv:
        yield srv


def test_private_metrics_answer_an_admin_token_and_cookie_and_no_one_else(
    server: ServerProcess,
) -> None:
    assert httpx.get(f"{server.url}/metrics", timeout=30).status_code == 401
    with closing(login(server, ADMIN)) as admin, closing(login(server, TRAINEE)) as trainee:
        assert trainee.get("/metrics").status_code == 403
        by_cookie = admin.get("/metrics")
        assert by_cookie.status_code == 200, by_cookie.text
        assert "salesboost_requests_total" in by_cookie.text
        token = admin.post("/api/tokens", json={"name": "prometheus"}).json()["token"]
    scraped = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain")
    # the probes still need no login
    assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
