"""Reports (finance): the reports folder's reports, one report's summary, and each format to open or download.

A report's HTML (``gateway.reports.render``) carries its own ``<style>`` and inline SVG charts:
the console's policy forbids inline style, so the report is **linked**, not embedded (no frame),
and served with a policy of its own: ``sandbox`` (no script, no forms, an opaque origin),
inline style and ``data:`` images only, never framed.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from gateway.api.appkeys import SETTINGS
from gateway.console.web import PREFIX, Page, page
from gateway.errors import NotFoundError
from gateway.reports.folder import REPORT_ID_RE, ReportFolder
from gateway.reports.render import FORMATS, MEDIA_TYPES

__all__ = ["REPORT_CSP", "routes"]

routes = web.RouteTableDef()

#: the report's own page: its inline <style> and SVG, nothing else (no script, nothing fetched, never framed)
REPORT_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"


def _folder(p: Page) -> ReportFolder:
    return ReportFolder(p.request.app[SETTINGS].reports_folder)


def _report_id(p: Page) -> str:
    report_id = p.request.match_info["id"]
    if not REPORT_ID_RE.fullmatch(report_id):
        raise NotFoundError(f"no report {report_id[:80]!r}")
    return report_id


@routes.get(PREFIX + "/reports")
@page("finance")
async def reports(p: Page) -> web.StreamResponse:
    """Every report written, newest period first within each name."""
    folder = _folder(p)
    ids = await asyncio.to_thread(folder.ids)
    found = [s for s in [await asyncio.to_thread(folder.summary, i) for i in ids[-500:]] if s is not None]
    found.sort(key=lambda s: (s["name"], s["period"]), reverse=True)
    found.sort(key=lambda s: s["name"])
    return p.render("reports.html", reports=found, formats=FORMATS)


@routes.get(PREFIX + "/reports/{id}/{format}")
@page("finance")
async def report_file(p: Page) -> web.StreamResponse:
    """One format: HTML opens in the browser under its own policy; CSV and JSON download."""
    report_id = _report_id(p)
    fmt = p.request.match_info["format"]
    if fmt not in FORMATS:
        raise NotFoundError(f"no format {fmt[:20]!r}: html, csv or json")
    body = await asyncio.to_thread(_folder(p).read, report_id, fmt)
    if body is None:
        raise NotFoundError(f"no report {report_id!r}")
    disposition = "inline" if fmt == "html" else "attachment"
    headers = {"Content-Disposition": f'{disposition}; filename="{report_id}.{fmt}"'}
    if fmt == "html":
        headers["Content-Security-Policy"] = REPORT_CSP  # set before the console's default (setdefault)
    return web.Response(text=body, content_type=MEDIA_TYPES[fmt].split(";")[0], charset="utf-8", headers=headers)
