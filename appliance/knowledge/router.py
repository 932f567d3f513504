"""The smart router: sniff a file's type from its bytes (never the extension), pick the extractor.

``extract`` is synchronous and CPU-heavy (parsing, OCR); the caller runs it in a worker thread.
Every refusal is a typed :mod:`appliance.knowledge.errors` error with a stable code.
"""

from __future__ import annotations

import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import filetype

from appliance.config import KnowledgeConfig
from appliance.knowledge.errors import (
    CorruptFile,
    EncryptedFile,
    KnowledgeError,
    NoTextFound,
    TooLarge,
    UnsupportedType,
)
from appliance.knowledge.extract.base import ExtractedDocument
from appliance.knowledge.ocr import Ocr

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
OLE2 = "application/x-ole-storage"
ZIP = "application/zip"
IMAGES = {
    "image/png",
    "image/jpeg",
    "image/tiff",
    "image/gif",
    "image/bmp",
    "image/webp",
    "image/x-ms-bmp",
}
TEXT_TYPES = {"text/plain", "text/markdown", "text/csv", "text/html", "application/json"}

_EXTENSIONS = {
    ".pdf": PDF,
    ".docx": DOCX,
    ".xlsx": XLSX,
    ".xlsm": XLSX,
    ".pptx": PPTX,
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
    ".webp": "image/webp",
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".tsv": "text/csv",
    ".htm": "text/html",
    ".html": "text/html",
    ".json": "application/json",
    ".zip": ZIP,
    ".doc": "application/msword",
    ".xls": "application/vnd.ms-excel",
}
_NAMES = {
    PDF: "PDF",
    DOCX: "DOCX",
    XLSX: "XLSX",
    PPTX: "PPTX",
    "text/plain": "plain text",
    "text/markdown": "Markdown",
    "text/csv": "CSV",
    "text/html": "HTML",
    "application/json": "JSON",
}
_HEAD = 64 * 1024
_HTML_TAG = re.compile(
    r"<(?:!doctype html|html|head|body|p|div|h[1-6]|table|ul|ol|article|section)\b"
)


@dataclass(frozen=True)
class Sniffed:
    """What the bytes say the file is, and what its name claimed."""

    mime: str
    claimed: str | None  # from the extension; None when the extension is unknown or absent
    encoding: str | None = None  # text types: the detected encoding
    text: str | None = None  # text types: the decoded content

    @property
    def mismatch(self) -> str | None:
        """A warning when the extension contradicts the content."""
        if self.claimed is None or _family(self.claimed) == _family(self.mime):
            return None
        return f"extension says {_name(self.claimed)} but the content is {_name(self.mime)}"


def _name(mime: str) -> str:
    return _NAMES.get(mime) or mime.split("/")[-1].upper()


def _family(mime: str) -> str:
    # plain text and Markdown read the same way: calling one the other is no contradiction
    return "text" if mime in ("text/plain", "text/markdown") else mime


def _zip_type(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError) as err:
        raise CorruptFile(f"broken ZIP container: {err}") from None
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    if "ppt/presentation.xml" in names:
        return PPTX
    return ZIP


def _ole_type(data: bytes) -> str:
    """An OLE2 compound file: an encrypted OOXML package, or a legacy .doc/.xls."""
    if "EncryptedPackage".encode("utf-16-le") in data:
        raise EncryptedFile("the Office document is password-protected")
    if "WordDocument".encode("utf-16-le") in data:
        return "application/msword"
    if "Workbook".encode("utf-16-le") in data or "Book".encode("utf-16-le") in data:
        return "application/vnd.ms-excel"
    return OLE2


def _looks_binary(head: bytes) -> bool:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16/32 BOM: text with NULs
        return False
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
    return controls > len(head) * 0.05


def _text_type(text: str, claimed: str | None) -> str:
    """The text subtype from content heuristics (the extension only breaks a text/markdown tie)."""
    from appliance.knowledge.extract.office import csv_dialect

    stripped = text.lstrip("\ufeff \t\r\n")
    lower = stripped[:2048].lower()
    if stripped[:1] in "{[":
        try:
            json.loads(stripped)
            return "application/json"
        except RecursionError:  # JSON nested past Python's limit: extract_json refuses it
            return "application/json"
        except ValueError:
            pass
    if lower.startswith("<") and _HTML_TAG.search(lower):  # a page or a fragment
        return "text/html"
    if claimed != "text/markdown" and csv_dialect(text[:65536]) is not None:
        return "text/csv"
    from appliance.knowledge.extract.text import markdown_blocks

    if claimed == "text/markdown" or any(
        b.kind == "heading" for b in markdown_blocks(text[:20000])
    ):
        return "text/markdown"
    return "text/plain"


