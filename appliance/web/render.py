"""Rendering the browser UI's pages: one Jinja2 environment, the UI language, the navigation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import msgspec

from appliance.web.i18n import STRINGS, UiLanguage

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _json_attr(value: Any) -> str:
    """JSON for a data-* attribute or a JSON data block (escaped by autoescape / below)."""
    return msgspec.json.encode(value).decode()


def _json_block(value: Any) -> markupsafe.Markup:
    """JSON safe to put inside <script type="application/json"> (no '</' can close it)."""
    text = msgspec.json.encode(value).decode()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return markupsafe.Markup(text)  # noqa: S704 - every markup character is escaped above


_ENV.filters["json_attr"] = _json_attr
_ENV.filters["json_block"] = _json_block


@dataclass(frozen=True)
class NavItem:
    """One link of the top navigation."""

    key: str
    href: str
    prefix: str = ""
    """Paths under this prefix mark the item current (default: the href itself)."""

    def current(self, path: str) -> bool:
        """Whether the page at path belongs to this item."""
        return path.startswith(self.prefix or self.href)


_NAV: dict[str, list[NavItem]] = {
    "trainee": [NavItem("nav_home", "/home"), NavItem("nav_history", "/history")],
    "manager": [
        NavItem("nav_home", "/home"),
        NavItem("nav_history", "/history"),
        NavItem("nav_team", "/team"),
        NavItem("nav_live", "/live"),
        NavItem("nav_editors", "/editors/scenarios", "/editors/"),
        NavItem("nav_knowledge", "/knowledge"),
    ],
}
_NAV["admin"] = [
    *_NAV["manager"],
    NavItem("nav_users", "/admin/users"),
    NavItem("nav_system", "/admin/system"),
    NavItem("nav_audit", "/admin/audit"),
]


def nav_for(role: str | None) -> list[NavItem]:
    """The navigation a role sees (tokens are everyone's)."""
    if role is None:
        return []
    return [*_NAV.get(role, _NAV["trainee"]), NavItem("nav_tokens", "/tokens")]


def render_page(
    template: str,
    *,
    lang: UiLanguage,
    path: str,
    user: Any,
    page: str,
    **context: Any,
) -> str:
    """A whole page: the template with the UI strings, the user and the navigation."""
    strings = STRINGS[lang]
    return _ENV.get_template(template).render(
        t=strings,
        lang=lang,
        path=path,
        user=user,
        page=page,
        nav=nav_for(getattr(user, "role", None)),
        **context,
    )
