"""The document page in a real browser: Retry a failed ingestion, Delete a version (the previous
one comes back), a duplicate upload says so, and a page-less document opens at the cited passage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.testing import ServerProcess

from tests.e2e.conftest import USERS, expect, login, shot


def _upload(page: Any, name: str, body: bytes, collection: str) -> dict[str, Any]:
    """POST one file with the page's own login; returns the upload's item."""
    response = page.request.post(
        "/api/knowledge/documents",
        multipart={
            "files": {"name": name, "mimeType": "text/plain", "buffer": body},
            "collection": collection,
        },
    )
    assert response.status == 202, response.text()
    item: dict[str, Any] = response.json()["items"][0]
    return item


def _wait_job(page: Any, job_id: int, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = page.request.get(f"/api/knowledge/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.25)


def test_retry_and_delete_on_the_document_page(browser: Any, e2e_server: ServerProcess) -> None:
    context = browser.new_context(base_url=e2e_server.url, locale="en-US")
    context.set_default_timeout(30_000)
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    try:
        page = context.new_page()
        page.on("dialog", accept)
        login(page, USERS["manager"])
        collection = f"docpage-{uuid.uuid4().hex[:8]}"

        # a file the sniff accepts but extraction cannot read: its job fails
        empty = _upload(page, f"empty-{collection}.txt", b"", collection)
        failed = _wait_job(page, empty["job"]["id"])
        assert failed["state"] == "failed", failed
        doc_id = empty["document"]["id"]
        page.goto(f"/knowledge/documents/{doc_id}")
        state = page.locator("#document-state")
        expect(state).to_contain_text(f"job {failed['id']}: failed")
        retry = page.get_by_role("button", name="Retry")
        expect(retry).to_be_visible()
        shot(page, "document-failed")
        retry.click()
        # the page comes back with the new job (which fails again: the file is still empty)
        expect(state).not_to_contain_text(f"job {failed['id']}:")
        latest = page.request.get(f"/api/knowledge/documents/{doc_id}").json()["job"]
        assert latest["id"] > failed["id"]
        _wait_job(page, latest["id"])

        page.get_by_role("button", name="Delete").click()
        page.wait_for_url("**/knowledge")
        assert asked and f"empty-{collection}" in asked[-1], asked
        assert page.request.get(f"/api/knowledge/documents/{doc_id}").status == 404
        expect(page.locator(f'#docs a[href="/knowledge/documents/{doc_id}"]')).to_have_count(0)

        # two versions of one title: deleting the newest brings the first one back
        name = f"guide-{collection}.md"
        v1 = _upload(page, name, b"# Guide\n\nThe setup fee is 40 euros.", collection)
        assert _wait_job(page, v1["job"]["id"])["state"] == "done"
        v2 = _upload(page, name, b"# Guide\n\nThe setup fee is 55 euros.", collection)
        assert _wait_job(page, v2["job"]["id"])["state"] == "done"
        page.goto(f"/knowledge/documents/{v2['document']['id']}")
        expect(page.get_by_role("button", name="Retry")).to_have_count(0)  # nothing failed
        page.get_by_role("button", name="Delete").click()
        page.wait_for_url("**/knowledge")
        assert "v2" in asked[-1], asked
        v1_link = page.locator(f'#docs a[href="/knowledge/documents/{v1["document"]["id"]}"]')
        expect(v1_link).to_have_count(1)
        shot(page, "document-deleted-v2")
        restored = page.request.get(f"/api/knowledge/documents/{v1['document']['id']}").json()
        assert restored["document"]["retired"] is False
        _wait_job(page, restored["job"]["id"])

        # a trainee reads the page but gets neither button
        trainee_context = browser.new_context(base_url=e2e_server.url, locale="en-US")
        try:
            trainee = trainee_context.new_page()
            login(trainee, USERS["trainee"])
            trainee.goto(f"/knowledge/documents/{v1['document']['id']}")
            expect(trainee.locator("h1")).to_contain_text(f"guide-{collection}")
            expect(trainee.locator("#delete-document")).to_have_count(0)
            expect(trainee.locator("#retry-document")).to_have_count(0)
        finally:
            trainee_context.close()
    finally:
        context.close()


def test_the_same_file_again_is_shown_as_a_duplicate(
    new_page: Callable[..., Any], tmp_path: Path
) -> None:
    marker = uuid.uuid4().hex[:8]
    note = tmp_path / f"dup-{marker}.md"
    note.write_text(f"# Duplicate\n\nA note to upload twice {marker}.\n")
    page = new_page()
    login(page, USERS["manager"])
    page.goto("/knowledge")
    page.set_input_files("#files", [str(note)])
    first = page.locator("#uploads li").first
    expect(first).to_have_attribute("data-state", "done", timeout=240_000)
    document_id = first.get_attribute("data-document")

    page.set_input_files("#files", [str(note)])
    expect(page.locator("#uploads li")).to_have_count(2)
    again = page.locator("#uploads li").first
    expect(again).to_have_attribute("data-duplicate", "true")
    expect(again.locator(".state")).to_contain_text("duplicate")
    expect(again.locator(".state")).not_to_contain_text("100%")
    link = again.locator("a.duplicate-of")
    expect(link).to_have_attribute("href", f"/knowledge/documents/{document_id}")
    expect(link).to_have_text(f"dup-{marker} v1")
    shot(page, "knowledge-duplicate")
    link.click()
    page.wait_for_url(f"**/knowledge/documents/{document_id}")


def test_a_pageless_citation_opens_at_its_passage(
    new_page: Callable[..., Any], tmp_path: Path
) -> None:
    marker = f"wombat{uuid.uuid4().hex[:6]}"
    sections = [
        f"# Topic {n}\n\n"
        + " ".join(f"Sentence {k} of topic {n} about card benefits." for k in range(60))
        for n in range(3)
    ]
    sections.append(f"# Refunds\n\nThe refund code {marker} applies to annual fees only.")
    notes = tmp_path / f"handbook-{marker}.md"
    notes.write_text("\n\n".join(sections) + "\n")
    page = new_page()
    login(page, USERS["manager"])
    page.goto("/knowledge")
    page.set_input_files("#files", [str(notes)])
    row = page.locator(f'#uploads li[data-filename="{notes.name}"]')
    expect(row).to_have_attribute("data-state", "done", timeout=240_000)

    page.get_by_label("Search the knowledge base").fill(f"refund code {marker}")
    page.keyboard.press("Enter")
    first = page.locator("#results li.result").first
    expect(first).to_contain_text(f"handbook-{marker}")
    expect(first.locator(".page")).to_have_count(0)  # no page to name
    first.locator("a.cite").click()
    page.wait_for_url("**/knowledge/documents/*?passage=*")
    # the route row has no page: a dash, no link, not marked as the cited row
    expect(page.locator("table.data tbody tr").first.locator("td").first).to_have_text("—")
    expect(page.locator('a[href*="page=None"]')).to_have_count(0)
    expect(page.locator("tr.cited")).to_have_count(0)
    cited = page.locator("section.passage.cited")
    expect(cited).to_have_count(1)
    expect(cited.locator("mark")).to_contain_text(marker)
    assert page.locator("section.passage").count() > 1, "the other passages are shown too"
    shot(page, "document-pageless-cited")
