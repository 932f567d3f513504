# ruff: noqa: RUF001 (the Chinese sample text has full-width punctuation)
"""Ingestion benchmark: OCR seconds per dense A4 page (RapidOCR defaults beside ours) and text-PDF pages/s.

Every document is generated here: dense A4 pages rendered with Pillow at 150 DPI (English with
DejaVu Sans or Pillow's own font, Chinese with a Noto CJK / WenQuanYi font when one is installed)
and a many-page text PDF written with reportlab (a dev dependency). OCR accuracy is the
character similarity of the recognized text to the rendered text, so a faster setting that reads
worse shows it. Embedding is not measured here.
"""

from __future__ import annotations

import difflib
import json
import os
import platform
import random
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click
from PIL import Image, ImageDraw, ImageFont

from appliance.config import KnowledgeConfig
from appliance.knowledge.ocr import Ocr, OcrSettings

A4_INCHES = (8.27, 11.69)
LATIN_FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",)
ENGLISH = (
    "The Gold card has an annual fee of 95 dollars, waived in the first year for new customers.",
    "Cardholders earn two reward points per dollar at partner merchants and one point elsewhere.",
    "Airport lounge access is included for the holder and one guest on every visit.",
    "Foreign transaction fees are not charged on purchases made abroad or online.",
    "A late payment costs 35 dollars; the interest rate on purchases is 19.9 percent per year.",
    "Travel insurance covers trip cancellation up to 5000 dollars per person per journey.",
    "Customers can freeze a lost card in the mobile app and order a replacement within minutes.",
    "The credit limit is reviewed every six months based on payment history and income.",
)
CHINESE = (
    "金卡年费为九十五美元，新客户首年免年费。持卡人在合作商户每消费一美元可获得两个积分。"
    "持卡人及一位同行者可免费使用机场贵宾室。境外及网上消费不收取货币转换费。"
    "逾期还款将收取三十五美元的滞纳金，购物年利率为百分之十九点九。"
    "旅行保险为每人每次旅程提供最高五千美元的行程取消保障。"
    "客户可在手机银行中冻结遗失的卡片，并在几分钟内申请补卡。"
    "信用额度每六个月根据还款记录和收入进行一次评估。"
)


@dataclass(frozen=True)
class Page:
    """A rendered page and the text drawn on it."""

    name: str
    image: Image.Image
    text: str


def _font(candidates: tuple[str, ...], size: int) -> ImageFont.FreeTypeFont | None:
    for path in candidates:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return None


