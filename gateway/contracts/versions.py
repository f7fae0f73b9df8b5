"""Contract versions: which one a request speaks, its lifecycle, and upcasting to the newest shape.

A sender names the version with a ``Contract-Version`` header and/or a ``version``
media-type parameter (``Content-Type: application/json; version=1.1``); both given
and different is a 400. Without either, the business unit's pin applies, else the
*default version*: the newest version of the oldest compatibility line still
served. So adding a breaking version never breaks a sender that never named one.

Older versions are upcast to the newest shape here and only here; the domain
parse (``gateway.domain.instruction``) reads the newest shape only. Pointers in domain
errors are mapped back into the sender's version, so a sender never sees a path
that does not exist in the contract it used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.message import Message
from email.utils import format_datetime
from functools import lru_cache
from typing import Any, TypeVar

from gateway.contracts.registry import ContractRegistry
from gateway.errors import ContractVersionError, DomainError, FieldError

__all__ = [
    "VERSION_HEADER",
    "VersionInfo",
    "compatibility_lines",
    "default_version",
    "has_upcaster",
    "negotiate",
    "parse_as_latest",
    "requested_version",
    "sender_pointer",
    "served_versions",
    "upcast",
]

VERSION_HEADER = "Contract-Version"
_VERSION_RE = re.compile(r"^[0-9]{1,4}\.[0-9]{1,4}$")
T = TypeVar("T")
Doc = dict[str, Any]


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


@dataclass(frozen=True)
class VersionInfo:
    """One contract version and its lifecycle, as its file states it (``x-*`` keys)."""

    message: str
    version: str
    direction: str
    #: ``initial`` (first version), ``compatible`` or ``breaking`` relative to the previous version
    compatibility: str
    deprecated: date | None = None
    #: from this date (00:00 UTC) the version is refused
    sunset: date | None = None

    @classmethod
    def of(cls, registry: ContractRegistry, message: str, version: str) -> VersionInfo:
        return _version_info(registry, message, version)

    @classmethod
    def _read(cls, registry: ContractRegistry, message: str, version: str) -> VersionInfo:
        schema = registry.schema(message, version)
        return cls(
            message=message,
            version=version,
            direction=schema.get("x-direction", "request"),
            compatibility=schema.get("x-compatibility", "initial"),
            deprecated=_date(schema.get("x-deprecated")),
            sunset=_date(schema.get("x-sunset")),
        )

    def retired(self, now: datetime) -> bool:
        return self.sunset is not None and now >= _midnight(self.sunset)

    def lifecycle_headers(self) -> dict[str, str]:
        """``Deprecation`` (RFC 9745: ``@`` + Unix seconds) and ``Sunset`` (RFC 8594: HTTP-date), when set."""
        headers: dict[str, str] = {}
        if self.deprecated:
            headers["Deprecation"] = f"@{int(_midnight(self.deprecated).timestamp())}"
        if self.sunset:
            headers["Sunset"] = format_datetime(_midnight(self.sunset), usegmt=True)
        return headers


@lru_cache(maxsize=256)
def _version_info(registry: ContractRegistry, message: str, version: str) -> VersionInfo:
    # registries are immutable once loaded, so what a version file says is read once
    return VersionInfo._read(registry, message, version)


def compatibility_lines(registry: ContractRegistry, message: str) -> list[list[str]]:
    """The versions of ``message`` grouped into lines: a new line starts at every ``breaking`` version."""
    lines: list[list[str]] = []
    for version in registry.versions(message):
        if not lines or VersionInfo.of(registry, message, version).compatibility == "breaking":
            lines.append([])
        lines[-1].append(version)
    return lines


def served_versions(registry: ContractRegistry, message: str, now: datetime) -> list[str]:
    """The versions of ``message`` not retired at ``now``, oldest first."""
    return list(_served_on(registry, message, now.astimezone(UTC).date()))


@lru_cache(maxsize=256)
def _served_on(registry: ContractRegistry, message: str, day: date) -> tuple[str, ...]:
    # versions retire at 00:00 UTC, so what is served only changes from one day to the next
    noon = datetime.combine(day, time(12), tzinfo=UTC)
    return tuple(v for v in registry.versions(message) if not VersionInfo.of(registry, message, v).retired(noon))


def default_version(registry: ContractRegistry, message: str, now: datetime) -> str:
    """The version a request that names none (and has no pin) gets: the newest of the oldest line still served."""
    return _default_on(registry, message, now.astimezone(UTC).date())


@lru_cache(maxsize=256)
def _default_on(registry: ContractRegistry, message: str, day: date) -> str:
    served = set(_served_on(registry, message, day))
    for line in compatibility_lines(registry, message):
        alive = [v for v in line if v in served]
        if alive:
            return alive[-1]
    return registry.latest(message)  # everything retired: the error comes from negotiate()


def _media_version(content_type: str | None) -> str | None:
    if not content_type or ";" not in content_type:  # no parameters: nothing to parse
        return None
    header = Message()
    header["Content-Type"] = content_type
    value = header.get_param("version")
    return value.strip() if isinstance(value, str) else None


def requested_version(header: str | None, content_type: str | None) -> str | None:
    """The version the sender asked for (header and/or media-type parameter), or ``None``."""
    asked = {"Contract-Version": (header or "").strip() or None, "version=": _media_version(content_type)}
    for source, value in asked.items():
        if value is not None and not _VERSION_RE.fullmatch(value):
            raise ContractVersionError(f"{source} must be a contract version like 1.1, not {value[:20]!r}")
    by_header, by_media = asked.values()
    if by_header and by_media and by_header != by_media:
        raise ContractVersionError(
            f"Contract-Version {by_header} and the media type's version={by_media} disagree; send one, or the same"
        )
    return by_header or by_media


def negotiate(
    registry: ContractRegistry,
    message: str,
    *,
    requested: str | None,
    pinned: str | None,
    now: datetime,
) -> VersionInfo:
    """The version this request uses: asked for, else the business unit's pin, else the default version."""
    version = requested or pinned or default_version(registry, message, now)
    served = served_versions(registry, message, now)
    offer = f"available: {', '.join(served)}"
    if version not in registry.versions(message):
        origin = "" if requested else " (this business unit's pinned version)"
        raise ContractVersionError(f"unknown {message} contract version {version}{origin}; {offer}")
    info = VersionInfo.of(registry, message, version)
    if info.retired(now):
        raise ContractVersionError(f"{message} contract version {version} was retired on {info.sunset}; {offer}")
    return info


