"""/schema as a page the box serves by itself: every operation, linked to the OpenAPI JSON.

Litestar's default schema pages (Redoc, Swagger, Elements, RapiDoc) load their scripts and
fonts from public CDNs: on an offline appliance they stay blank, and they would tell a CDN
who browses the API. This page is plain server-rendered HTML under the appliance's own CSP.
"""

from __future__ import annotations

from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin

METHODS = ("get", "post", "put", "patch", "delete")


class OfflineSchemaPage(OpenAPIRenderPlugin):
    """An HTML index of the API (method, path, summary) with links to the JSON and YAML."""

    def __init__(self) -> None:
        super().__init__(path="/", favicon="", style="")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        """The page for ``GET /schema``."""
        info = openapi_schema.get("info", {})
        title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
        rows = []
        for path, item in sorted(openapi_schema.get("paths", {}).items()):
            for method in METHODS:
                operation = item.get(method)
                if not isinstance(operation, dict):
                    continue
                what = _paragraphs(operation.get("description") or operation.get("summary"))
                rows.append(
                    f"<tr><td><code>{method.upper()}</code></td><td><code>{escape(path)}</code>"
                    f"</td><td>{what}</td></tr>"
                )
        json_route = self.get_openapi_json_route(request)
        json_url = escape(json_route)
        yaml_url = escape(json_route.rsplit("/", 1)[0] + "/openapi.yaml")
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<title>{title}</title><link rel="stylesheet" href="/static/app.css">'
            '<link rel="icon" href="data:,"></head><body><main>'
            f"<h1>{title}</h1>"
            f'<p>OpenAPI 3.1: <a href="{json_url}">openapi.json</a> · '
            f'<a href="{yaml_url}">openapi.yaml</a>. Scripts authenticate with '
            "<code>Authorization: Bearer &lt;token&gt;</code> (<code>POST /api/tokens</code>).</p>"
            "<table><thead><tr><th>method</th><th>path</th><th>what it does</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></main></body></html>"
        )
        return body.encode("utf-8")


def _paragraphs(text: object) -> str:
    """A handler's docstring as HTML: each paragraph on one line (docstrings wrap mid-sentence)."""
    paragraphs = str(text or "").split("\n\n")
    return "<br>".join(escape(" ".join(p.split())) for p in paragraphs if p.strip())


def schema_render_plugins() -> list[OpenAPIRenderPlugin]:
    """What /schema serves: the offline index at /schema, the JSON and the YAML."""
    return [OfflineSchemaPage(), JsonRenderPlugin(), YamlRenderPlugin()]
