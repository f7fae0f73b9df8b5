"""The partner contracts this adapter speaks, as files, and their cached validators.

pain.001.001.09 is validated against the official XSD that ``sepaxml`` ships
(the adapter and the simulator load the very same file, so they cannot drift).
No installed or PyPI package we use ships a pain.002 XSD, so pain.002 is checked
structurally in code by ``gateway_adapters.iso20022_bank.pain002``.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

from lxml import etree

from gateway.contracts.safexml import parse_xml
from gateway.errors import ContractError, FieldError

__all__ = [
    "PAIN001_NAMESPACE",
    "PAIN001_VERSION",
    "PAIN001_XSD",
    "pain001_schema",
    "validate_pain001",
]

PAIN001_VERSION = "pain.001.001.09"
PAIN001_NAMESPACE = f"urn:iso:std:iso:20022:tech:xsd:{PAIN001_VERSION}"
#: the official ISO 20022 XSD, as shipped inside the sepaxml package
PAIN001_XSD: Path = Path(str(resources.files("sepaxml") / "schemas" / f"{PAIN001_VERSION}.xsd"))


@cache
def pain001_schema() -> etree.XMLSchema:
    """The pain.001.001.09 XSD, compiled once (no network: it has no imports)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(PAIN001_XSD), parser))


def _pointer(root: etree._Element, path: str | None) -> str:
    """A readable pointer (local names, 1-based index only where siblings repeat)."""
    try:
        found = root.getroottree().xpath(path) if path else []
    except etree.XPathError:
        found = []
    node = found[0] if isinstance(found, list) and found else None
    if not isinstance(node, etree._Element):
        return f"/{etree.QName(root).localname}"
    steps: list[str] = []
    current: etree._Element | None = node
    while current is not None:
        name = etree.QName(current).localname
        parent = current.getparent()
        if parent is not None:
            same = [n for n in parent if isinstance(n.tag, str) and etree.QName(n).localname == name]
            if len(same) > 1:
                name = f"{name}[{same.index(current) + 1}]"
        steps.append(name)
        current = parent
    return "/" + "/".join(reversed(steps))


_NS_IN_MESSAGE = re.compile(r"\{[^}]*\}")


def validate_pain001(body: bytes | etree._Element) -> etree._Element:
    """Return the root of a pain.001.001.09 that passes the XSD, or raise ``ContractError``.

    Every XSD violation becomes a ``FieldError`` (pointer = element path); the
    first one is the message, so callers can show the best match first.
    """
    root = body if isinstance(body, etree._Element) else parse_xml(body)
    found_ns = etree.QName(root).namespace or ""
    if found_ns != PAIN001_NAMESPACE:
        raise ContractError(
            f"not a {PAIN001_VERSION} document",
            errors=[FieldError("/Document", f"namespace {found_ns!r} is not {PAIN001_NAMESPACE!r}")],
        )
    schema = pain001_schema()
    if schema.validate(root):
        return root
    errors = [FieldError(_pointer(root, e.path), _NS_IN_MESSAGE.sub("", e.message)) for e in schema.error_log]
    first = errors[0] if errors else FieldError("/Document", "does not match the XSD")
    raise ContractError(f"not a valid {PAIN001_VERSION}: {first.pointer}: {first.message}", errors=errors)
