"""Which folder of a run a generation loads, and the run's ``samples.jsonl``.

Pure Python (the dashboard's Try screen imports it): no torch, no transformers. The model
itself is loaded in :mod:`clmtune.backend.tools.generate` (the CLI, the warm helper process
and the training-time samples), never here.

``samples.jsonl`` in a run folder is append-only, one JSON object per line, one line per
generation: ``time`` (UNIX seconds), ``source`` (``cli`` | ``try`` | ``train``), ``checkpoint``
(``final`` or ``checkpoint-N``), ``step`` (int or None), ``prompt``, ``completion``,
``tokens`` (new tokens made), ``seconds``, ``settings`` (max_new_tokens, temperature, top_p,
seed, device, dtype). A torn last line (a crash mid-write) is skipped when read. Only a
run folder gets one (:func:`keeps_samples`: a clmtune run, or a plain Hugging Face output
folder): an export or a bare saved model is a folder to share, and generating from it leaves
it as it was.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clmtune.backend.errors import UsageError
from clmtune.backend.events import EVENTS_FILE, _sanitize
from clmtune.backend.rundir.checkpoints import _weights_state, list_checkpoints
from clmtune.backend.rundir.layout import CONFIG_TOML, RUN_JSON, _read_toml, read_run_json

SAMPLES_FILE = "samples.jsonl"
FINAL = "final"
_write_lock = threading.Lock()


@dataclass(frozen=True)
class ModelChoice:
    """One folder a generation can load: ``label`` is ``final`` or ``checkpoint-N``."""

    label: str
    path: Path
    step: int | None


def holds_model(folder: Path) -> bool:
    """True when ``folder`` has a model config (or a LoRA adapter config) and intact weights."""
    folder = Path(folder)
    try:
        names = {e.name for e in os.scandir(folder)}
    except OSError:
        return False
    if "config.json" not in names and "adapter_config.json" not in names:
        return False
    return _weights_state(folder, names)[0]


def _final_step(run_dir: Path) -> int | None:
    from clmtune.backend.events import read_json

    state = read_json(run_dir / "trainer_state.json")
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) else None


def choices(run_dir: Path) -> list[ModelChoice]:
    """What can be loaded, newest first: the final model (when the run finished, or a plain
    folder holds a model) then every complete checkpoint, newest step first."""
    run_dir = Path(run_dir)
    found: list[ModelChoice] = []
    ours = (run_dir / RUN_JSON).exists()
    finished = not ours or read_run_json(run_dir).get("status") == "completed"
    if finished and holds_model(run_dir):
        found.append(ModelChoice(FINAL, run_dir, _final_step(run_dir)))
    for info in reversed(list_checkpoints(run_dir)):
        if info.resumable:
            found.append(ModelChoice(info.path.name, info.path, info.step))
    return found


def _existing(run_dir: Path) -> str:
    names = [c.label for c in choices(run_dir)]
    others = [f"{c.path.name} ({c.state})" for c in list_checkpoints(run_dir) if not c.resumable]
    listed = ", ".join(names + others)
    return f"existing: {listed}" if listed else "the run has no model and no checkpoint yet"


def pick(run_dir: Path, *, checkpoint: int | None = None, final: bool = False) -> ModelChoice:
    """The folder to load: ``--checkpoint N``, ``--final``, else the default (final model when
    the run finished, else its last complete checkpoint). UsageError (one line listing what
    exists) when that folder is missing or incomplete."""
    run_dir = Path(run_dir)
    available = choices(run_dir)
    if checkpoint is not None:
        label = f"checkpoint-{checkpoint}"
        for choice in available:
            if choice.label == label:
                return choice
        why = "is incomplete" if (run_dir / label).is_dir() else "does not exist"
        raise UsageError(f"{run_dir}: {label} {why}; {_existing(run_dir)}")
    if final:
        if available and available[0].label == FINAL:
            return available[0]
        raise UsageError(f"{run_dir}: no final model (the run has not finished); "
                         f"{_existing(run_dir)}")
    if available:
        return available[0]
    raise UsageError(f"{run_dir}: nothing to generate from; {_existing(run_dir)}")


def choice_for(run_dir: Path, label: str) -> ModelChoice:
    """The folder a label names (``final`` / ``checkpoint-N``), checked like :func:`pick`."""
    if label == FINAL:
        return pick(run_dir, final=True)
    try:
        step = int(label.removeprefix("checkpoint-"))
    except ValueError:
        raise UsageError(f"{label}: not a checkpoint; use 'final' or checkpoint-N") from None
    return pick(run_dir, checkpoint=step)


def trained_bf16(run_dir: Path) -> bool:
    """Whether the run's frozen ``config.toml`` trained in bf16 (False for plain folders)."""
    training = _read_toml(Path(run_dir) / CONFIG_TOML).get("training")
    return isinstance(training, dict) and training.get("bf16") is True


def keeps_samples(folder: Path) -> bool:
    """Whether generations from ``folder`` go to its ``samples.jsonl``: a training run's
    folder keeps them (a clmtune run: ``run.json`` or ``events.jsonl``; a plain Hugging Face
    output folder: ``trainer_state.json``, which the dashboard lists as a run). An exported
    model, a bare saved model or a checkpoint folder given by its path is left untouched."""
    folder = Path(folder)
    if (folder / RUN_JSON).is_file() or (folder / EVENTS_FILE).is_file():
        return True
    return (folder / "trainer_state.json").is_file() and not folder.name.startswith(
        "checkpoint-")


def append_sample(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append one generation to ``run_dir/samples.jsonl`` (``time`` filled in when missing).

    Callers check :func:`keeps_samples` first; this writes wherever it is told."""
    record = {"time": time.time(), **record}
    line = json.dumps(_sanitize(record), ensure_ascii=False) + "\n"
    with _write_lock, open(Path(run_dir) / SAMPLES_FILE, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
    return record


def read_samples(run_dir: Path) -> list[dict[str, Any]]:
    """Every generation recorded for a run, oldest first (torn or foreign lines skipped)."""
    try:
        text = (Path(run_dir) / SAMPLES_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict) and isinstance(item.get("prompt"), str):
            out.append(item)
    return out
