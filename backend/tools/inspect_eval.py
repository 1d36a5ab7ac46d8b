"""The evaluation blocks a model finds hardest (``clmtune inspect-eval``).

The blocks are the ones training evaluated: the run's frozen ``config.toml`` goes through
:func:`clmtune.backend.data.prepare_datasets` (same tokenizer, block size, packing and
``max_eval_samples``). Each block's loss is the mean cross-entropy over its predicted tokens
(labels shifted by one, ``-100`` ignored): a block of 64 tokens predicts 63.

Trainer's ``eval_loss`` sums the same token losses but, with ``num_items_in_batch``
(transformers 5), divides each batch's sum by the label tokens it counts: every label of a
model whose ``loss_type`` Trainer does not map to its causal-LM loss (GPT-2's
``GPT2LMHeadModel`` in transformers 5.24: 64 a block), only the predicted ones of others
(``LlamaForCausalLM``: 63). Which one a run used is not guessed here: :func:`summarize`
recomputes both the way Trainer batches them and compares them with the ``eval_loss`` the run
recorded for the same weights. Heavy: imported by the command only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clmtune.backend.errors import UsageError

BATCH = 8
#: How close a recomputed loss must be to the recorded ``eval_loss`` to count as the same
#: figure (float32 on another device differs in the 5th digit; bf16 more).
MATCH_REL = 2e-3
LABELS, PREDICTED = "label_tokens", "predicted_tokens"


@dataclass
class Block:
    """One evaluation block: its index in the eval set, its loss and its text."""

    index: int
    loss: float
    tokens: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "loss": self.loss, "tokens": self.tokens, "text": self.text}


@dataclass
class Row:
    """One scored block: loss per predicted token, predicted and label token counts."""

    index: int
    loss: float
    predicted: int
    labels: int
    ids: list[int]


@dataclass
class EvalSummary:
    """Every evaluated block together, and how that relates to the run's ``eval_loss``."""

    blocks: int
    predicted_tokens: int
    label_tokens: int
    loss_per_predicted_token: float
    mean_block_loss: float
    tokens_per_block: int | None  # label tokens of every block when they are all the same
    run_eval_loss: float | None = None
    run_eval_step: int | None = None
    #: ``label_tokens`` / ``predicted_tokens``: the count the recorded eval_loss was
    #: reproduced with here; None when none was recorded or neither reproduces it.
    run_eval_loss_divides_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "note": self.note()}

    def note(self) -> str:
        """One line: the blocks' mean and how the run's eval_loss relates to it."""
        per_block = self.tokens_per_block
        each = f" ({per_block - 1} a block)" if per_block else ""
        text = (f"mean over these {self.blocks:,} blocks {self.loss_per_predicted_token:.4g} "
                f"per predicted token{each}")
        if self.run_eval_loss is None:
            return text + "; the run recorded no eval_loss for these weights"
        recorded = f"Trainer's eval_loss {self.run_eval_loss:.4g}"
        if self.run_eval_step is not None:
            recorded += f" at step {self.run_eval_step}"
        if self.run_eval_loss_divides_by == PREDICTED:
            return f"{text}; {recorded} is the same figure"
        if self.run_eval_loss_divides_by == LABELS:
            if per_block:
                by = f"{per_block} tokens a block, not {per_block - 1}"
            else:
                by = f"every label token ({self.label_tokens:,}), not the " \
                     f"{self.predicted_tokens:,} predicted"
            return f"{text}; {recorded} divides the same summed loss by {by}"
        return f"{text}; {recorded} is not reproduced here (within {MATCH_REL:.1%})"


def _batches(dataset: Any, size: int):
    batch: list[dict[str, Any]] = []
    for row in dataset:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def block_losses(model: Any, dataset: Any) -> list[Row]:
    """Every block scored, in dataset order."""
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
            label_counts = (labels != -100).sum(dim=1)
            losses = (per_token * valid).sum(dim=1) / counts.clamp(min=1)
            for row, loss, count, n_labels in zip(batch, losses.tolist(), counts.tolist(),
                                                  label_counts.tolist(), strict=True):
                out.append(Row(index, float(loss), int(count), int(n_labels),
                               list(row["input_ids"])))
                index += 1
    return out


