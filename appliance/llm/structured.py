"""msgspec type -> JSON schema -> llama.cpp grammar (GBNF), compiled once per type.

llama-cpp-python's converter (``llama_cpp.llama_grammar.json_schema_to_gbnf``) handles
objects, refs, enums, string lengths and formats but not integer bounds, so bounded integers
with a span of at most :data:`MAX_ENUM_SPAN` become enums first; wider numeric bounds are
enforced by the msgspec validation that follows generation (and its one retry).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec
from llama_cpp.llama_grammar import json_schema_to_gbnf

from appliance.llm.errors import SchemaError

MAX_ENUM_SPAN = 1000


@dataclass(frozen=True)
class CompiledSchema:
    """A type's JSON schema (as sent to remote servers) and its GBNF grammar."""

    type: Any
    name: str
    json_schema: dict[str, Any]
    gbnf: str

    def decode(self, text: str) -> Any:
        """Parse and validate generated text as the type (raises msgspec errors)."""
        return msgspec.json.decode(text.strip().encode(), type=self.type)


def _bounds(node: dict[str, Any]) -> tuple[int, int] | None:
    lo = node.get("minimum")
    hi = node.get("maximum")
    if "exclusiveMinimum" in node:
        lo = node["exclusiveMinimum"] + 1
    if "exclusiveMaximum" in node:
        hi = node["exclusiveMaximum"] - 1
    if isinstance(lo, int) and isinstance(hi, int):
        return lo, hi
    return None


def _prepare(node: Any) -> Any:
    """Rewrite what the grammar converter cannot express into what it can."""
    if isinstance(node, list):
        return [_prepare(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _prepare(value) for key, value in node.items()}
    if out.get("type") == "integer":
        bounds = _bounds(out)
        if bounds is not None:
            lo, hi = bounds
            if hi < lo:
                raise SchemaError(f"integer bounds {lo}..{hi} admit no value")
            if hi - lo <= MAX_ENUM_SPAN:
                return {"enum": list(range(lo, hi + 1))}
    return out


def _inline_refs(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Replace local ``#/$defs/X`` references by their definitions (nested Structs).

    llama-cpp-python's converter resolves only a top-level reference; a Struct inside a Struct
    (a ``$ref`` inside ``$defs``) fails there. A recursive type cannot be inlined: SchemaError.
    """
    if isinstance(node, list):
        return [_inline_refs(item, defs, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        key = ref.removeprefix("#/$defs/")
        if key in seen:
            raise SchemaError(f"{key} is recursive; a grammar cannot express it")
        if key not in defs:
            raise SchemaError(f"unknown schema reference {ref}")
        return _inline_refs(defs[key], defs, (*seen, key))
    return {k: _inline_refs(v, defs, seen) for k, v in node.items() if k != "$defs"}


def compile_schema(tp: Any) -> CompiledSchema:
    """Compile ``tp`` (a msgspec Struct or other msgspec-supported type); SchemaError if impossible."""
    name = getattr(tp, "__name__", repr(tp))
    try:
        raw = msgspec.json.schema(tp)
    except (TypeError, ValueError) as err:
        raise SchemaError(f"{name} has no JSON schema: {err}") from None
    schema = _prepare(raw)
    try:
        inlined = _inline_refs(schema, schema.get("$defs", {}))
        gbnf = json_schema_to_gbnf(json.dumps(inlined))
    except SchemaError:
        raise
    except Exception as err:  # the converter raises assorted errors for what it cannot express
        raise SchemaError(f"{name} cannot be expressed as a grammar: {err}") from None
    return CompiledSchema(type=tp, name=name, json_schema=schema, gbnf=gbnf)
