"""DOCX (python-docx), XLSX (openpyxl, read-only) and CSV: headings, paragraphs, tables, rows.

Spreadsheet rows become self-describing ``table_row`` blocks that repeat the header
(``Fee: Annual | Amount: $95``) so any chunk of rows stands alone. DOCX tables become one
markdown ``table`` block when small, and self-describing rows when large (a chunk cut from the
middle of a long markdown table would lose its header).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from appliance.config import KnowledgeConfig
from appliance.knowledge.errors import CorruptFile, TooLarge
from appliance.knowledge.extract.base import Block, ExtractedDocument, PageRoute

# A DOCX table at most this big stays one markdown table; a bigger one becomes table_row blocks.
MARKDOWN_TABLE_MAX_ROWS = 15
MARKDOWN_TABLE_MAX_CHARS = 1500
_RATIO_MIN_MEMBER = 1024 * 1024
_HEADING = re.compile(r"^heading\s*(\d)$", re.IGNORECASE)


def check_zip(path: Path, config: KnowledgeConfig) -> None:
    """Refuse a zip bomb: total unpacked size and per-member compression ratio caps."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for info in archive.infolist():
                total += info.file_size
                ratio = info.file_size / max(info.compress_size, 1)
                if info.file_size > _RATIO_MIN_MEMBER and ratio > config.max_zip_ratio:
                    raise TooLarge(
                        f"{info.filename} unpacks {ratio:.0f}x its packed size"
                        f" (limit {config.max_zip_ratio:.0f}x): refused as a zip bomb"
                    )
            if total > config.max_unzipped_bytes:
                raise TooLarge(
                    f"the archive unpacks to {total} bytes (limit {config.max_unzipped_bytes})"
                )
    except zipfile.BadZipFile as err:
        raise CorruptFile(f"broken ZIP container: {err}") from None


