"""Auth flows against the real server: login, wrong password, lockout, logout, tokens, disable, audit."""

from __future__ import annotations

import uuid

import httpx
import pytest
from appliance.testing import ServerProcess

from tests.conftest import PASSWORD, Account, login


def new_user(admin: httpx.Client, role: str = "trainee", team: str = "alpha") -> Account:
    name = f"u{uuid.uuid4().hex[:10]}"
    r = admin.post(
        "/api/users", json={"username": name, "role": role, "team": team, "password": PASSWORD}
    )
    assert r.status_code == 201, r.text
    return Account(name, role, team)


def audit(admin: httpx.Client, action: str) -> list[dict[str, object]]:
    r = admin.get("/api/audit", params={"action": action})
    assert r.status_code == 200, r.text
    rows: list[dict[str, object]] = r.json()
    return rows


def test_login_me_logout(server: ServerProcess, clients: dict[str, httpx.Client]) -> None:
    account = new_user(clients["admin"])
    client = login(server, account)
    cookie = client.cookies.get("session")
    assert cookie
    me = client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == account.username
    assert me.json()["role"] == "trainee"
    assert client.post("/api/auth/logout").status_code == 204
    assert client.get("/api/auth/me").status_code == 401
    # the old cookie is dead on the server, not just forgotten by this client
    replay = httpx.get(server.url + "/api/auth/me", cookies={"session": cookie})
    assert replay.status_code == 401
    assert any(row["actor"] == account.username for row in audit(clients["admin"], "login"))
    assert any(row["actor"] == account.username for row in audit(clients["admin"], "logout"))


def test_session_cookie_flags(server: ServerProcess, clients: dict[str, httpx.Client]) -> None:
    account = new_user(clients["admin"])
    r = httpx.post(
        server.url + "/api/auth/login",
        json={"username": account.username, "password": account.password},
    )
    header = r.headers["set-cookie"].lower()
    assert "httponly" in header
    assert "samesite=strict" in header


