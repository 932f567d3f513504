"""Practice sessions as a CSV file a spreadsheet opens as it is: one row per session.

Columns: the session (id, start, end, state), who (username, display name, team), what
(scenario, persona, language, turns), the report (scored, overall, one column per rubric
dimension seen in the export, compliance incidents by severity). Dimension columns are named
``<dimension name> (<key>)`` in the order they first appear; a session whose rubric has no
such dimension, or whose call never reached it (``shown: false`` in the report: the call ended
before its stages), leaves the cell empty, so that a spreadsheet's AVERAGE is of the dimensions
trainees showed, as on the team page.

For spreadsheets: UTF-8 with a byte-order mark (Excel otherwise reads Chinese names as
mojibake), CRLF line ends, and text cells that start with ``=``, ``+``, ``-``, ``@``, a tab or
a carriage return are prefixed with ``'`` so that a trainee named ``=HYPERLINK(...)`` is shown,
not evaluated (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

import msgspec

from appliance.db.practice import ExportRow

FIXED_COLUMNS = (
    "session_id",
    "started_at",
    "ended_at",
    "state",
    "end_reason",
    "trainee",
    "display_name",
    "team",
    "scenario",
    "persona",
    "language",
    "turns",
    "scored",
    "overall",
)
TAIL_COLUMNS = ("compliance_block", "compliance_warn")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str | None) -> str:
    """A text value as a cell that a spreadsheet shows rather than evaluates."""
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def sessions_csv(rows: Sequence[ExportRow]) -> str:
    """The CSV text (with its byte-order mark) for these sessions."""
    reports: list[dict[str, Any] | None] = []
    dims: dict[str, str] = {}  # key -> name, first seen first
    for row in rows:
        report = msgspec.json.decode(row.report) if row.report else None
        reports.append(report)
        for dim in (report or {}).get("dimensions", []):
            dims.setdefault(dim["key"], dim.get("name") or dim["key"])
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(
        [*FIXED_COLUMNS, *(text_cell(f"{n} ({k})") for k, n in dims.items()), *TAIL_COLUMNS]
    )
    for row, report in zip(rows, reports, strict=True):
        scored = report is not None and report.get("scored", True) is not False
        scores = {
            d["key"]: d.get("score")
            for d in (report or {}).get("dimensions", [])
            if d.get("shown", True) is not False
        }
        incidents = [i.get("severity") for i in (report or {}).get("compliance", [])]
        writer.writerow(
            [
                row.session_id,
                row.created_at,
                row.ended_at or "",
                row.state,
                row.end_reason or "",
                text_cell(row.username),
                text_cell(row.display_name),
                text_cell(row.team),
                text_cell(row.scenario),
                text_cell(row.persona),
                row.language,
                row.turns,
                ("yes" if scored else "no") if report else "",
                _number(report.get("overall")) if report and scored else "",
                *(_number(scores.get(k)) if scored else "" for k in dims),
                incidents.count("block") if report else "",
                incidents.count("warn") if report else "",
            ]
        )
    return out.getvalue()
