"""The one rule for writing into a run folder: start fresh, resume from a checkpoint, or refuse.

:func:`plan_run` is used by ``clmtune train`` and by the dashboard (both through
``backend.launch.start_run``), before anything is written. Given the run folder and the settings
it returns a :class:`RunPlan` (``fresh`` or ``resume`` from a checkpoint) or raises
:class:`~clmtune.backend.errors.RunDirError` with one line saying why and what to do:

- a folder inside a run (``runs/base/checkpoint-30``), a folder written by a plain Hugging Face
  script (``trainer_state.json``, a model, checkpoints), or a folder of unrelated files is never
  trained into, as ``run_clm.py`` refuses a non-empty ``output_dir``;
- a folder holding one of our runs is written only by resuming that run;
- a run that already reached its ``max_steps`` / ``num_train_epochs`` is not resumed: Trainer
  would train one step more, save ``checkpoint-N+1`` and let ``save_total_limit`` delete an older
  checkpoint (:class:`RunComplete`); raising ``max_steps`` trains further from the last checkpoint;
- settings that cannot load the saved checkpoints (another model, tokenizer or block size) refuse
  a resume; other changes (learning rate, ``max_steps``, logging) are allowed and reported in
  :attr:`RunPlan.changes`, which the launcher records.

Pure Python (the dashboard imports it): it reads ``run.json``, ``config.toml`` and the
``trainer_state.json`` files, never torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clmtune.backend.errors import RunDirError, UsageError
from clmtune.backend.events import EVENTS_FILE, read_events, read_json
from clmtune.backend.rundir.checkpoints import CheckpointInfo, list_checkpoints, resolve_resume
from clmtune.backend.rundir.layout import (
    CHECKPOINT_RE,
    CONFIG_TOML,
    RUN_JSON,
    STOP_FILE,
    TRAINER_STATE,
    read_run_json,
)
from clmtune.backend.rundir.summary import read_run

if TYPE_CHECKING:
    from clmtune.backend.settings.run_config import RunConfig

#: Where a resume from an earlier checkpoint puts the later ones (see RunPlan.superseded).
SUPERSEDED_DIR = "superseded"
#: What ``--resume`` accepts besides a checkpoint path.
RESUME_LAST, RESUME_AUTO = "last", "auto"
# Left behind by a start that died before the worker wrote anything: not a run, not user files.
LEFTOVERS = frozenset({CONFIG_TOML, "logs", STOP_FILE})
# Files a Hugging Face training script leaves in its output_dir.
_HF_OUTPUTS = (
    TRAINER_STATE, "all_results.json", "train_results.json", "eval_results.json",
    "training_args.bin", "model.safetensors", "pytorch_model.bin", "adapter_model.safetensors",
    "model.safetensors.index.json",
)  # fmt: skip
#: The command a complete run's hint shows (the dashboard has its own "train further").
DEFAULT_HOW = "clmtune train FILE --run-dir RUN --resume last"
# Settings the saved checkpoints depend on: changing them cannot load the weights or the data.
_INCOMPATIBLE: tuple[tuple[str, str], ...] = (
    ("model", "model_name_or_path"),
    ("model", "config_name"),
    ("model", "model_type"),
    ("model", "tokenizer_name"),
    ("data", "block_size"),
)
# Where the run is, not what it does: never a "change".
_NOT_SETTINGS = {("training", "output_dir")}


class RunComplete(RunDirError):
    """The run already reached its ``max_steps`` / epochs: resuming would damage it.

    ``step`` is the step it reached, ``max_steps`` what its settings train to (None when
    epochs decide): what "train further" starts from.
    """

    def __init__(self, message: str, hint: str = "", *, step: int | None = None,
                 max_steps: int | None = None) -> None:  # fmt: skip
        super().__init__(message, hint)
        self.step = step
        self.max_steps = max_steps


@dataclass(frozen=True)
class RunPlan:
    """What a start will do in ``run_dir``: ``fresh`` or ``resume`` from ``checkpoint``."""

    action: str  # "fresh" | "resume"
    run_dir: Path
    checkpoint: Path | None = None
    #: Settings changed since the run's last attempt (allowed; the launcher records them).
    changes: tuple[str, ...] = ()
    #: Among those, what keeps the resume from continuing exactly (batch, schedule, …).
    warnings: tuple[str, ...] = field(default=())
    #: Checkpoints after the one resumed from: the history this resume leaves. The
    #: launcher moves them into ``superseded/`` (never deleted), so that neither a later
    #: "resume newest" nor the checkpoint rotation mixes the two histories.
    superseded: tuple[Path, ...] = field(default=())


# ------------------------------------------------------------------ the folder


def _entries(path: Path) -> set[str]:
    try:
        return {e.name for e in os.scandir(path)}
    except OSError:
        return set()


def is_ours(path: Path) -> bool:
    """True for a folder holding a clmtune run (``run.json`` or ``events.jsonl``)."""
    return (path / RUN_JSON).is_file() or (path / EVENTS_FILE).is_file()


def _hf_outputs(names: set[str]) -> list[str]:
    found = [n for n in _HF_OUTPUTS if n in names]
    found += sorted(n for n in names if CHECKPOINT_RE.match(n))[:1]
    return found


def _holds_run(path: Path) -> bool:
    names = _entries(path)
    return bool(RUN_JSON in names or EVENTS_FILE in names or _hf_outputs(names))


def check_target(run_dir: Path) -> bool:
    """Refuse a folder that no start may write into; returns whether it holds a run of ours.

    Inside a run (a checkpoint, any folder below a run), a plain Hugging Face output folder, a
    file, or a folder of other files: :class:`RunDirError`. A missing or empty folder: False.
    """
    run_dir = Path(run_dir)
    for parent in run_dir.parents:
        if not _holds_run(parent):
            continue
        if parent == run_dir.parent and CHECKPOINT_RE.match(run_dir.name):
            raise RunDirError(
                f"{run_dir}: is a checkpoint of the run {parent}; training into it would"
                " overwrite its weights and state",
                f"give a new run folder, or resume that run: clmtune train --run-dir {parent}"
                " --resume last",
            )
        raise RunDirError(
            f"{run_dir}: is inside the run folder {parent}; a run never goes into another",
            "give a run folder outside it",
        )
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a directory", "pick another --run-dir")
    if not run_dir.is_dir():
        return False
    if is_ours(run_dir):
        return True
    names = _entries(run_dir)
    outputs = _hf_outputs(names)
    if outputs:
        raise RunDirError(
            f"{run_dir}: holds Hugging Face training outputs ({', '.join(outputs[:3])}) written"
            " by another script; clmtune does not train into them",
            "give a new or empty run folder (to start from its model, set [model]"
            f" model_name_or_path = {run_dir})",
        )
    if names - LEFTOVERS:
        raise RunDirError(
            f"{run_dir}: exists and holds other files", "give a new or empty --run-dir"
        )
    return False


# ------------------------------------------------------------------ settings


def run_settings(run_dir: Path) -> RunConfig | None:
    """The settings of the run's last attempt (its frozen ``config.toml``), if readable.

    Read as they are, not validated: a run's data file may be gone and its record still be
    worth deciding on (starting validates again).
    """
    from clmtune.backend.settings.problems import ConfigError
    from clmtune.backend.settings.run_config import RunConfig
    from clmtune.backend.settings.toml_io import read_toml

    path = run_dir / CONFIG_TOML
    if not path.is_file():
        return None
    try:
        data = read_toml(path)
    except ConfigError:
        return None
    names = ("model", "data", "training", "launch", "samples")
    sections = {k: v for k, v in data.items() if k in names and isinstance(v, dict)}
    return RunConfig(**sections, source=path)


def _last_block_size(run_dir: Path) -> int | None:
    """The block size the run really used (its settings may leave it to the tokenizer)."""
    started = [e for e in read_events(run_dir / EVENTS_FILE) if e.get("type") == "run_started"]
    value = started[-1].get("block_size") if started else None
    return value if isinstance(value, int) else None


def settings_changes(old: RunConfig, new: RunConfig) -> list[str]:
    """Every setting that differs between two configs, one line each (``[s] key: a → b``)."""
    new = new.resolved()
    lines: list[str] = []
    for section in ("model", "data", "training", "launch", "samples"):
        before, now = getattr(old, section), getattr(new, section)
        for key in sorted(set(before) | set(now)):
            if (section, key) in _NOT_SETTINGS or before.get(key) == now.get(key):
                continue
            lines.append(f"[{section}] {key}: {before.get(key)!r} → {now.get(key)!r}")
    return lines


def _incompatibility(run_dir: Path, old: RunConfig, new: RunConfig) -> str | None:
    new = new.resolved()
    for section, key in _INCOMPATIBLE:
        before, now = getattr(old, section).get(key), getattr(new, section).get(key)
        if (section, key) == ("data", "block_size"):
            if now is None:
                continue  # left to the tokenizer, as before: the same model gives the same
            before = before if before is not None else _last_block_size(run_dir)
            if before is None:
                continue
        if before != now:
            return f"[{section}] {key} was {before!r}, now {now!r}"
    return None


# ------------------------------------------------------------------ progress


def _target(cfg: Any) -> tuple[int | None, float | None]:
    """(max_steps, num_train_epochs) the settings train to; max_steps wins when set."""
    steps = cfg.settings.training.max_steps
    if isinstance(steps, int) and steps > 0:
        return steps, None
    epochs = cfg.settings.training.num_train_epochs
    return None, float(epochs) if isinstance(epochs, (int, float)) else 3.0


def _reached(state: dict, cfg: Any) -> bool:
    """Whether a ``trainer_state.json`` already reached what the settings train to."""
    steps, epochs = _target(cfg)
    step = state.get("global_step")
    if steps is not None:
        return isinstance(step, int) and step >= steps
    epoch = state.get("epoch")
    # Trainer's epoch is a float summed per step: allow for rounding at the very end.
    return isinstance(epoch, (int, float)) and epochs is not None and epoch >= epochs - 1e-4


def _goal_text(cfg: Any) -> str:
    steps, epochs = _target(cfg)
    return f"max_steps = {steps}" if steps is not None else f"num_train_epochs = {epochs:g}"


def _complete_error(run_dir: Path, state: dict, cfg: Any, how: str) -> RunComplete:
    step = state.get("global_step")
    at = f"step {step}" if isinstance(step, int) else "its end"
    return RunComplete(
        f"{run_dir.name}: the run is complete ({at}, {_goal_text(cfg)}); nothing was changed",
        f"to train further raise [training] max_steps (or num_train_epochs) and resume it"
        f" ({how}), or start a new run",
        step=step if isinstance(step, int) else None, max_steps=_target(cfg)[0],
    )


def _final_state(run_dir: Path, info: dict) -> dict | None:
    """What a completed run reached: its final ``trainer_state.json``, else run.json's step."""
    state = read_json(run_dir / TRAINER_STATE)
    if isinstance(state, dict) and isinstance(state.get("global_step"), int):
        return state
    if isinstance(info.get("global_step"), int):
        return {"global_step": info["global_step"]}
    return None