def test_wrong_password_and_unknown_user_look_the_same(
    anon: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    account = new_user(clients["admin"])
    wrong = anon.post(
        "/api/auth/login", json={"username": account.username, "password": "nope-nope-nope"}
    )
    missing = anon.post(
        "/api/auth/login", json={"username": "no-such-user-x", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == missing.status_code == 401
    assert (
        wrong.json()
        == missing.json()
        == {"code": "invalid_credentials", "message": "invalid username or password"}
    )
    rows = audit(clients["admin"], "login_failed")
    assert any(row["target"] == account.username for row in rows)


def test_lockout_with_retry_after(
    server: ServerProcess, anon: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    account = new_user(clients["admin"])
    bad = {"username": account.username, "password": "wrong-password-1"}
    codes = [anon.post("/api/auth/login", json=bad).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 401, 429]
    locked = anon.post("/api/auth/login", json={"username": account.username, "password": PASSWORD})
    assert locked.status_code == 429, "the right password must not get through a lockout"
    assert locked.json()["code"] == "locked_out"
    assert 1 <= int(locked.headers["retry-after"]) <= 300
    # another user from the same address is not locked
    other = new_user(clients["admin"])
    login(server, other).close()
    assert any(row["target"] == account.username for row in audit(clients["admin"], "login_locked"))


def test_api_token_lifecycle(server: ServerProcess, clients: dict[str, httpx.Client]) -> None:
    account = new_user(clients["admin"], role="manager")
    client = login(server, account)
    created = client.post("/api/tokens", json={"name": "ci script"})
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    token_id = created.json()["id"]
    assert token.startswith("sb_")
    bearer = {"Authorization": f"Bearer {token}"}
    me = httpx.get(server.url + "/api/auth/me", headers=bearer)
    assert me.status_code == 200 and me.json()["username"] == account.username
    listed = client.get("/api/tokens").json()
    assert [t["name"] for t in listed] == ["ci script"]
    assert token not in client.get("/api/tokens").text  # shown once, never again
    assert (
        httpx.get(
            server.url + "/api/auth/me", headers={"Authorization": "Bearer sb_forged"}
        ).status_code
        == 401
    )
    assert (
        httpx.get(server.url + "/api/auth/me", headers={"Authorization": "Basic abc"}).status_code
        == 401
    )
    # logout is for a browser session: with a token it says so (QA: it answered 204 and the
    # token went on working), and the token still works
    out = httpx.post(server.url + "/api/auth/logout", headers=bearer)
    assert out.status_code == 400 and out.json()["detail"]["reason"] == "token_not_session"
    assert "DELETE /api/tokens/" in out.json()["message"]
    assert httpx.get(server.url + "/api/auth/me", headers=bearer).status_code == 200
    # another user cannot revoke it
    assert clients["trainee"].delete(f"/api/tokens/{token_id}").status_code == 404
    assert client.delete(f"/api/tokens/{token_id}").status_code == 204
    assert httpx.get(server.url + "/api/auth/me", headers=bearer).status_code == 401
    assert any(
        row["target"] == f"token:{token_id}" for row in audit(clients["admin"], "token_deleted")
    )


def test_disable_ends_cookie_and_token_at_once(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    admin = clients["admin"]
    account = new_user(admin)
    client = login(server, account)
    token = client.post("/api/tokens", json={"name": "t"}).json()["token"]
    me = admin.get("/api/users").json()
    user_id = next(u["id"] for u in me if u["username"] == account.username)
    r = admin.patch(f"/api/users/{user_id}", json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert client.get("/api/auth/me").status_code == 401
    assert (
        httpx.get(
            server.url + "/api/auth/me", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 401
    )
    relog = httpx.post(
        server.url + "/api/auth/login", json={"username": account.username, "password": PASSWORD}
    )
    assert relog.status_code == 401
    assert any(row["target"] == f"user:{account.username}" for row in audit(admin, "user_disabled"))
    # re-enabled: may log in again, old sessions stay dead
    admin.patch(f"/api/users/{user_id}", json={"disabled": False})
    assert client.get("/api/auth/me").status_code == 401
    login(server, account).close()


def test_role_change_and_reset_password(
    server: ServerProcess, clients: dict[str, httpx.Client]
) -> None:
    admin = clients["admin"]
    account = new_user(admin)
    client = login(server, account)
    user_id = client.get("/api/auth/me").json()["id"]
    r = admin.patch(f"/api/users/{user_id}", json={"role": "manager", "team": "gamma"})
    assert r.json()["role"] == "manager" and r.json()["team"] == "gamma"
    assert client.get("/api/auth/me").status_code == 401, "a role change ends old sessions"
    rows = audit(admin, "role_changed")
    assert any(
        row["target"] == f"user:{account.username}"
        and row["detail"] == {"from": "trainee", "to": "manager"}
        for row in rows
    )
    reset = admin.post(f"/api/users/{user_id}/reset-password", json={})
    new_password = reset.json()["password"]
    assert len(new_password) >= 12
    fresh = login(server, Account(account.username, "manager", "gamma", new_password))
    me = fresh.get("/api/auth/me").json()
    assert me["must_change_password"] is True
    assert fresh.get("/api/tokens").json()["code"] == "password_change_required"
    changed = fresh.post(
        "/api/auth/password",
        json={"current_password": new_password, "new_password": "a brand new secret"},
    )
    assert changed.status_code == 200, changed.text
    assert fresh.get("/api/tokens").status_code == 200
    assert any(
        row["target"] == f"user:{account.username}" for row in audit(admin, "password_reset")
    )


def test_user_admin_validation(clients: dict[str, httpx.Client]) -> None:
    admin = clients["admin"]
    dup = admin.post(
        "/api/users", json={"username": "trainee1", "role": "trainee", "password": PASSWORD}
    )
    assert dup.status_code == 409 and dup.json()["code"] == "user_exists"
    bad_role = admin.post("/api/users", json={"username": "x1", "role": "overlord"})
    assert bad_role.status_code == 400 and bad_role.json()["code"] == "invalid_request"
    short = admin.post(
        "/api/users", json={"username": "x2", "role": "trainee", "password": "short"}
    )
    assert short.status_code == 400 and short.json()["code"] == "invalid_input"
    generated = admin.post(
        "/api/users", json={"username": f"g{uuid.uuid4().hex[:8]}", "role": "trainee"}
    )
    assert generated.status_code == 201 and len(generated.json()["password"]) >= 12
    assert generated.json()["user"]["must_change_password"] is True
    assert admin.get("/api/users/999999").status_code == 404


def test_last_admin_cannot_lock_everyone_out(clients: dict[str, httpx.Client]) -> None:
    admin = clients["admin"]
    users = admin.get("/api/users").json()
    admins = [u for u in users if u["role"] == "admin" and not u["disabled"]]
    if len(admins) != 1:
        pytest.skip("another admin exists in this session's database")
    r = admin.patch(f"/api/users/{admins[0]['id']}", json={"disabled": True})
    assert r.status_code == 409 and r.json()["code"] == "last_admin"
