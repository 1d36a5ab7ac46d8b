"""Evaluation metrics of a causal LM run: token accuracy (through ``evaluate``) and perplexity.

Evaluation never keeps full logits: :func:`preprocess_logits_for_metrics` reduces
each batch to its argmax ids before ``Trainer`` gathers them. Predictions at
position ``i`` are scored against the label at ``i + 1`` (the model predicts the
next token), and positions labelled -100 (line-mode padding) are not scored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Perplexity = exp(eval_loss) has one definition, in the pure events module (the TUI uses
# it too); it is re-exported here with the other metrics.
from clmtune.backend.events import perplexity

__all__ = [
    "IGNORE_INDEX",
    "load_token_accuracy",
    "make_compute_metrics",
    "perplexity",
    "preprocess_logits_for_metrics",
    "shifted_pairs",
]

IGNORE_INDEX = -100


def load_token_accuracy() -> Any:
    """The local ``evaluate`` token-accuracy module, loaded by path (works offline)."""
    # Heavy import inside the function: this module is importable without evaluate loaded.
    import evaluate

    from clmtune.backend.metrics_local import TOKEN_ACCURACY

    # keep_in_memory: no Arrow cache files; one process computes on already-gathered arrays.
    return evaluate.load(str(TOKEN_ACCURACY), keep_in_memory=True)


def preprocess_logits_for_metrics(logits: Any, labels: Any) -> Any:
    """Reduce logits to predicted ids per batch (some models return a tuple)."""
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(dim=-1)


def shifted_pairs(preds: Any, labels: Any) -> tuple[Any, Any]:
    """Flat (predictions, references): prediction i vs label i+1, ignored labels dropped."""
    import numpy as np

    preds = np.asarray(preds)[:, :-1].reshape(-1)
    labels = np.asarray(labels)[:, 1:].reshape(-1)
    keep = labels != IGNORE_INDEX
    return preds[keep], labels[keep]


def make_compute_metrics(metric: Any | None = None) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for ``Trainer`` giving ``accuracy`` (reported as eval_accuracy)."""
    metric = metric if metric is not None else load_token_accuracy()

    def compute_metrics(eval_preds: Any) -> dict[str, float]:
        preds, labels = eval_preds
        predictions, references = shifted_pairs(preds, labels)
        return metric.compute(predictions=predictions, references=references)

    return compute_metrics
