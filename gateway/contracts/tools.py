"""What ``gateway contracts check|docs|pin`` do: compatibility check, generated interface docs, business-unit pins.

The command-line handlers are in ``gateway.cli.contracts``; these are the library functions they call.

``check`` compares every version of every message with the version before it
(``gateway.contracts.diff``) and fails when a version claims ``compatible`` but breaks
the other side, or when a file's version metadata is inconsistent. ``docs``
writes one Markdown page per message under ``docs/contracts/``. ``pin`` sets a
business unit's default ``instruction`` contract version.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from gateway.contracts.diff import Change, diff
from gateway.contracts.registry import ContractRegistry, contracts
from gateway.contracts.versions import VersionInfo, compatibility_lines, served_versions
from gateway.errors import GatewayError

__all__ = [
    "CheckReport",
    "ContractsInputError",
    "Step",
    "check",
    "check_pinnable",
    "load_contracts",
    "render_docs",
    "render_partner_docs",
    "write_docs",
    "write_partner_docs",
]

_DIRECTIONS = {
    "request": "sent to the gateway (business units build it; the gateway validates it)",
    "event": "sent by the gateway (the gateway builds it; receivers validate it)",
}


class ContractsInputError(GatewayError, ValueError):
    """The contracts folder, a contract file, or a version named on the command line is unusable."""

    default_message = "unusable contracts"


def load_contracts(folder: str | Path | None) -> ContractRegistry:
    """The registry of ``folder`` (default: the shipped contracts), or a one-line ``ContractsInputError``."""
    if folder is None:
        return contracts()
    root = Path(folder)
    if not root.is_dir():
        raise ContractsInputError(f"{root} is not a folder of contracts (<message>/<version>.json)")
    try:
        registry = ContractRegistry(root)
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractsInputError(f"cannot read the contracts under {root}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ContractsInputError(f"a contract under {root} is not JSON: line {exc.lineno}: {exc.msg}") from None
    if not registry.messages():
        raise ContractsInputError(f"no contracts under {root}: expected <message>/<version>.json files")
    for message in registry.messages():
        try:
            registry.versions(message)
        except ValueError:
            raise ContractsInputError(f"{message}: versions must be numbers like 1.0 or 2.1") from None
    return registry


# -- check ---------------------------------------------------------------------------------------------------------


@dataclass
class Step:
    """One version compared with the one before it."""

    message: str
    old: str
    new: str
    direction: str
    claimed: str
    changes: list[Change]

    @property
    def breaking(self) -> list[Change]:
        return [c for c in self.changes if c.classification(self.direction) == "breaking"]

    @property
    def verdict(self) -> str:
        return "breaking" if self.breaking else "compatible"

    @property
    def ok(self) -> bool:
        return not (self.claimed == "compatible" and self.breaking)


@dataclass
class CheckReport:
    """Every step of every message, plus problems with the files' version metadata."""

    steps: list[Step] = field(default_factory=list)
    #: (message, version, what is wrong)
    problems: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "steps": [
                {
                    "message": s.message,
                    "from": s.old,
                    "to": s.new,
                    "direction": s.direction,
                    "claimed": s.claimed,
                    "verdict": s.verdict,
                    "ok": s.ok,
                    "changes": [
                        {
                            "pointer": c.pointer,
                            "keyword": c.keyword,
                            "effect": c.effect.value,
                            "detail": c.detail,
                            "classification": c.classification(s.direction),
                        }
                        for c in s.changes
                    ],
                }
                for s in self.steps
            ],
            "problems": [{"message": m, "version": v, "problem": p} for m, v, p in self.problems],
        }


