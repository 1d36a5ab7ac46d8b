"""Starting TOML files for ``clmtune init [--preset NAME] FILE`` and the TUI's "new run".

A preset is a few set keys, each with a comment saying what it does. ``demo`` trains a
tiny model from scratch fully offline, on assets built next to the TOML file in
``clmtune-demo/``; ``gpt2-text`` is the classic "fine-tune GPT-2 on a text file" tutorial
ported to transformers 5.

Pure Python at import time (the TUI imports it); building the demo assets imports
torch and transformers inside ``ensure_demo_assets``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clmtune.backend.errors import UsageError
from clmtune.backend.settings.atomic_write import atomic_write_text
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.schema import SECTIONS

# The demo's training settings, the one place they are defined (``backend.demo`` and the
# benchmarks read them through ``preset_sections``). The demo must finish (evaluation
# included) within two minutes on 2 CPU cores while the loss falls well over 20%; tune here.
DEMO_DIR_NAME = "clmtune-demo"
DEMO_ASSET_SIZE = "demo"
DEMO_MAX_STEPS = 300
DEMO_TRAIN_BATCH_SIZE = 16
DEMO_EVAL_BATCH_SIZE = 16
DEMO_LEARNING_RATE = 2e-3
DEMO_WARMUP_STEPS = 20
DEMO_LR_SCHEDULER = "cosine"
DEMO_LOGGING_STEPS = 5
DEMO_EVAL_STEPS = 50
DEMO_SAVE_STEPS = 100
DEMO_SAVE_TOTAL_LIMIT = 3
DEMO_BLOCK_SIZE = 128
DEMO_SEED = 42

# Placeholders for the demo asset paths, replaced by the real ones at render time.
_DEMO_MODEL = "<demo model>"
_DEMO_TRAIN = "<demo train>"
_DEMO_VALIDATION = "<demo validation>"

Setting = tuple[Any, str]  # (value, comment)


@dataclass(frozen=True)
class Preset:
    """A starting config: set keys with one comment each, and what to do next."""

    name: str
    summary: str  # one line, for listings and the file's header
    header: str  # a few comment lines at the top of the file
    settings: dict[str, dict[str, Setting]]
    next_steps: str
    builds_demo_assets: bool = False
    # Options written commented out, after a section's keys: section -> (key, value, comment).
    commented: dict[str, tuple[tuple[str, Any, str], ...]] = field(default_factory=dict)


_DEMO = Preset(
    name="demo",
    summary="a tiny GPT-2-style model trained from scratch, fully offline, in about a minute",
    header=(
        "Trains a tiny GPT-2-style model from scratch on Python's own standard-library\n"
        "source code. Everything it needs was built locally in ./clmtune-demo/ (model,\n"
        "tokenizer, train/validation text): no download, no GPU needed."
    ),
    settings={
        "model": {
            "model_name_or_path": (
                _DEMO_MODEL,
                "A freshly initialised model saved with save_pretrained (a local folder).",
            ),
        },
        "data": {
            "train_file": (_DEMO_TRAIN, "Training text, one example per line."),
            "validation_file": (_DEMO_VALIDATION, "Held-out text for the evaluation loss."),
            "block_size": (DEMO_BLOCK_SIZE, "Tokens per training sequence."),
        },
        "training": {
            "max_steps": (DEMO_MAX_STEPS, "Optimizer steps to run (overrides num_train_epochs)."),
            "per_device_train_batch_size": (DEMO_TRAIN_BATCH_SIZE, "Sequences per step."),
            "per_device_eval_batch_size": (DEMO_EVAL_BATCH_SIZE,
                                           "Sequences per evaluation batch."),
            "learning_rate": (DEMO_LEARNING_RATE,
                              "High, because the model starts from random weights."),
            "lr_scheduler_type": (DEMO_LR_SCHEDULER,
                                  "The learning rate decays along a cosine after warmup."),
            "warmup_steps": (DEMO_WARMUP_STEPS,
                             "Steps of linear warmup from 0 to learning_rate."),
            "logging_steps": (DEMO_LOGGING_STEPS,
                              "Log the loss every N steps (points on the live curve)."),
            "eval_strategy": ("steps", "Evaluate every eval_steps steps."),
            "eval_steps": (DEMO_EVAL_STEPS, "Steps between evaluations."),
            "save_steps": (DEMO_SAVE_STEPS, "Steps between checkpoints (resumable)."),
            "save_total_limit": (DEMO_SAVE_TOTAL_LIMIT,
                                 "Keep only the newest N checkpoints."),
            "seed": (DEMO_SEED, "Random seed, for a repeatable run."),
        },
    },
    next_steps="clmtune train {file}",
    builds_demo_assets=True,
)

_GPT2_TEXT = Preset(
    name="gpt2-text",
    summary="fine-tune GPT-2 on your own train.txt / val.txt (downloads gpt2 from the hub)",
    header=(
        "Fine-tunes the 124M-parameter GPT-2 on plain text, as in the classic tutorial,\n"
        "ported to transformers 5. Put your text in train.txt and val.txt next to this\n"
        "file (one example per line). The first run downloads `gpt2` from the hub; a GPU\n"
        "is strongly recommended."
    ),
    settings={
        "model": {
            "model_name_or_path": ("gpt2", "The pretrained model to start from (a hub id)."),
        },
        "data": {
            "train_file": ("train.txt", "Training text, relative to this file."),
            "validation_file": ("val.txt", "Validation text, relative to this file."),
            "block_size": (128, "Tokens per training sequence (GPT-2 allows up to 1024)."),
        },
        "training": {
            "num_train_epochs": (3, "Passes over the training data."),
            "per_device_train_batch_size": (8, "Sequences per step on each device."),
            "per_device_eval_batch_size": (8, "Sequences per evaluation batch."),
            "learning_rate": (5e-5, "A small learning rate: the model is already trained."),
            "weight_decay": (0.01, "AdamW weight decay."),
            "warmup_steps": (500, "Steps of linear warmup from 0 to learning_rate."),
            "logging_steps": (50, "Log the loss every N steps."),
            "eval_strategy": ("steps", "Evaluate every eval_steps steps "
                                       "(transformers 4 called it evaluation_strategy)."),
            "eval_steps": (400, "Steps between evaluations."),
            "save_steps": (800, "Steps between checkpoints."),
            "save_total_limit": (2, "Keep only the newest N checkpoints."),
        },
    },
    next_steps="put your text in train.txt and val.txt, then: clmtune train {file}",
)

_GPU_FAST = Preset(
    name="gpu-fast",
    summary="full fine-tuning on one modern GPU with the settings that reach a high MFU",
    header=(
        "Full fine-tuning on one Ampere-or-newer NVIDIA GPU (A100, H100, H200, L4, L40S,\n"
        "RTX 30xx/40xx): bf16 mixed precision, TF32 matmuls, fused AdamW, PyTorch SDPA\n"
        "attention (transformers' default where the model supports it), parallel data\n"
        "loading into pinned memory and packed sequences. It starts on the offline demo\n"
        "model and text in ./clmtune-demo/ so it runs as is: put your model (hub id or\n"
        "folder) in model_name_or_path and your text in train_file / validation_file.\n"
        "Install the [gpu] extra (nvidia-ml-py) for the GPU panel; the live view shows\n"
        "the throughput and the MFU (model FLOPs utilisation)."
    ),
    settings={
        "model": {
            "model_name_or_path": (
                _DEMO_MODEL,
                "The model to fine-tune: replace with a hub id (e.g. gpt2) or a local folder.",
            ),
        },
        "data": {
            "train_file": (_DEMO_TRAIN, "Training text, one example per line."),
            "validation_file": (_DEMO_VALIDATION, "Held-out text for the evaluation loss."),
            "block_size": (DEMO_BLOCK_SIZE, "Tokens per sequence: raise it to the model's "
                                            "context (e.g. 1024 for gpt2) for a higher MFU."),
            "packing": ("group", "Concatenate texts into full blocks: no padding is computed."),
            "preprocessing_num_workers": (4, "Processes that encode and group the data."),
        },
        "training": {
            "max_steps": (2000, "Optimizer steps to run."),
            "per_device_train_batch_size": (16, "Sequences per micro-batch on the GPU: as large "
                                                "as fits in memory."),
            "gradient_accumulation_steps": (2, "Micro-batches per optimizer step (32 "
                                               "sequences per step)."),
            "per_device_eval_batch_size": (16, "Sequences per evaluation batch."),
            "learning_rate": (5e-5, "Fine-tuning rate (about 6e-4 for a model from scratch)."),
            "lr_scheduler_type": ("cosine", "Cosine decay after warmup."),
            "warmup_steps": (100, "Steps of linear warmup from 0 to learning_rate."),
            "weight_decay": (0.1, "AdamW weight decay."),
            "bf16": (True, "bfloat16 mixed precision (Ampere or newer); fp16 = true on "
                           "older GPUs."),
            "tf32": (True, "TF32 tensor cores for the float32 matmuls that remain."),
            "optim": ("adamw_torch_fused", "Fused AdamW: one kernel per step for all "
                                           "parameters."),
            "dataloader_num_workers": (4, "Processes preparing batches while the GPU trains."),
            "dataloader_pin_memory": (True, "Pinned host memory: faster copies to the GPU."),
            "dataloader_persistent_workers": (True, "Keep the loader processes between "
                                                    "epochs."),
            "logging_steps": (50, "Log every N steps (each log waits for the GPU)."),
            "eval_strategy": ("steps", "Evaluate every eval_steps steps."),
            "eval_steps": (500, "Steps between evaluations."),
            "save_steps": (1000, "Steps between checkpoints."),
            "save_total_limit": (2, "Keep only the newest N checkpoints."),
        },
    },
    commented={
        "training": (
            ("torch_compile", True, "torch.compile the model: often faster after a minute or "
                                    "two of compiling; measure it."),
        ),
    },
    next_steps="clmtune check {file}, then on the GPU machine: clmtune train {file}",
    builds_demo_assets=True,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (_DEMO, _GPT2_TEXT, _GPU_FAST)}


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise KeyError(f"unknown preset '{name}'; choose one of: {', '.join(PRESETS)}")
    return PRESETS[name]


def demo_dir(dest_toml: Path) -> Path:
    """The folder holding the demo assets of a demo TOML file."""
    return Path(dest_toml).absolute().parent / DEMO_DIR_NAME


def demo_folder_problem(dest_toml: Path, size: str | None = None) -> str | None:
    """Why the demo assets beside ``dest_toml`` cannot be built or reused, else None.

    The ``clmtune-demo`` folder may be the user's: only a missing or empty folder, or a
    complete demo build, may be used; anything else would lose their files.
    """
    from clmtune.backend.demo import reusable_problem  # no heavy imports: stdlib + events

    return reusable_problem(demo_dir(dest_toml), size or DEMO_ASSET_SIZE)


def ensure_demo_assets(dest_toml: Path, size: str | None = None) -> Any:
    """Build (or reuse) the demo assets beside ``dest_toml``; returns ``backend.demo.DemoAssets``.

    Slow the first time (a tokenizer is trained, a model built): call it from a worker.
    Raises :class:`UsageError` when the folder holds files the demo did not make.
    """
    # Imported here: backend.demo builds a model with torch/transformers.
    from clmtune.backend.demo import build_demo_assets

    problem = demo_folder_problem(dest_toml, size)
    if problem:
        raise UsageError(problem, "move it away or use another folder (nothing was written)")
    return build_demo_assets(demo_dir(dest_toml), size=size or DEMO_ASSET_SIZE)


def _relative(path: Path, base: Path) -> str:
    rel = os.path.relpath(Path(path).absolute(), base).replace(os.sep, "/")
    # "./" makes a local path unmistakable (a bare "a/b" could be a hub id).
    return rel if rel.startswith(("../", "/")) else f"./{rel}"


def _asset_paths(assets: Any) -> dict[str, Path]:
    """Placeholder -> demo asset path (``assets`` is a ``backend.demo.DemoAssets``)."""
    return {_DEMO_MODEL: Path(assets.model_dir), _DEMO_TRAIN: Path(assets.train_file),
            _DEMO_VALIDATION: Path(assets.validation_file)}


def _values(preset: Preset, dest_toml: Path, assets: Any = None) -> dict[str, dict[str, Setting]]:
    base = Path(dest_toml).absolute().parent
    if assets is not None:
        paths = _asset_paths(assets)
    else:  # the layout backend.demo writes
        folder = demo_dir(dest_toml)
        paths = {_DEMO_MODEL: folder / "model", _DEMO_TRAIN: folder / "train.txt",
                 _DEMO_VALIDATION: folder / "validation.txt"}
    out: dict[str, dict[str, Setting]] = {}
    for section, items in preset.settings.items():
        out[section] = {}
        for key, (value, comment) in items.items():
            if isinstance(value, str) and value in paths:
                value = _relative(paths[value], base)
            out[section][key] = (value, comment)
    return out


def preset_sections(name: str, assets: Any = None) -> dict[str, dict[str, Any]]:
    """A preset's settings as plain values by section, demo asset paths absolute.

    For code that builds a ``RunConfig`` without a TOML file (``backend.demo``, the
    benchmarks); ``assets`` (a ``backend.demo.DemoAssets``) is needed for the demo.
    """
    preset = _preset(name)
    paths = _asset_paths(assets) if assets is not None else {}
    out: dict[str, dict[str, Any]] = {}
    for section, items in preset.settings.items():
        out[section] = {}
        for key, (value, _comment) in items.items():
            if isinstance(value, str) and value in (_DEMO_MODEL, _DEMO_TRAIN, _DEMO_VALIDATION):
                if not paths:
                    raise ValueError(f"preset '{name}' needs the demo assets for {key}")
                value = str(paths[value].absolute())
            out[section][key] = value
    return out


def preset_config(name: str, dest_toml: Path, assets: Any = None) -> RunConfig:
    """The preset as a RunConfig whose source is ``dest_toml`` (for the TUI's editor)."""
    values = _values(_preset(name), dest_toml, assets)
    cfg = RunConfig(source=Path(dest_toml).absolute())
    for section, items in values.items():
        cfg.section(section).update({k: v for k, (v, _) in items.items()})
    return cfg


def _toml_value(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"x": value}).strip()[len("x = "):]


