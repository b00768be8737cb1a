// Starts Swagger UI (the vendored bundle, web/static/vendor/swagger-ui) on /docs. A file of its own,
// not inline code, so the page runs under the app's CSP (script-src 'self'). The schema's URL comes
// from the page (data-openapi-url); no validator badge (it would call validator.swagger.io).
"use strict";

(function startSwaggerUi() {
  const root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
  });
})();
