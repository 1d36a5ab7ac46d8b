"""Run directories: status, checkpoints and their health, saved metrics.

Pure Python (the TUI imports it): no torch, transformers, datasets or evaluate,
not even inside functions. Every reader here tolerates a damaged directory: a
half-written ``run.json``, a torn last event line, a checkpoint killed during
its save. Nothing here raises on bad files except :func:`resolve_resume` and
:func:`delete_run`, which raise :class:`RunError` with a one-line message.
:func:`read_run` and :func:`list_runs` are cheap to call again (the TUI lists every
2 s): what they derive from files is cached per process, see "caches" below.

Checkpoint health. Hugging Face writes ``checkpoint-N/`` file by file (model,
optimizer, scheduler, scaler, RNG state, ``trainer_state.json``) with nothing
marking the end, so a killed save leaves a directory that looks like a
checkpoint. Our callback writes ``checkpoint-N/.clmtune-complete`` after
Trainer has written every file. A checkpoint is

- ``complete`` (resumable): every file is there and intact, and, for a run we
  started, the marker is there too;
- ``weights-only``: an intact model (and its ``config.json``) but not the
  optimizer/scheduler/state needed to continue exactly: a new run can start
  from it, a resume cannot;
- ``partial``: anything else (never offered).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import shutil
import socket
import stat
import struct
import sys
import threading
import time
import zipfile
from array import array
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clmtune.backend.errors import RunDirError
from clmtune.backend.events import (
    EVENTS_FILE,
    Event,
    EventTailer,
    RunView,
    _sanitize,
    perplexity,
    read_json,
    to_float,
)

RUN_JSON = "run.json"
CONFIG_TOML = "config.toml"
COMPLETE_MARKER = ".clmtune-complete"
STOP_FILE = "stop.request"
STATUSES = ("running", "completed", "stopped", "failed", "crashed", "unknown")

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINER_STATE = "trainer_state.json"
RESULT_FILES = {
    "train": "train_results.json",
    "eval": "eval_results.json",
    "all": "all_results.json",
}

_SAFE_WEIGHTS = ("model.safetensors", "adapter_model.safetensors")
_BIN_WEIGHTS = ("pytorch_model.bin", "adapter_model.bin")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_OPTIMIZER_RE = re.compile(r"^(optimizer\.(pt|bin)|rank\d+-of-\d+-optimizer\.pt)$")
_RNG_RE = re.compile(r"^rng_state(_\d+)?\.pth$")


class RunError(RunDirError):
    """A user-facing, one-line problem with a run directory or checkpoint."""


@dataclass
class CheckpointInfo:
    """One ``checkpoint-N`` directory and whether it can be resumed."""

    step: int
    path: Path
    state: str  # "complete" | "weights-only" | "partial"
    mtime: float
    eval_loss: float | None
    size_bytes: int
    reason: str = ""  # why it is not complete (missing/damaged files), "" when complete

    @property
    def resumable(self) -> bool:
        return self.state == "complete"

    def to_json(self) -> dict[str, Any]:
        return _sanitize(
            {
                "step": self.step,
                "path": str(self.path),
                "state": self.state,
                "resumable": self.resumable,
                "mtime": self.mtime,
                "eval_loss": self.eval_loss,
                "size_bytes": self.size_bytes,
                "reason": self.reason,
            }
        )


@dataclass
class RunSummary:
    """What a run list or a run detail view shows about one run directory."""

    path: Path
    name: str
    status: str
    model: str | None = None
    global_step: int = 0
    max_steps: int | None = None
    last_loss: float | None = None
    best_eval_loss: float | None = None
    perplexity: float | None = None
    started: float | None = None
    ended: float | None = None
    duration: float | None = None
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    world_size: int = 1
    pid: int | None = None
    host: str | None = None
    metrics: dict[str, dict] = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    resumed_from: str | None = None
    source: str = "clmtune"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (paths as strings, NaN/inf as strings)."""
        data = {
            "path": str(self.path),
            "name": self.name,
            "status": self.status,
            "model": self.model,
            "global_step": self.global_step,
            "max_steps": self.max_steps,
            "last_loss": self.last_loss,
            "best_eval_loss": self.best_eval_loss,
            "perplexity": self.perplexity,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "checkpoints": [c.to_json() for c in self.checkpoints],
            "world_size": self.world_size,
            "pid": self.pid,
            "host": self.host,
            "metrics": self.metrics,
            "settings": self.settings,
            "error": self.error,
            "hint": self.hint,
            "resumed_from": self.resumed_from,
            "source": self.source,
        }
        return _sanitize(json.loads(json.dumps(data, default=str)))


