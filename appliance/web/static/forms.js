/* Login and password-change forms. */
"use strict";
(function () {
  const { T, api, describe } = window.SB;
  const error = document.getElementById("form-error");

  const login = document.getElementById("login-form");
  if (login) {
    login.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      error.textContent = "";
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
        error.textContent = describe(err);
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
        error.textContent = describe(err);
      }
    });
  }
})();
