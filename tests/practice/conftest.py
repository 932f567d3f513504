# ruff: noqa: RUF001 (Chinese test text has full-width punctuation)
"""Practice fixtures: the real bundled LLM, a real KnowledgeService, and contexts built from data.

The LLM is a real LlamaCppBackend on models/gemma-3-270m-q4_k_m.gguf, started once per test
session on an asyncio loop running in its own thread (so sync tests can drive async agents).
The KnowledgeService runs on a temp state dir with a real SQLite file, the bundled embedding
model and a real LanceDB dir; a two-page product-sheet PDF (reportlab) and a Chinese FAQ
Markdown file go through the real ingestion pipeline.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from appliance.config import LLMConfig, PathsConfig, Settings
from appliance.db.database import Database
from appliance.db.migrations import migrate
from appliance.knowledge.service import KnowledgeService
from appliance.llm.llama_cpp import LlamaCppBackend
from appliance.practice.model import (
    ComplianceRule,
    Persona,
    Product,
    Rubric,
    RubricDimension,
    Scenario,
    SessionContext,
    StageState,
    TurnRecord,
    Waiver,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
COLLECTION = "practice-test"


class LoopThread:
    """An asyncio loop on its own thread, so session-scoped async parts work in sync tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 180) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    runner = LoopThread()
    yield runner
    runner.close()


@pytest.fixture(scope="session")
def llm(loop: LoopThread) -> Iterator[LlamaCppBackend]:
    config = LLMConfig(
        context_tokens=8192, max_sequences=4, queue_max=8, batch_tokens=256, request_timeout_s=120
    )
    backend = LlamaCppBackend(config, MODEL)
    loop.run(backend.start())
    yield backend
    loop.run(backend.stop())


def product_sheet_pdf() -> bytes:
    """A two-page product sheet; the fee and waiver facts are at the bottom of page 2."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    pdf = canvas.Canvas(buf, pagesize=A4)
    pdf.setTitle("Platinum Card Product Sheet")
    page1 = [
        "Platinum Card - Product Sheet",
        "Benefits: airport lounge access worldwide, travel insurance,",
        "and 2 points per dollar on dining and travel.",
        "Eligibility: business owners with an annual income above 60,000 USD.",
        *[
            f"Travel benefit {i}: lounge visits, priority boarding and hotel upgrades at partners."
            for i in range(1, 25)
        ],
    ]
    page2 = [
        *[
            f"Service note {i}: cards are delivered by courier within five working days."
            for i in range(1, 16)
        ],
        "Fees and waivers",
        "The annual fee of the Platinum Card is 695 USD.",
        "The annual fee is waived when the card spend reaches 30,000 USD in a card year.",
        "There is no foreign transaction fee on the Platinum Card.",
    ]
    for lines in (page1, page2):
        y = 800
        for line in lines:
            pdf.drawString(50, y, line)
            y -= 18
        pdf.showPage()
    pdf.save()
    return buf.getvalue()


FAQ_ZH = """# 白金卡常见问题

## 年费是多少？
白金卡年费为695美元。一个卡年内消费满30000美元即可免除年费。

