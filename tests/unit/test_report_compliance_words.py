# ruff: noqa: RUF001 - Chinese report text uses full-width punctuation
"""The report page's compliance incidents speak the session's language: who said it and how
severe it is were printed as the API's English words ("第 2 轮 (trainee): …") in a Chinese
report. Rendered by the real report renderer from literal report data."""

from __future__ import annotations

import re
from typing import Literal

from appliance.practice.model import (
    ComplianceIncident,
    DimensionScore,
    Evidence,
    Persona,
    Report,
    Rubric,
    RubricDimension,
    Scenario,
    SessionContext,
    StageState,
    TurnRecord,
)
from appliance.web.reports import render_report_html


def _page(language: Literal["en", "zh"]) -> str:
    zh = language == "zh"
    rubric = Rubric(
        id=1,
        version=1,
        name="评分" if zh else "Rubric",
        dimensions=[
            RubricDimension(
                key="compliance", name="合规" if zh else "Compliance", weight=1.0, description="d"
            )
        ],
    )
    context = SessionContext(
        session_id=7,
        trainee_name="李娜" if zh else "Anna",
        scenario=Scenario(
            id=1,
            course_id=None,
            name="挽留来电" if zh else "Retention",
            description="d",
            objective="o",
            rubric_id=1,
            language=language,
        ),
        persona=Persona(
            id=1, name="陈先生" if zh else "Mr. Chen", description="d", language=language
        ),
        product=None,
        rubric=rubric,
        rules=[],
        history=[
            TurnRecord(
                turn=1, trainee_text="您好。" if zh else "Hello.", npc_text="嗯。" if zh else "Hm."
            ),
            TurnRecord(
                turn=2,
                trainee_text="这张卡保本。" if zh else "It is risk-free.",
                npc_text="保本？一定稳赚吗？" if zh else "Risk-free, really?",
            ),
        ],
        stage=StageState(),
        mood=0.5,
        language=language,
    )
    report = Report(
        session_id=7,
        rubric_id=1,
        rubric_version=1,
        overall=3.0,
        dimensions=[
            DimensionScore(
                key="compliance",
                name=rubric.dimensions[0].name,
                score=3,
                weight=1.0,
                comment="c",
                evidence=[Evidence(turn=2, quote="保本" if zh else "risk-free")],
            )
        ],
        strengths=[],
        improvements=[],
        recommended_focus="f",
        slot_coverage={},
        slots_missed=[],
        compliance=[
            ComplianceIncident(
                turn=2, who="trainee", rule="禁止“保本”表述", severity="block", excerpt="保本"
            ),
            ComplianceIncident(
                turn=2, who="customer", rule="禁止“稳赚”表述", severity="warn", excerpt="稳赚"
            ),
        ],
        turns=2,
        generated_by="llama_cpp:gemma-3-270m",
    )
    return render_report_html(report, context, "李娜" if zh else "Anna")


def _incidents(page: str) -> list[str]:
    """The compliance section's items (the only list items classed by severity)."""
    return re.findall(r'<li class="(?:warn|block)">(.*?)</li>', page, flags=re.S)


def test_a_chinese_reports_incidents_name_who_and_severity_in_chinese() -> None:
    incidents = _incidents(_page("zh"))
    assert len(incidents) == 2, incidents
    assert incidents[0].startswith("第 2 轮 (学员 · 拦截): 禁止“保本”表述"), incidents
    assert incidents[1].startswith("第 2 轮 (客户 · 警告): 禁止“稳赚”表述"), incidents
    for english in ("trainee", "customer", "block", "warn"):
        assert not [i for i in incidents if english in i], (english, incidents)


def test_an_english_reports_incidents_keep_the_english_words() -> None:
    incidents = _incidents(_page("en"))
    assert incidents[0].startswith("Turn 2 (trainee · block): "), incidents
    assert incidents[1].startswith("Turn 2 (customer · warn): "), incidents
