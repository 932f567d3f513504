"""Helpers shared by the knowledge tests: upload documents and wait for their jobs."""

from __future__ import annotations

import time
from typing import Any

import httpx


def upload(
    client: httpx.Client,
    files: dict[str, str | bytes],
    *,
    collection: str,
    tags: str = "",
    title: str | None = None,
) -> list[dict[str, Any]]:
    """POST files (name -> content) to /api/knowledge/documents; returns the items."""
    parts = [
        ("files", (name, body.encode() if isinstance(body, str) else body, "text/markdown"))
        for name, body in files.items()
    ]
    data = {"collection": collection, "tags": tags}
    if title:
        data["title"] = title
    response = client.post("/api/knowledge/documents", files=parts, data=data)
    assert response.status_code == 202, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def wait_jobs(
    client: httpx.Client, job_ids: list[int], timeout: float = 240
) -> dict[int, dict[str, Any]]:
    """Poll GET /api/knowledge/jobs/{id} until every job is done or failed."""
    deadline = time.monotonic() + timeout
    finished: dict[int, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for job_id in job_ids:
            if job_id in finished:
                continue
            job = client.get(f"/api/knowledge/jobs/{job_id}").json()
            if job["state"] in ("done", "failed"):
                finished[job_id] = job
        if len(finished) == len(job_ids):
            return finished
        time.sleep(0.25)
    raise AssertionError(f"jobs not finished in {timeout} s: {set(job_ids) - set(finished)}")


def ingest(
    client: httpx.Client, files: dict[str, str | bytes], *, collection: str, tags: str = ""
) -> list[dict[str, Any]]:
    """Upload and wait; asserts every job is done; returns the items."""
    items = upload(client, files, collection=collection, tags=tags)
    jobs = wait_jobs(client, [i["job"]["id"] for i in items if i["job"]])
    failed = {j["id"]: j["error_code"] for j in jobs.values() if j["state"] != "done"}
    assert failed == {}, failed
    return items


def search(client: httpx.Client, q: str, **params: Any) -> list[dict[str, Any]]:
    """GET /api/knowledge/search; returns the results."""
    response = client.get("/api/knowledge/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def lance_tables(db: Any) -> list[str]:
    """Every table name of a LanceDB connection (``list_tables`` pages; ``table_names()`` is
    deprecated)."""
    names: list[str] = []
    token: str | None = None
    while True:
        page = db.list_tables(page_token=token)
        names.extend(page.tables)
        token = page.page_token
        if not token:
            return names
