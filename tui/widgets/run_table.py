"""The table of runs on the home screen."""

from __future__ import annotations

import functools
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
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
    ("mark", "", 1),  # MARK on a run marked for Compare (space): a glyph, not a colour
    ("name", "Run", None),
    ("status", "Status", 9),
    ("progress", "Step", None),  # sized to the widest step count
    ("loss", "Loss", 6),
    ("eval", "Eval", 6),
    ("ppl", "PPL", 6),
    ("started", "Started", 10),  # "23h59m ago", "2026-12-03"
    ("duration", "Took", 7),
    ("model", "Model", None),
)
# Below WIDE columns of table the least needed columns are left out, so that nothing
# scrolls sideways at 80×24 (the name keeps the start time of default run names).
WIDE = 100
NARROW_KEYS = ("mark", "name", "status", "progress", "loss", "ppl", "duration")
NAME_WIDTH = (8, 24, 40)  # min, max narrow, max wide
NAME_KEEP = 24  # in a wide table the name gives way to the model down to this width
MARK = "●"  # the ASCII filter draws it as "*"
BAR_WIDTH = 5
# The "-YYYYMMDD-HHMMSS" of default run names: what tells two runs of one file apart.
_STAMP = re.compile(r"-\d{8}-\d{6}$")
_EXPONENT = re.compile(r"e\+?(-?)0*(\d)")  # e+08 -> e8, e-04 -> e-4
STEP_MIN = 4  # "Step" itself
MODEL_MIN = 8
MODEL_WANT = 20  # the model column's share before the name takes the rest
NUMBER_WIDTH = 6  # the Loss, Eval and PPL columns


@functools.lru_cache(maxsize=4096)  # per row and per refresh: relpath asks for the cwd
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


def ellipsize(text: str, width: int | None) -> str:
    """``text`` in ``width`` cells: cut at the end, the cut marked with an ellipsis."""
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…" if width > 0 else ""


def fit_name(name: str, width: int | None) -> str:
    """``name`` in ``width`` cells; a long default name is cut in the middle, not its time.

    ``blocksize-20261202-123115`` at 24 cells reads ``blocksi…-20261202-123115``: the end
    cut (``blocksize-20261202-1231…``) made two runs of one file look the same. Any
    other long name keeps its last third too (``lr-sweep-cosine-w…-run-07``: sweeps tell
    their runs apart at the end); a cut always shows an ellipsis.
    """
    if width is None or len(name) <= width:
        return name
    stamp = _STAMP.search(name)
    if stamp is not None and width - 1 - len(stamp.group()) >= 1:
        return f"{name[: width - 1 - len(stamp.group())]}…{stamp.group()}"
    if width < NAME_WIDTH[0] + 2:
        return ellipsize(name, width)
    tail = (width - 1) // 3
    return f"{name[: width - 1 - tail]}…{name[-tail:]}"


def fit_model(model: str, width: int | None) -> str:
    """A model id or path in ``width`` cells, its end kept: ``…demo/model``.

    The last folder names tell models apart (``…/checkpoint-500``, ``…/gpt2``), so a cut
    drops the start, and marks it with an ellipsis.
    """
    if width is None or len(model) <= width:
        return model
    if width <= 1:
        return "…"[:width]
    return "…" + model.lstrip("…")[-(width - 1):]


def fit_num(value: float | None, width: int = NUMBER_WIDTH) -> str:
    """A figure in ``width`` cells with as many digits as fit: 49020.3 reads ``49020``
    (not ``4.902e+04`` cut to ``4.902e``), 4.85e8 ``4.85e8``; an ellipsis if nothing fits."""
    tries = [fmt.num(value, digits) for digits in (4, 3, 2, 1)]
    for text in tries:
        if len(text) <= width and (text == tries[0] or "e" not in text):
            return text
    if value is None or not math.isfinite(value):
        return ellipsize(tries[0], width)
    if 1 <= abs(value) < 10**width and len(f"{value:.0f}") <= width:
        return f"{value:.0f}"  # 123456.7 as 123457
    for text in [*tries, f"{value:.0e}"]:
        compact = _EXPONENT.sub(r"e\1\2", text)
        if len(compact) <= width:
            return compact
    return ellipsize(tries[0], width)