# ---------------------------------------------------------------- small readers


def _read_toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, ValueError):
        return {}


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON next to ``path`` then ``os.replace`` it: readers see old or new, never half."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(_sanitize(data), fh, indent=2, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_run_json(run_dir: Path) -> dict:
    """``run.json`` as a dict ({} when missing or damaged)."""
    data = read_json(Path(run_dir) / RUN_JSON)
    return data if isinstance(data, dict) else {}


# ---------------------------------------------------------------- process checks


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists on this machine (zombies count as dead)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    try:
        import psutil  # light C extension; only for the zombie / reuse checks

        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or the process just left
        return True


def _pid_reused(pid: int, started: float | None) -> bool:
    """True when ``pid`` now belongs to a process born after the run started."""
    if started is None:
        return False
    try:
        import psutil

        created = psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001
        return False
    # The worker writes its start time after it was born; a reused pid is younger.
    return created > started + 2.0


def run_process_alive(info: dict) -> bool | None:
    """Whether the process recorded in ``run.json``-like ``info`` is alive.

    None when it cannot be told (another host, or no pid recorded).
    """
    pid = info.get("pid")
    host = info.get("host")
    if not isinstance(pid, int):
        return None
    if host and host != socket.gethostname():
        return None
    if not pid_alive(pid):
        return False
    return not _pid_reused(pid, to_float(info.get("start_time")))


# ---------------------------------------------------------------- caches
#
# The TUI lists the runs folder every 2 s from a thread. Re-reading everything each
# time costs seconds once one run is long: a 100k-step events.jsonl is tens of MB and
# every checkpoint's trainer_state.json repeats the log history. So what is derived
# from files is cached per process, keyed by the files' stat:
# - events.jsonl: the reduced summary and the byte offset read so far; a grown file is
#   read from that offset only (the file is append-only by contract);
# - each checkpoint-N: its classification, keyed by the stat of every entry in it;
# - config.toml and trainer_state.json: the parsed (or reduced) content.
# What depends on the moment (a dead pid makes "crashed", the duration of a live run)
# is never cached. A file whose mtime is within RACY_NS of the moment it was read may
# have changed again in the same timestamp tick (ext4 / tmpfs stamps are coarse)
# without its stat showing it, so such an entry is checked again until the file is
# older than that (git's "racy" rule).

RACY_NS = 2_000_000_000
_MAX_RUNS = 256
_MAX_CHECKPOINTS = 4096
_MAX_FILES = 1024
_SAMPLE_BYTES = 256  # head and tail of an events file, kept to notice a rewritten file

_cache_lock = threading.Lock()  # guards the three dicts below, never held during I/O
_events_cache: OrderedDict[str, _EventsEntry] = OrderedDict()
_checkpoint_cache: OrderedDict[str, tuple[tuple, int, CheckpointInfo]] = OrderedDict()
_file_cache: OrderedDict[tuple[str, str], tuple[tuple, int, Any]] = OrderedDict()


def clear_caches() -> None:
    """Forget everything cached about run dirs (benchmarks; correctness never needs it)."""
    with _cache_lock:
        _events_cache.clear()
        _checkpoint_cache.clear()
        _file_cache.clear()


def _forget(run_dir: Path) -> None:
    """Drop the cache entries of one run dir (it was deleted)."""
    prefix = os.path.abspath(run_dir) + os.sep
    with _cache_lock:
        for key in [k for k in _events_cache if k.startswith(prefix)]:
            del _events_cache[key]
        for key in [k for k in _checkpoint_cache if k.startswith(prefix)]:
            del _checkpoint_cache[key]
        for fkey in [k for k in _file_cache if k[1].startswith(prefix)]:
            del _file_cache[fkey]


