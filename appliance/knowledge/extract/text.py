"""Plain text, Markdown and JSON: encoding detection, markdown structure, flattened JSON records."""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import Any

import charset_normalizer
from markdown_it import MarkdownIt

from appliance.knowledge.errors import CorruptFile
from appliance.knowledge.extract.base import Block, ExtractedDocument, PageRoute

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# charset-normalizer names these when it sees Chinese; GB18030 decodes all of them.
_GB_FAMILY = {"gb2312", "gbk", "gb18030", "hz", "cp936"}


def decode(data: bytes) -> tuple[str, str]:
    """Decode bytes to text; returns (text, encoding): BOM, then strict UTF-8, then detection."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding
            except UnicodeDecodeError as err:
                raise CorruptFile(
                    f"text starts with a {encoding} BOM but is not {encoding}: {err}"
                ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        # GB18030 maps every byte sequence it accepts; try it before giving up.
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise CorruptFile("cannot tell the text encoding of this file") from None
    encoding = best.encoding.lower().replace("_", "")
    if encoding in _GB_FAMILY:
        return data.decode("gb18030", errors="replace"), "gb18030"
    return str(best), best.encoding


def _paragraphs(text: str) -> Iterator[str]:
    """Blank-line separated paragraphs (lines inside a paragraph keep their breaks)."""
    current: list[str] = []
    for line in text.splitlines():
        if line.strip():
            current.append(line.rstrip())
        elif current:
            yield "\n".join(current)
            current = []
    if current:
        yield "\n".join(current)


def extract_plain(text: str, encoding: str) -> ExtractedDocument:
    """Plain text: one block per paragraph."""
    blocks = [Block(p) for p in _paragraphs(text)]
    route = PageRoute(None, "text", f"plain text, {encoding}", chars=len(text))
    return ExtractedDocument("text/plain", blocks, [route])


def _source(lines: list[str], span: list[int] | None) -> str:
    if span is None:
        return ""
    return "\n".join(line.rstrip() for line in lines[span[0] : span[1]]).strip()


def markdown_blocks(text: str) -> list[Block]:
    """Markdown headings -> heading blocks (with level); other top-level blocks keep their source."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.level != 0 or token.nesting == -1:
            index += 1
            continue
        if token.type == "heading_open":
            inline = tokens[index + 1]
            blocks.append(Block(inline.content.strip(), "heading", level=int(token.tag[1:])))
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            depth = 0
            for item in tokens[index:]:
                if item.type == "list_item_open" and item.level == 1:
                    blocks.append(Block(_source(lines, item.map), "list_item"))
                depth += item.nesting
                if depth == 0:
                    break
        elif token.type == "table_open":
            blocks.append(Block(_source(lines, token.map), "table"))
        elif token.type != "hr":
            source = _source(lines, token.map)
            if source:
                blocks.append(Block(source))
        index += 1
    return [b for b in blocks if b.text]


def extract_markdown(text: str, encoding: str) -> ExtractedDocument:
    """Markdown: heading blocks open sections; paragraphs, list items, tables keep their source."""
    blocks = markdown_blocks(text)
    route = PageRoute(None, "markdown", f"markdown, {encoding}", chars=len(text))
    return ExtractedDocument("text/markdown", blocks, [route])


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def flatten(value: Any, path: str = "", record: str = "") -> Iterator[tuple[str, str]]:
    """Yield (record, "a.b[0].c: value") for every leaf; a record is a dict inside a list."""
    if isinstance(value, dict):
        if not value:
            yield record, f"{path or '$'}: {{}}"
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}" if path else str(key), record)
    elif isinstance(value, list):
        if not value:
            yield record, f"{path or '$'}: []"
        for position, item in enumerate(value):
            item_path = f"{path}[{position}]"
            yield from flatten(item, item_path, item_path if isinstance(item, dict) else record)
    else:
        yield record, f"{path or '$'}: {_scalar(value)}"


def extract_json(text: str, encoding: str) -> ExtractedDocument:
    """JSON: flattened ``a.b[0].c: value`` lines, one block per record (a dict inside a list)."""
    blocks: list[Block] = []
    current_record: str | None = None
    lines: list[str] = []
    try:
        value = json.loads(text)
        for record, line in flatten(value):
            if record != current_record and lines:
                blocks.append(Block("\n".join(lines)))
                lines = []
            current_record = record
            lines.append(line)
    except json.JSONDecodeError as err:
        raise CorruptFile(f"invalid JSON: {err}") from None
    except RecursionError:
        raise CorruptFile("JSON nested too deeply to read") from None
    if lines:
        blocks.append(Block("\n".join(lines)))
    chars = sum(len(b.text) for b in blocks)
    route = PageRoute(None, "json", f"JSON flattened to {len(blocks)} records, {encoding}", chars)
    return ExtractedDocument("application/json", blocks, [route])
