"""What /schema says beyond what Litestar derives by itself: the error shape, who may call what,
and the few facts Litestar 2 cannot express.

Most of it uses Litestar's own means: :func:`documented` gives each handler of a controller
its error responses (``responses=`` with :class:`Error`) and its ``security=``, derived from
what the handler already declares (its ``access`` opt, the guard's input; its path ids; its
parameters and body), so the document and the guard cannot disagree. Handlers state the rest
themselves (``media_type``, a ``ResponseSpec`` for a 202 or a 409, :class:`OptionalBody`).

:class:`ApplianceOpenAPIConfig` then finishes the generated document in one place
(:func:`finish`), for what Litestar 2.25 has no option for:

- ``additionalProperties: false`` on the bodies the server decodes with msgspec's
  ``forbid_unknown_fields`` (Litestar's Struct schema plugin ignores that flag);
- ``anyOf`` instead of ``oneOf`` for a response that is a union of Structs: msgspec encodes
  every field, so a manager's persona also matches the trainee's brief, and ``oneOf`` (exactly
  one) would refuse every real body;
- ``/metrics``, Litestar's Prometheus controller, built in ``app.py``: its text format,
  its description and, where ``metrics.public`` is false, its login.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import msgspec
from litestar import Controller
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.spec import (
    OpenAPI,
    Operation,
    RequestBody,
    SecurityRequirement,
    SecurityScheme,
)
from msgspec import UNSET, UnsetType

C = TypeVar("C", bound=type[Controller])


class Error(msgspec.Struct, kw_only=True):
    """Every error: a stable ``code``, a human ``message`` and, for some codes, a ``detail``
    (the invalid fields of a request as a list, or an object such as ``{"retry_after": 30}``)."""

    code: str
    message: str
    detail: dict[str, Any] | list[Any] | UnsetType = UNSET


SECURITY_SCHEMES: dict[str, SecurityScheme] = {
    "bearer": SecurityScheme(
        type="http",
        scheme="bearer",
        description="An API token (``POST /api/tokens``): ``Authorization: Bearer <token>``.",
    ),
    "session": SecurityScheme(
        type="apiKey",
        name="session",
        security_scheme_in="cookie",
        description="The browser's session cookie, set by ``POST /api/auth/login``.",
    ),
}
LOGGED_IN: list[SecurityRequirement] = [{"bearer": []}, {"session": []}]
"""Either an API token or the session cookie."""

_ERRORS: dict[int, str] = {
    400: "``invalid_request``: the body or a parameter is malformed or out of bounds (``detail`` "
    "lists each problem); other codes name a wrong value (``invalid_input``, ``out_of_range``, "
    "``invalid_text``, ``empty_field``...).",
    401: "``not_authenticated``: no valid login or API token (or ``invalid_credentials``).",
    403: "``forbidden``: the role does not allow it, or a cross-origin browser request; "
    "``password_change_required``: the account must change its password first.",
    404: "``not_found`` (or a narrower code such as ``session_not_found``): nothing with that id "
    "that the caller may see.",
    409: "The request conflicts with the current state (``conflict`` or a narrower code).",
    413: "``too_large``: the body is over ``server.max_body_bytes``.",
    415: "``unsupported_type``: no file of the upload is of a type the appliance reads.",
    422: "A reference or a file the request names cannot be used (``unknown_reference``, "
    "``language_mismatch``, ``corrupt_file``...).",
    429: "``rate_limited`` (or ``locked_out``): too many requests; ``Retry-After`` says when "
    "to come back.",
    503: "``unavailable``: a part the request needs is not ready.",
}


def error(status: int, description: str | None = None) -> ResponseSpec:
    """The documented error response for ``status``, in the :class:`Error` shape."""
    return ResponseSpec(
        data_container=Error, description=description or _ERRORS[status], generate_examples=False
    )


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """``responses=`` for the errors a handler raises beyond those :func:`documented` derives."""
    return {status: error(status) for status in statuses}


_INJECTED = {"self", "request", "state", "socket", "channels", "headers", "cookies", "scope"}
"""Handler arguments Litestar fills from the connection, not from the client's input."""
_SAFE = {"GET", "HEAD", "OPTIONS"}


def _derived_errors(handler: HTTPRouteHandler, opt: dict[str, Any]) -> dict[int, ResponseSpec]:
    """The errors every request to ``handler`` may get, from what it declares."""
    inputs = set(inspect.signature(handler.fn).parameters) - _INJECTED
    has_path_id = any("{" in path for path in handler.paths)
    unsafe = not set(handler.http_methods) <= _SAFE
    level = opt.get("access")
    statuses = {401, 429}  # any request: a bad Authorization header; the global rate limit
    if inputs or has_path_id:
        statuses.add(400)
    if "data" in inputs:
        statuses.add(413)
    if has_path_id:
        statuses.add(404)
    # the same-origin check of unsafe methods; the guard: a role, a pending password change
    if (
        unsafe
        or level in ("manager", "admin")
        or (level == "user" and not opt.get("password_change_ok"))
    ):
        statuses.add(403)
    return errors(*sorted(statuses))


