// Resumable uploads: Uppy's Dashboard over tus to /api/v1/uploads/, resuming after a network drop.
// Shared by the Files page (uploads.js) and the case page (case_files.js):
//   CaseBridgeUploader.mount(root, {onFileAdded, onFileRemoved, onUploaded})
// The original file name is shown only here in the browser; the server gets the bytes and the
// organization, never the name (see allowedMetaFields).
(function () {
  "use strict";

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function show(box, text, tone) {
    box.textContent = text;
    box.hidden = !text;
    if (tone) box.className = "alert " + tone;
  }

  // The server answers refusals as RFC 9457 problem documents; `detail` is written for people.
  function serverDetail(error, response) {
    let body = "";
    if (error && error.originalResponse) body = error.originalResponse.getBody() || "";
    else if (response && response.body && response.body.xhr) body = response.body.xhr.responseText || "";
    try {
      const parsed = JSON.parse(body);
      return typeof parsed.detail === "string" ? parsed.detail : "";
    } catch (ignored) {
      return "";
    }
  }

  function statusOf(error, response) {
    if (error && error.originalResponse) return error.originalResponse.getStatus();
    return response && typeof response.status === "number" ? response.status : 0;
  }

  // The vault's id for a finished upload, from the last tus response (PATCH or HEAD).
  function fileIdOf(response) {
    const xhr = response && response.body && response.body.xhr;
    return xhr && xhr.getResponseHeader ? xhr.getResponseHeader("CaseBridge-File-Id") || "" : "";
  }

  function mount(root, hooks) {
    hooks = hooks || {};
    const { Uppy, Dashboard, Tus } = window.Uppy;

    const problemBox = document.getElementById("upload-problem");
    const statusBox = document.getElementById("upload-status");
    const transfers = document.getElementById("transfers");
    const totalBar = document.getElementById("total-progress");
    const totalText = document.getElementById("total-percent");
    const fileList = document.getElementById("file-progress");

    const uppy = new Uppy({
      id: root.dataset.uppyId || "casebridge-files",
      autoProceed: false,
      restrictions: { maxFileSize: parseInt(root.dataset.maxSize, 10) || null },
      // Every upload names its organization; nothing else from the file travels as metadata.
      meta: { organization: root.dataset.organization },
    });

    uppy.use(Dashboard, {
      target: root,
      inline: true,
      width: "100%",
      height: parseInt(root.dataset.height, 10) || 360,
      theme: "light",
      fileManagerSelectionType: "both", // "browse files" and "browse folders"; folders drop too
      proudlyDisplayPoweredByUppy: false,
      showRemoveButtonAfterComplete: false,
      note: root.dataset.note,
      doneButtonHandler: function () {
        uppy.clear();
        notUploaded.length = 0;
        show(problemBox, "");
        show(statusBox, "");
        transfers.hidden = true;
      },
    });

    uppy.use(Tus, {
      endpoint: root.dataset.endpoint,
      // The browser reads one slice of the file per request, so a 2 GB CBCT never sits in memory,
      // and a dropped connection costs at most one slice.
      chunkSize: parseInt(root.dataset.chunkSize, 10) || 32 * 1024 * 1024,
      // Network errors are retried after these pauses; while the browser is offline the plugin
      // holds the retry until it is back online.
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000],
      allowedMetaFields: ["organization"],
      headers: { "X-CSRFToken": csrfToken() },
      // Bodies may go to CaseBridge's transfer server (another port of this host): the session
      // cookie goes with them, and the server accepts it from this page's origin only (CORS).
      withCredentials: true,
      // tus-js-client would otherwise keep a fingerprint derived from the file name in localStorage.
      storeFingerprintForResuming: false,
      removeFingerprintOnSuccess: true,
      limit: parseInt(root.dataset.parallel, 10) || 2,
    });

    // --- Refusing a file from its first bytes, before any is sent ----------------------------
    // The signatures come from the server (kernel/filetypes.py), which judges every upload again
    // from its first chunk: this only spares the wait and names the file. Names stay here.
    const refusals = JSON.parse(root.dataset.refusals || "[]");
    const accepted = root.dataset.accepted || "";
    const sniffLength = refusals.reduce(function (n, r) { return Math.max(n, r.at + r.hex.length / 2); }, 0);
    const notUploaded = [];

    function matches(head, rule) {
      for (let i = 0; i < rule.hex.length / 2; i += 1) {
        if (head[rule.at + i] !== parseInt(rule.hex.substr(2 * i, 2), 16)) return false;
      }
      return true;
    }

    function tellRefused(name, message) {
      notUploaded.push(name + ": " + message);
      show(problemBox, notUploaded.join(" "));
    }

    async function precheck(file) {
      if (!sniffLength || !file.data || typeof file.data.slice !== "function") return;
      const head = new Uint8Array(await file.data.slice(0, sniffLength).arrayBuffer());
      const rule = refusals.find(function (r) { return matches(head, r); });
      if (!rule || !uppy.getFile(file.id)) return;
      tellRefused(file.name, "Not uploaded: " + rule.why + ". " + accepted);
      uppy.removeFile(file.id);
    }

    // --- Per-file and total progress, as native <progress> bars -----------------------------
    const rows = new Map();
    const refusedFiles = new Set();
    const keepRow = new Set(); // refused for good: Uppy forgets the file (no Retry), its row stays

    function rowFor(file) {
      let row = rows.get(file.id);
      if (row) return row;
      const item = document.createElement("li");
      item.className = "transfer";
      const label = document.createElement("label");
      const id = "progress-" + rows.size;
      label.htmlFor = id;
      label.textContent = file.name;
      const bar = document.createElement("progress");
      bar.id = id;
      bar.max = 100;
      bar.value = 0;
      const text = document.createElement("output");
      text.htmlFor = id;
      text.textContent = "0%";
      item.append(label, bar, text);
      fileList.append(item);
      row = { item: item, bar: bar, text: text };
      rows.set(file.id, row);
      return row;
    }

    // Rounded like Uppy's own status bar, but never 100% before the server confirmed the last byte.
    function percentOf(sent, total, complete) {
      if (complete) return 100;
      return total ? Math.min(99, Math.round((100 * sent) / total)) : 0;
    }

    function render() {
      const files = uppy.getFiles().filter(function (f) { return f.progress && f.progress.uploadStarted; });
      if (!files.length) return;
      transfers.hidden = false;
      let sent = 0;
      let total = 0;
      let complete = true;
      for (const file of files) {
        const row = rowFor(file);
        const p = file.progress;
        const refused = refusedFiles.has(file.id);
        row.bar.value = refused ? 0 : percentOf(p.bytesUploaded || 0, p.bytesTotal || 0, p.uploadComplete);
        row.text.textContent = refused ? "refused" : file.error ? "stopped" : row.bar.value + "%" + (file.isPaused ? " (paused)" : "");
        row.item.classList.toggle("failed", Boolean(file.error));
        if (refused) continue; // a refused file will never arrive: it is not part of the total
        total += file.size || 0;
        sent += p.uploadComplete ? file.size || 0 : p.bytesUploaded || 0;
        complete = complete && Boolean(p.uploadComplete);
      }
      const overall = total ? percentOf(sent, total, complete) : 0;
      totalBar.value = overall;
      totalText.textContent = overall + "%";
    }

    uppy.on("upload", function () {
      show(problemBox, notUploaded.join(" ")); // files refused before this upload stay named
      show(statusBox, "Uploading…", "info");
      render();
    });
    uppy.on("upload-progress", render);
    uppy.on("file-added", function (file) {
      precheck(file);
      if (hooks.onFileAdded) hooks.onFileAdded(file);
    });
    uppy.on("upload-success", function (file, response) {
      if (hooks.onUploaded && file) hooks.onUploaded(file, fileIdOf(response));
    });
    uppy.on("upload-pause", render);
    uppy.on("file-removed", function (file) {
      if (keepRow.has(file.id)) {
        keepRow.delete(file.id);
        if (hooks.onFileRemoved) hooks.onFileRemoved(file);
        return;
      }
      const row = rows.get(file.id);
      if (row) row.item.remove();
      rows.delete(file.id);
      refusedFiles.delete(file.id);
      interrupted.delete(file.id);
      if (hooks.onFileRemoved) hooks.onFileRemoved(file);
    });

    // --- Refusals and network drops ----------------------------------------------------------
    const interrupted = new Set();

    uppy.on("upload-error", function (file, error, response) {
      const status = statusOf(error, response);
      const detail = serverDetail(error, response);
      if (status >= 400) {
        // Refused by the server (wrong type, too large, no permission): say which file and what
        // the server said. Sending it again cannot help, so Uppy forgets it (no Retry button);
        // its row stays, saying "refused".
        const message = detail || "The server refused this file (HTTP " + status + ").";
        if (file) {
          refusedFiles.add(file.id);
          render();
          const row = rows.get(file.id);
          if (row) {
            row.text.textContent = "refused";
            row.item.classList.add("failed");
          }
          keepRow.add(file.id);
          tellRefused(file.name, message);
          uppy.removeFile(file.id);
        } else {
          show(problemBox, message);
        }
        // Replace Uppy's toast, whose details are the raw protocol error, with the server's words.
        uppy.hideInfo();
        uppy.info({ message: "Not uploaded", details: message }, "error", 10000);
      } else {
        if (file) interrupted.add(file.id);
        show(problemBox, "The connection dropped and the upload stopped. It resumes where it stopped when the connection is back, or press Retry.");
      }
      render();
    });

    uppy.on("is-offline", function () {
      show(statusBox, "Connection lost. Uploads are paused and will carry on by themselves when the connection is back.", "warning");
    });

    uppy.on("back-online", function () {
      show(statusBox, "Connection restored. Resuming…", "info");
      // Uploads that gave up during the outage resume from the server's offset, not from zero.
      for (const id of interrupted) {
        if (uppy.getFile(id)) uppy.retryUpload(id);
      }
      interrupted.clear();
    });

    uppy.on("upload-retry", function (file) {
      interrupted.delete(file.id);
      show(problemBox, "");
    });
    uppy.on("retry-all", function () {
      interrupted.clear();
      show(problemBox, "");
    });

    uppy.on("complete", function (result) {
      render();
      const done = result.successful ? result.successful.length : 0;
      const failed = result.failed ? result.failed.length : 0;
      if (done) document.body.dispatchEvent(new CustomEvent("files-changed"));
      if (hooks.onComplete) hooks.onComplete(result, uppy);
      if (failed) {
        show(statusBox, done + " uploaded, " + failed + " not uploaded.", "warning");
      } else if (done) {
        show(statusBox, "Upload complete: " + done + (done === 1 ? " file" : " files") + " stored encrypted.", "success");
      }
    });
    return uppy;
  }

  window.CaseBridgeUploader = { mount: mount, csrfToken: csrfToken };
})();
