"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served entirely from this
server: the browser assets are the pinned npm releases vendored under web/static/vendor/
(scripts/vendor-api-docs.sh fetches and checks them) and each page is started by a small script of
ours (web/static/api-docs-*.js) instead of inline code. FastAPI's own pages load their scripts from a
CDN and start them inline, so offline they are blank and they need a CSP with 'unsafe-inline'.

Like the schema at /openapi.json, the pages are open to anyone: they describe the API, every
endpoint still checks who calls it."""

from __future__ import annotations

import secrets
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

#: where the vendored assets are served (web/static is mounted at /static)
VENDOR = "/static/vendor"

SWAGGER_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} – API (Swagger UI)</title>
  <link rel="icon" type="image/png" href="{vendor}/swagger-ui/favicon-32x32.png">
  <link rel="stylesheet" href="{vendor}/swagger-ui/swagger-ui.css">
  <script src="{vendor}/swagger-ui/swagger-ui-bundle.js" defer></script>
  <script src="/static/api-docs-swagger.js" defer></script>
</head>
<body>
  <div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
</body>
</html>
"""

REDOC_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} – API (ReDoc)</title>
  <link rel="icon" type="image/png" href="{vendor}/swagger-ui/favicon-32x32.png">
  <script src="{vendor}/redoc/redoc.standalone.js" defer></script>
  <script src="/static/api-docs-redoc.js" defer></script>
</head>
<body>
  <div id="redoc" data-openapi-url="{openapi_url}" data-style-nonce="{nonce}"></div>
</body>
</html>
"""

#: /redoc's policy: the app's (web.app.SECURITY_HEADERS) but for ReDoc's styles and search. Its
#: styled-components write <style> elements, allowed by a nonce made per response; the one stylesheet
#: the bundle adds as it loads, before it can know the nonce (perfect-scrollbar's, fixed for the pinned
#: version: tests/web/test_api_docs_offline.py fails when it changes), by its hash, as is the empty
#: element it starts as. The search index runs in a worker made from a blob: URL. Scripts: 'self' only.
REDOC_STYLE_HASHES = ("'sha256-QMIg+bpjm3JdElJ388KYke01izlUW0UoNOeKjpMxdgc='",  # perfect-scrollbar.css
                      "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='")  # the empty string
REDOC_CSP = ("default-src 'self'; img-src 'self' blob: data:; script-src 'self'; worker-src 'self' blob:; "
             f"style-src 'self' 'nonce-{{nonce}}' {' '.join(REDOC_STYLE_HASHES)}; object-src 'none'; "
             "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def _page(template: str, request: Request, headers: dict[str, str] | None = None, **fields: str) -> HTMLResponse:
    app = request.app
    html = template.format(title=escape(app.title), vendor=VENDOR, openapi_url=escape(app.openapi_url or ""),
                           **fields)
    return HTMLResponse(html, headers={"cache-control": "no-cache", **(headers or {})})


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on the app's schema: every operation by tag, with "Try it out"."""
    return _page(SWAGGER_PAGE, request)


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc on the app's schema: the same operations as a three-panel reference."""
    nonce = secrets.token_urlsafe(18)
    return _page(REDOC_PAGE, request, {"content-security-policy": REDOC_CSP.format(nonce=nonce)}, nonce=nonce)