def _forget_vanished(root: Path, present: set[str]) -> None:
    """Drop the events entries of run dirs under ``root`` that are gone (deleted elsewhere)."""
    prefix = os.path.abspath(root) + os.sep
    with _cache_lock:
        for key in list(_events_cache):
            parent = os.path.dirname(key)
            if key.startswith(prefix) and os.path.dirname(parent) + os.sep == prefix:
                if parent not in present:
                    del _events_cache[key]


def _lru_get(cache: OrderedDict, key: Any) -> Any:
    value = cache.get(key)
    if value is not None:
        cache.move_to_end(key)
    return value


def _lru_put(cache: OrderedDict, key: Any, value: Any, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _racy(mtime_ns: int, read_ns: int) -> bool:
    return mtime_ns >= read_ns - RACY_NS


def _cached_parse(kind: str, path: Path, parse: Callable[[Path], Any], missing: Any) -> Any:
    """``parse(path)``, re-run only when the file's stat changed; ``missing`` without a file.

    The value is shared between callers: treat it as read-only.
    """
    key = (kind, os.path.abspath(path))
    try:
        st = os.stat(path)
    except OSError:
        with _cache_lock:
            _file_cache.pop(key, None)
        return missing
    signature = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _cache_lock:
        hit = _lru_get(_file_cache, key)
    if hit is not None and hit[0] == signature and not _racy(st.st_mtime_ns, hit[1]):
        return hit[2]
    read_ns = time.time_ns()
    value = parse(path)
    with _cache_lock:
        _lru_put(_file_cache, key, (signature, read_ns, value), _MAX_FILES)
    return value


@dataclass(frozen=True)
class _EventsDigest:
    """What :func:`read_run` takes from a run's events (a :class:`RunView`, reduced)."""

    count: int = 0  # readable events
    step: int = 0
    max_steps: int | None = None
    last_loss: float | None = None
    best_eval_loss: float | None = None
    perplexity: float | None = None
    has_train_loss: bool = False
    status: str = "unknown"
    error: str | None = None
    hint: str | None = None
    start_time: float | None = None
    end_time: float | None = None
    last_event_time: float | None = None
    started: dict = field(default_factory=dict)  # the run_started event; read-only

    @classmethod
    def of(cls, view: RunView, count: int) -> _EventsDigest:
        return cls(
            count=count,
            step=view.step,
            max_steps=view.max_steps,
            last_loss=view.last_loss,
            best_eval_loss=view.best_eval_loss,
            perplexity=view.perplexity,
            has_train_loss=bool(view.train_loss),
            status=view.status,
            error=view.error,
            hint=view.hint,
            start_time=view.start_time,
            end_time=view.end_time,
            last_event_time=view.last_event_time,
            started=view.started or {},
        )


_NO_EVENTS = _EventsDigest()


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


class _SummaryView(RunView):
    """A :class:`RunView` keeping only what a summary needs, compactly.

    The train loss history stays (a resumed run's ``run_started`` truncates it, which
    changes the last loss), as 8-byte floats; learning-rate and memory history, logs
    and warnings are dropped. The reduction itself is RunView's, so both agree.
    """

    def __init__(self) -> None:
        super().__init__()
        self.train_steps = array("d")  # type: ignore[assignment]
        self.train_loss = array("d")  # type: ignore[assignment]

    def _on_train_log(self, e: Event) -> None:
        super()._on_train_log(e)
        del self.lr_steps[:], self.learning_rate[:], self.grad_norm[:]

    def _on_memory(self, e: Event) -> None:
        pass

    def _on_log(self, e: Event) -> None:
        pass

    def _on_warning(self, e: Event) -> None:
        pass

    def clone(self) -> _SummaryView:
        twin = copy.copy(self)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (list, dict, array)):
                setattr(twin, f.name, copy.copy(value))
        return twin


