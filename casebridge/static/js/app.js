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

  // --- Wide tables scroll inside their own box on narrow screens, not the whole page ---------
  // The box is a labelled region the keyboard can reach (arrow keys scroll it), as WCAG asks of
  // scrollable areas; htmx-swapped tables get one too.
  function wrapTables(root) {
    for (const table of root.querySelectorAll("table")) {
      const parent = table.parentElement;
      if (!parent) continue;
      const box = parent.classList.contains("table-scroll") ? parent : document.createElement("div");
      box.className = "table-scroll";
      box.tabIndex = 0;
      box.setAttribute("role", "region");
      const caption = table.caption ? table.caption.textContent.trim() : "";
      box.setAttribute("aria-label", caption || "Table");
      if (box !== parent) {
        table.before(box);
        box.append(table);
      }
    }
  }
  wrapTables(document);
  document.addEventListener("htmx:afterSwap", function (event) {
    wrapTables(event.target.parentElement || event.target);
  });

  // --- Forms: after a refused submission, put the keyboard on the first field to fix ---------
  const invalid = document.querySelector(
    ".field.invalid input:not([type=hidden]), .field.invalid select, .field.invalid textarea, [aria-invalid=true]"
  );
  if (invalid) invalid.focus();

  // --- Passkeys: allauth's WebAuthn script reports failures as an event; show them ----------
  const WEBAUTHN_MESSAGES = {
    NotAllowedError: "The passkey request was cancelled or timed out. Try again.",
    InvalidStateError: "This passkey or security key is already registered.",
    SecurityError: "Passkeys only work on the portal's own address over HTTPS.",
    NotSupportedError: "This browser or device does not support passkeys.",
  };
  document.addEventListener("allauth.error", function (event) {
    const box = document.getElementById("webauthn-error");
    if (!box) return;
    const name = event.detail && event.detail.exception ? event.detail.exception.name : "";
    box.textContent = WEBAUTHN_MESSAGES[name] || "The passkey could not be used. Try again or use another method.";
    box.hidden = false;
    event.preventDefault();
  });

  // --- Idle automatic logoff ----------------------------------------------------------------
  // The server enforces the timeout; this warns ahead of it and offers to stay. Before warning or
  // leaving it asks the server, which knows about activity in other tabs.
  const body = document.body;
  const idleSeconds = parseInt(body.dataset.idleSeconds || "0", 10);
  const dialog = document.getElementById("idle-warning");
  if (!idleSeconds || !dialog) return;
  const WARN_BEFORE = Math.min(60, Math.floor(idleSeconds / 2));
  const countdown = document.getElementById("idle-countdown");
  const stay = document.getElementById("idle-stay");
  let deadline = Date.now() + idleSeconds * 1000;
  let asking = false;
  let timer = null;

  function secondsLeft() {
    return Math.max(0, Math.round((deadline - Date.now()) / 1000));
  }

  function signOutNow() {
    window.clearInterval(timer);
    // The server ends the session on this request and says why on the sign-in page.
    window.location.assign(body.dataset.loginUrl + "?next=" + encodeURIComponent(window.location.pathname));
  }

  function warn() {
    countdown.textContent = String(secondsLeft());
    if (!dialog.open) {
      dialog.showModal();
      stay.focus();
    }
  }

  function follow(data) {
    const remaining = data && typeof data.remaining === "number" ? data.remaining : 0;
    if (remaining <= 0) {
      signOutNow();
      return;
    }
    deadline = Date.now() + remaining * 1000;
    if (remaining > WARN_BEFORE + 1) {
      if (dialog.open) dialog.close();
    } else {
      warn();
    }
  }

  function ask(url, options) {
    asking = true;
    return fetch(url, Object.assign({ credentials: "same-origin", headers: { Accept: "application/json" } }, options))
      .then(function (r) { return r.ok ? r.json() : { remaining: 0 }; })
      .then(follow)
      .catch(signOutNow)
      .finally(function () { asking = false; });
  }

  function tick() {
    if (asking) return;
    const left = secondsLeft();
    if (left <= 0 || (left <= WARN_BEFORE && !dialog.open)) {
      ask(body.dataset.statusUrl);
    } else if (dialog.open) {
      countdown.textContent = String(left);
    }
  }

  stay.addEventListener("click", function () {
    ask(body.dataset.keepaliveUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
  });
  // Escape would hide the warning without telling the server: treat it as "stay".
  dialog.addEventListener("cancel", function (event) {
    event.preventDefault();
    stay.click();
  });

  timer = window.setInterval(tick, 1000);
  window.addEventListener("pagehide", function () { window.clearInterval(timer); });
})();
