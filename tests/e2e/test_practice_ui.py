"""Practice in the browser: streamed replies, the report, a server killed mid-turn, observing.

The appliance is real (the bundled gemma-3-270m base model on the CPU), so replies take seconds.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from appliance.testing import ServerProcess

from tests.e2e.conftest import USERS, expect, login, shot

TURN_TIMEOUT_MS = 180_000

# records what the transcript showed at every change: was a reply on screen before its turn ended?
RECORDER = """() => {
  window.__seen = [];
  const t = document.getElementById('transcript');
  new MutationObserver(() => {
    for (const li of t.querySelectorAll('li.turn')) {
      window.__seen.push({turn: li.dataset.turn || null, streaming: li.classList.contains('streaming'),
                         len: li.querySelector('.msg.customer .text').textContent.length});
    }
  }).observe(t, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def start_practice(page: Any, screenshot: str = "") -> int:
    """Start the first English demo scenario from the home page; returns the session id."""
    deadline = time.monotonic() + 60
    while not page.request.get("/api/scenarios").json():  # the demo pack loads at first start
        assert time.monotonic() < deadline, "the demo pack did not load"
        time.sleep(0.5)
    page.goto("/home")
    card = page.locator('article.scenario[data-language="en"]').first
    expect(card).to_be_visible()
    if screenshot:
        shot(page, screenshot)
    card.locator("button.start").click()
    page.wait_for_url(re.compile(r"/practice/\d+$"))
    expect(page.locator("#say")).to_be_enabled(timeout=60_000)
    expect(page.locator("#persona-name")).not_to_have_text("Customer")
    return int(page.url.rsplit("/", 1)[1])


def finished(page: Any, index: int) -> Any:
    """The index-th turn of the transcript once its reply is complete."""
    li = page.locator("#transcript li.turn").nth(index)
    expect(li).to_have_attribute("data-turn", str(index + 1), timeout=TURN_TIMEOUT_MS)
    expect(li).not_to_have_class(re.compile(r"\b(pending|streaming)\b"), timeout=TURN_TIMEOUT_MS)
    expect(li.locator(".msg.customer .text")).not_to_be_empty()
    return li


def say(page: Any, text: str) -> Any:
    """Type a line, send it with Enter, wait for the whole reply."""
    index = page.locator("#transcript li.turn").count()
    page.locator("#say").fill(text)
    page.locator("#say").press("Enter")
    return finished(page, index)


def transcript(page: Any) -> list[tuple[str, str]]:
    """(turn, trainee text) of every turn on the page."""
    items = page.locator("#transcript li.turn")
    return [
        (
            items.nth(i).get_attribute("data-turn") or "",
            items.nth(i).locator(".msg.trainee .text").inner_text(),
        )
        for i in range(items.count())
    ]


LINES = [
    "Good morning, thank you for taking my call. How are you today?",
    "May I ask how you use your card at the moment, and what matters most to you?",
    "I understand the annual fee worries you. Can I explain how it can be waived?",
]


def test_three_turn_practice_streams_and_ends_with_a_report(
    new_page: Callable[..., Any],
) -> None:
    page = new_page()
    frames: list[dict[str, Any]] = []  # what the server sent, in order
    page.on(
        "websocket",
        lambda ws: ws.on("framereceived", lambda payload: frames.append(json.loads(payload))),
    )
    login(page, USERS["trainee"])
    start_practice(page, "home")
    page.evaluate(RECORDER)
    for n, line in enumerate(LINES, start=1):
        li = say(page, line)
        final = len(li.locator(".msg.customer .text").text_content() or "")
        seen = page.evaluate("n => window.__seen.filter(s => s.turn === String(n))", n)
        streamed = [s for s in seen if s["streaming"] and s["len"] > 0]
        assert streamed, f"turn {n}: no reply text was on the page before the turn completed"
        kinds = [f["type"] for f in frames if f.get("turn") == n]
        assert "npc_delta" in kinds and kinds.index("npc_delta") < kinds.index("npc_done"), kinds
        deltas = "".join(f["text"] for f in frames if f["type"] == "npc_delta" and f["turn"] == n)
        assert final > 0 and deltas.strip(), f"turn {n}: no streamed text"
        if n == 2:
            shot(page, "practice")
    assert transcript(page) == [(str(n), line) for n, line in enumerate(LINES, start=1)]
    expect(page.locator("#tips li.tip").first).to_be_visible(timeout=TURN_TIMEOUT_MS)
    # a turn's scores are shown by the rubric's dimension names, not its keys
    names = next(f for f in frames if f["type"] == "welcome")["dimensions"]
    score_line = page.locator("p.scores").first
    expect(score_line).to_be_visible(timeout=TURN_TIMEOUT_MS)
    assert any(name in score_line.inner_text() for name in names.values()), names
    # each source of a tip is listed once (a fee figure and a benefit are both the product's)
    for tip in page.locator("#tips li.tip").all():
        sources = [t.strip() for t in tip.locator(".cites li").all_inner_texts()]
        assert len(sources) == len(set(sources)), sources
    # newest turn first, whatever order the tips came in; only the newest one is open
    expect(page.locator("#tips li.tip")).to_have_count(3, timeout=TURN_TIMEOUT_MS)
    order = [t.get_attribute("data-turn") for t in page.locator("#tips li.tip").all()]
    assert order == ["3", "2", "1"], order
    opened = page.locator("#tips li.tip > details[open]")
    expect(opened).to_have_count(1)
    expect(opened).to_contain_text("Turn 3")
    shot(page, "practice-coach")
    # the slots ticked live are the ones the server holds (a reload rebuilds them from it)
    filled = page.locator("#slots li.filled")
    live = filled.all_inner_texts()
    last_done = [f for f in frames if f["type"] == "npc_done"][-1]
    assert len(live) == sum(last_done["slots"].values()) > 0, (live, last_done["slots"])
    page.reload()
    expect(page.locator("#say")).to_be_enabled(timeout=60_000)
    expect(filled).to_have_text(live)

    page.locator("#end").click()  # the confirm dialog is accepted by the fixture
    page.wait_for_url("**/report.html", timeout=300_000)
    expect(page.locator("svg[aria-label='Rubric scores radar chart']")).to_be_visible()
    shot(page, "report")

    page.goto("/history")
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("table.data a", has_text="Report").first).to_be_visible()
    shot(page, "history")

    # the manager's team dashboard now has the trainee's scored report
    manager = new_page()
    login(manager, USERS["manager"])
    row = manager.locator("table.matrix tbody tr", has_text=USERS["trainee"].username)
    expect(row.locator("td").nth(0)).not_to_have_text("0")  # reports
    expect(row.locator("td").nth(1)).not_to_have_text(
        "\u2013"
    )  # overall score (an en dash when none)
    shot(manager, "team")


def test_server_killed_mid_turn_resumes_without_loss_or_doubles(
    new_page: Callable[..., Any], e2e_server: ServerProcess
) -> None:
    page = new_page()
    sent: list[dict[str, Any]] = []
    page.on(
        "websocket",
        lambda ws: ws.on("framesent", lambda payload: sent.append(json.loads(payload))),
    )
    login(page, USERS["trainee2"])
    session_id = start_practice(page)
    say(page, LINES[0])

    page.locator("#say").fill(LINES[1])
    page.locator("#say").press("Enter")
    # cut the connection as soon as the line is on the wire, before its reply is complete:
    # kill -9, as a power cut would
    deadline = time.monotonic() + 10
    while not any(m.get("type") == "say" and m.get("text") == LINES[1] for m in sent):
        assert time.monotonic() < deadline, f"the line was never sent: {sent}"
        page.wait_for_timeout(5)
    e2e_server.kill()
    assert page.locator("#transcript li.turn.pending").count() == 1  # not answered yet
    banner = page.locator("#banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("reconnecting")
    shot(page, "practice-reconnecting")
    e2e_server.start(timeout=180)

    expect(banner).to_be_hidden(timeout=120_000)  # resumed by itself
    finished(page, 1)
    assert transcript(page) == [("1", LINES[0]), ("2", LINES[1])]

    stored = page.request.get(f"/api/sessions/{session_id}").json()["transcript"]
    assert [(t["turn"], t["trainee_text"]) for t in stored] == [(1, LINES[0]), (2, LINES[1])]
    shown = page.locator("#transcript li.turn").nth(1).locator(".msg.customer .text").inner_text()
    assert shown == stored[1]["npc_text"]

    say(page, LINES[2])  # and the session goes on
    assert [t for t, _ in transcript(page)] == ["1", "2", "3"]
    page.reload()  # a reload rebuilds the same transcript from the server
    expect(page.locator("#transcript li.turn")).to_have_count(3)
    assert transcript(page) == [(str(n), line) for n, line in enumerate(LINES, start=1)]


def test_manager_observes_a_live_session(new_page: Callable[..., Any]) -> None:
    trainee = new_page()
    login(trainee, USERS["trainee"])
    session_id = start_practice(trainee)

    manager = new_page()
    login(manager, USERS["manager"])
    manager.goto("/live")
    manager.locator(f'a[href="/observe/{session_id}"]').click()
    manager.wait_for_url(f"**/observe/{session_id}")
    expect(manager.locator("#persona-name")).to_have_text(
        trainee.locator("#persona-name").inner_text()
    )
    assert manager.locator("#say").count() == 0  # read-only
    expect(trainee.locator("#observers")).to_contain_text(USERS["manager"].username)  # told

    li = say(trainee, LINES[0])
    reply = li.locator(".msg.customer .text").inner_text()
    watched = finished(manager, 0)
    expect(watched.locator(".msg.trainee .text")).to_have_text(LINES[0])
    expect(watched.locator(".msg.customer .text")).to_have_text(reply)
    # the manager is not "You": the trainee's lines carry the trainee's name
    expect(watched.locator(".msg.trainee .who")).to_have_text(USERS["trainee"].username)
    expect(li.locator(".msg.trainee .who")).not_to_have_text(USERS["trainee"].username)
    # the coach's tip reaches the observer too
    expect(manager.locator("#tips li.tip")).to_have_count(1, timeout=120_000)
    shot(manager, "observe")
    # the note says who watches now: it goes when the manager leaves, and a reload, which
    # replays the stored observer_joined, does not bring it back
    manager.close()
    expect(trainee.locator("#observers")).to_be_hidden(timeout=15_000)
    trainee.reload()
    expect(trainee.locator("#say")).to_be_enabled(timeout=60_000)
    expect(trainee.locator("#transcript li.turn")).to_have_count(1)
    expect(trainee.locator("#observers")).to_be_hidden()
