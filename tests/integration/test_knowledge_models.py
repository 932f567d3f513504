"""An operator's own embedding and reranker models: BGE-M3 (dense + sparse) and a cross-encoder.

The models are synthetic (tests/integration/synthetic_models.py: the real architectures and
file layouts, seeded random weights), registered with the real `salesboost models add`, and
run by FlagEmbedding inside a real `salesboost serve` and `salesboost reindex`. The checks
are on the plumbing: that the sparse weights are stored, read back and fused, that the
reranker orders the results by its own scores, that switching the model by reindex works
while the server answers. Ranking quality is not checked (the weights are random).
"""

from __future__ import annotations

import json
import threading
import tomllib
from pathlib import Path
from typing import Any

import httpx
import lancedb
import pytest
from appliance.testing import ServerProcess, appliance_env, cli

from tests.conftest import Account, add_user, login
from tests.integration.knowledge_helpers import ingest, search
from tests.integration.synthetic_models import (
    models_dir_with_bundled,
    write_bge_m3,
    write_reranker,
)

M3 = "bge-m3-synthetic"
RERANKER = "reranker-synthetic"
QUERY = "vortexium quarzite"
CORPUS = {
    "alloy.md": (
        "# Materials\n\nThe bracket is milled from vortexium quarzite, a light alloy that does "
        "not rust."
    ),
    "fees.md": "# Fees\n\nThe premium card costs 120 dollars a year, waived in the first year.",
    "travel.md": "# Travel\n\nLost luggage is covered up to 900 euros per trip.",
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir: the bundled models plus the synthetic ones, registered by the CLI."""
    root = tmp_path_factory.mktemp("models")
    target = models_dir_with_bundled(root / "models")
    write_bge_m3(target / M3)
    write_reranker(target / RERANKER)
    env = appliance_env(root / "state", SALESBOOST__PATHS__MODELS_DIR=str(target))
    for name, role, extra in (
        (M3, "embedding", ["--languages", "zh, en"]),  # multilingual: dense for any query
        (RERANKER, "reranker", []),
    ):
        added = cli(root, "models", "add", str(target / name), "--role", role, *extra, env=env)
        assert added.returncode == 0, added.stderr
    return target


def _env(models: Path, state: Path, **extra: str) -> dict[str, str]:
    return {"SALESBOOST__PATHS__MODELS_DIR": str(models), **extra}


def test_models_add_registers_model_directories_by_role(models: Path, tmp_path: Path) -> None:
    manifest = tomllib.loads((models / "manifest.toml").read_text())
    entries = {m["name"]: m for m in manifest["model"]}
    m3, reranker = entries[M3], entries[RERANKER]
    assert (m3["role"], m3["format"], m3["arch"]) == ("embedding", "bge-m3", "XLMRobertaModel")
    assert reranker["role"] == "reranker"
    assert reranker["arch"] == "XLMRobertaForSequenceClassification"
    assert m3["languages"] == ["en", "zh"] and "languages" not in reranker
    files = {f["path"] for f in m3["files"]}
    assert {f"{M3}/sparse_linear.pt", f"{M3}/model.safetensors", f"{M3}/tokenizer.json"} <= files
    assert all(len(f["sha256"]) == 64 for f in m3["files"])

    env = appliance_env(tmp_path / "state", SALESBOOST__PATHS__MODELS_DIR=str(models))
    listed = cli(tmp_path, "models", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"{M3}\tembedding\tok" in listed.stdout
    assert f"{RERANKER}\treranker\tok" in listed.stdout
    doctor = cli(tmp_path, "doctor", env=env).stdout
    assert "sha256 OK); reads en, zh: full-text search alone for queries in other" in doctor

    before = (models / "manifest.toml").read_text()
    write_reranker(models / "cross-encoder-copy")
    wrong_role = cli(
        tmp_path,
        "models",
        "add",
        str(models / "cross-encoder-copy"),
        "--role",
        "embedding",
        env=env,
    )
    assert wrong_role.returncode == 1 and "--role reranker" in wrong_role.stderr
    write_bge_m3(models / "encoder-copy")
    not_a_reranker = cli(
        tmp_path, "models", "add", str(models / "encoder-copy"), "--role", "reranker", env=env
    )
    assert not_a_reranker.returncode == 1 and "not a cross-encoder" in not_a_reranker.stderr
    languages = cli(
        tmp_path,
        "models",
        "add",
        str(models / "cross-encoder-copy"),
        "--role",
        "reranker",
        "--languages",
        "en",
        env=env,
    )
    assert languages.returncode == 1 and "for an embedding model" in languages.stderr
    (models / "empty-dir").mkdir(exist_ok=True)
    empty = cli(
        tmp_path, "models", "add", str(models / "empty-dir"), "--role", "embedding", env=env
    )
    assert empty.returncode == 1 and "has no config.json" in empty.stderr
    again = cli(tmp_path, "models", "add", str(models / M3), "--role", "embedding", env=env)
    assert again.returncode == 1 and "already in the manifest" in again.stderr
    assert (models / "manifest.toml").read_text() == before

    # a changed weight file is named by `models list`
    sparse = models / M3 / "sparse_linear.pt"
    original = sparse.read_bytes()
    try:
        sparse.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        corrupt = cli(tmp_path, "models", "list", "--deep", env=env)
        assert f"{M3}\tembedding\tcorrupt" in corrupt.stdout
    finally:
        sparse.write_bytes(original)


def _children(state: Path) -> list[dict[str, Any]]:
    db = lancedb.connect(str(state / "lancedb"))
    name = next(n for n in db.list_tables().tables if n.startswith("children_g"))
    rows: list[dict[str, Any]] = db.open_table(name).to_arrow().to_pylist()
    return rows


def test_bge_m3_sparse_weights_are_stored_and_fused_and_the_reranker_orders(
    models: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    account = Account("m3mgr", "manager", "alpha")
    add_user(state, account)
    env = _env(
        models,
        state,
        SALESBOOST__KNOWLEDGE__EMBEDDING_MODEL=M3,
        SALESBOOST__KNOWLEDGE__RERANKER_MODEL=RERANKER,
    )
    with ServerProcess(state, **env) as server:
        client = login(server, account)
        ingest(client, CORPUS, collection="m3")
        children = _children(state)
        assert {len(c["vector"]) for c in children} == {64}  # the synthetic model's size
        assert all(c["sparse"] for c in children), "every child keeps its lexical weights"

        response = client.get(
            "/api/knowledge/search", params={"q": QUERY, "collection": "m3", "k": 3}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["reranker"] == RERANKER
        results = body["results"]
        assert len(results) == 3

        # the lexical scores the sparse list must follow, from the weights the server stored
        # and the query's weights computed here by FlagEmbedding itself
        from FlagEmbedding import BGEM3FlagModel

        m3 = BGEM3FlagModel(str(models / M3), use_fp16=False, devices="cpu")
        query_weights = m3.encode([QUERY], return_sparse=True)["lexical_weights"][0]
        lexical = {
            c["text"]: float(
                m3.compute_lexical_matching_score(query_weights, json.loads(c["sparse"]))
            )
            for c in children
        }
        by_title = {r["citation"]["title"]: r for r in results}
        alloy = by_title["alloy"]
        assert lexical[alloy["citation"]["snippet"]] >= 6  # vortex ##ium qu ##ar ##zi ##te
        assert alloy["ranks"].get("sparse") == 1
        for r in results:  # in the sparse list exactly when the stored weights share a token
            assert ("sparse" in r["ranks"]) == (lexical[r["citation"]["snippet"]] > 0), r
        ranked = sorted(
            (r for r in results if "sparse" in r["ranks"]), key=lambda r: r["ranks"]["sparse"]
        )
        scores = [lexical[r["citation"]["snippet"]] for r in ranked]
        assert scores == sorted(scores, reverse=True)

        # the reranker scored every parent and the results are in its order
        from FlagEmbedding import FlagReranker

        reranker = FlagReranker(str(models / RERANKER), use_fp16=False, devices="cpu")
        expected = reranker.compute_score([[QUERY, r["text"]] for r in results], normalize=True)
        got = [r["rerank_score"] for r in results]
        assert got == pytest.approx(expected, abs=1e-4)
        assert got == sorted(got, reverse=True)


def test_reindex_to_bge_m3_while_serving_then_serve_with_it(models: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    account = Account("reidx", "manager", "alpha")
    add_user(state, account)
    env = _env(models, state)
    with ServerProcess(state, **env) as server:  # the bundled MiniLM
        client = login(server, account)
        ingest(client, CORPUS, collection="switch")
        assert {len(c["vector"]) for c in _children(state)} == {384}
        answers: list[int] = []
        stop = threading.Event()

        def keep_searching() -> None:
            with httpx.Client(base_url=server.url, cookies=client.cookies, timeout=30) as c:
                while not stop.is_set():
                    r = c.get("/api/knowledge/search", params={"q": "luggage", "k": 1})
                    answers.append(r.status_code)

        thread = threading.Thread(target=keep_searching)
        thread.start()
        try:
            reindexed = cli(
                state,
                "reindex",
                env=appliance_env(state, **env, SALESBOOST__KNOWLEDGE__EMBEDDING_MODEL=M3),
            )
        finally:
            stop.set()
            thread.join()
        assert reindexed.returncode == 0, reindexed.stderr
        assert f"with {M3}" in reindexed.stdout
        # the old index answered until the new one was complete; from the switch on, this
        # server (still configured with MiniLM) says why it cannot search, with a stable code
        assert answers[0] == 200 and 200 in answers
        switch = answers.index(503) if 503 in answers else len(answers)
        assert set(answers[:switch]) == {200} and set(answers[switch:]) <= {503}, answers
        stale = client.get("/api/knowledge/search", params={"q": "luggage"})
        assert stale.status_code == 503, stale.text
        assert stale.json()["code"] == "index_model_mismatch"
        assert f"set it to '{M3}' and restart" in stale.json()["message"]
    assert {len(c["vector"]) for c in _children(state)} == {64}

    with ServerProcess(state, **env, SALESBOOST__KNOWLEDGE__EMBEDDING_MODEL=M3) as server:
        client = login(server, account)
        results = search(client, QUERY, collection="switch")
        by_title = {r["citation"]["title"]: r for r in results}
        assert by_title["alloy"]["ranks"].get("sparse") == 1  # the new model's weights
        fees = search(
            client, "premium card costs 120 dollars", collection="switch", mode="fulltext"
        )
        assert fees[0]["citation"]["title"] == "fees"