# ------------------------------------------------------------------ the plan


def plan_run(
    run_dir: Path, cfg: RunConfig, resume: str | None = None, *, how: str = DEFAULT_HOW
) -> RunPlan:
    """Decide what starting ``cfg`` in ``run_dir`` does; raise :class:`RunDirError` to refuse.

    ``resume``: None (a new run: the folder must be new or empty), ``"last"`` (the newest
    complete checkpoint), ``"auto"`` (fresh when there is no complete checkpoint, else like
    ``"last"``; the same command line on every requeue) or a checkpoint path. ``how`` is the
    command shown in the hint of a complete run. Writes nothing.
    """
    run_dir = Path(run_dir).resolve()
    ours = check_target(run_dir)
    if ours and read_run(run_dir).status == "running":
        raise RunDirError(
            f"{run_dir}: a run is still running there",
            f"stop it first (clmtune stop {run_dir})",
        )
    if resume is None:
        if ours:
            # Like run_clm without --overwrite_output_dir: a fresh start would mix two runs.
            if read_run(run_dir).status == "completed":
                how_on = ("it is complete: to train further, raise max_steps and add --resume "
                          "last;")
            elif any(c.resumable for c in list_checkpoints(run_dir)):
                how_on = "continue it with --resume last (or auto)"
            else:  # "last" would find no checkpoint; "auto" starts it again
                how_on = "it has no complete checkpoint: start it again with --resume auto"
            raise RunDirError(f"{run_dir} already holds a run; {how_on} or pick another --run-dir")
        return RunPlan("fresh", run_dir)
    if not ours:
        if resume == RESUME_AUTO:
            return RunPlan("fresh", run_dir)
        if not run_dir.exists():
            raise RunDirError(
                f"--resume {resume}: {run_dir} does not exist",
                "pass --run-dir of the run to resume",
            )
        raise RunDirError(f"{run_dir}: no run to resume there", "start without --resume")
    info = read_run_json(run_dir)
    completed = info.get("status") == "completed"
    checkpoints = list_checkpoints(run_dir)
    complete_ckpts = [c for c in checkpoints if c.resumable]
    if resume == RESUME_AUTO and not complete_ckpts and not completed:
        return RunPlan("fresh", run_dir)  # killed before its first checkpoint: start again
    final = _final_state(run_dir, info) if completed else None
    if final is not None and _reached(final, cfg):
        raise _complete_error(run_dir, final, cfg, how)
    if completed and final is None:
        raise RunComplete(
            f"{run_dir.name}: the run is complete; nothing was changed",
            "start a new run to train more",
        )
    checkpoint = resolve_resume(run_dir, RESUME_LAST if resume == RESUME_AUTO else resume)
    state = read_json(checkpoint / TRAINER_STATE)
    state = state if isinstance(state, dict) else {}
    if _reached(state, cfg):
        raise _complete_error(run_dir, state, cfg, how)
    last = complete_ckpts[-1].path.resolve() if complete_ckpts else None
    if completed and last is not None and checkpoint != last:
        raise RunDirError(
            f"{run_dir.name}: the run is complete; training further continues from its last"
            f" checkpoint ({last.name}), not {checkpoint.name}",
            "resume with --resume last",
        )
    old = run_settings(run_dir)
    changes: list[str] = []
    if old is not None:
        problem = _incompatibility(run_dir, old, cfg)
        if problem is not None:
            raise RunDirError(
                f"{run_dir.name}: cannot resume with these settings: {problem}; the checkpoints"
                " were saved for the old value",
                "undo that change, or start a new run for the new settings",
            )
        changes = settings_changes(old, cfg)

    warnings = resume_warnings(run_dir, checkpoint, cfg)
    later = _later_checkpoints(run_dir, checkpoint, checkpoints)
    if later:
        names = ", ".join(p.name for p in later)
        warnings.append(
            f"{names} {'comes' if len(later) == 1 else 'come'} after {checkpoint.name}: the"
            f" history this resume leaves; moved to {SUPERSEDED_DIR}/ (nothing is deleted)"
        )
    return RunPlan("resume", run_dir, checkpoint, tuple(changes), tuple(warnings),
                   superseded=later)


