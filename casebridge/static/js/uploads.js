// Files page: the shared uploader (uploader.js); the recent-files table refreshes after uploads.
(function () {
  "use strict";

  const root = document.getElementById("uploader");
  if (!root || !window.Uppy || !window.CaseBridgeUploader) return;
  window.CaseBridgeUploader.mount(root);
})();
