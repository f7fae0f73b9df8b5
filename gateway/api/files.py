"""``/v1/files``: ERP payment files (pain.001.001.03 / .09) in, their pain.002 status reports out (docs/files.md)."""

from __future__ import annotations

from aiohttp import web

from gateway.api.appkeys import SERVICES, SETTINGS
from gateway.api.auth import authenticate
from gateway.api.bodies import IDEMPOTENCY_KEY_RE, read_body
from gateway.api.paging import allow_only, path_id
from gateway.config import default_settings
from gateway.errors import BadRequestError, UnsupportedMediaTypeError
from gateway.intake.files import FILE_ID_RE

__all__ = ["XML_TYPES", "routes"]

routes = web.RouteTableDef()

#: the media types a pain.001 may be sent as
XML_TYPES = ("application/xml", "text/xml")


def _file_id(request: web.Request) -> str:
    value = request.match_info["id"]
    return path_id(value, FILE_ID_RE, f"no file {value!r}")


@routes.post("/v1/files")
async def submit_file(request: web.Request) -> web.Response:
    """Take in one pain.001 file: each payment an instruction, one transaction; the same file again, same answer."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    allow_only(request.query)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise BadRequestError("Idempotency-Key must be 1-255 printable ASCII characters (it is optional here)")
    if request.content_type not in XML_TYPES:
        raise UnsupportedMediaTypeError(
            f"send the pain.001 file as application/xml, not {request.content_type or 'nothing'}"
        )
    settings = request.app.get(SETTINGS) or default_settings()
    body = await read_body(request.clone(client_max_size=settings.files.max_bytes))
    answer = await rt.files.submit(
        body, business_unit_id=principal.business_unit_id, submitted_by=principal.key_id, source="api"
    )
    file_id = answer.body.get("id") or answer.body.get("file_id")
    headers = {"Location": f"/v1/files/{file_id}"}
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    content_type = "application/problem+json" if answer.status_code >= 400 else "application/json"
    return web.json_response(answer.body, status=answer.status_code, headers=headers, content_type=content_type)


@routes.get("/v1/files/{id}")
async def get_file(request: web.Request) -> web.Response:
    """A file: its header, how many payments were taken in or refused, and their statuses now."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    allow_only(request.query)
    return web.json_response(await rt.files.view(principal.business_unit_id, _file_id(request)))


@routes.get("/v1/files/{id}/status-report")
async def get_status_report(request: web.Request) -> web.Response:
    """The file's pain.002.001.03 as of now (the copy in the outbox folder follows within files.report_seconds)."""
    rt = request.app[SERVICES]
    principal = await authenticate(request, "instructions")
    allow_only(request.query)
    body = await rt.files.report(principal.business_unit_id, _file_id(request))
    return web.Response(body=body, content_type="application/xml", charset="utf-8")
