# ruff: noqa: RUF001 - Chinese strings use full-width punctuation on purpose
"""The printable report page: the rubric as an SVG radar chart, evidence, strengths, incidents.

Rendered on the server with Jinja2 and inline SVG, so it prints and works with no network.
"""

from __future__ import annotations

import math
from pathlib import Path

import jinja2
import markupsafe

from appliance.practice.model import Report, SessionContext
from appliance.web.i18n import STRINGS

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


def radar_svg(
    labels: list[str],
    scores: list[float],
    *,
    size: int = 320,
    top: float = 10,
    shown: list[bool] | None = None,
    not_shown: str = "",
) -> str:
    """An SVG radar chart (scores 0..top), escaped and self-contained. A dimension the call
    never reached (``shown`` False) keeps its 0 on the shape, and its label says so in grey
    (``not_shown``), so the dip reads as "not reached", not as a poor score."""
    n = max(len(labels), 3)
    cx = cy = size / 2
    radius = size / 2 - 60
    pad = 110  # room left and right for the axis labels (anchored outwards)

    def point(i: int, value: float) -> tuple[float, float]:
        angle = -math.pi / 2 + 2 * math.pi * i / n
        r = radius * max(0.0, min(value, top)) / top
        return cx + r * math.cos(angle), cy + r * math.sin(angle)

    rings = []
    for level in (2.5, 5, 7.5, 10):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, level) for i in range(n)))
        rings.append(f'<polygon points="{pts}" fill="none" stroke="#c8ccd4" stroke-width="1"/>')
    axes, texts = [], []
    for i, label in enumerate(labels):
        x, y = point(i, top)
        axes.append(
            f'<line x1="{cx:.1f}" y1="{cy:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="#c8ccd4"/>'
        )
        lx, ly = point(i, top * 1.18)
        anchor = "middle" if abs(lx - cx) < 10 else ("start" if lx > cx else "end")
        reached = shown is None or i >= len(shown) or shown[i]
        style = "" if reached else ' fill="#4b5563" font-style="italic"'
        text = label if reached or not not_shown else f"{label} ({not_shown})"
        texts.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" font-size="11"{style}>'
            f"{markupsafe.escape(text)}</text>"
        )
    shape = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, s) for i, s in enumerate(scores)))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{-pad} 0 {size + 2 * pad} {size}" '
        f'width="{size + 2 * pad}" height="{size}" role="img" '
        'aria-label="Rubric scores radar chart">'
        + "".join(rings + axes)
        + f'<polygon points="{shape}" fill="rgba(37,99,235,0.25)" stroke="#1d4ed8" '
        'stroke-width="2"/>' + "".join(texts) + "</svg>"
    )


# key: (English, Chinese); the page speaks the session's language, like its content
_REPORT_STRINGS: dict[str, tuple[str, str]] = {
    "report": ("Report", "报告"),
    "session": ("session", "练习"),
    "back": ("← History", "← 历史"),
    "back_team": ("← Team", "← 团队"),
    "pending": (
        "The report is being written: this page reloads by itself in a few seconds.",
        "报告正在生成：本页几秒后会自动刷新。",
    ),
    "trainee": ("Trainee", "学员"),
    "turns": ("turns", "轮"),
    "rubric": ("rubric", "评分标准"),
    "overall": ("overall (weighted)", "总分（加权）"),
    "dimensions": ("Dimensions", "各维度"),
    "dimension": ("Dimension", "维度"),
    "score": ("Score", "得分"),
    "comment": ("Comment and evidence", "评语与依据"),
    "weight": ("weight", "权重"),
    "turn": ("Turn {n}", "第 {n} 轮"),
    "not_shown": ("not reached in this call", "本次未涉及"),
    "ended_at": ("Turn {n}, where the call ended", "第 {n} 轮（通话在此结束）"),
    "strengths": ("Strengths", "亮点"),
    "improve": ("To improve", "待改进"),
    "focus": ("Recommended focus:", "建议重点："),
    "stages": ("Conversation stages", "对话阶段"),
    "never": ("Never covered:", "未覆盖："),
    "all_covered": ("Every stage slot was covered.", "所有阶段要点均已覆盖。"),
    "compliance": ("Compliance", "合规"),
    "no_incidents": ("No incidents.", "无违规。"),
    "who_trainee": ("trainee", "学员"),
    "who_customer": ("customer", "客户"),
    "severity_warn": ("warn", "警告"),
    "severity_block": ("block", "拦截"),
    "transcript": ("Transcript", "对话记录"),
    "not_scored": ("Not scored: no turns", "未评分：没有对话轮次"),
    "ended_idle": (
        "Ended by the appliance: nothing was said in this session for a long time.",
        "本次练习长时间没有发言，由系统自动结束。",
    ),
}


