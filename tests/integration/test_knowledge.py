# ruff: noqa: RUF001 - the Chinese passages use full-width punctuation on purpose
"""Knowledge indexing on the real server: hybrid search, dedupe, versions, delete, bad input.

Real parts only: the session's `salesboost serve`, its SQLite file, its LanceDB dir and the
bundled MiniLM. Each test works in its own collection so they do not see each other.
"""

from __future__ import annotations

import hashlib
import uuid

import httpx
import lancedb
import pytest
from appliance.testing import ServerProcess

from tests.integration.knowledge_helpers import ingest, lance_tables, search, upload, wait_jobs

CODE = "ZX-4471-Q"

# The code appears once, inside a passage about something else; the decoys are short lists
# of other codes (no n-gram in common with it). To the embedding the bare code is "some part
# code", so the decoys sit closer to it than the passage that holds it.
CODE_CORPUS = {
    "target.md": (
        "# Returns policy\n\nA customer may return any accessory within thirty days of delivery "
        "if the packaging is intact; the refund goes back to the original payment method within "
        "five working days. Exchanges are free of charge. The only exception is the wall bracket "
        f"{CODE}, which is made to order and cannot be returned."
    ),
    "codes1.md": "# Models\n\nModel numbers KM-2230-P and RT-5590-B identify the two router generations.",
    "codes2.md": "# Format\n\nSerial code format: AB-0000-C, two letters, four digits and a check letter.",
    "codes3.md": "# Family\n\nThe router family: GH-2208-M, PN-3309-P and YV-5502-T part codes.",
    "codes4.md": "# Valid\n\nCode BC-2023-D, code DF-3569-E and code HJ-6890-R are valid serial codes.",
    "codes5.md": "# Lookup\n\nLook up a part by its code, e.g. MN-8026-S or TU-9253-W, in the catalogue.",
    "codes6.md": "# Serials\n\nSerial codes: WE-5860-G, PO-3082-L, AS-9635-N, DF-2598-Z.",
}

# The paraphrase shares no word with its target; two decoys share the query's words but not
# its meaning, and two finance passages share neither. (RRF favours what both retrievers
# found: a passage only one of them finds ranks after those both found.)
PARAPHRASE_QUERY = "what does it cost each year to keep the credit card"
PARAPHRASE_CORPUS = {
    "fee.md": "# Platinum\n\nAnnual fee: 95 dollars, billed once per twelve months.",
    "mortgage.md": "# Mortgage\n\nMortgage interest is fixed for ten years, then follows the base rate.",
    "savings.md": "# Savings\n\nSavings accounts pay interest monthly on balances above 500 euros.",
    "decoy1.md": "# Records\n\nKeep each receipt: what does the year end audit ask? It will keep a copy.",
    "decoy2.md": "# Ledgers\n\nEach cost centre does keep its own ledger; the year does end in March.",
}


def _titles(results: list[dict[str, object]]) -> list[str]:
    return [r["citation"]["title"] for r in results]  # type: ignore[index]