def sniff(path: Path, filename: str) -> Sniffed:
    """The file's type from its magic bytes and content; the extension is only compared."""
    claimed = _EXTENSIONS.get(Path(filename).suffix.lower())
    with path.open("rb") as fh:
        head = fh.read(_HEAD)
    if not head:
        raise NoTextFound("the file is empty (routes tried: none)")
    if b"%PDF-" in head[:1024]:
        return Sniffed(PDF, claimed)
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        with path.open("rb") as fh:
            return Sniffed(_ole_type(fh.read(4 * 1024 * 1024)), claimed)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return Sniffed(_zip_type(path), claimed)
    kind = filetype.guess(head)
    if kind is not None:
        return Sniffed(str(kind.mime), claimed)
    if _looks_binary(head):
        return Sniffed("application/octet-stream", claimed)
    from appliance.knowledge.extract.text import decode

    text, encoding = decode(path.read_bytes())
    return Sniffed(_text_type(text, claimed), claimed, encoding, text)


def _readable(sniffed: Sniffed) -> bool:
    return sniffed.mime in (PDF, DOCX, XLSX) or sniffed.mime in IMAGES or sniffed.text is not None


def _unsupported(mime: str) -> UnsupportedType:
    return UnsupportedType(
        f"no extractor for {_name(mime)} ({mime})", detail={"sniffed_type": mime}
    )


def check_supported(path: Path, filename: str) -> None:
    """Raise ``UnsupportedType`` (415) when no extractor reads this file's sniffed type.

    The upload-time check: an unknown type is refused before a document or job exists. Other
    problems the sniff may find (a broken ZIP, an encrypted package, an empty file) are left to
    the job, which records them with their own codes.
    """
    try:
        sniffed = sniff(path, filename)
    except UnsupportedType:
        raise
    except KnowledgeError:
        return
    if not _readable(sniffed):
        raise _unsupported(sniffed.mime)


def extract(path: Path, filename: str, config: KnowledgeConfig, ocr: Ocr) -> ExtractedDocument:
    """Sniff, route and extract one file; raises a KnowledgeError subclass on bad input."""
    size = path.stat().st_size
    if size > config.max_file_bytes:
        raise TooLarge(f"the file has {size} bytes; the limit is {config.max_file_bytes}")
    sniffed = sniff(path, filename)
    document = _dispatch(path, sniffed, config, ocr)
    if sniffed.mismatch:
        document.warnings.insert(0, sniffed.mismatch)
    if not any(block.text.strip() for block in document.blocks):
        tried = sorted({str(route.route) for route in document.routes}) or [_name(sniffed.mime)]
        raise NoTextFound(
            f"no text found in this {_name(sniffed.mime)} (routes tried: {', '.join(tried)})",
            detail={"routes": tried},
        )
    return document


def _dispatch(path: Path, sniffed: Sniffed, config: KnowledgeConfig, ocr: Ocr) -> ExtractedDocument:
    from appliance.knowledge.extract import html, image, office, pdf, text

    mime = sniffed.mime
    if mime == PDF:
        return pdf.extract_pdf(path, config, ocr)
    if mime == DOCX:
        return office.extract_docx(path, config)
    if mime == XLSX:
        return office.extract_xlsx(path, config)
    if mime in IMAGES:
        return image.extract_image(path, mime, config, ocr)
    if sniffed.text is not None:
        content, encoding = sniffed.text, sniffed.encoding or "utf-8"
        if mime == "text/csv":
            return office.extract_csv(content, encoding)
        if mime == "text/html":
            return html.extract_html(content, encoding)
        if mime == "application/json":
            return text.extract_json(content, encoding)
        if mime == "text/markdown":
            return text.extract_markdown(content, encoding)
        return text.extract_plain(content, encoding)
    raise _unsupported(mime)
