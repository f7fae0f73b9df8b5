"""``gateway qa run --html FILE``: one self-contained HTML page per run.

The page is readable without the tool and without a network: no script, no
stylesheet or font from elsewhere, the timeline chart an inline SVG drawn here.
It holds the verdict, the predicted and reached statuses, the faults the
simulator injected, and a timeline: one row per payment (a bar from the moment
the run posted it to the moment it reached its final status, coloured by that
status, outlined red when it missed its prediction) with a mark for each fault
the simulator's journal shows on that payment, and a first row for the faults
that struck no single payment (a whole ACH file, say).

Built with ``xml.etree.ElementTree``, so every text and attribute taken from the
run (references, reasons, journal lines) is escaped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.devtools.qa import InstructionResult

__all__ = ["FaultMark", "fault_marks", "render_html", "write_html"]

#: fill colour of a payment's bar by the status it reached
STATUS_COLOURS: Mapping[str, str] = {
    "settled": "#2e7d32",
    "rejected": "#ef6c00",
    "returned": "#6a1b9a",
    "failed": "#c62828",
    "cancelled": "#616161",
}
_OTHER_COLOUR = "#90a4ae"
_FAULT_COLOUR = "#d50000"
_ROW = 16
_LABEL = 150
_PLOT = 720
_TOP = 30
_AXIS = 30
_MAX_ROWS = 500  # a bigger run still gets its counts and tables; the chart shows the first payments

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em;color:#212121;max-width:1000px}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #cfd8dc;padding:.25em .6em;text-align:left}
td.n{text-align:right}.pass{color:#2e7d32}.fail{color:#c62828}code{font-size:.9em}
.legend span{display:inline-block;margin-right:1em}.swatch{display:inline-block;width:.9em;height:.9em;
vertical-align:middle;margin-right:.3em}
"""


@dataclass(frozen=True)
class FaultMark:
    """One injected fault on the timeline: when (seconds into the run), what, and whose (None: no single payment)."""

    seconds: float
    kind: str
    instruction_id: str | None
    line: str


def fault_marks(
    journal: Sequence[Mapping[str, Any]],
    started_at: datetime,
    references: Mapping[str, str],
    line: Callable[[Mapping[str, Any]], str] | None = None,
) -> list[FaultMark]:
    """Every fault in the simulator ``journal``, placed on the run's clock (``started_at`` is 0 s).

    ``references`` maps a business reference to its instruction id, for journal entries
    that name only the reference; ``line`` renders an entry as text (default: its kind).
    """
    marks = []
    for entry in journal:
        if not entry.get("faults"):
            continue
        try:
            at = datetime.fromisoformat(str(entry["at"]))
        except (KeyError, ValueError):
            continue
        owner = entry.get("instruction_id") or references.get(str(entry.get("end_to_end_id") or ""))
        text = line(entry) if line is not None else str(entry.get("kind", ""))
        for kind in entry["faults"]:
            marks.append(FaultMark(max(0.0, (at - started_at).total_seconds()), str(kind), owner, text))
    return marks


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: Any) -> ET.Element:
    element = ET.SubElement(parent, tag, {k.rstrip("_").replace("_", "-"): str(v) for k, v in attrs.items()})
    if text is not None:
        element.text = text
    return element


def _chart(results: Sequence[InstructionResult], marks: Sequence[FaultMark], seconds: float) -> ET.Element:
    shown = list(results)[:_MAX_ROWS]
    rows = {r.instruction_id: i + 1 for i, r in enumerate(shown)}  # row 0: faults on no single payment
    span = max([seconds, *(r.seconds for r in shown), *(m.seconds for m in marks), 0.001])
    height = _TOP + _ROW * (len(shown) + 1) + _AXIS
    width = _LABEL + _PLOT + 20
    svg = ET.Element(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "width": str(width),
            "height": str(height),
            "viewBox": f"0 0 {width} {height}",
            "role": "img",
            "aria-label": f"timeline of {len(shown)} payments and {len(marks)} injected faults",
            "font-family": "sans-serif",
            "font-size": "11",
        },
    )
    _sub(svg, "title", f"Timeline: {len(shown)} payments, {len(marks)} injected faults over {span:.1f} s")

    def x(t: float) -> float:
        return round(_LABEL + _PLOT * t / span, 1)

    bottom = _TOP + _ROW * (len(shown) + 1)
    ticks = 5
    for i in range(ticks + 1):
        t = span * i / ticks
        _sub(svg, "line", x1=x(t), y1=_TOP - 4, x2=x(t), y2=bottom, stroke="#eceff1")
        _sub(svg, "text", f"{t:.1f} s", x=x(t), y=bottom + 16, text_anchor="middle", fill="#546e7a")
    _sub(svg, "text", "faults (no single payment)", x=4, y=_TOP + 12, fill="#546e7a")
    for r in shown:
        y = _TOP + _ROW * rows[r.instruction_id]
        colour = STATUS_COLOURS.get(r.reached, _OTHER_COLOUR)
        _sub(svg, "text", r.reference, x=4, y=y + 12)
        bar = _sub(
            svg,
            "rect",
            x=_LABEL,
            y=y + 3,
            width=round(max(1.0, x(r.seconds) - _LABEL), 1),
            height=_ROW - 6,
            fill=colour,
            stroke=_FAULT_COLOUR if not r.ok else colour,
            stroke_width=2 if not r.ok else 0,
            class_="payment",
        )
        bar.set("data-status", r.reached)
        _sub(
            bar,
            "title",
            f"{r.reference} ({r.instruction_id}): {r.reached} after {r.seconds:.2f} s"
            + (f"; {r.problem}" if r.problem else ""),
        )
    for m in marks:
        row = rows.get(m.instruction_id or "", 0)
        cy = _TOP + _ROW * row + _ROW / 2
        cx = x(m.seconds)
        mark = _sub(
            svg,
            "path",
            d=f"M{cx} {cy - 5} L{cx + 5} {cy} L{cx} {cy + 5} L{cx - 5} {cy} Z",
            fill=_FAULT_COLOUR,
            fill_opacity="0.8",
            class_="fault",
        )
        mark.set("data-kind", m.kind)
        _sub(mark, "title", f"{m.kind} at {m.seconds:.2f} s: {m.line}")
    return svg


