/* Editors of the domain resources: a list, and a form that posts JSON to /api/<resource>.
 * The API's validation messages are shown above the form and next to the field they name. */
"use strict";
(function () {
  const { T, api, el, describe } = window.SB;
  const root = document.getElementById("editor");
  const apiPath = root.dataset.api;
  const fields = JSON.parse(document.getElementById("fields").textContent);
  const list = document.getElementById("items");
  const form = document.getElementById("item-form");
  const error = document.getElementById("form-error");
  const status = document.getElementById("form-status");
  const heading = document.getElementById("form-heading");
  const del = document.getElementById("delete");
  let current = null;

  function clearErrors() {
    error.textContent = "";
    status.textContent = "";
    form.querySelectorAll(".field-error").forEach(n => { n.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(n => n.removeAttribute("aria-invalid"));
  }

  function fieldError(key, message) {
    const input = form.elements[key];
    const slot = document.getElementById("err-" + key);
    if (!input || !slot) return false;
    input.setAttribute("aria-invalid", "true");
    slot.textContent = message;
    return true;
  }

  function fill(item) {
    current = item;
    clearErrors();
    heading.textContent = item ? T.edit + " #" + item.id : T.new;
    del.hidden = !item;
    for (const f of fields) {
      const input = form.elements[f.key];
      const v = item ? item[f.key] : undefined;
      if (v === undefined || v === null) { input.value = f.default || (f.kind === "select" ? f.options[0] : ""); continue; }
      if (f.kind === "lines") input.value = v.join("\n");
      else if (f.kind === "ints") input.value = v.join(", ");
      else if (f.kind === "json") input.value = JSON.stringify(v, null, 2);
      else input.value = String(v);
    }
  }

  function collect() {
    const out = {};
    let ok = true;
    for (const f of fields) {
      const raw = form.elements[f.key].value;
      if (raw.trim() === "" && f.kind !== "text" && f.kind !== "textarea" && f.kind !== "select") {
        if (f.kind === "lines" || f.kind === "ints") out[f.key] = [];
        else if (current) out[f.key] = null;
        continue;
      }
      if (f.kind === "number") out[f.key] = Number(raw);
      else if (f.kind === "int") out[f.key] = Number.parseInt(raw, 10);
      else if (f.kind === "lines") out[f.key] = raw.split("\n").map(s => s.trim()).filter(Boolean);
      else if (f.kind === "ints") {
        const parts = raw.split(/[\s,，、]+/).filter(Boolean);
        const bad = parts.filter(p => !/^\d+$/.test(p));
        if (bad.length) { ok = false; fieldError(f.key, T.not_numbers + " " + bad.join(", ")); }
        else out[f.key] = parts.map(Number);
      }
      else if (f.kind === "json") {
        try { out[f.key] = JSON.parse(raw); } catch (e) { ok = false; fieldError(f.key, "JSON: " + e.message); }
      } else out[f.key] = raw;
      if (f.kind === "text" && !current && raw === "" && !f.required) delete out[f.key];
    }
    return ok ? out : null;
  }

  function showApiError(err) {
    const message = describe(err);
    error.textContent = message;
    // name the field: "... at `$.name`" (msgspec) or detail entries with a key/field
    const found = new Set();
    const m = String(err.message || "").match(/\$\.([A-Za-z_]+)/);
    if (m) found.add(m[1]);
    const details = Array.isArray(err.detail) ? err.detail : (err.detail ? [err.detail] : []);
    for (const d of details) {
      if (d && typeof d === "object") {
        const key = d.key || d.field || (typeof d.message === "string" && (d.message.match(/\$\.([A-Za-z_]+)/) || [])[1]);
        if (key) found.add(String(key).replace(/^(data|body)\./, "").split(/[.[]/)[0]);
      }
    }
    for (const key of found) fieldError(key, message);
  }

  async function refresh() {
    try {
      const items = await api("GET", apiPath);
      list.replaceChildren(...items.map(item => el("li", {},
        el("button", { type: "button", class: "link", text: "#" + item.id + " " + (item.name || ""), onclick: () => { fill(item); form.elements[fields[0].key].focus(); } }))));
      if (!items.length) list.replaceChildren(el("li", { class: "muted", text: T.none_yet }));
    } catch (err) {
      list.replaceChildren(el("li", { class: "error", text: describe(err) }));
    }
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    clearErrors();
    const body = collect();
    if (!body) {
      error.textContent = T.fix_fields;
      const bad = form.querySelector("[aria-invalid='true']");
      if (bad) bad.focus();
      return;
    }
    try {
      const saved = current ? await api("PATCH", apiPath + "/" + current.id, body) : await api("POST", apiPath, body);
      fill(saved);
      status.textContent = T.saved;
      refresh();
    } catch (err) {
      showApiError(err);
    }
  });
  document.getElementById("new").addEventListener("click", () => fill(null));
  del.addEventListener("click", async function () {
    if (!current || !window.confirm(T.delete + " #" + current.id + "?")) return;
    try { await api("DELETE", apiPath + "/" + current.id); fill(null); refresh(); } catch (err) { showApiError(err); }
  });
  fill(null);
  refresh();
})();
