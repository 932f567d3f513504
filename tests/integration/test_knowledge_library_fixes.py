"""Knowledge library fixes on the real server: deleting the current version brings the previous
one back, uploads/re-ingests/deletions are audited, and page-less documents show their passages.

Real parts only: the session's `salesboost serve`, its SQLite file, its LanceDB dir and the
bundled MiniLM. Each test works in its own collection.
"""

from __future__ import annotations

import io
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from typing import Any

import docx
import httpx
import lancedb
import pytest
from appliance.testing import ServerProcess

from tests.conftest import ACCOUNTS, add_user, login
from tests.integration.knowledge_helpers import ingest, lance_tables, search, upload, wait_jobs


@pytest.fixture(scope="module")
def manager(clients: dict[str, httpx.Client]) -> httpx.Client:
    return clients["manager"]


def _rows(server: ServerProcess, document_id: int) -> int:
    db = lancedb.connect(str(server.state_dir / "lancedb"))
    return sum(
        db.open_table(name).count_rows(f"document_id = {document_id}") for name in lance_tables(db)
    )


def _live(manager: httpx.Client, collection: str) -> list[tuple[int, int]]:
    listed = manager.get("/api/knowledge/documents", params={"collection": collection}).json()
    return [(d["id"], d["version"]) for d in listed]


def _versions(manager: httpx.Client, collection: str, n: int) -> list[dict[str, Any]]:
    """Upload n versions of one title (pricing.md), each indexed before the next."""
    docs = []
    for v in range(1, n + 1):
        item = ingest(
            manager,
            {"pricing.md": f"# Pricing\n\nThe setup fee of version {v} is {v}0 euros."},
            collection=collection,
        )[0]
        assert item["document"]["version"] == v
        docs.append(item["document"])
    return docs


def _latest_job(manager: httpx.Client, document_id: int) -> dict[str, Any] | None:
    job: dict[str, Any] | None = manager.get(f"/api/knowledge/documents/{document_id}").json()[
        "job"
    ]
    return job


def test_deleting_the_current_version_makes_the_previous_one_current(
    manager: httpx.Client, server: ServerProcess
) -> None:
    collection = f"restore-{uuid.uuid4().hex[:8]}"
    v1, v2 = _versions(manager, collection, 2)
    assert _live(manager, collection) == [(v2["id"], 2)]
    assert _rows(server, v1["id"]) == 0, "a retired version's chunks leave the index"

    response = manager.delete(f"/api/knowledge/documents/{v2['id']}")
    assert response.status_code == 204, response.text

    detail = manager.get(f"/api/knowledge/documents/{v1['id']}").json()
    assert detail["document"]["retired"] is False
    job = detail["job"]
    assert job is not None and job["kind"] == "restore"
    assert _live(manager, collection) == [(v1["id"], 1)]
    done = wait_jobs(manager, [job["id"]])[job["id"]]
    assert done["state"] == "done", done
    assert manager.get(f"/api/knowledge/documents/{v1['id']}").json()["document"]["state"] == "done"
    assert _rows(server, v1["id"]) > 0, "its chunks are back in the index"
    results = search(manager, "setup fee", collection=collection)
    assert [(r["citation"]["document_id"], r["citation"]["version"]) for r in results] == [
        (v1["id"], 1)
    ]
    assert "10 euros" in results[0]["text"]
    library = manager.get("/knowledge", headers={"Accept": "text/html"}).text
    assert f'href="/knowledge/documents/{v1["id"]}"' in library


def test_deleting_an_older_version_changes_nothing_current(
    manager: httpx.Client, server: ServerProcess
) -> None:
    collection = f"oldver-{uuid.uuid4().hex[:8]}"
    v1, v2 = _versions(manager, collection, 2)
    jobs_before = _latest_job(manager, v2["id"])
    assert manager.delete(f"/api/knowledge/documents/{v1['id']}").status_code == 204
    assert manager.get(f"/api/knowledge/documents/{v1['id']}").status_code == 404
    assert _live(manager, collection) == [(v2["id"], 2)]
    assert _latest_job(manager, v2["id"]) == jobs_before, "no job for the current version"
    results = search(manager, "setup fee", collection=collection)
    assert [r["citation"]["version"] for r in results] == [2]


