"""The ``gateway`` command line.

Every user error exits with code 2 and one line saying what to fix; never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from gateway.config import Settings, load_settings
from gateway.errors import GatewayError

__all__ = ["main"]

log = logging.getLogger("gateway")


class UsageError(GatewayError):
    """The command line itself is wrong."""

    default_message = "invalid command line"


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


# -- db ----------------------------------------------------------------------------


async def _db_upgrade(args: argparse.Namespace) -> int:
    from gateway.store.db import create_engine
    from gateway.store.migrate import current_revision, upgrade

    settings = _settings(args)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        revision = await current_revision(engine)
    finally:
        await engine.dispose()
    print(f"database at revision {revision}", file=sys.stderr)
    return 0


async def _require_schema(settings: Settings) -> None:
    from gateway.store.db import create_engine
    from gateway.store.migrate import current_revision, head_revision

    engine = create_engine(settings.database_url)
    try:
        current = await current_revision(engine)
    except Exception as exc:
        raise UsageError(f"cannot open the database ({type(exc).__name__}); check database.url") from None
    finally:
        await engine.dispose()
    if current != head_revision():
        raise UsageError("the database schema is not up to date: run `gateway db upgrade` first")


# -- keys --------------------------------------------------------------------------


async def _create_key(settings: Settings, business_unit: str, scopes: Sequence[str]) -> str:
    from gateway.clock import system_clock
    from gateway.store import repo
    from gateway.store.db import create_engine

    await _require_schema(settings)
    engine = create_engine(settings.database_url)
    try:
        async with engine.begin() as conn:
            return await repo.create_api_key(conn, business_unit, scopes, system_clock())
    finally:
        await engine.dispose()


async def _keys_create(args: argparse.Namespace) -> int:
    key = await _create_key(_settings(args), args.business_unit, args.scope or ["instructions"])
    print(key)  # alone on stdout, so scripts can capture it
    return 0


# -- adapters ----------------------------------------------------------------------


async def _adapters_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from gateway.plugins import Plugins

    settings = _settings(args)
    plugins = Plugins()
    classes = plugins.adapter_classes()
    sims = plugins.simulator_factories()
    enabled = settings.section("partners")
    rows = [
        {
            "name": name,
            "enabled": name in enabled,
            "simulator": name in sims,
            "module": cls.__module__,
            "capabilities": cls.capabilities.as_dict(),
        }
        for name, cls in classes.items()
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table(title="Installed adapters (entry point group gateway.adapters)")
    for col in ("name", "enabled", "simulator", "currencies", "accounts", "instant", "module"):
        table.add_column(col)
    for r in rows:
        caps = r["capabilities"]
        table.add_row(
            r["name"],
            "yes" if r["enabled"] else "no",
            "yes" if r["simulator"] else "no",
            ",".join(caps["currencies"]) or "any",
            ",".join(caps["account_kinds"]),
            "yes" if caps["instant"] else "no",
            r["module"],
        )
    Console().print(table)
    return 0


# -- serve / simulate ---------------------------------------------------------------


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve(args: argparse.Namespace) -> int:
    from gateway.api.app import create_app
    from gateway.plugins import Plugins
    from gateway.serving import bind, start_app, start_simulators

    settings = _settings(args)
    if args.port is not None:
        settings = settings.with_overrides(server__port=args.port)
    await _require_schema(settings)
    sims_cfg = settings.section("simulators") if args.with_simulators else {}
    sim_socks = {n: bind(c.get("host", "127.0.0.1"), int(c.get("port", 0))) for n, c in sims_cfg.items()}
    gw_sock = bind(settings.host, settings.port)
    demo_key = await _create_key(settings, "demo", ["instructions"]) if args.demo else None
    finance_key = await _create_key(settings, "finance", ["finance"]) if args.demo else None
    sims = await start_simulators(Plugins(), sims_cfg, sim_socks)
    gateway = await start_app(create_app(settings), gw_sock)
    url = settings.public_url
    print(f"Partner Gateway listening on {url}", file=sys.stderr)
    for name, app in sims.items():
        print(f"  simulator {name} on {app.url}", file=sys.stderr)
    if demo_key:
        from gateway.contracts import contracts

        # the contract's own example, without a fixed execution date that would go stale
        sample = dict(contracts().schema("instruction", "1.0")["examples"][0], reference="@REF@")
        sample.pop("requested_execution_date", None)
        example = json.dumps(sample)
        # a fresh reference per run of the line: the shell fills it in between the quotes
        example = example.replace("@REF@", "INV-'$(date +%s%N)'")
        print(
            f"\nDemo business unit API key: {demo_key}\nAPI: {url}/v1/instructions  (docs: {url}/openapi.json)\n"
            f"Try it:\n  curl -s -X POST {url}/v1/instructions "
            f"-H 'Authorization: Bearer {demo_key}' -H 'Content-Type: application/json' "
            f'-H "Idempotency-Key: $(date +%s%N)" '
            f"-d '{example}'\n"
            f"Then: curl -s {url}/v1/instructions -H 'Authorization: Bearer {demo_key}'\n"
            f"\nFinance API key (holds, alerts; docs/risk.md): {finance_key}\n"
            f"  curl -s {url}/v1/holds -H 'Authorization: Bearer {finance_key}'\n",
            flush=True,
        )
    try:
        await _wait_for_signal()
    finally:
        await gateway.stop()
        for app in sims.values():
            await app.stop()
    return 0


async def _simulate(args: argparse.Namespace) -> int:
    from gateway.plugins import Plugins
    from gateway.serving import bind, start_app

    settings = _settings(args)
    factories = Plugins().simulator_factories()
    if args.name not in factories:
        raise UsageError(f"no simulator named {args.name!r}; installed: {', '.join(factories) or 'none'}")
    cfg: dict[str, Any] = dict(settings.section("simulators").get(args.name, {}))
    host = args.host or cfg.pop("host", "127.0.0.1")
    port = args.port if args.port is not None else int(cfg.pop("port", 0))
    cfg.pop("host", None)
    cfg.pop("port", None)
    if args.scenario:
        cfg["scenario"] = args.scenario
    if args.seed is not None:
        cfg["seed"] = args.seed
    app = await start_app(factories[args.name](cfg), bind(host, port))
    print(f"simulator {args.name} listening on {app.url}", file=sys.stderr, flush=True)
    try:
        await _wait_for_signal()
    finally:
        await app.stop()
    return 0


async def _route_explain(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from gateway.contracts import contracts
    from gateway.instruction import parse_instruction, payment_order
    from gateway.runtime import Runtime
    from gateway.versioning import negotiate, parse_as_latest

    settings = _settings(args)
    try:
        doc = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{args.file} is not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    registry = contracts()
    now = datetime.now(UTC)
    version = negotiate(registry, "instruction", requested=args.contract_version, pinned=None, now=now).version
    registry.validate("instruction", doc, version)
    data = parse_as_latest(registry, "instruction", version, doc, parse_instruction)
    runtime = Runtime(settings)  # builds adapters and the router; starts nothing, sends nothing
    try:
        decision = runtime.router.decide(
            payment_order("ins_explain", args.business_unit, data),
            runtime.adapters,
            channel=data.channel,
            today=now.date(),
            probe=False,
        )
    finally:
        await runtime.engine.dispose()
    if args.json:
        print(json.dumps(decision.as_dict()))
        return 0
    console = Console()
    console.print(f"[bold]{decision.reason}[/]")
    table = Table(title=f"candidates ({'rule ' + decision.rule if decision.rule else 'no rule matched'})")
    table.add_column("partner")
    table.add_column("verdict")
    for name in decision.candidates:
        verdict = "[green]chosen[/]" if name == decision.adapter else decision.skipped.get(name, "not reached")
        table.add_row(name, verdict)
    console.print(table)
    return 0


async def _docs_api(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gateway.api.openapi import build_openapi, render_markdown
    from gateway.contracts import contracts
    from gateway.plugins import Plugins

    text = render_markdown(build_openapi(contracts(), sorted(Plugins().adapter_classes())))
    if args.output == "-":
        print(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
    return 0


async def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    summary = await run_demo(_settings(args), count=args.count, seed=args.seed, quiet=args.json)
    if args.json:
        print(json.dumps(summary))
    return 0 if summary["ok"] else 1


# -- parser ----------------------------------------------------------------------------


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gateway", description="Partner Gateway: payment integration gateway.")
    parser.add_argument("--config", help="YAML config file (default: the embedded config/gateway.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("serve", help="run the gateway API, dispatcher and poller")
    p.add_argument("--with-simulators", action="store_true", help="also run the configured partner simulators")
    p.add_argument("--demo", action="store_true", help="create a demo business unit key and print a curl line")
    p.add_argument("--port", type=int, help="override server.port")
    p.set_defaults(func=_serve)

    p = sub.add_parser("demo", help="run gateway + simulator in-process on a throw-away database")
    p.add_argument("--count", type=_positive, default=50, help="instructions to send (default 50)")
    p.add_argument("--seed", type=int, default=7, help="random seed for the generated instructions")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.set_defaults(func=_demo)

    p = sub.add_parser("simulate", help="serve one partner simulator")
    p.add_argument("name", help="simulator name (see `gateway adapters list`)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--scenario", help="scenario YAML file, or the name of a shipped one (happy, flaky-network, ...)")
    p.add_argument("--seed", type=int, help="seed for every random choice (default: the scenario's)")
    p.set_defaults(func=_simulate)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command", required=True)
    p = keys.add_parser("create", help="create an API key; prints only the key on stdout")
    p.add_argument("--business-unit", required=True, help="business unit name (created if new)")
    p.add_argument(
        "--scope",
        action="append",
        choices=["instructions", "finance", "admin"],
        help="repeatable; default instructions",
    )
    p.set_defaults(func=_keys_create)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    p = db.add_parser("upgrade", help="apply schema migrations")
    p.set_defaults(func=_db_upgrade)

    route = sub.add_parser("route", help="routing").add_subparsers(dest="route_command", required=True)
    p = route.add_parser("explain", help="show which partner an instruction would go to, and why; sends nothing")
    p.add_argument("file", help="an instruction as JSON (the body of POST /v1/instructions)")
    p.add_argument("--business-unit", default="explain", help="business unit name the rules match on")
    p.add_argument("--contract-version", help="contract version of the file (default: the default version)")
    p.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    p.set_defaults(func=_route_explain)

    docs = sub.add_parser("docs", help="generate documentation").add_subparsers(dest="docs_command", required=True)
    p = docs.add_parser("api", help="write the API reference (Markdown) from the OpenAPI document")
    p.add_argument("--output", default="docs/api.md", help="file to write, or - for stdout")
    p.set_defaults(func=_docs_api)

    # contracts: handlers live in gateway.contract_tools, imported only when a contracts command runs
    def _contract_tool(name: str) -> Any:
        async def run(args: argparse.Namespace) -> int:
            from gateway import contract_tools

            return int(await getattr(contract_tools, name)(args))

        return run

    contracts_cmd = sub.add_parser("contracts", help="versioned JSON contracts").add_subparsers(
        dest="contracts_command", required=True
    )
    p = contracts_cmd.add_parser("check", help="classify every change between versions; exit 1 if a claim is false")
    p.add_argument("--root", help="folder of <message>/<version>.json (default: the shipped contracts)")
    p.add_argument("--json", action="store_true", help="print one JSON report object")
    p.set_defaults(func=_contract_tool("check_command"))
    p = contracts_cmd.add_parser("docs", help="write one Markdown page per contract message")
    p.add_argument("--root", help="folder of <message>/<version>.json (default: the shipped contracts)")
    p.add_argument("--output", default="docs/contracts", help="folder to write (default docs/contracts)")
    p.set_defaults(func=_contract_tool("docs_command"))
    p = contracts_cmd.add_parser("pin", help="set a business unit's default instruction contract version")
    p.add_argument("business_unit", help="business unit name")
    p.add_argument("version", nargs="?", help="contract version, e.g. 1.1")
    p.add_argument("--clear", action="store_true", help="remove the pin: the default version applies")
    p.set_defaults(func=_contract_tool("pin_command"))

    adapters = sub.add_parser("adapters", help="adapters").add_subparsers(dest="adapters_command", required=True)
    p = adapters.add_parser("list", help="installed adapters and their capabilities")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_adapters_list)

    async def _adapters_new(args: argparse.Namespace) -> int:
        from gateway.scaffold import scaffold

        target = scaffold(args.name, args.dir)
        print(f"created {target}: `pip install -e {target}`, then `pytest {target}`", file=sys.stderr)
        return 0

    p = adapters.add_parser("new", help="scaffold a new adapter package (adapter, simulator, conformance test)")
    p.add_argument("name", help="adapter name, a lower_snake identifier (e.g. my_bank)")
    p.add_argument("--dir", help="directory to create (default: ./NAME-adapter)")
    p.set_defaults(func=_adapters_new)

    # qa: gateway + simulator playing a scenario, judged (gateway.qa, imported only when it runs)
    async def _qa_run(args: argparse.Namespace) -> int:
        from pathlib import Path

        from gateway.qa import run_qa

        summary = await run_qa(
            _settings(args),
            args.scenario,
            count=args.count,
            seed=args.seed,
            partner=args.partner,
            junit=Path(args.junit) if args.junit else None,
            quiet=args.json,
        )
        if args.json:
            print(json.dumps(summary))
        return 0 if summary["ok"] else 1

    qa_cmd = sub.add_parser("qa", help="QA runs against partner simulators").add_subparsers(
        dest="qa_command", required=True
    )
    p = qa_cmd.add_parser("run", help="run a scenario against an in-process gateway; exit 1 unless all pass")
    p.add_argument("scenario", help="scenario YAML file, or the name of a shipped one (happy, flaky-network, ...)")
    p.add_argument("--count", type=_positive, default=50, help="instructions to send (default 50)")
    p.add_argument("--seed", type=int, help="seed for every random choice (default: the scenario's)")
    p.add_argument("--partner", help="simulator to run (default: the scenario's partner)")
    p.add_argument("--junit", help="write a JUnit XML report (one testcase per instruction) to this file")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.set_defaults(func=_qa_run)
    from gateway.ledger.cli import register as register_ledger

    register_ledger(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(args.func(args))
    except GatewayError as exc:
        print(f"gateway: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
