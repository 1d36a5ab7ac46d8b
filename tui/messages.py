"""App-wide messages. Background threads talk to the UI only through these.

The editor helper may append its own messages at the end of this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class EventsArrived(Message):
    """A batch of new events read from a run's events.jsonl (never replaced: no point is lost)."""

    run_dir: Path
    events: list[dict[str, Any]]


@dataclass
class RunsRefreshed(Message):
    """A fresh listing of the runs folder (only the newest pending one matters)."""

    runs: list[Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunsRefreshed)


@dataclass
class RunStatusChanged(Message):
    """The status in run.json (``crashed``: the worker is gone; ``deleted``: the run folder)."""

    run_dir: Path
    status: str
    error: str | None = None
    hint: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, RunStatusChanged) and message.run_dir == self.run_dir


@dataclass
class CheckpointsListed(Message):
    """The checkpoints of a run as classified on disk (``rundir.checkpoints.list_checkpoints``)."""

    run_dir: Path
    checkpoints: list[Any]

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CheckpointsListed) and message.run_dir == self.run_dir


@dataclass
class StartRunRequested(Message):
    """Start a run from a saved TOML (run_dir None: a fresh dir under the runs folder)."""

    config_path: Path
    run_dir: Path | None = None


@dataclass
class ResumeRequested(Message):
    """Resume ``run_dir`` from one of its complete checkpoints (``max_steps``: train further)."""

    run_dir: Path
    checkpoint: Path
    max_steps: int | None = None


@dataclass
class StopRequested(Message):
    """Ask the run's worker to save a checkpoint and stop at the next step."""

    run_dir: Path


@dataclass
class LaunchFailed(Message):
    """Starting or resuming a run failed; ``message`` is the one-line reason."""

    message: str
