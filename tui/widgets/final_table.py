"""Final train / eval metrics of a finished run (perplexity and accuracy included)."""

from __future__ import annotations

import math
from typing import Any

from textual.widgets import DataTable

from clmtune.backend.events import to_float
from clmtune.tui import fmt

# (label, train key, eval key). HF names: train_* from trainer.train(), eval_* from evaluate().
ROWS: tuple[tuple[str, str | None, str | None], ...] = (
    ("mean loss", "train_loss", "eval_loss"),  # train: mean over the run (HF train_loss)
    ("perplexity", "perplexity", "perplexity"),
    ("accuracy", None, "eval_accuracy"),
    ("samples", "train_samples", "eval_samples"),
    ("runtime", "train_runtime", "eval_runtime"),
    ("samples/s", "train_samples_per_second", "eval_samples_per_second"),
    ("steps/s", "train_steps_per_second", "eval_steps_per_second"),
    ("tokens/s", "train_tokens_per_second", None),  # backend.mfu, this attempt's steps
    ("MFU", "train_mfu", None),  # only with a known GPU peak
    ("epoch", "epoch", "epoch"),
)


def _cell(metrics: dict[str, Any], key: str | None, label: str) -> str:
    if key is None:
        return "-"
    value = to_float(metrics.get(key))
    if value is None and label == "perplexity":
        # train_results.json carries no perplexity; exp(loss) is what run_clm would print.
        loss_key = "train_loss" if "train_loss" in metrics else "eval_loss"
        value = fmt.perplexity_of(to_float(metrics.get(loss_key)))
    if value is None:
        return "-"
    if label == "runtime":
        return fmt.duration(value)
    if label in ("accuracy", "MFU"):
        return fmt.percent(value)
    if label == "tokens/s":
        return fmt.si(value)
    if label == "samples" and math.isfinite(value):
        return str(int(value))
    return fmt.num(value)


def final_rows(final_metrics: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """``(metric, train, eval)`` rows; rows empty on both sides are left out."""
    train = final_metrics.get("train", {})
    evals = final_metrics.get("eval", {})
    rows = []
    for label, tkey, ekey in ROWS:
        t, e = _cell(train, tkey, label), _cell(evals, ekey, label)
        if t != "-" or e != "-":
            rows.append((label, t, e))
    return rows


class FinalTable(DataTable):
    """Metric × split table, filled from the ``final_metrics`` events."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="none", **kwargs)

    def on_mount(self) -> None:
        self.add_column("Metric", key="metric", width=11)
        self.add_column("Train", key="train", width=10)
        self.add_column("Eval", key="eval", width=10)

    def update_metrics(self, final_metrics: dict[str, dict[str, Any]]) -> None:
        self.clear()
        for row in final_rows(final_metrics):
            self.add_row(*row)
