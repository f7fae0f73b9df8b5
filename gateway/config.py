"""Configuration: a YAML file validated against a JSON Schema, then environment overrides.

Defaults come from the schema (``gateway/config_schema.json``, each key's ``default``): the one
source of default settings. ``config/gateway.yaml`` is the embedded development configuration;
``--config FILE`` picks another.
Environment variables override single settings for deployment (table in
``docs/configuration.md``). A typo or a wrong type stops the start with the key named.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from gateway.domain.errors import pointer_of
from gateway.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG",
    "ENV_OVERRIDES",
    "Settings",
    "check_document",
    "deep_merge",
    "default_settings",
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


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files("gateway").joinpath("config_schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def schema_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The document a schema's ``default`` keywords describe: the one source of default settings.

    Objects with ``properties`` give a mapping of their properties' defaults (an object
    always exists, so its own defaults can be filled in); a leaf without ``default``
    is left out (it is optional, or required from the user).
    """
    out: dict[str, Any] = {}
    for key, sub in schema.get("properties", {}).items():
        if "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        elif sub.get("type") == "object" and "properties" in sub:
            out[key] = schema_defaults(sub)
    return out


@dataclass(frozen=True)
class ServerSettings:
    """``server.*``: where the API listens and how much it reads."""

    host: str
    port: int
    public_url: str | None
    max_body_bytes: int
    #: largest body of a partner callback (a bank's status report on hundreds of payments is larger than
    #: ``max_body_bytes``); other requests keep ``max_body_bytes``
    callback_max_body_bytes: int
    #: slow or stalled clients: headers, then the body, must arrive within these; idle keep-alive is closed
    header_timeout_seconds: float
    body_timeout_seconds: float
    keepalive_timeout_seconds: float


@dataclass(frozen=True)
class ConsoleSettings:
    """``console.*``: the operations console (docs/console.md)."""

    idle_timeout_seconds: int
    live_interval_seconds: float


@dataclass(frozen=True)
class IntakeSettings:
    """``intake.*``: the group-committing intake writer."""

    batch_max: int
    batch_max_body_bytes: int
    max_queue: int
    max_wait_seconds: float
    rate_per_second: float | None
    burst: int
    rate_limits: dict[str, Any]


@dataclass(frozen=True)
class FileSettings:
    """``files.*``: ERP payment files (pain.001 in, pain.002 out; docs/files.md)."""

    max_bytes: int
    inbox_dir: str
    outbox_dir: str
    scan_seconds: float
    report_seconds: float
    enabled: bool


@dataclass(frozen=True)
class ReconciliationSettings:
    """``reconciliation.*``: where the matching rules are, and real-time matching (docs/reconciliation.md)."""

    file: str | None
    realtime: bool
    statement_max_bytes: int
    fetch_seconds: float
    fetch_days: int
    inbox_dir: str | None
    inbox_scan_seconds: float
    csv_mappings: Mapping[str, str]


@dataclass(frozen=True)
class DispatchSettings:
    """``dispatch.*``: the dispatcher's concurrency, leases and retries, and status polling."""

    concurrency: int
    lease_seconds: float
    heartbeat_seconds: float
    dead_after_seconds: float
    max_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    idle_poll_seconds: float
    max_defer_seconds: float
    #: least time between two claims (bigger batches at low rates); 0: claim as soon as woken
    gather_seconds: float
    status_poll_interval_seconds: float
    status_poll_after_seconds: float
    #: keep the masked partner messages per payment (gateway.partners.capture)
    partner_messages: bool
    partner_message_max_bytes: int


@dataclass(frozen=True)
class RiskJobSettings:
    """``risk.*`` intervals of the scheduled risk housekeeping."""

    hold_expiry_check_seconds: float
    prune_seconds: float


@dataclass(frozen=True)
class CreditLineSettings:
    """``credit_lines.*``: distributor credit reservations (docs/credit-and-rebates.md)."""

    reservation_ttl_seconds: int
    expiry_check_seconds: float
    overdue_grace_days: int


@dataclass(frozen=True)
class AnomalySettings:
    """``anomaly.*``: operational anomaly detection on per-partner time series (docs/operations.md)."""

    enabled: bool
    check_seconds: float
    bucket_minutes: int
    history_buckets: int
    alpha: float
    sigmas: float
    warmup_buckets: int
    min_events: int
    min_rate_increase_pct: float
    min_settle_increase_seconds: float
    unknown_after_minutes: float
    stuck_factor: float
    stuck_min_minutes: float


@dataclass(frozen=True)
class WebhookSettings:
    """``webhooks.*``: status webhooks to business units (docs/webhooks.md)."""

    enabled: bool
    allow_private_addresses: bool
    timeout_seconds: float
    retry_for_seconds: float
    backoff_base_seconds: float
    backoff_max_seconds: float
    disable_after_failures: int
    secret_overlap_seconds: int
    concurrency: int
    batch: int
    lease_seconds: float
    idle_poll_seconds: float


