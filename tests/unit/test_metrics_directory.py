"""The directory the processes of one gateway share their metrics in: made fresh, and the dead ones' swept."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from gateway.metrics import new_shared_directory


def test_a_new_directory_is_named_after_this_process_and_the_ended_gateways_ones_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    stale = tmp_path / f"gateway-metrics-{dead_pid}-abc"
    stale.mkdir()
    (stale / "counter_1.db").write_bytes(b"\0" * 16)
    running = tmp_path / f"gateway-metrics-{os.getppid()}-def"  # a gateway still running: left alone
    running.mkdir()
    unrelated = tmp_path / "gateway-metrics-notes"
    unrelated.mkdir()

    made = new_shared_directory()

    assert made.parent == tmp_path and made.name.startswith(f"gateway-metrics-{os.getpid()}-")
    assert made.is_dir() and not any(made.iterdir())
    assert not stale.exists()
    assert running.is_dir() and unrelated.is_dir()
    assert new_shared_directory() != made  # each gateway its own
