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
    const input = document.getElementById("f-" + key);
    const slot = document.getElementById("err-" + key);
    if (!input || !slot) return false;
    input.setAttribute("aria-invalid", "true");
    slot.textContent = message;
    return true;
  }

  /* ---- choices: a ref field picks one item of another list by name, a refs field ticks
   * several, a text field with a source suggests the names found there ---- */
  const choices = {};  // source path -> [{id, name, ...}]
  const choiceErrors = {};  // source path -> why it could not be listed

  function choiceLabel(item) {
    const lang = item.language ? " · " + (T["opt_" + item.language] || item.language) : "";
    return item.name + lang;
  }

  async function loadChoices() {
    const sources = [...new Set(fields.filter(f => f.source).map(f => f.source))];
    await Promise.all(sources.map(async source => {
      try { choices[source] = await api("GET", source); } catch (err) { choiceErrors[source] = describe(err); }
    }));
    for (const f of fields.filter(f => f.kind === "text" && f.source in choices)) {
      document.getElementById("dl-" + f.key).replaceChildren(
        ...choices[f.source].map(c => el("option", { value: c.name })));
    }
  }

  /* one item's id that the list no longer has (archived): kept, and said */
  function missingLabel(f, id) { return f.source in choices ? "#" + id + " (" + T.choice_archived + ")" : "#" + id; }

  function fillRef(f, select, value) {
    const items = choices[f.source] || [];
    const unset = value === null || value === undefined;
    // a required reference (a scenario's rubric) offers no "none": until one is picked a
    // prompt stands in, which cannot be picked back
    const empty = !f.required ? el("option", { value: "", text: T.choice_none })
      : unset ? el("option", { value: "", text: T.choice_pick, disabled: true }) : null;
    select.replaceChildren(...(empty ? [empty] : []),
      ...items.map(c => el("option", { value: String(c.id), text: choiceLabel(c) })));
    if (!unset && !items.some(c => c.id === value)) {
      select.append(el("option", { value: String(value), text: missingLabel(f, value) }));
    }
    select.value = unset ? "" : String(value);
  }

  function fillRefs(f, box, values) {
    const items = choices[f.source] || [];
    const chosen = new Set(values || []);
    const rows = items.map(c => [c.id, choiceLabel(c)]);
    for (const id of chosen) if (!items.some(c => c.id === id)) rows.push([id, missingLabel(f, id)]);
    const checks = box.querySelector(".checks");
    if (choiceErrors[f.source]) { checks.replaceChildren(el("span", { class: "error", text: choiceErrors[f.source] })); return; }
    if (!(f.source in choices)) return;  // still loading
    if (!rows.length) { checks.replaceChildren(el("span", { class: "muted", text: T.choices_empty })); return; }
    checks.replaceChildren(...rows.map(([id, text]) => el("label", { class: "check" },
      el("input", { type: "checkbox", name: f.key, value: String(id), checked: chosen.has(id) }), " " + text)));
  }

  function fill(item) {
    current = item;
    clearErrors();
    heading.textContent = item ? T.edit + " #" + item.id : T.new;
    del.hidden = !item;
    for (const f of fields) {
      const input = document.getElementById("f-" + f.key);
      const v = item ? item[f.key] : undefined;
      if (f.kind === "ref") { fillRef(f, input, v); continue; }
      if (f.kind === "refs") { fillRefs(f, input, v); continue; }
      if (v === undefined || v === null) { input.value = f.default || (f.kind === "select" ? f.options[0] : ""); continue; }
      if (f.kind === "lines") input.value = v.join("\n");
      else if (f.kind === "json") input.value = JSON.stringify(v, null, 2);
      else input.value = String(v);
    }
  }

  function collect() {
    const out = {};
    let ok = true;
    for (const f of fields) {
      if (f.kind === "refs") {
        if (!(f.source in choices)) continue;  // not listed (yet): leave the stored ones alone
        out[f.key] = [...form.querySelectorAll("input[name='" + f.key + "']:checked")].map(c => Number(c.value));
        continue;
      }
      const raw = form.elements[f.key].value;
      if (f.kind === "ref") {
        if (raw !== "") out[f.key] = Number(raw);
        else if (current || f.required) out[f.key] = null;  // a required one: the API says so
        continue;
      }
      if (raw.trim() === "" && f.kind !== "text" && f.kind !== "textarea" && f.kind !== "select") {
        if (f.kind === "lines") out[f.key] = [];
        else if (current) out[f.key] = null;
        continue;
      }
      if (f.kind === "number") out[f.key] = Number(raw);
      else if (f.kind === "int") out[f.key] = Number.parseInt(raw, 10);
      else if (f.kind === "lines") out[f.key] = raw.split("\n").map(s => s.trim()).filter(Boolean);
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
      const target = bad && bad.matches("fieldset") ? bad.querySelector("input") : bad;
      if (target) target.focus();
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
  // the lists arrive after the form is drawn: redraw the choice fields, keeping what is picked
  loadChoices().then(() => {
    for (const f of fields.filter(f => f.kind === "ref" || f.kind === "refs")) {
      const input = document.getElementById("f-" + f.key);
      const saved = current ? current[f.key] : undefined;
      if (f.kind === "ref") fillRef(f, input, input.value === "" ? saved : Number(input.value));
      else fillRefs(f, input, saved);
    }
  });
  fill(null);
  refresh();
})();
