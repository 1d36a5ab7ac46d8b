"""Helpers shared by the run-protocol tests: configs on disk, the CLI as a subprocess,
waiting on files and events a worker writes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clmtune.backend.events import EVENTS_FILE, Event, read_events
from clmtune.backend.rundir.layout import read_run_json
from clmtune.backend.rundir.summary import read_run
from clmtune.backend.settings.toml_io import save_config
from tests.fixtures import make_tiny_config

REPO = Path(__file__).resolve().parent.parent
DRILL_HOOKS = f"{REPO / 'tests' / 'drill_hooks.py'}:make_callbacks"


def write_config(dest: Path, assets: Any, **training: Any) -> Path:
    """A tiny run's TOML file at ``dest``."""
    save_config(make_tiny_config(assets, **training), dest)
    return dest


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def clmtune(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run ``clmtune ARGS`` (as ``python -m clmtune.backend.cli``) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "clmtune.backend.cli", *args],
        cwd=cwd,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 120, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (the files are the events here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def events_of(run_dir: Path) -> list[Event]:
    return read_events(run_dir / EVENTS_FILE)


def wait_for_event(
    run_dir: Path, predicate: Callable[[Event], bool], timeout: float = 120, what: str = "event"
) -> Event:
    def find() -> Event | None:
        return next((e for e in events_of(run_dir) if predicate(e)), None)

    return wait_for(find, timeout, what)


def wait_finished(run_dir: Path, timeout: float = 180) -> str:
    """Wait until the run is no longer running; returns its status."""
    return wait_for(
        lambda: (s := read_run(run_dir).status) != "running" and s,
        timeout,
        f"{run_dir.name} to finish",
    )


def losses_by_step(events: list[Event], *, last_segment: bool = True) -> dict[int, float]:
    """Logged training loss per step (of the last start of the run, by default)."""
    if last_segment:
        starts = [i for i, e in enumerate(events) if e.get("type") == "run_started"]
        if starts:
            events = events[starts[-1] :]
    return {
        int(e["step"]): float(e["loss"])
        for e in events
        if e.get("type") == "train_log" and e.get("loss") is not None
    }


def worker_pgid(run_dir: Path) -> int:
    info = wait_for(lambda: read_run_json(run_dir).get("worker_pid") and read_run_json(run_dir))
    return int(info["pgid"])
