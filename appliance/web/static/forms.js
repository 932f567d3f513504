/* Login and password-change forms. */
"use strict";
(function () {
  const SB = window.SB;
  const { T, api, describe } = SB;
  const error = document.getElementById("form-error");

  /* the API's refusal in the UI's language where the code is a known one */
  function explain(err, credentialsText) {
    if (err instanceof SB.ApiError) {
      if (err.code === "invalid_credentials") return credentialsText;
      if (err.code === "locked_out" || err.code === "rate_limited" || err.code === "too_many_requests") {
        const wait = err.detail && err.detail.retry_after;
        return T.err_locked.replace("{s}", String(wait || 60));
      }
    }
    return describe(err);
  }

  /* the first empty field of a form, focused, or null when all are filled */
  function firstEmpty(fields) {
    const empty = fields.find(f => !f.value.trim());
    if (empty) empty.focus();
    return empty || null;
  }

  const login = document.getElementById("login-form");
  if (login) {
    login.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      error.textContent = "";
      if (firstEmpty([login.username, login.password])) { error.textContent = T.fill_login; return; }
      const button = login.querySelector("button");
      button.disabled = true;
      try {
        const user = await api("POST", "/api/auth/login", {
          username: login.username.value.trim(),
          password: login.password.value,
        });
        if (user.must_change_password) location.assign("/password");
        else location.assign(login.dataset.next || "/");
      } catch (err) {
        error.textContent = explain(err, T.err_login);
        login.password.select();
      } finally {
        button.disabled = false;
      }
    });
  }

  const change = document.getElementById("password-form");
  if (change) {
    change.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      error.textContent = "";
      if (firstEmpty([change.current_password, change.new_password, change.repeat_password])) {
        error.textContent = T.fill_password;
        return;
      }
      if (change.new_password.value !== change.repeat_password.value) {
        error.textContent = T.passwords_differ;
        change.repeat_password.focus();
        return;
      }
      try {
        await api("POST", "/api/auth/password", {
          current_password: change.current_password.value,
          new_password: change.new_password.value,
        });
        location.assign("/");
      } catch (err) {
        error.textContent = explain(err, T.err_current_password);
      }
    });
  }
})();
