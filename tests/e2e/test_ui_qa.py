# ruff: noqa: RUF001 - Chinese UI text uses full-width punctuation on purpose
"""Regressions found by exploratory QA of the browser UI, used as a trainee, a manager and an
admin would use it (English and Chinese, desktop and tablet widths).

Each test names the defect it pins. The appliance and the browser are real; the one fault
injected on purpose (an LLM ``busy`` refusal on the practice socket) says so in its name.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, get_args

import httpx
from appliance.db.documents import DocState
from appliance.db.jobs import JobState
from appliance.practice.model import INTENTS, STAGES
from appliance.practice.stages import ALL_SLOTS
from appliance.testing import ServerProcess
from appliance.web.editors import RESOURCES
from appliance.web.i18n import STRINGS

from tests.conftest import Account
from tests.e2e.conftest import USERS, expect, login, shot
from tests.e2e.test_practice_ui import finished, start_practice

CJK = re.compile(r"[\u4e00-\u9fff]")
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def refuse_says(
    page: Any,
    code: str,
    message: str,
    retry_after: float | None = None,
    only_first: list[str] | None = None,
) -> None:
    """Fault injection: the page's practice socket gets an ``error`` refusing its ``say``
    (every one, or with ``only_first`` the first, whose id is appended to it); everything else
    goes to the real server."""

    def route(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_page(frame_text: str | bytes) -> None:
            frame = json.loads(frame_text) if isinstance(frame_text, str) else {}
            refuse = frame.get("type") == "say" and not (only_first is not None and only_first)
            if not refuse:
                server.send(frame_text)
                return
            if only_first is not None:
                only_first.append(frame["client_turn_id"])
            refusal = {
                "type": "error",
                "code": code,
                "message": message,
                "retry_after": retry_after,
                "client_turn_id": frame["client_turn_id"],
                "v": 1,
                "seq": 0,
                "at": 0.0,
            }
            ws.send(json.dumps(refusal))

        ws.on_message(from_page)

    page.route_web_socket(re.compile(r"/ws/practice/\d+$"), route)


def login_zh(page: Any, account: Account) -> None:
    """Log in through the Chinese login form (the browser asks for zh-CN)."""
    page.goto("/login")  # a fresh login page: no ?next=
    page.get_by_label("用户名").fill(account.username)
    page.get_by_label("密码").fill(account.password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(lambda url: "/login" not in url)


def test_admin_refusals_stay_on_screen_and_a_generated_password_stays(
    new_page: Callable[..., Any],
) -> None:
    """Disabling the last admin used to flash its refusal and reload it away; a refused role
    change left the select showing the refused role; a generated password vanished after 4 s."""
    page = new_page()
    login(page, USERS["admin"])
    admins = [
        u
        for u in page.request.get("/api/users").json()
        if u["role"] == "admin" and not u["disabled"]
    ]
    assert [u["username"] for u in admins] == [USERS["admin"].username], "needs a single admin"
    page.goto("/admin/users")
    row = page.locator(f'tr[data-username="{USERS["admin"].username}"]')
    msg = row.locator(".row-msg")

    row.locator("button.toggle").click()
    expect(msg).to_contain_text("last enabled admin")
    page.wait_for_timeout(1000)  # the page used to reload here, wiping the message
    expect(msg).to_contain_text("(last_admin)")
    expect(row.locator("button.toggle")).to_have_text("Disable")

    role = row.locator("select.role")
    role.select_option("trainee")
    expect(msg).to_contain_text("(last_admin)")
    expect(role).to_have_value("admin")  # back to what is stored

    name = f"qa-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Username", exact=True).fill(name)
    page.get_by_role("button", name="Create").click()
    password = page.locator("#new-password")
    expect(password).to_be_visible()
    page.wait_for_timeout(4500)  # it used to disappear in a reload after 4 s
    expect(password).to_be_visible()
    page.locator("#reload-users").click()
    expect(page.locator(f'tr[data-username="{name}"]')).to_be_visible()


def test_unknown_page_gets_the_html_error_page(
    new_page: Callable[..., Any], e2e_server: ServerProcess
) -> None:
    """A mistyped or stale link showed the API's raw JSON to a browser user."""
    page = new_page(locale="zh-CN")
    login_zh(page, USERS["trainee"])
    for path in ("/nope", "/practice/abc", "/editors/"):
        response = page.goto(path)
        assert response is not None and response.status == 404, path
        expect(page.locator("h1")).to_have_text("未找到")
        expect(page.locator("main a[href='/']")).to_have_text("返回首页")
        expect(page.locator("nav[aria-label='主导航']")).to_have_count(0)  # no user at routing
    shot(page, "uiqa-404-zh")
    # scripts and the API keep the JSON error shape
    for path, accept in (("/nope", "application/json"), ("/api/nope", "text/html")):
        answer = httpx.get(e2e_server.url + path, headers={"Accept": accept})
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"


