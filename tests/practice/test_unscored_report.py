"""A session with no turns gets an unscored report, and the evaluator never asks the LLM for it."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest
from appliance.config import LLMConfig
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.practice.agents.evaluator import RubricEvaluator
from appliance.practice.stages import ALL_SLOTS

from tests.practice.conftest import MODEL, RUBRIC, LoopThread, context


class FaultInjectedLLMThatFailsTheTestWhenCalled(LlamaCppBackend):
    """The real backend class (never started), with every generation path failing the test."""

    def stream(self, request: Any) -> NoReturn:
        raise AssertionError(f"the LLM was asked: {request}")

    async def generate(self, request: Any) -> NoReturn:
        raise AssertionError(f"the LLM was asked: {request}")

    async def generate_json(self, tp: Any, request: Any) -> NoReturn:
        raise AssertionError(f"the LLM was asked for {tp}: {request}")


@pytest.mark.parametrize("language", ["en", "zh"])
def test_no_turns_is_not_scored_and_costs_no_llm_call(loop: LoopThread, language: str) -> None:
    evaluator = RubricEvaluator(FaultInjectedLLMThatFailsTheTestWhenCalled(LLMConfig(), MODEL))
    report = loop.run(evaluator.report(context(language=language, history=[]), []))
    assert report.scored is False
    assert report.not_scored_reason == "no_turns"
    assert report.dimensions == [] and report.strengths == [] and report.improvements == []
    assert report.turns == 0
    assert report.rubric_id == RUBRIC.id and report.rubric_version == RUBRIC.version
    assert set(report.slot_coverage) == set(ALL_SLOTS) and not any(report.slot_coverage.values())
    assert ("未评分" in report.recommended_focus) == (language == "zh")
    assert "no turns" in report.generated_by
