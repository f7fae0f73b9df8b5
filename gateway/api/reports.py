"""Reports written to the reports folder (scheduled or by ``gateway reports run``): listed and fetched.

Finance keys (scope ``finance``) see every report. A report is one id (``settlement.2026-12``)
in three formats: ``html`` (charts drawn on the server, inline SVG), ``csv`` and ``json``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from gateway.api.appkeys import SETTINGS
from gateway.api.auth import authenticate
from gateway.api.paging import PAGE_PARAMETERS, allow_only, page_cursor, page_limit, path_id
from gateway.errors import BadRequestError, NotFoundError
from gateway.reports.folder import REPORT_ID_RE, ReportFolder
from gateway.reports.model import NAME_RE
from gateway.reports.render import FORMATS, MEDIA_TYPES

__all__ = ["routes"]

routes = web.RouteTableDef()


def _folder(request: web.Request) -> ReportFolder:
    return ReportFolder(request.app[SETTINGS].reports_folder)


@routes.get("/v1/reports")
async def list_reports(request: web.Request) -> web.Response:
    """Every report written, by id (name, then period); ``name=`` keeps one report's periods."""
    await authenticate(request, "finance")
    q = request.query
    allow_only(q, "name", *PAGE_PARAMETERS)
    name = q.get("name")
    if name is not None and not NAME_RE.fullmatch(name):
        raise BadRequestError("name must be a report name like settlement")
    limit = page_limit(q)
    cursor = page_cursor(q, REPORT_ID_RE)
    folder = _folder(request)
    ids = await asyncio.to_thread(folder.ids)
    ids = [i for i in ids if (cursor is None or i > cursor) and (name is None or i.split(".", 1)[0] == name)]
    items: list[dict[str, Any]] = []
    for report_id in ids[:limit]:
        summary = await asyncio.to_thread(folder.summary, report_id)
        if summary is not None:
            items.append(summary)
    return web.json_response({"items": items, "next_cursor": ids[limit - 1] if len(ids) > limit else None})


async def _fetch(request: web.Request, fmt: str) -> web.Response:
    value = request.match_info["id"]
    report_id = path_id(value, REPORT_ID_RE, f"no report {value!r}")
    body = await asyncio.to_thread(_folder(request).read, report_id, fmt)
    if body is None:
        raise NotFoundError(f"no report {report_id!r}")
    return web.Response(
        text=body,
        content_type=MEDIA_TYPES[fmt].split(";")[0],
        charset="utf-8",
        headers={"Content-Disposition": f'inline; filename="{report_id}.{fmt}"'},
    )


@routes.get("/v1/reports/{id}")
async def get_report(request: web.Request) -> web.Response:
    """One report: ``format=json`` (default), ``html`` or ``csv``."""
    await authenticate(request, "finance")
    allow_only(request.query, "format")
    fmt = request.query.get("format", "json")
    if fmt not in FORMATS:
        raise BadRequestError("format must be html, csv or json")
    return await _fetch(request, fmt)


@routes.get("/v1/reports/{id}/{format}")
async def get_report_format(request: web.Request) -> web.Response:
    """One report in one format (a path a browser can open): ``/v1/reports/settlement.2026-12/html``."""
    await authenticate(request, "finance")
    allow_only(request.query)
    fmt = request.match_info["format"]
    if fmt not in FORMATS:
        raise NotFoundError(f"no format {fmt!r}: html, csv or json")
    return await _fetch(request, fmt)
