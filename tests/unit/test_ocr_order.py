"""OCR reading order and settings, without running the models."""

from __future__ import annotations

from pathlib import Path

from appliance.config import KnowledgeConfig
from appliance.knowledge.ocr import Ocr, OcrSettings, _Segment, join_segments, reading_order


def test_segments_on_one_row_merge_left_to_right_rows_top_to_bottom() -> None:
    segments = [
        _Segment("second line", 10, 52, 200, 80, 0.9),
        _Segment("right", 300, 12, 400, 38, 0.8),
        _Segment("left", 10, 10, 120, 40, 1.0),
        _Segment("金卡", 210, 55, 260, 79, 0.7),
    ]
    lines = reading_order(segments)
    assert [line.text for line in lines] == ["left right", "second line金卡"]
    assert lines[0].box == (10, 10, 400, 40)
    assert abs(lines[0].confidence - (1.0 * 4 + 0.8 * 5) / 9) < 1e-9


def test_join_segments() -> None:
    assert join_segments("fee", "95") == "fee 95"
    assert join_segments("年费", "美元") == "年费美元"
    assert join_segments("", "x") == "x"


def test_settings_from_config() -> None:
    config = KnowledgeConfig(ocr_threads=1, ocr_use_cls=True, ocr_squeeze=1.0)
    ocr = Ocr(Path("models"), config)
    assert ocr.settings == OcrSettings(threads=1, use_cls=True, squeeze=1.0)
    params = ocr.settings.params()
    assert params["EngineConfig.onnxruntime.intra_op_num_threads"] == 1
    assert params["Global.use_cls"] is True
    assert OcrSettings.rapidocr_defaults().params()["Det.limit_type"] == "min"


def test_pdf_page_routing_reasons() -> None:
    from appliance.knowledge.extract.pdf import garbled_share, route_page

    config = KnowledgeConfig()
    assert route_page(3, 0.0, config) == "text layer has 3 chars < 40"
    assert route_page(500, 0.0, config) is None
    assert route_page(120, 0.9, config) == (
        "mostly image: images cover 90% of the page and the text layer has 120 chars < 400"
    )
    assert route_page(900, 0.9, config) is None  # a scan with a real text layer keeps it
    garbage = "\x03\x04\x05\ufffd\ue001" * 20 + "ok"
    assert garbled_share(garbage) > 0.9
    assert garbled_share("金卡年费 Gold card fee") == 0.0
    assert route_page(102, 0.0, config, garbled_share(garbage)) == (
        "text layer unreadable: 98% of its chars are not text"
    )


def _line(text: str, x0: float, y0: float, x1: float) -> _Segment:
    return _Segment(text, x0, y0, x1, y0 + 20, 0.99)


def test_two_text_columns_read_one_after_the_other() -> None:
    left = [_line(f"left column line {n} of running text", 50, 100 + 30 * n, 480) for n in range(5)]
    right = [
        _line(f"right column line {n} of running text", 520, 100 + 30 * n, 950) for n in range(5)
    ]
    title = _line("A title across both columns of the page", 50, 40, 950)
    footer = _line("Footer across the page, after both columns", 50, 400, 950)
    lines = reading_order([*right, footer, *left, title], 1000)
    assert [line.text for line in lines] == [
        title.text,
        *[s.text for s in left],
        *[s.text for s in right],
        footer.text,
    ]


def test_a_price_table_still_reads_row_by_row() -> None:
    labels = [
        _line(name, 50, 100 + 30 * n, 200)
        for n, name in enumerate(["Annual fee", "Late fee", "Cash fee", "Card fee"])
    ]
    amounts = [_line(f"${n}5", 800, 100 + 30 * n, 850) for n in range(4)]
    lines = reading_order([*amounts, *labels], 1000)
    assert [line.text for line in lines] == [
        "Annual fee $05",
        "Late fee $15",
        "Cash fee $25",
        "Card fee $35",
    ]