def cjk_font_path() -> str | None:
    """A Chinese font on this box (fc-list), if any; nothing is ever downloaded."""
    try:
        found = subprocess.run(
            ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False, timeout=10
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    files = sorted(f.rstrip(":") for f in found)
    sans = [f for f in files if "Sans" in f]
    choice = sans or files
    return choice[0] if choice else None


def _dense_page(
    name: str, units: list[str], font: Any, dpi: int, joiner: str, points: float = 10
) -> Page:
    """Fill an A4 page (0.7 in margins, 1.35 line spacing) with wrapped text."""
    width, height = round(A4_INCHES[0] * dpi), round(A4_INCHES[1] * dpi)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    size = round(points * dpi / 72)
    margin = round(0.7 * dpi)
    lines: list[str] = []
    rng = random.Random(7)
    y = margin
    current = ""
    while y + size < height - margin:
        unit = rng.choice(units)
        candidate = (current + joiner + unit) if current else unit
        if draw.textlength(candidate, font=font) <= width - 2 * margin:
            current = candidate
            continue
        if not current:  # a unit wider than the line: cut it
            current = unit
            while draw.textlength(current, font=font) > width - 2 * margin:
                current = current[:-1]
        draw.text((margin, y), current, fill="black", font=font)
        lines.append(current)
        current = ""
        y += round(size * 1.35)
    return Page(name, image, "\n".join(lines))


def english_page(dpi: int = 150, points: float = 10) -> Page:
    """A dense English A4 page (~5,000 characters at 10 pt)."""
    size = round(points * dpi / 72)
    font = _font(LATIN_FONTS, size) or ImageFont.load_default(size=size)
    words = " ".join(ENGLISH).split()
    name = "dense A4, English" if points == 10 else f"A4 fine print {points:g} pt"
    return _dense_page(name, words, font, dpi, " ", points)


def chinese_page(dpi: int = 150) -> Page | None:
    """A dense Chinese A4 page, when a Chinese font is installed."""
    path = cjk_font_path()
    if path is None:
        return None
    font = ImageFont.truetype(path, round(10 * dpi / 72))
    return _dense_page("dense A4, Chinese", list(CHINESE), font, dpi, "")


def similarity(expected: str, got: str) -> float:
    """Character similarity of two texts, whitespace ignored (1.0 = identical)."""
    a, b = "".join(expected.split()), "".join(got.split())
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _ocr_row(
    name: str, settings: OcrSettings, pages: list[Page], models: Path, repeat: int
) -> dict[str, Any]:
    ocr = Ocr(models, settings)
    started = time.perf_counter()
    ocr.warm()
    row: dict[str, Any] = {"setting": name, "load_s": round(time.perf_counter() - started, 2)}
    row["settings"] = settings.__dict__
    row["cuda"] = ocr.uses_cuda
    for page in pages:
        times = []
        cpu = []
        result = None
        for _ in range(repeat):
            cpu_started = time.process_time()
            result = ocr.recognize(page.image)
            cpu.append(time.process_time() - cpu_started)
            times.append(result.seconds)
        assert result is not None
        row[page.name] = {
            "s_per_page": round(statistics.median(times), 3),
            "runs_s": [round(t, 3) for t in times],
            "cpu_s": round(statistics.median(cpu), 3),
            "accuracy": round(similarity(page.text, result.text), 4),
            "lines": len(result.lines),
            "mean_confidence": round(result.mean_confidence or 0.0, 4),
        }
    return row


def _text_pdf(path: Path, pages: int) -> int:
    """A text-layer PDF of dense pages; returns its character count."""
    try:
        from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
        from reportlab.pdfgen import canvas  # type: ignore[import-untyped]
    except ImportError as err:  # pragma: no cover - dev extra missing
        raise click.ClickException(
            "bench ingest writes its text PDF with reportlab: ./install.sh --dev"
        ) from err
    rng = random.Random(3)
    pdf = canvas.Canvas(str(path), pagesize=A4)
    chars = 0
    for number in range(pages):
        pdf.setFont("Helvetica", 10)
        pdf.drawString(50, 800, f"Product sheet {number + 1}")
        y = 780
        while y > 50:
            line = " ".join(rng.choice(ENGLISH).split()[:14])
            pdf.drawString(50, y, line)
            chars += len(line)
            y -= 13
        pdf.showPage()
    pdf.save()
    return chars


def _tokenizer_counter(models: Path) -> Callable[[str], int] | None:
    path = models / "all-MiniLM-L6-v2" / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False).ids)

    return count


def _text_pdf_rows(models: Path, pages: int, ocr: Ocr) -> list[dict[str, Any]]:
    from appliance.knowledge.chunking import chunk
    from appliance.knowledge.router import extract

    config = KnowledgeConfig(max_pages=max(pages, 1))
    with tempfile.TemporaryDirectory(prefix="salesboost-bench-") as tmp:
        path = Path(tmp) / "text.pdf"
        _text_pdf(path, pages)
        started = time.perf_counter()
        document = extract(path, "text.pdf", config, ocr)
        extract_s = time.perf_counter() - started
    assert {r.route for r in document.routes} == {"pdf_text"}, "text pages must take the text route"
    rows = [
        {
            "step": "text PDF: sniff + extract",
            "pages": pages,
            "seconds": round(extract_s, 3),
            "pages_per_s": round(pages / extract_s, 1),
        }
    ]
    count = _tokenizer_counter(models)
    if count is not None:
        started = time.perf_counter()
        parents = chunk(
            document,
            count,
            parent_tokens=config.parent_tokens,
            child_tokens=config.child_tokens,
            overlap_tokens=config.child_overlap_tokens,
        )
        chunk_s = time.perf_counter() - started
        children = sum(len(p.children) for p in parents)
        rows.append(
            {
                "step": "text PDF: extract + chunk (MiniLM tokenizer)",
                "pages": pages,
                "seconds": round(extract_s + chunk_s, 3),
                "pages_per_s": round(pages / (extract_s + chunk_s), 1),
                "parents": len(parents),
                "children": children,
            }
        )
    return rows