@dataclass(frozen=True)
class ExportSettings:
    """``export.*``: the data-lake export (docs/data-export.md)."""

    scheduled: bool
    interval_seconds: float
    dir: str
    chunk_rows: int


@dataclass(frozen=True)
class EventSinkSettings:
    """``event_sinks.*``: status-change events published to the sinks plugins offer (docs/data-export.md)."""

    enabled: bool
    interval_seconds: float
    batch: int
    nats_url: str | None
    nats_stream: str
    nats_subject: str


def _typed(cls: type[Any], section: Mapping[str, Any]) -> Any:
    return cls(**{f.name: section[f.name] for f in dataclasses.fields(cls)})


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
    #: dotted key → the environment variable that set it (keys not listed come from ``source``)
    origins: Mapping[str, str] = field(default_factory=dict)

    def origin(self, dotted: str) -> str:
        """Where a setting came from: the environment variable that set it, or the config file."""
        return self.origins.get(dotted, self.source)

    def section(self, name: str) -> Mapping[str, Any]:
        return self.raw.get(name, {})

    @functools.cached_property
    def server(self) -> ServerSettings:
        return _typed(ServerSettings, self.raw["server"])  # type: ignore[no-any-return]

    @functools.cached_property
    def console(self) -> ConsoleSettings:
        return _typed(ConsoleSettings, self.raw["console"])  # type: ignore[no-any-return]

    @functools.cached_property
    def intake(self) -> IntakeSettings:
        return _typed(IntakeSettings, self.raw["intake"])  # type: ignore[no-any-return]

    @functools.cached_property
    def reconciliation(self) -> ReconciliationSettings:
        return _typed(ReconciliationSettings, self.raw["reconciliation"])  # type: ignore[no-any-return]

    @functools.cached_property
    def dispatch(self) -> DispatchSettings:
        return _typed(DispatchSettings, self.raw["dispatch"])  # type: ignore[no-any-return]

    @functools.cached_property
    def risk_jobs(self) -> RiskJobSettings:
        return _typed(RiskJobSettings, self.raw["risk"])  # type: ignore[no-any-return]

    @functools.cached_property
    def credit_lines(self) -> CreditLineSettings:
        return _typed(CreditLineSettings, self.raw["credit_lines"])  # type: ignore[no-any-return]

    @functools.cached_property
    def files(self) -> FileSettings:
        return _typed(FileSettings, self.raw["files"])  # type: ignore[no-any-return]

    @functools.cached_property
    def anomaly(self) -> AnomalySettings:
        return _typed(AnomalySettings, self.raw["anomaly"])  # type: ignore[no-any-return]

    @functools.cached_property
    def webhooks(self) -> WebhookSettings:
        return _typed(WebhookSettings, self.raw["webhooks"])  # type: ignore[no-any-return]

    @functools.cached_property
    def export(self) -> ExportSettings:
        return _typed(ExportSettings, self.raw["export"])  # type: ignore[no-any-return]

    @functools.cached_property
    def event_sinks(self) -> EventSinkSettings:
        return _typed(EventSinkSettings, self.raw["event_sinks"])  # type: ignore[no-any-return]

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
    def reconciliation_file(self) -> Path | None:
        """The reconciliation rules, resolved against the config file's folder (None: the shipped file)."""
        return self._file("reconciliation")

    @property
    def csv_mapping_files(self) -> dict[str, Path]:
        """``reconciliation.csv_mappings``: mapping name → its YAML file, resolved against the config file's folder."""
        base = Path(self.source).resolve().parent
        return {
            name: path if (path := Path(file)).is_absolute() else base / path
            for name, file in self.reconciliation.csv_mappings.items()
        }

    @property
    def ledger_file(self) -> Path | None:
        """The ledger's chart and posting rules, resolved against the config file's folder (None: the shipped file)."""
        return self._file("ledger")

    @property
    def rebates_file(self) -> Path | None:
        """The rebate programs file, resolved against the config file's folder (None: no programs)."""
        return self._file("rebates")

    @property
    def reports_file(self) -> Path | None:
        """The report schedules file, resolved against the config file's folder (None: nothing scheduled)."""
        return self._file("reports")

    @property
    def reports_folder(self) -> Path:
        """Where reports are written (relative paths: to the working directory, like ``var/gateway.db``)."""
        return Path(str(self.raw["reports"]["folder"]))

    def with_overrides(self, **dotted: Any) -> Settings:
        """A copy with some dotted keys replaced (``database__url="..."``)."""
        doc = copy.deepcopy(dict(self.raw))
        for key, value in dotted.items():
            _set(doc, key.replace("__", "."), value)
        origins = {k: v for k, v in self.origins.items() if k not in {d.replace("__", ".") for d in dotted}}
        return validate_document(doc, self.source, origins)


