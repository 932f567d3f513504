"""kill -9 in the middle of a 50-document ingestion: after a restart every document is done,
chunk counts equal a clean run's, and LanceDB holds no duplicate rows."""

from __future__ import annotations

import random
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import lancedb
import pytest
from appliance.testing import ServerProcess

from tests.conftest import Account, add_user, login
from tests.integration.knowledge_helpers import lance_tables, upload, wait_jobs

WORDS = [
    "premium",
    "account",
    "fee",
    "card",
    "travel",
    "insurance",
    "refund",
    "branch",
    "loan",
    "rate",
    "customer",
    "policy",
    "statement",
    "transfer",
    "reward",
    "points",
    "annual",
    "cashback",
    "limit",
    "overdraft",
    "mortgage",
    "savings",
    "deposit",
    "interest",
    "exchange",
    "currency",
    "online",
    "mobile",
    "security",
    "fraud",
    "dispute",
    "charge",
]


def corpus(n: int = 50) -> dict[str, str]:
    """n generated Markdown documents, about 150 words each, in sections."""
    rng = random.Random(4)
    docs = {}
    for d in range(n):
        parts = [f"# Product sheet {d}"]
        for s in range(2):
            parts.append(f"## Section {s}")
            for _ in range(2):
                sentence_count = rng.randint(2, 4)
                parts.append(
                    " ".join(
                        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize()
                        + "."
                        for _ in range(sentence_count)
                    )
                )
        docs[f"sheet{d:02d}.md"] = "\n\n".join(parts)
    return docs


def _rows(state_dir: Path) -> list[dict[str, object]]:
    db = lancedb.connect(str(state_dir / "lancedb"))
    name = next(n for n in lance_tables(db) if n.startswith("children_"))
    return db.open_table(name).to_arrow().select(["id", "document_id"]).to_pylist()


@pytest.mark.timeout(600)
def test_kill_9_mid_ingestion_resumes_without_duplicates(
    tmp_path: Path, clients: dict[str, httpx.Client]
) -> None:
    docs = corpus()
    # the clean run, on the session's server
    clean_collection = f"clean-{uuid.uuid4().hex[:8]}"
    items = upload(clients["manager"], docs, collection=clean_collection)
    wait_jobs(clients["manager"], [i["job"]["id"] for i in items])
    listed = (
        clients["manager"]
        .get("/api/knowledge/documents", params={"collection": clean_collection})
        .json()
    )
    clean = {d["filename"]: d["chunk_count"] for d in listed}
    assert len(clean) == 50 and all(clean.values())

    state = tmp_path / "crash"
    account = Account("crashmgr", "manager", "alpha")
    add_user(state, account)
    server = ServerProcess(state)
    server.start()
    try:
        client = login(server, account)
        items = upload(client, docs, collection="crash")
        job_ids = [i["job"]["id"] for i in items]
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # kill once some, not all, are done
            states = [client.get(f"/api/knowledge/jobs/{j}").json()["state"] for j in job_ids]
            if states.count("done") >= 5:
                break
            time.sleep(0.2)
        server.kill()
        done_before = states.count("done")
        assert 5 <= done_before < 50, f"{done_before} done when killed: not mid-ingestion"
    finally:
        server.stop()

    with sqlite3.connect(state / "salesboost.db") as conn:
        left = conn.execute("SELECT COUNT(*) FROM jobs WHERE state != 'done'").fetchone()[0]
    assert left > 0, "the kill came after the end"

    restarted = ServerProcess(state)
    with restarted:
        client = login(restarted, account)
        jobs = wait_jobs(client, job_ids)
        assert {j["state"] for j in jobs.values()} == {"done"}
        assert any(j["attempts"] >= 2 for j in jobs.values()), "no job was interrupted mid-run"
        listed = client.get("/api/knowledge/documents", params={"collection": "crash"}).json()
        after = {d["filename"]: d["chunk_count"] for d in listed}
        assert after == clean, "chunk counts differ from the clean run"
        rows = _rows(state)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), "duplicate rows in LanceDB"
        assert len(rows) == sum(clean.values())
        per_doc: dict[object, int] = {}
        for r in rows:
            per_doc[r["document_id"]] = per_doc.get(r["document_id"], 0) + 1
        assert per_doc == {d["id"]: d["chunk_count"] for d in listed}


def test_rows_of_a_delete_cut_short_by_a_crash_are_dropped_at_the_next_start(
    tmp_path: Path,
) -> None:
    """Fault injection: the crash falls between a delete's SQLite commit and dropping its rows
    from LanceDB (made by deleting the SQLite row alone while the server is down). The next
    start drops the orphaned rows, so "delete leaves no trace" holds after a crash too."""
    state = tmp_path / "orphans"
    account = Account("orphanmgr", "manager", "alpha")
    add_user(state, account)
    docs = dict(list(corpus(3).items()))
    with ServerProcess(state) as server:
        client = login(server, account)
        items = upload(client, docs, collection="orphans")
        wait_jobs(client, [i["job"]["id"] for i in items])
        ids = sorted(int(i["document"]["id"]) for i in items)
    assert {r["document_id"] for r in _rows(state)} == set(ids)
    with sqlite3.connect(state / "salesboost.db") as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM documents WHERE id = ?", (ids[0],))  # the committed half
    assert ids[0] in {r["document_id"] for r in _rows(state)}

    with ServerProcess(state) as server:
        client = login(server, account)
        # the store opens on first use: a search
        client.get("/api/knowledge/search", params={"q": "fee"}).raise_for_status()
        assert {r["document_id"] for r in _rows(state)} == set(ids[1:])
        db = lancedb.connect(str(state / "lancedb"))
        parents = db.open_table("parents").to_arrow().select(["document_id"]).to_pylist()
        assert {p["document_id"] for p in parents} == set(ids[1:])
