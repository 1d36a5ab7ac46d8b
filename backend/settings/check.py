"""``clmtune check FILE``: validate a settings file and say what it would run."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from clmtune.backend.errors import SchemaUnavailable
from clmtune.backend.settings.hardware import precision_problems
from clmtune.backend.settings.problems import ConfigError
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.toml_io import load_config
from clmtune.backend.settings.validate_peft import peft_hardware_problems


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def summary_line(cfg: RunConfig) -> str:
    """One line describing a valid config (model, data, schedule, processes)."""
    settings = cfg.settings
    model = settings.model.model_name_or_path or f"new {settings.model.model_type}"
    data = settings.data.dataset_name or Path(str(settings.data.train_file)).name
    if settings.data.validation_file:
        data += f" + {Path(str(settings.data.validation_file)).name}"
    max_steps = settings.training.max_steps
    schedule = f"{max_steps} steps" if max_steps and max_steps > 0 else \
        f"{_num(float(settings.training.num_train_epochs))} epochs"
    batch = settings.training.per_device_train_batch_size
    accum = settings.training.gradient_accumulation_steps
    procs = settings.launch.nproc_per_node * settings.launch.nnodes
    batch_text = f"batch {batch}" + (f"×{accum} accum" if accum != 1 else "")
    batch_text += f"×{procs} processes" if procs > 1 else ""
    return f"model {model}, data {data}, {schedule}, {batch_text}"


def check_file(path: str | Path) -> int:
    """``clmtune check FILE``: errors on stderr one per line, warnings as "warning: …";
    0 and a one-line summary on stdout when the file is valid, else 2.

    What ``clmtune train`` refuses on this machine is an error here too (a missing package,
    QLoRA without a CUDA GPU), except the precision and process-count checks, which only
    warn so that a file meant for a GPU server checks on a laptop.
    """
    path = Path(path)
    try:
        cfg = load_config(path, for_launch=True, hardware=False)
        refused = peft_hardware_problems(cfg)
        if refused:
            raise ConfigError([dataclasses.replace(p, file=str(path)) for p in refused])
    except ConfigError as exc:
        for error in exc.errors:
            print(str(error), file=sys.stderr)
        return 2
    except SchemaUnavailable as exc:
        print(f"clmtune: error: {exc}", file=sys.stderr)
        return 2
    warnings = cfg.warnings + [str(p) for p in precision_problems(cfg)]
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{path}: ok ({summary_line(cfg)})")
    return 0
