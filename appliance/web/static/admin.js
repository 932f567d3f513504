/* Admin users and API tokens. */
"use strict";
(function () {
  const { T, api, el, describe } = window.SB;

  const create = document.getElementById("user-form");
  if (create) {
    const error = document.getElementById("user-error");
    const out = document.getElementById("user-created");
    create.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      error.textContent = "";
      out.hidden = true;
      const body = {
        username: create.username.value.trim(),
        role: create.role.value,
        display_name: create.display_name.value.trim(),
      };
      if (create.team.value.trim()) body.team = create.team.value.trim();
      if (create.password.value) body.password = create.password.value;
      try {
        const made = await api("POST", "/api/users", body);
        if (made.password) {
          out.replaceChildren(document.createTextNode(T.generated_password + " "), el("code", { id: "new-password", text: made.password }));
          out.hidden = false;
        }
        create.reset();
        // a generated password is shown once: it stays until the admin reloads the list
        if (made.password) {
          out.append(" ", el("button", { type: "button", id: "reload-users", class: "link", text: T.refresh_list, onclick: () => location.reload() }));
        } else {
          location.reload();
        }
      } catch (err) {
        error.textContent = describe(err);
      }
    });

    document.querySelectorAll("tr[data-user]").forEach(function (row) {
      const id = row.dataset.user;
      const msg = row.querySelector(".row-msg");
      /* true when saved; a refusal is shown in the row and the control goes back to what is stored */
      async function patch(body) {
        msg.textContent = "";
        msg.classList.remove("error");
        try { await api("PATCH", "/api/users/" + id, body); msg.textContent = T.saved; return true; }
        catch (err) { msg.textContent = describe(err); msg.classList.add("error"); return false; }
      }
      const role = row.querySelector("select.role");
      let storedRole = role.value;
      role.addEventListener("change", async function () {
        if (await patch({ role: role.value })) storedRole = role.value;
        else role.value = storedRole;
      });
      const team = row.querySelector("input.team");
      let storedTeam = team.value;
      team.addEventListener("change", async function () {
        if (await patch({ team: team.value.trim() || null })) storedTeam = team.value.trim();
        else team.value = storedTeam;
      });
      row.querySelector("button.toggle").addEventListener("click", async function (ev) {
        const disable = ev.target.dataset.disabled !== "true";
        if (await patch({ disabled: disable })) location.reload();  // a refusal stays on screen
      });
      row.querySelector("button.reset").addEventListener("click", async function () {
        if (!window.confirm(T.reset_confirm.replace("{u}", row.dataset.username))) return;
        msg.textContent = "";
        try {
          const out = await api("POST", "/api/users/" + id + "/reset-password", {});
          msg.replaceChildren(document.createTextNode(T.generated_password + " "), el("code", { text: out.password }));
        } catch (err) { msg.textContent = describe(err); }
      });
      row.querySelector("button.erase").addEventListener("click", async function () {
        if (!window.confirm(T.erase_confirm.replace("{u}", row.dataset.username))) return;
        msg.textContent = "";
        msg.classList.remove("error");
        try { await api("DELETE", "/api/users/" + id); row.remove(); }
        catch (err) { msg.textContent = describe(err); msg.classList.add("error"); }
      });
    });
  }

  const tokenForm = document.getElementById("token-form");
  if (tokenForm) {
    const error = document.getElementById("token-error");
    const out = document.getElementById("token-created");
    tokenForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      error.textContent = "";
      try {
        const made = await api("POST", "/api/tokens", { name: tokenForm.name.value.trim() });
        // the list below gains the token when the page reloads; the secret is shown this once
        out.replaceChildren(el("p", { text: T.token_once }), el("code", { id: "new-token", text: made.token }), " ",
          el("button", { type: "button", id: "reload-tokens", class: "link", text: T.refresh_list, onclick: () => location.reload() }));
        out.hidden = false;
        tokenForm.reset();
      } catch (err) { error.textContent = describe(err); }
    });
    document.querySelectorAll("button.revoke").forEach(function (b) {
      b.addEventListener("click", async function () {
        if (!window.confirm(T.revoke_confirm.replace("{n}", b.dataset.name || ("#" + b.dataset.token)))) return;
        try { await api("DELETE", "/api/tokens/" + b.dataset.token); b.closest("tr").remove(); }
        catch (err) { error.textContent = describe(err); }
      });
    });
  }
})();
