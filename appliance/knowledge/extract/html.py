"""HTML: the main content (trafilatura, Apache-2.0) as headings, paragraphs, list items, tables."""

from __future__ import annotations

from typing import Any

from appliance.knowledge.extract.base import Block, ExtractedDocument, PageRoute
from appliance.knowledge.extract.office import markdown_table


def _text(element: Any) -> str:
    return " ".join("".join(element.itertext()).split())


def _table(element: Any) -> str:
    rows = []
    for row in element.iter("row"):
        cells = [_text(cell) for cell in row.iter("cell")]
        if any(cells):
            rows.append(cells)
    return markdown_table(rows) if rows else ""


def _blocks(main: Any) -> list[Block]:
    blocks: list[Block] = []
    for element in main:
        tag = element.tag
        if tag == "head":
            rend = element.get("rend", "h2")
            level = int(rend[1:]) if rend[1:].isdigit() else 2
            blocks.append(Block(_text(element), "heading", level=level))
        elif tag == "list":
            blocks.extend(Block(_text(item), "list_item") for item in element.iter("item"))
        elif tag == "table":
            blocks.append(Block(_table(element), "table"))
        else:
            blocks.append(Block(_text(element)))
    return [b for b in blocks if b.text]


def _fallback(html: str) -> list[Block]:
    """Every visible text of the body, paragraph by paragraph (when trafilatura finds no main part)."""
    import lxml.html

    try:
        root = lxml.html.fromstring(html)
    except Exception:  # lxml raises ParserError on an empty document
        return []
    for bad in root.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    text = root.text_content()
    return [Block(" ".join(p.split())) for p in text.split("\n\n") if p.strip()]


def extract_html(text: str, encoding: str) -> ExtractedDocument:
    """HTML main content: boilerplate (navigation, footers, scripts) left out."""
    import lxml.etree
    import trafilatura

    xml = trafilatura.extract(
        text,
        output_format="xml",
        include_tables=True,
        include_comments=False,
        include_links=False,
        include_images=False,
        favor_recall=True,
        with_metadata=False,
    )
    blocks: list[Block] = []
    if xml:
        doc = lxml.etree.fromstring(xml.encode("utf-8"))
        main = doc.find("main")
        if main is not None:
            blocks = _blocks(main)
    reason = f"HTML main content ({encoding})"
    if not blocks:
        blocks = _fallback(text)
        reason = f"HTML: no main content found, all body text ({encoding})"
    metadata = trafilatura.extract_metadata(text)
    title = metadata.title if metadata is not None and metadata.title else None
    chars = sum(len(b.text) for b in blocks)
    return ExtractedDocument(
        "text/html", blocks, [PageRoute(None, "html", reason, chars=chars)], title=title
    )
