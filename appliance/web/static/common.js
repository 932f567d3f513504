/* Shared by every page: UI strings, a JSON API helper, logout, scenario names. No framework. */
"use strict";
window.SB = (function () {
  const stringsEl = document.getElementById("strings");
  const T = stringsEl ? JSON.parse(stringsEl.textContent) : {};

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.message) || ("HTTP " + status));
      this.status = status;
      this.code = (body && body.code) || "http_" + status;
      this.detail = body && body.detail;
    }
  }

  async function api(method, url, body) {
    const init = { method: method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(url, init);
    const text = await response.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = { message: text }; }
    }
    if (response.status === 401 && data && data.code === "not_authenticated") {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  /* element builder: el("li", {class: "x", text: "y"}, child...) */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  /* the label the page shows for a field the API named: "persona_ids[1]" -> "客户[1]" */
  function fieldLabel(field) {
    const key = String(field).replace(/^(data|body)\./, "");
    const base = key.split(/[.[]/)[0];
    return (T["fld_" + base] || base) + key.slice(base.length);
  }

  /* the field an error is about: its detail, or msgspec's "at `$.x`" / "missing required field `x`" */
  function errorField(err) {
    const detail = err.detail && !Array.isArray(err.detail) && typeof err.detail === "object" ? err.detail : null;
    if (detail && detail.field) return String(detail.field);
    const m = String(err.message || "").match(/at `\$\.([^`]+)`|missing required field `([^`]+)`/);
    return m ? (m[1] || m[2]) : "";
  }

  /* the message of an API error, with the field it names when the API says so */
  function describe(err) {
    if (!(err instanceof ApiError)) return String(err && err.message || err);
    // the UI's language has a sentence for the code (or for the code and its reason or field:
    // api_invalid_input__password_too_short): that, with the field's label and the detail's
    // figures filled in; the English UI keeps the server's own message, which says more
    const detail = err.detail && !Array.isArray(err.detail) && typeof err.detail === "object" ? err.detail : {};
    const field = errorField(err);
    if (document.documentElement.lang !== "en") {
      const base = field.replace(/^(data|body)\./, "").split(/[.[]/)[0];
      const specific = (detail.reason && T["api_" + err.code + "__" + detail.reason]) ||
        (base && T["api_" + err.code + "__" + base]);
      const own = specific || T["api_" + err.code];
      if (own) {
        const text = own.replace(/\{(\w+)\}/g, (m, k) => (detail[k] !== undefined ? String(detail[k]) : m));
        return (field && !specific ? fieldLabel(field) + ": " : "") + text + " (" + err.code + ")";
      }
    }
    let msg = err.message;
    const extra = Array.isArray(err.detail) ? err.detail : (err.detail ? [err.detail] : []);
    const bits = extra.map(d => (typeof d === "object" ? (d.message || "") : String(d)))
      .filter(b => b && b !== msg);
    if (bits.length) msg += ": " + bits.join("; ");
    return msg + " (" + err.code + ")";
  }

  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  document.addEventListener("DOMContentLoaded", function () {
    const logout = document.getElementById("logout");
    if (logout) {
      logout.addEventListener("click", async function () {
        try { await api("POST", "/api/auth/logout"); } catch (e) { /* already logged out */ }
        location.assign("/login");
      });
    }
    const cells = document.querySelectorAll("[data-scenario-id]");
    if (cells.length) {
      api("GET", "/api/scenarios").then(function (list) {
        const names = new Map((list || []).map(s => [String(s.id), s.name]));
        cells.forEach(c => { const n = names.get(c.dataset.scenarioId); if (n) c.textContent = n; });
      }).catch(function () { /* keep the ids */ });
    }
  });

  return { T: T, api: api, el: el, describe: describe, errorField: errorField, wsUrl: wsUrl, ApiError: ApiError };
})();