def _later_checkpoints(run_dir: Path, checkpoint: Path,
                       checkpoints: list[CheckpointInfo]) -> tuple[Path, ...]:
    """The folders of ``checkpoints`` (``run_dir``'s, any state) past ``checkpoint``."""
    match = CHECKPOINT_RE.match(checkpoint.name)
    if match is None or checkpoint.resolve().parent != run_dir.resolve():
        return ()
    step = int(match.group(1))
    return tuple(c.path for c in checkpoints if c.step > step)


def need_fixed_dir(resume: str | None, run_dir: Path | None, cfg: Any) -> None:
    """``--resume auto``/``last`` must name the run's folder: a new dated one never holds it.

    ``auto`` must find the same folder on every requeue; ``last`` without a folder would
    look in a fresh ``runs/NAME-DATE`` and report it missing, which says nothing useful.
    """
    if resume not in (RESUME_AUTO, RESUME_LAST) or run_dir is not None:
        return
    if getattr(cfg, "training", {}).get("output_dir"):
        return
    if resume == RESUME_AUTO:
        raise UsageError(
            "--resume auto needs a fixed run folder",
            "pass --run-dir DIR or set [training] output_dir",
        )
    raise UsageError(
        "--resume last needs the folder of the run to resume",
        "pass --run-dir runs/NAME (clmtune runs lists them) or set [training] output_dir",
    )


