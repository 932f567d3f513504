"""The demo pack on a fresh appliance: loaded on first start, ingested by the real pipeline.

A server of its own (fresh state dir, SALESBOOST__DEMO__LOAD_ON_EMPTY=true): the catalogue
appears, the four documents go through extraction/OCR/embedding into the demo collection,
search finds the fee in the product sheet (with its page) and Chinese text for a Chinese
query, and `salesboost demo load` run again duplicates nothing (`--replace` resets edits).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance.practice.demo.loader import read_pack
from appliance.testing import ServerProcess, cli

from tests.conftest import ACCOUNTS, login
from tests.integration.knowledge_helpers import search
from tests.integration.practice_helpers import demo_server as start_demo_server

COLLECTION = "demo"
PACK = read_pack()
FEE = PACK.products[0].fees["annual_fee"]  # 695: every document must quote this amount
FEE_TEXT = f"{FEE:,.0f}"
CJK = re.compile(r"[\u4e00-\u9fff]")
DOCS_TIMEOUT_S = 240  # OCR and embedding on 2 shared cores


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    people = {name: ACCOUNTS[name] for name in ("manager", "trainee")}
    with start_demo_server(tmp_path_factory.mktemp("demo-state"), people) as srv:
        yield srv


@pytest.fixture(scope="module")
def manager(demo_server: ServerProcess) -> Iterator[httpx.Client]:
    client = login(demo_server, ACCOUNTS["manager"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def trainee(demo_server: ServerProcess) -> Iterator[httpx.Client]:
    client = login(demo_server, ACCOUNTS["trainee"])
    yield client
    client.close()


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _eventually(client: httpx.Client, path: str, ready: Any, timeout: float = 30) -> Any:
    """GET until ``ready(body)`` (the pack loads in the background after readiness)."""
    deadline = time.monotonic() + timeout
    while True:
        body = _get(client, path)
        if ready(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


@pytest.fixture(scope="module")
def documents(manager: httpx.Client) -> dict[str, dict[str, Any]]:
    """The demo documents once every job is done (filename -> document)."""
    deadline = time.monotonic() + DOCS_TIMEOUT_S
    docs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        docs = _get(manager, "/api/knowledge/documents", collection=COLLECTION)
        if len(docs) == len(PACK.documents) and all(d["state"] in ("done", "failed") for d in docs):
            break
        time.sleep(1)
    states = {d["filename"]: d["state"] for d in docs}
    assert states == dict.fromkeys(PACK.documents, "done"), states
    return {d["filename"]: d for d in docs}


def test_catalogue_is_loaded_on_first_start(manager: httpx.Client, trainee: httpx.Client) -> None:
    scenarios = _eventually(trainee, "/api/scenarios", lambda b: len(b) >= 4)
    assert len(scenarios) == 4
    assert {(s["language"], s["kind"]) for s in scenarios} == {
        ("en", "retention"),
        ("en", "new_sale"),
        ("zh", "retention"),
        ("zh", "new_sale"),
    }
    assert {s["knowledge_collection"] for s in scenarios} == {COLLECTION}

    personas = _get(trainee, "/api/personas")
    assert len(personas) == 6
    for language in ("en", "zh"):
        mine = [p for p in personas if p["language"] == language]
        assert sorted(p["difficulty"] for p in mine) == ["easy", "hard", "medium"]
    by_id = {p["id"]: p for p in personas}

    rubrics = {r["id"]: r for r in _get(manager, "/api/rubrics")}
    products = {p["id"]: p for p in _get(manager, "/api/products")}
    courses = {c["id"] for c in _get(trainee, "/api/courses")}
    for s in scenarios:
        # every reference resolves to a live row of the scenario's own language
        assert s["course_id"] in courses
        assert s["persona_ids"] and all(
            by_id[p]["language"] == s["language"] for p in s["persona_ids"]
        )
        product = products[s["product_id"]]
        assert product["fees"]["annual_fee"] == FEE
        assert product["waivers"][0]["min_annual_spend"] == 25000
        rubric = rubrics[s["rubric_id"]]
        assert 5 <= len(rubric["dimensions"]) <= 6
        assert sum(d["weight"] for d in rubric["dimensions"]) == pytest.approx(1.0)

    rules = _get(manager, "/api/compliance-rules")
    names = {r["name"] for r in rules}
    assert {"No risk-free claims", "No guaranteed returns", "No pressure tactics"} <= names
    assert {r["severity"] for r in rules} == {"warn", "block"}
    assert {r["kind"] for r in rules} == {"phrase", "regex"}
    # the acceptance sentence trips the risk-free rule; the zh rules catch 保本/稳赚
    risk_free = next(r for r in rules if r["name"] == "No risk-free claims")
    assert re.search(risk_free["pattern"], "This card is guaranteed risk-free")
    zh_patterns = [r["pattern"] for r in rules if CJK.search(r["pattern"])]
    for text in ("这张卡保本", "绝对无风险", "稳赚不赔"):
        assert any(re.search(p, text) for p in zh_patterns), text


def test_documents_are_ingested_and_the_flyer_is_ocred(
    documents: dict[str, dict[str, Any]],
) -> None:
    pdf = documents["aurora-platinum-product-sheet.pdf"]
    assert [r["route"] for r in pdf["routes"]] == ["pdf_text", "pdf_text"]
    flyer = documents["aurora-platinum-flyer-scan.jpg"]
    assert [r["route"] for r in flyer["routes"]] == ["image_ocr"]
    assert not flyer["routes"][0]["low_confidence"]
    assert documents["aurora-platinum-faq.xlsx"]["routes"][0]["route"] == "xlsx"
    assert documents["aurora-platinum-sop.docx"]["routes"][0]["route"] == "docx"
    assert all(d["chunk_count"] > 0 for d in documents.values())
    assert all("demo" in d["tags"] for d in documents.values())


def test_every_document_quotes_the_products_fee(
    manager: httpx.Client, documents: dict[str, dict[str, Any]]
) -> None:
    for filename, doc in documents.items():
        found = search(
            manager, f"annual fee {FEE_TEXT}", collection=COLLECTION, document=doc["id"], k=8
        )
        assert any(FEE_TEXT in r["text"] for r in found), (filename, [r["text"] for r in found])


def test_search_for_the_fee_finds_the_product_sheet_page(
    manager: httpx.Client, documents: dict[str, dict[str, Any]]
) -> None:
    found = search(manager, f"annual fee USD {FEE_TEXT}", collection=COLLECTION, k=8)
    pdf_hits = [
        r for r in found if r["citation"]["filename"] == "aurora-platinum-product-sheet.pdf"
    ]
    assert pdf_hits, [r["citation"]["filename"] for r in found]
    assert pdf_hits[0]["citation"]["page"] == 1  # the English page
    assert FEE_TEXT in pdf_hits[0]["text"]


def test_chinese_query_finds_chinese_text(
    manager: httpx.Client, documents: dict[str, dict[str, Any]]
) -> None:
    found = search(manager, "年费减免条件", collection=COLLECTION, k=5)
    assert found
    top = found[0]
    assert CJK.search(top["text"]), top["text"]
    assert "年费" in top["text"]
    zh_pdf = [
        r
        for r in found
        if r["citation"]["filename"] == "aurora-platinum-product-sheet.pdf"
        and r["citation"]["page"] == 2
    ]
    assert zh_pdf, [(r["citation"]["filename"], r["citation"]["page"]) for r in found]


def _counts(manager: httpx.Client) -> dict[str, int]:
    paths = ("courses", "scenarios", "personas", "rubrics", "products", "compliance-rules")
    counts = {p: len(_get(manager, f"/api/{p}", include_archived="true")) for p in paths}
    counts["documents"] = len(
        _get(manager, "/api/knowledge/documents", collection=COLLECTION, include_retired="true")
    )
    return counts


def test_demo_load_twice_duplicates_nothing_and_replace_resets(
    demo_server: ServerProcess,
    manager: httpx.Client,
    documents: dict[str, dict[str, Any]],
) -> None:
    before = _counts(manager)
    assert before == {
        "courses": 2,
        "scenarios": 4,
        "personas": 6,
        "rubrics": 2,
        "products": 2,
        "compliance-rules": len(PACK.rules),
        "documents": 4,
    }
    for _ in range(2):
        result = cli(demo_server.state_dir, "demo", "load")
        assert result.returncode == 0, result.stderr
        assert "created: nothing" in result.stdout, result.stdout
        assert result.stdout.count("duplicate\t") == 4, result.stdout
    assert _counts(manager) == before

    # a manager edits a demo persona and archives a demo scenario; --replace resets both
    chen = next(p for p in _get(manager, "/api/personas") if p["name"] == "Mr. Chen")
    assert (
        manager.patch(f"/api/personas/{chen['id']}", json={"initial_mood": 0.9}).status_code == 200
    )
    scenario = _get(manager, "/api/scenarios")[0]
    assert manager.delete(f"/api/scenarios/{scenario['id']}").status_code == 204
    result = cli(demo_server.state_dir, "demo", "load", "--replace")
    assert result.returncode == 0, result.stderr
    assert (
        "updated: 9 compliance_rule, 2 course, 6 persona, 2 product, 2 rubric, 4 scenario"
        in result.stdout
    )
    assert _get(manager, f"/api/personas/{chen['id']}")["initial_mood"] == 0.25
    assert _get(manager, f"/api/scenarios/{scenario['id']}")["archived"] is False
    rubric = _get(manager, "/api/rubrics")[0]
    assert rubric["versions"] == [1]  # unchanged dimensions make no new version
    assert _counts(manager) == before


def test_pack_files_ship_with_the_package() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = data["package-data"]["appliance"]
    assert "practice/demo/pack.json" in patterns and "practice/demo/files/*" in patterns
    files = root / "appliance" / "practice" / "demo" / "files"
    assert sorted(p.name for p in files.iterdir()) == sorted(PACK.documents)
