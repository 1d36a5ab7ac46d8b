"""The event stream of a run: schema, writer, tolerant reader and the reducer.

This module is pure Python (no torch, no transformers, no textual) because the
TUI imports it. ``events.jsonl`` in a run directory is append-only, one JSON
object per line, flushed per event. Every event carries ``v`` (schema version),
``type`` and ``time`` (UNIX seconds); the other keys depend on the type:

``run_started``   run_dir, pid, host, world_size, devices (list[str]), num_params,
                  trainable_params, max_steps, num_train_epochs, train_samples,
                  eval_samples, block_size, resumed_from (checkpoint path or None),
                  resume_step (int or None), settings (dict summary)
``phase``         phase (one of PHASES), progress (0..1 or None), detail (str)
``train_log``     step, epoch, loss, learning_rate, grad_norm, tokens_per_second,
                  samples_per_second, eta_seconds (any may be None)
``eval``          step, epoch, metrics (dict of eval_* floats, incl. eval_loss,
                  eval_accuracy when computed, and perplexity)
``memory``        step, devices (list of dicts: index, name, allocated, reserved,
                  peak_allocated, used, total; bytes), process_rss, system_used,
                  system_total (bytes; None when unknown)
``checkpoint``    step, path, complete (bool)
``warning``       code (short slug), message
``log``           message (free text from the worker, e.g. a library warning)
``final_metrics`` split ("train" | "eval"), metrics (dict)
``run_finished``  status (completed | stopped | failed), error, hint
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"

PHASES = (
    "starting",
    "loading_model",
    "loading_data",
    "tokenizing",
    "grouping",
    "training",
    "evaluating",
    "saving",
    "finished",
)

EVENT_TYPES = (
    "run_started",
    "phase",
    "train_log",
    "eval",
    "memory",
    "checkpoint",
    "warning",
    "log",
    "final_metrics",
    "run_finished",
)

Event = dict[str, Any]
Emit = Callable[[Event], None]


def make_event(type_: str, **fields: Any) -> Event:
    """Build an event dict with the version, type and timestamp filled in."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    return {"v": SCHEMA_VERSION, "type": type_, "time": time.time(), **fields}


