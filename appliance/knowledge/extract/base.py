"""What every extractor returns: structural blocks in reading order, and the route taken per page.

This is the contract between extraction (router, extractors, OCR) and chunking/indexing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Route = Literal[
    "pdf_text", "pdf_ocr", "image_ocr", "docx", "xlsx", "csv", "html", "markdown", "text", "json"
]
BlockKind = Literal["heading", "paragraph", "table", "table_row", "list_item", "line"]


@dataclass(frozen=True)
class Block:
    """One structural unit of text in reading order.

    ``heading`` blocks carry ``level`` (1 = top) and open a section; ``table_row`` blocks are
    self-describing (header repeated: ``Fee: Annual | Amount: $95``) so any chunk of rows
    stands alone; ``page`` is 1-based for paged formats, None otherwise.
    """

    text: str
    kind: BlockKind = "paragraph"
    level: int = 0
    page: int | None = None


@dataclass(frozen=True)
class PageRoute:
    """Why a page (or a whole unpaged document, page=None) took the route it took."""

    page: int | None
    route: Route
    reason: str
    chars: int = 0
    ocr_confidence: float | None = None
    low_confidence: bool = False


@dataclass
class ExtractedDocument:
    """The extraction result for one file."""

    sniffed_type: str  # MIME type from magic bytes, e.g. "application/pdf"
    blocks: list[Block]
    routes: list[PageRoute]
    pages: int | None = None
    warnings: list[str] = field(default_factory=list)  # e.g. "extension .pdf but content is PNG"
    title: str | None = None  # from the file's own metadata (DOCX core title, HTML <title>), if any

    @property
    def text(self) -> str:
        """All block text, blank-line separated (for tests and debugging)."""
        return "\n\n".join(b.text for b in self.blocks)