def cell_text(value: Any) -> str:
    """A spreadsheet/CSV value as text (95.0 -> "95", dates ISO, None -> "")."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="minutes" if value.second == 0 else "seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return " ".join(str(value).split())


def _column_name(position: int) -> str:
    name = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        name = chr(65 + rest) + name
    return f"Column {name}"


def table_rows(rows: Iterable[Sequence[Any]], *, page: int | None = None) -> Iterator[Block]:
    """Self-describing rows: the first non-empty row is the header, repeated in every row."""
    header: list[str] | None = None
    for raw in rows:
        cells = [cell_text(v) for v in raw]
        if not any(cells):
            continue
        if header is None:
            header = [c or _column_name(i) for i, c in enumerate(cells)]
            if len([c for c in cells if c]) == 1:  # a lone title/column name is content too
                yield Block(next(c for c in cells if c), "table_row", page=page)
            continue
        parts = []
        for position, value in enumerate(cells):
            if not value:
                continue
            name = header[position] if position < len(header) else _column_name(position)
            parts.append(f"{name}: {value}")
        yield Block(" | ".join(parts), "table_row", page=page)


def _md_cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: list[list[str]]) -> str:
    """A GitHub-style markdown table; the first row is the header."""
    width = max(len(r) for r in rows)
    padded = [[_md_cell(c) for c in r] + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(padded[0]) + " |", "|" + " --- |" * width]
    lines += ["| " + " | ".join(r) + " |" for r in padded[1:]]
    return "\n".join(lines)


def _docx_table_cells(table: Any) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a horizontally merged cell repeats; keep it once
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        if any(cells):
            rows.append(cells)
    return rows


def _docx_paragraph(paragraph: Any) -> Block | None:
    text = paragraph.text.strip()
    if not text:
        return None
    style = (paragraph.style.name if paragraph.style is not None else "") or ""
    if style == "Title":
        return Block(text, "heading", level=1)
    match = _HEADING.match(style)
    if match:
        return Block(text, "heading", level=int(match.group(1)))
    if "list" in style.lower():
        return Block(text, "list_item")
    return Block(text)


def extract_docx(path: Path, config: KnowledgeConfig) -> ExtractedDocument:
    """DOCX: headings (with level), paragraphs, list items, tables (markdown or rows)."""
    import docx
    from docx.table import Table

    check_zip(path, config)
    try:
        document = docx.Document(str(path))
    except (KeyError, ValueError, zipfile.BadZipFile) as err:
        raise CorruptFile(f"not a readable DOCX: {err}") from None
    except Exception as err:  # lxml raises XMLSyntaxError for a broken part
        if type(err).__name__ == "XMLSyntaxError":
            raise CorruptFile(f"not a readable DOCX: {err}") from None
        raise
    blocks: list[Block] = []
    tables = 0
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = _docx_table_cells(item)
            if not rows:
                continue
            tables += 1
            table = markdown_table(rows)
            if len(rows) <= MARKDOWN_TABLE_MAX_ROWS and len(table) <= MARKDOWN_TABLE_MAX_CHARS:
                blocks.append(Block(table, "table"))
            else:
                blocks.extend(table_rows(rows))
        else:
            block = _docx_paragraph(item)
            if block is not None:
                blocks.append(block)
    title = (document.core_properties.title or "").strip() or None
    chars = sum(len(b.text) for b in blocks)
    reason = f"DOCX: {len(blocks)} blocks, {tables} tables"
    return ExtractedDocument(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        blocks,
        [PageRoute(None, "docx", reason, chars=chars)],
        title=title,
    )


def extract_xlsx(path: Path, config: KnowledgeConfig) -> ExtractedDocument:
    """XLSX: a heading per sheet, then one self-describing table_row block per row."""
    import openpyxl

    check_zip(path, config)
    blocks: list[Block] = []
    sheets = 0
    # a file object, not the path: openpyxl refuses a path without an .xlsx suffix, and the
    # pipeline stores uploads under their sha256 (no suffix)
    with path.open("rb") as handle:
        try:
            workbook = openpyxl.load_workbook(handle, read_only=True, data_only=True)
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as err:
            raise CorruptFile(f"not a readable XLSX: {err}") from None
        try:
            for sheet in workbook.worksheets:
                rows = list(table_rows(sheet.iter_rows(values_only=True)))
                if rows:
                    sheets += 1
                    blocks.append(Block(sheet.title, "heading", level=1))
                    blocks.extend(rows)
        finally:
            workbook.close()
    chars = sum(len(b.text) for b in blocks)
    reason = f"XLSX: {sheets} sheets, {len(blocks) - sheets} rows, header repeated per row"
    return ExtractedDocument(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        blocks,
        [PageRoute(None, "xlsx", reason, chars=chars)],
    )


def csv_dialect(sample: str) -> type[csv.Dialect] | None:
    """The CSV dialect of a text sample when it looks like a table of 2+ columns, else None."""
    lines = [line for line in sample.splitlines()[:50] if line.strip()]
    if len(lines) < 2:
        return None
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=",;\t")
    except csv.Error:
        return None
    widths = {len(row) for row in csv.reader(lines[:-1] or lines, dialect)}
    if len(widths) != 1 or widths.pop() < 2:
        return None
    return dialect


def extract_csv(text: str, encoding: str) -> ExtractedDocument:
    """CSV/TSV: one self-describing table_row block per row."""
    dialect = csv_dialect(text[:65536]) or csv.excel
    try:
        blocks = list(table_rows(csv.reader(io.StringIO(text, newline=""), dialect)))
    except csv.Error as err:
        raise CorruptFile(f"unreadable CSV: {err}") from None
    reason = f"CSV ({encoding}, delimiter {dialect.delimiter!r}): {len(blocks)} rows"
    return ExtractedDocument(
        "text/csv", blocks, [PageRoute(None, "csv", reason, chars=sum(len(b.text) for b in blocks))]
    )