class _EventsEntry:
    """The folded state of one events file, advanced as the file grows."""

    def __init__(self, path: Path) -> None:
        self.lock = threading.Lock()  # one reader folds at a time; others wait for it
        self._reset(path, None)

    def _reset(self, path: Path, ident: tuple[int, int] | None) -> None:
        self.tailer = _Tailer(path)
        self.view = _SummaryView()
        self.count = 0
        self.ident = ident
        self.size = self.mtime_ns = -1
        self.read_ns = 0
        self.head = self.tail = b""
        self.digest = _NO_EVENTS

    def update(self, path: Path, st: os.stat_result) -> _EventsDigest:
        """Fold what was appended since the last call (everything after a rewrite)."""
        ident = (st.st_dev, st.st_ino)
        unchanged = (ident, st.st_size, st.st_mtime_ns) == (self.ident, self.size, self.mtime_ns)
        if unchanged and not _racy(self.mtime_ns, self.read_ns):
            return self.digest
        read_ns = time.time_ns()
        if ident != self.ident or st.st_size < self.tailer.offset or not self._samples_match():
            self._reset(path, ident)  # replaced, truncated or rewritten: start over
        events = self.tailer.read_new()
        self.view.apply_all(events)
        self.count += len(events)
        self._take_samples()
        self.size, self.mtime_ns, self.read_ns = st.st_size, st.st_mtime_ns, read_ns
        view, count = self.view, self.count
        pending = self.tailer.pending()
        if pending is not None:
            view = self.view.clone()  # counted now, folded for real once its newline lands
            view.apply(pending)
            count += 1
        self.digest = _EventsDigest.of(view, count)
        return self.digest

    def _read_samples(self) -> tuple[bytes, bytes]:
        """(first bytes of the file, last bytes before the read offset)."""
        end = self.tailer.offset
        try:
            with open(self.tailer.path, "rb") as fh:
                head = fh.read(min(end, _SAMPLE_BYTES))
                start = max(end - _SAMPLE_BYTES, 0)
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


def _events_digest(path: Path) -> _EventsDigest:
    """The reduced events of a run (cached, read incrementally); empty when there are none."""
    key = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        with _cache_lock:
            _events_cache.pop(key, None)
        return _NO_EVENTS
    with _cache_lock:
        entry = _lru_get(_events_cache, key)
        if entry is None:
            entry = _EventsEntry(Path(path))
            _lru_put(_events_cache, key, entry, _MAX_RUNS)
    with entry.lock:
        try:
            return entry.update(Path(path), st)
        except OSError:
            return _NO_EVENTS


def _checkpoint_signature(path: Path, ours: bool) -> tuple[tuple, int] | None:
    """(what classification depends on, the newest mtime in it) for one checkpoint dir."""
    try:
        st = os.stat(path)
        entries = []
        newest = st.st_mtime_ns
        for entry in os.scandir(path):
            try:
                est = entry.stat()  # follows links, like the readers do
                item = (entry.name, est.st_ino, est.st_size, est.st_mtime_ns)
                newest = max(newest, est.st_mtime_ns)
            except OSError:
                item = (entry.name, -1, -1, -1)
            entries.append(item)
    except OSError:
        return None
    entries.sort()
    return (ours, st.st_ino, st.st_mtime_ns, tuple(entries)), newest


def _classify_cached(path: Path, ours: bool) -> CheckpointInfo:
    """:func:`classify_checkpoint`, reused while nothing in the directory changed.

    A file being written changes its size or mtime, a new, renamed or deleted file
    changes the listing; files inside sub-folders (sharded engines) only count
    through the sub-folder's own stat.
    """
    key = os.path.abspath(path)
    signed = _checkpoint_signature(path, ours)
    if signed is not None:
        with _cache_lock:
            hit = _lru_get(_checkpoint_cache, key)
        if hit is not None and hit[0] == signed[0] and not _racy(signed[1], hit[1]):
            return dataclasses.replace(hit[2])
    read_ns = time.time_ns()
    info = classify_checkpoint(path, ours=ours)
    with _cache_lock:
        if signed is None:
            _checkpoint_cache.pop(key, None)
        else:
            _lru_put(_checkpoint_cache, key, (signed[0], read_ns, info), _MAX_CHECKPOINTS)
    return dataclasses.replace(info)


