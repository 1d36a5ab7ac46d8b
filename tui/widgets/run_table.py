"""The table of runs on the home screen."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from clmtune.tui import fmt

STATUS_CLASSES = {
    "running": "run-table--running",
    "completed": "run-table--completed",
    "stopped": "run-table--stopped",
    "failed": "run-table--failed",
    "crashed": "run-table--failed",
}

COLUMNS: tuple[tuple[str, str, int | None], ...] = (
    # key, label, width (None: sized to the names). Most useful first.
    ("name", "Run", None),
    ("status", "Status", 9),
    ("progress", "Step", None),  # sized to the widest step count
    ("loss", "Loss", 6),
    ("eval", "Eval", 6),
    ("ppl", "PPL", 6),
    ("started", "Started", 9),
    ("duration", "Took", 7),
    ("model", "Model", None),
)
# Below WIDE columns of table the least needed columns are left out, so that nothing
# scrolls sideways at 80×24 (the name keeps the start time of default run names).
WIDE = 100
NARROW_KEYS = ("name", "status", "progress", "loss", "ppl", "duration")
NAME_WIDTH = (8, 24, 40)  # min, max narrow, max wide
BAR_WIDTH = 5
# The "-YYYYMMDD-HHMMSS" of default run names: what tells two runs of one file apart.
_STAMP = re.compile(r"-\d{8}-\d{6}$")
STEP_MIN = 4  # "Step" itself
MODEL_MIN = 8


def short_model(model: str | None) -> str:
    """A hub id as is; a local folder relative to the working folder, or its last parts."""
    if not model:
        return "-"
    if not os.path.isabs(model):
        return model
    rel = os.path.relpath(model)
    if not rel.startswith(".."):
        return rel
    parts = Path(model).parts
    return model if len(parts) <= 3 else os.path.join("…", *parts[-2:])


def run_key(run: Any) -> str:
    return str(run.path)


def step_text(run: Any) -> str:
    """``global_step/max_steps`` (or the step alone when the length is unknown)."""
    return f"{run.global_step}/{run.max_steps}" if run.max_steps else str(run.global_step)


def fit_name(name: str, width: int | None) -> str:
    """``name`` in ``width`` cells; a long default name is cut in the middle, not its time.

    ``blocksize-20261202-123115`` at 24 cells reads ``blocksi…-20261202-123115``: the end
    cut (``blocksize-20261202-1231…``) made two runs of one file look the same.
    """
    if width is None or len(name) <= width:
        return name
    stamp = _STAMP.search(name)
    keep = width - 1 - (len(stamp.group()) if stamp else 0)
    if stamp is None or keep < 1:
        return name  # the cell's own end ellipsis
    return f"{name[:keep]}…{stamp.group()}"


class RunTable(DataTable):
    """One row per run (``backend.rundir.summary.RunSummary``), keyed by the run dir path.

    ``update_runs`` keeps the cursor on the same run across refreshes (on the newest
    run when it was there) and redraws only the rows whose cells changed.
    """

    # DataTable's own (hidden) enter binding would hide the screen's "Open" in the footer.
    # Home/End move to the first/last run (DataTable's scroll sideways in a row table).
    BINDINGS = [
        Binding("enter", "select_cursor", "Open"),
        Binding("home", "scroll_top", "Newest", show=False),
        Binding("end", "scroll_bottom", "Oldest", show=False),
    ]

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
        self._columns_shown: tuple[tuple[str, int | None], ...] = ()
        self._shown: dict[str, dict[str, Text | str]] = {}  # the cells on screen, per run

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "select_cursor" and not self.runs:
            return False  # nothing to open: keep "Open" out of the footer
        return True

    def on_resize(self) -> None:
        # Columns are made once the width is known (the first resize), then rebuilt only
        # when the width crosses WIDE or the names need another width.
        if self._ensure_columns() and self.runs:
            self._fill()

    def column_spec(self) -> tuple[tuple[str, int | None], ...]:
        """The (key, width) of each column for the current width and run names."""
        wide = self.size.width >= WIDE or self.size.width == 0
        longest = max((len(str(run.name)) for run in self.runs), default=0)
        low, narrow_max, wide_max = NAME_WIDTH
        name_width = max(low, min(longest, wide_max if wide else narrow_max))
        # Never cut a digit off the step count (2384/4000 must not read 2384/400).
        steps = max((len(step_text(run)) for run in self.runs), default=0)
        widths = {"name": name_width, "progress": max(STEP_MIN, BAR_WIDTH + 1 + steps)}
        spec = []
        for key, _label, width in COLUMNS:
            if not wide and key not in NARROW_KEYS:
                continue
            spec.append((key, widths.get(key, width)))
        if wide and self.size.width:
            # The model takes what is left (each column pads one cell on both sides,
            # and the vertical scrollbar may take two): nothing scrolls sideways.
            used = sum((w or 0) + 2 for k, w in spec if k != "model") + 2 + 2
            spec[-1] = ("model", max(MODEL_MIN, self.size.width - used))
        return tuple(spec)

    def _ensure_columns(self) -> bool:
        """Rebuild the columns when the spec changed; True when it did."""
        spec = self.column_spec()
        if spec == self._columns_shown:
            return False
        labels = {key: label for key, label, _ in COLUMNS}
        self.clear(columns=True)
        self._shown = {}
        for key, width in spec:
            self.add_column(labels[key], key=key, width=width)
        self._columns_shown = spec
        return True

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
        """Show ``runs`` (newest first as listed), keeping the cursor on the same run.

        A cursor on the newest run stays on the newest run (the list lands on it). Rows
        whose cells did not change are left alone, and runs listed after the known ones
        are appended, so a refresh of a large folder costs only what changed.
        """
        previous = self.selected
        on_newest = previous is None or self.cursor_row == 0
        keep = run_key(previous) if previous is not None else None
        old_keys = [run_key(run) for run in self.runs]
        self.runs = list(runs)
        new_keys = [run_key(run) for run in self.runs]
        if self._ensure_columns() or new_keys[: len(old_keys)] != old_keys:
            self._fill()
        else:
            self._patch(len(old_keys))
        target = 0 if on_newest or keep is None else new_keys.index(keep) if keep in new_keys \
            else min(self.cursor_row, len(self.runs) - 1)
        if self.runs and target != self.cursor_row:
            self.move_cursor(row=target, animate=False, scroll=True)

    def _row(self, run: Any) -> list[Text | str]:
        cells = self._cells(run)
        self._shown[run_key(run)] = cells
        return [cells[k] for k, _ in self._columns_shown]

    def _fill(self) -> None:
        self.clear()
        self._shown = {}
        for run in self.runs:
            self.add_row(*self._row(run), key=run_key(run))

    def _patch(self, known: int) -> None:
        """Update the changed cells of the first ``known`` rows; append the rest."""
        for run in self.runs[:known]:
            key = run_key(run)
            before = self._shown.get(key, {})
            cells = self._cells(run)
            for column, _ in self._columns_shown:
                if before.get(column) != cells[column]:
                    self.update_cell(key, column, cells[column])
            self._shown[key] = cells
        for run in self.runs[known:]:
            self.add_row(*self._row(run), key=run_key(run))

    def _style(self, component: str) -> str:
        try:
            return str(self.get_component_rich_style(component, partial=True))
        except Exception:  # noqa: BLE001 - before mount / unknown class: plain text
            return ""

    def _loss_cell(self, run: Any) -> Text | str:
        """The last train loss; a run whose loss became NaN/inf gets a warning badge."""
        if not getattr(run, "nan_flag", None):
            return fmt.num(run.last_loss)
        # The column is 6 wide: the badge and three digits ("⚠ 4.23", "⚠ nan").
        return Text(f"⚠ {fmt.num(run.last_loss, 3)}", style=self._style("run-table--failed"))

    def _cells(self, run: Any) -> dict[str, Text | str]:
        now = self.clock()
        status = str(run.status)
        step_txt = step_text(run)
        fraction = run.global_step / run.max_steps if run.max_steps else None
        progress = Text(fmt.bar(fraction, BAR_WIDTH), style=self._style("run-table--dim"))
        progress.append(f" {step_txt}")
        took = run.duration
        state = getattr(run, "state", None)
        if status == "running" and state is not None:
            # The injectable clock, not read_run's wall time; gaps between attempts left out.
            took = state.elapsed(now, status)
        elif status == "running" and run.started is not None and run.attempts <= 1:
            took = now - run.started
        return {
            "name": Text(fit_name(str(run.name), dict(self._columns_shown or ()).get("name")),
                         overflow="ellipsis", no_wrap=True),
            "status": Text(status, style=self._style(STATUS_CLASSES.get(status, "run-table--dim"))),
            "progress": progress,
            "loss": self._loss_cell(run),
            "eval": fmt.num(run.best_eval_loss),
            "ppl": fmt.num(run.perplexity),
            "started": fmt.started(run.started, now),
            "duration": fmt.duration(took),
            "model": Text(short_model(run.model), overflow="ellipsis", no_wrap=True),
        }
