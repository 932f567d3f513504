# ruff: noqa: RUF001 (Chinese sample text has full-width punctuation)
"""Per-line OCR with the bundled models: CJK pages read narrower, the Latin head matches the whole one."""

from __future__ import annotations

from pathlib import Path

import pytest
from appliance.bench.ingest import LATIN_FONTS, cjk_font_path, similarity
from appliance.config import Settings
from appliance.knowledge.ocr import Ocr, OcrSettings, _mostly_cjk, _needs_latin_width
from PIL import Image, ImageDraw, ImageFont

ENGLISH = [
    "The Gold card has an annual fee of 95 dollars.",
    "Airport lounge access is included for one guest.",
    "A late payment costs 35 dollars; 19.9 percent a year.",
    "Freeze a lost card in the app and order a new one.",
    "Foreign transaction fees are not charged abroad.",
    "The credit limit is reviewed every six months.",
    "Travel insurance covers 5000 dollars per journey.",
]
CHINESE = [
    "金卡年费为九十五美元，新客户首年免年费。",
    "持卡人在合作商户每消费一美元可获得两个积分。",
    "持卡人及一位同行者可免费使用机场贵宾室。",
    "境外及网上消费不收取货币转换费。",
    "逾期还款将收取三十五美元的滞纳金。",
    "旅行保险为每人每次旅程提供最高五千美元的保障。",
    "信用额度每六个月根据还款记录和收入进行一次评估。",
]


@pytest.fixture(scope="module")
def models() -> Path:
    return Settings().models_dir


def cjk_font(size: int) -> ImageFont.FreeTypeFont:
    path = cjk_font_path()
    if path is None:
        pytest.skip("no Chinese font installed (./install.sh --dev installs fonts-noto-cjk)")
    return ImageFont.truetype(path, size)


def render(lines: list[tuple[str, ImageFont.FreeTypeFont]]) -> Image.Image:
    image = Image.new("RGB", (1000, 60 + 42 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for number, (text, font) in enumerate(lines):
        draw.text((40, 30 + 42 * number), text, fill="black", font=font)
    return image


def latin_font() -> ImageFont.FreeTypeFont:
    path = next((p for p in LATIN_FONTS if Path(p).is_file()), None)
    return ImageFont.truetype(path, 24) if path else ImageFont.load_default(size=24)


def test_script_rules() -> None:
    assert _mostly_cjk(["金卡年费为九十五美元", "持卡人"])
    assert not _mostly_cjk(["The Gold card", "金卡"])
    assert not _mostly_cjk(["金卡"])  # too little to tell
    assert not _needs_latin_width("金卡年费为九十五美元，新客户首年免年费。", 0.98)
    assert _needs_latin_width("Platinum card 金卡", 0.98)
    assert _needs_latin_width("金卡年费", 0.6)


def test_latin_head_reads_like_the_whole_head(models: Path) -> None:
    image = render([(line, latin_font()) for line in ENGLISH])
    split = Ocr(models, OcrSettings()).recognize(image)
    whole = Ocr(models, OcrSettings(split_head=False)).recognize(image)
    assert not split.cjk
    assert [line.text for line in split.lines] == [line.text for line in whole.lines]
    assert similarity("\n".join(ENGLISH), split.text) >= 0.99
    for a, b in zip(split.lines, whole.lines, strict=True):
        assert a.confidence > 0.9
        assert abs(a.confidence - b.confidence) < 0.05  # softmax over the Latin columns only


def test_chinese_line_on_a_latin_page_falls_back_to_the_whole_head(models: Path) -> None:
    lines = [(line, latin_font()) for line in ENGLISH]
    lines[3] = (CHINESE[0], cjk_font(24))  # not one of the sampled lines (0, 2, 4, 6)
    page = Ocr(models, OcrSettings()).recognize(render(lines))
    assert not page.cjk
    assert similarity(CHINESE[0], page.lines[3].text) >= 0.95, page.lines[3].text
    assert similarity("\n".join(text for text, _ in lines), page.text) >= 0.99


def test_chinese_page_is_read_narrower_and_its_latin_line_again(models: Path) -> None:
    font = cjk_font(24)
    lines = [(line, font) for line in CHINESE]
    lines[3] = ("Platinum card: annual fee 95 dollars", font)
    narrow = Ocr(models, OcrSettings()).recognize(render(lines))
    assert narrow.cjk
    assert "Platinum card: annual fee 95 dollars" in narrow.lines[3].text.replace("：", ":")
    assert similarity("\n".join(text for text, _ in lines), narrow.text) >= 0.99
    # the same page at the Latin width everywhere reads the same, only slower
    same = Ocr(models, OcrSettings(squeeze_cjk=0.6)).recognize(render(lines))
    assert similarity(same.text, narrow.text) >= 0.99


def test_cjk_words_in_english_lines_are_read_like_the_whole_head(models: Path) -> None:
    """Glyphs 3 time steps apart once fell between the Latin head's checked steps and were lost."""
    font = cjk_font(30)
    filler = "Customers can freeze a lost card in the mobile app within minutes."
    mixed = [
        "每消费一美元可获得两个积分 and more.",
        "Call 客服 now.",
        "The Gold card 金卡 has an annual fee of 95 dollars.",
        "Foreign fees 货币转换费 are not charged abroad.",
    ]
    lines = [filler]
    for line in mixed:
        lines += [line, filler]
    image = Image.new("RGB", (1300, 60 + 54 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for number, text in enumerate(lines):
        draw.text((40, 30 + 54 * number), text, fill="black", font=font)
    split = Ocr(models, OcrSettings()).recognize(image)
    whole = Ocr(models, OcrSettings(split_head=False)).recognize(image)
    assert not split.cjk
    assert [line.text for line in split.lines] == [line.text for line in whole.lines]
    for word in ("每消费一美元", "客服", "金卡", "货币转换费"):
        assert word in split.text, split.text
