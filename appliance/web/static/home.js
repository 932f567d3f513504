/* Trainee home: the scenarios to practise, each with its personas and a start button. */
"use strict";
(function () {
  const { T, api, el, describe } = window.SB;
  const box = document.getElementById("scenarios");
  const error = document.getElementById("home-error");

  async function start(scenarioId, select, button) {
    button.disabled = true;
    error.textContent = "";
    try {
      const session = await api("POST", "/api/sessions", { scenario_id: scenarioId, persona_id: Number(select.value) });
      location.assign("/practice/" + session.id);
    } catch (err) {
      error.textContent = describe(err);
      button.disabled = false;
    }
  }

  async function load() {
    try {
      const [scenarios, personas] = await Promise.all([api("GET", "/api/scenarios"), api("GET", "/api/personas")]);
      const byId = new Map(personas.map(p => [p.id, p]));
      if (!scenarios.length) { box.replaceChildren(el("p", { class: "muted", text: T.none_yet })); return; }
      // scenarios in the UI's language first (the sort is stable: the API's order otherwise)
      const uiLang = document.documentElement.lang.startsWith("zh") ? "zh" : "en";
      const mine = s => ((s.language || "en") === uiLang ? 0 : 1);
      scenarios.sort((a, b) => mine(a) - mine(b));
      box.replaceChildren(...scenarios.map(function (s) {
        const lang = s.language || "en";
        // the personas it offers (none ticked: any), only those of its own language: a session
        // with a persona of the other language is refused (language_mismatch)
        const offered = (s.persona_ids && s.persona_ids.length ? s.persona_ids.map(id => byId.get(id)).filter(Boolean) : personas);
        const allowed = offered.filter(p => (p.language || "en") === lang);
        const selectId = "persona-" + s.id;
        const select = el("select", { id: selectId }, ...allowed.map(p => el("option", { value: p.id, text: p.name + " · " + (T["diff_" + p.difficulty] || p.difficulty) })));
        const button = el("button", { type: "button", class: "start", "data-scenario": s.id, text: T.start });
        button.addEventListener("click", () => start(s.id, select, button));
        // no rubric (stored before one was required): nothing could score it, so it cannot
        // start; trainees are not sent these, a manager sees why
        const noRubric = s.rubric_id === null || s.rubric_id === undefined;
        if (!allowed.length || noRubric) button.disabled = true;
        return el("article", { class: "card scenario", "data-scenario": s.id, "data-language": lang },
          el("h3", { text: s.name }),
          el("p", { text: s.description }),
          el("p", { class: "muted", text: s.objective }),
          noRubric ? el("p", { class: "error no-rubric", text: T.scenario_no_rubric }) : null,
          !allowed.length ? el("p", { class: "error no-persona", text: T.scenario_no_persona }) : null,
          el("label", { for: selectId, text: T.persona }), select, button);
      }));
    } catch (err) {
      box.replaceChildren();
      error.textContent = describe(err);
    } finally {
      box.removeAttribute("aria-busy");
      if (window.performance && performance.mark) performance.mark("sb-interactive");
    }
  }
  load();
})();