def trainer_loss(rows: list[Row], batch_size: int, divide_by: str) -> float:
    """The loss as Trainer's evaluation loop makes it from these blocks: each batch's summed
    token loss over its ``divide_by`` count (``num_items_in_batch``), then the mean over
    blocks of their batch's loss (one process, ``per_device_eval_batch_size`` blocks a batch).
    """
    total = 0.0
    for start in range(0, len(rows), max(1, batch_size)):
        chunk = rows[start:start + max(1, batch_size)]
        summed = sum(r.loss * r.predicted for r in chunk)
        count = sum(r.labels if divide_by == LABELS else r.predicted for r in chunk)
        total += summed / max(count, 1) * len(chunk)
    return total / max(len(rows), 1)


def recorded_eval_loss(run_dir: Path, folder: Path, step: int | None,
                       final: bool) -> tuple[float | None, int | None]:
    """(eval_loss, step) the run recorded for the weights in ``folder``: the final model's
    ``eval_results.json``, else the ``trainer_state.json`` evaluation at ``step``."""
    from clmtune.backend.events import read_json

    if final:
        results = read_json(Path(run_dir) / "eval_results.json")
        value = results.get("eval_loss") if isinstance(results, dict) else None
        if isinstance(value, (int, float)):
            return float(value), step
    state = read_json(Path(folder) / "trainer_state.json")
    history = state.get("log_history") if isinstance(state, dict) else None
    found = [e for e in history or [] if isinstance(e, dict) and step is not None
             and e.get("step") == step and isinstance(e.get("eval_loss"), (int, float))]
    return (float(found[-1]["eval_loss"]), step) if found else (None, None)


def summarize(rows: list[Row], *, batch_size: int, recorded: float | None,
              step: int | None) -> EvalSummary:
    """The blocks' mean per predicted token, and which count reproduces ``recorded``."""
    predicted = sum(r.predicted for r in rows)
    labels = sum(r.labels for r in rows)
    sizes = {r.labels for r in rows}
    summary = EvalSummary(
        blocks=len(rows), predicted_tokens=predicted, label_tokens=labels,
        loss_per_predicted_token=sum(r.loss * r.predicted for r in rows) / max(predicted, 1),
        mean_block_loss=sum(r.loss for r in rows) / max(len(rows), 1),
        tokens_per_block=sizes.pop() if len(sizes) == 1 else None,
        run_eval_loss=recorded, run_eval_step=step if recorded is not None else None)
    if recorded is None or not rows:
        return summary
    gaps = {way: abs(trainer_loss(rows, batch_size, way) - recorded) for way in (LABELS,
                                                                                 PREDICTED)}
    best, other = sorted(gaps, key=gaps.get)
    # the closer count, when it is close and the other clearly is not (a long block makes
    # the two differ by little: then neither is claimed)
    if gaps[best] <= MATCH_REL * abs(recorded) and gaps[best] * 4 < gaps[other]:
        summary.run_eval_loss_divides_by = best
    return summary


def hardest_blocks(run_dir: Path, choice: Any, *, top: int,
                   device: str) -> tuple[list[Block], EvalSummary]:
    """The ``top`` blocks with the highest loss under the model ``choice`` names
    (``generate_io.ModelChoice``), and the summary of every evaluated block."""
    from clmtune.backend.data import prepare_datasets
    from clmtune.backend.settings.toml_io import load_config
    from clmtune.backend.tools.generate import load_for_generation, pick_dtype
    from clmtune.backend.tools.generate_io import FINAL

    config = Path(run_dir) / "config.toml"
    if not config.is_file():
        raise UsageError(f"{run_dir}: no config.toml; inspect-eval needs the settings the run "
                         "trained with (runs started by clmtune have them)")
    cfg = load_config(config)
    model, tokenizer = load_for_generation(choice.path, device, pick_dtype(run_dir, device))
    data = prepare_datasets(cfg, tokenizer, model.config,
                            cache_dir=cfg.settings.model.cache_dir)
    if data.eval_dataset is None:
        raise UsageError(f"{run_dir}: the run has no evaluation data ([data] validation_file, "
                         "validation_split_percentage or a dataset with a validation split)")
    rows = block_losses(model, data.eval_dataset)
    recorded, step = recorded_eval_loss(run_dir, choice.path, choice.step, choice.label == FINAL)
    summary = summarize(rows, batch_size=int(cfg.settings.training.per_device_eval_batch_size),
                        recorded=recorded, step=step)
    rows.sort(key=lambda r: r.loss, reverse=True)
    special = set(tokenizer.all_special_ids)
    blocks = [Block(r.index, r.loss, r.predicted,
                    tokenizer.decode([t for t in r.ids if t not in special])) for r in rows[:top]]
    return blocks, summary
