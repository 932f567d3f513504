"""Images (PNG, JPEG, TIFF, GIF, BMP, WebP): pixel cap before decoding, then OCR (each TIFF frame a page)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from appliance.config import KnowledgeConfig
from appliance.knowledge.errors import CorruptFile, TooLarge, TooManyPages
from appliance.knowledge.extract.base import Block, ExtractedDocument, PageRoute
from appliance.knowledge.ocr import Ocr, OcrPage


def ocr_blocks(page: OcrPage, number: int | None) -> list[Block]:
    """OCR lines grouped into paragraphs: a vertical gap over 0.8 line heights starts a new one."""
    blocks: list[Block] = []
    current: list[str] = []
    previous_bottom: float | None = None
    previous_height = 0.0
    for line in page.lines:
        top, bottom = line.box[1], line.box[3]
        height = bottom - top
        if current and previous_bottom is not None:
            gap = top - previous_bottom
            if gap > 0.8 * max(previous_height, height, 1.0):
                blocks.append(Block("\n".join(current), page=number))
                current = []
        current.append(line.text)
        previous_bottom, previous_height = bottom, height
    if current:
        blocks.append(Block("\n".join(current), page=number))
    return blocks


def ocr_route(
    page: OcrPage, number: int | None, config: KnowledgeConfig, reason: str, *, pdf: bool
) -> PageRoute:
    """The PageRoute of an OCRed page, low-confidence flag included."""
    confidence = page.mean_confidence
    low = confidence is not None and confidence < config.ocr_low_confidence
    if low:
        reason += f"; low OCR confidence {confidence:.2f} < {config.ocr_low_confidence}"
    return PageRoute(
        number,
        "pdf_ocr" if pdf else "image_ocr",
        reason,
        chars=sum(len(line.text) for line in page.lines),
        ocr_confidence=confidence,
        low_confidence=low,
    )


def check_pixels(width: int, height: int, config: KnowledgeConfig) -> None:
    """Refuse an image over the pixel cap before anything decodes it."""
    if width * height > config.max_image_pixels:
        raise TooLarge(
            f"image is {width}x{height} = {width * height} pixels"
            f" (limit {config.max_image_pixels}): refused as a decompression bomb"
        )


def _reason(err: BaseException, path: Path) -> str:
    """Pillow's message without the stored file's path (state/documents/<sha256> means nothing
    to the uploader and shows the server's layout)."""
    return str(err).replace(f" '{path}'", "").replace(str(path), "the file")


def _decoding_errors() -> tuple[type[BaseException], ...]:
    return (UnidentifiedImageError, OSError, SyntaxError, ValueError)


def extract_image(
    path: Path, sniffed_type: str, config: KnowledgeConfig, ocr: Ocr
) -> ExtractedDocument:
    """OCR every frame of an image file (each TIFF/GIF frame is a page)."""
    blocks: list[Block] = []
    routes: list[PageRoute] = []
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as err:  # past 2x Pillow's own cap
        raise TooLarge(f"refused as a decompression bomb: {err}") from None
    except _decoding_errors() as err:
        raise CorruptFile(f"unreadable image: {_reason(err, path)}") from None
    with image:
        check_pixels(image.width, image.height, config)
        frames = getattr(image, "n_frames", 1)
        if frames > config.max_pages:
            raise TooManyPages(f"image has {frames} frames; the limit is {config.max_pages} pages")
        for index in range(frames):
            try:
                image.seek(index)
                check_pixels(image.width, image.height, config)
                frame = ImageOps.exif_transpose(image).convert("RGB")
            except Image.DecompressionBombError as err:
                raise TooLarge(f"refused as a decompression bomb: {err}") from None
            except _decoding_errors() as err:  # truncated or broken image data
                raise CorruptFile(f"unreadable image: {_reason(err, path)}") from None
            number = index + 1 if frames > 1 else None
            page = ocr.recognize(frame)
            blocks.extend(ocr_blocks(page, number))
            reason = f"image {frame.width}x{frame.height}: OCR"
            routes.append(ocr_route(page, number, config, reason, pdf=False))
    return ExtractedDocument(sniffed_type, blocks, routes, pages=len(routes))
