/* Knowledge library: drop many files, a progress bar per file fed by /ws/knowledge/jobs, search. */
"use strict";
(function () {
  const { T, api, el, describe, wsUrl } = window.SB;
  const drop = document.getElementById("dropzone");
  const picker = document.getElementById("files");
  const uploads = document.getElementById("uploads");
  const error = document.getElementById("upload-error");
  const bars = new Map();     // job id -> {bar, label, row}
  const latest = new Map();   // job id -> last event seen (it may come before the upload answers)
  const running = new Set();  // this page's upload jobs not yet done or failed

  function percent(job) {
    if (job.state === "done") return 100;
    const p = Number(job.progress || 0);
    return Math.max(0, Math.min(100, p <= 1 && job.state !== "queued" && p > 0 ? p * 100 : p));
  }

  function apply(job) {
    latest.set(job.id, job);
    const entry = bars.get(job.id);
    if (!entry) return;
    entry.bar.value = percent(job);
    entry.row.dataset.state = job.state;
    const state = T["state_" + job.state] || job.state;
    const stage = job.stage && job.stage !== job.state ? " · " + (T["jobstage_" + job.stage] || job.stage) : "";
    let text = state + stage + " · " + Math.round(percent(job)) + "%";
    if (job.state === "failed") {
      // the UI's language has a sentence for the reason: that (the server's words on hover)
      const own = document.documentElement.lang !== "en" && job.error_code && T["api_" + job.error_code];
      text = state + ": " + (own || job.error_message || job.error_code || "");
      entry.label.title = own ? (job.error_message || "") : "";
    }
    entry.label.textContent = text;
    if (job.state === "done" || job.state === "failed") {
      refreshDocument(job.document_id, entry);
      if (running.delete(job.id) && running.size === 0) refreshList();
    }
  }

  // the documents table below is rendered by the server: once this page's uploads are all
  // through, take the fresh one from the same page
  async function refreshList() {
    try {
      const html = await (await fetch(location.href, { credentials: "same-origin" })).text();
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("docs");
      const here = document.getElementById("docs");
      if (fresh && here) here.replaceWith(fresh);
    } catch (err) { /* a reload still shows it */ }
  }

  async function refreshDocument(documentId, entry) {
    try {
      const detail = await api("GET", "/api/knowledge/documents/" + documentId);
      const routes = [...new Set((detail.document.routes || []).map(r => r.route))].map(r => T["route_" + r] || r).join(", ");
      entry.route.textContent = routes ? T.route + ": " + routes : "";
    } catch (err) { /* the list below still shows it after a reload */ }
  }

  function connectJobs() {
    const ws = new WebSocket(wsUrl("/ws/knowledge/jobs"));
    ws.onmessage = function (m) {
      try { const e = JSON.parse(m.data); if (e.type === "job") apply(e); } catch (err) { /* ignore */ }
    };
    ws.onclose = function () { setTimeout(connectJobs, 1000); };
    return new Promise(function (resolve) { ws.onopen = resolve; setTimeout(resolve, 2000); });
  }
  const jobsReady = connectJobs();

  // A drop of a whole folder goes up in several requests: each under the server's body limit
  // (server.max_body_bytes, on the drop zone) and of at most BATCH_FILES files, one after the
  // other, so one request never holds hundreds of files and a 413 fails one batch, not all.
  const BATCH_FILES = 20;
  const FORM_BYTES = 1024 * 1024;  // what the form carries besides the files
  const maxBody = Number(drop.dataset.maxBody) || 64 * 1024 * 1024;
  const entryOf = new WeakMap();  // file -> its row on the page

  function batches(files) {
    const room = Math.max(1, maxBody - FORM_BYTES);
    const out = [];
    let current = [];
    let size = 0;
    for (const f of files) {
      if (current.length && (size + f.size > room || current.length >= BATCH_FILES)) {
        out.push(current);
        current = [];
        size = 0;
      }
      current.push(f);
      size += f.size;
    }
    if (current.length) out.push(current);
    return out;
  }

  function showItem(entry, item) {
    entry.row.dataset.document = item.document.id;
    if (item.duplicate) {
      // nothing new was stored: say so, and link the document that already holds this file
      // (its job, shown otherwise, is that document's earlier one)
      entry.bar.value = 100;
      entry.row.dataset.state = item.document.state;
      entry.row.dataset.duplicate = "true";
      entry.label.replaceChildren(T.duplicate + " · ",
        el("a", { href: "/knowledge/documents/" + item.document.id, class: "duplicate-of",
                  text: item.document.title + " v" + item.document.version }),
        " · " + (T["state_" + item.document.state] || item.document.state));
      refreshDocument(item.document.id, entry);
    } else if (item.job) {
      bars.set(item.job.id, entry);
      running.add(item.job.id);
      apply(latest.get(item.job.id) || item.job);
      // an event may have been missed before the answer: ask for the job's state once
      api("GET", "/api/knowledge/jobs/" + item.job.id).then(j => {
        const seen = latest.get(j.id);
        if (!seen || percent(j) >= percent(seen)) apply(j);
      }).catch(() => {});
    } else {
      entry.bar.value = 100;
      entry.row.dataset.state = item.document.state;
      entry.label.textContent = T["state_" + item.document.state] || item.document.state;
      refreshDocument(item.document.id, entry);
    }
  }

  async function uploadBatch(files, collection) {
    const form = new FormData();
    for (const f of files) form.append("files", f, f.name);
    form.append("collection", collection);
    const rows = new Map();
    for (const f of files) {
      // two files of one name in a drop each get their row (the answer keeps the order)
      if (!rows.has(f.name)) rows.set(f.name, []);
      rows.get(f.name).push(entryOf.get(f));
    }
    const rowOf = function (name) { return (rows.get(name) || []).shift(); };
    try {
      const out = await api("POST", "/api/knowledge/documents", form);
      for (const r of out.rejected || []) {
        const entry = rowOf(r.filename);
        if (!entry) continue;
        entry.row.dataset.state = "failed";
        entry.label.textContent = r.code + ": " + r.message;
      }
      for (const item of out.items) {
        const entry = rowOf(item.filename);
        if (entry) showItem(entry, item);
      }
      return true;
    } catch (err) {
      for (const f of files) { const e = entryOf.get(f); e.row.dataset.state = "failed"; e.label.textContent = describe(err); }
      error.textContent = describe(err);
      return false;
    }
  }

  async function upload(files) {
    if (!files.length) return;
    error.textContent = "";
    await jobsReady;
    const collection = document.getElementById("collection").value || "default";
    for (const f of files) {
      const id = "up-" + Math.random().toString(16).slice(2);
      const bar = el("progress", { max: "100", value: "0", id: id, "aria-label": f.name });
      const label = el("span", { class: "state", text: T.upload + "…" });
      const route = el("span", { class: "route" });
      const row = el("li", { class: "upload", "data-filename": f.name }, el("strong", { text: f.name }), bar, label, route);
      uploads.prepend(row);
      entryOf.set(f, { bar: bar, label: label, row: row, route: route });
    }
    for (const batch of batches(files)) {
      await uploadBatch(batch, collection);
    }
  }

  drop.addEventListener("dragover", function (ev) { ev.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
  drop.addEventListener("drop", function (ev) {
    ev.preventDefault();
    drop.classList.remove("over");
    upload([...ev.dataTransfer.files]);
  });
  picker.addEventListener("change", function () { upload([...picker.files]); picker.value = ""; });

  /* search */
  // the words of the query marked in a result's text (case-insensitive; a CJK run as a whole)
  function highlighted(text, q) {
    const terms = q.split(/[\s,.;:!?，。；：！？、"'()（）]+/).filter(function (w) { return w.length >= 2 || /[\u3400-\u9fff]/.test(w); });
    const out = document.createDocumentFragment();
    if (!terms.length) { out.append(text); return out; }
    const escaped = terms.map(function (w) { return w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); });
    const pattern = new RegExp("(" + escaped.sort(function (a, b) { return b.length - a.length; }).join("|") + ")", "gi");
    let last = 0;
    text.replace(pattern, function (match, _g, offset) {
      out.append(text.slice(last, offset), el("mark", { text: match }));
      last = offset + match.length;
      return match;
    });
    out.append(text.slice(last));
    return out;
  }

  const searchForm = document.getElementById("search-form");
  const results = document.getElementById("results");
  searchForm.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const q = document.getElementById("q").value.trim();
    if (!q) return;
    results.setAttribute("aria-busy", "true");
    try {
      const out = await api("GET", "/api/knowledge/search?q=" + encodeURIComponent(q));
      if (!out.results.length) { results.replaceChildren(el("li", { class: "muted", text: T.no_results })); return; }
      results.replaceChildren(...out.results.map(function (r) {
        const c = r.citation;
        const pageText = c.page ? T.page + " " + c.page : "";
        // a page-less document (Word, Excel, text) opens at the cited passage
        const href = "/knowledge/documents/" + c.document_id + (c.page ? "?page=" + c.page + "#page-" + c.page : "?passage=" + (c.passage || 0) + "#passage-" + (c.passage || 0));
        return el("li", { class: "result" },
          el("a", { href: href, class: "cite" }, document.createTextNode(c.title + " v" + c.version),
            c.page ? el("span", { class: "page", text: " · " + pageText }) : null),
          c.section && c.section.length ? el("span", { class: "muted", text: " · " + c.section.join(" › ") }) : null,
          el("p", { class: "snippet" }, highlighted(c.snippet || r.text.slice(0, 300), q)));
      }));
    } catch (err) {
      results.replaceChildren(el("li", { class: "error", text: describe(err) }));
    } finally {
      results.removeAttribute("aria-busy");
    }
  });
})();
