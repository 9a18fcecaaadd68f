// The API reference page: Swagger UI (from npm, copied into static/vendor) over /api/v1/openapi.json.
// Kept out of the page itself so the strict CSP (no inline script) holds.
(function () {
  "use strict";
  const root = document.getElementById("api-docs");
  if (!root || typeof window.SwaggerUIBundle !== "function") {
    return;
  }
  window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    // Bearer tokens typed into "Authorize" stay in this tab's memory only.
    persistAuthorization: false,
    // Swagger's online validator would send the document to a third party.
    validatorUrl: null,
    tryItOutEnabled: false,
  });
})();
