"""Statements in over HTTP: ``POST /v1/statements`` (scope ``finance``), the file as the body.

The body is the statement file as the partner sent it (camt.053 XML, MT940,
NACHA, …), in any media type; ``format`` names it or is ``auto`` (recognised
from the file). A file is stored whole or refused whole (422, one line saying
why); a statement already imported adds nothing (200), a file with anything new
answers 201. A CSV file is read through a column mapping configured by name
(``reconciliation.csv_mappings``), ``?mapping=NAME``: a mapping is never sent
with the file nor named by path. See docs/reconciliation.md.
"""

from __future__ import annotations

import re

from aiohttp import web

from gateway.api.appkeys import SERVICES, SETTINGS
from gateway.api.auth import authenticate
from gateway.api.bodies import read_body
from gateway.api.paging import allow_only
from gateway.config import default_settings
from gateway.errors import BadRequestError, FieldError
from gateway.recon.imports import AUTO, import_file

__all__ = ["FORMAT_PATTERN", "routes"]

routes = web.RouteTableDef()

FORMAT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")


@routes.post("/v1/statements")
async def import_statement(request: web.Request) -> web.Response:
    """Import one statement file: checked, stored once, sequence gaps reported."""
    rt = request.app[SERVICES]
    await authenticate(request, "finance")
    allow_only(request.query, "format", "mapping")
    given = request.query.get("format", AUTO)
    if not FORMAT_PATTERN.fullmatch(given):
        raise BadRequestError("format must be auto or a statement format's name (e.g. camt.053, mt940, nacha)")
    mapping = None
    if "mapping" in request.query:
        name = request.query["mapping"]
        if name not in rt.csv_mappings:
            known = ", ".join(sorted(rt.csv_mappings)) or "none configured (reconciliation.csv_mappings)"
            message = f"mapping must name a configured CSV mapping ({known})"
            raise BadRequestError(message, errors=[FieldError("mapping", "not a configured CSV mapping")])
        mapping = rt.csv_mappings[name]
    settings = request.app.get(SETTINGS) or default_settings()
    body = await read_body(request.clone(client_max_size=settings.reconciliation.statement_max_bytes))
    report = await import_file(rt.engine, rt.statement_formats, body, now=rt.clock(), given=given, mapping=mapping)
    doc = report.as_dict()
    return web.json_response(doc, status=201 if doc["stored"] else 200)
