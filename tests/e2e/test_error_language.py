# ruff: noqa: RUF001 - Chinese UI text uses full-width punctuation on purpose
"""QA found the Chinese UI showing the server's English error messages wherever a code had no
sentence of its own: a short password, a failed upload, a missing page. Each test here opens
the page in Chinese, makes the error happen for real, and reads what the user is shown.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.conftest import USERS, expect, shot
from tests.e2e.test_ui_qa import login_zh


def test_a_short_password_is_refused_in_chinese_with_the_minimum(
    new_page: Callable[..., Any],
) -> None:
    page = new_page(locale="zh-CN")
    login_zh(page, USERS["admin"])
    page.goto("/admin/users")
    page.locator("#new-username").fill(f"short-{uuid.uuid4().hex[:6]}")
    page.locator("#new-password-input").fill("abc")
    page.locator("#new-user button[type=submit], form button[type=submit]").first.click()
    error = page.locator("#user-error")
    expect(error).to_have_text("密码至少需要 10 个字符。 (invalid_input)")
    shot(page, "error-zh-short-password")


def test_a_failed_upload_and_its_document_page_say_why_in_chinese(
    new_page: Callable[..., Any], tmp_path: Path
) -> None:
    empty = tmp_path / f"empty-{uuid.uuid4().hex[:6]}.txt"
    empty.write_bytes(b"")
    page = new_page(locale="zh-CN")
    login_zh(page, USERS["manager"])
    page.goto("/knowledge")
    page.set_input_files("#files", [str(empty)])
    row = page.locator(f'#uploads li[data-filename="{empty.name}"]')
    expect(row).to_have_attribute("data-state", "failed", timeout=120_000)
    label = row.locator(".state")
    expect(label).to_have_text("失败: 文件中没有找到文字。")
    assert "the file is empty" in (label.get_attribute("title") or "")  # the server's words
    page.goto("/knowledge")
    page.locator("#docs td a", has_text=empty.stem).first.click()
    state = page.locator("#document-state")
    expect(state).to_contain_text("文件中没有找到文字。")
    expect(state).to_contain_text("提取文字")  # the stage it failed in, not "extract"
    assert "the file is empty" not in state.inner_text()


def test_a_missing_session_page_says_so_in_chinese_with_the_details_folded(
    new_page: Callable[..., Any],
) -> None:
    page = new_page(locale="zh-CN")
    login_zh(page, USERS["manager"])
    page.goto("/observe/987654")
    alert = page.locator("p.error[role=alert]")
    expect(alert).to_contain_text("找不到")
    assert "does not exist" not in alert.inner_text()
    details = page.locator("details")
    expect(details.locator("summary")).to_have_text("详细信息（服务器原文）")
    shot(page, "error-zh-missing-session")


def test_field_errors_name_the_label_the_form_shows(new_page: Callable[..., Any]) -> None:
    """SB.describe on a Chinese page: the field's label, not its JSON key; msgspec's own
    messages ("at `$.x`", "missing required field `x`") name the field too."""
    page = new_page(locale="zh-CN")
    login_zh(page, USERS["manager"])
    page.goto("/editors/rubrics")
    said = page.evaluate(
        """() => [
          [400, {code: "invalid_weight", message: "x", detail: {field: "dimensions[0].weight"}}],
          [400, {code: "invalid_request", message: "Object missing required field `description`"}],
          [400, {code: "invalid_request", message: "Expected `float`, got `str` - at `$.dimensions[1].weight`"}],
          [422, {code: "no_such_code_yet", message: "the server's words"}],
        ].map(([status, body]) => SB.describe(new SB.ApiError(status, body)))"""
    )
    assert said == [
        "评分维度[0].weight: 权重必须大于 0。 (invalid_weight)",
        "描述: 提交的内容缺少必填项，或有值的类型不对。 (invalid_request)",
        "评分维度[1].weight: 提交的内容缺少必填项，或有值的类型不对。 (invalid_request)",
        "the server's words (no_such_code_yet)",  # no sentence yet: the server's, not nothing
    ]