def test_the_newest_remaining_version_is_the_one_restored(
    manager: httpx.Client, server: ServerProcess
) -> None:
    collection = f"three-{uuid.uuid4().hex[:8]}"
    v1, v2, v3 = _versions(manager, collection, 3)
    assert manager.delete(f"/api/knowledge/documents/{v3['id']}").status_code == 204
    job = _latest_job(manager, v2["id"])
    assert job is not None and job["kind"] == "restore"
    assert wait_jobs(manager, [job["id"]])[job["id"]]["state"] == "done"
    assert _live(manager, collection) == [(v2["id"], 2)]
    assert manager.get(f"/api/knowledge/documents/{v1['id']}").json()["document"]["retired"]
    assert _rows(server, v1["id"]) == 0
    results = search(manager, "setup fee", collection=collection)
    assert [r["citation"]["version"] for r in results] == [2]
    # and deleting that one too brings back the first
    assert manager.delete(f"/api/knowledge/documents/{v2['id']}").status_code == 204
    job = _latest_job(manager, v1["id"])
    assert job is not None and job["kind"] == "restore"
    assert wait_jobs(manager, [job["id"]])[job["id"]]["state"] == "done"
    results = search(manager, "setup fee", collection=collection)
    assert [r["citation"]["version"] for r in results] == [1]


def _audit(
    admin: httpx.Client, action: str, document_id: int, collection: str
) -> list[dict[str, Any]]:
    """This test's rows (a deleted document's id is used again by the next one)."""
    entries = admin.get("/api/audit", params={"action": action, "limit": 1000}).json()
    return [
        e
        for e in entries
        if e["target"] == f"document:{document_id}" and e["detail"]["collection"] == collection
    ]


def test_uploads_reingests_and_deletions_are_audited(
    clients: dict[str, httpx.Client], manager: httpx.Client
) -> None:
    admin = clients["admin"]
    collection = f"audit-{uuid.uuid4().hex[:8]}"
    content = f"# Audit\n\nA document about audit trails {uuid.uuid4().hex}."
    first = ingest(manager, {"audited.md": content}, collection=collection)[0]
    doc = first["document"]
    uploaded = _audit(admin, "document.upload", doc["id"], collection)
    assert len(uploaded) == 1
    entry = uploaded[0]
    assert entry["actor"] == ACCOUNTS["manager"].username and entry["actor_id"] is not None
    assert entry["detail"] == {
        "title": "audited",
        "version": 1,
        "collection": collection,
        "filename": "audited.md",
        "duplicate": False,
        "job_id": first["job"]["id"],
    }
    assert entry["ip"]

    # the same file again: a duplicate, recorded as such
    again = upload(manager, {"again.md": content}, collection=collection)[0]
    assert again["duplicate"] is True
    rows = _audit(admin, "document.upload", doc["id"], collection)
    assert [r["detail"]["duplicate"] for r in rows] == [True, False]
    assert rows[0]["detail"]["filename"] == "again.md"

    response = manager.post(f"/api/knowledge/documents/{doc['id']}/reingest")
    assert response.status_code == 202, response.text
    job = response.json()
    (reingested,) = _audit(admin, "document.reingest", doc["id"], collection)
    assert reingested["detail"] == {
        "title": "audited",
        "version": 1,
        "collection": collection,
        "job_id": job["id"],
    }
    wait_jobs(manager, [job["id"]])

    assert manager.delete(f"/api/knowledge/documents/{doc['id']}").status_code == 204
    (deleted,) = _audit(admin, "document.delete", doc["id"], collection)
    assert deleted["actor"] == ACCOUNTS["manager"].username
    assert deleted["detail"] == {
        "title": "audited",
        "version": 1,
        "collection": collection,
        "filename": "audited.md",
        "restored_id": None,
        "restored_version": None,
    }
    # the audit page offers the new actions in its filter
    assert "document.delete" in admin.get("/admin/audit", headers={"Accept": "text/html"}).text


