"""Configuration: a YAML file validated against a JSON Schema, then environment overrides.

``config/gateway.yaml`` is the embedded default; ``--config FILE`` picks another.
Environment variables override single settings for deployment (table in
``docs/configuration.md``). A typo or a wrong type stops the start with the key named.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from gateway.contracts import pointer_of
from gateway.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG",
    "ENV_OVERRIDES",
    "Settings",
    "check_document",
    "deep_merge",
    "load_settings",
    "read_yaml_file",
]

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "gateway.yaml"

#: environment variable → (dotted key, type)
ENV_OVERRIDES: dict[str, tuple[str, type]] = {
    "GATEWAY_DATABASE_URL": ("database.url", str),
    "GATEWAY_HOST": ("server.host", str),
    "GATEWAY_PORT": ("server.port", int),
    "GATEWAY_PUBLIC_URL": ("server.public_url", str),
    "GATEWAY_ENCRYPTION_KEYS": ("security.encryption_keys", str),
    "GATEWAY_FINGERPRINT_KEY": ("security.fingerprint_key", str),
    "GATEWAY_MAX_BODY_BYTES": ("server.max_body_bytes", int),
    "GATEWAY_DISPATCH_CONCURRENCY": ("dispatch.concurrency", int),
}

_DEFAULTS: dict[str, Any] = {
    "server": {"host": "127.0.0.1", "port": 8080, "public_url": None, "max_body_bytes": 65536},
    "database": {"url": "sqlite+aiosqlite:///var/gateway.db", "echo": False},
    "security": {},
    "intake": {"batch_max": 256},
    "dispatch": {
        "concurrency": 32,
        "lease_seconds": 60,
        "max_attempts": 8,
        "backoff_base_seconds": 0.5,
        "backoff_max_seconds": 300,
        "idle_poll_seconds": 0.5,
        "max_defer_seconds": 0.25,
        "status_poll_interval_seconds": 5,
        "status_poll_after_seconds": 10,
    },
    "routing": {"file": None},
    "risk": {"file": None, "hold_expiry_check_seconds": 60, "prune_seconds": 600},
    "partners": {},
    "simulators": {},
}


def _schema() -> dict[str, Any]:
    text = resources.files("gateway").joinpath("config_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``over`` merged in: mappings recursively, anything else (lists too) replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


@dataclass(frozen=True)
class Settings:
    """The validated configuration. ``raw`` keeps the whole document for sub-sections."""

    raw: Mapping[str, Any]
    source: str

    def section(self, name: str) -> Mapping[str, Any]:
        return self.raw.get(name, {})

    @property
    def host(self) -> str:
        return str(self.raw["server"]["host"])

    @property
    def port(self) -> int:
        return int(self.raw["server"]["port"])

    @property
    def public_url(self) -> str:
        url = self.raw["server"].get("public_url")
        return (url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def database_url(self) -> str:
        return str(self.raw["database"]["url"])

    @property
    def encryption_keys(self) -> str:
        keys = self.raw["security"].get("encryption_keys")
        if not keys:
            raise ConfigError("security.encryption_keys (or GATEWAY_ENCRYPTION_KEYS) is required")
        return str(keys)

    def _file(self, section: str) -> Path | None:
        name = self.raw.get(section, {}).get("file")
        if not name:
            return None
        path = Path(name)
        return path if path.is_absolute() else Path(self.source).resolve().parent / path

    @property
    def routing_file(self) -> Path | None:
        """The routing rules file, resolved against the config file's folder (None: no rules)."""
        return self._file("routing")

    @property
    def risk_file(self) -> Path | None:
        """The risk rules file, resolved against the config file's folder (None: no screening rules)."""
        return self._file("risk")

    @property
    def ledger_file(self) -> Path | None:
        """The ledger's chart and posting rules, resolved against the config file's folder (None: the shipped file)."""
        return self._file("ledger")

    def with_overrides(self, **dotted: Any) -> Settings:
        """A copy with some dotted keys replaced (``database__url="..."``)."""
        doc = copy.deepcopy(dict(self.raw))
        for key, value in dotted.items():
            _set(doc, key.replace("__", "."), value)
        return validate_document(doc, self.source)


def validate_document(doc: Mapping[str, Any], source: str) -> Settings:
    """Validate a whole configuration document; raise ``ConfigError`` naming the key."""
    validator = Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            allowed = set(err.schema.get("properties", {}))
            extra = sorted(k for k in err.instance if k not in allowed)
            prefix = f"{where}." if err.absolute_path else ""
            raise ConfigError(f"{source}: unknown key {prefix}{extra[0]}")
        raise ConfigError(f"{source}: {where}: {err.message} (at {pointer_of(err.absolute_path)})")
    return Settings(raw=doc, source=source)


def read_yaml_file(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; ``ConfigError`` naming the file (and line) otherwise."""
    file = Path(path)
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{file}:{mark.line + 1 if mark else '?'}: not valid YAML") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{file}: the top level must be a mapping")
    return doc


def check_document(doc: Any, schema: Mapping[str, Any], source: str) -> None:
    """Validate ``doc``; the first error (ordered by key path) names its dotted key."""
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: {where}: {err.message}")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load the YAML file (default: the embedded one), apply env overrides, validate."""
    env = os.environ if env is None else env
    file = Path(path) if path else DEFAULT_CONFIG
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{file}:{where} is not valid YAML") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: the top level must be a mapping")
    doc = deep_merge(_DEFAULTS, loaded)
    for var, (dotted, kind) in ENV_OVERRIDES.items():
        if var in env and env[var] != "":
            try:
                value = kind(env[var])
            except ValueError:
                raise ConfigError(f"{var} must be {kind.__name__}, got {env[var]!r}") from None
            _set(doc, dotted, value)
    return validate_document(doc, str(file))
