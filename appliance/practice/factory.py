"""Build the practice agents with their collaborators (constructor injection, no globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.config import PracticeConfig
from appliance.llm.base import LLMBackend
from appliance.practice import model
from appliance.practice.agents.coach import GroundedCoach
from appliance.practice.agents.coach_tools import coach_tools
from appliance.practice.agents.compliance import RuleCompliance
from appliance.practice.agents.evaluator import RubricEvaluator
from appliance.practice.agents.npc import LLMCustomer
from appliance.practice.tools import ToolRunner

if TYPE_CHECKING:
    from appliance.knowledge.service import KnowledgeService


def llm_session_keys(session_id: int) -> list[str]:
    """The LLM session keys (KV prefixes) the agents generate under for one practice session:
    the customer (``agents/npc.py``), the coach (``coach.py``), the evaluator (``evaluator.py``)."""
    return [f"practice:{session_id}", f"coach:{session_id}", f"evaluator:{session_id}"]


@dataclass(frozen=True)
class Agents:
    """The agents a coordinator needs, built once per app."""

    customer: LLMCustomer
    coach: GroundedCoach
    compliance: RuleCompliance
    evaluator: RubricEvaluator
    tools: ToolRunner
    llm: LLMBackend

    def session_over(self, session_id: int) -> None:
        """The session has ended and its report is stored (or it was deleted): the KV kept
        for its next turn is not needed again, so the backend drops it (up to ~36 MB a slot
        of a local model's KV parked in RAM, otherwise kept until the slot is reused)."""
        self.llm.forget_sessions(llm_session_keys(session_id))


def build_agents(
    *,
    llm: LLMBackend,
    knowledge: KnowledgeService | None,
    config: PracticeConfig | None = None,
    intent: model.IntentClassifier | None = None,
) -> Agents:
    """The agents on one LLM backend and knowledge service (the evaluator's schema compiles now)."""
    config = config or PracticeConfig()
    compliance = RuleCompliance()
    tools = ToolRunner(
        coach_tools(knowledge, timeout_s=config.tool_timeout_s, search_k=config.coach_search_k),
        concurrency=config.tool_concurrency,
        breaker_failures=config.tool_breaker_failures,
        breaker_reset_s=config.tool_breaker_reset_s,
    )
    customer = LLMCustomer(
        llm,
        max_tokens=config.npc_max_tokens,
        finish_tokens=config.npc_finish_tokens,
        temperature=config.npc_temperature,
    )
    coach = GroundedCoach(
        llm,
        tools,
        compliance=compliance,
        intent=intent,
        max_tokens=config.coach_max_tokens,
        timeout_s=config.coach_timeout_s,
    )
    evaluator = RubricEvaluator(
        llm,
        compliance=compliance,
        max_tokens=config.evaluator_max_tokens,
        timeout_s=config.evaluator_timeout_s,
    )
    # mypy checks here that each agent meets its Protocol in appliance.practice.model
    protocols: tuple[model.Customer, model.Coach, model.Compliance, model.Evaluator] = (
        customer,
        coach,
        compliance,
        evaluator,
    )
    del protocols
    return Agents(
        customer=customer,
        coach=coach,
        compliance=compliance,
        evaluator=evaluator,
        tools=tools,
        llm=llm,
    )
