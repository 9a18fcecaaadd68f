// Case page: files go up through the shared uploader (uploader.js); each finished upload is
// attached to the case with the kind and neutral label chosen in its row, then the files table
// and the "before you can send" list refresh (htmx, on the case-files-changed event).
// File names stay in this browser: they only help guess the kind and label.
(function () {
  "use strict";

  const root = document.getElementById("uploader");
  if (!root || !window.Uppy || !window.CaseBridgeUploader) return;
  const list = document.getElementById("attach-list");
  const template = document.getElementById("attach-row-template");
  const attachUrl = root.dataset.attachUrl;
  const rows = new Map();

  const KIND_BY_EXTENSION = {
    stl: "scan", ply: "scan", obj: "scan",
    dcm: "cbct", zip: "cbct",
    jpg: "photo", jpeg: "photo", png: "photo", heic: "photo", tif: "photo", tiff: "photo",
    pdf: "rx",
  };
  const LABEL_WORDS = [
    [/upper|maxill|\bok\b|oberkiefer/i, "upper"],
    [/lower|mandib|\buk\b|unterkiefer/i, "lower"],
    [/bite|buccal|occlus|bukkal/i, "bite"],
    [/shade|colou?r|farbe/i, "shade"],
    [/scan.?body/i, "scanbody"],
    [/prep/i, "prep"],
    [/smile/i, "smile"],
    [/retract/i, "retracted"],
    [/\brx\b|prescription|slip/i, "rx"],
    [/design/i, "design"],
  ];

  function guessKind(file, select) {
    const wanted = KIND_BY_EXTENSION[(file.extension || "").toLowerCase()] || "other";
    const options = Array.from(select.options).map(function (o) { return o.value; });
    if (options.includes(wanted)) return wanted;
    return options.includes("design") && ["stl", "ply", "obj"].includes(file.extension) ? "design" : "other";
  }

  function guessLabel(file, select) {
    const options = Array.from(select.options).map(function (o) { return o.value; });
    for (const [pattern, label] of LABEL_WORDS) {
      if (pattern.test(file.name || "") && options.includes(label)) return label;
    }
    return "";
  }

  function setState(row, text, tone) {
    row.state.textContent = text;
    row.item.dataset.state = tone;
  }

  function addRow(file) {
    const item = template.content.firstElementChild.cloneNode(true);
    const n = rows.size + 1;
    const kind = item.querySelector("select[name=kind]");
    const label = item.querySelector("select[name=label]");
    kind.id = "attach-kind-" + n;
    label.id = "attach-label-" + n;
    item.querySelector("label.kind-label").htmlFor = kind.id;
    item.querySelector("label.label-label").htmlFor = label.id;
    item.querySelector(".attach-name").textContent = file.name;
    kind.value = guessKind(file, kind);
    label.value = guessLabel(file, label);
    list.append(item);
    list.hidden = false;
    const row = { item: item, kind: kind, label: label, state: item.querySelector(".attach-state") };
    rows.set(file.id, row);
    setState(row, "waiting", "waiting");
  }

  // Attaching waits until the batch has uploaded, then goes one file at a time in the order
  // shown: the case's numbering (upper_1, upper_2) follows the list, and the missing list is
  // refreshed once.
  const queue = [];
  let attaching = false;

  function uploaded(file, fileId) {
    const row = rows.get(file.id);
    if (!row) return;
    if (!fileId) {
      setState(row, "Uploaded, but the server did not say which file it became. Upload it again.", "failed");
      return;
    }
    setState(row, "uploaded, attaching…", "busy");
    queue.push({ row: row, fileId: fileId });
  }

  function attachNext() {
    const next = queue.shift();
    if (!next) {
      attaching = false;
      document.body.dispatchEvent(new CustomEvent("case-files-changed"));
      return;
    }
    attaching = true;
    send(next.row, next.fileId, 0);
  }

  // A server error rolls the attach back entirely, so asking again is safe; a refusal (4xx) is final.
  const RETRY_DELAYS = [1000, 3000, 6000];

  function send(row, fileId, attempt) {
    const body = new FormData();
    body.append("file", fileId);
    body.append("kind", row.kind.value);
    body.append("label", row.label.value);
    function retryOr(message) {
      if (attempt < RETRY_DELAYS.length) {
        window.setTimeout(function () { send(row, fileId, attempt + 1); }, RETRY_DELAYS[attempt]);
      } else {
        setState(row, message, "failed");
        attachNext();
      }
    }
    fetch(attachUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": window.CaseBridgeUploader.csrfToken(), Accept: "application/json" },
    })
      .then(function (response) {
        if (response.status >= 500) {
          retryOr("The server could not attach the file (HTTP " + response.status + "). Reload the page and try again.");
          return;
        }
        return response.json().then(
          function (data) { finish(row, response.ok, data); },
          function () { finish(row, false, { detail: "The server refused the file (HTTP " + response.status + ")." }); }
        );
      })
      .catch(function () {
        retryOr("The connection dropped before the file was attached. Reload the page and try again.");
      });
  }

  function finish(row, ok, data) {
    if (ok) {
      row.kind.disabled = true;
      row.label.disabled = true;
      setState(row, "Attached as " + data.name + (data.warning ? " — " + data.warning : ""), data.warning ? "warning" : "done");
    } else {
      setState(row, data.detail || "Not attached.", "failed");
    }
    attachNext();
  }

  window.CaseBridgeUploader.mount(root, {
    onFileAdded: addRow,
    onFileRemoved: function (file) {
      const row = rows.get(file.id);
      if (row && row.item.dataset.state === "waiting") row.item.remove();
      rows.delete(file.id);
    },
    onUploaded: uploaded,
    onComplete: function (result, uppy) {
      if (!attaching) attachNext();
      // Every file has its own row above once uploaded: clear the drop zone for the next batch.
      if (!result.failed || !result.failed.length) window.setTimeout(function () { uppy.clear(); }, 0);
    },
  });
})();