def test_chinese_ui_translates_editor_fields_options_and_roles(
    new_page: Callable[..., Any],
) -> None:
    """The editors' field labels and select options, and the users page's roles, stayed in
    English in the Chinese UI; the values sent to the API must stay the API's."""
    page = new_page(locale="zh-CN")
    login_zh(page, USERS["manager"])
    for kind in RESOURCES:
        page.goto(f"/editors/{kind}")
        # field names (choices of other lists are the manager's own names, not UI text)
        labels = page.locator("#item-form .field > label, #item-form legend").all_inner_texts()
        untranslated = [x for x in labels if not CJK.search(x)]
        assert untranslated == [], (kind, untranslated)
        options = page.locator("#item-form select:not([data-source]) option").all_inner_texts()
        assert [x for x in options if not CJK.search(x)] == [], (kind, options)

    # a scenario's references are picked by name; the "none" choice is translated
    page.goto("/editors/scenarios")
    expect(page.locator("#f-product_id option").first).to_have_text("（无）")
    expect(page.locator("#f-product_id option", has_text="极光白金卡")).to_have_count(1)
    expect(page.locator("#f-persona_ids label.check").first).to_be_visible()

    page.goto("/editors/personas")
    expect(page.locator("#f-difficulty")).to_have_value("medium")
    name = f"张女士 {uuid.uuid4().hex[:4]}"
    page.get_by_label("名称 *").fill(name)
    page.get_by_label("描述 *").fill("一位谨慎的客户，会比较每一项费用。")
    page.get_by_label("难度").select_option(label="困难")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("#form-status")).to_have_text("已保存。")
    saved = [p for p in page.request.get("/api/personas").json() if p["name"] == name]
    assert [p["difficulty"] for p in saved] == ["hard"]
    page.request.delete(f"/api/personas/{saved[0]['id']}")
    # the API's refusal reads in the UI language (its code kept for support)
    page.goto("/editors/personas")
    page.get_by_label("名称 *").fill(name + " 2")
    page.get_by_label("描述 *").fill("情绪超出范围。")
    page.locator("#f-initial_mood").fill("5")
    page.get_by_role("button", name="保存").click()
    expect(page.locator("#form-error")).to_have_text(  # the field named by its label
        "初始情绪（0-1）: 超出允许的范围。 (out_of_range)"
    )

    admin = new_page(locale="zh-CN")
    login_zh(admin, USERS["admin"])
    admin.goto("/admin/users")
    select = admin.locator(f'tr[data-username="{USERS["trainee"].username}"] select.role')
    expect(select).to_have_value("trainee")
    assert select.locator("option").all_inner_texts() == ["学员", "主管", "管理员"]
    # the last admin's own refusal reads in Chinese too (its own code, not a bare "conflict")
    own = admin.locator(f'tr[data-username="{USERS["admin"].username}"]')
    own.locator("button.toggle").click()
    expect(own.locator(".row-msg")).to_contain_text("不能停用或降级最后一位启用的管理员")


def test_long_unbroken_text_wraps_at_tablet_width(new_page: Callable[..., Any]) -> None:
    """A scenario whose text holds a long URL or part number widened the page (2000+ px of
    sideways scrolling on a tablet)."""
    manager = new_page(width=768, height=1024)
    login(manager, USERS["manager"])
    long = "https://intranet.example/" + "x" * 300
    made = manager.request.post(
        "/api/scenarios",
        data={
            "name": "Part " + "N" * 120,
            "description": "See " + long,
            "objective": "Quote " + long,
            "language": "en",
            "rubric_id": manager.request.get("/api/rubrics").json()[0]["id"],
        },
    )
    assert made.status == 201, made.text()
    scenario_id = made.json()["id"]
    try:
        manager.goto("/editors/scenarios")
        expect(manager.locator("#items button", has_text="Part NNN")).to_be_visible()
        assert manager.evaluate(OVERFLOW) <= 0
        trainee = new_page(width=768, height=1024)
        login(trainee, USERS["trainee"])
        demo = next(
            s
            for s in trainee.request.get("/api/scenarios").json()
            if s.get("persona_ids") and s["id"] != scenario_id
        )
        started = trainee.request.post(
            "/api/sessions",
            data={"scenario_id": demo["id"], "persona_id": demo["persona_ids"][0]},
        )
        assert started.status == 201, started.text()  # a row with a "Resume" link
        trainee.goto("/home")
        expect(trainee.locator(f'article.scenario[data-scenario="{scenario_id}"]')).to_be_visible()
        shot(trainee, "uiqa-long-text-tablet")
        assert trainee.evaluate(OVERFLOW) <= 0
        # a session row's link is one word on one line ("Repo / rt" broke in the narrow column)
        broken = trainee.evaluate(
            "() => [...document.querySelectorAll('table.data td a')]"
            ".filter(a => a.getClientRects().length > 1).map(a => a.textContent)"
        )
        assert broken == [], broken
        trainee.request.post(f"/api/sessions/{started.json()['id']}/end")
    finally:
        manager.request.delete(f"/api/scenarios/{scenario_id}")