# ------------------------------------------------------------------ resume warnings

_EXACT_KEYS: tuple[tuple[str, str, str], ...] = (
    ("training", "per_device_train_batch_size", "the batch size"),
    ("training", "gradient_accumulation_steps", "the accumulation"),
    ("training", "learning_rate", "the schedule"),
    ("training", "lr_scheduler_type", "the schedule"),
    ("training", "warmup_steps", "the schedule"),
    ("training", "max_steps", "the schedule"),
    ("training", "num_train_epochs", "the schedule"),
    ("training", "weight_decay", "the optimizer"),
    ("training", "optim", "the optimizer"),
    ("training", "seed", "the data order"),
    ("training", "data_seed", "the data order"),
    ("data", "dataset_name", "the data"),
    ("data", "dataset_config_name", "the data"),
    ("data", "train_file", "the data"),
    ("data", "block_size", "the data"),
    ("data", "max_train_samples", "the data"),
    ("data", "packing", "the data"),
    ("data", "keep_linebreaks", "the data"),
    ("data", "validation_split_percentage", "the data"),
    ("model", "model_name_or_path", "the model"),
    ("peft", "method", "the trained weights"),
    ("peft", "r", "the adapter"),
    ("peft", "target_modules", "the adapter"),
)


def _setting(cfg: RunConfig, section: str, key: str) -> Any:
    # Typed read: a key of _EXACT_KEYS that is not a setting raises (tests/test_settings.py).
    return getattr(getattr(cfg.settings, section), key)


