"""Answers, not tracebacks: each mistake a new user makes gets exit code 2 and one line saying what to do.

Every case runs the ``gateway`` command as a user would (a subprocess, a clean environment).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from gateway.cli.db import upgrade_command
from gateway.cli.main import build_parser
from gateway.cli.serve import follow_simulators
from gateway.config import DEFAULT_CONFIG, load_settings
from tests.support import PG_URL, example_instruction

GATEWAY = [sys.executable, "-m", "gateway.cli"]
REPO = Path(__file__).resolve().parents[1]
NEEDS_POSTGRESQL = pytest.mark.skipif(
    not PG_URL, reason="needs a PostgreSQL server: set GATEWAY_TEST_DATABASE_URL (e.g. postgresql+asyncpg://…/test)"
)


def run(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*GATEWAY, *args], capture_output=True, text=True, timeout=timeout, env=environment, cwd=cwd)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (asserts exit code 2 and nothing else on stderr)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[int]:
    """A loopback port something is listening on (as a running gateway would be)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def sqlite_config(tmp_path: Path) -> Path:
    """A migrated SQLite database and a config file pointing at it."""
    path = tmp_path / "gateway.yaml"
    path.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'gw.db'}\n")
    assert run("--config", str(path), "db", "upgrade").returncode == 0
    return path


# -- 1. a database that cannot be reached --------------------------------------------------------------------------

