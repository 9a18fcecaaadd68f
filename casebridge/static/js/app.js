// CaseBridge page behaviour: idle-logoff warning and confirmation prompts. No inline scripts (CSP).
(function () {
  "use strict";

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  // --- Confirmation for destructive buttons -----------------------------------------------
  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  // --- Idle automatic logoff ----------------------------------------------------------------
  // The server enforces the timeout; this only warns a minute ahead and offers to stay.
  const body = document.body;
  const idleSeconds = parseInt(body.dataset.idleSeconds || "0", 10);
  if (!idleSeconds) return;
  const WARN_BEFORE = Math.min(60, Math.floor(idleSeconds / 2));
  const dialog = document.getElementById("idle-warning");
  const countdown = document.getElementById("idle-countdown");
  let deadline = Date.now() + idleSeconds * 1000;
  let timer = null;

  function signOutNow() {
    window.location.assign(body.dataset.loginUrl + "?next=" + encodeURIComponent(window.location.pathname));
  }

  function reschedule(remainingSeconds) {
    deadline = Date.now() + remainingSeconds * 1000;
    if (dialog.open) dialog.close();
  }

  function tick() {
    const left = Math.round((deadline - Date.now()) / 1000);
    if (left <= 0) {
      // Another tab may have kept the session alive: ask before leaving.
      fetch(body.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { remaining: 0 }; })
        .then(function (data) { if (data.remaining > 1) { reschedule(data.remaining); } else { signOutNow(); } })
        .catch(signOutNow);
      deadline = Date.now() + 5000;
      return;
    }
    if (left <= WARN_BEFORE) {
      countdown.textContent = String(left);
      if (!dialog.open) {
        dialog.showModal();
        document.getElementById("idle-stay").focus();
      }
    }
  }

  document.getElementById("idle-stay").addEventListener("click", function () {
    fetch(body.dataset.keepaliveUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r); })
      .then(function (data) { reschedule(data.remaining); })
      .catch(signOutNow);
  });

  timer = window.setInterval(tick, 1000);
  window.addEventListener("pagehide", function () { window.clearInterval(timer); });
})();
