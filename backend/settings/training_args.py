"""What the settings become for the training code: TrainingArguments kwargs, torchrun argv,
and the equivalent command line the TUI shows."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from clmtune.backend.settings.problems import ConfigError, FieldError
from clmtune.backend.settings.run_config import RunConfig
from clmtune.backend.settings.schema import TOOL_TRAINING_DEFAULTS


def training_arguments_kwargs(cfg: RunConfig, output_dir: str | Path, *,
                              has_validation: bool = True) -> dict[str, Any]:
    """Keyword arguments for ``TrainingArguments(**kwargs)``: the user's values over this
    tool's defaults, plus what the tool decides: ``output_dir`` (always the given run dir,
    whatever ``[training] output_dir`` says), do_train, do_eval, NaN/Inf logging.

    Raises ConfigError when evaluation is requested but there is no validation set.
    """
    settings = cfg.settings
    user = settings.training.set_values()
    kwargs: dict[str, Any] = {
        "report_to": TOOL_TRAINING_DEFAULTS["report_to"],
        "logging_steps": TOOL_TRAINING_DEFAULTS["logging_steps"],
        "logging_first_step": TOOL_TRAINING_DEFAULTS["logging_first_step"],
        "eval_strategy": "steps" if has_validation else "no",
        "save_strategy": TOOL_TRAINING_DEFAULTS["save_strategy"],
    }
    kwargs.update(user)
    if not has_validation and kwargs["eval_strategy"] != "no":
        raise ConfigError([FieldError(
            "training", "eval_strategy",
            f"'{kwargs['eval_strategy']}' needs a validation set; add validation_file or set "
            'eval_strategy = "no"', str(cfg.source) if cfg.source else None)])
    if kwargs["eval_strategy"] == "steps" and not settings.training.was_set("eval_steps"):
        # Evaluate when a checkpoint is written, not at every log (HF's fallback).
        kwargs["eval_steps"] = kwargs.get("save_steps", 500)
    kwargs.update(
        output_dir=str(output_dir),
        do_train=True,
        do_eval=has_validation,
        logging_nan_inf_filter=False,
    )
    return kwargs


def torchrun_argv(cfg: RunConfig, run_dir: str | Path,
                  launcher: list[str] | None = None) -> list[str]:
    """The torchrun command that starts the worker on this node (no shell).

    ``launcher`` defaults to ``["torchrun"]``; a launcher that must use this venv passes
    ``[sys.executable, "-m", "torch.distributed.run"]``.
    """
    settings = cfg.settings
    argv = list(launcher or ["torchrun"]) + [f"--nproc_per_node={settings.launch.nproc_per_node}"]
    if settings.launch.rdzv_endpoint:  # a c10d rendezvous (clusters): no fixed master
        argv += [f"--nnodes={settings.launch.nnodes}",
                 f"--node_rank={settings.launch.node_rank}", "--rdzv_backend=c10d",
                 f"--rdzv_endpoint={settings.launch.rdzv_endpoint}"]
    elif settings.launch.nnodes > 1 or settings.launch.master_addr or settings.launch.master_port:
        argv += [f"--nnodes={settings.launch.nnodes}",
                 f"--node_rank={settings.launch.node_rank}",
                 f"--master_addr={settings.launch.master_addr or '127.0.0.1'}",
                 f"--master_port={settings.launch.master_port or 29500}"]
    else:
        argv.append("--standalone")  # one machine: torchrun picks a free port itself
    return argv + ["-m", "clmtune.backend.worker", str(run_dir)]


def command_line(cfg: RunConfig, config_path: str | Path,
                 run_dir: str | Path | None = None) -> str:
    """The equivalent shell command(s), for the TUI to show.

    First line: ``clmtune train FILE [--run-dir DIR]``; a second line with the torchrun
    command when the run uses more than one process.
    """
    line = f"clmtune train {shlex.quote(str(config_path))}"
    if run_dir is not None:
        line += f" --run-dir {shlex.quote(str(run_dir))}"
    lines = [line]
    if cfg.settings.launch.distributed:
        lines.append(shlex.join(torchrun_argv(cfg, run_dir if run_dir is not None else "RUN_DIR")))
    return "\n".join(lines)
