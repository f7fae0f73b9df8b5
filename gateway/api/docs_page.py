"""``/docs``: a browsable API reference (Swagger UI on ``/openapi.json``), served from the package.

Every asset ships in ``gateway/api/static`` (see its SOURCES.md): the page works
with no internet access, and its Content-Security-Policy lets the browser load
nothing from anywhere but this gateway. ``/`` redirects here.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

from gateway.errors import NotFoundError

__all__ = ["ASSETS", "CSP", "routes"]

routes = web.RouteTableDef()

#: the files ``/docs/assets/{name}`` serves, and their media types; nothing else is reachable
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "docs-init.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "swagger-ui.LICENSE": "text/plain",
    "swagger-ui.NOTICE": "text/plain",
    "swagger-ui-bundle.js.LICENSE.txt": "text/plain",
}
#: Swagger UI sets inline styles and uses data: images; scripts only from this gateway, no inline script
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@cache
def _read(name: str) -> bytes:
    return files("gateway.api").joinpath("static", name).read_bytes()


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    """The API reference is the front page."""
    raise web.HTTPFound("/docs")


@routes.get("/docs")
async def docs(request: web.Request) -> web.Response:
    """The browsable API reference."""
    return web.Response(
        body=_read("docs.html"),
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


@routes.get("/docs/assets/{name}")
async def asset(request: web.Request) -> web.Response:
    """A file of the API reference page (Swagger UI and its licence)."""
    name = request.match_info["name"]
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFoundError(f"no documentation asset {name!r}")
    charset = None if media_type.startswith("image/") else "utf-8"
    return web.Response(
        body=_read(name),
        content_type=media_type,
        charset=charset,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