def _origin_of(dotted: str, source: str, origins: Mapping[str, str]) -> str:
    """The environment variable that set ``dotted`` (or a key above or below it), else the config file."""
    for key, var in origins.items():
        if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."):
            return var
    return source


def _url_scheme_message(url: Any) -> str:
    scheme = str(url).split(":", 1)[0]
    if scheme in ("postgres", "postgresql") or scheme.startswith("postgresql+"):
        return (
            f"database.url starts with {scheme}://, but the gateway talks to PostgreSQL through asyncpg: "
            "write postgresql+asyncpg://USER@HOST:5432/DATABASE"
        )
    return "database.url must start with postgresql+asyncpg:// (PostgreSQL) or sqlite+aiosqlite:/// (a SQLite file)"


def validate_document(doc: Mapping[str, Any], source: str, origins: Mapping[str, str] | None = None) -> Settings:
    """Validate a whole configuration document, defaults filled in.

    Raise ``ConfigError`` naming the key (and the environment variable that set it).
    """
    origins = dict(origins or {})
    doc = deep_merge(schema_defaults(_schema()), doc)
    validator = Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        if err.validator == "additionalProperties":
            allowed = set(err.schema.get("properties", {}))
            extra = sorted(k for k in err.instance if k not in allowed)
            prefix = f"{where}." if err.absolute_path else ""
            key = f"{prefix}{extra[0]}"
            raise ConfigError(f"{_origin_of(key, source, origins)}: unknown key {key}")
        blame = _origin_of(where, source, origins)
        if where == "database.url" and err.validator == "pattern":  # never echo the URL: it may hold a password
            raise ConfigError(f"{blame}: {_url_scheme_message(err.instance)}")
        raise ConfigError(f"{blame}: {where}: {err.message} (at {pointer_of(err.absolute_path)})")
    return Settings(raw=doc, source=source, origins=origins)


def read_yaml_file(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping; ``ConfigError`` naming the file (and line) otherwise."""
    file = Path(path)
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(_not_utf8(file, exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{file}:{mark.line + 1 if mark else '?'}: not valid YAML") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{file}: the top level must be a mapping")
    return doc


def _not_utf8(file: Path, exc: UnicodeDecodeError) -> str:
    return f"{file} is not UTF-8 text (byte {exc.start} is 0x{exc.object[exc.start]:02x}); save it as UTF-8"


def _apply_env(doc: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Apply environment overrides to ``doc``; return dotted key → the variable that set it.

    The named variables in ``ENV_OVERRIDES``, and ``GATEWAY_<SECTION>__<KEY>[__<KEY>…]`` for any
    setting (the value read as a YAML scalar: ``8801`` is a number, ``true`` a boolean).
    """
    origins: dict[str, str] = {}
    for var, (dotted, kind) in ENV_OVERRIDES.items():
        if var in env and env[var] != "":
            try:
                value = kind(env[var])
            except ValueError:
                raise ConfigError(f"{var} must be {kind.__name__}, got {env[var]!r}") from None
            _set(doc, dotted, value)
            origins[dotted] = var
    for var in sorted(env):
        if not var.startswith("GATEWAY_") or "__" not in var or env[var] == "":
            continue
        parts = var.removeprefix("GATEWAY_").lower().split("__")
        if not all(parts):
            raise ConfigError(f"{var}: write GATEWAY_<SECTION>__<KEY>, e.g. GATEWAY_SIMULATORS__ACH_NACHA__PORT")
        try:
            value = yaml.safe_load(env[var])
        except yaml.YAMLError:
            raise ConfigError(f"{var}: {env[var]!r} is not a single value") from None
        dotted = ".".join(parts)
        try:
            _set(doc, dotted, value)
        except (AttributeError, TypeError):
            raise ConfigError(f"{var}: {'.'.join(parts[:-1])} is a value, not a section") from None
        origins[dotted] = var
    return origins


def check_document(doc: Any, schema: Mapping[str, Any], source: str) -> None:
    """Validate ``doc``; the first error (ordered by key path) names its dotted key."""
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"{source}: {where}: {err.message}")


@functools.cache
def default_settings() -> Settings:
    """Every setting at its default (the schema's), as for an app that carries no configuration."""
    return validate_document({}, "(defaults)")


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load the YAML file (default: the embedded one), apply env overrides, validate."""
    env = os.environ if env is None else env
    file = Path(path) if path else DEFAULT_CONFIG
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(_not_utf8(file, exc)) from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{file}:{where} is not valid YAML") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{file}: the top level must be a mapping")
    doc = deep_merge(schema_defaults(_schema()), loaded)
    origins = _apply_env(doc, env)
    return validate_document(doc, str(file), origins)