def test_a_deletion_that_restores_names_the_version_restored(
    clients: dict[str, httpx.Client], manager: httpx.Client
) -> None:
    collection = f"auditrestore-{uuid.uuid4().hex[:8]}"
    v1, v2 = _versions(manager, collection, 2)
    assert manager.delete(f"/api/knowledge/documents/{v2['id']}").status_code == 204
    (deleted,) = _audit(clients["admin"], "document.delete", v2["id"], collection)
    assert deleted["detail"]["version"] == 2
    assert deleted["detail"]["restored_id"] == v1["id"]
    assert deleted["detail"]["restored_version"] == 1
    job = _latest_job(manager, v1["id"])
    assert job is not None
    wait_jobs(manager, [job["id"]])


def _docx(paragraphs: list[tuple[str, str]]) -> bytes:
    """A Word file of (heading, paragraph) pairs."""
    document = docx.Document()
    for heading, text in paragraphs:
        document.add_heading(heading, level=1)
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_a_pageless_document_page_shows_its_passages_and_the_cited_one(
    manager: httpx.Client, clients: dict[str, httpx.Client]
) -> None:
    collection = f"pageless-{uuid.uuid4().hex[:8]}"
    marker = f"quokka{uuid.uuid4().hex[:6]}"
    # sections long enough to make several passages (parents)
    sections = [
        (
            f"Topic {n}",
            " ".join(f"Sentence {k} of topic {n} about card benefits." for k in range(60)),
        )
        for n in range(4)
    ]
    sections.append(("Refunds", f"The refund code {marker} applies to annual fees only."))
    body = _docx(sections)
    response = manager.post(
        "/api/knowledge/documents",
        files=[
            (
                "files",
                (
                    "benefits.docx",
                    body,
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                ),
            )
        ],
        data={"collection": collection},
    )
    assert response.status_code == 202, response.text
    item = response.json()["items"][0]
    wait_jobs(manager, [item["job"]["id"]])
    doc_id = item["document"]["id"]
    document = manager.get(f"/api/knowledge/documents/{doc_id}").json()["document"]
    assert document["state"] == "done" and document["parent_count"] > 1
    assert all(r["page"] is None for r in document["routes"])

    hit = search(manager, f"refund code {marker}", collection=collection)[0]["citation"]
    assert hit["document_id"] == doc_id and hit["page"] is None
    passage = hit["passage"]
    assert passage > 0, "the marker is in a later passage"

    html = {"Accept": "text/html"}
    plain = manager.get(f"/knowledge/documents/{doc_id}", headers=html).text
    main = plain[plain.index('<main id="main"') :]  # past the UI strings
    assert "None" not in main
    assert "<td>—</td>" in main
    assert "?page=" not in plain
    assert "cited" not in main and 'aria-current="location"' not in main
    # every passage is shown, none marked
    assert len(re.findall(r'<section class="card passage"', plain)) == document["parent_count"]
    assert marker in plain

    cited = manager.get(f"/knowledge/documents/{doc_id}?passage={passage}", headers=html).text
    marked = re.findall(
        r'<section class="card passage cited" id="passage-(\d+)"[^>]*aria-current="location">'
        r"(.*?)</section>",
        cited,
        re.S,
    )
    assert [int(n) for n, _ in marked] == [passage]
    assert "<mark>" in marked[0][1] and marker in marked[0][1]
    # nonsense in ?passage= or ?page= is ignored, not a server error
    for query in ("passage=x", "passage=²", "page=²", "passage=99999999999999999999"):
        response = manager.get(f"/knowledge/documents/{doc_id}?{query}", headers=html)
        assert response.status_code == 200, (query, response.status_code)
    # a trainee reads it too, without the manager's buttons
    trainee_view = clients["trainee"].get(f"/knowledge/documents/{doc_id}", headers=html).text
    assert marker in trainee_view
    assert "delete-document" not in trainee_view and "document.js" not in trainee_view
    assert 'id="delete-document"' in plain


