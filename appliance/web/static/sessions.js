/* A manager's or admin's session list: Delete, after a confirm that names the session. */
"use strict";
(function () {
  const { T, api, describe } = window.SB;
  const error = document.getElementById("sessions-error");
  document.querySelectorAll("tr[data-session] button.delete-session").forEach(function (b) {
    b.addEventListener("click", async function () {
      const row = b.closest("tr");
      const ask = T.delete_session_confirm.replace("{n}", row.dataset.session).replace("{u}", row.dataset.trainee);
      if (!window.confirm(ask)) return;
      if (error) error.textContent = "";
      try { await api("DELETE", "/api/sessions/" + row.dataset.session); row.remove(); }
      catch (err) { if (error) error.textContent = describe(err); }
    });
  });
})();
