"""Completions during training: ``[samples]`` prompts generated after evaluations.

After every ``every_n_evals``-th evaluation the main process completes each prompt greedily
with the current weights (``model.eval()``, no gradients; train mode restored afterwards),
appends one line per prompt to the run's ``samples.jsonl`` (``source`` ``train``,
``checkpoint`` ``step-N``), emits one ``sample`` event and a ``log`` line with the time it
took. Off when ``[samples] prompts`` is empty (the default): no callback is added at all.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from clmtune.backend.errors import UsageError
from clmtune.backend.events import Emit, make_event
from clmtune.backend.settings.run_config import RunConfig


class SampleCallback(TrainerCallback):
    """Generates the ``[samples]`` prompts after evaluations (main process only)."""

    def __init__(self, run_dir: Path, emit: Emit, prompts: list[str], *, every_n_evals: int = 1,
                 max_new_tokens: int = 32) -> None:
        self.run_dir = Path(run_dir)
        self.emit = emit
        self.prompts = [p for p in prompts if p]
        self.every = max(1, int(every_n_evals))
        self.max_new_tokens = int(max_new_tokens)
        self.evals = 0

    def on_evaluate(self, args, state, control, model=None, processing_class=None,
                    **kwargs):  # noqa: D102
        self.evals += 1
        if (not state.is_world_process_zero or model is None or processing_class is None
                or self.evals % self.every):
            return
        if getattr(args, "fsdp", None) or getattr(args, "deepspeed", None):
            # Sharded weights: a forward pass on one process alone would wait forever.
            if self.evals == self.every:
                self.emit(make_event("log", message="samples: skipped (not available with "
                                                    "FSDP or DeepSpeed; use clmtune generate)"))
            return
        self.sample(model, processing_class, state.global_step)

    def sample(self, model: Any, tokenizer: Any, step: int) -> list[dict[str, Any]]:
        """Complete every prompt now; returns the records written."""
        from clmtune.backend.tools.generate import GenSettings, generate
        from clmtune.backend.tools.generate_io import ModelChoice, append_sample

        settings = GenSettings(max_new_tokens=self.max_new_tokens)
        choice = ModelChoice(f"step-{step}", self.run_dir, step)
        was_training = model.training
        model.eval()
        start = time.perf_counter()
        rows = []
        try:
            for prompt in self.prompts:
                try:
                    gen = generate(model, tokenizer, prompt, settings)
                except UsageError as exc:  # e.g. prompt + max_new_tokens past the positions
                    # A completion is a look at the model, never a reason to stop training.
                    self.emit(make_event("warning", code="sample_skipped",
                                         message=f"samples: {prompt[:40]!r} skipped: {exc}"))
                    continue
                rows.append(append_sample(self.run_dir, {
                    "source": "train", "checkpoint": choice.label, "step": step,
                    "prompt": prompt, "completion": gen.completion, "tokens": gen.tokens,
                    "seconds": round(gen.seconds, 4),
                    "settings": {**settings.to_json(), "device": str(model.device)},
                }))  # fmt: skip
        finally:
            model.train(was_training)
        seconds = time.perf_counter() - start
        self.emit(make_event(
            "sample", step=step, seconds=round(seconds, 4),
            samples=[{k: r[k] for k in ("prompt", "completion", "tokens")} for r in rows],
        ))  # fmt: skip
        self.emit(make_event("log", message=f"samples: {len(rows)} prompt(s) at step {step} "
                                            f"in {seconds:.2f} s"))
        return rows


def sample_callbacks(cfg: RunConfig, run_dir: Path, emit: Emit) -> list[TrainerCallback]:
    """``[SampleCallback]`` when ``[samples] prompts`` is set, else nothing."""
    samples = cfg.settings.samples
    if not samples.prompts:
        return []
    return [SampleCallback(run_dir, emit, list(samples.prompts),
                           every_n_evals=samples.every_n_evals,
                           max_new_tokens=samples.max_new_tokens)]
