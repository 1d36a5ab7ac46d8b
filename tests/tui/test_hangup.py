"""The dashboard exits when its terminal disappears, even when no SIGHUP is sent."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clmtune.tui import terminal


def _read_until_drawn(master: int, *, want_bytes: int = 2000, limit_s: float = 60.0) -> int:
    seen = 0
    deadline = time.monotonic() + limit_s
    while seen < want_bytes and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            seen += len(os.read(master, 65536))
    return seen


def test_a_dashboard_whose_terminal_is_gone_exits_instead_of_spinning(tmp_path: Path) -> None:
    # A new session without a controlling terminal: closing the pty sends it no SIGHUP,
    # as for a dashboard re-parented or nohup-ed after its terminal's owner was killed.
    exe = shutil.which("clmtune-tui")
    command = [exe] if exe else [sys.executable, "-m", "clmtune.tui.app"]
    master, slave = pty.openpty()
    proc = subprocess.Popen([*command, str(tmp_path / "runs")], cwd=tmp_path, stdin=slave,
                            stdout=slave, stderr=slave, start_new_session=True,
                            env={**os.environ, "TERM": "xterm-256color"})
    os.close(slave)
    try:
        assert _read_until_drawn(master) >= 2000, "the dashboard never drew"
        os.close(master)
        master = -1
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("clmtune-tui kept running after its terminal was closed")
        assert code == terminal.HANGUP_EXIT_CODE
    finally:
        if master >= 0:
            os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_no_watch_without_a_terminal(tmp_path: Path) -> None:
    with open(tmp_path / "not-a-tty", "w") as handle:
        assert terminal.exit_on_hangup(object(), handle.fileno()) is None  # type: ignore[arg-type]


def test_without_a_terminal_it_refuses_in_one_line(tmp_path: Path) -> None:
    # cron, nohup or `< /dev/null`: Textual would read end-of-file in a loop for ever.
    exe = shutil.which("clmtune-tui")
    command = [exe] if exe else [sys.executable, "-m", "clmtune.tui.app"]
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_DRIVER"}
    done = subprocess.run([*command, str(tmp_path / "runs")], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "needs a terminal" in done.stderr and done.stdout == ""
