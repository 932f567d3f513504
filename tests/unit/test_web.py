"""The browser UI's pure parts: language choice, UI strings, SVG charts."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from typing import get_args

from appliance.knowledge.extract.base import Route
from appliance.web.charts import score_class, trend_svg
from appliance.web.i18n import STRINGS, accept_language, choose_language


def test_accept_language_picks_the_best_supported() -> None:
    assert accept_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert accept_language("fr-FR, en;q=0.5, zh;q=0.7") == "zh"
    assert accept_language("en-GB,en;q=0.9") == "en"
    assert accept_language("fr, de;q=0.8") is None
    assert accept_language("zh;q=0, en;q=0.1") == "en"
    assert accept_language("zh;q=abc") is None
    assert accept_language("") is None


def test_query_beats_cookie_beats_header() -> None:
    assert choose_language("en", "zh", "zh-CN") == "en"
    assert choose_language(None, "zh", "en-US") == "zh"
    assert choose_language("xx", None, "zh-TW") == "zh"
    assert choose_language(None, None, "") == "en"


def test_both_languages_have_every_string() -> None:
    assert STRINGS["en"].keys() == STRINGS["zh"].keys()
    assert all(v.strip() for lang in STRINGS.values() for v in lang.values())


def test_every_ingestion_route_has_a_name_in_both_languages() -> None:
    for route in get_args(Route):
        assert STRINGS["en"][f"route_{route}"] and STRINGS["zh"][f"route_{route}"], route


def test_trend_svg_is_valid_escaped_svg() -> None:
    svg = str(trend_svg({"Overall": [2.0, 7.5, 12.0], "<b>x</b>": [1.0]}, label="T & T"))
    root = ET.fromstring(svg)  # well-formed: labels are escaped
    assert root.tag.endswith("svg") and root.get("aria-label") == "T & T"
    circles = [e for e in root.iter() if e.tag.endswith("circle")]
    assert len(circles) == 4
    ys = [float(c.get("cy", "0")) for c in circles[:3]]
    assert ys[0] > ys[1] > ys[2]  # higher score, higher on the chart
    assert ys[2] == 12.0  # a score above 10 is drawn at the top, not off the chart
    assert "<b>" not in svg


def test_a_sparkline_has_no_axis_numbers_to_overlap() -> None:
    root = ET.fromstring(str(trend_svg({"Overall": [4.8]}, width=160, height=48, axes=False)))
    assert not [e for e in root.iter() if e.tag.endswith("text")]
    circle = next(e for e in root.iter() if e.tag.endswith("circle"))
    assert "4.8" in "".join(circle.itertext())  # the score is named on hover
    assert 4 <= float(circle.get("cy", "0")) <= 44


def test_many_reports_get_numbers_that_do_not_crowd() -> None:
    root = ET.fromstring(str(trend_svg({"Overall": [5.0] * 120})))
    labels = [e for e in root.iter() if e.tag.endswith("text") and e.get("text-anchor") == "middle"]
    xs = [float(e.get("x", "0")) for e in labels]
    assert labels[0].text == "1" and labels[-1].text == "120"  # the first and the last report
    assert all(b - a >= 28 for a, b in itertools.pairwise(xs))
    few = ET.fromstring(str(trend_svg({"Overall": [5.0] * 6})))
    numbers = [e.text for e in few.iter() if e.tag.endswith("text") and e.get("text-anchor")]
    assert numbers[-6:] == ["1", "2", "3", "4", "5", "6"]  # while they fit, every report


def test_equal_scores_of_several_series_are_set_side_by_side() -> None:
    root = ET.fromstring(str(trend_svg({"Overall": [6.0], "Rapport": [6.0], "Closing": [6.0]})))
    circles = [e for e in root.iter() if e.tag.endswith("circle")]
    assert len({c.get("cy") for c in circles}) == 1  # the same score
    xs = sorted(float(c.get("cx", "0")) for c in circles)
    radius = float(circles[0].get("r", "0"))
    assert all(b - a >= 2 * radius for a, b in itertools.pairwise(xs))  # none hides another
    assert xs[1] == (xs[0] + xs[2]) / 2  # centred on the report's position


def test_a_report_without_a_dimensions_score_leaves_a_gap_at_its_own_place() -> None:
    """Closing was not reached in the second of three calls: its dots stay over reports 1 and
    3 (not drawn as reports 1 and 2), and its line joins those two."""
    series = {"Overall": [4.0, 5.0, 6.0], "Closing": [3.0, None, 7.0]}
    root = ET.fromstring(str(trend_svg(series)))
    dots = [e for e in root.iter() if e.tag.endswith("circle")]
    overall_x = [float(c.get("cx", "0")) for c in dots[:3]]
    closing = dots[3:]
    assert len(closing) == 2
    assert [float(c.get("cx", "0")) for c in closing] == [overall_x[0], overall_x[2]]
    line = [e for e in root.iter() if e.tag.endswith("polyline")][1]
    assert len(line.get("points", "").split()) == 2


def test_score_classes() -> None:
    assert [score_class(v) for v in (None, 2, 5, 7.4, 9)] == [
        "cell-none",
        "cell-low",
        "cell-mid",
        "cell-mid",
        "cell-high",
    ]