_WHY_DETERMINISTIC: dict[str, tuple[str, str]] = {
    "busy": ("the language model was busy", "语言模型繁忙"),
    "llm_timeout": ("the language model took too long", "语言模型超时"),
    "llm_unavailable": ("the language model was unavailable", "语言模型不可用"),
    "llm_not_started": ("the language model was not running", "语言模型未启动"),
    "structured_output_invalid": (
        "the language model gave no valid answer",
        "语言模型未给出有效答案",
    ),
    "inconsistent": (
        "the answer of {model} did not match the transcript",
        "{model} 的评分与对话记录不符",
    ),
}


def scored_by(generated_by: str, language: str) -> str:
    """Who scored the report, in words: the model, or the per-turn scores and why."""
    zh = language == "zh"
    if generated_by.startswith("not scored"):
        return "未评分" if zh else "not scored"
    if not generated_by.startswith("deterministic"):
        return f"评分模型 {generated_by}" if zh else f"scored by {generated_by}"
    reason = generated_by.removeprefix("deterministic").strip(" ()")
    code, _, model = reason.partition(": ")
    pair = _WHY_DETERMINISTIC.get(code)
    why = (pair[1] if zh else pair[0]).format(model=model) if pair else reason
    if zh:
        return "依据逐轮评分" + (f"（{why}）" if why else "")
    return "scored from the per-turn scores" + (f" ({why})" if why else "")


def report_strings(language: str) -> dict[str, str]:
    """The report page's words in the session's language (English unless it is Chinese)."""
    index = 1 if language == "zh" else 0
    return {key: pair[index] for key, pair in _REPORT_STRINGS.items()}


def slot_names(language: str) -> dict[str, str]:
    """Stage slot key -> its name as the practice page shows it, in the session's language."""
    strings = STRINGS["zh" if language == "zh" else "en"]
    return {key[len("slot_") :]: text for key, text in strings.items() if key.startswith("slot_")}


def render_report_pending_html(session_id: int, language: str, *, back_href: str) -> str:
    """What a browser gets for a report not written yet: a page that reloads itself."""
    template = _ENV.get_template("report_pending.html")
    return template.render(
        session_id=session_id,
        lang=language,
        t=report_strings(language),
        back_href=back_href,
        refresh_s=3,
    )


def render_report_html(
    report: Report,
    ctx: SessionContext,
    trainee: str,
    *,
    end_reason: str | None = None,
    back_href: str = "/history",
) -> str:
    """The report page for one session, in the session's language.

    ``end_reason`` ``idle`` adds a line saying the appliance, not the trainee, ended it.
    ``back_href``: the trainee's own history, or the team page for a manager reading it.
    """
    chart = (
        radar_svg(
            [d.name for d in report.dimensions],
            [d.score for d in report.dimensions],
            shown=[d.shown for d in report.dimensions],
            not_shown=report_strings(ctx.language)["not_shown"],
        )
        if report.scored
        else ""
    )
    template = _ENV.get_template("report.html")
    return template.render(
        report=report,
        scenario=ctx.scenario,
        persona=ctx.persona,
        rubric=ctx.rubric,
        trainee=trainee,
        end_reason=end_reason,
        history={t.turn: t for t in ctx.history},
        chart=markupsafe.Markup(chart),  # noqa: S704 - built here, every label escaped
        lang=ctx.language,
        t=report_strings(ctx.language),
        scored_by=scored_by(report.generated_by, ctx.language),
        slot_names=slot_names(ctx.language),
        back_href=back_href,
    )
