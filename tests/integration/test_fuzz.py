"""Every operation of the OpenAPI schema, fuzzed: bad input is a typed 4xx, never a 500.

Schemathesis generates requests from the appliance's own schema (`/schema/openapi.json`):
values at and past every bound, wrong types, odd unicode, missing and extra fields. Its
first run found every id route answering 500 for an id past SQLite's 64-bit integers. The
generation is deterministic and the run is capped at two minutes (about 9,000 requests on the
2-core box); it runs as an admin with an API token
against its own server, leaving out the calls that would end that admin's access (logout,
password change, changing or disabling users, revoking tokens).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from appliance.testing import ServerProcess

from tests.conftest import Account, add_user, login

pytestmark = pytest.mark.timeout(900)

ADMIN = Account("fuzz-admin", "admin", "hq")
LEFT_OUT = r"^/schema|^/metrics|/api/auth/(logout|password)|/api/users/\{user_id\}|/api/tokens/"


def test_no_operation_answers_500_to_generated_input(tmp_path: Path) -> None:
    state = tmp_path / "state"
    add_user(state, ADMIN)
    with ServerProcess(state, SALESBOOST__AUTH__API_RATE_PER_MINUTE="1000000") as server:
        client = login(server, ADMIN)
        token = client.post(
            "/api/tokens", json={"name": "fuzz"}, headers={"Origin": server.url}
        ).json()["token"]
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "schemathesis.cli",
                "run",
                f"{server.url}/schema/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--header",
                f"Origin: {server.url}",
                "--checks",
                "not_a_server_error",
                "--phases",
                "fuzzing",
                "--max-examples",
                "3",
                "--seed",
                "1",
                "--generation-deterministic",
                "--workers",
                "1",
                "--exclude-path-regex",
                LEFT_OUT,
                "--request-timeout",
                "60",
                "--max-time",
                "120",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            cwd=tmp_path,
        )
        log = server.log_path.read_text()
    assert run.returncode == 0, run.stdout[-6000:]
    assert "Tested: " in run.stdout, run.stdout  # it ran (an empty selection also exits 0)
    assert '"unhandled error"' not in log, log[-4000:]
