"""Failure-drill hooks loaded by the worker in tests only.

The worker appends ``make_callbacks(run_dir)`` to its callbacks when
``CLMTUNE_TEST_CALLBACKS=tests.drill_hooks:make_callbacks`` is set; which drill
runs is chosen with the environment variables below. Nothing here is imported
by the package itself, and the event callback's hot path never sees it.

- ``DRILL_PAUSE_AT=K``: at the end of step K, wait until ``stop.request`` or
  ``drill.continue`` exists in the run dir (so a test can act on a live worker
  at a known step however fast the machine is); ``drill.paused`` says it waits.
- ``DRILL_OOM_AT=K``: raise ``torch.OutOfMemoryError`` at the start of step K+1.
- ``DRILL_NAN_AT=K``: poison the weights with NaN at the start of step K+1.
- ``DRILL_STEP_DELAY=S``: sleep S seconds after every step (a wider kill window).
- ``DRILL_HANG_IN_SAVE=K``: while saving ``checkpoint-K``, after the optimizer and
  scheduler are written and before the RNG state and ``trainer_state.json``,
  touch ``RUN_DIR/drill.in_save`` and sleep, so a test can kill -9 mid-save.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from transformers import Trainer, TrainerCallback

WAIT_LIMIT_S = 120.0


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


class DrillCallback(TrainerCallback):
    """Injects the failure selected by the DRILL_* environment variables."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.pause_at = _int_env("DRILL_PAUSE_AT")
        self.oom_at = _int_env("DRILL_OOM_AT")
        self.nan_at = _int_env("DRILL_NAN_AT")
        self.delay = float(os.environ.get("DRILL_STEP_DELAY") or 0)

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        import torch

        if self.oom_at is not None and state.global_step == self.oom_at:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 20.00 GiB (injected by the drill)"
            )
        if self.nan_at is not None and state.global_step == self.nan_at and model is not None:
            with torch.no_grad():
                for param in model.parameters():
                    param.fill_(float("nan"))

    def on_step_end(self, args, state, control, **kwargs):
        if self.delay:
            time.sleep(self.delay)
        if self.pause_at is not None and state.global_step == self.pause_at:
            deadline = time.monotonic() + WAIT_LIMIT_S
            release = (self.run_dir / "stop.request", self.run_dir / "drill.continue")
            (self.run_dir / "drill.paused").write_text(str(state.global_step))
            while not any(p.exists() for p in release) and time.monotonic() < deadline:
                time.sleep(0.02)


def _hang_in_save(run_dir: Path, step: int) -> None:
    original = Trainer._save_rng_state

    def slow_rng_state(self: Trainer, output_dir: str) -> None:
        if Path(output_dir).name == f"checkpoint-{step}":
            (run_dir / "drill.in_save").write_text(output_dir)
            time.sleep(WAIT_LIMIT_S)
        original(self, output_dir)

    Trainer._save_rng_state = slow_rng_state


def make_callbacks(run_dir: Path) -> list[TrainerCallback]:
    """The worker's test hook: the drill callback (and the save patch when asked)."""
    hang = _int_env("DRILL_HANG_IN_SAVE")
    if hang is not None:
        _hang_in_save(Path(run_dir), hang)
    return [DrillCallback(Path(run_dir))]
