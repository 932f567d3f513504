"""PDF (pypdfium2), page by page: the text layer when it is usable, else render and OCR.

A page is OCRed when its text layer has fewer than ``ocr_min_chars`` characters, or when it is
mostly image (images cover ``ocr_image_coverage`` of it) with little text
(< ``ocr_image_page_chars``): a scanned brochure with a caption, an infographic. The reason is
recorded per page so an operator sees why a page was OCRed.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from pathlib import Path
from typing import Any

from appliance.config import KnowledgeConfig
from appliance.knowledge.errors import CorruptFile, EncryptedFile, TooManyPages
from appliance.knowledge.extract.base import Block, ExtractedDocument, PageRoute
from appliance.knowledge.extract.image import ocr_blocks, ocr_route
from appliance.knowledge.ocr import Ocr

_SENTENCE_END = tuple(".!?:;\u3002\uff01\uff1f\uff1a\uff1b")  # and the CJK full-width forms
_PDF_ERR_PASSWORD = 4
# PDFium is not thread-safe (not even across documents): one lock for every call into it.
PDFIUM_LOCK = threading.RLock()


def _is_cjk(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _join(left: str, right: str) -> str:
    if not left:
        return right
    if _is_cjk(left[-1]) and _is_cjk(right[0]):
        return left + right
    if left.endswith("-") and left[-2:-1].isalpha() and right[0].islower():
        return left + right  # a word broken at the line end: keep it one word
    return f"{left} {right}"


def text_blocks(text: str, page: int) -> list[Block]:
    """Text-layer lines -> paragraphs: a blank line, or a short line ending a sentence, ends one."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    longest = max((len(line) for line in lines), default=0)
    blocks: list[Block] = []
    current = ""
    for line in lines:
        if not line:
            if current:
                blocks.append(Block(current, page=page))
                current = ""
            continue
        current = _join(current, line)
        if line.endswith(_SENTENCE_END) and len(line) < 0.8 * longest:
            blocks.append(Block(current, page=page))
            current = ""
    if current:
        blocks.append(Block(current, page=page))
    return blocks


def image_coverage(page: Any) -> float:
    """Share of the page area covered by image objects (overlaps counted twice, capped at 1)."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    area = max(width * height, 1.0)
    covered = 0.0
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=3):
        left, bottom, right, top = obj.get_bounds()
        covered += max(right - left, 0.0) * max(top - bottom, 0.0)
    return float(min(covered / area, 1.0))


def _render(page: Any, config: KnowledgeConfig) -> tuple[Any, str]:
    width, height = page.get_size()
    scale = config.ocr_dpi / 72
    note = f"rendered at {config.ocr_dpi} DPI"
    pixels = width * scale * height * scale
    if pixels > config.max_image_pixels:
        scale *= (config.max_image_pixels / pixels) ** 0.5
        note = f"rendered at {scale * 72:.0f} DPI (page too big for {config.ocr_dpi} DPI)"
    bitmap = page.render(scale=scale, grayscale=False)
    try:
        # a copy: the PIL view shares PDFium's buffer, which is freed with the bitmap
        return bitmap.to_pil().copy(), note
    finally:
        bitmap.close()


def _open(path: Path) -> Any:
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as err:
        if getattr(err, "err_code", None) == _PDF_ERR_PASSWORD:
            raise EncryptedFile("the PDF is password-protected") from None
        raise CorruptFile(f"unreadable PDF: {err}") from None


# A text layer with more than this share of non-text characters is garbage (a font without a
# ToUnicode map yields control codes, U+FFFD or private-use code points instead of letters).
GARBLED_SHARE = 0.3


def garbled_share(text: str) -> float:
    """Share of the non-space characters that cannot be real text."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        return 0.0
    bad = sum(1 for c in visible if c == "\ufffd" or unicodedata.category(c) in ("Cc", "Co", "Cn"))
    return bad / len(visible)


def route_page(
    chars: int, coverage: float, config: KnowledgeConfig, garbled: float = 0.0
) -> str | None:
    """Why a page must be OCRed, or None when its text layer is usable."""
    if chars < config.ocr_min_chars:
        return f"text layer has {chars} chars < {config.ocr_min_chars}"
    if garbled > GARBLED_SHARE:
        return f"text layer unreadable: {garbled:.0%} of its chars are not text"
    if coverage >= config.ocr_image_coverage and chars < config.ocr_image_page_chars:
        return (
            f"mostly image: images cover {coverage:.0%} of the page and the text layer has"
            f" {chars} chars < {config.ocr_image_page_chars}"
        )
    return None


def _read_page(
    document: Any, index: int, config: KnowledgeConfig
) -> tuple[str, int, float, str | None, Any, str]:
    """One page's text layer, its route decision and, for OCR, its rendering (under PDFIUM_LOCK)."""
    number = index + 1
    try:
        page = document[index]
    except Exception as err:  # pypdfium2 raises PdfiumError for a broken page
        raise CorruptFile(f"page {number} cannot be loaded: {err}") from None
    try:
        textpage = page.get_textpage()
        text = textpage.get_text_bounded()
        textpage.close()
        chars = sum(1 for c in text if not c.isspace())
        coverage = image_coverage(page)
        why = route_page(chars, coverage, config, garbled_share(text))
        image, note = (None, "") if why is None else _render(page, config)
        return text, chars, coverage, why, image, note
    finally:
        page.close()


def extract_pdf(path: Path, config: KnowledgeConfig, ocr: Ocr) -> ExtractedDocument:
    """Every page through its own route (text layer or OCR).

    PDFium is not thread-safe, so every PDFium call holds ``PDFIUM_LOCK``; OCR runs outside it,
    letting another worker parse its PDF meanwhile.
    """
    with PDFIUM_LOCK:
        document = _open(path)
    try:
        with PDFIUM_LOCK:
            count = len(document)
        if count > config.max_pages:
            raise TooManyPages(f"the PDF has {count} pages; the limit is {config.max_pages}")
        blocks: list[Block] = []
        routes: list[PageRoute] = []
        for index in range(count):
            number = index + 1
            with PDFIUM_LOCK:
                text, chars, coverage, why, image, note = _read_page(document, index, config)
            if why is None:
                blocks.extend(text_blocks(text, number))
                reason = f"text layer has {chars} chars"
                if coverage:
                    reason += f", images cover {coverage:.0%}"
                routes.append(PageRoute(number, "pdf_text", reason, chars=chars))
                continue
            result = ocr.recognize(image)
            blocks.extend(ocr_blocks(result, number))
            routes.append(ocr_route(result, number, config, f"{why}; {note}", pdf=True))
        return ExtractedDocument("application/pdf", blocks, routes, pages=count)
    finally:
        with PDFIUM_LOCK:
            document.close()
