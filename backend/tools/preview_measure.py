"""``clmtune preview --measure``: a few real training steps, timed, on the device training uses.

Loads the model the way training does (:func:`clmtune.backend.model.load_model_and_tokenizer`),
takes the first ``per_device_train_batch_size`` blocks of the prepared training data, and
runs forward + backward + an optimizer step (Trainer's optimizer, autocast for bf16/fp16,
gradient checkpointing when set): one warm-up step, then ``steps`` timed ones. Seconds per
optimizer step = seconds per micro-batch x gradient accumulation. On a GPU the peak of
``torch.cuda.max_memory_allocated`` is reported too (what the estimate is checked against).
"""

from __future__ import annotations

import resource
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clmtune.backend.data import PreparedData
    from clmtune.backend.settings.run_config import RunConfig


def measure_step(cfg: RunConfig, data: PreparedData, report: dict[str, Any],
                 steps: int = 3) -> dict[str, Any]:
    """Time ``steps`` training micro-batches; returns seconds per optimizer step and peaks."""
    import torch

    from clmtune.backend.model import load_model_and_tokenizer
    from clmtune.backend.train import build_training_arguments

    t = cfg.settings.training
    use_cuda = torch.cuda.is_available() and not bool(t.use_cpu)
    device = torch.device("cuda" if use_cuda else "cpu")
    model, _, _ = load_model_and_tokenizer(cfg)
    model.to(device)
    if bool(t.gradient_checkpointing):
        model.gradient_checkpointing_enable()
    model.train()
    batch_size = int(report["per_device_train_batch_size"])
    rows = data.train_dataset.select(range(min(batch_size, len(data.train_dataset))))
    batch = {k: torch.tensor(rows[k], device=device) for k in ("input_ids", "attention_mask",
                                                               "labels") if k in rows.features}
    import tempfile

    from transformers import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        args = build_training_arguments(cfg, tmp, has_validation=True)  # only the optimizer is used
        evaluation = data.eval_dataset if data.eval_dataset is not None else data.train_dataset
        trainer = Trainer(model=model, args=args, train_dataset=data.train_dataset,
                          eval_dataset=evaluation)
        optimizer = trainer.create_optimizer()
    dtype = torch.bfloat16 if t.bf16 else torch.float16 if t.fp16 else None

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def sync() -> None:
        if use_cuda:
            torch.cuda.synchronize()

    for _ in range(2):  # warm-up: kernels, allocator, optimizer state
        step()
    sync()
    if use_cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    per_micro = (time.perf_counter() - start) / steps
    accumulation = int(report["gradient_accumulation_steps"])
    return {
        "device": str(device),
        "batch_size": batch_size,
        "seconds_per_micro_batch": per_micro,
        "seconds_per_step": per_micro * accumulation,
        "peak_memory": int(torch.cuda.max_memory_allocated()) if use_cuda else None,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