def test_busy_note_fault_injected_clears_once_answered_in_chinese(
    new_page: Callable[..., Any],
) -> None:
    """Fault injection: the first ``say`` is answered with an LLM ``busy`` refusal, as a full
    queue answers it. The page used to show the server's English message and keep it on screen
    after the retried line was answered; stages and difficulty were English in the Chinese UI."""
    page = new_page(locale="zh-CN")
    injected: list[str] = []
    refuse_says(
        page,
        "busy",
        "the language model is busy (fault injected)",
        retry_after=1.0,
        only_first=injected,
    )
    login_zh(page, USERS["trainee2"])
    start_practice(page)
    expect(page.locator("#stages li").first).to_have_text("开场")
    expect(page.locator("#persona-name")).to_contain_text(re.compile("简单|中等|困难"))

    page.locator("#say").fill("您好，我是银行的客户经理小李。")
    page.locator("#say").press("Enter")
    error = page.locator("#chat-error")
    expect(error).to_contain_text("秒后自动重新发送")
    turn = finished(page, 0)  # sent again by the page itself, answered by the real model
    expect(error).to_be_empty()
    # the intent tag reads in Chinese ("unclear" shows none)
    expect(turn.locator(".msg.customer .who")).to_have_text(
        re.compile("^客户( · [\u4e00-\u9fff]+)?$")
    )
    assert len(injected) == 1
    shot(page, "uiqa-busy-retried-zh")


def test_every_stage_slot_intent_state_and_editor_field_has_a_chinese_name() -> None:
    """The practice page, the editors and the tables name these by key; each needs a UI string."""
    keys = [
        *(f"stage_{s}" for s in STAGES),
        *(f"slot_{s}" for s in ALL_SLOTS),
        *(f"intent_{i}" for i in INTENTS),
        *(f"fld_{f.key}" for r in RESOURCES.values() for f in r.fields),
        *(f"opt_{o}" for r in RESOURCES.values() for f in r.fields for o in f.options),
        *(f"state_{s}" for s in (*get_args(DocState), *get_args(JobState), "active", "ended")),
    ]
    assert [k for k in keys if k not in STRINGS["zh"]] == []


def test_login_and_password_errors_in_the_ui_language(new_page: Callable[..., Any]) -> None:
    """The Chinese login form showed the API's English (and, for empty fields, a msgspec
    message about `str` lengths); the password form likewise."""
    page = new_page(locale="zh-CN")
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
    page.goto("/login")
    error = page.locator("#form-error")
    page.get_by_role("button", name="登录").click()
    expect(error).to_have_text("请输入用户名和密码。")
    expect(page.get_by_label("用户名")).to_be_focused()
    assert posted == []  # refused before anything was sent
    page.get_by_label("用户名").fill(f"nobody-{uuid.uuid4().hex[:6]}")
    page.get_by_label("密码").fill("not the password")
    page.get_by_role("button", name="登录").click()
    expect(error).to_have_text("用户名或密码错误。")

    login_zh(page, USERS["trainee"])
    # the Chinese UI lists the Chinese scenarios first (they came after the English ones)
    expect(page.locator("article.scenario").first).to_have_attribute("data-language", "zh")
    page.goto("/password")
    page.get_by_role("button", name="保存").click()
    expect(error).to_have_text("请填写全部三个密码框。")
    page.get_by_label("当前密码").fill("not the password")
    page.get_by_label("新密码", exact=True).fill("another long passphrase 7")
    page.get_by_label("再次输入新密码").fill("another long passphrase 7")
    page.get_by_role("button", name="保存").click()
    expect(error).to_have_text("当前密码不正确。")


