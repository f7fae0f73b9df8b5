"""A report as JSON, CSV or a self-contained HTML page with its charts drawn as inline SVG.

Nothing is fetched when the page is opened: no script, no stylesheet or font from elsewhere.
Bar heights are computed with Decimal arithmetic and written with two decimals.
"""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from gateway.reports.model import Chart, Report

__all__ = ["FORMATS", "MEDIA_TYPES", "csv_cell", "render", "render_csv", "render_html", "render_json", "svg_chart"]

FORMATS = ("html", "csv", "json")
MEDIA_TYPES = {"html": "text/html; charset=utf-8", "csv": "text/csv; charset=utf-8", "json": "application/json"}

_WIDTH = 640
_HEIGHT = 220
_PAD_LEFT = 48
_PAD_BOTTOM = 56
_PAD_TOP = 16
_TWO = Decimal("0.01")


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2, sort_keys=False) + "\n"


#: a cell starting with one of these is a formula to a spreadsheet (CSV injection)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")


def csv_cell(value: object) -> object:
    """A cell safe to open in a spreadsheet: text that would be a formula gets a leading ``'``.

    Statement text (counterparty names, remittance) comes from partners' files and
    ends up in break details; ``=HYPERLINK(…)`` must stay text. Numbers (``-12.50``)
    are left alone.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def render_csv(report: Report) -> str:
    """Every table in one CSV: a ``section`` column first, then the table's own header row before its rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["report", report.name, "period", report.period.text, "generated_at", report.generated_at.isoformat()]
    )
    for section in report.sections:
        writer.writerow(["section", *section.columns])
        for row in section.rows:
            writer.writerow([section.name, *("" if cell is None else csv_cell(cell) for cell in row)])
    return out.getvalue()


def _fmt(value: Decimal) -> str:
    return str(value.quantize(_TWO, rounding=ROUND_HALF_UP))


def svg_chart(chart: Chart) -> str:
    """One bar chart as an ``<svg>`` element: a ``rect.bar`` per label (zero values get a 1px stub)."""
    n = max(len(chart.values), 1)
    top = max((Decimal(v) for v in chart.values), default=Decimal(0))
    plot_w = Decimal(_WIDTH - _PAD_LEFT - 8)
    plot_h = Decimal(_HEIGHT - _PAD_TOP - _PAD_BOTTOM)
    slot = plot_w / n
    bar_w = max(slot * Decimal("0.7"), Decimal(1))
    base = Decimal(_HEIGHT - _PAD_BOTTOM)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" aria-label="{escape(chart.title)}">',
        f'<line x1="{_PAD_LEFT}" y1="{base}" x2="{_WIDTH - 8}" y2="{base}" stroke="#888"/>',
        f'<text x="{_PAD_LEFT - 6}" y="{_PAD_TOP + 4}" text-anchor="end" font-size="10">{escape(str(top))}</text>',
        f'<text x="{_PAD_LEFT - 6}" y="{base}" text-anchor="end" font-size="10">0</text>',
    ]
    label_every = max(1, n // 16)
    for i, (label, value) in enumerate(zip(chart.labels, chart.values, strict=True)):
        height = (Decimal(value) / top * plot_h) if top > 0 else Decimal(0)
        height = max(height, Decimal(1))
        x = Decimal(_PAD_LEFT) + slot * i + (slot - bar_w) / 2
        parts.append(
            f'<rect class="bar" x="{_fmt(x)}" y="{_fmt(base - height)}" width="{_fmt(bar_w)}" height="{_fmt(height)}" '
            f'fill="#3b6ea5"><title>{escape(label)}: {escape(str(value))} {escape(chart.unit)}</title></rect>'
        )
        if i % label_every == 0:
            cx = _fmt(x + bar_w / 2)
            parts.append(
                f'<text x="{cx}" y="{base + 12}" font-size="10" text-anchor="end" '
                f'transform="rotate(-35 {cx} {base + 12})">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;margin:8px 0 24px;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}
figure{margin:8px 0 24px}figcaption{font-weight:600;margin-bottom:4px}
.note{color:#555;font-size:13px}
"""


def render_html(report: Report) -> str:
    """A whole page: title, notes, charts (inline SVG), then every table."""
    body = [
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="note">Period {escape(report.period.text)} ({escape(report.period.start.isoformat())} to '
        f"{escape(report.period.end.isoformat())}), generated {escape(report.generated_at.isoformat())}.</p>",
    ]
    body += [f'<p class="note">{escape(note)}</p>' for note in report.notes]
    for chart in report.charts:
        body.append(f"<figure><figcaption>{escape(chart.title)}</figcaption>{svg_chart(chart)}</figure>")
    for section in report.sections:
        body.append(f"<h2>{escape(section.title)}</h2>")
        if not section.rows:
            body.append('<p class="note">Nothing in this period.</p>')
            continue
        head = "".join(f"<th>{escape(c)}</th>" for c in section.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td>{escape('' if cell is None else str(cell))}</td>" for cell in row) + "</tr>"
            for row in section.rows
        )
        body.append(
            f'<table data-section="{escape(section.name)}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{escape(report.title)} {escape(report.period.text)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def render(report: Report, fmt: str) -> str:
    if fmt == "html":
        return render_html(report)
    if fmt == "csv":
        return render_csv(report)
    return render_json(report)
