"""Shared fixtures: a real appliance on a loopback port with real users, shared per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from appliance.testing import ServerProcess, cli

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

PASSWORD = "correct horse battery"


@dataclass
class Account:
    """A user the suite created, with its password."""

    username: str
    role: str
    team: str
    password: str = PASSWORD


ACCOUNTS = {
    "admin": Account("admin1", "admin", "hq"),
    "manager": Account("manager1", "manager", "alpha"),
    "trainee": Account("trainee1", "trainee", "alpha"),
    "manager_b": Account("manager2", "manager", "beta"),
}


def add_user(state_dir: Path, account: Account) -> None:
    """Create a user through the real CLI."""
    result = cli(
        state_dir,
        "users",
        "add",
        account.username,
        "--role",
        account.role,
        "--team",
        account.team,
        "--password-stdin",
        stdin=account.password + "\n",
    )
    assert result.returncode == 0, result.stderr


def login(server: ServerProcess, account: Account) -> httpx.Client:
    """An httpx client holding a session cookie for the account."""
    client = httpx.Client(base_url=server.url, timeout=30)
    response = client.post(
        "/api/auth/login", json={"username": account.username, "password": account.password}
    )
    assert response.status_code == 200, response.text
    return client


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real appliance for the session (login rate limit raised: the suite logs in a lot)."""
    state = tmp_path_factory.mktemp("state")
    for account in ACCOUNTS.values():
        add_user(state, account)
    with ServerProcess(state, SALESBOOST__AUTH__LOGIN_RATE_PER_MINUTE="100000") as srv:
        yield srv


@pytest.fixture(scope="session")
def clients(server: ServerProcess) -> Iterator[dict[str, httpx.Client]]:
    """Logged-in clients by role name (admin, manager, trainee, manager_b)."""
    made = {name: login(server, account) for name, account in ACCOUNTS.items()}
    yield made
    for client in made.values():
        client.close()


@pytest.fixture
def anon(server: ServerProcess) -> Iterator[httpx.Client]:
    """A client with no credentials."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
