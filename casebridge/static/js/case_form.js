// New-case form: the tooth chart (buttons with aria-pressed), one prescription row per chosen
// tooth, restorations limited to the case type, the arch choice for dentures and guards, and the
// shipping address only when shipping. The server validates everything again.
(function () {
  "use strict";

  const form = document.getElementById("case-form");
  if (!form) return;
  const caseType = document.getElementById("id_case_type");
  const chart = document.getElementById("tooth-chart");
  const rowsBody = document.getElementById("tooth-rows");
  const table = document.getElementById("tooth-table");
  const noTeeth = document.getElementById("no-teeth");
  const template = document.getElementById("tooth-row-template");
  const status = document.getElementById("chart-status");
  const teethPart = document.getElementById("teeth-part");
  const archPart = document.getElementById("arch-part");
  const primaryToggle = document.getElementById("show-primary");
  const primaryTeeth = document.getElementById("primary-teeth");
  const buttons = Array.from(chart.querySelectorAll("button.tooth"));
  // Chart order (upper right to upper left, lower right to lower left) sorts the rows.
  const order = new Map(buttons.map(function (b, i) { return [b.dataset.fdi, i]; }));

  function selectedType() {
    return caseType.options[caseType.selectedIndex];
  }

  function allowedRestorations() {
    const option = selectedType();
    return option && option.dataset.restorations ? option.dataset.restorations.split(" ") : null;
  }

  // Only the restorations of the chosen case type can be picked; a row that no longer fits
  // moves to the first one that does.
  function limitRestorations(select) {
    const allowed = allowedRestorations();
    for (const option of select.options) {
      const ok = !allowed || allowed.includes(option.value);
      option.hidden = !ok;
      option.disabled = !ok;
    }
    if (allowed && !allowed.includes(select.value)) select.value = allowed[0];
  }

  function applyCaseType() {
    const option = selectedType();
    const key = option ? option.value : "";
    for (const need of document.querySelectorAll("#case-type-needs .need")) {
      need.hidden = need.dataset.caseType !== key;
    }
    document.querySelector("#case-type-needs .need-none").hidden = Boolean(key);
    const byArch = Boolean(key) && option.dataset.needsTeeth === "0";
    teethPart.hidden = byArch;
    archPart.hidden = !byArch;
    // Hidden rows would still be posted; the server ignores them for arch cases, but keep the
    // form honest by disabling what is not shown.
    for (const field of teethPart.querySelectorAll("input, select")) field.disabled = byArch;
    for (const field of archPart.querySelectorAll("input, select")) field.disabled = !byArch;
    for (const select of form.querySelectorAll(".restoration-select")) limitRestorations(select);
  }

  function announce(text) {
    status.textContent = text;
  }

  function refreshEmpty() {
    const any = rowsBody.children.length > 0;
    table.hidden = !any;
    noTeeth.hidden = any;
  }

  function rowFor(fdi) {
    return rowsBody.querySelector('tr[data-fdi="' + fdi + '"]');
  }

  function addRow(button) {
    const fdi = button.dataset.fdi;
    const label = button.dataset.label;
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.fdi = fdi;
    row.querySelector(".tooth-badge").textContent = label;
    row.querySelector(".tooth-name").textContent = button.dataset.name;
    row.querySelector("input[name=item_tooth]").value = label;
    for (const field of row.querySelectorAll("select")) {
      field.id = field.id.replace(/^r-/, "r-" + fdi);
    }
    for (const lab of row.querySelectorAll("label[for]")) {
      lab.htmlFor = lab.htmlFor.replace(/^r-/, "r-" + fdi);
    }
    row.querySelector(".remove-tooth").setAttribute("aria-label", "Remove tooth " + label);
    // Most cases use one material and shade throughout: start from the previous row's choice.
    const previous = rowsBody.lastElementChild;
    if (previous) {
      for (const name of ["item_restoration", "item_material", "item_shade", "item_stump_shade"]) {
        row.querySelector("[name=" + name + "]").value = previous.querySelector("[name=" + name + "]").value;
      }
    }
    limitRestorations(row.querySelector(".restoration-select"));
    const mine = order.get(fdi);
    const after = Array.from(rowsBody.children).find(function (r) { return order.get(r.dataset.fdi) > mine; });
    rowsBody.insertBefore(row, after || null);
    refreshEmpty();
  }

  function toggle(button) {
    const on = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", on ? "true" : "false");
    if (on) {
      addRow(button);
      announce("Tooth " + button.dataset.label + " added to the prescription.");
    } else {
      const row = rowFor(button.dataset.fdi);
      if (row) row.remove();
      refreshEmpty();
      announce("Tooth " + button.dataset.label + " removed.");
    }
  }

  chart.addEventListener("click", function (event) {
    const button = event.target.closest("button.tooth");
    if (button) toggle(button);
  });

  // One tab stop for the whole chart (a roving tabindex): Tab enters at the last tooth used (or
  // the first chosen, or the first), arrows move inside it (left/right along an arch, up/down to
  // the other arch at the same place, Home/End to its ends), Space or Enter chooses, Tab leaves.
  function visibleTeeth() {
    return buttons.filter(function (b) { return b.offsetParent !== null; });
  }

  function makeTabStop(button) {
    for (const b of buttons) b.tabIndex = b === button ? 0 : -1;
  }

  function resetTabStop() {
    const visible = visibleTeeth();
    const current = visible.find(function (b) { return b.getAttribute("tabindex") === "0"; });
    if (current) return;
    const chosen = visible.find(function (b) { return b.getAttribute("aria-pressed") === "true"; });
    makeTabStop(chosen || visible[0] || buttons[0]);
  }

  chart.addEventListener("focusin", function (event) {
    const button = event.target.closest("button.tooth");
    if (button) makeTabStop(button);
  });

  chart.addEventListener("keydown", function (event) {
    const button = event.target.closest("button.tooth");
    if (!button || !["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End"].includes(event.key)) return;
    const row = button.closest(".chart-row");
    const inRow = Array.from(row.querySelectorAll("button.tooth"));
    const at = inRow.indexOf(button);
    let next = button;
    if (event.key === "ArrowLeft") next = inRow[Math.max(0, at - 1)];
    if (event.key === "ArrowRight") next = inRow[Math.min(inRow.length - 1, at + 1)];
    if (event.key === "Home") next = inRow[0];
    if (event.key === "End") next = inRow[inRow.length - 1];
    if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      const rows = Array.from(chart.querySelectorAll(".chart-row")).filter(function (r) { return r.offsetParent !== null; });
      const other = rows[rows.indexOf(row) + (event.key === "ArrowUp" ? -1 : 1)];
      if (other) {
        const teeth = Array.from(other.querySelectorAll("button.tooth"));
        // The same place across the arches (a primary arch has fewer teeth: scale the position).
        next = teeth[Math.round((at * (teeth.length - 1)) / Math.max(1, inRow.length - 1))] || next;
      }
    }
    makeTabStop(next);
    next.focus();
    event.preventDefault();
  });

  resetTabStop();

  rowsBody.addEventListener("click", function (event) {
    const remove = event.target.closest(".remove-tooth");
    if (!remove) return;
    const row = remove.closest("tr");
    const button = chart.querySelector('button.tooth[data-fdi="' + row.dataset.fdi + '"]');
    row.remove();
    refreshEmpty();
    if (button) {
      button.setAttribute("aria-pressed", "false");
      button.focus();
      announce("Tooth " + button.dataset.label + " removed.");
    }
  });

  // The numbering switch: every label in the chart and in the rows (with the hidden value the
  // server parses) changes in place, so nothing typed so far is lost. htmx saves the choice.
  const notationSelect = document.getElementById("tooth-notation");
  const notationSaved = document.getElementById("notation-saved");

  function labelIn(button, notation) {
    if (notation === "universal") return button.dataset.labelUniversal;
    if (notation === "palmer") return button.dataset.labelPalmer;
    return button.dataset.fdi;
  }

  function relabel(notation) {
    for (const button of buttons) {
      const label = labelIn(button, notation);
      button.dataset.label = label;
      button.textContent = label;
      button.setAttribute("aria-label", label + ", " + button.dataset.name);
    }
    for (const row of rowsBody.children) {
      const button = chart.querySelector('button.tooth[data-fdi="' + row.dataset.fdi + '"]');
      if (!button) continue;
      const label = button.dataset.label;
      row.querySelector(".tooth-badge").textContent = label;
      row.querySelector("input[name=item_tooth]").value = label;
      row.querySelector(".remove-tooth").setAttribute("aria-label", "Remove tooth " + label);
    }
  }

  notationSelect.addEventListener("change", function () {
    relabel(notationSelect.value);
    notationSaved.textContent = "Saving…";
  });
  // The page keeps working in the new numbering even when saving the preference fails.
  notationSelect.addEventListener("htmx:responseError", function () {
    notationSaved.textContent = "This form uses the new numbering; saving it as your default failed.";
  });
  notationSelect.addEventListener("htmx:sendError", function () {
    notationSaved.textContent = "This form uses the new numbering; saving it as your default failed.";
  });

  primaryToggle.addEventListener("change", function () {
    primaryTeeth.hidden = !primaryToggle.checked;
    const stop = buttons.find(function (b) { return b.getAttribute("tabindex") === "0"; });
    if (stop && stop.offsetParent === null) stop.tabIndex = -1; // a hidden tooth cannot be the way in
    resetTabStop();
  });

  caseType.addEventListener("change", applyCaseType);

  const shipTo = document.getElementById("ship-to");
  form.addEventListener("change", function (event) {
    if (event.target.name === "delivery") shipTo.hidden = event.target.value !== "ship";
  });

  applyCaseType();
})();
