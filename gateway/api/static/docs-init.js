// Swagger UI on this gateway's own OpenAPI document. A file, not an inline script,
// so the page's Content-Security-Policy can forbid inline scripts.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // never send the document to an online validator
    tryItOutEnabled: false,
    persistAuthorization: false, // an API key typed in "Authorize" is kept in memory only
  });
});
