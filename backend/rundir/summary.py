"""One run's summary: :class:`RunSummary` and :func:`read_run` (events folded, cached).

Every figure of a :class:`RunSummary` comes from the one reducer
(:mod:`clmtune.backend.rundir.state`): the run's events folded into a
:class:`~clmtune.backend.rundir.state.RunState`, or for a plain Hugging Face folder its
``trainer_state.json`` turned into the same events. ``run.json`` adds what only it
knows (the status when events are missing, pid and host, the final step).

In a process, a growing ``events.jsonl`` is folded from where the last call stopped,
and checkpoint classifications and parsed files are kept while their stat holds
(:mod:`.cache`). The folder listing (and its cache across processes) is
:mod:`.listing`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.events import (
    EVENTS_FILE,
    Event,
    EventTailer,
    _sanitize,
    as_text,
    read_json,
    to_float,
    to_int,
)
from clmtune.backend.rundir import cache
from clmtune.backend.rundir.checkpoints import CheckpointInfo, list_checkpoints
from clmtune.backend.rundir.layout import (
    CONFIG_TOML,
    RESULT_FILES,
    STATUSES,
    TRAINER_STATE,
    RunError,
    _read_toml,
    is_run_dir,
    read_run_json,
    run_process_alive,
)

if TYPE_CHECKING:
    from clmtune.backend.rundir.state import RunState

LOSS_LAST_TRAIN = "last train log"  # rundir.state's; summaries from the cache skip that module


@dataclass
class RunSummary:
    """What a run list or a run detail view shows about one run directory.

    ``loss`` is the headline loss and ``loss_kind`` says which one it is ("last train
    log", "mean train loss", "last eval"); ``last_loss`` is always the last train log.
    ``duration`` and ``started`` cover every attempt of a resumed run. ``eta`` is None
    unless the run is running. ``nan_flag`` is a one-line badge when the loss became
    NaN/inf. ``controllable``: Stop / Resume apply (False for a plain HF folder).
    ``state`` is the folded state (None when the summary came from the listing cache).
    """

    path: Path
    name: str
    status: str
    model: str | None = None
    global_step: int = 0
    max_steps: int | None = None
    loss: float | None = None
    loss_kind: str = LOSS_LAST_TRAIN
    last_loss: float | None = None
    mean_train_loss: float | None = None
    last_eval_loss: float | None = None
    best_eval_loss: float | None = None
    perplexity: float | None = None  # the last evaluation's (run_clm's final perplexity)
    best_perplexity: float | None = None  # exp(best_eval_loss)
    started: float | None = None
    ended: float | None = None
    duration: float | None = None
    eta: float | None = None
    attempts: int = 0
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    world_size: int = 1
    pid: int | None = None
    host: str | None = None
    metrics: dict[str, dict] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    nan_flag: str | None = None
    resumed_from: str | None = None
    train_samples: int | None = None
    samples_per_second: float | None = None
    source: str = "clmtune"
    trainable: str | None = None  # RunState.trainable: trainable params (and LoRA rank)
    state: RunState | None = field(default=None, repr=False, compare=False)

    @property
    def controllable(self) -> bool:
        """Whether Stop / Resume apply (a plain Hugging Face folder has no worker)."""
        return self.source == "clmtune"

    @property
    def loss_label(self) -> str:
        """``loss (last train log)`` and the like: the name to show next to ``loss``."""
        return f"loss ({self.loss_kind})"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (paths as strings, NaN/inf as strings).

        Computed once per summary: a summary is a snapshot, not edited after listing.
        """
        memo = self.__dict__.get("_json")
        if memo is not None:
            return memo
        data = {name: getattr(self, name) for name in _JSON_FIELDS}
        data["path"] = str(self.path)
        data["checkpoints"] = [c.to_json() for c in self.checkpoints]
        data["controllable"] = self.controllable
        data["loss_label"] = self.loss_label
        memo = _sanitize(json.loads(json.dumps(data, default=str)))
        self.__dict__["_json"] = memo
        return memo

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSummary:
        """The inverse of :meth:`to_json` (the listing cache)."""
        values = {k: data.get(k) for k in _JSON_FIELDS if k in data}
        values["path"] = Path(data["path"])
        values["checkpoints"] = [_checkpoint_from_json(c) for c in data.get("checkpoints", [])]
        for key in _FLOAT_FIELDS:
            values[key] = to_float(values.get(key))
        summary = cls(**values)
        summary.__dict__["_json"] = data
        return summary


_JSON_FIELDS = tuple(
    f for f in RunSummary.__dataclass_fields__ if f not in ("state",)
)
_FLOAT_FIELDS = ("loss", "last_loss", "mean_train_loss", "last_eval_loss", "best_eval_loss",
                 "perplexity", "best_perplexity", "started", "ended", "duration", "eta",
                 "samples_per_second")


def _checkpoint_from_json(data: dict[str, Any]) -> CheckpointInfo:
    return CheckpointInfo(
        step=int(data["step"]), path=Path(data["path"]), state=str(data["state"]),
        mtime=to_float(data.get("mtime")) or 0.0, eval_loss=to_float(data.get("eval_loss")),
        size_bytes=int(data.get("size_bytes") or 0), reason=str(data.get("reason") or ""),
        eval_step=to_int(data.get("eval_step")),
    )


# ---------------------------------------------------------------- events, folded and cached


class _Tailer(EventTailer):
    """An :class:`EventTailer` that also shows a last line still missing its newline."""

    @property
    def offset(self) -> int:
        return self._offset

    def pending(self) -> Event | None:
        """The unterminated last line when it already parses as an event (not consumed).

        :func:`~backend.events.read_events` counts such a line; a writer always ends
        its lines, so it is either about to get its newline or torn (then it fails
        to parse, or the next line glued to it does).
        """
        if not self._partial.strip():
            return None
        try:
            obj = json.loads(self._partial)
        except ValueError:
            return None
        return obj if isinstance(obj, dict) and "type" in obj else None


class _EventsEntry:
    """The folded state of one events file, advanced as the file grows."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.Lock()  # one reader folds at a time; others wait for it
        self._reset(path, None)

    def _reset(self, path: Path, ident: tuple[int, int] | None) -> None:
        from clmtune.backend.rundir.state import RunState

        self.tailer = _Tailer(path)
        self.state = RunState(compact=True)
        self.count = 0
        self.ident = ident
        self.size = self.mtime_ns = -1
        self.read_ns = 0
        self.head = self.tail = b""
        self.digest: RunState | None = None

    def update(self, path: Path, st: os.stat_result) -> RunState:
        """Fold what was appended since the last call (everything after a rewrite)."""
        ident = (st.st_dev, st.st_ino)
        unchanged = (ident, st.st_size, st.st_mtime_ns) == (self.ident, self.size, self.mtime_ns)
        if unchanged and self.digest is not None and not cache.racy(self.mtime_ns, self.read_ns):
            return self.digest
        read_ns = time.time_ns()
        if ident != self.ident or st.st_size < self.tailer.offset or not self._samples_match():
            self._reset(path, ident)  # replaced, truncated or rewritten: start over
        events = self.tailer.read_new()
        self.state.apply_all(events)
        self.count += len(events)
        self._take_samples()
        self.size, self.mtime_ns, self.read_ns = st.st_size, st.st_mtime_ns, read_ns
        state = self.state
        pending = self.tailer.pending()
        if pending is not None:
            state = copy.deepcopy(self.state)  # counted now, folded for real with its newline
            state.apply(pending)
        self.digest = state
        return state

    def _read_samples(self) -> tuple[bytes, bytes]:
        """(first bytes of the file, last bytes before the read offset)."""
        end = self.tailer.offset
        try:
            with open(self.tailer.path, "rb") as fh:
                head = fh.read(min(end, cache.SAMPLE_BYTES))
                start = max(end - cache.SAMPLE_BYTES, 0)
                fh.seek(start)
                tail = fh.read(end - start)
        except OSError:
            return b"", b""
        return head, tail

    def _samples_match(self) -> bool:
        if self.tailer.offset == 0:
            return True
        return self._read_samples() == (self.head, self.tail)

    def _take_samples(self) -> None:
        self.head, self.tail = self._read_samples() if self.tailer.offset else (b"", b"")


def _events_state(path: Path) -> RunState | None:
    """The folded events of a run (cached, read incrementally); None without events.

    Shared with the cache: treat it as read-only.
    """
    key = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        with cache.cache_lock:
            cache.events_cache.pop(key, None)
        return None
    with cache.cache_lock:
        entry = cache.lru_get(cache.events_cache, key)
        if entry is None:
            entry = _EventsEntry(Path(path))
            cache.lru_put(cache.events_cache, key, entry, cache.MAX_RUNS)
    with entry.lock:
        try:
            return entry.update(Path(path), st)
        except OSError:
            return None


def _full_events_state(path: Path) -> RunState | None:
    """Every event of a run folded with full histories (read once, not cached)."""
    from clmtune.backend.events import read_events
    from clmtune.backend.rundir.state import fold

    if not path.is_file():
        return None
    try:
        return fold(read_events(path))
    except OSError:
        return None


# ---------------------------------------------------------------- one run


def _model_name(settings: dict, run_dir: Path) -> str | None:
    model = settings.get("model") if isinstance(settings.get("model"), dict) else {}
    for key in ("model_name_or_path", "config_name", "model_type"):
        value = model.get(key)
        if value:
            return str(value)
    config = read_json(run_dir / "config.json")
    if isinstance(config, dict):
        name = config.get("_name_or_path") or config.get("model_type")
        if name:
            return str(name)
    return None


def _read_metrics(run_dir: Path) -> dict[str, dict]:
    metrics: dict[str, dict] = {}
    for split, name in RESULT_FILES.items():
        data = read_json(run_dir / name)
        if isinstance(data, dict):
            metrics[split] = data
    return metrics


def _drop_earlier_results(run_dir: Path, metrics: dict[str, dict], started: float | None) -> None:
    """Forget ``*_results.json`` files written before the newest attempt started.

    A complete run trained further and then stopped keeps the first attempt's results
    files (a stopped attempt writes none): shown as the run's results they would be the
    older attempt's figures next to the newer attempt's curve. The events hold the newer
    attempt's figures; the files stay on disk untouched.
    """
    if started is None:
        return
    for split, name in RESULT_FILES.items():
        try:
            older = (run_dir / name).stat().st_mtime < started
        except OSError:
            continue
        if older:
            metrics.pop(split, None)


def _hf_state(run_dir: Path, checkpoints: list[CheckpointInfo],
              metrics: dict[str, dict], *, compact: bool = True) -> RunState | None:
    """A folder without events (plain Hugging Face): its newest trainer_state.json, folded."""
    from clmtune.backend.rundir.hf_events import fold_trainer_state

    candidates = [run_dir / TRAINER_STATE] + [c.path / TRAINER_STATE for c in reversed(checkpoints)]
    for path in candidates:
        data = cache.cached_parse("trainer_state", path, read_json, None)
        if isinstance(data, dict):
            try:
                when = path.stat().st_mtime
            except OSError:
                when = None
            return fold_trainer_state(data, metrics, when, compact=compact)
    if metrics:
        return fold_trainer_state({}, metrics, None, compact=compact)
    return None


def _disk_status(info: dict, state: RunState | None, metrics: dict) -> str:
    """run.json is the authority; the events stand in while it is missing."""
    status = info.get("status") if info.get("status") in STATUSES else None
    if status is None and state is not None:
        status = state.status if state.status in STATUSES else "unknown"
    if status is None:
        status = "completed" if metrics.get("train") or metrics.get("all") else "unknown"
    return status


def read_run(run_dir: Path, *, now: float | None = None, compact: bool = True) -> RunSummary:
    """Summarise one run dir (ours or a plain Hugging Face one). Never raises on bad files.

    Cheap to call again: what it derives from files is cached per process (thread-safe)
    and a growing ``events.jsonl`` is only read from where the last call stopped.
    ``compact=False`` (``clmtune compare``): ``summary.state`` keeps every history
    (learning rate, grad norm, throughput), folded from a fresh read, not cached.
    """
    run_dir = Path(run_dir)
    now = time.time() if now is None else now
    info = read_run_json(run_dir)
    state = (_events_state(run_dir / EVENTS_FILE) if compact
             else _full_events_state(run_dir / EVENTS_FILE))
    if state is not None and state.events_folded == 0:
        state = None
    # Shared with the cache: the summary gets its own copy (callers may edit it).
    settings = copy.deepcopy(cache.cached_parse("config", run_dir / CONFIG_TOML, _read_toml, {}))
    checkpoints = list_checkpoints(run_dir)
    metrics = _read_metrics(run_dir)
    ours = bool(info) or state is not None or bool(settings)
    has_events = state is not None
    if state is None:
        state = _hf_state(run_dir, checkpoints, metrics, compact=compact)
        if state is not None and ours:
            state.source = "clmtune"
    summary = RunSummary(path=run_dir, name=run_dir.name, status="unknown",
                         checkpoints=checkpoints, settings=settings, metrics=metrics,
                         source="clmtune" if ours else "huggingface", state=state)
    summary.model = _model_name(settings, run_dir)
    started_event = (state.started if state is not None else None) or {}
    if has_events:
        _drop_earlier_results(run_dir, metrics, to_float(started_event.get("time")))
    status = _disk_status(info, state, metrics)
    proc = {
        "pid": info.get("pid", started_event.get("pid")),
        "host": info.get("host", started_event.get("host")),
        "start_time": info.get("start_time", started_event.get("time")),
    }
    if status == "running" and run_process_alive(proc) is False:
        status = "crashed"
    if state is not None:
        status = state.status_with(status) if not info.get("status") else status
    summary.status = status
    summary.pid = proc["pid"] if isinstance(proc["pid"], int) else None
    summary.host = proc["host"] if isinstance(proc["host"], str) else None
    world = to_int(info.get("world_size")) or to_int(started_event.get("world_size")) or 1
    summary.world_size = max(world, 1)
    summary.error = as_text(info.get("error")) or (state.error if state else None)
    summary.hint = as_text(info.get("hint")) or (state.hint if state else None)
    summary.resumed_from = (as_text(info.get("resumed_from"))
                            or (state.resumed_from if state else None))
    recorded = info.get("global_step") if isinstance(info.get("global_step"), int) else 0
    if state is not None:
        _figures(summary, state, now)
    summary.global_step = max(summary.global_step, recorded)
    if summary.max_steps is None and isinstance(info.get("max_steps"), int):
        summary.max_steps = info["max_steps"]
    if not has_events and _first_start(info) is not None:
        summary.started = None  # no events: run.json's times, not the files' (below)
    if summary.started is None:
        summary.started = _first_start(info)
        summary.ended = to_float(info.get("end_time"))
        if summary.started is not None and status != "unknown":
            summary.duration = max(0.0, (summary.ended or now) - summary.started)
    if summary.source == "huggingface":
        _hf_times(summary, checkpoints, metrics)
    return summary


def _figures(summary: RunSummary, state: RunState, now: float) -> None:
    """Copy the reducer's figures onto the summary (the one place they are chosen)."""
    loss = state.loss
    summary.loss, summary.loss_kind = loss.value, loss.kind
    summary.last_loss = state.last_loss
    summary.mean_train_loss = state.mean_train_loss
    summary.last_eval_loss = state.last_eval_loss
    summary.best_eval_loss = state.best_eval_loss
    summary.perplexity = state.perplexity
    summary.best_perplexity = state.best_perplexity
    summary.global_step = state.step
    summary.max_steps = state.max_steps
    summary.started = state.start_time
    summary.ended = state.end_time
    if summary.status == "crashed" and summary.ended is None:
        summary.ended = state.last_event_time
    summary.duration = state.elapsed(now, summary.status)
    summary.eta = state.eta(summary.status)
    summary.attempts = len(state.attempts)
    summary.nan_flag = state.nan_flag
    summary.train_samples = state.train_samples
    summary.samples_per_second = state.run_samples_per_second()
    summary.trainable = state.trainable


def _first_start(info: dict) -> float | None:
    """The first attempt's start time recorded in run.json (earlier attempts included)."""
    times = [to_float(a.get("start_time")) for a in info.get("attempts") or []
             if isinstance(a, dict)]
    times.append(to_float(info.get("start_time")))
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _hf_times(summary: RunSummary, checkpoints: list[CheckpointInfo],
              metrics: dict[str, dict]) -> None:
    """A plain HF folder has no events: its files' times and Trainer's runtime stand in."""
    train = metrics.get("train") or metrics.get("all") or {}
    runtime = to_float(train.get("train_runtime"))
    stamps = [c.mtime for c in checkpoints]
    try:
        stamps.append((summary.path / TRAINER_STATE).stat().st_mtime)
    except OSError:
        pass
    end = max(stamps) if stamps else None
    summary.ended = end
    summary.eta = None
    if runtime is not None and math.isfinite(runtime):
        summary.duration = runtime
        summary.started = end - runtime if end is not None else None
    else:
        summary.started = min(stamps) if stamps else None
        summary.duration = None



def delete_run(run_dir: Path) -> None:
    """Delete a run dir; refuses a running run and anything that is not a run dir."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    if not is_run_dir(run_dir):
        raise RunError(f"{run_dir}: not a run directory; refusing to delete it")
    if read_run(run_dir).status == "running":
        raise RunError(
            f"{run_dir}: the run is still running; stop it first (clmtune stop {run_dir})"
        )
    shutil.rmtree(run_dir)
    cache.forget(run_dir)