def documented(controller: C) -> C:
    """Document each handler of ``controller``: its errors in the :class:`Error` shape and,
    unless its access is ``public``, that it needs a login (Bearer token or session cookie).

    What a handler states itself in ``responses=`` wins over what is derived here. For the
    routes behind the auth middleware and the global rate limit (all but the probes).
    """
    declared = vars(controller).get("opt")  # a Controller without one has a slot, not a dict
    controller_opt: dict[str, Any] = dict(declared) if isinstance(declared, dict) else {}
    for name in dir(controller):
        handler = getattr(controller, name)
        if not isinstance(handler, HTTPRouteHandler):
            continue
        opt = {**controller_opt, **(handler.opt or {})}
        handler.responses = {**_derived_errors(handler, opt), **(handler.responses or {})}
        if opt.get("access") != "public" and handler.security is None:
            handler.security = LOGGED_IN
    return controller


@dataclass
class OptionalBody(Operation):
    """An operation whose JSON body may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


# --- the finishing pass ------------------------------------------------------------------------


def _struct_classes() -> dict[str, bool]:
    """The appliance's msgspec Structs by name: whether each refuses unknown fields (a name two
    classes share with different answers is left out)."""
    found: dict[str, bool | None] = {}
    todo: list[type[msgspec.Struct]] = [msgspec.Struct]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if not cls.__module__.startswith("appliance."):
            continue
        closed = cls.__struct_config__.forbid_unknown_fields
        found[cls.__name__] = closed if found.get(cls.__name__, closed) == closed else None
    return {name: closed for name, closed in found.items() if closed is not None}


def _any_of_struct_unions(node: Any) -> None:
    """``oneOf`` of references (a union of Structs) becomes ``anyOf``, in place."""
    if isinstance(node, dict):
        one_of = node.get("oneOf")
        if isinstance(one_of, list) and one_of and all("$ref" in s for s in one_of):
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _any_of_struct_unions(value)
    elif isinstance(node, list):
        for value in node:
            _any_of_struct_unions(value)


def _metrics(operation: dict[str, Any], *, public: bool) -> None:
    operation["description"] = (
        "Prometheus metrics in the text exposition format: requests by route, the event "
        "loop's lag, garbage collection pauses, the models' and ingestion's work."
        + ("" if public else " Admins only (``metrics.public`` is false).")
    )
    ok = operation["responses"]["200"]
    ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    if not public:
        operation["security"] = [{"bearer": []}, {"session": []}]
        for status in (401, 403):
            spec = error(status)
            operation["responses"][str(status)] = {
                "description": spec.description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }


def finish(schema: dict[str, Any], *, metrics_public: bool) -> dict[str, Any]:
    """The generated document, completed where Litestar cannot say it (see the module doc)."""
    structs = _struct_classes()
    for component in schema.get("components", {}).get("schemas", {}).values():
        if component.get("type") == "object" and structs.get(component.get("title", "")):
            component["additionalProperties"] = False
    for item in schema.get("paths", {}).values():
        for method, operation in item.items():
            if isinstance(operation, dict) and method in ("get", "post", "patch", "delete", "put"):
                _any_of_struct_unions(operation.get("responses", {}))
    metrics = schema.get("paths", {}).get("/metrics", {}).get("get")
    if metrics is not None:
        _metrics(metrics, public=metrics_public)
    return schema


@dataclass
class _Document(OpenAPI):
    """The root document, finished by :func:`finish` whenever it is turned into a dict."""

    metrics_public: bool = True

    @property
    def _exclude_fields(self) -> set[str]:
        return {"metrics_public"}

    def to_schema(self) -> dict[str, Any]:
        """The document as Litestar makes it, then :func:`finish`."""
        return finish(super().to_schema(), metrics_public=self.metrics_public)


@dataclass
class ApplianceOpenAPIConfig(OpenAPIConfig):
    """Litestar's OpenAPIConfig, plus what the finishing pass needs to know."""

    metrics_public: bool = field(default=True)
    """Whether /metrics answers without a login (``metrics.public``)."""

    def to_openapi_schema(self) -> OpenAPI:
        """Litestar's root document, as a :class:`_Document`."""
        base = super().to_openapi_schema()
        values = {f.name: getattr(base, f.name) for f in fields(base)}
        return _Document(**values, metrics_public=self.metrics_public)