def test_a_paged_document_keeps_its_page_links(
    manager: httpx.Client, server: ServerProcess
) -> None:
    """A PDF's routes stay linked by page, and only the cited page is marked."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    collection = f"paged-{uuid.uuid4().hex[:8]}"
    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=A4)
    for n in (1, 2):
        pdf.drawString(40, 800, f"Page {n} explains the lounge access rules for holders.")
        pdf.showPage()
    pdf.save()
    response = manager.post(
        "/api/knowledge/documents",
        files=[("files", ("lounge.pdf", out.getvalue(), "application/pdf"))],
        data={"collection": collection},
    )
    assert response.status_code == 202, response.text
    item = response.json()["items"][0]
    wait_jobs(manager, [item["job"]["id"]])
    doc_id = item["document"]["id"]
    page = manager.get(f"/knowledge/documents/{doc_id}?page=2", headers={"Accept": "text/html"})
    assert 'href="?page=1#page-text"' in page.text and 'href="?page=2#page-text"' in page.text
    assert len(re.findall(r'class="cited"', page.text)) == 1
    assert '<tr id="page-2" class="cited"' in page.text
    assert "Page 2 explains" in page.text
    with sqlite3.connect(server.state_dir / "salesboost.db") as conn:
        assert conn.execute("SELECT pages FROM documents WHERE id = ?", (doc_id,)).fetchone() == (
            2,
        )


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A manager's client on a server of its own with one ingestion worker (jobs run in order)."""
    state = tmp_path_factory.mktemp("one-worker")
    add_user(state, ACCOUNTS["manager"])
    with ServerProcess(state, SALESBOOST__KNOWLEDGE__WORKERS="1") as srv:
        client = login(srv, ACCOUNTS["manager"])
        yield client
        client.close()


def test_deleting_a_version_while_it_is_indexed_leaves_the_current_one(
    one_worker: httpx.Client,
) -> None:
    manager = one_worker
    collection = "running"
    v1 = ingest(
        manager, {"guide.md": "# Guide\n\nThe setup fee is 40 euros."}, collection=collection
    )[0]["document"]
    salt = uuid.uuid4().hex  # new text: nothing comes from the embedding cache
    big = "# Guide\n\n" + "\n\n".join(
        f"Paragraph {n} {salt}: the onboarding checklist covers identity, address, income "
        f"and the card limit review for applicants in region {n % 17}."
        for n in range(600)
    )
    item = upload(manager, {"guide.md": big}, collection=collection)[0]
    assert item["document"]["version"] == 2
    job_id = item["job"]["id"]
    deadline = time.monotonic() + 120
    while True:  # delete it while it is being embedded
        job = manager.get(f"/api/knowledge/jobs/{job_id}").json()
        if job["state"] == "running" and job["stage"] == "embed":
            break
        assert job["state"] in ("queued", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    deleted_id = item["document"]["id"]
    assert manager.delete(f"/api/knowledge/documents/{deleted_id}").status_code == 204
    # one worker: once a later upload is done, the deleted version's job has ended too
    other = ingest(
        manager, {"other.md": f"# Other\n\nAn unrelated note {salt}."}, collection=collection
    )[0]
    # a deleted version's ids are never given again (its job would otherwise finish the new one)
    assert other["document"]["id"] > deleted_id and other["job"]["id"] > job_id
    found = search(manager, f"unrelated note {salt}", collection=collection, k=1)
    assert found[0]["citation"]["title"] == "other" and salt in found[0]["text"]
    assert (
        manager.get(f"/api/knowledge/documents/{other['document']['id']}").json()["document"][
            "routes"
        ][0]["route"]
        == "markdown"
    )
    detail = manager.get(f"/api/knowledge/documents/{v1['id']}").json()
    assert detail["document"]["retired"] is False, "v1 stays current"
    results = search(manager, "setup fee", collection=collection, k=3)
    assert [(r["citation"]["document_id"], r["citation"]["version"]) for r in results][:1] == [
        (v1["id"], 1)
    ]


def test_a_retired_version_cannot_be_re_ingested(manager: httpx.Client) -> None:
    collection = f"retired-{uuid.uuid4().hex[:8]}"
    v1, v2 = _versions(manager, collection, 2)
    refused = manager.post(f"/api/knowledge/documents/{v1['id']}/reingest")
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "conflict"
    assert "retired by a newer version" in refused.json()["message"]
    assert manager.post(f"/api/knowledge/documents/{v2['id']}/reingest").status_code in (200, 202)