# ---------------------------------------------------------------- checkpoints


def _safetensors_intact(path: Path) -> bool:
    """Header parses and the last tensor ends exactly at the end of the file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                return False
            (n,) = struct.unpack("<Q", head)
            if n <= 0 or 8 + n > size or n > 100_000_000:
                return False
            header = json.loads(fh.read(n))
    except (OSError, ValueError, struct.error):
        return False
    end = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(meta["data_offsets"][1]))
        except (KeyError, TypeError, ValueError, IndexError):
            return False
    return 8 + n + end == size


def _file_intact(path: Path) -> bool:
    if path.name.endswith(".safetensors"):
        return _safetensors_intact(path)
    if path.name.endswith((".bin", ".pt", ".pth")):
        # torch.save writes a zip archive; a torn one has no end-of-central-directory.
        try:
            return zipfile.is_zipfile(path)
        except OSError:
            return False
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _weights_state(ckpt: Path, names: set[str]) -> tuple[bool, str]:
    """(intact, reason) for the model weights of a checkpoint."""
    for index_name in _INDEXES:
        if index_name in names:
            index = read_json(ckpt / index_name)
            if not isinstance(index, dict) or not isinstance(index.get("weight_map"), dict):
                return False, f"{index_name} is damaged"
            for shard in sorted(set(index["weight_map"].values())):
                if not _file_intact(ckpt / shard):
                    return False, f"weight shard {shard} is missing or torn"
            return True, ""
    for name in _SAFE_WEIGHTS + _BIN_WEIGHTS:
        if name in names:
            if _file_intact(ckpt / name):
                return True, ""
            return False, f"{name} is torn"
    # Sharded engines keep the model in folders (their own loaders check the shards).
    if "latest" in names and any(n.startswith("global_step") for n in names):
        return True, ""  # DeepSpeed
    if any(n.startswith("pytorch_model_fsdp") and (ckpt / n).is_dir() for n in names):
        return True, ""  # FSDP sharded state dict
    return False, "no model weights"


def _full_state_missing(ckpt: Path, names: set[str], world_size: int | None) -> list[str]:
    """What a resume needs beyond the weights and is missing or damaged."""
    missing: list[str] = []
    optimizers = [n for n in names if _OPTIMIZER_RE.match(n)]
    # DeepSpeed / FSDP keep the optimizer in sub-folders.
    has_sharded = any(
        (ckpt / n).is_dir() and (n.startswith("global_step") or n.startswith("optimizer_"))
        for n in names
    )
    if not optimizers and not has_sharded:
        missing.append("optimizer.pt")
    elif any(not _file_intact(ckpt / n) for n in optimizers):
        missing.append("optimizer.pt (torn)")
    if "scheduler.pt" not in names:
        missing.append("scheduler.pt")
    elif not _file_intact(ckpt / "scheduler.pt"):
        missing.append("scheduler.pt (torn)")
    state = read_json(ckpt / TRAINER_STATE)
    if not isinstance(state, dict):
        missing.append(TRAINER_STATE)
    rngs = sorted(n for n in names if _RNG_RE.match(n))
    if world_size and world_size > 1:
        want = {f"rng_state_{i}.pth" for i in range(world_size)}
        if not want <= set(rngs):
            missing.append(f"rng_state_*.pth for {world_size} processes")
    elif not rngs:
        missing.append("rng_state.pth")
    if any(not _file_intact(ckpt / n) for n in rngs):
        missing.append("rng_state (torn)")
    return missing


def _dir_size(path: Path) -> int:
    total = 0
    try:
        for entry in os.scandir(path):
            try:
                if entry.is_dir(follow_symlinks=False):
                    total += _dir_size(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    except OSError:
        pass
    return total


def _eval_loss_at(log_history: Any, step: int) -> float | None:
    """Eval loss logged at ``step`` or the last one before it."""
    best: tuple[int, float] | None = None
    if not isinstance(log_history, list):
        return None
    for entry in log_history:
        if not isinstance(entry, dict) or "eval_loss" not in entry:
            continue
        s = entry.get("step")
        loss = to_float(entry.get("eval_loss"))
        if isinstance(s, int) and s <= step and loss is not None and (best is None or s >= best[0]):
            best = (s, loss)
    return best[1] if best else None


def classify_checkpoint(path: Path, *, ours: bool | None = None) -> CheckpointInfo:
    """Classify one checkpoint directory (see the module docstring).

    ``ours``: whether the run dir was written by clmtune (then the marker is
    required for ``complete``); None decides from the parent holding run.json.
    """
    path = Path(path)
    match = CHECKPOINT_RE.match(path.name)
    step = int(match.group(1)) if match else -1
    if ours is None:
        ours = (path.parent / RUN_JSON).exists()
    try:
        names = {e.name for e in os.scandir(path)}
    except OSError:
        names = set()
    marker = read_json(path / COMPLETE_MARKER) if COMPLETE_MARKER in names else None
    has_marker = COMPLETE_MARKER in names
    world_size = marker.get("world_size") if isinstance(marker, dict) else None
    state_json = read_json(path / TRAINER_STATE) if TRAINER_STATE in names else None
    if step < 0 and isinstance(state_json, dict) and isinstance(state_json.get("global_step"), int):
        step = state_json["global_step"]

    weights_ok, reason = _weights_state(path, names)
    missing = _full_state_missing(path, names, world_size) if weights_ok else []
    if weights_ok and not missing and (has_marker or not ours):
        state, reason = "complete", ""
    elif weights_ok and "config.json" in names:
        state = "weights-only"
        reason = (
            "missing " + ", ".join(missing)
            if missing
            else "no completion marker (the save was interrupted)"
        )
    else:
        state = "partial"
        if weights_ok:
            reason = "no config.json"
    try:
        mtime = (path / COMPLETE_MARKER).stat().st_mtime if has_marker else path.stat().st_mtime
    except OSError:
        mtime = 0.0
    eval_loss = _eval_loss_at(state_json.get("log_history"), step) if state_json else None
    return CheckpointInfo(
        step=step,
        path=path,
        state=state,
        mtime=mtime,
        eval_loss=eval_loss,
        size_bytes=_dir_size(path),
        reason=reason,
    )


def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """Every ``checkpoint-N`` of a run, classified, sorted by step.

    Classifications are cached per checkpoint while its files do not change.
    """
    return _list_checkpoints(run_dir, cached=True)


def _list_checkpoints(run_dir: Path, *, cached: bool) -> list[CheckpointInfo]:
    run_dir = Path(run_dir)
    ours = (run_dir / RUN_JSON).exists()
    classify = _classify_cached if cached else (lambda p, ours: classify_checkpoint(p, ours=ours))
    found: list[CheckpointInfo] = []
    try:
        entries = list(os.scandir(run_dir))
    except OSError:
        return []
    for entry in entries:
        if CHECKPOINT_RE.match(entry.name) and entry.is_dir():
            found.append(classify(Path(entry.path), ours))
    found.sort(key=lambda c: c.step)
    return found


def resolve_resume(run_dir: Path, spec: str) -> Path:
    """The checkpoint to resume from: ``"last"`` = newest complete one, or a given path.

    Raises :class:`RunError` (one line) when there is none or the given one is
    not complete.
    """
    run_dir = Path(run_dir)
    if spec == "last":
        # Classified afresh, not from the cache: a resume must never pick a partial one.
        checkpoints = _list_checkpoints(run_dir, cached=False)
        complete = [c for c in checkpoints if c.resumable]
        if complete:
            return complete[-1].path.resolve()
        if not checkpoints:
            raise RunError(f"{run_dir}: no checkpoint to resume from (start without --resume)")
        states = ", ".join(f"{c.path.name} {c.state}" for c in checkpoints)
        raise RunError(f"{run_dir}: no complete checkpoint to resume from ({states})")
    path = Path(spec).expanduser()
    if not path.exists() and not path.is_absolute() and (run_dir / spec).exists():
        path = run_dir / spec
    if not path.is_dir():
        raise RunError(f"checkpoint {spec}: no such directory (use 'last' or a checkpoint-N path)")
    info = classify_checkpoint(path)
    if not info.resumable:
        raise RunError(
            f"checkpoint {path}: {info.state} ({info.reason}); it cannot be resumed"
            " - pick a complete one (clmtune show RUN_DIR lists them)"
        )
    return path.resolve()


# ---------------------------------------------------------------- runs


def is_run_dir(path: Path) -> bool:
    """True for a clmtune run dir or a plain Hugging Face output dir."""
    path = Path(path)
    if not path.is_dir():
        return False
    for name in (RUN_JSON, EVENTS_FILE, TRAINER_STATE, "all_results.json"):
        if (path / name).is_file():
            return True
    try:
        return any(CHECKPOINT_RE.match(e.name) and e.is_dir() for e in os.scandir(path))
    except OSError:
        return False


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


@dataclass(frozen=True)
class _StateDigest:
    """The progress fields of a ``trainer_state.json`` (its log history reduced)."""

    global_step: int | None = None
    max_steps: int | None = None
    last_loss: float | None = None
    best_eval_loss: float | None = None


def _digest_trainer_state(path: Path) -> _StateDigest | None:
    """Reduce a ``trainer_state.json``; None when it is missing or damaged."""
    state = read_json(path)
    if not isinstance(state, dict):
        return None
    history = state.get("log_history") if isinstance(state.get("log_history"), list) else []
    last_loss: float | None = None
    evals: list[float] = []
    for entry in history:
        if not isinstance(entry, dict):
            continue
        loss = to_float(entry.get("loss"))
        if loss is not None:
            last_loss = loss
        eval_loss = to_float(entry.get("eval_loss"))
        if eval_loss is not None and math.isfinite(eval_loss):
            evals.append(eval_loss)
    step = state.get("global_step")
    max_steps = state.get("max_steps")
    return _StateDigest(
        global_step=step if isinstance(step, int) else None,
        max_steps=max_steps if isinstance(max_steps, int) and max_steps > 0 else None,
        last_loss=last_loss,
        best_eval_loss=min(evals) if evals else None,
    )


def _apply_trainer_state(summary: RunSummary, state: _StateDigest) -> None:
    """Fill the progress fields from a ``trainer_state.json`` (plain HF dirs)."""
    if state.global_step is not None:
        summary.global_step = state.global_step
    if state.max_steps is not None:
        summary.max_steps = state.max_steps
    if state.last_loss is not None:
        summary.last_loss = state.last_loss
    if state.best_eval_loss is not None:
        summary.best_eval_loss = state.best_eval_loss


def _read_metrics(run_dir: Path) -> dict[str, dict]:
    metrics: dict[str, dict] = {}
    for split, name in RESULT_FILES.items():
        data = read_json(run_dir / name)
        if isinstance(data, dict):
            metrics[split] = data
    return metrics


def _newest_trainer_state(run_dir: Path, checkpoints: list[CheckpointInfo]) -> _StateDigest | None:
    candidates = [run_dir / TRAINER_STATE] + [c.path / TRAINER_STATE for c in reversed(checkpoints)]
    for path in candidates:
        state = _cached_parse("trainer_state", path, _digest_trainer_state, None)
        if state is not None:
            return state
    return None


def read_run(run_dir: Path) -> RunSummary:
    """Summarise one run dir (ours or a plain Hugging Face one). Never raises on bad files.

    Cheap to call again: what it derives from files is cached per process (thread-safe)
    and a growing ``events.jsonl`` is only read from where the last call stopped.
    """
    run_dir = Path(run_dir)
    info = read_run_json(run_dir)
    events = _events_digest(run_dir / EVENTS_FILE)
    has_events = events.count > 0
    # Shared with the cache: the summary gets its own copy (callers may edit it).
    settings = copy.deepcopy(_cached_parse("config", run_dir / CONFIG_TOML, _read_toml, {}))
    checkpoints = list_checkpoints(run_dir)
    ours = bool(info) or has_events or bool(settings)
    summary = RunSummary(
        path=run_dir,
        name=run_dir.name,
        status="unknown",
        checkpoints=checkpoints,
        settings=settings,
        metrics=_read_metrics(run_dir),
        source="clmtune" if ours else "huggingface",
    )
    summary.model = _model_name(settings, run_dir)
    started_event = events.started

    if has_events:
        # run.json has the worker's final step; events may not have logged the last one.
        recorded = info.get("global_step") if isinstance(info.get("global_step"), int) else 0
        summary.global_step = max(events.step, recorded)
        summary.max_steps = events.max_steps
        summary.last_loss = events.last_loss
        summary.best_eval_loss = events.best_eval_loss
        summary.perplexity = events.perplexity
    if not has_events or not events.has_train_loss:
        # Read only when needed: a long run's trainer_state.json is large.
        state = _newest_trainer_state(run_dir, checkpoints)
        if state is not None:
            _apply_trainer_state(summary, state)

    # Status: run.json is the authority; events stand in while it is missing.
    status = info.get("status") if info.get("status") in STATUSES else None
    if status is None and has_events:
        status = events.status if events.status in STATUSES else "unknown"
    if status is None:
        status = (
            "completed" if summary.metrics.get("train") or summary.metrics.get("all") else "unknown"
        )
    proc = {
        "pid": info.get("pid", started_event.get("pid")),
        "host": info.get("host", started_event.get("host")),
        "start_time": info.get("start_time", started_event.get("time")),
    }
    if status == "running" and run_process_alive(proc) is False:
        status = "crashed"
    summary.status = status
    summary.pid = proc["pid"] if isinstance(proc["pid"], int) else None
    summary.host = proc["host"] if isinstance(proc["host"], str) else None
    summary.world_size = int(info.get("world_size") or started_event.get("world_size") or 1)
    summary.error = info.get("error") or events.error
    summary.hint = info.get("hint") or events.hint
    summary.resumed_from = info.get("resumed_from") or started_event.get("resumed_from")
    summary.started = to_float(info.get("start_time")) or events.start_time
    summary.ended = to_float(info.get("end_time")) or events.end_time
    if summary.ended is None and status in ("crashed",) and events.last_event_time:
        summary.ended = events.last_event_time
    if summary.started is None and summary.source == "huggingface":
        try:
            summary.started = min(c.mtime for c in checkpoints) if checkpoints else None
        except ValueError:
            summary.started = None
    if summary.started is not None:
        end = summary.ended if summary.ended is not None else time.time()
        summary.duration = max(0.0, end - summary.started) if status != "unknown" else None
    if summary.max_steps is None and isinstance(info.get("max_steps"), int):
        summary.max_steps = info["max_steps"]

    final_eval = summary.metrics.get("eval") or summary.metrics.get("all") or {}
    if summary.perplexity is None:
        summary.perplexity = to_float(final_eval.get("perplexity"))
    if summary.perplexity is None:
        summary.perplexity = perplexity(to_float(final_eval.get("eval_loss")))
    final_loss = to_float(final_eval.get("eval_loss"))
    if final_loss is not None and math.isfinite(final_loss):
        if summary.best_eval_loss is None or final_loss < summary.best_eval_loss:
            summary.best_eval_loss = final_loss
    return summary


def list_runs(root: Path) -> list[RunSummary]:
    """Every run dir directly under ``root``, newest first; a missing root gives []."""
    root = Path(root)
    try:
        children = [Path(e.path) for e in os.scandir(root) if e.is_dir()]
    except OSError:
        return []
    runs = [read_run(p) for p in children if is_run_dir(p)]
    _forget_vanished(root, {os.path.abspath(p) for p in children})

    def key(run: RunSummary) -> float:
        if run.started is not None:
            return run.started
        try:
            return run.path.stat().st_mtime
        except OSError:
            return 0.0

    runs.sort(key=key, reverse=True)
    return runs


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
    _forget(run_dir)
