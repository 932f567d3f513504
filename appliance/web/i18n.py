# ruff: noqa: RUF001 - Chinese UI strings use full-width punctuation on purpose
"""UI strings in English and Chinese, and which language a request gets.

The choice, strongest first: ``?lang=`` (remembered in a ``lang`` cookie), the cookie, then
the browser's ``Accept-Language``; English when nothing matches.
"""

from __future__ import annotations

from typing import Literal

UiLanguage = Literal["en", "zh"]
LANGUAGES: tuple[UiLanguage, ...] = ("en", "zh")

# key: (English, Chinese)
_STRINGS: dict[str, tuple[str, str]] = {
    "app": ("SalesBoost", "SalesBoost 销售陪练"),
    "skip": ("Skip to content", "跳到正文"),
    "nav_home": ("Practice", "练习"),
    "nav_history": ("History", "历史"),
    "nav_team": ("Team", "团队"),
    "nav_live": ("Live sessions", "实时会话"),
    "nav_editors": ("Content", "内容配置"),
    "nav_knowledge": ("Knowledge", "知识库"),
    "nav_users": ("Users", "用户"),
    "nav_tokens": ("API tokens", "API 令牌"),
    "nav_system": ("System", "系统"),
    "logout": ("Log out", "退出"),
    "language": ("Language", "语言"),
    "login_title": ("Log in", "登录"),
    "username": ("Username", "用户名"),
    "password": ("Password", "密码"),
    "login_button": ("Log in", "登录"),
    "password_title": ("Change your password", "修改密码"),
    "password_must": (
        "You must choose a new password before you continue.",
        "继续之前必须设置新密码。",
    ),
    "current_password": ("Current password", "当前密码"),
    "new_password": ("New password", "新密码"),
    "repeat_password": ("Repeat the new password", "再次输入新密码"),
    "passwords_differ": ("The two new passwords differ.", "两次输入的新密码不一致。"),
    "save": ("Save", "保存"),
    "saved": ("Saved.", "已保存。"),
    "create": ("Create", "创建"),
    "delete": ("Delete", "删除"),
    "cancel": ("Cancel", "取消"),
    "new": ("New", "新建"),
    "edit": ("Edit", "编辑"),
    "loading": ("Loading…", "加载中…"),
    "none_yet": ("Nothing here yet.", "暂无内容。"),
    "home_title": ("Practice", "开始练习"),
    "scenarios": ("Scenarios", "场景"),
    "persona": ("Customer", "客户"),
    "start": ("Start practice", "开始练习"),
    "recent_scores": ("Recent sessions", "最近的练习"),
    "date": ("Date", "日期"),
    "scenario": ("Scenario", "场景"),
    "state": ("State", "状态"),
    "score": ("Score", "得分"),
    "turns": ("Turns", "轮次"),
    "open": ("Open", "打开"),
    "resume": ("Resume", "继续"),
    "report": ("Report", "报告"),
    "practice_title": ("Practice session", "练习会话"),
    "observe_title": ("Observing a session", "旁听会话"),
    "observe_note": ("Read-only live view.", "只读实时视图。"),
    "observed_by": ("Your manager is watching this session:", "主管正在旁听本次练习："),
    "stage": ("Stage", "阶段"),
    "slots": ("Slots", "信息槽"),
    "mood": ("Mood", "情绪"),
    "coach": ("Coach", "教练"),
    "coach_empty": ("Tips appear here after each turn.", "每轮对话后这里会出现建议。"),
    "example": ("Try saying", "可以这样说"),
    "sources": ("Sources", "来源"),
    "page": ("page", "页"),
    "page_text": ("Text of page", "页面文本 · 页码"),
    "page_text_none": (
        "No stored text covers this page (not ingested yet, or nothing was read from it).",
        "没有覆盖此页的已存文本（尚未处理，或此页未读出文字）。",
    ),
    "your_line": ("Your line", "你的回答"),
    "send": ("Send", "发送"),
    "end_session": ("End session", "结束练习"),
    "end_confirm": ("End this session and get the report?", "结束本次练习并生成报告？"),
    "reconnecting": ("Connection lost: reconnecting…", "连接已断开，正在重连…"),
    "reconnected": ("Reconnected.", "已重新连接。"),
    "ended": ("Session ended. Writing the report…", "练习已结束，正在生成报告…"),
    "report_ready": ("The report is ready.", "报告已生成。"),
    "view_report": ("View the report", "查看报告"),
    "you": ("You", "你"),
    "customer": ("Customer", "客户"),
    "compliance": ("Compliance", "合规"),
    "history_title": ("History", "练习历史"),
    "trend": ("Score trend", "得分趋势"),
    "no_reports": ("No reports yet: finish a practice session.", "暂无报告：请先完成一次练习。"),
    "team_title": ("Team dashboard", "团队看板"),
    "trainee": ("Trainee", "学员"),
    "overall": ("Overall", "总分"),
    "reports": ("Reports", "报告数"),
    "not_scored": ("not scored", "未评分"),
    "live_title": ("Live sessions", "进行中的会话"),
    "observe": ("Observe", "旁听"),
    "no_live": ("No session is running.", "当前没有进行中的会话。"),
    "editors_title": ("Content", "内容配置"),
    "scenarios_t": ("Scenarios", "场景"),
    "personas_t": ("Personas", "客户画像"),
    "rubrics_t": ("Rubrics", "评分标准"),
    "products_t": ("Products", "产品"),
    "rules_t": ("Compliance rules", "合规规则"),
    "list_hint": ("one per line", "每行一项"),
    "json_hint": ("JSON", "JSON"),
    "knowledge_title": ("Knowledge library", "知识库"),
    "drop_here": (
        "Drop files here, or choose them (PDF, Word, Excel, HTML, text, images)",
        "把文件拖到这里，或点击选择（PDF、Word、Excel、HTML、文本、图片）",
    ),
    "choose_files": ("Choose files", "选择文件"),
    "collection": ("Collection", "集合"),
    "upload": ("Upload", "上传"),
    "documents": ("Documents", "文档"),
    "title": ("Title", "标题"),
    "route": ("Route", "处理路径"),
    "pages": ("Pages", "页数"),
    "chunks": ("Chunks", "分块"),
    "search": ("Search", "搜索"),
    "search_label": ("Search the knowledge base", "搜索知识库"),
    "no_results": ("No results.", "没有结果。"),
    "document_title": ("Document", "文档"),
    "versions": ("Versions", "版本"),
    "warnings": ("Warnings", "警告"),
    "users_title": ("Users", "用户"),
    "role": ("Role", "角色"),
    "team": ("Team", "团队"),
    "display_name": ("Display name", "显示名"),
    "disabled": ("Disabled", "已停用"),
    "disable": ("Disable", "停用"),
    "enable": ("Enable", "启用"),
    "reset_password": ("Reset password", "重置密码"),
    "password_optional": ("Password (empty: generate one)", "密码（留空则自动生成）"),
    "generated_password": (
        "Password (shown once; must be changed at first login):",
        "密码（只显示一次，首次登录须修改）：",
    ),
    "tokens_title": ("API tokens", "API 令牌"),
    "token_name": ("Token name", "令牌名称"),
    "token_once": ("Copy this token now: it is not shown again.", "请立即复制令牌：它不会再显示。"),
    "revoke": ("Revoke", "吊销"),
    "name": ("Name", "名称"),
    "created": ("Created", "创建时间"),
    "last_used": ("Last used", "最近使用"),
    "system_title": ("System", "系统"),
    "readiness": ("Readiness", "就绪检查"),
    "doctor": ("Doctor", "诊断"),
    "llm": ("Language model", "语言模型"),
    "queue_depth": ("Queue depth", "排队数"),
    "active_sequences": ("Active sequences", "运行中序列"),
    "breaker": ("Breaker", "熔断器"),
    "check": ("Check", "检查项"),
    "status": ("Status", "状态"),
    "detail": ("Detail", "详情"),
    "error_title": ("Something went wrong", "出错了"),
    "back_home": ("Back to the start page", "返回首页"),
    "not_found": ("Not found", "未找到"),
    "forbidden": ("Not allowed for your role", "你的角色无权访问"),
}

STRINGS: dict[UiLanguage, dict[str, str]] = {
    "en": {k: v[0] for k, v in _STRINGS.items()},
    "zh": {k: v[1] for k, v in _STRINGS.items()},
}


def accept_language(header: str) -> UiLanguage | None:
    """The best supported language of an Accept-Language header, or None."""
    best: tuple[float, UiLanguage] | None = None
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0 and (best is None or quality > best[0]):
            best = (quality, "zh" if primary == "zh" else "en")
    return None if best is None else best[1]


def choose_language(query: str | None, cookie: str | None, header: str) -> UiLanguage:
    """The UI language for a request (see the module docstring for the order)."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return "zh" if candidate == "zh" else "en"
    return accept_language(header) or "en"
