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
        setTimeout(() => location.reload(), made.password ? 4000 : 0);
      } catch (err) {
        error.textContent = describe(err);
      }
    });

    document.querySelectorAll("tr[data-user]").forEach(function (row) {
      const id = row.dataset.user;
      const msg = row.querySelector(".row-msg");
      async function patch(body) {
        msg.textContent = "";
        try { await api("PATCH", "/api/users/" + id, body); msg.textContent = T.saved; }
        catch (err) { msg.textContent = describe(err); }
      }
      row.querySelector("select.role").addEventListener("change", ev => patch({ role: ev.target.value }));
      row.querySelector("input.team").addEventListener("change", ev => patch({ team: ev.target.value.trim() || null }));
      row.querySelector("button.toggle").addEventListener("click", async function (ev) {
        const disable = ev.target.dataset.disabled !== "true";
        await patch({ disabled: disable });
        location.reload();
      });
      row.querySelector("button.reset").addEventListener("click", async function () {
        msg.textContent = "";
        try {
          const out = await api("POST", "/api/users/" + id + "/reset-password", {});
          msg.replaceChildren(document.createTextNode(T.generated_password + " "), el("code", { text: out.password }));
        } catch (err) { msg.textContent = describe(err); }
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
        out.replaceChildren(el("p", { text: T.token_once }), el("code", { id: "new-token", text: made.token }));
        out.hidden = false;
        tokenForm.reset();
      } catch (err) { error.textContent = describe(err); }
    });
    document.querySelectorAll("button.revoke").forEach(function (b) {
      b.addEventListener("click", async function () {
        try { await api("DELETE", "/api/tokens/" + b.dataset.token); b.closest("tr").remove(); }
        catch (err) { error.textContent = describe(err); }
      });
    });
  }
})();
