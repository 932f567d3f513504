"""`salesboost ingest` and `salesboost reindex` on a real state dir, with a server reading it."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import httpx
from appliance.testing import ServerProcess, cli

from tests.conftest import Account, add_user, login
from tests.integration.knowledge_helpers import search


def test_ingest_folder_then_reindex_while_serving(tmp_path: Path) -> None:
    state = tmp_path / "state"
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "fees.md").write_text("# Fees\n\nThe premium card costs 120 dollars a year.")
    (folder / "sub" / "travel.md").write_text(
        "# Travel\n\nLost luggage is covered up to 900 euros."
    )
    (folder / "sub" / "junk.bin").write_bytes(bytes(range(256)) * 4)
    (folder / ".hidden.md").write_text("# Hidden\n\nNot ingested.")
    (folder / "bell\x07.md").write_text("# Bell\n\nA control character in the file name.")

    result = cli(state, "ingest", str(folder), "--collection", "cli", "--tags", "a,b")
    assert result.returncode == 1, result.stdout + result.stderr  # junk.bin was refused
    # refused at upload, reported per file with its code, and the others went on
    assert f"rejected\t{folder / 'sub' / 'junk.bin'}\tunsupported_type:" in result.stdout
    assert "invalid_text: filename: U+0007" in result.stdout, result.stdout
    assert "2 ingested, 0 duplicates, 0 failed, 2 rejected" in result.stdout
    again = cli(state, "ingest", str(folder / "fees.md"), "--collection", "cli")
    assert again.returncode == 0 and "1 duplicates" in again.stdout, again.stdout
    with sqlite3.connect(state / "salesboost.db") as conn:
        rows = conn.execute(
            "SELECT title, state, tags FROM documents WHERE collection = 'cli' ORDER BY title"
        ).fetchall()
        audit = conn.execute(
            "SELECT actor, action, json_extract(detail, '$.title'), "
            "json_extract(detail, '$.duplicate') FROM audit_log "
            "WHERE action = 'document.upload' ORDER BY id"
        ).fetchall()
    assert rows == [
        ("fees", "done", '["a", "b"]'),
        ("travel", "done", '["a", "b"]'),
    ]
    # the operator's uploads are in the audit log, as the API's are (the duplicate too)
    assert sorted(audit[:2]) == [
        ("cli", "document.upload", "fees", 0),
        ("cli", "document.upload", "travel", 0),
    ]
    assert audit[2:] == [("cli", "document.upload", "fees", 1)]

    account = Account("climgr", "manager", "alpha")
    add_user(state, account)
    with ServerProcess(state) as server:
        client = login(server, account)
        assert search(client, "luggage cover", collection="cli")[0]["citation"]["title"] == "travel"
        before = client.get("/api/knowledge/index").json()
        # search keeps answering while the reindex runs in another process
        answers: list[int] = []
        stop = threading.Event()

        def keep_searching() -> None:
            with httpx.Client(base_url=server.url, cookies=client.cookies, timeout=30) as c:
                while not stop.is_set():
                    r = c.get("/api/knowledge/search", params={"q": "premium card", "k": 1})
                    answers.append(r.status_code)

        thread = threading.Thread(target=keep_searching)
        thread.start()
        try:
            reindexed = cli(state, "reindex")
        finally:
            stop.set()
            thread.join()
        assert reindexed.returncode == 0, reindexed.stderr
        assert "0 embedded" in reindexed.stdout, "unchanged text comes from the cache"
        assert answers and set(answers) == {200}
        after = client.get("/api/knowledge/index").json()
        assert after["generation"] == before["generation"] + 1
        assert after["children"] == before["children"]
        assert search(client, "premium card", collection="cli")[0]["citation"]["title"] == "fees"
        meta = json.loads((state / "lancedb" / "index.json").read_text())
        assert meta["generation"] == after["generation"]
