"""The user docs stay true: every setting documented, names and ports that match what the code does."""

from __future__ import annotations

import argparse
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.cli.main import build_parser
from gateway.cli.serve import _try_it
from gateway.contracts.registry import contracts
from gateway.contracts.versions import default_version
from tests.support import REPO

DOCS = REPO / "docs"


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _key_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Every leaf key a YAML document valid against ``schema`` may hold: ``a.b``, ``a.<name>.c``, ``rules[].name``.

    A leaf is a key whose value has no keys of its own that the schema names (``partners.<name>``: each
    adapter's block, validated by the adapter).
    """
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        items = sub.get("items")
        inner = [
            *_key_paths(sub, f"{path}."),
            *(_key_paths(items, f"{path}[].") if isinstance(items, Mapping) else ()),
        ]
        yield from inner or [path]
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        yield from list(_key_paths(extra, f"{prefix}<name>.")) or [f"{prefix}<name>"]


def _documented(path: str, doc: str) -> bool:
    """``path`` appears in backticks, any ``<placeholder>`` standing for ``<name>``."""
    pattern = re.escape(path).replace(re.escape("<name>"), "<[a-z_]+>")
    return re.search(f"`{pattern}`", doc) is not None


@pytest.mark.parametrize(
    ("schema_file", "what"),
    [
        ("gateway/config_schema.json", "gateway.yaml"),
        ("gateway/dispatch/routing_schema.json", "the routing file"),
    ],
)
def test_every_setting_is_documented(schema_file: str, what: str) -> None:
    schema = json.loads(_read(REPO / schema_file))
    doc = _read(DOCS / "configuration.md")

    paths = list(_key_paths(schema))
    missing = [p for p in paths if not _documented(p, doc)]

    assert len(paths) > 10, "the schema walk found almost nothing: the test would pass vacuously"
    assert missing == [], f"keys of {what} ({schema_file}) not documented in docs/configuration.md: {missing}"


def test_every_setting_default_in_the_docs_is_the_schema_default() -> None:
    """A row ``| `a.b` | `default` | …`` names the default the schema holds."""
    schema = json.loads(_read(REPO / "gateway/config_schema.json"))
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| `([^`]*)` \|", _read(DOCS / "configuration.md"), re.MULTILINE)

    checked = 0
    for path, shown in rows:
        section, key = path.split(".")
        if section not in schema["properties"]:
            continue  # a key of the routing file
        default = schema["properties"][section]["properties"][key].get("default")
        expected = json.dumps(default) if default is None or isinstance(default, bool) else str(default)
        assert shown == expected, f"docs/configuration.md shows {path} defaulting to {shown!r}, the schema {expected!r}"
        checked += 1
    assert checked > 10


def _commands(parser: argparse.ArgumentParser, prefix: str) -> Iterator[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")
            return
    yield prefix


def test_readme_command_table_lists_every_command() -> None:
    readme = _read(REPO / "README.md")
    commands = list(_commands(build_parser(), "gateway"))

    missing = [c for c in commands if f"| `{c}" not in readme]

    assert len(commands) > 15
    assert missing == [], f"README.md's command table lacks {missing} (see `gateway --help`)"


def test_readme_command_table_names_only_commands_that_exist() -> None:
    commands = set(_commands(build_parser(), "gateway"))
    groups = {" ".join(c.split()[:n]) for c in commands for n in range(1, len(c.split()))}
    rows = re.findall(r"^\| `(gateway [^`|]+)", _read(REPO / "README.md"), re.MULTILINE)

    named = []
    for row in rows:
        words = ["gateway"]
        for word in row.split()[1:]:
            if " ".join([*words, word]) not in commands | groups:
                break
            words.append(word)
        named.append(" ".join(words))

    assert len(named) > 15
    assert [n for n in named if n not in commands] == [], "README.md's command table names commands that do not exist"


def test_readme_links_every_doc() -> None:
    readme = _read(REPO / "README.md")
    pages = sorted(p.relative_to(REPO).as_posix() for p in [*DOCS.glob("*.md"), *DOCS.glob("adapters/*.md")])

    missing = [p for p in pages if f"]({p})" not in readme]

    assert "docs/architecture.md" in pages
    assert missing == [], f"README.md's Documentation list lacks {missing}"


# -- the quick start --------------------------------------------------------------------------------------


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def test_quickstart_needs_no_uuidgen_and_names_what_make_run_starts() -> None:
    text = _read(DOCS / "quickstart.md")
    config = yaml.safe_load(_read(REPO / "config/gateway.yaml"))

    assert "uuidgen" not in text
    for name, simulator in config["simulators"].items():
        assert f"`{name}`" in text, f"the quick start does not say that make run starts the {name} simulator"
        assert f"127.0.0.1:{simulator['port']}" in text, name
    assert f"127.0.0.1:{config.get('server', {}).get('port', 8080)}" in text
    assert "Finance API key" in text
    assert "business_hours" in text, "the flag a newcomer sees at night and on weekends is not explained"
    assert "Idempotent-Replayed: true" in text


def test_quickstart_shows_what_make_run_prints() -> None:
    """The example output is what ``gateway serve --demo`` prints today, with the keys it shows."""
    text = _read(DOCS / "quickstart.md")
    demo_key = re.search(r"^Demo business unit API key: (pgw_\S+)$", text, re.MULTILINE)
    finance_key = re.search(r"^Finance API key \(.*\): (pgw_\S+)$", text, re.MULTILINE)
    assert demo_key is not None and finance_key is not None

    printed = _try_it("http://127.0.0.1:8080", demo_key[1], finance_key[1])

    for line in printed.strip().splitlines():
        assert line in text, f"make run prints {line!r}, the quick start does not show it"


def test_quickstart_instructions_are_valid() -> None:
    """Every JSON body the quick start posts passes the contract version the API serves by default."""
    registry = contracts()
    version = default_version(registry, "instruction", datetime.now(UTC))
    text = _read(DOCS / "quickstart.md")
    posted = [b for block in _shell_blocks(text) for b in re.findall(r"-d '(\{.*?\})'", block, re.DOTALL)]
    bodies = [b for b in posted if '"reference"' in b]  # not the comments on holds

    assert len(bodies) >= 2
    for body in bodies:
        document = json.loads(body.replace("'\"$REF\"'", "INV-1").replace("'\"$HOLD_REF\"'", "PO-1"))
        registry.validate("instruction", document, version)


# -- risk -------------------------------------------------------------------------------------------------


def test_risk_doc_states_the_shipped_business_hours() -> None:
    shipped = yaml.safe_load(_read(REPO / "config/risk.yaml"))["defaults"]["rules"]["business_hours"]
    text = _read(DOCS / "risk.md")

    assert f"{shipped['start']}\N{EN DASH}{shipped['end']}" in text
    assert shipped["action"] == "flag"
    assert "nights and weekends" in text


def test_risk_doc_shows_four_eyes_end_to_end() -> None:
    text = _read(DOCS / "risk.md")

    for needle in ("--scope instructions --scope finance", "/approve", "403", "four-eyes", "Finance API key"):
        assert needle in text, needle


# -- QA ---------------------------------------------------------------------------------------------------

#: what `make run` listens on: the gateway and the four simulators (config/gateway.yaml)
MAKE_RUN_PORTS = {8080, 8701, 8702, 8703, 8704}


def test_qa_examples_do_not_clash_with_make_run() -> None:
    config = yaml.safe_load(_read(REPO / "config/gateway.yaml"))
    assert {s["port"] for s in config["simulators"].values()} | {8080} == MAKE_RUN_PORTS
    text = _read(DOCS / "qa.md")

    examples = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", text, re.DOTALL))
    ports = {int(p) for p in re.findall(r"(?:--port[ =]|PORT=|127\.0\.0\.1:|localhost:)(\d{2,5})\b", examples)}

    assert ports, "no port in the examples: the test would pass vacuously"
    assert ports & MAKE_RUN_PORTS == set(), f"docs/qa.md examples use make run's ports {ports & MAKE_RUN_PORTS}"


# -- adapters ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("docs") / "my_bank-adapter"
    assert main(["adapters", "new", "my_bank", "--dir", str(target)]) == 0
    return target


def test_adapters_doc_packaging_names_match_the_scaffold(scaffolded: Path) -> None:
    text = _read(DOCS / "adapters.md")
    project = tomllib.loads(_read(scaffolded / "pyproject.toml"))["project"]
    (entry_name, module), *_ = project["entry-points"]["gateway.adapters"].items()

    assert project["name"] == "gateway-adapter-my-bank"
    assert f'name = "{project["name"]}"' in text
    assert f'{entry_name} = "{module}"' in text
    adapter_class = re.search(r"^class (\w+)\(HttpAdapter\)", _read(scaffolded / module / "adapter.py"), re.MULTILINE)
    assert adapter_class is not None
    assert f"`{adapter_class[1]}`" in text
    assert f"`{scaffolded.name}`" in text, "the default directory"
    for stale in ("my-bank-adapter", "my_bank_adapter"):
        assert stale not in text, f"docs/adapters.md still names {stale!r}, which the scaffold does not generate"


def test_adapters_doc_lists_the_files_the_scaffold_writes(scaffolded: Path) -> None:
    text = _read(DOCS / "adapters.md")
    section = text.split("## 0.", 1)[1].split("\n## ", 1)[0]
    named = {
        path.replace("NAME", "my_bank")
        for row in re.findall(r"^\| (.+?) \|", section, re.MULTILINE)
        for path in re.findall(r"`([\w/.-]+)`", row)
    }
    written = {p.relative_to(scaffolded).as_posix() for p in scaffolded.rglob("*") if p.is_file()}

    assert written - named == set(), f"files the scaffold writes that docs/adapters.md does not list: {written - named}"
    assert {n for n in named if "/" in n or "." in n} - written == set()


def test_adapters_doc_describes_the_http_adapter_base() -> None:
    text = _read(DOCS / "adapters.md")

    for needle in ("HttpAdapter", "http_settings_schema", "self.http", "partner_label", "payment_types"):
        assert needle in text, needle
