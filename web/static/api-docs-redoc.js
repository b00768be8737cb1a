// Starts ReDoc (the vendored standalone bundle, web/static/vendor/redoc) on /redoc. A file of its own,
// not inline code, so the page runs under a CSP with script-src 'self'. The schema's URL comes from
// the page (data-openapi-url); so does the nonce its CSP allows <style> elements by, which ReDoc
// gives the styles it writes (its `nonce` option).
"use strict";

(function startRedoc() {
  const root = document.getElementById("redoc");
  window.Redoc.init(root.dataset.openapiUrl, { nonce: root.dataset.styleNonce }, root);
})();
