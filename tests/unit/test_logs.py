"""Logging set-up: text or json, GATEWAY_LOG_FORMAT, and -v that never floods the screen with SQL."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.logs import QUIET_LOGGERS, configure_logging
from gateway.store.db import create_engine

_FLAGS = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``configure_logging`` changes process-wide state: put it back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    flags = {name: getattr(logging, name) for name in _FLAGS}
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, value in flags.items():
            setattr(logging, name, value)
        for name, old in quiet.items():
            logging.getLogger(name).setLevel(old)


def test_json_lines_carry_time_level_logger_message_and_extras(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("json", stream=out)
    logging.getLogger("gateway.test").info("instruction %s moved", "ins_1", extra={"instruction_id": "ins_1"})
    logging.getLogger("gateway.test").debug("not at info level")
    (line,) = out.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "INFO" and doc["logger"] == "gateway.test"
    assert doc["message"] == "instruction ins_1 moved"
    assert doc["instruction_id"] == "ins_1"
    assert doc["time"].endswith("+00:00")


def test_text_is_the_default_and_a_second_call_replaces_the_first(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_LOG_FORMAT", raising=False)
    first, second = io.StringIO(), io.StringIO()
    configure_logging(stream=first)
    configure_logging(stream=second)
    logging.getLogger("gateway.test").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("WARNING gateway.test: once")


def test_the_environment_chooses_the_format_and_a_bad_one_is_named(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.StringIO()
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "json")
    configure_logging(None, stream=out)
    logging.getLogger("gateway.test").warning("hello")
    assert json.loads(out.getvalue())["message"] == "hello"
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="GATEWAY_LOG_FORMAT: unknown log format 'xml'; choose text or json"):
        configure_logging(None)


def test_a_bad_log_format_from_the_environment_is_exit_code_2_with_one_line(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_LOG_FORMAT", "yaml")
    assert main(["adapters", "list", "--json"]) == 2
    err = capsys.readouterr().err
    assert err == "gateway: GATEWAY_LOG_FORMAT: unknown log format 'yaml'; choose text or json\n"


async def test_verbose_shows_the_gateway_debug_lines_but_no_sql(restore_logging: None, tmp_path: Path) -> None:
    out = io.StringIO()
    configure_logging("text", verbose=True, stream=out)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (a INTEGER)"))
            await conn.execute(text("SELECT a FROM t"))
    finally:
        await engine.dispose()
    logging.getLogger("gateway.test").debug("a debug line")
    lines = out.getvalue().splitlines()
    assert any(line.endswith("DEBUG gateway.test: a debug line") for line in lines)
    assert not [line for line in lines if "SELECT" in line or "aiosqlite" in line or "sqlalchemy" in line]
