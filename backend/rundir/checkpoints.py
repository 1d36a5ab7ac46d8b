"""Checkpoints of a run: health classification, listing, and which one a resume uses.

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

:func:`resolve_resume` is the one place that decides which checkpoint a resume
starts from; it raises :class:`~clmtune.backend.rundir.layout.RunError` (one line).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clmtune.backend.events import _sanitize, read_json, to_float
from clmtune.backend.rundir import cache
from clmtune.backend.rundir.layout import (
    CHECKPOINT_RE,
    COMPLETE_MARKER,
    RUN_JSON,
    TRAINER_STATE,
    RunError,
)

_SAFE_WEIGHTS = ("model.safetensors", "adapter_model.safetensors")
_BIN_WEIGHTS = ("pytorch_model.bin", "adapter_model.bin")
_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_OPTIMIZER_RE = re.compile(r"^(optimizer\.(pt|bin)|rank\d+-of-\d+-optimizer\.pt)$")
_RNG_RE = re.compile(r"^rng_state(_\d+)?\.pth$")


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
    #: The step ``eval_loss`` was logged at: the checkpoint's own, or the last evaluation
    #: before it (a checkpoint saved by a stop); None without an evaluation.
    eval_step: int | None = None

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
                "eval_step": self.eval_step,
                "size_bytes": self.size_bytes,
                "reason": self.reason,
            }
        )


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
        import zipfile  # here: it pulls in bz2 and lzma, which listing a cached folder skips

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


def _full_state_missing(ckpt: Path, names: set[str], world_size: int | None,
                        state: Any) -> list[str]:
    """What a resume needs beyond the weights and is missing or damaged.

    ``state``: the checkpoint's trainer_state.json as read (None when missing or damaged).
    """
    missing: list[str] = []
    optimizers = [n for n in names if _OPTIMIZER_RE.match(n)]
    # DeepSpeed / FSDP keep the optimizer in sub-folders.
    has_sharded = any(
        n.startswith(("global_step", "optimizer_")) and (ckpt / n).is_dir() for n in names
    )
    if not optimizers and not has_sharded:
        missing.append("optimizer.pt")
    elif any(not _file_intact(ckpt / n) for n in optimizers):
        missing.append("optimizer.pt (torn)")
    if "scheduler.pt" not in names:
        missing.append("scheduler.pt")
    elif not _file_intact(ckpt / "scheduler.pt"):
        missing.append("scheduler.pt (torn)")
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


def eval_at(log_history: Any, step: int) -> tuple[int, float] | None:
    """(step, eval loss) logged at ``step`` or the last evaluation before it."""
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
    return best


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
    missing = _full_state_missing(path, names, world_size, state_json) if weights_ok else []
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
    evaluated = eval_at(state_json.get("log_history"), step) if state_json else None
    return CheckpointInfo(
        step=step,
        path=path,
        state=state,
        mtime=mtime,
        eval_loss=evaluated[1] if evaluated else None,
        size_bytes=_dir_size(path),
        reason=reason,
        eval_step=evaluated[0] if evaluated else None,
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
        with cache.cache_lock:
            hit = cache.lru_get(cache.checkpoint_cache, key)
        if hit is not None and hit[0] == signed[0] and not cache.racy(signed[1], hit[1]):
            return dataclasses.replace(hit[2])
    read_ns = time.time_ns()
    info = classify_checkpoint(path, ours=ours)
    with cache.cache_lock:
        if signed is None:
            cache.checkpoint_cache.pop(key, None)
        else:
            entry = (signed[0], read_ns, info)
            cache.lru_put(cache.checkpoint_cache, key, entry, cache.MAX_CHECKPOINTS)
    return dataclasses.replace(info)

