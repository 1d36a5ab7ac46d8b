"""The worker's OpenMP wait policy (issue 16): chosen from the other runnable threads at launch,
where this process and clmtune dashboards do not count (a dashboard's start-up burst once gave a
run PASSIVE waits and half its speed)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from clmtune.backend import launch

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux /proc only")

SPIN = "while True: pass"


def _spinner(argv0: Path | str) -> subprocess.Popen:
    return subprocess.Popen([str(argv0), "-c", SPIN])


def _wait_runnable(pid: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = launch._runnable_threads(pid)
        if count:
            return count
        time.sleep(0.05)
    return 0


@pytest.mark.parametrize(
    ("cmdline", "quiet"),
    [
        (b"/venv/bin/python\0/venv/bin/clmtune-tui\0runs\0", True),
        (b"clmtune-tui\0", True),
        (b"python3\0-m\0clmtune.tui\0", True),
        (b"/venv/bin/python\0/venv/bin/clmtune\0train\0a.toml\0", False),
        (b"python\0-m\0clmtune.backend.worker\0runs/a\0", False),
        (b"python\0-c\0print('clmtune-tui')\0", False),
        (b"/usr/bin/my-clmtune-tui-fork\0", False),
    ],
)
def test_which_programs_are_quiet(cmdline, quiet):
    assert launch._is_quiet_program(cmdline) is quiet


def test_a_dashboard_does_not_count_as_load_and_other_work_does(tmp_path):
    # A real busy process whose command line is a dashboard's (the console script's name),
    # and the same busy loop under its usual name.
    dashboard = tmp_path / "bin" / "clmtune-tui"
    dashboard.parent.mkdir()
    dashboard.symlink_to(sys.executable)
    quiet, busy = _spinner(dashboard), _spinner(sys.executable)
    try:
        assert _wait_runnable(quiet.pid) == 1 and _wait_runnable(busy.pid) == 1
        pids = launch._quiet_pids()
        assert pids[0] == launch.os.getpid()
        assert quiet.pid in pids and busy.pid not in pids
        # This process: at least the reading thread is runnable while it reads.
        assert launch._runnable_threads(launch.os.getpid()) >= 1
    finally:
        for proc in (quiet, busy):
            proc.kill()
            proc.wait()
    assert launch._runnable_threads(quiet.pid) == 0  # gone


def test_a_user_value_always_wins(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setattr(launch, "_others_runnable", lambda: 99.0)
    assert launch._worker_env()["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert launch._worker_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setattr(launch, "_others_runnable", lambda: 0.0)
    assert "OMP_WAIT_POLICY" not in launch._worker_env()
