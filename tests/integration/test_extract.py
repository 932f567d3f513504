# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""The smart router on real files the tests make: PDFs (text, scanned, mixed), Office, HTML, text, images.

OCR runs the real bundled PP-OCR models (one engine for the module); every bad input yields
its stable error code.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import docx
import openpyxl
import pytest
from appliance.config import KnowledgeConfig, Settings
from appliance.knowledge.errors import (
    CorruptFile,
    EncryptedFile,
    KnowledgeError,
    NoTextFound,
    TooLarge,
    TooManyPages,
    UnsupportedType,
)
from appliance.knowledge.ocr import Ocr, OcrSettings
from appliance.knowledge.router import extract, sniff
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.pagesizes import A4
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas

SENTENCE = "The Gold card annual fee is 95 dollars"
CHINESE = "金卡年费为九十五美元"
CONFIG = KnowledgeConfig()


@pytest.fixture(scope="module")
def ocr() -> Ocr:
    engine = Ocr(Settings().models_dir, OcrSettings())
    engine.warm()
    return engine


def cjk_font() -> str:
    found = subprocess.run(
        ["fc-list", ":lang=zh", "file"], capture_output=True, text=True, check=False
    ).stdout.split()
    fonts = sorted(f.rstrip(":") for f in found if "Sans" in f or "sans" in f) or [
        f.rstrip(":") for f in found
    ]
    if not fonts:
        pytest.skip("no Chinese font installed (./install.sh --dev installs fonts-noto-cjk)")
    return fonts[0]


def text_image(
    lines: list[str], *, font: ImageFont.FreeTypeFont | None = None, height: int = 0
) -> Image.Image:
    font = font or ImageFont.load_default(size=36)
    image = Image.new("RGB", (1400, max(height, 120 + 70 * len(lines))), "white")
    draw = ImageDraw.Draw(image)
    for number, line in enumerate(lines):
        draw.text((60, 60 + 70 * number), line, fill="black", font=font)
    return image


