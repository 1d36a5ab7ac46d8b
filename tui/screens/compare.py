"""Compare screen: several runs on one chart, their figures and the settings that differ.

Opened from the runs list (mark runs with space, press ``c``). Everything shown comes from
:mod:`clmtune.backend.tools.compare` (the one reducer's state, read once in a thread);
this screen only picks the metric, the x axis and the smoothing, thins each curve to the
chart's width and draws it. Running runs are read again every couple of seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual_hires_canvas import Canvas, TextAlign
from textual_plot import HiResMode, LegendLocation

from clmtune.backend.tools import compare
from clmtune.tui import fmt
from clmtune.tui.thin import thin_minmax
from clmtune.tui.widgets.footer import AppFooter
from clmtune.tui.widgets.loss_chart import QuietLegend
from clmtune.tui.widgets.run_table import ellipsize, fit_name, fit_names

REFRESH_S = 2.0
SMOOTH_STEP = 0.1
#: Line colours, then markers: the markers keep runs apart under NO_COLOR / ASCII.
COLOURS = ("cyan", "magenta", "yellow", "green", "red", "blue", "bright_white", "orange1")
MARKERS = ("o", "+", "x", "*", "#", "@", "%", "&")
MARKS_PER_LINE = 8  # markers spread along each line (enough to tell lines apart)
LEGEND_MIN = 12  # a legend name gets a third of the chart's width, at least this
#: Where the legend may sit, the first that covers the fewest plotted points winning.
LEGEND_CORNERS = (LegendLocation.TOPRIGHT, LegendLocation.TOPLEFT,
                  LegendLocation.BOTTOMRIGHT, LegendLocation.BOTTOMLEFT)
RUN_MIN = 12  # the table's Run column, before it scrolls sideways
VALUE_MAX = 40  # a setting's value wider than this is cut (with …)
TABLE_COLUMNS = (
    # label, Row attribute (sortable), formatter
    ("Run", "name", str),
    ("Status", "status", str),
    ("Steps", "steps", str),
    ("Took", "runtime_s", fmt.duration),
    ("Samples/s", "samples_per_second", lambda v: fmt.num(v, 3)),
    ("Last loss", "final_train_loss", lambda v: fmt.num(v, 4)),
    ("Best eval", "best_eval_loss", lambda v: fmt.num(v, 4)),
    ("At step", "best_eval_step", lambda v: "-" if v is None else str(v)),
    # The last evaluation's (as run_clm reports it), not the best's: labelled so, as the
    # best eval loss sits beside it.
    ("Last PPL", "final_perplexity", lambda v: fmt.num(v, 4)),
)
#: The labels of a narrow table (80 columns).
SHORT_LABELS = {"Samples/s": "Smp/s", "Last loss": "Loss", "Best eval": "Eval",
                "At step": "@step"}


@dataclass
class RunsLoaded(Message):
    """The compared runs were read (or read again) in a thread."""

    runs: list[compare.ComparedRun]


def warm_curves(runs: Sequence[compare.ComparedRun]) -> None:
    """Build (and cache) every metric's curve on every axis: lists become arrays once."""
    for metric in compare.metric_names(runs):
        for x_axis in compare.X_AXES:
            for run in runs:
                compare.curve_of(run, metric, x_axis)