def _iso_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _metadata_problems(registry: ContractRegistry, message: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    versions = registry.versions(message)
    for index, version in enumerate(versions):
        schema = registry.schema(message, version)
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            out.append((version, f"not a valid JSON Schema 2020-12: {exc.message}"))
        direction = schema.get("x-direction")
        if direction not in _DIRECTIONS:
            out.append((version, "x-direction must be 'request' or 'event'"))
        claim = schema.get("x-compatibility")
        if index == 0:
            if claim not in (None, "initial"):
                out.append((version, "the first version's x-compatibility must be 'initial'"))
        else:
            previous = versions[index - 1]
            before = registry.schema(message, previous)
            if before.get("x-direction") != direction:
                out.append((version, f"x-direction changed from {before.get('x-direction')!r} in {previous}"))
            if claim not in ("compatible", "breaking"):
                out.append((version, f"x-compatibility must state 'compatible' or 'breaking' (relative to {previous})"))
            elif claim == "breaking" and version.split(".")[0] == previous.split(".")[0]:
                out.append((version, f"a breaking version must start a new major version (after {previous})"))
        deprecated, sunset = schema.get("x-deprecated"), schema.get("x-sunset")
        for key, value in (("x-deprecated", deprecated), ("x-sunset", sunset)):
            if value is not None and _iso_date(value) is None:
                out.append((version, f"{key} must be an ISO 8601 date (YYYY-MM-DD), not {value!r}"))
        if sunset is not None and deprecated is None:
            out.append((version, "x-sunset needs x-deprecated: a version is deprecated before it is retired"))
        dep, sun = _iso_date(deprecated), _iso_date(sunset)
        if dep and sun and sun <= dep:
            out.append((version, "x-sunset must come after x-deprecated"))
        if deprecated is not None and index == len(versions) - 1:
            out.append((version, "the newest version cannot be deprecated: there would be nothing to move to"))
    return out


def check(registry: ContractRegistry) -> CheckReport:
    """Compare every version with the one before it and check the files' version metadata."""
    report = CheckReport()
    for message in registry.messages():
        report.problems += [(message, v, p) for v, p in _metadata_problems(registry, message)]
        versions = registry.versions(message)
        for old, new in itertools.pairwise(versions):
            schema = registry.schema(message, new)
            direction = schema.get("x-direction", "request")
            changes = diff(registry.schema(message, old), schema, registry.resources)
            report.steps.append(Step(message, old, new, direction, schema.get("x-compatibility", "?"), changes))
    return report


# -- docs ----------------------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    return "`" + _cell(value if isinstance(value, str) else json.dumps(value)) + "`"


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/$defs/") else None


def _type_of(schema: dict[str, Any]) -> str:
    name = _ref_name(schema)
    if name:
        return f"`{name}` (below)"
    if "oneOf" in schema or "anyOf" in schema:
        branches = schema.get("oneOf") or schema.get("anyOf")
        return "one of: " + "; ".join(_type_of(b) for b in branches)
    if "const" in schema:
        return "constant"
    if "enum" in schema and "type" not in schema:
        return "enum"
    declared = schema.get("type")
    if declared is None:
        return "object" if "properties" in schema else "any"
    types = [declared] if isinstance(declared, str) else declared
    text = " or ".join(types)
    if declared == "object" and isinstance(schema.get("additionalProperties"), dict) and "properties" not in schema:
        text = f"map of {_type_of(schema['additionalProperties'])}"
    return text


def _constraints(schema: dict[str, Any]) -> str:
    parts: list[str] = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(_code(v) for v in schema["enum"]))
    if "const" in schema:
        parts.append(f"always {_code(schema['const'])}")
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    if lo is not None and hi is not None:
        parts.append(f"length {lo} to {hi}")
    elif hi is not None:
        parts.append(f"at most {hi} characters")
    elif lo is not None:
        parts.append(f"at least {lo} characters")
    for key, label in (
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
        ("minItems", "items ≥"),
        ("maxItems", "items ≤"),
        ("minProperties", "keys ≥"),
        ("maxProperties", "keys ≤"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    if "pattern" in schema:
        parts.append(f"pattern {_code(schema['pattern'])}")
    if "format" in schema:
        parts.append(f"format {schema['format']}")
    names = schema.get("propertyNames")
    if isinstance(names, dict) and names.get("maxLength") is not None:
        parts.append(f"keys at most {names['maxLength']} characters")
    values = schema.get("additionalProperties")
    if isinstance(values, dict) and "properties" not in schema and values.get("maxLength") is not None:
        parts.append(f"values at most {values['maxLength']} characters")
    if "default" in schema:
        parts.append(f"default {_code(schema['default'])}")
    if schema.get("additionalProperties") is False and "properties" in schema and _ref_name(schema) is None:
        parts.append("closed object")
    return "; ".join(parts)


def _field_rows(schema: dict[str, Any], prefix: str = "") -> list[str]:
    rows: list[str] = []
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        examples = prop.get("examples")
        example = _code(examples[0]) if examples else ""
        rows.append(
            f"| `{path}` | {_cell(_type_of(prop))} | {'yes' if name in required else 'no'} | "
            f"{_constraints(prop)} | {_cell(prop.get('description', ''))} | {example} |"
        )
        if "properties" in prop and "$ref" not in prop:
            rows += _field_rows(prop, f"{path}.")
    return rows


_FIELD_HEADER = ["| field | type | required | constraints | description | example |", "|---|---|---|---|---|---|"]


def _object_section(title: str, schema: dict[str, Any]) -> list[str]:
    lines = [title, ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    branches = schema.get("oneOf") or schema.get("anyOf")
    if branches:
        word = "Exactly one" if "oneOf" in schema else "At least one"
        lines += [f"{word} of these alternatives:", ""]
        for index, branch in enumerate(branches, 1):
            keys = ", ".join(f"`{k}`" for k in branch.get("properties", {})) or _type_of(branch)
            lines += [f"Alternative {index}: {keys} (closed object).", "", *_FIELD_HEADER, *_field_rows(branch), ""]
        return lines
    if "properties" in schema:
        closed = " Closed object: any other field is an error." if schema.get("additionalProperties") is False else ""
        lines += [f"Type: {_type_of(schema)}.{closed}", "", *_FIELD_HEADER, *_field_rows(schema), ""]
    else:
        lines += [f"Type: {_type_of(schema)}. {_constraints(schema)}".rstrip(), ""]
    return lines


def _version_table(registry: ContractRegistry, message: str, direction: str) -> list[str]:
    versions = registry.versions(message)
    default = compatibility_lines(registry, message)[0][-1] if direction == "request" else None
    lines = ["| version | compatibility | deprecated | sunset | note |", "|---|---|---|---|---|"]
    for index, version in enumerate(versions):
        info = VersionInfo.of(registry, message, version)
        claim = info.compatibility if index == 0 else f"{info.compatibility} with {versions[index - 1]}"
        notes = []
        if version == default:
            notes.append("default when a request names no version")
        if version == versions[-1]:
            notes.append("latest")
        lines.append(f"| {version} | {claim} | {info.deprecated or ''} | {info.sunset or ''} | {', '.join(notes)} |")
    return lines


def _changelog(step: Step) -> list[str]:
    lines = [
        f"### {step.old} → {step.new}",
        "",
        f"Claimed **{step.claimed}**; `gateway contracts check` finds it **{step.verdict}** for a {step.direction}.",
        "",
    ]
    if not step.changes:
        return [*lines, "No schema changes (annotations only).", ""]
    lines += ["| pointer | keyword | change | effect | classification |", "|---|---|---|---|---|"]
    for c in step.changes:
        lines.append(
            f"| `{c.pointer}` | `{c.keyword}` | {_cell(c.detail)} | {c.effect.value} | "
            f"{c.classification(step.direction)} |"
        )
    return [*lines, ""]


def render_docs(registry: ContractRegistry) -> dict[str, str]:
    """One Markdown page per message: every version's fields, examples, and the change log."""
    report = check(registry)
    pages: dict[str, str] = {}
    for message in registry.messages():
        versions = registry.versions(message)
        latest = registry.schema(message, versions[-1])
        direction = latest.get("x-direction", "request")
        lines = [
            f"# Contract `{message}`",
            "",
            f"<!-- Generated by `gateway contracts docs` from contracts/{message}/*.json; do not edit. -->",
            "",
            f"{latest.get('title', message)}: {_DIRECTIONS.get(direction, direction)}. "
            "Versioning, negotiation and deprecation rules: [README.md](README.md).",
            "",
            *_version_table(registry, message, direction),
            "",
        ]
        for version in reversed(versions):
            schema = registry.schema(message, version)
            lines += [f"## Version {version}", ""]
            if schema.get("description"):
                lines += [schema["description"], ""]
            lines += [f"Schema: `contracts/{message}/{version}.json` (`$id` {schema.get('$id', 'none')}).", ""]
            lines += _object_section("### Fields", {k: v for k, v in schema.items() if k != "description"})
            for name, definition in schema.get("$defs", {}).items():
                lines += _object_section(f"### `{name}` ({version})", definition)
            for index, example in enumerate(schema.get("examples", []), 1):
                lines += [f"### Example {index} ({version})", "", "```json", json.dumps(example, indent=2), "```", ""]
        steps = [s for s in report.steps if s.message == message]
        if steps:
            lines += ["## Change log", ""]
            for step in reversed(steps):
                lines += _changelog(step)
        pages[f"{message}.md"] = "\n".join(lines).rstrip() + "\n"
    return pages


def _partner_schemas(folder: Path) -> list[tuple[str, str, Path, dict[str, Any]]]:
    """(message, version, file, schema) of one partner's contracts, in either layout:
    ``<message>/<version>.json`` or ``<message>.json`` (the version in ``x-version``)."""
    found = []
    for path in sorted(folder.rglob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        nested = path.parent != folder
        message = str(schema.get("x-contract") or (path.parent.name if nested else path.stem))
        version = str(schema.get("x-version") or (path.stem if nested else "1.0"))
        found.append((message, version, path, schema))
    return sorted(found, key=lambda item: (item[0], tuple(int(p) for p in item[1].split(".") if p.isdigit())))


def render_partner_docs(root: str | Path) -> dict[str, str]:
    """One Markdown page per partner under ``root`` (``contracts/partners/<partner>/``): every message's fields.

    These are the partners' wire formats, which the adapter and its simulator both read
    (``Adapter.partner_contracts``); the gateway's own contracts are ``render_docs``'.
    """
    base = Path(root)
    pages: dict[str, str] = {}
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        schemas = _partner_schemas(folder)
        if not schemas:
            continue
        partner = folder.name
        lines = [
            f"# Partner contracts: `{partner}`",
            "",
            f"<!-- Generated by `gateway contracts docs` from contracts/partners/{partner}/; do not edit. -->",
            "",
            f"What `{partner}` sends and receives on the wire, as JSON Schemas the adapter and its simulator "
            f"both read (`partner_contracts`; [the adapter](../../adapters/{partner}.md)). "
            "An answer that does not fit is not taken as an answer.",
            "",
            "| message | version | schema |",
            "|---|---|---|",
        ]
        for message, version, path, _ in schemas:
            lines.append(
                f"| [`{message}`](#{message}) | {version} | `contracts/{path.relative_to(base.parent).as_posix()}` |"
            )
        lines.append("")
        for message, version, _, schema in schemas:
            lines += [f"## {message}", "", f"Version {version}: {schema.get('title', message)}.", ""]
            if schema.get("description"):
                lines += [schema["description"], ""]
            lines += _object_section("### Fields", {k: v for k, v in schema.items() if k != "description"})
            for name, definition in schema.get("$defs", {}).items():
                lines += _object_section(f"### `{name}` ({message})", definition)
            for index, example in enumerate(schema.get("examples", []), 1):
                lines += [f"### Example {index} ({message})", "", "```json", json.dumps(example, indent=2), "```", ""]
        pages[f"{partner}.md"] = "\n".join(lines).rstrip() + "\n"
    return pages


def write_partner_docs(root: str | Path, folder: str | Path) -> list[Path]:
    """Write the partner pages (``render_partner_docs``) into ``folder``; the files written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_partner_docs(root).items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


def write_docs(registry: ContractRegistry, folder: str | Path) -> list[Path]:
    """Write the generated pages into ``folder`` (a hand-written README.md there is kept); the files written."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_docs(registry).items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


# -- pin -----------------------------------------------------------------------------------------------------------


def check_pinnable(version: str | None) -> None:
    """Raise ``ContractsInputError`` unless ``version`` (``None``: no pin) is an instruction version served today."""
    if version is not None:
        served = served_versions(contracts(), "instruction", datetime.now(UTC))
        if version not in served:
            raise ContractsInputError(f"unknown instruction contract version {version}; available: {', '.join(served)}")