def render_preset(name: str, dest_toml: Path, assets: Any = None) -> str:
    """The commented TOML text of a preset to be written at ``dest_toml``.

    Asset paths (demo) are relative to the file's folder; ``assets`` is what
    ``ensure_demo_assets`` returned, else the standard layout is assumed.
    """
    preset = _preset(name)
    values = _values(preset, dest_toml, assets)
    lines = [f"# clmtune preset '{preset.name}': {preset.summary}."]
    lines += [f"# {line}" if line else "#" for line in preset.header.splitlines()]
    lines += [
        "#",
        "# Keys are Hugging Face argument names (run_clm.py's ModelArguments and",
        "# DataTrainingArguments, and transformers.TrainingArguments). Any other setting can",
        "# be added; `clmtune check FILE` validates the file.",
    ]
    for section in SECTIONS:
        items = values.get(section)
        if not items:
            continue
        lines += ["", f"[{section}]"]
        for key, (value, comment) in items.items():
            lines += [f"# {comment}", f"{key} = {_toml_value(value)}"]
        for key, value, comment in preset.commented.get(section, ()):
            lines += [f"# {comment}", f"# {key} = {_toml_value(value)}"]
    return "\n".join(lines) + "\n"


def init_file(path: str | Path, preset: str = "demo", *, force: bool = False,
              demo_size: str | None = None) -> int:
    """``clmtune init [--preset NAME] FILE``: write a commented starting file.

    Returns the exit code: 0, 2 for a refusal (unknown preset, existing file without
    ``force``, missing folder), 1 when the demo assets cannot be built. Messages are one
    line on stderr; success prints what to run next on stdout. ``demo_size`` ("tiny")
    is for tests.
    """
    path = Path(path)
    if preset not in PRESETS:
        return _fail(f"unknown preset '{preset}'; choose one of: {', '.join(PRESETS)}")
    if path.is_dir():
        return _fail(f"{path} is a folder; give the name of the TOML file to write")
    if path.exists() and not force:
        return _fail(f"{path} already exists; choose another name or pass --force to "
                     "overwrite it")
    if not path.absolute().parent.is_dir():
        return _fail(f"folder {path.absolute().parent} does not exist; create it first")
    chosen = PRESETS[preset]
    assets = None
    if chosen.builds_demo_assets:
        problem = demo_folder_problem(path, demo_size)
        if problem:  # never replace files the demo did not make; write nothing at all
            return _fail(f"{problem}; move it away or write {path.name} in another folder "
                         "(nothing was written)")
        try:
            assets = ensure_demo_assets(path, demo_size)
        except Exception as exc:  # noqa: BLE001 - reported as one line, never a traceback
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"clmtune: error: could not build the demo assets in {demo_dir(path)}: {reason}",
                  file=sys.stderr)
            return 1
    try:
        atomic_write_text(path, render_preset(preset, path, assets))
    except OSError as exc:
        return _fail(f"cannot write {path}: {exc.strerror or exc}")
    print(f"wrote {path} (preset {preset}); next: {chosen.next_steps.format(file=path)}")
    return 0


def _fail(message: str) -> int:
    print(f"clmtune: error: {message}", file=sys.stderr)
    return 2
