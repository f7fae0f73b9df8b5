"""Every hook and every Adapter member is documented in docs/hooks.md."""

from __future__ import annotations

import inspect

from gateway.partners.adapter import Adapter
from gateway.plugins import hookspecs
from gateway.plugins.manager import Plugins
from tests.support import REPO


def _hook_names() -> list[str]:
    return [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if getattr(fn, hookspecs.PROJECT + "_spec", None) is not None
    ]


def test_every_hook_is_documented() -> None:
    doc = (REPO / "docs" / "hooks.md").read_text()
    names = _hook_names()
    assert names, "no hooks found: the test would pass vacuously"
    for name in names:
        assert f"### `{name}`" in doc, f"hook {name} is not documented in docs/hooks.md"


def test_every_hook_has_a_docstring_saying_how_answers_combine() -> None:
    for name in _hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc, name
        assert "plugin" in doc, name


def test_every_adapter_member_is_documented() -> None:
    doc = (REPO / "docs" / "hooks.md").read_text()
    members = ["name", "capabilities", "partner_contracts", "settings_schema"]
    members += [n for n, _ in inspect.getmembers(Adapter, inspect.isfunction) if not n.startswith("_")]
    members += [n for n, v in vars(Adapter).items() if isinstance(v, classmethod)]
    for member in set(members):
        assert f"`{member}" in doc, f"Adapter.{member} is not documented in docs/hooks.md"


def test_the_hook_registry_matches_the_module() -> None:
    plugins = Plugins(load_entry_points=False)
    registered = {name for name in dir(plugins.pm.hook) if name.startswith("gateway_")}
    assert registered == set(_hook_names())
