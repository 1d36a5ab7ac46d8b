"""The evaluation blocks a model finds hardest (``clmtune inspect-eval``).

The blocks are the ones training evaluated: the run's frozen ``config.toml`` goes through
:func:`clmtune.backend.data.prepare_datasets` (same tokenizer, block size, packing and
``max_eval_samples``). Each block's loss is the mean cross-entropy over its predicted tokens
(labels shifted by one, ``-100`` ignored). The summed token loss of all blocks divided by
their label tokens is the run's ``eval_loss`` (transformers 5's Trainer counts every label
token, shifted or not). Heavy: imported by the command only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clmtune.backend.errors import UsageError

BATCH = 8


@dataclass
class Block:
    """One evaluation block: its index in the eval set, its loss and its text."""

    index: int
    loss: float
    tokens: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "loss": self.loss, "tokens": self.tokens, "text": self.text}


def _batches(dataset: Any, size: int):
    batch: list[dict[str, Any]] = []
    for row in dataset:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def block_losses(model: Any, dataset: Any) -> list[tuple[int, float, int, list[int]]]:
    """(index, loss, predicted tokens, input ids) of every block, in dataset order."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    out = []
    index = 0
    with torch.no_grad():
        for batch in _batches(dataset, BATCH):
            ids = torch.tensor([r["input_ids"] for r in batch], device=model.device)
            labels = torch.tensor([r.get("labels", r["input_ids"]) for r in batch],
                                  device=model.device)
            mask = (torch.tensor([r["attention_mask"] for r in batch], device=model.device)
                    if "attention_mask" in batch[0] else None)
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
            target = labels[:, 1:]
            per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), target,
                                        ignore_index=-100, reduction="none")
            valid = target != -100
            counts = valid.sum(dim=1)
            losses = (per_token * valid).sum(dim=1) / counts.clamp(min=1)
            for row, loss, count in zip(batch, losses.tolist(), counts.tolist(), strict=True):
                out.append((index, float(loss), int(count), list(row["input_ids"])))
                index += 1
    return out


def hardest_blocks(run_dir: Path, folder: Path, *, top: int, device: str) -> list[Block]:
    """The ``top`` blocks with the highest loss under the model in ``folder``."""
    from clmtune.backend.data import prepare_datasets
    from clmtune.backend.settings.toml_io import load_config
    from clmtune.backend.tools.generate import load_for_generation, pick_dtype

    config = Path(run_dir) / "config.toml"
    if not config.is_file():
        raise UsageError(f"{run_dir}: no config.toml; inspect-eval needs the settings the run "
                         "trained with (runs started by clmtune have them)")
    cfg = load_config(config)
    model, tokenizer = load_for_generation(folder, device, pick_dtype(run_dir, device))
    data = prepare_datasets(cfg, tokenizer, model.config,
                            cache_dir=cfg.settings.model.cache_dir)
    if data.eval_dataset is None:
        raise UsageError(f"{run_dir}: the run has no evaluation data ([data] validation_file, "
                         "validation_split_percentage or a dataset with a validation split)")
    rows = block_losses(model, data.eval_dataset)
    rows.sort(key=lambda r: r[1], reverse=True)
    special = set(tokenizer.all_special_ids)
    return [Block(i, loss, count, tokenizer.decode([t for t in ids if t not in special]))
            for i, loss, count, ids in rows[:top]]
