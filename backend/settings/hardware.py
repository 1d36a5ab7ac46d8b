"""Checks that depend on this machine's hardware (bf16 on a CPU laptop, too many processes).

They import torch, so they run only where a run starts and in ``clmtune check`` (which
refuses QLoRA without CUDA, as a launch does, but only warns about precision and process
counts), never in the TUI: a file edited on a laptop may be meant for a GPU server. The
editor gets :func:`precision_notes` instead: the same precision warnings, from a look at
``/dev`` rather than from torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from clmtune.backend.settings.problems import FieldError
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.validate_peft import peft_hardware_problems

#: The [training] flags that need a CUDA GPU (or, for bf16, use_cpu).
PRECISION_FLAGS = ("bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval")


def hardware_checks(cfg: RunConfig) -> list[str]:
    """Problems with the requested precision / process count on this machine's hardware.

    Imports torch (seconds) only when a setting needs it. ``clmtune check`` shows them as
    warnings; a launch (``for_launch=True``) refuses them.
    """
    return [str(e) for e in hardware_problems(cfg)]


def hardware_problems(cfg: RunConfig) -> list[FieldError]:
    """``hardware_checks`` as FieldErrors (what a launch refuses): precision and process
    count, then ``[model] load_in_4bit`` / ``load_in_8bit`` without a CUDA GPU."""
    return precision_problems(cfg) + peft_hardware_problems(cfg)


def precision_problems(cfg: RunConfig) -> list[FieldError]:
    """Precision flags (bf16, fp16, tf32) and process counts this machine cannot honour.

    ``clmtune check`` only warns about these, unlike the rest of what a launch refuses: a
    GPU preset written on a laptop checks there (the README's ``gpu-fast`` promise).
    """
    file = str(cfg.source) if cfg.source else None
    settings = cfg.settings
    wanted = [k for k in PRECISION_FLAGS if getattr(settings.training, k) is True]
    nproc = settings.launch.nproc_per_node
    if not wanted and nproc <= 1:
        return []
    import torch  # lazy: seconds to import, and the TUI never may

    problems: list[FieldError] = []
    cuda = torch.cuda.is_available()
    use_cpu = bool(settings.training.use_cpu)
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    for key in wanted:
        message = None
        if key.startswith("bf16") and use_cpu:
            continue  # CPU bfloat16 autocast is supported with use_cpu = true
        if not cuda or use_cpu:
            if mps and not use_cpu and key != "tf32":
                continue
            fix = " (or use_cpu = true for CPU bfloat16)" if key.startswith("bf16") else ""
            message = f"{key} = true needs a CUDA GPU and none is visible here; set {key} = " \
                      f"false{fix}"
        elif key.startswith("bf16") and not torch.cuda.is_bf16_supported():
            message = f"{key} = true: this GPU has no bfloat16 support (Ampere or newer needed); " \
                      "use fp16 = true instead"
        elif key == "tf32" and torch.cuda.get_device_capability(0) < (8, 0):
            message = "tf32 = true needs an Ampere or newer GPU; set tf32 = false"
        if message:
            problems.append(FieldError("training", key, message, file))
    if cuda and not use_cpu and nproc > torch.cuda.device_count():
        problems.append(FieldError(
            "launch", "nproc_per_node",
            f"asks for {nproc} processes but {torch.cuda.device_count()} CUDA device(s) are "
            "visible; use at most one process per GPU", file))
    return problems


def no_nvidia_gpu_here() -> bool:
    """Whether this Linux machine surely shows a run no NVIDIA GPU, without importing torch:
    no ``/dev/nvidia<N>`` device, or ``CUDA_VISIBLE_DEVICES`` set to hide them all.
    False (not sure) elsewhere: a Mac's MPS or a driver this cannot see."""
    if not sys.platform.startswith("linux"):
        return False
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return True
    if Path("/dev/dxg").exists() or Path("/dev/kfd").exists():
        return False  # WSL2's CUDA, or ROCm (torch.cuda on AMD): no /dev/nvidiaN, yet a GPU
    return not any(p.name[6:].isdigit() for p in Path("/dev").glob("nvidia*"))


def precision_notes(training: Mapping[str, Any]) -> list[str]:
    """The dashboard editor's torch-free :func:`precision_problems`: on a machine with no
    NVIDIA GPU, ``[training] bf16 / fp16 / tf32 … = true`` as warnings (a run started
    here fails at once: its worker refuses them; the file may still be meant for a GPU
    server)."""
    wanted = [k for k in PRECISION_FLAGS if training.get(k) is True]
    if not wanted or not no_nvidia_gpu_here():
        return []
    cpu = training.get("use_cpu") is True
    return [f"[training] {key}: needs a CUDA GPU and this machine has none, so a run started "
            f"here fails at once; set {key} = false (fine to keep for a GPU server)"
            for key in wanted if not (cpu and key.startswith("bf16"))]
