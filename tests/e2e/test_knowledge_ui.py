"""A manager drops files into the library, watches each file's progress bar reach done, then finds
the PDF with the search box, its page cited, and opens the document at that page."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from tests.e2e.conftest import USERS, expect, login, shot


def make_pdf(path: Path, marker: str) -> None:
    """Two pages with a text layer; page 1 is longer than a parent chunk, the marker is low on page 2."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setFont("Helvetica", 8)
    topics = ["lounge access", "travel insurance", "concierge desk", "reward points", "card design"]
    for i in range(80):
        topic = topics[i % len(topics)]
        pdf.drawString(
            40, 800 - i * 9.5, f"Section {i}: the platinum card {topic} benefit applies to holders."
        )
    pdf.showPage()
    for i in range(30):
        pdf.drawString(
            40, 800 - i * 9.5, f"Clause {i}: statements are issued monthly to the holder."
        )
    pdf.drawString(40, 500, f"Fee waiver policy {marker}: the annual fee is waived when yearly")
    pdf.drawString(40, 490, "spending reaches fifty thousand; the waiver is reviewed every year.")
    pdf.showPage()
    pdf.save()


def test_upload_progress_search_and_cited_page(
    new_page: Callable[..., Any], tmp_path: Path
) -> None:
    marker = f"zebra{uuid.uuid4().hex[:6]}"
    pdf = tmp_path / f"waivers-{marker}.pdf"
    make_pdf(pdf, marker)
    notes = tmp_path / f"notes-{marker}.txt"
    notes.write_text(f"Objection handling notes {marker}: acknowledge, ask, answer.\n")

    page = new_page()
    login(page, USERS["manager"])
    page.goto("/knowledge")
    # many files at once, as a drop would deliver them (the drop handler and the picker share the code)
    page.set_input_files("#files", [str(pdf), str(notes)])
    rows = page.locator("#uploads li")
    expect(rows).to_have_count(2)
    for name in (pdf.name, notes.name):
        row = page.locator(f'#uploads li[data-filename="{name}"]')
        expect(row).to_have_attribute("data-state", "done", timeout=120_000)
        assert row.locator("progress").evaluate("p => p.value") == 100
    expect(page.locator(f'#uploads li[data-filename="{pdf.name}"] .route')).to_contain_text("text")
    # the documents table takes the new ones without a reload
    expect(page.locator("#docs td a", has_text=f"waivers-{marker}")).to_have_count(1)
    expect(page.locator("#docs td a", has_text=f"notes-{marker}")).to_have_count(1)
    shot(page, "knowledge-uploaded")

    page.get_by_label("Search the knowledge base").fill(f"fee waiver policy {marker}")
    page.keyboard.press("Enter")
    first = page.locator("#results li.result").first
    expect(first).to_contain_text(f"waivers-{marker}")
    expect(first.locator(".page")).to_have_text("· page 2")
    # the query's words are marked in the passage, whatever their case in it
    marked = {m.lower() for m in first.locator(".snippet mark").all_inner_texts()}
    assert {"fee", "waiver", "policy", marker.lower()} <= marked, marked
    shot(page, "knowledge-search")
    first.locator("a.cite").click()
    page.wait_for_url("**/knowledge/documents/*?page=2#page-2")
    expect(page.locator("tr#page-2")).to_have_class("cited")
    # the cited page's own stored text is on the page, not only its route
    expect(page.locator("h2#page-text")).to_contain_text("2")
    expect(page.locator(".passage-text", has_text=f"Fee waiver policy {marker}")).to_have_count(1)
    expect(page.locator(".passage-text", has_text="Section 3:")).to_have_count(0)  # page 1 only


def test_drag_and_drop_reaches_the_upload(new_page: Callable[..., Any]) -> None:
    page = new_page()
    login(page, USERS["manager"])
    page.goto("/knowledge")
    marker = uuid.uuid4().hex[:8]
    data_transfer = page.evaluate_handle(
        """marker => { const dt = new DataTransfer();
             dt.items.add(new File(['Dropped note ' + marker + ' about renewals.'], 'drop-' + marker + '.txt',
                                   {type: 'text/plain'}));
             return dt; }""",
        marker,
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": data_transfer})
    row = page.locator(f'#uploads li[data-filename="drop-{marker}.txt"]')
    expect(row).to_have_attribute("data-state", "done", timeout=120_000)
    # two files of one name in one drop (from two folders) each keep their own row
    twins = page.evaluate_handle(
        """marker => { const dt = new DataTransfer();
             for (const body of ['First twin ' + marker + ' on fees.', 'Second twin ' + marker + ' on points.'])
               dt.items.add(new File([body], 'twin-' + marker + '.txt', {type: 'text/plain'}));
             return dt; }""",
        marker,
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": twins})
    pair = page.locator(f'#uploads li[data-filename="twin-{marker}.txt"]')
    expect(pair).to_have_count(2)
    for i in range(2):
        expect(pair.nth(i)).to_have_attribute("data-state", "done", timeout=120_000)


def test_a_drop_of_many_files_goes_up_in_batches(new_page: Callable[..., Any]) -> None:
    """QA: a dropped folder went up as one request with every file in it, so a folder past the
    body limit (server.max_body_bytes) failed whole with 413, and the server held it all in
    memory. Now at most 20 files (and less than the limit) per request, one after the other;
    every file still gets its row and reaches done, two files of one name in different
    batches included."""
    page = new_page()
    login(page, USERS["manager"])
    page.goto("/knowledge")
    assert int(page.locator("#dropzone").get_attribute("data-max-body") or 0) > 1024 * 1024
    posts: list[str] = []
    page.on(
        "request",
        lambda r: (
            posts.append(r.url)
            if r.method == "POST" and r.url.endswith("/api/knowledge/documents")
            else None
        ),
    )
    marker = uuid.uuid4().hex[:8]
    folder = page.evaluate_handle(
        """marker => { const dt = new DataTransfer();
             for (let i = 0; i < 23; i++)
               dt.items.add(new File(['Batch note ' + i + ' ' + marker + ' on renewals.'],
                                     (i === 22 ? 'batch-' + marker + '-0' : 'batch-' + marker + '-' + i) + '.txt',
                                     {type: 'text/plain'}));
             return dt; }""",
        marker,
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": folder})
    rows = page.locator(f'#uploads li[data-filename^="batch-{marker}-"]')
    expect(rows).to_have_count(23)
    for i in range(23):
        expect(rows.nth(i)).to_have_attribute("data-state", "done", timeout=180_000)
    assert len(posts) == 2, posts  # 20 + 3
    shot(page, "knowledge-batches")