def _json_default(value: Any) -> Any:
    # numpy / torch scalars and paths show up in metrics dicts; keep the writer total.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _sanitize(value: Any) -> Any:
    """Replace NaN/inf by strings so every line is strict JSON that any reader parses."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


def to_float(value: Any) -> float | None:
    """Read a number written by :class:`EventWriter` back (``"nan"``/``"inf"`` included)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def perplexity(loss: float | None) -> float | None:
    """exp(loss), ``inf`` on overflow, None without a loss (the one definition for all)."""
    if loss is None:
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def read_json(path: str | os.PathLike[str]) -> Any:
    """A small JSON file's content, or None when it is missing, unreadable or torn."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


class EventWriter:
    """Append events to ``events.jsonl``; one ``write`` + ``flush`` per event.

    Each event is written as a single ``write`` of one full line so a reader
    never sees two half events interleaved; a writer killed mid-write leaves at
    most one torn last line, which :class:`EventTailer` skips.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        # The worker emits from the training thread and the memory thread.
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        """Write one event (built with :func:`make_event`)."""
        if self._fh is None:
            return
        line = json.dumps(_sanitize(event), default=_json_default, separators=(",", ":"))
        with self._lock:
            if self._fh is None:
                return
            self._fh.write(line + "\n")
            self._fh.flush()

    def __call__(self, event: Event) -> None:
        self.emit(event)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventTailer:
    """Incremental reader of an events file that may still be growing.

    ``read_new()`` returns the complete events appended since the last call.
    It tolerates a file that does not exist yet, a partial last line (kept
    until its newline arrives) and lines that are not valid JSON (skipped and
    counted in ``bad_lines``).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""
        self.bad_lines = 0

    def read_new(self) -> list[Event]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        if not chunk:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the chunk ended on a newline
        events: list[Event] = []
        for raw in lines:
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except ValueError:
                self.bad_lines += 1
                continue
            if isinstance(obj, dict) and "type" in obj:
                events.append(obj)
            else:
                self.bad_lines += 1
        return events

    def read_final(self) -> list[Event]:
        """Like :meth:`read_new`, then also parse a last line without newline if valid."""
        events = self.read_new()
        if self._partial.strip():
            try:
                obj = json.loads(self._partial)
            except ValueError:
                self.bad_lines += 1  # torn by a killed writer
            else:
                if isinstance(obj, dict) and "type" in obj:
                    events.append(obj)
            self._partial = b""
        return events


def read_events(path: str | os.PathLike[str]) -> list[Event]:
    """Every readable event of a (finished or live) events file."""
    return EventTailer(path).read_final()


def iter_events(run_dir: str | os.PathLike[str]) -> Iterator[Event]:
    yield from read_events(Path(run_dir) / EVENTS_FILE)


@dataclass
class CheckpointMark:
    step: int
    path: str
    complete: bool
    time: float


@dataclass
class RunView:
    """Everything a dashboard draws, reduced from events. Live and past runs alike.

    Histories are plain lists of floats (``train_steps[i]`` ↔ ``train_loss[i]``)
    so a chart can thin them without copying dicts.
    """

    started: Event | None = None
    status: str = "unknown"  # running | completed | stopped | failed (crashed is decided by runs)
    phase: str = "starting"
    phase_progress: float | None = None
    phase_detail: str = ""
    step: int = 0
    epoch: float | None = None
    max_steps: int | None = None
    train_steps: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    lr_steps: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    tokens_per_second: float | None = None
    samples_per_second: float | None = None
    eta_seconds: float | None = None
    eval_steps: list[float] = field(default_factory=list)
    eval_loss: list[float] = field(default_factory=list)
    eval_accuracy: list[float] = field(default_factory=list)
    last_eval: dict[str, Any] = field(default_factory=dict)
    memory: list[Event] = field(default_factory=list)
    checkpoints: list[CheckpointMark] = field(default_factory=list)
    warnings: list[Event] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    final_metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    last_event_time: float | None = None
    nan_loss_steps: list[int] = field(default_factory=list)

    max_memory_samples: int = 600
    max_logs: int = 500

    @property
    def last_loss(self) -> float | None:
        return self.train_loss[-1] if self.train_loss else None

    @property
    def best_eval_loss(self) -> float | None:
        finite = [x for x in self.eval_loss if math.isfinite(x)]
        return min(finite) if finite else None

    @property
    def perplexity(self) -> float | None:
        for src in (self.final_metrics.get("eval", {}), self.last_eval):
            value = to_float(src.get("perplexity"))
            if value is not None:
                return value
        return None

    def apply(self, event: Event) -> None:
        """Fold one event into the view. Unknown types are ignored (forward compatible)."""
        kind = event.get("type")
        t = to_float(event.get("time"))
        if t is not None:
            self.last_event_time = t
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(event)

    def apply_all(self, events: list[Event]) -> None:
        for event in events:
            self.apply(event)

    def _on_run_started(self, e: Event) -> None:
        self.started = e
        self.status = "running"
        self.start_time = to_float(e.get("time"))
        self.end_time = None
        self.error = self.hint = None
        if e.get("max_steps") is not None:
            self.max_steps = int(e["max_steps"])
        resume_step = e.get("resume_step")
        if resume_step is not None:
            # A resumed run re-logs the steps after its checkpoint: drop the stale tail.
            self._truncate_after(int(resume_step))
        else:
            self._truncate_after(-1)

    def _truncate_after(self, step: int) -> None:
        def keep(steps: list[float], *series: list[float]) -> None:
            n = sum(1 for s in steps if s <= step)
            del steps[n:]
            for values in series:
                del values[n:]

        keep(self.train_steps, self.train_loss)
        keep(self.lr_steps, self.learning_rate, self.grad_norm)
        keep(self.eval_steps, self.eval_loss, self.eval_accuracy)
        self.nan_loss_steps = [s for s in self.nan_loss_steps if s <= step]
        self.step = max(step, 0)
        self.final_metrics = {}

    def _on_phase(self, e: Event) -> None:
        self.phase = str(e.get("phase", self.phase))
        self.phase_progress = to_float(e.get("progress"))
        self.phase_detail = str(e.get("detail") or "")
        if self.status == "unknown":
            self.status = "running"

    def _on_train_log(self, e: Event) -> None:
        step = int(e.get("step") or 0)
        self.step = max(self.step, step)
        self.epoch = to_float(e.get("epoch"))
        loss = to_float(e.get("loss"))
        if loss is not None:
            self.train_steps.append(step)
            self.train_loss.append(loss)
            if not math.isfinite(loss):
                self.nan_loss_steps.append(step)
        lr = to_float(e.get("learning_rate"))
        if lr is not None:
            self.lr_steps.append(step)
            self.learning_rate.append(lr)
            gn = to_float(e.get("grad_norm"))
            self.grad_norm.append(gn if gn is not None else math.nan)
        for name in ("tokens_per_second", "samples_per_second", "eta_seconds"):
            value = to_float(e.get(name))
            if value is not None:
                setattr(self, name, value)

    def _on_eval(self, e: Event) -> None:
        metrics = dict(e.get("metrics") or {})
        step = int(e.get("step") or self.step)
        self.step = max(self.step, step)
        self.last_eval = {"step": step, **metrics}
        loss = to_float(metrics.get("eval_loss"))
        if loss is not None:
            self.eval_steps.append(step)
            self.eval_loss.append(loss)
            acc = to_float(metrics.get("eval_accuracy"))
            self.eval_accuracy.append(acc if acc is not None else math.nan)

    def _on_memory(self, e: Event) -> None:
        self.memory.append(e)
        if len(self.memory) > self.max_memory_samples:
            del self.memory[: len(self.memory) - self.max_memory_samples]

    def _on_checkpoint(self, e: Event) -> None:
        mark = CheckpointMark(
            step=int(e.get("step") or 0),
            path=str(e.get("path") or ""),
            complete=bool(e.get("complete")),
            time=to_float(e.get("time")) or 0.0,
        )
        self.checkpoints = [c for c in self.checkpoints if c.path != mark.path] + [mark]
        # A step that was saved (e.g. the stop step) was trained even if it was not logged.
        self.step = max(self.step, mark.step)

    def _on_warning(self, e: Event) -> None:
        self.warnings.append(e)

    def _on_log(self, e: Event) -> None:
        self.logs.append(str(e.get("message", "")))
        if len(self.logs) > self.max_logs:
            del self.logs[: len(self.logs) - self.max_logs]

    def _on_final_metrics(self, e: Event) -> None:
        split = str(e.get("split") or "train")
        self.final_metrics[split] = dict(e.get("metrics") or {})

    def _on_run_finished(self, e: Event) -> None:
        self.status = str(e.get("status") or "completed")
        self.error = e.get("error")
        self.hint = e.get("hint")
        self.end_time = to_float(e.get("time"))
        self.phase = "finished"
        self.phase_progress = None


def reduce_events(events: list[Event]) -> RunView:
    """Build a :class:`RunView` from a list of events."""
    view = RunView()
    view.apply_all(events)
    return view