COMMANDS = {
    "db upgrade": ["db", "upgrade"],
    "serve": ["serve"],
    "keys create": ["keys", "create", "--business-unit", "erp"],
    "contracts pin": ["contracts", "pin", "erp", "1.1"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_nothing_listening_names_the_variable_the_address_and_the_cause(command: str) -> None:
    port = free_port()
    env = {"GATEWAY_DATABASE_URL": f"postgresql+asyncpg://gw@127.0.0.1:{port}/gw"}
    assert one_line(run(*COMMANDS[command], env=env)) == (
        f"gateway: cannot connect to PostgreSQL at 127.0.0.1:{port} (database.url from GATEWAY_DATABASE_URL): "
        "nothing is listening there (connection refused); start PostgreSQL or fix the host and port"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_unresolvable_host_names_the_config_file(command: str, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text("database:\n  url: postgresql+asyncpg://gw@db.example.invalid:6432/gw\n")
    assert one_line(run("--config", str(config), *COMMANDS[command])) == (
        f"gateway: cannot connect to PostgreSQL at db.example.invalid:6432 (database.url from {config}): "
        "host db.example.invalid cannot be resolved; fix the host in the URL"
    )


@NEEDS_POSTGRESQL
@pytest.mark.parametrize("command", COMMANDS)
def test_a_database_that_does_not_exist_says_so(command: str) -> None:
    assert PG_URL is not None
    server = make_url(PG_URL)
    name = f"gw_missing_{uuid.uuid4().hex[:8]}"
    url = server.set(database=name).render_as_string(hide_password=False)
    where = f"{server.host}:{server.port or 5432}"
    assert one_line(run(*COMMANDS[command], env={"GATEWAY_DATABASE_URL": url})) == (
        f"gateway: cannot connect to PostgreSQL at {where} (database.url from GATEWAY_DATABASE_URL): "
        f"database {name} does not exist; create it (createdb {name}) or fix the URL"
    )


@NEEDS_POSTGRESQL
def test_an_unknown_role_says_so() -> None:
    assert PG_URL is not None
    server = make_url(PG_URL)
    url = server.set(username="nobody_here", password=None).render_as_string(hide_password=False)
    assert one_line(run("db", "upgrade", env={"GATEWAY_DATABASE_URL": url})) == (
        f"gateway: cannot connect to PostgreSQL at {server.host}:{server.port or 5432} "
        "(database.url from GATEWAY_DATABASE_URL): role nobody_here does not exist; "
        "create the role or fix the user in the URL"
    )


def test_a_postgres_scheme_gets_a_sentence_and_never_echoes_the_url() -> None:
    env = {"GATEWAY_DATABASE_URL": "postgres://gw:s3cret@db.internal/gw"}
    assert one_line(run("db", "upgrade", env=env)) == (
        "gateway: GATEWAY_DATABASE_URL: database.url starts with postgres://, but the gateway talks to "
        "PostgreSQL through asyncpg: write postgresql+asyncpg://USER@HOST:5432/DATABASE"
    )


# -- 2. a config file that is not UTF-8 ----------------------------------------------------------------------------


def test_a_config_file_that_is_not_utf8_says_how_to_fix_it(tmp_path: Path) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes("# Zürich office\nserver:\n  port: 8090\n".encode("latin-1"))
    assert one_line(run("--config", str(config), "db", "upgrade")) == (
        f"gateway: {config} is not UTF-8 text (byte 3 is 0xfc); save it as UTF-8"
    )


# -- 3. a bad value from the environment names the variable --------------------------------------------------------


def test_a_bad_environment_value_names_the_variable_not_the_config_file() -> None:
    assert one_line(run("db", "upgrade", env={"GATEWAY_PORT": "99999"})) == (
        "gateway: GATEWAY_PORT: server.port: 99999 is greater than the maximum of 65535 (at /server/port)"
    )
    assert one_line(run("db", "upgrade", env={"GATEWAY_SIMULATORS__ACH_NACHA__PORT": "many"})) == (
        "gateway: GATEWAY_SIMULATORS__ACH_NACHA__PORT: simulators.ach_nacha.port: 'many' is not of type 'integer' "
        "(at /simulators/ach_nacha/port)"
    )
    assert one_line(run("db", "upgrade", env={"GATEWAY_SERVER__PROT": "8090"})) == (
        "gateway: GATEWAY_SERVER__PROT: unknown key server.prot"
    )


def test_any_setting_can_be_moved_from_the_environment_and_partners_follow_their_simulator() -> None:
    settings = load_settings(env={"GATEWAY_SIMULATORS__ISO20022_BANK__PORT": "18701", "GATEWAY_PORT": "18080"})
    assert settings.section("simulators")["iso20022_bank"]["port"] == 18701 and settings.port == 18080
    assert settings.origin("simulators.iso20022_bank.port") == "GATEWAY_SIMULATORS__ISO20022_BANK__PORT"
    assert settings.origin("server.port") == "GATEWAY_PORT"
    assert settings.origin("server.host") == str(DEFAULT_CONFIG)
    moved = follow_simulators(settings, {"iso20022_bank": "http://127.0.0.1:18701"})
    assert moved.section("partners")["iso20022_bank"]["base_url"] == "http://127.0.0.1:18701"
    assert moved.section("partners")["card_acquirer"] == settings.section("partners")["card_acquirer"]
    # a base URL set on purpose through the environment is left alone
    pinned = load_settings(env={"GATEWAY_PARTNERS__ISO20022_BANK__BASE_URL": "http://127.0.0.1:9999"})
    kept = follow_simulators(pinned, {"iso20022_bank": "http://127.0.0.1:18701"})
    assert kept.section("partners")["iso20022_bank"]["base_url"] == "http://127.0.0.1:9999"


# -- 4. an installed adapter package whose entry point fails to import ----------------------------------------------


@pytest.fixture
def broken_package(tmp_path: Path) -> Path:
    """A package 'installed' on PYTHONPATH (a dist-info with an entry point) whose import fails."""
    site = tmp_path / "site"
    (site / "broken_bank").mkdir(parents=True)
    (site / "broken_bank" / "__init__.py").write_text("")
    (site / "broken_bank" / "plugin.py").write_text("import no_such_dependency  # noqa\n")
    info = site / "broken_bank-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-bank\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[gateway.adapters]\nbroken_bank = broken_bank.plugin\n")
    return site


BROKEN = (
    "adapter package broken-bank 0.3 (entry point broken_bank = broken_bank.plugin) failed to import: "
    "ModuleNotFoundError: No module named 'no_such_dependency'; fix or uninstall it, "
    "or skip it with GATEWAY_DISABLE_PLUGINS=broken_bank"
)


def test_a_broken_adapter_package_is_named_and_listing_goes_on(broken_package: Path) -> None:
    env = {"PYTHONPATH": f"{REPO}:{broken_package}"}
    listed = run("adapters", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.strip().splitlines() == [f"gateway: WARNING: {BROKEN}"]
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["broken_bank"]["error"] == "ModuleNotFoundError: No module named 'no_such_dependency'"
    assert rows["iso20022_bank"]["enabled"]


def test_a_broken_adapter_package_stops_commands_that_route(broken_package: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": f"{REPO}:{broken_package}"}
    file = tmp_path / "eur.json"
    file.write_text(json.dumps(example_instruction()))
    assert one_line(run("route", "explain", str(file), env=env)) == f"gateway: {BROKEN}"
    skipped = run("route", "explain", str(file), "--json", env={**env, "GATEWAY_DISABLE_PLUGINS": "broken_bank"})
    assert skipped.returncode == 0 and json.loads(skipped.stdout)["adapter"] == "iso20022_bank"


def test_commands_that_load_no_adapters_do_not_notice_a_broken_package(broken_package: Path, tmp_path: Path) -> None:
    config = tmp_path / "gateway.yaml"
    config.write_text(f"database:\n  url: sqlite+aiosqlite:///{tmp_path / 'gw.db'}\n")
    upgraded = run("--config", str(config), "db", "upgrade", env={"PYTHONPATH": f"{REPO}:{broken_package}"})
    assert upgraded.returncode == 0 and upgraded.stderr.startswith("database at revision"), upgraded.stderr


# -- 5. a second `make run` while one runs -------------------------------------------------------------------------


def test_the_gateway_port_in_use_says_which_and_how_to_move_it(sqlite_config: Path, listening: int) -> None:
    env = {"GATEWAY_PORT": str(listening)}
    assert one_line(run("--config", str(sqlite_config), "serve", env=env)) == (
        f"gateway: the gateway cannot listen on 127.0.0.1:{listening}: Address already in use "
        f"(is another `gateway serve` running?); move it with --port, GATEWAY_PORT or server.port in {sqlite_config}"
    )


def test_a_simulator_port_in_use_says_which_simulator_and_how_to_move_it(tmp_path: Path, listening: int) -> None:
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}", "GATEWAY_PORT": "0"}
    assert run("db", "upgrade", env=env).returncode == 0
    env |= {f"GATEWAY_SIMULATORS__{name}__PORT": "0" for name in ("ISO20022_BANK", "CARD_ACQUIRER", "INSTANT_RTP")}
    env["GATEWAY_SIMULATORS__ACH_NACHA__PORT"] = str(listening)
    assert one_line(run("serve", "--with-simulators", env=env)) == (
        f"gateway: simulator ach_nacha cannot listen on 127.0.0.1:{listening}: Address already in use "
        "(is another `gateway serve` running?); move it with GATEWAY_SIMULATORS__ACH_NACHA__PORT=0 (any free port) "
        f"or simulators.ach_nacha.port in {DEFAULT_CONFIG}"
    )


def test_environment_settings_move_the_gateway_and_every_simulator(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}",
        "GATEWAY_PORT": "0",
        **{
            f"GATEWAY_SIMULATORS__{n}__PORT": "0"
            for n in ("ISO20022_BANK", "CARD_ACQUIRER", "INSTANT_RTP", "ACH_NACHA")
        },
        "GATEWAY_PARTNERS__ACH_NACHA__SPOOL_DIR": str(tmp_path / "ach"),
    }
    assert run("db", "upgrade", env=env).returncode == 0
    proc = subprocess.Popen(
        [*GATEWAY, "serve", "--with-simulators"], env=env, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(5)]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            tail = proc.communicate()[1][-2000:]
            pytest.fail(f"gateway serve did not stop within 30 s of SIGINT; its stderr ends: {tail}")
    assert proc.returncode == 0  # a SIGINT sent on reading "listening" stops it cleanly (its handler is already set)
    assert lines[0].startswith("Partner Gateway listening on http://127.0.0.1:") and ":0\n" not in lines[0]
    started = sorted(line.split()[1] for line in lines[1:])
    assert started == ["ach_nacha", "card_acquirer", "instant_rtp", "iso20022_bank"]
    assert all(":870" not in line for line in lines[1:]), lines  # none on its configured port


# -- 9. running gateway in another folder leaves nothing there -----------------------------------------------------


def test_commands_run_in_an_empty_folder_leave_nothing_there(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    instruction = tmp_path / "eur.json"
    instruction.write_text(json.dumps(example_instruction()))
    missing = elsewhere / "var" / "gateway.db"
    for args in (["keys", "create", "--business-unit", "erp"], ["serve"], ["contracts", "pin", "erp", "1.1"]):
        assert one_line(run(*args, cwd=elsewhere)) == (
            f"gateway: no database at {missing} (database.url from {DEFAULT_CONFIG}): run `gateway db upgrade` first"
        )
    for args in (["route", "explain", str(instruction)], ["adapters", "list"], ["docs", "api", "--output", "-"]):
        assert run(*args, cwd=elsewhere).returncode == 0
    assert list(elsewhere.iterdir()) == []


def test_config_and_verbose_work_before_or_after_the_command(sqlite_config: Path) -> None:
    before = run("--config", str(sqlite_config), "keys", "create", "--business-unit", "erp")
    after = run("keys", "create", "--business-unit", "erp", "--config", str(sqlite_config), "-v")
    middle = run("keys", "--config", str(sqlite_config), "create", "--business-unit", "erp")
    for result in (before, after, middle):
        assert result.returncode == 0 and result.stdout.startswith("pgw_"), result.stderr
    assert len({before.stdout, after.stdout, middle.stdout}) == 3  # three runs, three keys, one database


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "a.yaml", "-v", "db", "upgrade"],
        ["db", "upgrade", "--config", "a.yaml", "-v"],
        ["-v", "db", "--config", "a.yaml", "upgrade"],
        ["--config", "other.yaml", "db", "upgrade", "-v", "--config", "a.yaml"],
    ],
)
def test_common_options_parse_anywhere(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.config == "a.yaml" and args.verbose is True and args.func is upgrade_command
    plain = build_parser().parse_args(["db", "upgrade"])
    assert getattr(plain, "config", None) is None and not getattr(plain, "verbose", False)
