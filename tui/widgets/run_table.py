"""The table of runs on the home screen."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from tui import fmt

STATUS_CLASSES = {
    "running": "run-table--running",
    "completed": "run-table--completed",
    "stopped": "run-table--stopped",
    "failed": "run-table--failed",
    "crashed": "run-table--failed",
}

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    # key, label, width (None: auto). Most useful first: at 80 columns the tail scrolls.
    ("name", "Run", None),
    ("status", "Status", 9),
    ("progress", "Step", 13),
    ("loss", "Loss", 6),
    ("eval", "Eval", 6),
    ("ppl", "PPL", 6),
    ("started", "Started", 10),
    ("duration", "Took", 7),
    ("model", "Model", None),
)


def run_key(run: Any) -> str:
    return str(run.path)


class RunTable(DataTable):
    """One row per run (``backend.runs.RunSummary``), keyed by the run dir path.

    ``update_runs`` keeps the cursor on the same run across refreshes.
    """

    # DataTable's own (hidden) enter binding would hide the screen's "Open" in the footer.
    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "run-table--running",
        "run-table--completed",
        "run-table--stopped",
        "run-table--failed",
        "run-table--dim",
    }

    def __init__(self, *, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.clock = clock
        self.runs: list[Any] = []

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.runs and self.is_mounted:
            # Status colours come from the theme: repaint the cells on a theme switch.
            self.call_later(self.update_runs, self.runs)

    @property
    def selected(self) -> Any | None:
        """The run under the cursor, if any."""
        if not self.runs or self.cursor_row < 0 or self.cursor_row >= len(self.runs):
            return None
        return self.runs[self.cursor_row]

    def update_runs(self, runs: Sequence[Any]) -> None:
        """Show ``runs`` (newest first as listed), keeping the cursor on the same run."""
        previous = self.selected
        keep = run_key(previous) if previous is not None else None
        self.runs = list(runs)
        self.clear()
        for run in self.runs:
            self.add_row(*self._cells(run), key=run_key(run))
        if keep is not None:
            for index, run in enumerate(self.runs):
                if run_key(run) == keep:
                    self.move_cursor(row=index, animate=False, scroll=False)
                    break

    def _style(self, component: str) -> str:
        try:
            return str(self.get_component_rich_style(component, partial=True))
        except Exception:  # noqa: BLE001 - before mount / unknown class: plain text
            return ""

    def _cells(self, run: Any) -> list[Text | str]:
        now = self.clock()
        status = str(run.status)
        step_txt = f"{run.global_step}/{run.max_steps}" if run.max_steps else str(run.global_step)
        fraction = run.global_step / run.max_steps if run.max_steps else None
        progress = Text(fmt.bar(fraction, 6), style=self._style("run-table--dim"))
        progress.append(f" {step_txt}")
        took = run.duration
        if status == "running" and run.started is not None:
            took = now - run.started  # the injectable clock, not read_run's wall time
        return [
            Text(run.name, overflow="ellipsis", no_wrap=True),
            Text(status, style=self._style(STATUS_CLASSES.get(status, "run-table--dim"))),
            progress,
            fmt.num(run.last_loss),
            fmt.num(run.best_eval_loss),
            fmt.num(run.perplexity),
            fmt.started(run.started, now),
            fmt.duration(took),
            Text(run.model or "-", overflow="ellipsis", no_wrap=True),
        ]