def _machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "providers": onnxruntime.get_available_providers(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    pages = report["pages"]
    baseline = report["ocr"][0]
    table = Table(title="OCR at 150 DPI: wall s/page (median), CPU s/page, accuracy")
    table.add_column("setting")
    for page in pages:
        table.add_column(f"{page}: s/page", justify="right")
        table.add_column("speed-up", justify="right")
        table.add_column("CPU s", justify="right")
        table.add_column("accuracy", justify="right")
    for row in report["ocr"]:
        cells = [row["setting"]]
        for page in pages:
            seconds = row[page]["s_per_page"]
            ratio = baseline[page]["s_per_page"] / seconds if seconds else 0.0
            cells += [
                f"{seconds:.2f}",
                f"{ratio:.2f}x",
                f"{row[page]['cpu_s']:.1f}",
                f"{row[page]['accuracy']:.4f}",
            ]
        table.add_row(*cells)
    console.print(table)
    text = Table(title="Text PDF (no embedding)")
    for column in ("step", "pages", "seconds", "pages/s"):
        text.add_column(column)
    for row in report["text_pdf"]:
        text.add_row(
            row["step"], str(row["pages"]), f"{row['seconds']:.2f}", f"{row['pages_per_s']:.1f}"
        )
    console.print(text)


def run_ingest_bench(*, models: Path, repeat: int, pdf_pages: int, out: Path) -> dict[str, Any]:
    """Run every measurement once, print the tables, write the JSON report."""
    pages = [english_page(), english_page(points=7)]
    chinese = chinese_page()
    notes = []
    if chinese is None:
        notes.append(
            "no Chinese font installed: the Chinese page is skipped (install fonts-noto-cjk)"
        )
    else:
        pages.append(chinese)
    tuned = OcrSettings()
    previous = replace(tuned, per_line=False, rec_batch=2)
    settings = [
        ("rapidocr defaults", OcrSettings.rapidocr_defaults()),
        (
            f"previous default: RapidOCR's pipeline on the page narrowed to {tuned.squeeze},"
            f" rec batch {previous.rec_batch}, detection at {tuned.det_limit_side_len} px",
            previous,
        ),
        (
            f"per line from the full page, every line at {tuned.squeeze}, whole head",
            replace(tuned, squeeze_cjk=tuned.squeeze, split_head=False),
        ),
        (
            f"per line, CJK pages at {tuned.squeeze_cjk}, whole head",
            replace(tuned, split_head=False),
        ),
        (
            f"per line (Latin {tuned.squeeze}, CJK {tuned.squeeze_cjk}), Latin head,"
            " recognition batches of 2 lines",
            replace(tuned, rec_batch=2),
        ),
        (
            f"appliance default: per line (Latin {tuned.squeeze}, CJK {tuned.squeeze_cjk}),"
            " Latin head on Latin pages",
            tuned,
        ),
    ]
    report: dict[str, Any] = {
        "machine": _machine(),
        "pages": [p.name for p in pages],
        "page_chars": {p.name: len("".join(p.text.split())) for p in pages},
        "notes": notes,
        "ocr": [_ocr_row(name, s, pages, models, repeat) for name, s in settings],
    }
    report["text_pdf"] = _text_pdf_rows(models, pdf_pages, Ocr(models))
    _print(report)
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    click.echo(f"wrote {out}")
    return report
