/* The practice page (and the observer's read-only view of it).
 *
 * Resume rules: every stored event has a seq; the page keeps the highest one it has seen and
 * sends it in hello{last_seq} on every (re)connection, so the server replays exactly what was
 * missed. Turns are kept by turn number and stored events by seq, so a replay never doubles
 * anything. A line that has not been answered yet is kept (also in sessionStorage, so a reload
 * keeps it) and is sent again with the SAME client_turn_id: the server answers a resend with
 * the stored turn instead of a second reply.
 */
"use strict";
(function () {
  const { T, el, wsUrl } = window.SB;
  const root = document.getElementById("practice");
  const sessionId = root.dataset.session;
  const observer = root.dataset.mode === "observe";
  const STAGES = ["OPENING", "NEEDS_DISCOVERY", "PRODUCT_INTRO", "OBJECTION_HANDLING", "CLOSING", "COMPLETED"];
  const STORE = "sb-pending-" + sessionId;
  const STORED_TYPES = new Set(["npc_done", "intent", "coach_tip", "turn_score", "stage_changed",
    "compliance_flag", "session_ended", "report_ready", "observer_joined", "observer_left"]);

  const transcript = document.getElementById("transcript");
  const banner = document.getElementById("banner");
  const tips = document.getElementById("tips");
  const chatError = document.getElementById("chat-error");
  const ended = document.getElementById("ended");
  const input = document.getElementById("say");
  const sendBtn = document.getElementById("send");
  const endBtn = document.getElementById("end");

  let socket = null;
  let lastSeq = 0;
  let endedIdle = false;
  let dimensions = {};              // rubric dimension key -> name, from the welcome
  let traineeLabel = T.you;         // an observer sees the trainee's name instead of "You"
  let welcomeSeq = 0;               // the welcome's last_seq: stored events up to it are history
  let replayUntil = null;           // while the log is replayed after a welcome, its last_seq
  const seen = new Set();           // seqs of stored events already applied
  const turns = new Map();          // turn number -> <li>
  const nextDelta = new Map();      // turn number -> next expected npc_delta index
  let pending = null;               // {id, text}: said, not yet answered
  let pendingLi = null;
  let sessionState = "active";
  let endRequested = false;
  let attempts = 0;
  let pingTimer = null;
  let everConnected = false;

  try { pending = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (e) { pending = null; }

  function setPending(value) {
    pending = value;
    if (value) sessionStorage.setItem(STORE, JSON.stringify(value));
    else sessionStorage.removeItem(STORE);
    updateControls();
  }

  function connected() { return socket && socket.readyState === WebSocket.OPEN && socket.sbWelcomed; }

  function updateControls() {
    if (observer) return;
    const live = sessionState === "active";
    input.disabled = !live;
    sendBtn.disabled = !live || !!pending || !connected();
    endBtn.disabled = !live || !connected();
  }

  function showBanner(text, kind) {
    banner.textContent = text;
    banner.className = "banner " + (kind || "");
    banner.hidden = !text;
  }

  /* ---------- transcript ---------- */
  function bubble(who, text) {
    return el("div", { class: "msg " + who },
      el("span", { class: "who", text: who === "trainee" ? traineeLabel : T.customer }),
      el("p", { class: "text", text: text || "" }));
  }

  function makeTurnLi(n) {
    const li = el("li", { class: "turn" }, bubble("trainee", ""), bubble("customer", ""), el("div", { class: "extras" }));
    if (n !== null) li.dataset.turn = String(n);
    transcript.append(li);
    return li;
  }

  function turnLi(n, adoptPending) {
    let li = turns.get(n);
    if (li) return li;
    if (adoptPending && pendingLi && !pendingLi.dataset.turn) {
      li = pendingLi;
      li.dataset.turn = String(n);
    } else {
      li = makeTurnLi(n);
    }
    turns.set(n, li);
    // keep turns in order even when a replay fills an older one late
    const after = [...transcript.children].find(x => x.dataset.turn && Number(x.dataset.turn) > n);
    if (after && after !== li) transcript.insertBefore(li, after);
    return li;
  }

  function setText(li, who, text) {
    li.querySelector(".msg." + who + " .text").textContent = text;
  }

  function scrollDown() { transcript.scrollTop = transcript.scrollHeight; }
  // a line added under the newest turn (a score, a flag) is brought into view, unless the
  // reader has scrolled up to read an earlier turn
  function nearBottom() { return transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 160; }

  function showPendingBubble() {
    if (!pending || observer) return;
    if (!pendingLi) {
      pendingLi = makeTurnLi(null);
      pendingLi.classList.add("pending");
    }
    setText(pendingLi, "trainee", pending.text);
    scrollDown();
  }

  /* ---------- side panels ---------- */
  function renderStage(stage, slots) {
    const list = document.getElementById("stages");
    list.replaceChildren(...STAGES.map(function (s) {
      const idx = STAGES.indexOf(stage);
      const i = STAGES.indexOf(s);
      const li = el("li", { class: i < idx ? "done" : (i === idx ? "current" : ""), text: T["stage_" + s] || s.replace(/_/g, " ").toLowerCase() });
      if (i === idx) li.setAttribute("aria-current", "step");
      return li;
    }));
    const slotList = document.getElementById("slots");
    slotList.replaceChildren(...Object.entries(slots || {}).map(([k, v]) =>
      el("li", { class: v ? "filled" : "", text: (v ? "✓ " : "○ ") + (T["slot_" + k] || k.replace(/_/g, " ")) })));
  }

  function renderMood(mood) {
    document.getElementById("mood").value = mood;
    document.getElementById("mood-face").textContent = mood < 0.35 ? "☹" : (mood < 0.65 ? "😐" : "☺");
    document.getElementById("mood").title = mood.toFixed(2);
  }

  function addTip(e) {
    const empty = tips.querySelector(".empty");
    if (empty) empty.remove();
    // one line per source: a document page, or the product's facts (a fee figure and a
    // benefit are both "the product"); what was used of it shows on hover
    const byLabel = new Map();
    (e.citations || []).forEach(function (c) {
      const label = c.title + (c.kind === "product" ? " · " + T.product_facts : "") + (c.page ? " · " + T.page + " " + c.page : "");
      const seen = byLabel.get(label);
      if (seen) {
        if (c.snippet) seen.title = seen.title ? seen.title + "\n" + c.snippet : c.snippet;
        return;
      }
      let li;
      if (c.kind === "document" && c.document_id) {
        const href = "/knowledge/documents/" + c.document_id + (c.page ? "?page=" + c.page + "#page-" + c.page
          : (c.passage !== null && c.passage !== undefined ? "?passage=" + c.passage + "#passage-" + c.passage : ""));
        li = el("li", {}, el("a", { href: href, text: label }));
      } else {
        li = el("li", { text: label });
      }
      if (c.snippet) li.title = c.snippet;
      byLabel.set(label, li);
    });
    const cites = Array.from(byLabel.values());
    // the newest tip open, the earlier ones folded to their first line (a column of every
    // tip in full grew to several screens by turn 6); a click opens any of them again
    // Tips can arrive out of turn order (the coach runs after each reply at a lower priority):
    // the list is kept newest turn first.
    const [technique, ...facts] = String(e.advice || "").split("\n");
    const tip = el("li", { class: "tip", "data-turn": e.turn },
      el("details", {},
        el("summary", {}, el("span", { class: "turn-no", text: T.turn_no.replace("{n}", e.turn) }), " ", technique),
        e.script_example ? el("p", { class: "example" }, el("strong", { text: T.example + ": " }), document.createTextNode(e.script_example)) : null,
        facts.length ? el("p", { class: "advice", text: facts.join("\n") }) : null,
        cites.length ? el("div", { class: "cites" }, el("span", { text: T.sources + ":" }), el("ul", {}, ...cites)) : null));
    const older = Array.from(tips.querySelectorAll("li.tip")).find(li => Number(li.dataset.turn) < Number(e.turn));
    tips.insertBefore(tip, older || null);
    const newest = tips.querySelector("li.tip > details");
    tips.querySelectorAll("li.tip > details").forEach(d => { d.open = d === newest; });
  }

  /* ---------- events ---------- */
  function renderObservers(names) {
    if (observer) return;
    const note = document.getElementById("observers");
    note.hidden = names.length === 0;
    note.textContent = names.length ? T.observed_by + " " + names.join(", ") : "";
  }

  // once the replay after a welcome is through: a line still unanswered in a session that has
  // ended meanwhile (in another tab, by a manager) can no longer be answered
  function afterReplay() {
    if (!pending || observer || sessionState === "active") return;
    if (pendingLi) { pendingLi.remove(); pendingLi = null; }
    input.value = input.value || pending.text;
    setPending(null);
    chatError.textContent = T.pending_dropped;
  }

  function onWelcome(e) {
    socket.sbWelcomed = true;
    welcomeSeq = e.last_seq;
    dimensions = e.dimensions || {};
    if (observer && e.session.trainee) {
      traineeLabel = e.session.trainee;
      for (const who of transcript.querySelectorAll(".msg.trainee .who")) who.textContent = traineeLabel;
    }
    renderObservers(e.observers || []);
    attempts = 0;
    sessionState = e.session.state;
    document.getElementById("persona-name").textContent = e.persona.name + " (" + (T["diff_" + e.persona.difficulty] || e.persona.difficulty) + ")";
    document.getElementById("persona-desc").textContent = e.persona.description;
    document.getElementById("scenario-objective").textContent = e.scenario.name + ": " + e.scenario.objective;
    renderStage(e.stage, e.slots);
    renderMood(e.mood);
    for (const t of e.history) {
      const li = turnLi(t.turn, false);
      setText(li, "trainee", t.trainee_text);
      setText(li, "customer", t.npc_text);
      li.classList.remove("streaming");
      nextDelta.set(t.turn, Infinity);
    }
    if (everConnected) {
      showBanner(T.reconnected, "ok");
      setTimeout(function () { if (connected()) showBanner(""); }, 1500);
    } else {
      showBanner("");
    }
    if (!everConnected && window.performance && performance.mark) performance.mark("sb-interactive");
    everConnected = true;
    if (sessionState !== "active") showEnded(e.session.report_id ? T.report_ready : T.ended, !!e.session.report_id);
    // a line said but not answered: send it again with the same id unless it is still running
    if (pending && !observer && sessionState === "active" && !e.session.turn_in_flight) {
      showPendingBubble();
      send({ type: "say", client_turn_id: pending.id, text: pending.text });
    } else if (pending) {
      showPendingBubble();
    }
    updateControls();
    scrollDown();
    if (lastSeq >= e.last_seq) afterReplay();
    else replayUntil = e.last_seq;
  }

  function onDelta(e) {
    const li = turnLi(e.turn, true);
    const expected = nextDelta.has(e.turn) ? nextDelta.get(e.turn) : 0;
    if (e.index < expected) return;            // already shown
    nextDelta.set(e.turn, e.index + 1);
    li.classList.add("streaming");
    const p = li.querySelector(".msg.customer .text");
    p.textContent += e.text;
    scrollDown();
  }

  function onDone(e) {
    const li = turnLi(e.turn, !!(pending && e.client_turn_id === pending.id));
    setText(li, "trainee", e.trainee_text);
    setText(li, "customer", e.text);
    li.classList.remove("streaming", "pending");
    nextDelta.set(e.turn, Infinity);
    if (pendingLi && pendingLi !== li && pending && e.client_turn_id === pending.id) pendingLi.remove();
    if (pending && e.client_turn_id === pending.id) {
      pendingLi = null;
      setPending(null);
      chatError.textContent = "";  // a "busy, retrying" note is over once the line is answered
      chatError.removeAttribute("title");
    }
    renderMood(e.mood);
    if (e.slots && Object.keys(e.slots).length) renderStage(e.stage, e.slots);  // filled, same stage
    scrollDown();
  }

  function extras(turn) { return turnLi(turn, true).querySelector(".extras"); }

  // severity, speaker and action are the API's words: shown in the UI language
  function word(prefix, value) { return T[prefix + value] || String(value).replace(/_/g, " "); }

  function onFlag(e) {
    const follow = nearBottom();
    extras(e.turn).append(el("p", { class: "flag " + e.severity, role: "note" },
      el("strong", { text: T.compliance + " · " + word("opt_", e.severity) + ": " }),
      document.createTextNode(e.rule + " — “" + e.excerpt + "” (" + word("opt_", e.who) + ", " + word("flag_", e.action) + ")")));
    if (follow) scrollDown();
  }

  function onScore(e) {
    const text = Object.entries(e.scores).map(([k, v]) => (dimensions[k] || k.replace(/_/g, " ")) + " " + Number(v).toFixed(1)).join(" · ");
    const follow = nearBottom();
    extras(e.turn).append(el("p", { class: "scores", text: T.score + ": " + text }));
    if (follow) scrollDown();
  }

  // the customer's line is tagged with what the classifier read in it; "unclear" tells the
  // trainee nothing (most small talk and plain answers), so it shows no tag
  function onIntent(e) {
    const li = turns.get(e.turn);
    if (!li) return;
    const who = li.querySelector(".msg.customer .who");
    who.textContent = e.label === "unclear" ? T.customer : T.customer + " · " + (T["intent_" + e.label] || e.label.replace(/_/g, " "));
  }

  function showEnded(text, ready) {
    ended.hidden = false;
    // a session the server ended for lack of lines says so first, also once the report is in
    ended.replaceChildren(document.createTextNode((endedIdle ? T.ended_idle + " " : "") + text + " "));
    if (ready) {
      ended.append(el("a", { href: "/api/sessions/" + sessionId + "/report.html", id: "report-link", text: T.view_report }));
    }
  }

  function onEvent(e) {
    if (STORED_TYPES.has(e.type)) {
      if (seen.has(e.seq)) return;
      seen.add(e.seq);
      lastSeq = Math.max(lastSeq, e.seq);
    }
    switch (e.type) {
      case "welcome": onWelcome(e); break;
      case "npc_delta": onDelta(e); break;
      case "npc_done": onDone(e); break;
      case "intent": onIntent(e); break;
      case "coach_tip": addTip(e); break;
      case "turn_score": onScore(e); break;
      case "stage_changed": renderStage(e.to, e.slots); break;
      case "compliance_flag": onFlag(e); break;
      case "session_ended":
        sessionState = "ended";
        endedIdle = e.reason === "idle";
        showEnded(T.ended, false);
        updateControls();
        break;
      case "report_ready":
        sessionState = "ended";
        showEnded(T.report_ready, true);
        updateControls();
        if (endRequested) setTimeout(function () { location.assign("/api/sessions/" + sessionId + "/report.html"); }, 800);
        break;
      case "observer_joined":
      case "observer_left":
        // replayed ones are history: the welcome said who watches now
        if (e.seq > welcomeSeq) renderObservers(e.observers || []);
        break;
      case "error": onError(e); break;
      default: break;
    }
    if (replayUntil !== null && STORED_TYPES.has(e.type) && e.seq >= replayUntil) {
      replayUntil = null;
      afterReplay();
    }
  }

  function onError(e) {
    if (pending && e.client_turn_id === pending.id) {
      if (e.retry_after !== null && e.retry_after !== undefined) {
        chatError.textContent = T.busy_retry.replace("{s}", String(Math.max(1, Math.ceil(e.retry_after))));
        chatError.title = e.message + " (" + e.code + ")";
        const retry = pending;
        setTimeout(function () {
          if (pending === retry && connected()) send({ type: "say", client_turn_id: retry.id, text: retry.text });
        }, Math.max(500, e.retry_after * 1000));
        return;
      }
      if (pendingLi) pendingLi.remove();
      pendingLi = null;
      if (input && !input.value) input.value = pending.text;
      setPending(null);
    }
    const known = T["err_" + e.code];
    chatError.textContent = known || (e.message + " (" + e.code + ")");
    chatError.title = known ? e.message + " (" + e.code + ")" : "";
  }

  /* ---------- connection ---------- */
  function send(msg) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(msg));
  }

  function connect() {
    const path = (observer ? "/ws/observe/" : "/ws/practice/") + sessionId;
    const ws = new WebSocket(wsUrl(path));
    socket = ws;
    ws.sbWelcomed = false;
    ws.onopen = function () {
      ws.send(JSON.stringify({ type: "hello", last_seq: lastSeq }));
      clearInterval(pingTimer);
      pingTimer = setInterval(function () { send({ type: "ping" }); }, 30000);
    };
    ws.onmessage = function (m) {
      let e;
      try { e = JSON.parse(m.data); } catch (err) { return; }
      onEvent(e);
    };
    ws.onclose = function (ev) {
      clearInterval(pingTimer);
      if (socket !== ws) return;
      updateControls();
      if (ev.code === 4401) { location.assign("/login?next=" + encodeURIComponent(location.pathname)); return; }
      if (ev.code === 4403 || ev.code === 4404) { showBanner(ev.reason || ("closed " + ev.code), "bad"); return; }
      if (ev.code === 4410) { showBanner(T.session_deleted, "bad"); return; }  // deleted: nothing to resume
      if (sessionState !== "active" && !pending && ended.querySelector("#report-link")) return;
      showBanner(T.reconnecting, "warn");
      attempts += 1;
      setTimeout(connect, Math.min(5000, 250 * Math.pow(2, attempts - 1)));
    };
  }

  /* ---------- input ---------- */
  if (!observer) {
    document.getElementById("say-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      const text = input.value.trim();
      if (!text || pending || sessionState !== "active") return;
      // too long: say so and keep the line to shorten (a maxlength cut it off silently)
      const limit = Number(input.dataset.maxChars || 0);
      if (limit && text.length > limit) {
        chatError.textContent = T.line_too_long.replace("{n}", text.length).replace("{max}", limit);
        return;
      }
      chatError.textContent = "";
      const id = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
      setPending({ id: id, text: text });
      input.value = "";
      showPendingBubble();
      send({ type: "say", client_turn_id: id, text: text });
    });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        document.getElementById("say-form").requestSubmit();
      }
    });
    endBtn.addEventListener("click", function () {
      if (!window.confirm(T.end_confirm)) return;
      endRequested = true;
      send({ type: "end" });
    });
  }

  connect();
})();