def fit_names(names: Sequence[str], room: int, least: int = 8) -> list[str] | None:
    """``names`` cut (each by :func:`fit_name`) so that ``", ".join`` fits in ``room``
    cells, the short ones whole and the long ones sharing the rest; None when even
    ``least`` cells each do not fit."""
    if not names:
        return []
    room -= 2 * (len(names) - 1)  # the ", " between them
    if room < least * len(names):
        return None
    widths = {i: len(name) for i, name in enumerate(names)}
    while sum(widths.values()) > room:
        # The longest gives way first, one cell at a time: the others keep what they can.
        longest = max(widths, key=lambda i: (widths[i], i))
        widths[longest] -= 1
    return [fit_name(name, widths[i]) for i, name in enumerate(names)]


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
        "run-table--marked",
    }

    def __init__(self, *, clock: Callable[[], float] = time.time, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.clock = clock
        self.runs: list[Any] = []
        self.marked: frozenset[str] = frozenset()  # run keys marked for Compare
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
        """The (key, width) of each column for the current width and run names.

        Nothing scrolls sideways: each column pads one cell on both sides and the
        vertical scrollbar may take two. The name takes what the other columns leave
        (up to its cap); in a wide table the model keeps ``MODEL_WANT`` cells first,
        the name giving way down to ``NAME_KEEP``, and then the model takes the rest.
        """
        width = self.size.width
        wide = width >= WIDE or width == 0
        longest = max((len(str(run.name)) for run in self.runs), default=0)
        low, narrow_max, wide_max = NAME_WIDTH
        # Never cut a digit off the step count (2384/4000 must not read 2384/400).
        steps = max((len(step_text(run)) for run in self.runs), default=0)
        widths: dict[str, int | None] = {"progress": max(STEP_MIN, BAR_WIDTH + 1 + steps)}
        keys = [key for key, _, _ in COLUMNS if wide or key in NARROW_KEYS]
        fixed = {key: widths.get(key, w) for key, _, w in COLUMNS if key in keys}
        # + 4: the scrollbar, and the model's padding (slack when narrow)
        others = sum((fixed[k] or 0) + 2 for k in keys if k not in ("name", "model")) + 4
        name = max(low, min(longest, wide_max if wide else narrow_max))
        if width:
            room = width - others - 2  # the name's own padding
            if wide:
                models = max((len(short_model(run.model)) for run in self.runs), default=0)
                want = max(MODEL_MIN, min(models, MODEL_WANT))
                name = max(low, min(name, max(room - want, NAME_KEEP)))
            else:
                name = max(low, min(name, room))
        fixed["name"] = name
        if wide and width:
            fixed["model"] = max(MODEL_MIN, width - others - name - 2)
        return tuple((key, fixed[key]) for key in keys)

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
            return fit_num(run.last_loss)
        # The column is 6 wide: the badge and three digits ("⚠ 4.23", "⚠ nan").
        return Text(f"⚠ {fit_num(run.last_loss, NUMBER_WIDTH - 2)}",
                    style=self._style("run-table--failed"))

    def set_marked(self, keys: Iterable[str]) -> None:
        """Show MARK on the runs ``keys`` (and bold names): only the rows that changed."""
        marked = frozenset(keys)
        changed = marked ^ self.marked
        self.marked = marked
        self._repaint_rows([run for run in self.runs if run_key(run) in changed],
                           ("mark", "name"))

    def tick(self) -> None:
        """Bring the clock-dependent cells ("5m ago", a running run's time taken) up to
        the clock: only those two cells are computed, nothing is read from disk."""
        now = self.clock()
        shown = dict(self._columns_shown)
        for run in self.runs:
            key = run_key(run)
            before = self._shown.get(key)
            if before is None:
                continue
            cells = {"started": fmt.started(run.started, now)} if "started" in shown else {}
            if str(run.status) == "running" and "duration" in shown:
                cells["duration"] = fmt.duration(self._took(run, now))
            for column, cell in cells.items():
                if before.get(column) != cell:
                    self.update_cell(key, column, cell)
                    before[column] = cell

    def _repaint_rows(self, runs: Iterable[Any], columns: Sequence[str]) -> None:
        shown = dict(self._columns_shown)
        for run in runs:
            key = run_key(run)
            before = self._shown.get(key)
            if before is None:
                continue
            cells = self._cells(run)
            painted = dict(before)  # what is on screen: only the repainted columns change
            for column in columns:
                if column in shown and before.get(column) != cells[column]:
                    self.update_cell(key, column, cells[column])
                    painted[column] = cells[column]
            self._shown[key] = painted

    def _took(self, run: Any, now: float) -> float | None:
        took = run.duration
        state = getattr(run, "state", None)
        status = str(run.status)
        if status == "running" and state is not None:
            # The injectable clock, not read_run's wall time; gaps between attempts left out.
            took = state.elapsed(now, status)
        elif status == "running" and run.started is not None and run.attempts <= 1:
            took = now - run.started
        return took

    def _cells(self, run: Any) -> dict[str, Text | str]:
        now = self.clock()
        status = str(run.status)
        step_txt = step_text(run)
        fraction = run.global_step / run.max_steps if run.max_steps else None
        progress = Text(fmt.bar(fraction, BAR_WIDTH), style=self._style("run-table--dim"))
        progress.append(f" {step_txt}")
        widths = dict(self._columns_shown or ())
        marked = run_key(run) in self.marked
        name = fit_name(str(run.name), widths.get("name"))
        return {
            "mark": Text(MARK, style=self._style("run-table--marked")) if marked else "",
            "name": Text(name, style="bold" if marked else "", overflow="ellipsis",
                         no_wrap=True),
            "status": Text(status, style=self._style(STATUS_CLASSES.get(status, "run-table--dim"))),
            "progress": progress,
            "loss": self._loss_cell(run),
            "eval": fit_num(run.best_eval_loss),
            "ppl": fit_num(run.best_perplexity),  # of the best eval, beside it (clmtune runs)
            "started": fmt.started(run.started, now),
            "duration": fmt.duration(self._took(run, now)),
            "model": Text(fit_model(short_model(run.model), widths.get("model")),
                          overflow="ellipsis", no_wrap=True),
        }
