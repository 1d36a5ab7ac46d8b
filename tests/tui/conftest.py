"""Shared fixtures of the TUI tests: private config dir, UTC, frozen clock, recorded runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from clmtune.backend.events import EventWriter, read_events
from tests.tui.make_recordings import DATA, T0

FROZEN_NOW = T0 + 3600.0  # an hour after the recordings start


def frozen_clock() -> float:
    return FROZEN_NOW


@pytest.fixture(autouse=True)
def _tui_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never read or write the user's ~/.config; format times in UTC; UTF-8, colours."""
    monkeypatch.setenv("CLMTUNE_CONFIG_DIR", str(tmp_path_factory.mktemp("clmtune-config")))
    monkeypatch.setenv("TZ", "UTC")
    # Draw as on a UTF-8 terminal whatever TERM/locale the test runner has (tui.terminal).
    monkeypatch.setenv("CLMTUNE_ASCII", "0")
    monkeypatch.delenv("NO_COLOR", raising=False)
    time.tzset()
    yield
    time.tzset()


def recording(name: str, shift: float = 0.0) -> list[dict[str, Any]]:
    """The events of a recorded file, their times shifted by ``shift`` seconds."""
    events = read_events(DATA / f"{name}.jsonl")
    for event in events:
        if isinstance(event.get("time"), (int, float)):
            event["time"] += shift
    return events


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def recorded_run(
    root: Path, name: str, rec: str, *, shift: float = 0.0, status: str | None = None,
    pid: int | None = None, err: str = "", host: str | None = None,
) -> Path:
    """A hand-made run dir: a recorded events.jsonl, a run.json, logs/worker.err.

    ``status`` None writes no run.json (events only). The recordings are dated
    2023, so a live local pid would look reused (born after the run started): a
    "running" run is recorded on another host (its pid cannot be checked, so it stays
    running) unless ``pid`` is given, which is checked on this host (crashed when dead).
    """
    run_dir = root / name
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    with EventWriter(run_dir / "events.jsonl") as writer:
        for event in recording(rec, shift):
            writer.emit(event)
    (run_dir / "logs" / "worker.err").write_text(err)
    (run_dir / "config.toml").write_text('[model]\nmodel_name_or_path = "tiny-gpt2"\n')
    if status is not None:
        events = recording(rec, shift)
        info: dict[str, Any] = {
            "status": status,
            "pid": pid if pid is not None else 4242,
            "host": host or (socket.gethostname() if pid is not None else "gpu-box"),
            "start_time": events[0]["time"],
        }
        if status != "running":
            info["end_time"] = events[-1]["time"]
        finished = [e for e in events if e["type"] == "run_finished"]
        if finished:
            info["error"], info["hint"] = finished[-1].get("error"), finished[-1].get("hint")
        (run_dir / "run.json").write_text(json.dumps(info))
    return run_dir


def standard_runs(root: Path) -> dict[str, Path]:
    """Four runs covering every status the runs screen colours."""
    return {
        "completed": recorded_run(root, "demo-completed", "completed", shift=-7200,
                                  status="completed"),
        "running": recorded_run(root, "gpt2-live", "running_gpu", shift=0, status="running"),
        "failed": recorded_run(root, "big-oom", "failed", shift=-5400, status="failed"),
        "crashed": recorded_run(root, "lost-worker", "running_gpu", shift=-3000,
                                status="running", pid=dead_pid()),
    }


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


async def wait_until(pilot: Any, condition: Any, timeout: float = 10.0) -> None:
    """Let the app process messages until ``condition()`` holds (thread workers, files)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await pilot.pause(0.05)


def _zip(path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data.pkl", b"x")


def fake_checkpoint(run_dir: Path, step: int, *, complete: bool = True,
                    eval_loss: float | None = None, mtime: float | None = None) -> Path:
    """A checkpoint-N dir that backend.rundir classifies as complete (or partial).

    Only the file layout Trainer writes (intact safetensors header, zip archives
    for the torch pickles, trainer_state.json, the completion marker): no torch.
    """
    import struct

    ckpt = run_dir / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    (ckpt / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    (ckpt / "config.json").write_text("{}")
    if not complete:
        return ckpt
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        _zip(ckpt / name)
    history = [{"step": step, "eval_loss": eval_loss}] if eval_loss is not None else []
    (ckpt / "trainer_state.json").write_text(
        json.dumps({"global_step": step, "log_history": history, "train_batch_size": 8})
    )
    (ckpt / ".clmtune-complete").write_text(json.dumps({"world_size": 1}))
    if mtime is not None:  # the table shows the save time: keep snapshots stable
        os.utime(ckpt / ".clmtune-complete", (mtime, mtime))
    return ckpt


@pytest.fixture
def anyio_backend() -> str:
    """Async Pilot tests run on asyncio through anyio's pytest plugin (mark: anyio)."""
    return "asyncio"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The editor tests' folder: a valid run.toml, a (stub) local model and a training text."""
    from tests.tui.editor_harness import make_project

    monkeypatch.chdir(tmp_path)
    return make_project(tmp_path)
