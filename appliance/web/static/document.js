/* A document's page, for a manager or admin: Retry a failed ingestion, Delete the version. */
"use strict";
(function () {
  const { T, api, describe } = window.SB;
  const box = document.getElementById("document-actions");
  if (!box) return;
  const id = box.dataset.document;
  const error = document.getElementById("document-error");
  const retry = document.getElementById("retry-document");
  const remove = document.getElementById("delete-document");

  async function act(button, run) {
    if (error) error.textContent = "";
    button.disabled = true;
    try { await run(); }
    catch (err) { if (error) error.textContent = describe(err); button.disabled = false; }
  }

  if (retry) {
    retry.addEventListener("click", function () {
      act(retry, async function () {
        await api("POST", "/api/knowledge/documents/" + id + "/reingest");
        location.reload();  // the page then shows the new job, queued or running
      });
    });
  }
  if (remove) {
    remove.addEventListener("click", function () {
      const ask = T.delete_document_confirm.replace("{t}", box.dataset.title).replace("{v}", box.dataset.version);
      if (!window.confirm(ask)) return;
      act(remove, async function () {
        await api("DELETE", "/api/knowledge/documents/" + id);
        location.assign("/knowledge");
      });
    });
  }
})();