def text_pdf(path: Path, pages: list[list[str]]) -> Path:
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for lines in pages:
        y = 780
        for line in lines:
            pdf.drawString(72, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return path


def paragraph(topic: str) -> list[str]:
    return [
        f"{topic}: the annual fee is 95 dollars and it is waived in the first year.",
        "Customers earn two reward points per dollar spent at partner merchants.",
        "Lounge access is included for the card holder and one guest per visit.",
    ]


# --- routes ---------------------------------------------------------------------------------


def test_text_pdf_takes_the_text_route(tmp_path: Path, ocr: Ocr) -> None:
    path = text_pdf(tmp_path / "sheet.pdf", [paragraph("Gold card"), paragraph("Silver card")])
    doc = extract(path, "sheet.pdf", CONFIG, ocr)
    assert doc.sniffed_type == "application/pdf"
    assert doc.pages == 2
    assert [r.route for r in doc.routes] == ["pdf_text", "pdf_text"]
    assert "text layer has" in doc.routes[0].reason
    assert "Silver card: the annual fee is 95 dollars" in doc.text
    assert {b.page for b in doc.blocks} == {1, 2}
    assert doc.warnings == []


def test_scanned_pdf_takes_the_ocr_route(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "scan.pdf"
    text_image([SENTENCE]).save(path, "PDF", resolution=150)
    doc = extract(path, "scan.pdf", CONFIG, ocr)
    assert [r.route for r in doc.routes] == ["pdf_ocr"]
    route = doc.routes[0]
    assert route.reason.startswith("text layer has 0 chars < 40")
    assert route.ocr_confidence is not None and route.ocr_confidence > 0.8
    assert not route.low_confidence
    assert SENTENCE in doc.text


def test_mixed_pdf_is_routed_page_by_page(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "mixed.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    for line_number, line in enumerate(paragraph("Platinum card")):
        pdf.drawString(72, 780 - 18 * line_number, line)
    pdf.showPage()
    scan = text_image(["Scanned page: " + SENTENCE])
    pdf.drawImage(ImageReader(scan), 0, 0, width=A4[0], height=A4[0] * scan.height / scan.width)
    pdf.drawString(72, 800, "Figure 2")  # a caption: a text layer too short to trust
    pdf.showPage()
    pdf.save()
    doc = extract(path, "mixed.pdf", CONFIG, ocr)
    assert [r.route for r in doc.routes] == ["pdf_text", "pdf_ocr"]
    assert doc.routes[1].reason.startswith("text layer has 7 chars < 40")
    assert "Platinum card: the annual fee" in doc.text
    page_two = " ".join(b.text for b in doc.blocks if b.page == 2)
    assert SENTENCE in page_two


def test_mostly_image_pdf_page_is_ocred(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "brochure.pdf"
    pdf = canvas.Canvas(str(path), pagesize=A4)
    scan = text_image([SENTENCE], height=1400)
    pdf.drawImage(ImageReader(scan), 0, 200, width=A4[0], height=A4[0])
    pdf.drawString(72, 100, "Brochure caption with a little more text than the minimum here.")
    pdf.showPage()
    pdf.save()
    doc = extract(path, "brochure.pdf", CONFIG, ocr)
    assert doc.routes[0].route == "pdf_ocr"
    assert doc.routes[0].reason.startswith("mostly image: images cover")
    assert SENTENCE in doc.text


def test_docx_headings_paragraphs_and_table(tmp_path: Path, ocr: Ocr) -> None:
    document = docx.Document()
    document.core_properties.title = "Card guide"
    document.add_heading("Gold card", level=1)
    document.add_paragraph("The Gold card suits frequent travellers.")
    document.add_heading("Fees", level=2)
    table = document.add_table(rows=3, cols=2)
    for row, values in zip(
        table.rows, [("Fee", "Amount"), ("Annual", "$95"), ("Late", "$35")], strict=True
    ):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    document.add_paragraph("Fees are reviewed every year.", style="List Bullet")
    path = tmp_path / "guide.docx"
    document.save(str(path))
    doc = extract(path, "guide.docx", CONFIG, ocr)
    assert doc.routes[0].route == "docx"
    assert doc.title == "Card guide"
    kinds = [(b.kind, b.level, b.text.splitlines()[0]) for b in doc.blocks]
    assert kinds == [
        ("heading", 1, "Gold card"),
        ("paragraph", 0, "The Gold card suits frequent travellers."),
        ("heading", 2, "Fees"),
        ("table", 0, "| Fee | Amount |"),
        ("list_item", 0, "Fees are reviewed every year."),
    ]
    assert "| Annual | $95 |" in doc.blocks[3].text


def test_docx_big_table_becomes_self_describing_rows(tmp_path: Path, ocr: Ocr) -> None:
    document = docx.Document()
    table = document.add_table(rows=40, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Product", "Code"
    for number in range(1, 40):
        table.rows[number].cells[0].text = f"Product {number}"
        table.rows[number].cells[1].text = f"PX-{number:04d}"
    path = tmp_path / "codes.docx"
    document.save(str(path))
    doc = extract(path, "codes.docx", CONFIG, ocr)
    assert len(doc.blocks) == 39
    assert all(b.kind == "table_row" for b in doc.blocks)
    assert doc.blocks[6].text == "Product: Product 7 | Code: PX-0007"


def test_xlsx_rows_repeat_the_header(tmp_path: Path, ocr: Ocr) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Fees"
    sheet.append(["Fee", "Amount", "Note"])
    sheet.append(["Annual", 95, None])
    sheet.append(["Late", 35.0, "per month"])
    other = workbook.create_sheet("Empty")
    other.append([])
    path = tmp_path / "fees.xlsx"
    workbook.save(path)
    doc = extract(path, "fees.xlsx", CONFIG, ocr)
    assert doc.routes[0].route == "xlsx"
    assert [(b.kind, b.text) for b in doc.blocks] == [
        ("heading", "Fees"),
        ("table_row", "Fee: Annual | Amount: 95"),
        ("table_row", "Fee: Late | Amount: 35 | Note: per month"),
    ]


def test_xlsx_stored_without_a_suffix_is_read(tmp_path: Path, ocr: Ocr) -> None:
    """The pipeline stores uploads under their sha256, with no .xlsx suffix for openpyxl."""
    workbook = openpyxl.Workbook()
    workbook.active.append(["Fee", "Amount"])
    workbook.active.append(["Annual", 695])
    path = tmp_path / "0f3a9c"
    workbook.save(path)
    doc = extract(path, "fees.xlsx", CONFIG, ocr)
    assert doc.routes[0].route == "xlsx"
    assert doc.blocks[-1].text == "Fee: Annual | Amount: 695"


def test_csv_rows_repeat_the_header(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "fees.csv"
    path.write_text('Fee;Amount\nAnnual;"$95"\nLate;$35\n', encoding="utf-8")
    doc = extract(path, "fees.csv", CONFIG, ocr)
    assert doc.sniffed_type == "text/csv"
    assert [b.text for b in doc.blocks] == ["Fee: Annual | Amount: $95", "Fee: Late | Amount: $35"]


def test_html_main_content_without_boilerplate(tmp_path: Path, ocr: Ocr) -> None:
    html = """<!doctype html><html><head><title>Gold card</title><script>var x = 1;</script></head>
    <body><nav><a href="/">Home</a> | <a href="/about">About us</a></nav>
    <main><h1>Gold card</h1>
    <p>The annual fee is 95 dollars for the Gold card and it is waived the first year.</p>
    <h2>Benefits</h2>
    <p>Airport lounge access in 1200 airports worldwide, with two guests per visit included.</p>
    <ul><li>Travel insurance up to 500000 dollars</li><li>No foreign transaction fees</li></ul>
    <table><tr><th>Fee</th><th>Amount</th></tr><tr><td>Annual</td><td>$95</td></tr></table>
    </main><footer>Copyright 2026 Example Bank, all rights reserved</footer></body></html>"""
    path = tmp_path / "page.html"
    path.write_text(html, encoding="utf-8")
    doc = extract(path, "page.html", CONFIG, ocr)
    assert doc.routes[0].route == "html"
    assert doc.title == "Gold card"
    assert ("heading", 2, "Benefits") in [(b.kind, b.level, b.text) for b in doc.blocks]
    assert "No foreign transaction fees" in doc.text
    assert "| Annual | $95 |" in doc.text
    assert "var x" not in doc.text and "Copyright" not in doc.text and "About us" not in doc.text


def test_gb18030_chinese_text(tmp_path: Path, ocr: Ocr) -> None:
    text = "金卡产品说明\n\n金卡的年费为九十五美元，首年免年费。\n持卡人可免费使用机场贵宾室。𠀀\n"
    path = tmp_path / "说明.txt"
    path.write_bytes(text.encode("gb18030"))
    doc = extract(path, "说明.txt", CONFIG, ocr)
    assert doc.routes[0].route == "text"
    assert "gb18030" in doc.routes[0].reason
    assert doc.blocks[0].text == "金卡产品说明"
    assert "金卡的年费为九十五美元，首年免年费。" in doc.text
    assert "𠀀" in doc.text  # a 4-byte GB18030 sequence outside GBK


def test_utf16_markdown_headings(tmp_path: Path, ocr: Ocr) -> None:
    text = "# Cards\n\nIntro text.\n\n## Gold\n\n- fee 95\n- lounge\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    path = tmp_path / "cards.md"
    path.write_bytes(text.encode("utf-16"))
    doc = extract(path, "cards.md", CONFIG, ocr)
    assert doc.routes[0].route == "markdown"
    assert [(b.kind, b.level) for b in doc.blocks] == [
        ("heading", 1),
        ("paragraph", 0),
        ("heading", 2),
        ("list_item", 0),
        ("list_item", 0),
        ("table", 0),
    ]


def test_json_flattened_records(tmp_path: Path, ocr: Ocr) -> None:
    data = {
        "bank": "Example",
        "products": [
            {"name": "Gold", "fees": {"annual": 95}},
            {"name": "Silver", "tags": ["a", "b"]},
        ],
    }
    path = tmp_path / "products.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    doc = extract(path, "products.json", CONFIG, ocr)
    assert [b.text for b in doc.blocks] == [
        "bank: Example",
        "products[0].name: Gold\nproducts[0].fees.annual: 95",
        "products[1].name: Silver\nproducts[1].tags[0]: a\nproducts[1].tags[1]: b",
    ]


def test_chinese_image_through_ocr(tmp_path: Path, ocr: Ocr) -> None:
    font = ImageFont.truetype(cjk_font(), 40)
    path = tmp_path / "card.png"
    text_image([CHINESE, "Gold Card 2026"], font=font).save(path)
    doc = extract(path, "card.png", CONFIG, ocr)
    assert doc.sniffed_type == "image/png"
    assert doc.routes[0].route == "image_ocr"
    assert CHINESE in doc.text.replace(" ", "")
    assert doc.text.index(CHINESE[:2]) < doc.text.index("Gold")  # reading order


# --- bad input --------------------------------------------------------------------------------


def assert_code(error: pytest.ExceptionInfo[KnowledgeError], code: str) -> None:
    assert error.value.code == code
    assert error.value.message


def test_oversize_file(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    with pytest.raises(TooLarge) as error:
        extract(path, "big.txt", KnowledgeConfig(max_file_bytes=1024), ocr)
    assert_code(error, "too_large")
    assert "1024" in error.value.message


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_pixel_bomb_is_refused_before_decoding(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(TooLarge) as error:
        extract(path, "bomb.png", CONFIG, ocr)
    assert_code(error, "too_large")
    assert "decompression bomb" in error.value.message


def test_image_over_the_configured_pixel_cap(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (400, 300), "white").save(path)
    with pytest.raises(TooLarge) as error:
        extract(path, "big.png", KnowledgeConfig(max_image_pixels=100_000), ocr)
    assert_code(error, "too_large")
    assert "400x300 = 120000 pixels (limit 100000)" in error.value.message


def test_docx_zip_bomb(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "bomb.docx"
    docx.Document().save(str(path))
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/media/padding.bin", b"\0" * (64 * 1024 * 1024))
    with pytest.raises(TooLarge) as error:
        extract(path, "bomb.docx", CONFIG, ocr)
    assert_code(error, "too_large")
    assert "zip bomb" in error.value.message


def test_too_many_pages_names_the_limit(tmp_path: Path, ocr: Ocr) -> None:
    path = text_pdf(tmp_path / "long.pdf", [paragraph("A"), paragraph("B"), paragraph("C")])
    with pytest.raises(TooManyPages) as error:
        extract(path, "long.pdf", KnowledgeConfig(max_pages=2), ocr)
    assert_code(error, "too_many_pages")
    assert "limit is 2" in error.value.message


def test_no_text_found_names_the_routes_tried(tmp_path: Path, ocr: Ocr) -> None:
    path = text_pdf(tmp_path / "blank.pdf", [[]])
    with pytest.raises(NoTextFound) as error:
        extract(path, "blank.pdf", CONFIG, ocr)
    assert_code(error, "no_text_found")
    assert "pdf_ocr" in error.value.message


@pytest.mark.parametrize("kind", ["zip", "elf"])
def test_unsupported_type_names_the_sniffed_type(tmp_path: Path, ocr: Ocr, kind: str) -> None:
    path = tmp_path / "thing.docx"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("data.bin", bytes(range(256)) * 64)
        expected = "application/zip"
    else:
        shutil.copy(shutil.which("ls") or "/bin/ls", path)
        expected = "application/x-executable"
    with pytest.raises(UnsupportedType) as error:
        extract(path, "thing.docx", CONFIG, ocr)
    assert_code(error, "unsupported_type")
    assert expected in error.value.message


def test_corrupt_pdf(tmp_path: Path, ocr: Ocr) -> None:
    good = text_pdf(tmp_path / "good.pdf", [paragraph("Gold")]).read_bytes()
    path = tmp_path / "broken.pdf"
    path.write_bytes(good[:9] + b"\x00garbage" * 50)
    with pytest.raises(CorruptFile) as error:
        extract(path, "broken.pdf", CONFIG, ocr)
    assert_code(error, "corrupt_file")


def test_encrypted_pdf(tmp_path: Path, ocr: Ocr) -> None:
    from reportlab.lib.pdfencrypt import StandardEncryption

    path = tmp_path / "secret.pdf"
    pdf = canvas.Canvas(str(path), encrypt=StandardEncryption("open-sesame", canPrint=0))
    pdf.drawString(72, 780, "Secret pricing for the Gold card, not for distribution.")
    pdf.save()
    with pytest.raises(EncryptedFile) as error:
        extract(path, "secret.pdf", CONFIG, ocr)
    assert_code(error, "encrypted_file")


def test_extension_contradicting_content_trusts_the_content(tmp_path: Path, ocr: Ocr) -> None:
    document = docx.Document()
    document.add_paragraph("Really a Word document about the Gold card.")
    path = tmp_path / "report.pdf"
    document.save(str(path))
    doc = extract(path, "report.pdf", CONFIG, ocr)
    assert doc.routes[0].route == "docx"
    assert doc.warnings == ["extension says PDF but the content is DOCX"]


def test_sniff_ignores_the_extension(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue())
    assert sniff(path, "x.txt").mime == "image/jpeg"


def test_encrypted_docx(tmp_path: Path, ocr: Ocr) -> None:
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = io.BytesIO()
    document = docx.Document()
    document.add_paragraph("Secret pricing for the Gold card.")
    document.save(plain)
    plain.seek(0)
    path = tmp_path / "secret.docx"
    with path.open("wb") as out:
        OOXMLFile(plain).encrypt("open-sesame", out)
    with pytest.raises(EncryptedFile) as error:
        extract(path, "secret.docx", CONFIG, ocr)
    assert_code(error, "encrypted_file")


def test_corrupt_docx_and_truncated_image(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "broken.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types")
        archive.writestr("word/document.xml", "<w:document><w:body>not xml")
    with pytest.raises(CorruptFile) as error:
        extract(path, "broken.docx", CONFIG, ocr)
    assert_code(error, "corrupt_file")

    buffer = io.BytesIO()
    text_image([SENTENCE]).save(buffer, "PNG")
    image = tmp_path / "cut.png"
    image.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(CorruptFile) as error:
        extract(image, "cut.png", CONFIG, ocr)
    assert_code(error, "corrupt_file")


def test_empty_file_has_no_text(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(NoTextFound) as error:
        extract(path, "empty.txt", CONFIG, ocr)
    assert_code(error, "no_text_found")


def test_multi_page_tiff_and_low_confidence_flag(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "fax.tiff"
    first, second = text_image(["Page one: " + SENTENCE]), text_image(["Page two: lounge access"])
    first.save(path, "TIFF", save_all=True, append_images=[second])
    # a threshold no real page reaches, to see the flag reach the route
    doc = extract(path, "fax.tiff", KnowledgeConfig(ocr_low_confidence=1.0), ocr)
    assert doc.pages == 2
    assert [(r.page, r.route, r.low_confidence) for r in doc.routes] == [
        (1, "image_ocr", True),
        (2, "image_ocr", True),
    ]
    assert "low OCR confidence" in doc.routes[0].reason
    assert [b.page for b in doc.blocks] == [1, 2]
    assert "lounge access" in doc.blocks[1].text


def test_concurrent_pdf_extraction_matches_sequential(tmp_path: Path, ocr: Ocr) -> None:
    from concurrent.futures import ThreadPoolExecutor

    paths = [
        text_pdf(tmp_path / f"doc{n}.pdf", [paragraph(f"Card {n}-{p}") for p in range(15)])
        for n in range(4)
    ]
    sequential = [extract(p, p.name, CONFIG, ocr).text for p in paths]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda p: extract(p, p.name, CONFIG, ocr).text, paths))
    assert concurrent == sequential


def test_html_fragment_named_txt_is_html(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "faq.txt"
    path.write_text(
        "<div><h2>Can I freeze my card?</h2><p>Yes: open the mobile app, choose the card"
        " and tap Freeze; unfreezing takes effect at once.</p></div>",
        encoding="utf-8",
    )
    doc = extract(path, "faq.txt", CONFIG, ocr)
    assert doc.sniffed_type == "text/html"
    assert doc.warnings == ["extension says plain text but the content is HTML"]
    assert "tap Freeze" in doc.text and "<p>" not in doc.text


def test_deeply_nested_json_is_refused_not_crashed(tmp_path: Path, ocr: Ocr) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(CorruptFile) as error:
        extract(path, "deep.json", CONFIG, ocr)
    assert_code(error, "corrupt_file")


def test_two_column_scan_reads_column_by_column(tmp_path: Path, ocr: Ocr) -> None:
    font = ImageFont.load_default(size=30)
    image = Image.new("RGB", (1600, 700), "white")
    draw = ImageDraw.Draw(image)
    draw.text((60, 40), "Gold card brochure for new customers", fill="black", font=font)
    left = [
        "The annual fee is 95 dollars",
        "and it is waived in year one",
        "for every new customer",
    ]
    right = [
        "Lounge access is included",
        "for the holder and a guest",
        "at over a thousand airports",
    ]
    for n, (a, b) in enumerate(zip(left, right, strict=True)):
        draw.text((60, 160 + 60 * n), a, fill="black", font=font)
        draw.text((860, 160 + 60 * n), b, fill="black", font=font)
    path = tmp_path / "brochure.png"
    image.save(path)
    text = extract(path, "brochure.png", CONFIG, ocr).text
    positions = [text.index(line) for line in [*left, *right]]
    assert positions == sorted(positions), text