class CompareChart(QuietLegend, inherit_bindings=False):
    """One line per run, thinned to the chart's width; raw points faint under smoothing."""

    margin_top = 1
    margin_bottom = 2
    margin_left = 8

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.curves: list[compare.Curve] = []
        self.raw: list[compare.Curve] = []
        self.plotted_points = 0
        self.legend_covers = 0  # plotted points under the legend where it was placed
        # Thinned points by (x, y arrays, width): the curves' arrays are cached upstream,
        # so switching back to a view or toggling the raw points thins nothing again.
        self._thinned: dict[tuple[int, int, int], tuple[Any, Any, Any, Any]] = {}

    def _thin(self, curve: compare.Curve, columns: int) -> tuple[Any, Any]:
        key = (id(curve.x), id(curve.y), columns)
        hit = self._thinned.get(key)
        if hit is not None and hit[2] is curve.x and hit[3] is curve.y:
            return hit[0], hit[1]
        if len(self._thinned) > 256:
            self._thinned.clear()
        xs, ys = thin_minmax(curve.x, curve.y, columns)
        self._thinned[key] = (xs, ys, curve.x, curve.y)  # the arrays pin their ids
        return xs, ys

    def on_mount(self) -> None:
        self.show_legend(LegendLocation.TOPRIGHT)

    def _render_y_label(self) -> None:
        """The metric's name from the left edge, the row cleared first.

        textual-plot centres the label on a column of the left margin and never clears the
        row: a long name lost its start ("amples_per_second") and a shorter one after it
        kept the old tail ("eval_losss").
        """
        margin = self.query_one("#margin-top", Canvas)
        width = margin.size.width
        if width <= 0:
            return
        style = self.get_component_rich_style("plot--label")
        margin.write_text(0, 0, " " * width, TextAlign.LEFT)
        label = self._y_label if len(self._y_label) < width else self._y_label[: width - 2] + "…"
        margin.write_text(0, 0, f"[{style}]{escape(label)}", TextAlign.LEFT)

    def _columns(self) -> int:
        return max(self.size.width - self.margin_left - 2, 20)

    def show(self, curves: Sequence[compare.Curve], raw: Sequence[compare.Curve],
             metric: str, x_axis: str) -> None:
        """Draw ``curves`` (smoothed or not) over ``raw`` (empty: raw points hidden)."""
        self.curves, self.raw = list(curves), list(raw)
        self.set_xlabel({"time": "seconds since start"}.get(x_axis, x_axis))
        self.set_ylabel(metric)
        self.redraw()

    def redraw(self) -> None:
        if not self.is_mounted:
            return
        self.clear()
        columns = self._columns()
        self.plotted_points = 0
        for i, curve in enumerate(self.raw):
            xs, ys = self._thin(curve, columns)
            if len(xs):
                self.plot(xs, ys, line_style=f"dim {COLOURS[i % len(COLOURS)]}",
                          hires_mode=HiResMode.BRAILLE)
        points: list[tuple[Any, Any]] = []
        for i, curve in enumerate(self.curves):
            colour, marker = COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]
            xs, ys = self._thin(curve, columns)
            self.plotted_points += len(xs)
            if not len(xs):
                continue
            points.append((xs, ys))
            self.plot(xs, ys, line_style=colour, hires_mode=HiResMode.BRAILLE)
            picks = np.unique(np.linspace(0, len(xs) - 1, min(MARKS_PER_LINE, len(xs))).astype(int))
            # The legend draws the marker itself: the label is the name, cut to fit.
            self.scatter(xs[picks], ys[picks], marker=marker, marker_style=colour,
                         label=fit_name(curve.name, self.legend_width()))
        self._place_legend(points)

    def legend_width(self) -> int:
        """The most cells a name takes in the legend: a third of the chart."""
        return max(LEGEND_MIN, (self.size.width - self.margin_left) // 3)

    def _place_legend(self, points: Sequence[tuple[Any, Any]]) -> None:
        """Put the legend in the corner where it covers the fewest plotted points."""
        labels = [label for label in self._labels if label is not None]
        canvas = self.query_one("#plot", Canvas).size
        if not labels or not points or canvas.width <= 0 or canvas.height <= 0:
            return
        xs = np.concatenate([np.asarray(x, dtype=float) for x, _ in points])
        ys = np.concatenate([np.asarray(y, dtype=float) for _, y in points])
        keep = np.isfinite(xs) & np.isfinite(ys)
        xs, ys = xs[keep], ys[keep]
        if not len(xs):
            return
        span_x = float(xs.max() - xs.min()) or 1.0
        span_y = float(ys.max() - ys.min()) or 1.0
        cols = (xs - xs.min()) / span_x * (canvas.width - 1)
        rows = (ys.max() - ys) / span_y * (canvas.height - 1)
        box_w = 4 + max(len(label) for label in labels) + 2  # marker, name, border
        box_h = len(labels) + 2
        left = {LegendLocation.TOPLEFT: 1, LegendLocation.BOTTOMLEFT: 1}
        top = {LegendLocation.TOPLEFT: 1, LegendLocation.TOPRIGHT: 1}

        def covered(corner: LegendLocation) -> int:
            x0 = left.get(corner, canvas.width - 1 - box_w)
            y0 = top.get(corner, canvas.height - 1 - box_h)
            inside = (cols >= x0) & (cols < x0 + box_w) & (rows >= y0) & (rows < y0 + box_h)
            return int(inside.sum())

        covers = {corner: covered(corner) for corner in LEGEND_CORNERS}
        best = min(LEGEND_CORNERS, key=covers.__getitem__)  # ties: the first (top right)
        self.legend_covers = covers[best]
        if best != self._legend_location:
            self.show_legend(best)

    def on_resize(self) -> None:
        self.redraw()


class CompareScreen(Screen):
    """Runs side by side: a chart with a line per run, the figures, the settings diff."""

    HELP_TITLE = "Compare runs"
    HELP = ("The marked runs on one chart. m / M pick the metric, x the x axis (step, epoch, "
            "wall time), [ and ] the smoothing (an exponential moving average debiased at the "
            "start, as TensorBoard does), r shows or hides the raw points, s sorts the table.")
    # No HELP_KEYS: every key here is a binding, and ? lists the bindings (once each).

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("m", "metric(1)", "Metric", tooltip="Next metric"),
        Binding("M", "metric(-1)", "Prev metric", show=False, tooltip="Previous metric"),
        Binding("x", "x_axis", "X axis", tooltip="Step, epoch or wall time"),
        Binding("left_square_bracket", "smooth(-1)", "Smooth -", tooltip="Less smoothing"),
        Binding("right_square_bracket", "smooth(1)", "Smooth +", tooltip="More smoothing"),
        Binding("r", "raw", "Raw", tooltip="Show or hide the raw points under smoothing"),
        Binding("s", "sort", "Sort", tooltip="Sort the table by the next column"),
    ]

    DEFAULT_CSS = """
    CompareScreen #compare-title {
        height: 1; padding: 0 1; background: $panel; text-style: bold;
        text-wrap: nowrap; text-overflow: ellipsis;
    }
    CompareScreen #compare-status {
        height: 1; padding: 0 1; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis;
    }
    CompareScreen CompareChart { height: 1fr; min-height: 8; }
    CompareScreen #compare-table { height: 3; }
    CompareScreen #compare-diff { height: 2; }
    CompareScreen .compare-heading { height: 1; padding: 0 1; text-style: bold; }
    """

    def __init__(self, paths: Sequence[Path], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.paths = [Path(p) for p in paths]
        self.runs: list[compare.ComparedRun] = []
        self.metrics: list[str] = ["train_loss"]
        self.metric = "train_loss"
        self.x_axis = "step"
        self.smoothing = 0.6
        self.show_raw = True
        self.sort_column = -1  # -1: the order the runs were marked in
        self._ema: dict[tuple[int, float], tuple[Any, compare.Curve]] = {}
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static("clmtune · compare", id="compare-title")
        yield Static("reading runs…", id="compare-status")
        yield CompareChart(id="compare-chart")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield Static("settings that differ", classes="compare-heading", id="diff-heading")
        yield DataTable(id="compare-diff", cursor_type="none")
        yield AppFooter()

    def on_mount(self) -> None:
        self._show_title()
        self.load_runs()
        self._timer = self.set_interval(REFRESH_S, self._refresh_live)

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def load_runs(self) -> None:
        """Read every run once (the only disk work), off the UI thread; then build every
        curve in the background so the first press of a key finds it ready."""
        runs = compare.load_runs(self.paths)
        self.post_message(RunsLoaded(runs))
        warm_curves(runs)

    def _refresh_live(self) -> None:
        live = [i for i, run in enumerate(self.runs) if run.summary.status == "running"]
        if live:
            self._reload(live)  # live runs update in place; finished ones are not read again

    @work(thread=True, exclusive=True, group="compare-load", exit_on_error=False)
    def _reload(self, indexes: list[int]) -> None:
        fresh = list(self.runs)
        for i in indexes:
            fresh[i] = compare.load_run(fresh[i].path, fresh[i].name)
        self.post_message(RunsLoaded(fresh))

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        self.runs = message.runs
        self.metrics = compare.metric_names(self.runs) or ["train_loss"]
        if self.metric not in self.metrics:
            self.metric = self.metrics[0]
        self.loaded = True
        self.redraw()
        self._fill_table()
        self._fill_diff()

    # ------------------------------------------------------------ drawing

    def redraw(self) -> None:
        """The chart and the status line for the current metric, x axis and smoothing."""
        if not self.runs:
            return
        raw = compare.curves(self.runs, self.metric, self.x_axis)
        smoothed = [self._smoothed(curve) for curve in raw]
        under = raw if self.smoothing > 0 and self.show_raw else []
        self.query_one(CompareChart).show(smoothed, under, self.metric, self.x_axis)
        raw_text = "raw shown" if self.show_raw else "raw hidden"
        empty = [c.name for c in raw if not len(c.x)]
        status = f"{self.metric} vs {self.x_axis} · smoothing {self.smoothing:.2f} ({raw_text})"
        if empty:
            status += f" · no {self.metric} vs {self.x_axis}: "
            names = fit_names(empty, self._room() - 2 - len(status))
            status += ", ".join(names) if names is not None else f"{len(empty)} runs"
        self.query_one("#compare-status", Static).update(status)

    def _smoothed(self, curve: compare.Curve) -> compare.Curve:
        """``curve`` under the current smoothing, kept while its points are the same."""
        if self.smoothing <= 0 or not len(curve.y):
            return curve
        key = (id(curve.y), self.smoothing)
        hit = self._ema.get(key)
        if hit is None or hit[0] is not curve.y:
            if len(self._ema) > 256:
                self._ema.clear()
            hit = (curve.y, compare.Curve(curve.name, curve.x,
                                          compare.ema_array(curve.y, self.smoothing)))
            self._ema[key] = hit
        return hit[1]

    def _rows(self) -> list[compare.Row]:
        rows = compare.table(self.runs)
        if self.sort_column < 0:
            return rows
        return compare.sort_rows(rows, TABLE_COLUMNS[self.sort_column][1])

    def _room(self) -> int:
        """The cells a table may take before it scrolls sideways."""
        return self.size.width or self.app.size.width

    def _fill_table(self) -> None:
        """The figures, one row per run; a long name is cut (with …) so they all fit."""
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        rows = self._rows()
        cells = [[render(row.cell(attr)) for _, attr, render in TABLE_COLUMNS] for row in rows]
        for short in (False, True):  # the runs list's short labels when narrow
            labels = [SHORT_LABELS.get(label, label) if short else label
                      for label, _, _ in TABLE_COLUMNS]
            labels = [f"{label} ▲" if i == self.sort_column else label
                      for i, label in enumerate(labels)]
            widths = [max([len(label)] + [len(row[i]) for row in cells])
                      for i, label in enumerate(labels)]
            others = sum(w + 2 for w in widths[1:])
            if others + RUN_MIN + 2 <= self._room():
                break
        widths[0] = max(len(labels[0]), min(widths[0], max(RUN_MIN, self._room() - others - 2)))
        for label, width, (key, _, _) in zip(labels, widths, TABLE_COLUMNS, strict=True):
            table.add_column(label, key=key, width=width)
        for row, texts in zip(rows, cells, strict=True):
            texts[0] = fit_name(texts[0], widths[0])
            table.add_row(*(ellipsize(t, w) for t, w in zip(texts, widths, strict=True)),
                          key=row.path)
        # Header + rows + a horizontal scrollbar when narrow (auto height lags a frame).
        table.styles.height = min(len(self.runs) + 2, 12)

    def _fill_diff(self) -> None:
        diff = compare.config_diff(self.runs)
        table = self.query_one("#compare-diff", DataTable)
        table.clear(columns=True)
        heading = self.query_one("#diff-heading", Static)
        if not diff:
            configured = any(run.settings for run in self.runs)
            heading.update("settings: no differences" if configured
                           else "settings: no run has a config.toml")
            table.display = False
            return
        heading.update("settings that differ")
        table.display = True
        cells = {key: [compare.setting_text(v) for v in values.values()]
                 for key, values in diff.items()}  # fmt: skip
        # Fixed widths (auto widths follow the rows a frame late). A value is never cut
        # under VALUE_MAX cells; the run names in the header share the rest (cut with …).
        key_width = min(max(len(k) for k in cells), VALUE_MAX)
        values = [min(max(len(row[i]) for row in cells.values()), VALUE_MAX)
                  for i in range(len(self.runs))]
        share = (self._room() - key_width - 2) // max(len(self.runs), 1) - 2
        widths = [max(value, min(len(run.name), share), 1)
                  for value, run in zip(values, self.runs, strict=True)]
        table.add_column("Setting", key="setting", width=key_width)
        for i, (run, width) in enumerate(zip(self.runs, widths, strict=True)):
            table.add_column(fit_name(run.name, width), key=f"run-{i}", width=width)
        for key, row in cells.items():
            table.add_row(ellipsize(key, key_width),
                          *(ellipsize(v, w) for v, w in zip(row, widths, strict=True)))
        table.styles.height = min(len(diff) + 1, 8)  # header + rows (auto lags a frame)

    def _show_title(self) -> None:
        head = "clmtune · compare "
        names = [p.name for p in self.paths]
        fitted = fit_names(names, self._room() - 2 - len(head))
        self.query_one("#compare-title", Static).update(
            head + (", ".join(fitted) if fitted is not None else f"{len(names)} runs"))

    def on_resize(self) -> None:
        self._show_title()
        if self.runs:
            self._fill_table()
            self._fill_diff()

    # ------------------------------------------------------------ actions

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_metric(self, step: int) -> None:
        i = self.metrics.index(self.metric) if self.metric in self.metrics else 0
        self.metric = self.metrics[(i + step) % len(self.metrics)]
        self.redraw()

    def action_x_axis(self) -> None:
        axes = compare.X_AXES
        self.x_axis = axes[(axes.index(self.x_axis) + 1) % len(axes)]
        self.redraw()

    def action_smooth(self, step: int) -> None:
        value = round(self.smoothing + step * SMOOTH_STEP, 2)
        self.smoothing = min(max(value, 0.0), compare.MAX_SMOOTHING)
        self.redraw()

    def action_raw(self) -> None:
        self.show_raw = not self.show_raw
        self.redraw()

    def action_sort(self) -> None:
        self.sort_column = (self.sort_column + 2) % (len(TABLE_COLUMNS) + 1) - 1
        self._fill_table()

    def palette_commands(self) -> Iterable[SystemCommand]:
        yield SystemCommand("Next metric", "Chart the next metric (m)",
                            lambda: self.action_metric(1))
        yield SystemCommand("X axis", "Step, epoch or wall time (x)", self.action_x_axis)
        yield SystemCommand("More smoothing", "EMA weight + 0.1 (])",
                            lambda: self.action_smooth(1))
        yield SystemCommand("Less smoothing", "EMA weight - 0.1 ([)",
                            lambda: self.action_smooth(-1))
        yield SystemCommand("Raw points", "Show or hide the raw points (r)", self.action_raw)
        yield SystemCommand("Sort table", "Sort by the next column (s)", self.action_sort)
