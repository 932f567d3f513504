"""Images (PNG, JPEG, TIFF, GIF, BMP, WebP): pixel cap before decoding, then OCR (each TIFF frame a page)."""

from __future__ import annotations

import warnings
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


def extract_image(
    path: Path, sniffed_type: str, config: KnowledgeConfig, ocr: Ocr
) -> ExtractedDocument:
    """OCR every frame of an image file."""
    blocks: list[Block] = []
    routes: list[PageRoute] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                check_pixels(image.width, image.height, config)
                frames = getattr(image, "n_frames", 1)
                if frames > config.max_pages:
                    raise TooManyPages(
                        f"image has {frames} frames; the limit is {config.max_pages} pages"
                    )
                for index in range(frames):
                    image.seek(index)
                    check_pixels(image.width, image.height, config)
                    frame = ImageOps.exif_transpose(image.convert("RGB"))
                    number = index + 1 if frames > 1 else None
                    page = ocr.recognize(frame)
                    blocks.extend(ocr_blocks(page, number))
                    reason = f"image {image.width}x{image.height}: OCR"
                    routes.append(ocr_route(page, number, config, reason, pdf=False))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise TooLarge(f"refused as a decompression bomb: {err}") from None
        except UnidentifiedImageError as err:
            raise CorruptFile(f"unreadable image: {err}") from None
        except (OSError, SyntaxError, ValueError) as err:  # truncated or broken image data
            raise CorruptFile(f"unreadable image: {err}") from None
    return ExtractedDocument(sniffed_type, blocks, routes, pages=len(routes))
