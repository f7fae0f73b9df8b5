"""``gateway adapters new NAME``: scaffold a new adapter package that passes the conformance kit out of the box.

The package (default directory ``./NAME-adapter``) holds its own ``pyproject.toml``
(distribution ``gateway-adapter-NAME``, entry point ``NAME = "gateway_adapter_NAME"`` in
the ``gateway.adapters`` group), the plugin package ``gateway_adapter_NAME`` (a signed
JSON-over-HTTP adapter, its partner contract, its conformance profile and a simulator
built on ``gateway_simulators.core``), ``tests/test_conformance.py``, a README, and ``qa/``: a
first scenario with the gateway and routing configuration to run it (``gateway --config
qa/gateway.yaml qa run qa/NAME-happy.yaml``).
Templates are package data in ``gateway/devtools/scaffold_templates``; see docs/adapters.md.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from pathlib import Path

from gateway.errors import GatewayError
from gateway.plugins.manager import Plugins

__all__ = ["ScaffoldError", "check_name", "files_for", "scaffold"]

_NAME_RE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
#: longer names would push generated lines past 120 characters
MAX_NAME_LENGTH = 40

#: template file (in ``gateway/devtools/scaffold_templates``) → path in the new package (``{package}`` substituted)
TEMPLATES: dict[str, str] = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "__init__.py.tmpl": "{package}/__init__.py",
    "adapter.py.tmpl": "{package}/adapter.py",
    "messages.py.tmpl": "{package}/messages.py",
    "conformance.py.tmpl": "{package}/conformance.py",
    "simulator.py.tmpl": "{package}/simulator.py",
    "payment-request.json.tmpl": "{package}/contracts/payment-request.json",
    "py.typed.tmpl": "{package}/py.typed",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
    "qa-gateway.yaml.tmpl": "qa/gateway.yaml",
    "qa-routing.yaml.tmpl": "qa/routing.yaml",
    "qa-scenario.yaml.tmpl": "qa/{name}-happy.yaml",
}


class ScaffoldError(GatewayError, ValueError):
    """The adapter cannot be scaffolded as asked (bad name, name taken, directory in use)."""

    default_message = "cannot scaffold the adapter"
    status = 400
    slug = "scaffold-error"


def check_name(name: str, *, installed: set[str] | None = None) -> None:
    """``ScaffoldError`` unless ``name`` is a lower_snake identifier no installed adapter uses.

    ``installed``: the names taken (default: every adapter the installed plugins register).
    """
    if not _NAME_RE.fullmatch(name) or keyword.iskeyword(name):
        raise ScaffoldError(f"adapter name {name!r} must be a lower_snake identifier, e.g. my_bank")
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(f"adapter name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if installed is None:
        installed = set(Plugins(strict=False).adapter_classes())
    if name in installed:
        raise ScaffoldError(f"an adapter named {name!r} is already installed (see `gateway adapters list`)")


def _words(name: str) -> list[str]:
    return name.split("_")


def files_for(name: str) -> dict[str, str]:
    """Relative path → content of every file the package for adapter ``name`` holds (no checks)."""
    package = f"gateway_adapter_{name}"
    substitutions = {
        "__PACKAGE__": package,
        "__DIST__": f"gateway-adapter-{name.replace('_', '-')}",
        "__CLASS__": "".join(w.capitalize() for w in _words(name)),
        "__TITLE__": " ".join(w.upper() if len(w) <= 3 else w.capitalize() for w in _words(name)),
        "__NAME__": name,
        # scenario names are lowercase letters, digits and dashes
        "__SCENARIO__": name.replace("_", "-"),
    }
    templates = resources.files("gateway.devtools").joinpath("scaffold_templates")
    out: dict[str, str] = {}
    for template, target in TEMPLATES.items():
        text = templates.joinpath(template).read_text(encoding="utf-8")
        for placeholder, value in substitutions.items():
            text = text.replace(placeholder, value)
        out[target.format(package=package, name=name)] = text
    return out


def scaffold(name: str, directory: str | Path | None = None, *, installed: set[str] | None = None) -> Path:
    """Write a new adapter package for ``name`` into ``directory`` (default ``./NAME-adapter``); its path.

    ``ScaffoldError`` for a bad or taken name, or a directory that exists and is not empty.
    """
    check_name(name, installed=installed)
    target = Path(directory) if directory is not None else Path(f"{name}-adapter")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ScaffoldError(f"{target} already exists and is not an empty directory")
    files = files_for(name)
    try:
        for relative, text in files.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ScaffoldError(f"cannot write {target}: {exc.strerror}") from None
    return target