def _table(parent: ET.Element, head: Sequence[str], rows: Sequence[Sequence[Any]], *, cls: str) -> ET.Element:
    table = _sub(parent, "table", class_=cls)
    tr = _sub(table, "tr")
    for h in head:
        _sub(tr, "th", h)
    for row in rows:
        tr = _sub(table, "tr")
        for cell in row:
            number = isinstance(cell, int | float)
            _sub(tr, "td", str(cell), **({"class_": "n"} if number else {}))
    return table


def render_html(summary: Mapping[str, Any], results: Sequence[InstructionResult], marks: Sequence[FaultMark]) -> str:
    """The report page as text (``<!DOCTYPE html>``, one inline SVG, no script)."""
    html = ET.Element("html", lang="en")
    head = _sub(html, "head")
    _sub(head, "meta", charset="utf-8")
    title = f"gateway qa run {summary['scenario']} ({summary['partner']}, seed {summary['seed']})"
    _sub(head, "title", title)
    _sub(head, "style", _STYLE)
    body = _sub(html, "body")
    _sub(body, "h1", title)
    verdict = _sub(body, "p", class_="verdict " + ("pass" if summary["ok"] else "fail"))
    verdict.text = (
        f"{'PASS' if summary['ok'] else 'FAIL'}: {summary['passed']} of {summary['sent']} reached their predicted "
        f"status, {summary['failed']} failed, {summary['double_submissions']} double submissions; "
        f"{sum(summary['faults_injected'].values())} faults injected; {summary['seconds']} s."
    )
    _sub(body, "h2", "Timeline")
    legend = _sub(body, "p", class_="legend")
    for status, colour in STATUS_COLOURS.items():
        item = _sub(legend, "span")
        _sub(item, "span", " ", class_="swatch", style=f"background:{colour}")
        ET.SubElement(item, "span").text = status
    item = _sub(legend, "span")
    _sub(item, "span", " ", class_="swatch", style=f"background:{_FAULT_COLOUR};transform:rotate(45deg)")
    ET.SubElement(item, "span").text = "injected fault (hover for the journal line)"
    _sub(
        body,
        "p",
        "One row per payment: from the moment the run posted it to its final status. "
        "A red outline marks a payment that missed its prediction.",
    )
    body.append(_chart(results, marks, float(summary["seconds"])))
    if len(results) > _MAX_ROWS:
        _sub(body, "p", f"The chart shows the first {_MAX_ROWS} of {len(results)} payments.")
    _sub(body, "h2", "Final statuses")
    statuses = sorted(set(summary["expected"]) | set(summary["by_status"]))
    _table(
        body,
        ("final status", "predicted", "reached"),
        [(s, summary["expected"].get(s, 0), summary["by_status"].get(s, 0)) for s in statuses],
        cls="statuses",
    )
    _sub(body, "h2", "Faults injected")
    if summary["faults_injected"]:
        _table(body, ("fault", "times"), list(summary["faults_injected"].items()), cls="faults")
    else:
        _sub(body, "p", "None.")
    _sub(body, "h2", "Payments")
    _table(
        body,
        ("reference", "instruction", "predicted", "reached", "booked at partner", "submissions", "seconds", "why"),
        [
            (
                r.reference,
                r.instruction_id,
                r.expected,
                r.reached,
                r.payments_at_partner,
                r.submissions,
                round(r.seconds, 2),
                r.why or "",
            )
            for r in results
        ],
        cls="payments",
    )
    ET.indent(html)
    return "<!DOCTYPE html>\n" + ET.tostring(html, encoding="unicode", method="html") + "\n"


def write_html(
    path: Path, summary: Mapping[str, Any], results: Sequence[InstructionResult], marks: Sequence[FaultMark]
) -> None:
    """Write the report page to ``path``."""
    path.write_text(render_html(summary, results, marks), encoding="utf-8")
