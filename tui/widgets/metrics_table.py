"""Tables of saved metrics: the ``*_results.json`` files side by side, and the log history."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from clmtune.tui import fmt

RESULT_SPLITS = ("train", "eval", "all")
RESULT_FILES = {
    "train": "train_results.json",
    "eval": "eval_results.json",
    "all": "all_results.json",
}

# Log-history columns in the order people read them; anything else follows alphabetically.
HISTORY_COLUMNS = (
    "step",
    "epoch",
    "loss",
    "learning_rate",
    "grad_norm",
    "eval_loss",
    "eval_accuracy",
    "perplexity",
)
# Per-run totals that HF appends as the last log entry; they belong in the results table.
_HISTORY_SKIP = {
    "total_flos",
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
    "num_input_tokens_seen",
}


def format_cell(value: Any) -> str | Text:
    """A metric value as table text: 4 significant digits, ints as ints, '-' for missing."""
    if value is None:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}".replace(",", "_") if abs(value) >= 100_000 else str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value)) if abs(value) >= 1 else fmt.num(value)
        return fmt.num(value)
    if isinstance(value, str):
        try:
            return fmt.num(float(value))  # "nan"/"inf" as written by the event writer
        except ValueError:
            return value
    return str(value)


def _sort_key(name: str) -> tuple[int, str]:
    # Loss and quality first, then throughput and bookkeeping.
    order = ("loss", "perplexity", "accuracy", "epoch", "runtime", "samples", "steps", "flos")
    for i, word in enumerate(order):
        if word in name:
            return i, name
    return len(order), name


class ResultsTable(DataTable):
    """train / eval / all results in one table: one row per metric, one column per file."""

    DEFAULT_CSS = """
    ResultsTable { height: auto; max-height: 100%; }
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self.metric_names: list[str] = []

    def set_results(self, metrics: Mapping[str, Mapping[str, Any]]) -> None:
        """Show ``{"train": {...}, "eval": {...}, "all": {...}}``; absent files are left out."""
        self.clear(columns=True)
        splits = [s for s in RESULT_SPLITS if metrics.get(s)]
        splits += [s for s in metrics if s not in RESULT_SPLITS and metrics.get(s)]
        names = sorted({k for s in splits for k in metrics[s]}, key=_sort_key)
        self.metric_names = names
        if not splits:
            self.add_column("results")
            self.add_row(Text("no *_results.json in this run", style="dim"))
            return
        self.add_column("metric", key="metric")
        for split in splits:  # short headers: the files are named above the table
            self.add_column(split, key=split)
        for name in names:
            cells = [format_cell(metrics[s].get(name)) for s in splits]
            self.add_row(name, *cells, key=name)


def history_columns(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """The columns a log history needs, common ones first."""
    seen: set[str] = set()
    for entry in entries:
        seen.update(k for k in entry if k not in _HISTORY_SKIP)
    cols = [c for c in HISTORY_COLUMNS if c in seen]
    return cols + sorted(seen - set(cols))


class LogHistoryTable(DataTable):
    """``trainer_state.json``'s ``log_history`` (or the same rows rebuilt from events)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self.row_total = 0

    def set_history(self, entries: Sequence[Mapping[str, Any]]) -> None:
        """Show one row per log entry."""
        self.clear(columns=True)
        rows = [e for e in entries if set(e) - _HISTORY_SKIP - {"step", "epoch"}]
        columns = history_columns(rows)
        self.row_total = len(rows)
        if not rows:
            self.add_column("log history")
            self.add_row(Text("nothing logged", style="dim"))
            return
        for col in columns:
            self.add_column(col, key=col)
        self.add_rows([format_cell(e.get(c)) for c in columns] for e in rows)
