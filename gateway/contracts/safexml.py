"""Safe XML parsing for untrusted documents (partner messages, statements, ERP files): no DTDs, no entities,
no network. The XML half of reading what comes in; ``gateway.contracts.safejson`` is the JSON half.

Partner XML is untrusted input. It is screened first by ``defusedxml`` (expat),
which refuses any DOCTYPE at the declaration, before a single entity is
defined, so a "billion laughs" or external-entity payload never reaches the
parser that builds the tree. That parser (lxml, needed for XSD validation) is
itself configured never to resolve entities or touch the network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO
from xml.parsers import expat

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from lxml import etree

from gateway.errors import ContractError, FieldError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "child",
    "children",
    "clean_text",
    "iterparse_safe",
    "local_name",
    "namespace",
    "parse_xml",
    "text",
]

#: Largest partner message we parse; a status report or a single payment is a few KB.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024

_ILLEGAL_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _parser() -> etree.XMLParser:
    # A parser is not thread-safe; building one is cheap compared to a round trip.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )


def _refuse_doctype(name: str, sysid: str | None, pubid: str | None, has_internal_subset: bool) -> None:
    raise DTDForbidden(name, sysid, pubid)


def _refuse_entity(
    name: str,
    is_parameter_entity: bool,
    value: str | None,
    base: str | None,
    sysid: str | None,
    pubid: str | None,
    notation_name: str | None,
) -> None:
    raise EntitiesForbidden(name, value, base, sysid, pubid, notation_name)


def _refuse_unparsed_entity(
    name: str, base: str | None, sysid: str | None, pubid: str | None, notation_name: str | None
) -> None:
    raise EntitiesForbidden(name, None, base, sysid, pubid, notation_name)


def _refuse_external(context: str, base: str | None, sysid: str | None, pubid: str | None) -> int:
    raise ExternalReferenceForbidden(context, base, sysid, pubid)


def _screen(body: bytes) -> None:
    """Run ``body`` through expat with defusedxml's refusals (a DOCTYPE, an entity declaration, an external
    reference: ``DefusedXmlException``; not well-formed: ``expat.ExpatError``), building nothing.

    The same expat set-up as ``defusedxml.ElementTree.fromstring(forbid_dtd=True)`` (namespace processing on),
    without its tree: that is built in Python, a call per element, and was most of the time of reading a
    bank's pooled status report; lxml builds the tree that is used.
    """
    parser = expat.ParserCreate(None, "}")
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_entity
    parser.UnparsedEntityDeclHandler = _refuse_unparsed_entity
    parser.ExternalEntityRefHandler = _refuse_external
    parser.Parse(body, True)


def parse_xml(body: bytes, *, pointer: str = "/Document", max_bytes: int = MAX_MESSAGE_BYTES) -> etree._Element:
    """Parse ``body`` into its root element, or raise ``ContractError`` naming ``pointer``.

    ``max_bytes``: the largest document accepted (an ERP file is larger than a partner message).
    """
    if not isinstance(body, bytes | bytearray):
        raise ContractError("XML body must be bytes", errors=[FieldError(pointer, "body is not bytes")])
    if len(body) > max_bytes:
        raise ContractError(
            "XML message too large",
            errors=[FieldError(pointer, f"message exceeds {max_bytes} bytes")],
        )
    if not body.strip():
        raise ContractError("empty XML message", errors=[FieldError(pointer, "body is empty")])
    try:
        _screen(bytes(body))
    except DefusedXmlException:
        raise ContractError(
            "XML with a DTD or entities is refused",
            errors=[FieldError(pointer, "DOCTYPE / entity declarations are not allowed")],
        ) from None
    except expat.ExpatError as exc:
        raise ContractError("malformed XML", errors=[FieldError(pointer, f"not well-formed XML: {exc}")]) from None
    except (LookupError, ValueError) as exc:  # an unknown or impossible encoding declaration
        message = f"unreadable XML: {str(exc)[:80]}"
        raise ContractError("malformed XML", errors=[FieldError(pointer, message)]) from None
    try:
        root = etree.fromstring(bytes(body), _parser())
    except etree.XMLSyntaxError as exc:
        raise ContractError("malformed XML", errors=[FieldError(pointer, f"not well-formed XML: {exc.msg}")]) from None
    except (etree.LxmlError, LookupError, ValueError) as exc:
        message = f"unreadable XML: {str(exc)[:80]}"
        raise ContractError("malformed XML", errors=[FieldError(pointer, message)]) from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ContractError(
            "XML with a DTD is refused",
            errors=[FieldError(pointer, "DOCTYPE / entity declarations are not allowed")],
        )
    for node in root.iter(etree.Entity):
        raise ContractError(
            "XML entity references are refused",
            errors=[FieldError(pointer, f"entity reference {node.text} is not allowed")],
        )
    return root


def local_name(element: etree._Element) -> str:
    """The tag without its namespace."""
    return etree.QName(element).localname


def namespace(element: etree._Element) -> str:
    """The element's namespace URI ('' when it has none)."""
    return etree.QName(element).namespace or ""


def child(element: etree._Element | None, name: str) -> etree._Element | None:
    """First child called ``name`` in any namespace (parsers stay version-agnostic)."""
    if element is None:
        return None
    # lxml matches ``{*}name`` in C (any namespace or none; never a comment), making a proxy for the match only
    return next(element.iterchildren(f"{{*}}{name}"), None)


def children(element: etree._Element | None, name: str) -> list[etree._Element]:
    """Every child called ``name`` in any namespace."""
    if element is None:
        return []
    return list(element.iterchildren(f"{{*}}{name}"))


def text(element: etree._Element | None, *path: str) -> str | None:
    """Stripped text at ``path`` below ``element`` (local names), or ``None`` if absent/empty."""
    node = element
    for name in path:
        node = child(node, name)
    if node is None or node.text is None:
        return None
    value = node.text.strip()
    return value or None


def clean_text(value: str, max_length: int) -> str:
    """Drop characters XML cannot carry and cut to the schema's ``max_length``."""
    return _ILLEGAL_XML_CHARS.sub("", value).strip()[:max_length]


def iterparse_safe(
    source: BinaryIO, *, tags: Iterable[str], pointer: str = "/Document"
) -> Iterator[tuple[str, etree._Element]]:
    """``end`` events of the elements called ``tags`` (any namespace) of a document read as it streams.

    For documents too large for ``parse_xml`` (a bank statement of a million
    entries): the same refusals with bounded memory. The caller clears what it
    has read. No DTD is loaded and none is allowed: a DOCTYPE is refused at the
    first event, before any entity of it could be used (entities are never
    resolved, the network never touched); libxml2's default limits stay on
    (nesting depth, text node size) since ``huge_tree`` is off.
    """
    events = etree.iterparse(
        source,
        events=("end",),
        tag=[f"{{*}}{t}" for t in tags],
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
        collect_ids=False,
    )
    screened = False
    try:
        for event, element in events:
            if not screened:
                docinfo = element.getroottree().docinfo
                if docinfo.doctype or docinfo.internalDTD is not None:
                    raise ContractError(
                        "XML with a DTD is refused",
                        errors=[FieldError(pointer, "DOCTYPE / entity declarations are not allowed")],
                    )
                screened = True
            yield event, element
    except etree.XMLSyntaxError as exc:
        raise ContractError("malformed XML", errors=[FieldError(pointer, f"not well-formed XML: {exc.msg}")]) from None
    except (etree.LxmlError, LookupError, ValueError) as exc:
        message = f"unreadable XML: {str(exc)[:80]}"
        raise ContractError("malformed XML", errors=[FieldError(pointer, message)]) from None