def test_language_switch_keeps_where_the_user_was_going(new_page: Callable[..., Any]) -> None:
    """The switch link was a bare ``?lang=``: on /login?next=/history it dropped ``next`` (the
    user landed on the start page after logging in), on a cited document page it dropped ``page``."""
    page = new_page()
    page.goto("/history")
    page.wait_for_url(lambda url: "/login?next=" in url)
    page.locator("#lang-switch").click()
    page.wait_for_url(lambda url: "lang=zh" in url)
    assert "next=%2Fhistory" in page.url
    page.get_by_label("用户名").fill(USERS["trainee"].username)
    page.get_by_label("密码").fill(USERS["trainee"].password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url("**/history")
    expect(page.locator("h1")).to_have_text("练习历史")
    docs = page.request.get("/api/knowledge/documents").json()
    document_id = (docs["items"] if isinstance(docs, dict) else docs)[0]["id"]
    page.goto(f"/knowledge/documents/{document_id}?page=1")
    page.locator("#lang-switch").click()
    page.wait_for_url(lambda url: "lang=en" in url)
    assert "page=1" in page.url
    expect(page.locator("#page-text")).to_contain_text("Text of page")


def test_reset_password_and_revoke_token_ask_first(browser: Any, e2e_server: ServerProcess) -> None:
    """One click on "Reset password" replaced a user's password, and one on "Revoke" killed a
    token, with no way back; both now ask, and declining changes nothing."""
    context = browser.new_context(base_url=e2e_server.url, locale="en-US")
    asked: list[str] = []

    def decline(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    try:
        page = context.new_page()
        page.on("dialog", decline)
        login(page, USERS["admin"])
        page.goto("/admin/users")
        victim = USERS["trainee2"]
        row = page.locator(f'tr[data-username="{victim.username}"]')
        row.locator("button.reset").click()
        page.wait_for_timeout(500)  # what a yes would have done by now
        expect(row.locator(".row-msg")).to_be_empty()
        assert asked and victim.username in asked[-1], asked
        answer = httpx.post(
            e2e_server.url + "/api/auth/login",
            json={"username": victim.username, "password": victim.password},
        )
        assert answer.status_code == 200, answer.text  # the password still works

        made = page.request.post("/api/tokens", data={"name": "qa-keep-me"}).json()
        page.goto("/tokens")
        page.locator(f'button.revoke[data-token="{made["id"]}"]').click()
        page.wait_for_timeout(500)
        assert "qa-keep-me" in asked[-1], asked
        expect(page.locator(f'button.revoke[data-token="{made["id"]}"]')).to_be_visible()
        assert made["id"] in [t["id"] for t in page.request.get("/api/tokens").json()]
        page.request.delete(f"/api/tokens/{made['id']}")
    finally:
        context.close()


def test_refused_line_fault_injected_goes_back_to_the_input_in_chinese(
    new_page: Callable[..., Any],
) -> None:
    """Fault injection: the server refuses the line (``turn_in_progress``, as when another
    window of the session is mid-turn). The line must come back to the input, nothing is left
    pending, and the reason is in the UI's language (it was the server's English)."""
    page = new_page(locale="zh-CN")
    refuse_says(page, "turn_in_progress", "a turn of this session is still being generated")
    login_zh(page, USERS["trainee"])
    start_practice(page)
    line = "我想了解一下免年费的条件。"
    page.locator("#say").fill(line)
    page.locator("#say").press("Enter")
    expect(page.locator("#chat-error")).to_contain_text("客户还在回答你的上一句话")
    expect(page.locator("#say")).to_have_value(line)
    expect(page.locator("#transcript li.turn")).to_have_count(0)
    expect(page.locator("#send")).to_be_enabled()


def test_a_line_left_pending_in_a_session_ended_elsewhere_goes_back_to_the_input(
    new_page: Callable[..., Any],
) -> None:
    """A line said while offline (kept in sessionStorage) in a session that was then ended in
    another tab: once the log is replayed the page gives the line back instead of showing it
    as waiting forever. (No turn was taken, so the end writes its unscored report at once.)"""
    page = new_page()
    login(page, USERS["trainee"])
    session_id = start_practice(page)
    line = "Could you tell me more about the travel insurance?"
    pending = {"id": uuid.uuid4().hex, "text": line}
    page.evaluate(
        "([key, value]) => sessionStorage.setItem(key, value)",
        [f"sb-pending-{session_id}", json.dumps(pending)],
    )
    ended = page.request.post(
        f"/api/sessions/{session_id}/end", headers={"Origin": page.url.split("/practice")[0]}
    )
    assert ended.ok, ended.text()
    page.reload()
    expect(page.locator("#chat-error")).to_contain_text("the session had ended")
    expect(page.locator("#say")).to_have_value(line)
    expect(page.locator("#transcript li.pending")).to_have_count(0)
    assert page.evaluate(f"sessionStorage.getItem('sb-pending-{session_id}')") is None