def _old_config(checkpoint: Path, run_dir: Path) -> Any | None:
    from clmtune.backend.settings.problems import ConfigError
    from clmtune.backend.settings.run_config import RunConfig
    from clmtune.backend.settings.toml_io import read_toml

    for candidate in (checkpoint.parent / CONFIG_TOML, run_dir / CONFIG_TOML):
        if candidate.is_file():
            try:
                data = read_toml(candidate)
            except ConfigError:
                continue  # unreadable: no settings to compare with, so no warnings
            sections = {
                k: v
                for k, v in data.items()
                if k in ("model", "data", "training", "launch", "samples", "peft")
                and isinstance(v, dict)
            }
            return RunConfig(**sections, source=candidate)  # fmt: skip
    return None


def world_size(cfg: RunConfig) -> int:
    return int(cfg.settings.launch.nproc_per_node) * int(cfg.settings.launch.nnodes)


def resume_warnings(run_dir: Path, checkpoint: Path, cfg: RunConfig | None = None) -> list[str]:
    """Settings that differ from the checkpoint's and so break exact continuation.

    The checkpoint's own settings come from the frozen ``config.toml`` of the
    run that wrote it (else, in a plain Hugging Face dir, ``train_batch_size`` of
    its ``trainer_state.json``) and from its completion marker (world size);
    reading ``training_args.bin`` would need torch.
    """
    from clmtune.backend.rundir.layout import COMPLETE_MARKER

    run_dir, checkpoint = Path(run_dir), Path(checkpoint)
    if cfg is None:
        from clmtune.backend.settings.toml_io import load_config

        cfg = load_config(run_dir / CONFIG_TOML)
    old = _old_config(checkpoint, run_dir)
    found: list[str] = []
    if old is not None:
        for section, key, what in _EXACT_KEYS:
            before, now = _setting(old, section, key), _setting(cfg, section, key)
            if before != now:
                found.append(
                    f"[{section}] {key} was {before!r} at {checkpoint.name}, now {now!r}:"
                    f" {what} changes, the run will not continue exactly"
                )
    # Without a frozen config (a plain Hugging Face dir) the trainer state tells the batch
    # size; with one, the config wins: Trainer copies train_batch_size from the checkpoint
    # it resumed, so after one resume with a new batch size the state holds a stale value.
    state = read_json(checkpoint / "trainer_state.json") if old is None else None
    bs_now = cfg.settings.training.per_device_train_batch_size
    if isinstance(state, dict) and isinstance(state.get("train_batch_size"), int) and bs_now:
        if state["train_batch_size"] != int(bs_now):
            found.append(
                f"[training] per_device_train_batch_size was {state['train_batch_size']} at"
                f" {checkpoint.name}, now {bs_now}: the batch size changes, the run will not"
                " continue exactly"
            )
    marker = read_json(checkpoint / COMPLETE_MARKER)
    ws_before = marker.get("world_size") if isinstance(marker, dict) else None
    if ws_before is None:
        ws_before = read_run_json(checkpoint.parent).get("world_size")
    ws_now = world_size(cfg)
    if isinstance(ws_before, int) and ws_before != ws_now:
        found.append(
            f"world size was {ws_before} at {checkpoint.name}, now {ws_now}: the effective batch"
            " and data order change, the run will not continue exactly"
        )
    return found
