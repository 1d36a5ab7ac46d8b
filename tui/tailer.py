"""Follow a run directory from a Textual thread worker.

One :class:`RunFollower` per open live screen. Each poll it reads the events appended
to ``events.jsonl`` (the backend's tolerant :class:`~backend.events.EventTailer`), the
new lines of ``logs/worker.err`` (shown as ``log`` events with ``source`` set) and,
every few seconds, the status in ``run.json`` (which turns a vanished worker into
``crashed``). It only ever calls ``post`` (``post_message``): never a widget, never
``call_from_thread``, so a slow UI cannot stall it and it cannot stall training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.message import Message

from clmtune.backend.events import EVENTS_FILE, EventTailer
from clmtune.tui.messages import EventsArrived, RunStatusChanged

WORKER_ERR = Path("logs") / "worker.err"
ERR_REPLAY_BYTES = 16 * 1024  # on attach, show only the tail of a long stderr
MAX_BATCH = 5000  # keep one message's fold short enough to leave the UI responsive


class TextTailer:
    """Complete new lines of a growing text file, starting near its end."""

    def __init__(self, path: Path, replay_bytes: int = ERR_REPLAY_BYTES) -> None:
        self.path = path
        self.replay_bytes = replay_bytes
        self._offset: int | None = None
        self._partial = b""

    def read_new(self) -> list[str]:
        try:
            with open(self.path, "rb") as fh:
                if self._offset is None:
                    size = fh.seek(0, 2)
                    self._offset = max(size - self.replay_bytes, 0)
                    skip_first = self._offset > 0  # landed mid-line
                else:
                    skip_first = False
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        if skip_first and lines:
            lines = lines[1:]
        return [ln.decode("utf-8", "replace").rstrip() for ln in lines if ln.strip()]


def _read_status(run_dir: Path) -> tuple[str, str | None, str | None] | None:
    """(status, error, hint) from run.json; ``crashed`` when a running worker is gone.

    Reads run.json only (not ``backend.rundir.summary.read_run``, which replays the whole
    events file: too much every two seconds for a 100k-step run).
    """
    # Imported here: keeps the runs screen's startup lean.
    from clmtune.backend.rundir.layout import STATUSES, read_run_json, run_process_alive

    if not run_dir.is_dir():  # deleted elsewhere (another dashboard, a shell)
        return ("deleted", f"{run_dir} no longer exists: the run folder was deleted "
                "elsewhere; nothing more will arrive", "escape goes back to the runs list")

    info = read_run_json(run_dir)
    status = info.get("status")
    if status not in STATUSES:
        return None
    if status == "running" and run_process_alive(info) is False:
        status = "crashed"
    return status, info.get("error"), info.get("hint")


class RunFollower:
    """Poll one run dir and post :class:`EventsArrived` / :class:`RunStatusChanged`."""

    def __init__(
        self,
        run_dir: Path,
        post: Callable[[Message], Any],
        *,
        poll_s: float = 0.3,
        status_every_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        status_reader: Callable[[Path], tuple[str, str | None, str | None] | None] = _read_status,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.post = post
        self.poll_s = poll_s
        self.status_every_s = status_every_s
        self.clock = clock
        self.status_reader = status_reader
        self.events = EventTailer(self.run_dir / EVENTS_FILE)
        self.err = TextTailer(self.run_dir / WORKER_ERR)
        self._last_status: tuple[str, str | None, str | None] | None = None
        self._next_status = 0.0

    def poll_once(self) -> int:
        """Read what is new and post it; returns the number of events posted."""
        batch: list[dict[str, Any]] = self.events.read_new()
        batch += [
            {"type": "log", "source": "worker.err", "message": line}
            for line in self.err.read_new()
        ]
        for i in range(0, len(batch), MAX_BATCH):
            self.post(EventsArrived(self.run_dir, batch[i : i + MAX_BATCH]))
        now = self.clock()
        if now >= self._next_status:
            self._next_status = now + self.status_every_s
            status = self.status_reader(self.run_dir)
            if status is not None and status != self._last_status:
                self._last_status = status
                self.post(RunStatusChanged(self.run_dir, *status))
        return len(batch)

    def run(
        self, is_cancelled: Callable[[], bool], sleep: Callable[[float], Any] = time.sleep
    ) -> None:
        """Follow until ``is_cancelled()``; the flag is checked every poll."""
        while not is_cancelled():
            self.poll_once()
            sleep(self.poll_s)