# -- upcasting ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    upcast: Callable[[Doc], Doc]
    #: (pointer in the new shape, the same place in the previous version), for error messages
    moved: tuple[tuple[str, str], ...] = ()


#: (message, version) -> the step from the version before it; compatible versions need none
_STEPS: dict[tuple[str, str], _Step] = {}


def _upcaster(message: str, version: str, *, moved: tuple[tuple[str, str], ...] = ()) -> Callable[..., Any]:
    def register(fn: Callable[[Doc], Doc]) -> Callable[[Doc], Doc]:
        _STEPS[(message, version)] = _Step(fn, moved)
        return fn

    return register


@_upcaster("instruction", "2.0", moved=(("/remittance_information/unstructured", "/remittance_information"),))
def _instruction_2_0(doc: Doc) -> Doc:
    """1.x remittance text becomes ``{"unstructured": text}``."""
    if "remittance_information" not in doc:
        return doc
    return {**doc, "remittance_information": {"unstructured": doc["remittance_information"]}}


@_upcaster("collection", "1.1", moved=(("/due_date", "/metadata/due_date"),))
def _collection_1_1(doc: Doc) -> Doc:
    """A 1.0 direct debit's ``metadata.due_date`` (the documented stand-in) becomes ``due_date``."""
    asked = (doc.get("metadata") or {}).get("due_date")
    if doc.get("kind") != "direct_debit" or asked is None or "due_date" in doc:
        return doc
    return {**doc, "due_date": asked}


def has_upcaster(message: str, version: str) -> bool:
    """Whether a step from the version before ``version`` exists (every breaking request version needs one)."""
    return (message, version) in _STEPS


def _later(registry: ContractRegistry, message: str, version: str) -> list[str]:
    versions = registry.versions(message)
    return versions[versions.index(version) + 1 :]


def upcast(registry: ContractRegistry, message: str, version: str, doc: Doc) -> Doc:
    """``doc`` (valid against ``version``) in the newest version's shape; ``doc`` itself is never changed."""
    for target in _later(registry, message, version):
        step = _STEPS.get((message, target))
        if step is not None:
            doc = step.upcast(doc)
    return doc


def sender_pointer(registry: ContractRegistry, message: str, version: str, pointer: str) -> str:
    """A JSON pointer into the newest shape, mapped back to where the field is in ``version``."""
    for target in reversed(_later(registry, message, version)):
        step = _STEPS.get((message, target))
        for new, old in step.moved if step else ():
            if pointer == new or pointer.startswith(new + "/"):
                pointer = old + pointer[len(new) :]
    return pointer


def parse_as_latest(registry: ContractRegistry, message: str, version: str, doc: Doc, parse: Callable[[Doc], T]) -> T:
    """Upcast ``doc`` and ``parse`` it; a ``DomainError`` names pointers in the sender's version."""
    try:
        return parse(upcast(registry, message, version, doc))
    except DomainError as exc:
        errors = [FieldError(sender_pointer(registry, message, version, e.pointer), e.message) for e in exc.errors]
        raise type(exc)(exc.message, pointer=errors[0].pointer, errors=errors) from None
