"""Inline SVG charts drawn on the server: they need no script and no network, and they print."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import markupsafe

LABEL_GAP_PX = 28
"""The least room between two numbers on the x axis."""
PALETTE = ("#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f")


def trend_svg(
    series: Mapping[str, Sequence[float | None]],
    *,
    width: int = 640,
    height: int = 240,
    top: float = 10.0,
    label: str = "Score trend",
    axes: bool = True,
) -> markupsafe.Markup:
    """A line chart of scores (0..top) per series, oldest first; one point per report.

    A None is a report without that score (a rubric dimension the call never reached): no dot
    there, and the line goes on from the report before to the report after.

    ``axes`` False: a sparkline for a table cell, the grid lines without their numbers (at
    48 px high they would overlap); each point still names its score on hover.
    """
    left, right, upper, lower = (36, 12, 12, 28) if axes else (4, 4, 4, 4)
    plot_w, plot_h = width - left - right, height - upper - lower
    longest = max((len(v) for v in series.values()), default=0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'class="chart" role="img" aria-label="{markupsafe.escape(label)}">'
    ]
    for level in (0, 2.5, 5, 7.5, 10):
        y = upper + plot_h * (1 - level / top)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#d5d9e0"/>'
        )
        if axes:
            parts.append(
                f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
                f'fill="#374151">{level:g}</text>'
            )

    def x_of(i: int) -> float:
        return left + (plot_w * i / (longest - 1) if longest > 1 else plot_w / 2)

    for i in _ticks(longest, plot_w) if axes else []:
        parts.append(
            f'<text x="{x_of(i):.1f}" y="{height - 8}" text-anchor="middle" font-size="11" '
            f'fill="#374151">{i + 1}</text>'
        )

    def y_of(v: float) -> float:
        return upper + plot_h * (1 - max(0.0, min(v, top)) / top)

    # series with the same score at the same report share a spot: their dots are set side by
    # side there (the lines keep the true positions), so none hides another
    radius = 3.5 if axes else 3.0
    sharing: dict[tuple[int, int], list[int]] = {}
    points = {
        name: [(i, v) for i, v in enumerate(values) if v is not None]
        for name, values in series.items()
    }
    for n, shown in enumerate(points.values()):
        for i, v in shown:
            sharing.setdefault((i, round(max(0.0, min(v, top)) * 20)), []).append(n)
    for n, (name, shown) in enumerate(points.items()):
        if len(shown) > 1:
            path = " ".join(f"{x_of(i):.1f},{y_of(v):.1f}" for i, v in shown)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{PALETTE[n % len(PALETTE)]}" '
                f'stroke-width="{3 if n == 0 else 1.5}"><title>{markupsafe.escape(name)}</title>'
                "</polyline>"
            )
    for n, (name, shown) in enumerate(points.items()):
        for i, v in shown:
            spot = sharing[(i, round(max(0.0, min(v, top)) * 20))]
            dx = (spot.index(n) - (len(spot) - 1) / 2) * (2 * radius + 1)
            parts.append(
                f'<circle cx="{x_of(i) + dx:.1f}" cy="{y_of(v):.1f}" r="{radius:g}" '
                f'fill="{PALETTE[n % len(PALETTE)]}" stroke="#fff" stroke-width="0.75">'
                f"<title>{markupsafe.escape(name)}: {v:.1f}</title></circle>"
            )
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))  # noqa: S704 - built here, every label escaped


def _ticks(points: int, plot_w: int) -> list[int]:
    """Which points get their number under the x axis: all of them while they fit
    :data:`LABEL_GAP_PX` apart, else every step-th point, the first and the last always."""
    step = max(1, -(-points * LABEL_GAP_PX // max(plot_w, 1)))
    ticks = list(range(0, points, step))
    if ticks and ticks[-1] != points - 1:
        if len(ticks) == 1:
            ticks.append(points - 1)
        else:
            ticks[-1] = points - 1  # the last report's number instead of one just before it
    return ticks


def legend(series: list[str]) -> list[tuple[str, str]]:
    """(name, colour) pairs in the order trend_svg draws them."""
    return [(name, PALETTE[n % len(PALETTE)]) for n, name in enumerate(series)]


def score_class(score: float | None) -> str:
    """A CSS class for a 0..10 score cell (low / mid / high)."""
    if score is None:
        return "cell-none"
    return "cell-low" if score < 5 else ("cell-mid" if score < 7.5 else "cell-high")
