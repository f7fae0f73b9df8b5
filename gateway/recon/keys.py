"""What a statement line is matched by, made from the values the database returns: its references, its
counterparty's name key and its remittance words.

Kept apart from ``gateway.recon.matching`` (which imports SQLAlchemy and the store) so that the worker that reads
the open lines of a large run (``gateway.recon.line_reader``) imports only this.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["LineValues", "line_values", "name_key", "words"]

_WORD = re.compile(r"[A-Za-z0-9_-]{4,40}")

#: a line as ``line_values`` makes it: statement, line, source, amount, direction, currency, day as the driver
#: returns it, references, name key, words
LineValues = tuple[int, int, str, int, str, str, Any, tuple[str, ...], str, tuple[str, ...]]


def name_key(value: str | None) -> str:
    """A counterparty name compared without case or spacing."""
    return " ".join((value or "").casefold().split())


def words(text: str | None) -> tuple[str, ...]:
    """The words of a remittance text that could be a reference."""
    return tuple(_WORD.findall(text or ""))


def line_values(rows: Iterable[Sequence[Any]]) -> list[LineValues]:
    """The rows of ``matching.open_lines_query`` as the values of their ``LineView``s (``matching.line_view``).

    Repeated texts (source, direction, currency, day) are handed out as one object each, so that ``marshal``
    writes each once per batch and the reader gets them shared.
    """
    same: dict[Any, Any] = {}
    one = same.setdefault
    out: list[LineValues] = []
    append = out.append
    for pk, line, src, amount, direction, currency, on, e2e, partner_ref, servicer_ref, name, text in rows:
        append(
            (
                pk,
                line,
                one(src, src),
                amount,
                one(direction, direction),
                one(currency, currency),
                one(on, on),
                # the references it has, in this order (as ``matching.load_open_lines`` makes them)
                (e2e, partner_ref)
                if servicer_ref is None and e2e and partner_ref
                else tuple(filter(None, (e2e, partner_ref, servicer_ref))),
                name_key(name) if name else "",
                words(text) if text else (),
            )
        )
    return out