@pytest.fixture(scope="module")
def manager(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["manager"]


def test_hybrid_finds_exact_code_that_dense_misses(manager: httpx.Client) -> None:
    collection = f"codes-{uuid.uuid4().hex[:8]}"
    ingest(manager, CODE_CORPUS, collection=collection)
    k = 3
    dense = _titles(search(manager, CODE, mode="dense", k=k, collection=collection))
    fulltext = _titles(search(manager, CODE, mode="fulltext", k=k, collection=collection))
    hybrid = _titles(search(manager, CODE, mode="hybrid", k=k, collection=collection))
    assert "target" not in dense, f"dense alone found the code: {dense}"
    assert fulltext[0] == "target", fulltext
    assert hybrid[0] == "target", f"hybrid lost the code: {hybrid} (dense {dense}, fts {fulltext})"


def test_hybrid_finds_paraphrase_that_fulltext_misses(manager: httpx.Client) -> None:
    collection = f"para-{uuid.uuid4().hex[:8]}"
    ingest(manager, PARAPHRASE_CORPUS, collection=collection)
    k = 3
    q = PARAPHRASE_QUERY
    dense = _titles(search(manager, q, mode="dense", k=k, collection=collection))
    fulltext = _titles(search(manager, q, mode="fulltext", k=k, collection=collection))
    hybrid = _titles(search(manager, q, mode="hybrid", k=k, collection=collection))
    assert "fee" not in fulltext, f"full-text alone found the paraphrase: {fulltext}"
    assert dense[0] == "fee", dense
    assert "fee" in hybrid, f"hybrid lost the paraphrase: {hybrid} (dense {dense}, fts {fulltext})"


# Chinese passages; the bundled MiniLM was trained on English (the manifest says
# languages = ["en"]), so its ranking of a Chinese query is noise.
ZH_CORPUS = {
    "zephyr.md": "# 泽菲尔金卡\n\n泽菲尔金卡年费为 120 美元，首年免年费，附属卡免费。",
    "aurora.md": "# 极光白金卡\n\n极光白金卡年费 695 美元，年消费满 25,000 美元可免次年年费。",
    "abroad.md": "# 境外消费\n\n境外交易手续费为 0%，适用于所有白金卡持卡人。",
    "lounge.md": "# 贵宾室\n\n持卡人每年可免费使用机场贵宾室六次，同行人按次收费。",
    "points.md": "# 积分\n\n每消费一美元累积一分，积分可兑换航空里程或年费抵扣。",
}


def test_a_query_the_embedding_model_cannot_read_is_searched_by_full_text(
    manager: httpx.Client,
) -> None:
    """QA: 泽菲尔金卡年费 found first by full text came 8th of 8 in the hybrid fusion, the
    English-only model's ranking of a Chinese query weighing as much as the exact match."""
    collection = f"zh-{uuid.uuid4().hex[:8]}"
    ingest(manager, ZH_CORPUS, collection=collection)
    q = "泽菲尔金卡年费"
    fulltext = _titles(search(manager, q, mode="fulltext", k=5, collection=collection))
    hybrid = _titles(search(manager, q, mode="hybrid", k=5, collection=collection))
    dense = _titles(search(manager, q, mode="dense", k=5, collection=collection))
    assert fulltext[0] == "zephyr", fulltext
    assert hybrid == fulltext, f"hybrid {hybrid}, full text {fulltext}, dense {dense}"
    assert len(dense) == 5  # dense alone still runs when asked for (diagnosis)
    # an English query in the same collection still fuses both rankings
    english = _titles(search(manager, "annual fee", mode="hybrid", k=5, collection=collection))
    assert english == _titles(
        search(manager, "annual fee", mode="dense", k=5, collection=collection)
    )  # the Chinese passages hold no English word, so only the dense ranking has them


def test_results_are_parents_with_citations(manager: httpx.Client) -> None:
    collection = f"cite-{uuid.uuid4().hex[:8]}"
    body = "# Fees\n\n## Annual\n\n" + " ".join(
        f"Sentence {n} about the gold card benefits and the lounge access rules." for n in range(60)
    )
    ingest(manager, {"gold.md": body}, collection=collection, tags="cards,gold")
    results = search(manager, "lounge access", collection=collection, tag="gold", k=3)
    assert results, "no results"
    top = results[0]
    citation = top["citation"]
    assert citation["title"] == "gold" and citation["version"] == 1
    assert citation["snippet"] in top["text"], "the child snippet lies inside its parent"
    assert citation["section"][:1] == ["Fees"]
    parents = [(r["citation"]["document_id"], r["text"]) for r in results]
    assert len(parents) == len(set(parents)), "one result per parent"
    assert search(manager, "lounge access", collection=collection, tag="silver") == []
    assert search(manager, "lounge access", collection="nothing-here") == []


def test_duplicate_upload_returns_existing_document(manager: httpx.Client) -> None:
    collection = f"dup-{uuid.uuid4().hex[:8]}"
    first = ingest(manager, {"a.md": "# A\n\nDuplicate detection text."}, collection=collection)
    again = upload(
        manager, {"renamed.md": "# A\n\nDuplicate detection text."}, collection=collection
    )
    assert again[0]["duplicate"] is True
    assert again[0]["document"]["id"] == first[0]["document"]["id"]
    other = upload(
        manager, {"a.md": "# A\n\nDuplicate detection text."}, collection=collection + "x"
    )
    assert other[0]["duplicate"] is False, "another collection is not a duplicate"


def test_new_content_same_title_is_a_new_version(
    manager: httpx.Client, server: ServerProcess
) -> None:
    collection = f"ver-{uuid.uuid4().hex[:8]}"
    v1 = ingest(
        manager, {"pricing.md": "# Pricing\n\nThe setup fee is 40 euros."}, collection=collection
    )
    assert v1[0]["document"]["version"] == 1
    hit = search(manager, "setup fee", collection=collection)[0]["citation"]
    assert hit["version"] == 1
    v2 = ingest(
        manager, {"pricing.md": "# Pricing\n\nThe setup fee is 55 euros."}, collection=collection
    )
    assert v2[0]["document"]["version"] == 2
    results = search(manager, "setup fee", collection=collection)
    assert [r["citation"]["version"] for r in results] == [2]
    assert "55 euros" in results[0]["text"]
    old = manager.get(f"/api/knowledge/documents/{v1[0]['document']['id']}").json()
    assert old["document"]["retired"] is True
    assert [v["version"] for v in old["versions"]] == [2, 1]
    children = lancedb.connect(str(server.state_dir / "lancedb"))
    ids = [v1[0]["document"]["id"]]
    assert _lance_rows(children, ids) == 0, "the old version's chunks are gone"


def _lance_rows(db: lancedb.DBConnection, document_ids: list[int]) -> int:
    where = f"document_id IN ({','.join(str(i) for i in document_ids)})"
    return sum(db.open_table(name).count_rows(where) for name in lance_tables(db))


def test_delete_leaves_no_trace(manager: httpx.Client, server: ServerProcess) -> None:
    collection = f"del-{uuid.uuid4().hex[:8]}"
    content = f"# Gone\n\nA document about deletion {uuid.uuid4().hex}."
    item = ingest(manager, {"gone.md": content}, collection=collection)[0]
    doc_id, sha = item["document"]["id"], item["document"]["sha256"]
    db = lancedb.connect(str(server.state_dir / "lancedb"))
    assert _lance_rows(db, [doc_id]) > 0
    assert (server.state_dir / "documents" / sha).is_file()
    response = manager.delete(f"/api/knowledge/documents/{doc_id}")
    assert response.status_code == 204, response.text
    assert manager.get(f"/api/knowledge/documents/{doc_id}").status_code == 404
    assert manager.get(f"/api/knowledge/jobs/{item['job']['id']}").status_code == 404
    assert _lance_rows(db, [doc_id]) == 0
    assert not (server.state_dir / "documents" / sha).exists()
    import sqlite3

    with sqlite3.connect(server.state_dir / "salesboost.db") as conn:
        assert (
            conn.execute("SELECT COUNT(*) FROM documents WHERE id = ?", (doc_id,)).fetchone()[0]
            == 0
        )
        assert (
            conn.execute("SELECT COUNT(*) FROM jobs WHERE document_id = ?", (doc_id,)).fetchone()[0]
            == 0
        )
    assert search(manager, "deletion", collection=collection) == []


def test_bad_input_codes_reach_the_api(
    manager: httpx.Client, clients: dict[str, httpx.Client], server: ServerProcess
) -> None:
    collection = f"bad-{uuid.uuid4().hex[:8]}"
    blob = bytes(range(256)) * 8
    # an unknown type is refused in the upload response itself, not accepted and failed later
    refused = manager.post(
        "/api/knowledge/documents",
        files=[("files", ("blob.bin", blob, "application/octet-stream"))],
        data={"collection": collection},
    )
    assert refused.status_code == 415, refused.text
    assert refused.json()["code"] == "unsupported_type"
    assert "octet-stream" in refused.json()["message"]
    assert refused.json()["detail"]["sniffed_type"] == "application/octet-stream"
    # a type named by its extension but not readable (a legacy .doc from its OLE2 bytes) too
    legacy = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + "WordDocument".encode("utf-16-le") * 8
    refused_doc = manager.post(
        "/api/knowledge/documents",
        files=[("files", ("old.doc", legacy, "application/msword"))],
        data={"collection": collection},
    )
    assert refused_doc.status_code == 415 and refused_doc.json()["code"] == "unsupported_type"
    # a folder with one unreadable file: the good file goes in, the refused one is named with
    # its code and type, and nothing of it is stored
    mixed = manager.post(
        "/api/knowledge/documents",
        files=[
            ("files", ("good.md", b"# Good\n\nA readable file.", "text/markdown")),
            ("files", ("blob.bin", blob, "application/octet-stream")),
        ],
        data={"collection": collection},
    )
    assert mixed.status_code == 202, mixed.text
    assert [i["filename"] for i in mixed.json()["items"]] == ["good.md"]
    [rejected] = mixed.json()["rejected"]
    assert rejected["filename"] == "blob.bin" and rejected["code"] == "unsupported_type"
    assert rejected["sniffed_type"] == "application/octet-stream"
    listed = manager.get("/api/knowledge/documents", params={"collection": collection})
    assert [d["filename"] for d in listed.json()] == ["good.md"], listed.text
    assert not (server.state_dir / "documents" / hashlib.sha256(blob).hexdigest()).exists()
    # every file refused: 415, each named, nothing stored
    all_bad = manager.post(
        "/api/knowledge/documents",
        files=[
            ("files", ("a.bin", blob, "application/octet-stream")),
            ("files", ("old.doc", legacy, "application/msword")),
        ],
        data={"collection": collection},
    )
    assert all_bad.status_code == 415 and all_bad.json()["code"] == "unsupported_type"
    assert [f["filename"] for f in all_bad.json()["detail"]["files"]] == ["a.bin", "old.doc"]
    assert [
        d["filename"]
        for d in manager.get("/api/knowledge/documents", params={"collection": collection}).json()
    ] == ["good.md"]
    assert manager.get("/healthz").status_code == 200

    # what the sniff accepts but extraction refuses still fails in the job, with its code
    items = upload(
        manager,
        {"empty.txt": b"", "fine.md": "# Fine\n\nThis one is fine."},
        collection=collection,
    )
    jobs = wait_jobs(manager, [i["job"]["id"] for i in items])
    by_name = {i["filename"]: jobs[i["job"]["id"]] for i in items}
    assert by_name["empty.txt"]["state"] == "failed"
    assert by_name["empty.txt"]["error_code"] == "no_text_found"
    assert by_name["fine.md"]["state"] == "done", "the other jobs keep going"
    detail = manager.get(f"/api/knowledge/documents/{items[0]['document']['id']}").json()
    assert detail["job"]["error_code"] == "no_text_found"
    assert manager.get("/healthz").status_code == 200
    # a failed job can be retried (it fails again with the same code: the content is the same)
    retry = manager.post(f"/api/knowledge/documents/{items[0]['document']['id']}/reingest")
    assert retry.status_code == 202, retry.text
    again = wait_jobs(manager, [retry.json()["id"]])[retry.json()["id"]]
    assert again["error_code"] == "no_text_found" and again["attempts"] == 1
    # request-level bad input
    assert manager.post("/api/knowledge/documents", json={}).json()["code"] == "invalid_input"
    assert clients["trainee"].get("/api/knowledge/search", params={"q": " "}).status_code == 400
    bad_mode = manager.get("/api/knowledge/search", params={"q": "x", "mode": "psychic"})
    assert bad_mode.json()["code"] == "invalid_input"
    # a mistyped form field is refused by name, not ignored (the file would land in "default")
    typo = manager.post(
        "/api/knowledge/documents",
        files=[("files", ("typo.md", b"# Typo", "text/markdown"))],
        data={"colection": "pricing"},
    )
    assert typo.status_code == 400 and typo.json()["detail"]["field"] == "colection", typo.text
    as_text = manager.post(
        "/api/knowledge/documents",
        files=[("collection", ("c.md", b"# C", "text/markdown"))],
    )
    assert as_text.status_code == 400 and "must be text" in as_text.json()["message"]
    single = manager.post(  # curl -F file=@x.md: the singular name is a file field too
        "/api/knowledge/documents",
        files=[("file", ("single.md", b"# Single\n\nOne file.", "text/markdown"))],
        data={"collection": "single-field"},
    )
    assert single.status_code == 202, single.text
    assert not any(
        d["filename"] == "typo.md" for d in manager.get("/api/knowledge/documents").json()
    )
    for k in (0, 101):  # refused naming k, not silently replaced by the default or clamped
        bad_k = manager.get("/api/knowledge/search", params={"q": "x", "k": k})
        assert bad_k.status_code == 400, bad_k.text
        assert [d["key"] for d in bad_k.json()["detail"]] == ["k"], bad_k.text


def test_trainee_searches_but_cannot_upload(clients: dict[str, httpx.Client]) -> None:
    trainee = clients["trainee"]
    denied = trainee.post(
        "/api/knowledge/documents", files=[("files", ("x.md", b"# x", "text/markdown"))]
    )
    assert denied.status_code == 403
    assert trainee.get("/api/knowledge/search", params={"q": "anything"}).status_code == 200


def test_ask_answers_through_the_llm_with_citations(
    manager: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    collection = f"ask-{uuid.uuid4().hex[:8]}"
    ingest(manager, {"faq.md": "# FAQ\n\nRefunds are paid within 14 days."}, collection=collection)
    trainee = clients["trainee"]
    answer = trainee.post(
        "/api/knowledge/ask",
        json={"question": "How fast are refunds paid?", "collection": collection},
    ).json()
    assert answer["mode"] == "llm", answer
    assert "language model" in answer["message"]
    assert "14" in answer["answer"]  # the bundled model, greedy: "14 days."
    assert answer["citations"][0]["citation"]["title"] == "faq"
    # an FAQ written as "Question: … | Answer: …" rows: the answer ends at the next question
    # (QA: "0%: you pay no extra abroad. Question: How much does a supplementary card cost?")
    rows = "faq2.md"
    ingest(
        manager,
        {
            rows: "# FAQ (English)\n\n"
            "Question: What is the annual fee? | Answer: The annual fee is USD 695, charged once "
            "per card year.\n"
            "Question: Is there a foreign transaction fee? | Answer: No. The foreign transaction "
            "fee is 0%: you pay no extra when you spend abroad.\n"
            "Question: How much does a supplementary card cost? | Answer: The first "
            "supplementary card is free; each further card costs USD 95 a year.\n"
        },
        collection=f"{collection}-rows",
    )
    fee = trainee.post(
        "/api/knowledge/ask",
        json={
            "question": "Is there a foreign transaction fee?",
            "collection": f"{collection}-rows",
        },
    ).json()
    assert fee["mode"] == "llm", fee
    assert "0%" in fee["answer"] and "Question" not in fee["answer"], fee["answer"]
    # nothing matches in an empty collection: no LLM call, and it says so
    empty = trainee.post(
        "/api/knowledge/ask",
        json={"question": "How fast are refunds paid?", "collection": f"none-{collection}"},
    ).json()
    assert empty["mode"] == "retrieval_only"
    assert empty["citations"] == []
    assert "Nothing in the knowledge base" in empty["answer"]
    # a Chinese question hears about its answer in Chinese (QA: an English hint under it)
    zh = trainee.post(
        "/api/knowledge/ask",
        json={"question": "退款多久到账？", "collection": f"none-{collection}"},
    ).json()
    assert zh["answer"] == "知识库中没有与这个问题相符的内容。"
    assert zh["message"] == "没有匹配的段落，因此无从作答。"


def test_collections_and_listing(manager: httpx.Client) -> None:
    collection = f"list-{uuid.uuid4().hex[:8]}"
    ingest(
        manager,
        {"one.md": "# One\n\nFirst.", "two.md": "# Two\n\nSecond."},
        collection=collection,
        tags="t1",
    )
    names = {c["name"]: c for c in manager.get("/api/knowledge/collections").json()}
    assert names[collection]["documents"] == 2
    listed = manager.get(
        "/api/knowledge/documents", params={"collection": collection, "tag": "t1"}
    ).json()
    assert sorted(d["title"] for d in listed) == ["one", "two"]
    assert all(d["routes"] and d["state"] == "done" for d in listed)
    # paged by id like sessions (QA: limit=0 or -5 were clamped to 1 without a word)
    newest, older = (d["id"] for d in listed)
    one = {"collection": collection, "limit": 1}
    assert [d["id"] for d in manager.get("/api/knowledge/documents", params=one).json()] == [newest]
    back = manager.get("/api/knowledge/documents", params={**one, "before": newest}).json()
    ahead = manager.get("/api/knowledge/documents", params={**one, "after": older}).json()
    assert [d["id"] for d in back] == [older] and [d["id"] for d in ahead] == [newest]
    for bad in (0, -5):
        refused = manager.get("/api/knowledge/documents", params={"limit": bad})
        assert refused.status_code == 400, refused.text


def test_files_on_disk_are_content_addressed(server: ServerProcess) -> None:
    files = [p for p in (server.state_dir / "documents").iterdir() if not p.name.startswith(".")]
    assert all(len(p.name) == 64 for p in files)
    assert not [
        p
        for p in (server.state_dir / "documents").iterdir()
        if p.name.startswith((".upload-", ".check-"))
    ]


def test_chinese_is_found_by_full_text(manager: httpx.Client) -> None:
    collection = f"cjk-{uuid.uuid4().hex[:8]}"
    ingest(
        manager,
        {
            "cn.md": "# 白金卡\n\n白金卡的年费是九十五美元\uff0c首年免收。",
            "other.md": "# 旅行保险\n\n行李丢失最高赔付两千欧元。",
        },
        collection=collection,
    )
    found = search(manager, "年费", mode="fulltext", collection=collection)
    assert [r["citation"]["title"] for r in found] == ["cn"]
    mixed = search(manager, "白金卡 annual fee", mode="fulltext", collection=collection)
    assert mixed[0]["citation"]["title"] == "cn"


def test_job_progress_is_published_to_the_uploader(
    manager: httpx.Client, server: ServerProcess
) -> None:
    import asyncio
    import json

    import websockets

    cookie = "; ".join(f"{k}={v}" for k, v in manager.cookies.items())
    url = server.url.replace("http://", "ws://") + "/ws/knowledge/jobs"

    async def listen() -> list[dict[str, object]]:
        events: list[dict[str, object]] = []
        async with websockets.connect(
            url, additional_headers={"Cookie": cookie, "Origin": server.url}
        ) as socket:
            await asyncio.sleep(0.2)  # subscribed
            collection = f"ws-{uuid.uuid4().hex[:8]}"
            await asyncio.to_thread(
                upload, manager, {"ws.md": "# WS\n\nProgress events."}, collection=collection
            )
            while not events or events[-1]["state"] not in ("done", "failed"):
                events.append(json.loads(await asyncio.wait_for(socket.recv(), 60)))
        return events

    events = asyncio.run(listen())
    assert events[-1]["state"] == "done"
    assert {"embed", "store"} <= {e["stage"] for e in events}
