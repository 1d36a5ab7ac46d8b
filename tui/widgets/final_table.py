"""Final train / eval metrics of a run (perplexity and accuracy included).

The eval column is the final evaluation's; a run without one (stopped, or still training)
shows its last evaluation instead, the column titled with its step (``Eval @60``). The
perplexity is that evaluation's: :attr:`RunState.perplexity`, which ``clmtune show`` prints
as "perplexity (last eval)". It is exp of an eval loss, so it stands in the eval column
only: ``exp(mean train loss)`` beside it read as a second, different "perplexity".
"""

from __future__ import annotations

import math
from typing import Any

from textual.widgets import DataTable

from clmtune.backend.events import to_float, to_int
from clmtune.tui import fmt

# (label, train key, eval key). HF names: train_* from trainer.train(), eval_* from evaluate().
ROWS: tuple[tuple[str, str | None, str | None], ...] = (
    ("mean loss", "train_loss", "eval_loss"),  # train: mean over the run (HF train_loss)
    ("perplexity", None, "perplexity"),  # the eval's own (see perplexity_text)
    ("accuracy", None, "eval_accuracy"),
    ("samples", "train_samples", "eval_samples"),
    ("runtime", "train_runtime", "eval_runtime"),
    ("samples/s", "train_samples_per_second", "eval_samples_per_second"),
    ("steps/s", "train_steps_per_second", "eval_steps_per_second"),
    ("tokens/s", "train_tokens_per_second", None),  # backend.mfu, this attempt's steps
    ("MFU", "train_mfu", None),  # only with a known GPU peak
    ("epoch", "epoch", "epoch"),
)
EVAL_TITLE = "Eval"


def _cell(metrics: dict[str, Any], key: str | None, label: str) -> str:
    if key is None:
        return "-"
    value = to_float(metrics.get(key))
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


def eval_column(view: Any) -> tuple[dict[str, Any], str]:
    """The eval metrics the table shows and the column's title.

    The final evaluation's (``Eval``), else the last evaluation during training, titled
    with its step (``Eval @60``): a stopped run has no final evaluation, and a column of
    dashes next to a figure ``clmtune show`` prints read as two different runs. The last
    evaluation is the last one in the history, which a resume cuts back to its checkpoint
    (an evaluation of the steps it left is not this run's any more).
    """
    final = (view.final_metrics or {}).get("eval") or {}
    if final:
        return dict(final), EVAL_TITLE
    rows = view.eval_rows
    if not rows:
        return {}, EVAL_TITLE
    last = dict(rows[-1])
    step = to_int(last.pop("step", None))
    return last, f"{EVAL_TITLE} @{step}" if step is not None else EVAL_TITLE


def perplexity_text(view: Any, shown: dict[str, Any]) -> str:
    """The perplexity of the evaluation the column shows: :attr:`RunState.perplexity` (what
    ``clmtune show`` prints), which is that evaluation's own. A final evaluation written
    without one shows the reducer's figure with the step of the evaluation it comes from."""
    own = to_float(shown.get("perplexity"))
    value = view.perplexity
    if own is not None or value is None:
        return fmt.num(own)
    last = view.last_eval or {}
    step = to_int(last.get("step"))
    if to_float(last.get("perplexity")) == value and step is not None:
        return f"{fmt.num(value)} @{step}"
    return fmt.num(value)


def final_rows(final_metrics: dict[str, dict[str, Any]],
               eval_metrics: dict[str, Any] | None = None,
               perplexity: str | None = None) -> list[tuple[str, str, str]]:
    """``(metric, train, eval)`` rows; rows empty on both sides are left out.

    ``eval_metrics`` (default: the final evaluation's) fill the eval column; ``perplexity``
    is its perplexity cell as shown (default: the eval metrics' own).
    """
    train = final_metrics.get("train", {})
    evals = final_metrics.get("eval", {}) if eval_metrics is None else eval_metrics
    rows = []
    for label, tkey, ekey in ROWS:
        t, e = _cell(train, tkey, label), _cell(evals, ekey, label)
        if label == "perplexity" and perplexity is not None:
            e = perplexity
        if t != "-" or e != "-":
            rows.append((label, t, e))
    return rows


def view_rows(view: Any) -> tuple[str, list[tuple[str, str, str]]]:
    """The eval column's title and the rows of a ``RunState``."""
    shown, title = eval_column(view)
    return title, final_rows(view.final_metrics or {}, shown, perplexity_text(view, shown))


class FinalTable(DataTable):
    """Metric × split table, filled from the run's state (final metrics, last evaluation)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="none", **kwargs)
        self.eval_title = EVAL_TITLE

    def on_mount(self) -> None:
        self._columns(EVAL_TITLE)

    def _columns(self, eval_title: str) -> None:
        self.eval_title = eval_title
        self.add_column("Metric", key="metric", width=11)
        self.add_column("Train", key="train", width=10)
        self.add_column(eval_title, key="eval", width=max(10, len(eval_title)))

    def update_view(self, view: Any) -> None:
        """Show a ``RunState``: its final metrics, else its last evaluation."""
        title, rows = view_rows(view)
        if title != self.eval_title:
            self.clear(columns=True)
            self._columns(title)
        else:
            self.clear()
        for row in rows:
            self.add_row(*row)