## 有哪些权益？
全球机场贵宾厅、旅行保险，餐饮和旅行消费每美元积2分。
"""


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    state = tmp_path_factory.mktemp("practice-state")
    return Settings(paths=PathsConfig(state_dir=str(state), models_dir=str(ROOT / "models")))


@pytest.fixture(scope="session")
def knowledge(loop: LoopThread, settings: Settings) -> Iterator[KnowledgeService]:
    migrate(settings.db_path)
    db = Database(settings.db_path)
    loop.run(db.__aenter__())
    service = KnowledgeService(settings, db, resume=False)
    loop.run(service.start())

    async def ingest() -> None:
        jobs = []
        for name, data in (
            ("platinum-product-sheet.pdf", product_sheet_pdf()),
            ("platinum-faq-zh.md", FAQ_ZH.encode()),
        ):
            up = await service.upload(
                filename=name, data=data, uploader_id=None, collection=COLLECTION
            )
            assert up.job is not None
            jobs.append(up.job.id)
        for _ in range(1200):
            states = [await service.jobs.get(j) for j in jobs]
            if all(s is not None and s.state in ("done", "failed") for s in states):
                assert all(s is not None and s.state == "done" for s in states), states
                return
            await asyncio.sleep(0.2)
        raise AssertionError("ingestion did not finish")

    loop.run(ingest(), timeout=400)
    yield service
    loop.run(service.stop())
    loop.run(db.__aexit__(None, None, None))


# --- contexts built from literal data ---------------------------------------------------------

PRODUCT = Product(
    id=1,
    name="Platinum Card",
    currency="USD",
    fees={"annual_fee": 695.0, "foreign_transaction_pct": 0.0},
    waivers=[
        Waiver(
            fee="annual_fee",
            condition="card spend of 30,000 USD or more in a card year",
            min_annual_spend=30000.0,
        ),
        Waiver(fee="annual_fee", condition="first year free for new applicants"),
    ],
    benefits=[
        "airport lounge access worldwide",
        "travel insurance",
        "2 points per dollar on dining",
    ],
    eligibility=["business owners with an annual income above 60,000 USD"],
    description="a premium credit card for business owners who travel",
)

PERSONA_EN = Persona(
    id=1,
    name="Mr. Chen",
    difficulty="hard",
    description="A busy restaurant owner who pays 695 USD a year for his card and wants to cancel it.",
    goals=["stop paying the annual fee"],
    objections=["The fee is too high for what I get.", "Another bank offers a card with no fee."],
    knows=["he spends about 40,000 USD a year on the card"],
    language="en",
    initial_mood=0.4,
)

PERSONA_ZH = Persona(
    id=2,
    name="陈先生",
    difficulty="medium",
    description="一位忙碌的餐厅老板，每年为这张卡支付695美元年费，想要销卡。",
    goals=["不再支付年费"],
    objections=["年费太贵了，不值这个价。"],
    knows=["他每年用这张卡消费大约4万美元"],
    language="zh",
    initial_mood=0.4,
)

SCENARIO = Scenario(
    id=1,
    course_id=None,
    name="Retention call",
    description="The customer called to cancel his Platinum Card because of the annual fee.",
    objective="Keep the customer; agree a fee waiver.",
    kind="retention",
    product_id=1,
    rubric_id=1,
    knowledge_collection=COLLECTION,
)

RUBRIC = Rubric(
    id=1,
    version=1,
    name="Default rubric",
    dimensions=[
        RubricDimension(
            key="rapport",
            name="Rapport",
            weight=1.0,
            description="Greets the customer by name and builds rapport.",
            stages=["OPENING"],
        ),
        RubricDimension(
            key="needs_discovery",
            name="Needs discovery",
            weight=1.5,
            description="Asks open questions about needs, budget and timeline.",
            stages=["NEEDS_DISCOVERY"],
        ),
        RubricDimension(
            key="objection_handling",
            name="Objection handling",
            weight=2.0,
            description="Acknowledges objections and answers them with facts.",
            stages=["OBJECTION_HANDLING"],
        ),
        RubricDimension(
            key="compliance",
            name="Compliance",
            weight=1.0,
            description="Says nothing misleading: no guarantees, no pressure.",
        ),
    ],
)

RULES = [
    ComplianceRule(
        id=1,
        name="No risk-free claims",
        kind="phrase",
        pattern="risk-free",
        severity="block",
        applies_to="both",
        message="Never call a product risk-free.",
    ),
    ComplianceRule(
        id=2,
        name="No guaranteed returns",
        kind="regex",
        pattern=r"guarantee(d|s)?\b.{0,30}\b(return|profit|risk)",
        severity="block",
        applies_to="trainee",
    ),
    ComplianceRule(
        id=3,
        name="No pressure",
        kind="phrase",
        pattern="sign today",
        severity="warn",
        applies_to="trainee",
    ),
    ComplianceRule(
        id=4, name="无风险", kind="phrase", pattern="无风险", severity="block", applies_to="both"
    ),
    ComplianceRule(
        id=5,
        name="保证收益",
        kind="regex",
        pattern=r"保证.{0,6}收益",
        severity="block",
        applies_to="trainee",
    ),
]


def context(
    *,
    session_id: int = 1,
    language: str = "en",
    history: list[TurnRecord] | None = None,
    stage: str = "OPENING",
    mood: float = 0.4,
    slots: dict[str, bool] | None = None,
) -> SessionContext:
    """A SessionContext from the literal data above."""
    zh = language == "zh"
    return SessionContext(
        session_id=session_id,
        trainee_name="李娜" if zh else "Anna",
        scenario=SCENARIO,
        persona=PERSONA_ZH if zh else PERSONA_EN,
        product=PRODUCT,
        rubric=RUBRIC,
        rules=RULES,
        history=history or [],
        stage=StageState(stage=stage, slots=slots or {}),  # type: ignore[arg-type]
        mood=mood,
        language="zh" if zh else "en",
    )
