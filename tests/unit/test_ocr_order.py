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
