"""Token accuracy: the share of predicted token ids equal to the reference ids.

An ``evaluate`` module loaded by path (``evaluate.load(".../token_accuracy.py")``)
so evaluation works offline. The caller passes flat lists of ids that are already
aligned (shifted) and stripped of ignored positions; an empty input gives NaN
rather than a division by zero.
"""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """
Fraction of positions where the predicted token id equals the reference token id.
"""

_INPUTS = """
Args:
    predictions (list of int): predicted token ids, one per scored position.
    references (list of int): reference token ids, aligned with predictions.
Returns:
    accuracy (float): matches / positions, NaN when there are no positions.
"""


class TokenAccuracy(evaluate.Metric):
    """Exact-match rate of token ids."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_INPUTS,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        preds = np.asarray(predictions)
        refs = np.asarray(references)
        if preds.size == 0:
            return {"accuracy": float("nan")}
        return {"accuracy": float(np.mean(preds == refs))}
