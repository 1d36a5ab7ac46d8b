"""Loss chart (train + eval, zoom/pan, log scale) and the lr / grad-norm strips.

The chart keeps references to the raw histories and thins them to ≤ 2 points per
braille pixel column (:func:`tui.thin.thin_minmax`) on every redraw, for the x
window on screen, so zooming into 100k steps shows the detail that is there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.reactive import reactive
from textual.widgets import Label, Sparkline
from textual_hires_canvas import Canvas
from textual_plot import HiResMode, LegendLocation, NumericAxisFormatter, PlotWidget

from clmtune.tui import braille, fmt
from clmtune.tui.thin import log10_positive, thin_minmax
from clmtune.tui.widgets.label_text import set_label

SPARK_POINTS = 400  # tail of lr / grad norm shown in the strips
PLOT_LIMIT = 1e100  # |x| or |y| beyond this is damage, not data: the axis mapping overflows
# textual-plot writes the y label over the old one without clearing it: both labels
# get the same width so the new one covers the old ("loss" after "loss (log)").
Y_LABELS = {False: "loss", True: "loss (log)"}
_LABEL_WIDTH = max(len(label) for label in Y_LABELS.values())
SMALL_LEGEND = (40, 10)  # below this chart size the legend would cover the lines
MARGIN_LEFT = 7
# textual-plot cuts y tick labels to the left margin minus one column: "1500000" would
# read "150000". Labels are made to fit instead of being cut.
TICK_WIDTH = MARGIN_LEFT - 1


class ArrayCache:
    """A float array mirroring an append-only list, converting only the new tail.

    Converting a 100k-element list costs ~6 ms per redraw; a batch adds a few points.
    ``reset()`` after the list was truncated (a resumed run re-logs its steps).
    """

    def __init__(self) -> None:
        self.source: Sequence[float] | None = None
        self.array: np.ndarray = np.empty(0)

    def reset(self) -> None:
        self.source = None

    def get(self, values: Sequence[float]) -> np.ndarray:
        n = len(values)
        if values is not self.source or n < self.array.size:
            self.array = np.asarray(values, dtype=np.float64)
            self.source = values
        elif n > self.array.size:
            tail = np.asarray(values[self.array.size :], dtype=np.float64)
            self.array = np.concatenate([self.array, tail])
        return self.array


def fit_tick(value: float, width: int = TICK_WIDTH) -> str:
    """``value`` in at most ``width`` characters: fewer digits, then a short exponent (1.5e6)."""
    text = f"{value:g}"
    for digits in range(width, 0, -1):
        mantissa, sep, exponent = f"{value:.{digits}g}".partition("e")
        text = f"{mantissa}e{int(exponent)}" if sep else mantissa
        if len(text) <= width:
            break
    return text


def fit_labels(values: Sequence[float], labels: list[str], width: int = TICK_WIDTH) -> list[str]:
    """``labels`` unchanged when they all fit ``width``, else every value re-labelled to fit."""
    if all(len(label) <= width for label in labels):
        return labels
    return [fit_tick(value, width) for value in values]


class FittedAxisFormatter(NumericAxisFormatter):
    """Linear ticks whose labels fit the left margin (never cut to a wrong number)."""

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        return fit_labels(ticks, super().get_labels_for_ticks(ticks))


class LogAxisFormatter(NumericAxisFormatter):
    """Ticks placed in log10 space, labelled with the real values."""

    def get_labels_for_ticks(self, ticks: Sequence[float]) -> list[str]:
        values = [10.0**t for t in ticks]
        return fit_labels(values, [fmt.num(value, 3) for value in values])


class QuietLegend(PlotWidget):
    """A plot whose legend is rewritten once per redraw, and only when its text changed.

    textual-plot rewrites the legend on every ``clear``, ``plot`` and ``scatter``; a
    rewrite is a ``Static.update``, which lays the whole screen out again. Redrawing
    identical curves once a second then costs a full-screen layout each time: CPU that a
    CPU training run next door loses (issue 16). The rewrite is deferred to after the
    redraw and skipped when the legend would read the same.
    """

    _legend_pending = False
    _legend_key: tuple[Any, ...] | None = None

    def _update_legend(self) -> None:
        if not self._legend_pending:
            self._legend_pending = True
            self.call_later(self._write_legend)

    def _write_legend(self) -> None:
        self._legend_pending = False
        styles = [str(getattr(d, "line_style", "") or getattr(d, "marker_style", ""))
                  for d in self._datasets]
        key = (tuple(self._labels), tuple(type(d).__name__ for d in self._datasets),
               tuple(styles), tuple(self._v_lines_labels), self.size)
        if key != self._legend_key:
            self._legend_key = key
            super()._update_legend()

    def show_legend(self, location: LegendLocation | None = None, is_visible: bool = True) -> None:
        self._legend_key = None  # shown again: write it
        super().show_legend(location, is_visible)

    # Drawing: the canvas refreshes once per redraw (not once per cell it sets), and braille
    # lines are drawn with numpy (tui/braille.py: the same dots; a Compare key press with
    # 10 runs went from 82-198 ms to 47-57 ms, painted).

    def _render_scatter_plot(self, dataset: Any) -> None:
        """textual-plot's markers, with the points on the top and right edges kept.

        Its mapping sends x = x_max to the column past the last and y = y_max to the row
        above the first, where the canvas drops them: the last evaluation of a run (at its
        last step) had no marker. A point inside the limits stays in the plot area.
        """
        if dataset.hires_mode:
            return super()._render_scatter_plot(dataset)
        canvas = self.query_one("#plot", Canvas)
        area = self._scale_rectangle
        for x, y in zip(dataset.x, dataset.y, strict=False):
            px, py = self.get_pixel_from_coordinate(x, y)
            if px == area.right and x <= self._x_max:
                px -= 1
            if py == area.y - 1 and y <= self._y_max:
                py += 1
            canvas.set_pixel(px, py, char=dataset.marker, style=dataset.marker_style)
        return None

    def _render_plot(self) -> None:
        try:
            canvas = self.query_one("#plot", Canvas)
        except NoMatches:
            return super()._render_plot()
        batch = getattr(canvas, "batch_refresh", None)  # textual-hires-canvas >= 0.14
        if batch is None:
            super()._render_plot()
            self._render_empty(canvas)
            return None
        with batch():
            super()._render_plot()
            self._render_empty(canvas)
        return None

    def _render_empty(self, canvas: Canvas) -> None:
        """Nothing to plot: say why in the middle of the plot area, not a bare 0-1 box."""
        text = getattr(self, "waiting", "")
        if not text or any(len(d.x) for d in self._datasets) or canvas._canvas_size is None:
            return
        area = self._scale_rectangle
        width, rows = max(area.width - 2, 1), max(area.height, 1)
        lines = _wrap_words(text, width)
        if len(lines) > rows:  # a very short chart: what does not fit ends in an ellipsis
            lines = lines[:rows]
            lines[-1] = lines[-1][: width - 1] + "…"
        top = area.y + max((area.height - len(lines)) // 2, 0)
        style = str(self.get_component_rich_style("plot--label", partial=True)) or ""
        for i, line in enumerate(lines):
            x = area.x + max((area.width - len(line)) // 2, 0)
            for j, char in enumerate(line):
                canvas.set_pixel(x + j, top + i, char=char, style=style)

    def _render_line_plot(self, dataset: Any) -> None:
        canvas = self.query_one("#plot", Canvas)
        if (dataset.hires_mode is not HiResMode.BRAILLE
                or getattr(canvas, "_canvas_size", None) is None):  # fmt: skip
            return super()._render_line_plot(dataset)
        try:
            return self._render_braille(canvas, dataset)
        except AttributeError:  # another textual-plot / hires-canvas inside: theirs draws
            return super()._render_line_plot(dataset)

    def _render_braille(self, canvas: Canvas, dataset: Any) -> None:
        """What ``_render_line_plot`` draws for a braille line, with tui/braille.py (it
        reads the plot's limits and the canvas's buffers: their attributes as of
        textual-plot 0.10 / textual-hires-canvas 0.14)."""
        n = min(len(dataset.x), len(dataset.y))
        if n < 2:
            return None
        area = self._scale_rectangle
        cx, cy = braille.to_hires(dataset.x[:n], dataset.y[:n],
                                  (self._x_min, self._x_max, self._y_min, self._y_max),
                                  (area.x, area.y, area.right, area.bottom))
        width, height = canvas._canvas_region.width, canvas._canvas_region.height
        x0, y0, x1, y1 = cx[:-1], cy[:-1], cx[1:], cy[1:]
        ok = braille.inside(x0, y0, width, height) & braille.inside(x1, y1, width, height)
        clipped = []
        for i in np.flatnonzero(~ok).tolist():  # leaves the canvas (zoomed): its own clip
            if not all(map(math.isfinite, (x0[i], y0[i], x1[i], y1[i]))):
                continue  # no point to draw (the canvas would fail on it)
            line = canvas._clip_line_cohen_sutherland(float(x0[i]), float(y0[i]),
                                                      float(x1[i]), float(y1[i]))
            if line is not None:
                clipped.append(line)
        ends = np.stack([x0[ok], y0[ok], x1[ok], y1[ok]], axis=1)
        if clipped:
            ends = np.concatenate([ends, np.array(clipped, dtype=np.float64)])
        if not ends.size:
            return None
        scale = np.array([braille.DOTS_X, braille.DOTS_Y] * 2, dtype=np.float64)
        dots = np.floor(ends * scale).astype(np.int64)
        px, py = braille.segment_pixels(dots[:, 0], dots[:, 1], dots[:, 2], dots[:, 3])
        buffer, styles, style = canvas._buffer, canvas._styles, dataset.line_style
        for x, y, glyph in braille.cells(px, py, width, height):
            if glyph:
                buffer[y][x] = glyph
                styles[y][x] = style
        canvas.refresh()
        return None


def _wrap_words(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters: each of its own lines, broken
    between words; a word longer than a line ends in an ellipsis (never cut without one)."""
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split():
            if len(word) > width:
                word = word[: max(width - 1, 0)] + "…"
            if line and len(line) + 1 + len(word) <= width:
                line += " " + word
            else:
                if line:
                    lines.append(line)
                line = word
        if line:
            lines.append(line)
    return lines


class LossChart(QuietLegend, inherit_bindings=False):
    """Train and eval loss on one chart. Mouse wheel zooms, drag pans; keys below."""

    COMPONENT_CLASSES = PlotWidget.COMPONENT_CLASSES | {"loss-chart--train", "loss-chart--eval"}

    BINDINGS = [
        Binding("plus,equals_sign", "zoom_in", "Zoom in", show=False),
        Binding("minus", "zoom_out", "Zoom out", show=False),
        Binding("left", "pan_left", "Pan left", show=False),
        Binding("right", "pan_right", "Pan right", show=False),
        Binding("up", "pan_up", "Pan up", show=False),
        Binding("down", "pan_down", "Pan down", show=False),
        Binding("0", "reset_scales", "Reset zoom", show=False),
    ]

    log_scale: reactive[bool] = reactive(False, init=False)
    # Tighter margins than textual-plot's defaults: every row counts at 80x24.
    margin_top = reactive(1)
    margin_bottom = reactive(1)
    margin_left = reactive(MARGIN_LEFT)

    def __init__(self, *, waiting: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.train_x: Sequence[float] = []
        self.train_y: Sequence[float] = []
        self.eval_x: Sequence[float] = []
        self.eval_y: Sequence[float] = []
        self.plotted_points = 0  # after thinning, for tests and the bench
        #: What an empty chart says in its middle (what it waits for); "" says nothing.
        self.waiting = waiting
        self._padded_y = False  # y limits set by _keep_axes_readable, not by the user
        self._cache = [ArrayCache() for _ in range(4)]

    def on_mount(self) -> None:
        self.set_ylabel(Y_LABELS[False].center(_LABEL_WIDTH))
        self.set_y_formatter(FittedAxisFormatter())
        self.show_legend(LegendLocation.TOPRIGHT)
        self.redraw()

    def set_data(
        self,
        train_x: Sequence[float],
        train_y: Sequence[float],
        eval_x: Sequence[float],
        eval_y: Sequence[float],
        *,
        reset: bool = False,
    ) -> None:
        """Point the chart at the (growing) histories and redraw.

        ``reset``: the histories were truncated (resume) rather than only appended to.
        """
        if reset:
            for cache in self._cache:
                cache.reset()
        self.train_x, self.train_y = train_x, train_y
        self.eval_x, self.eval_y = eval_x, eval_y
        self.redraw()

    def _columns(self) -> int:
        try:
            width = self.query_one("#plot", Canvas).size.width
        except Exception:  # noqa: BLE001 - not composed yet
            width = 0
        # One bucket per terminal column: min + max = 2 points per column.
        return max(width - 2, 20)

    def _window(self) -> tuple[float | None, float | None]:
        # While the user has zoomed or panned, thin only what is on screen.
        if self._auto_x_min and self._auto_x_max:
            return None, None
        return self._x_min, self._x_max

    def _series(self, which: int, x: Sequence[float],
                y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self._window()
        xa, ya = self._cache[2 * which].get(x), self._cache[2 * which + 1].get(y)
        shown = ((np.abs(xa) < PLOT_LIMIT) & (np.abs(ya) < PLOT_LIMIT)
                 if len(xa) == len(ya) else None)  # fmt: skip
        if shown is not None and not shown.all():
            # NaN/inf (or a damaged 1e308) would make the axis limits NaN/inf: leave those
            # points out (the run is flagged elsewhere) so the rest keeps a readable axis.
            xa, ya = xa[shown], ya[shown]
        xs, ys = thin_minmax(xa, ya, self._columns(), lo, hi)
        if self.log_scale:
            xs, ys = log10_positive(xs, ys)
        return xs, ys

    def _keep_axes_readable(self, *series: np.ndarray) -> None:
        """Give a flat series (one value, or one point) a span the tick labels can show.

        textual-plot widens a zero span by 1e-6 only, which labels every tick with the
        same number; the padding here is released as soon as the data has a span.
        """
        ys = np.concatenate([s for s in series if len(s)]) if any(len(s) for s in series) else None
        flat = ys is not None and float(np.ptp(ys)) <= 1e-9 * max(1.0, float(np.abs(ys).max()))
        if flat and ys is not None and self._auto_y_min and self._auto_y_max:
            value = float(ys[0])
            pad = max(abs(value) * 0.05, 0.05)
            self.set_ylimits(value - pad, value + pad)
            self._padded_y = True
        elif not flat and self._padded_y:
            self._padded_y = False
            self.set_ylimits(None, None)

    def redraw(self) -> None:
        """Re-thin for the current window and width, then re-plot."""
        if not self.is_mounted:
            return
        train_style = str(self.get_component_rich_style("loss-chart--train", partial=True))
        eval_style = str(self.get_component_rich_style("loss-chart--eval", partial=True))
        tx, ty = self._series(0, self.train_x, self.train_y)
        ex, ey = self._series(1, self.eval_x, self.eval_y)
        self._keep_axes_readable(ty, ey)
        self.clear()
        self.plotted_points = len(tx) + len(ex)
        train_style, eval_style = train_style or "white", eval_style or "yellow"
        if getattr(self.app, "ascii", False):
            # No braille on this terminal: plain markers, one per point.
            self.scatter(tx, ty, marker="*", marker_style=train_style, label="train")
            if len(ex):
                self.scatter(ex, ey, marker="o", marker_style=eval_style, label="eval")
            return
        self.plot(tx, ty, line_style=train_style, hires_mode=HiResMode.BRAILLE, label="train")
        if len(ex):
            self.plot(ex, ey, line_style=eval_style, hires_mode=HiResMode.BRAILLE)
            self.scatter(ex, ey, marker="•", marker_style=eval_style, label="eval")

    def watch_log_scale(self, log_scale: bool) -> None:
        self.set_y_formatter(LogAxisFormatter() if log_scale else FittedAxisFormatter())
        self.set_ylabel(Y_LABELS[log_scale].center(_LABEL_WIDTH))
        # y limits in the old scale are meaningless now; keep the x window.
        self._auto_y_min = self._auto_y_max = True
        self._padded_y = False
        self.redraw()

    def toggle_log(self) -> None:
        """Switch the y axis between linear and log scale."""
        self.log_scale = not self.log_scale

    def action_reset_scales(self) -> None:
        super().action_reset_scales()
        self.redraw()

    @on(PlotWidget.ScaleChanged)
    def _rethin_on_zoom(self, event: PlotWidget.ScaleChanged) -> None:
        event.stop()
        self.redraw()

    def on_resize(self) -> None:
        # A small chart has no room for the legend: it would hide the curve.
        small = self.size.width < SMALL_LEGEND[0] or self.size.height < SMALL_LEGEND[1]
        self.show_legend(is_visible=not small)
        self.redraw()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        if self.is_mounted:
            self.call_later(self.redraw)  # line colours come from the theme


def _tail(values: Sequence[float], n: int = SPARK_POINTS) -> list[float]:
    return [v for v in values[-n:] if isinstance(v, float) and math.isfinite(v)]


class SignalsPanel(Vertical):
    """Learning rate and grad norm as sparklines with their latest values."""

    def compose(self) -> ComposeResult:
        with Horizontal(classes="signal"):
            yield Label("lr   -", id="lr-value", classes="signal-label")
            yield Sparkline([], id="lr-spark")
        with Horizontal(classes="signal"):
            yield Label("grad -", id="gn-value", classes="signal-label")
            yield Sparkline([], id="gn-spark")

    def update_signals(self, learning_rate: Sequence[float], grad_norm: Sequence[float]) -> None:
        lr_tail, gn_tail = _tail(learning_rate), _tail(grad_norm)
        # The labels have a fixed width (CSS): a new value needs no reflow.
        set_label(self.query_one("#lr-value", Label),
                  f"lr   {fmt.num(lr_tail[-1] if lr_tail else None, 3)}", fixed=True)
        set_label(self.query_one("#gn-value", Label),
                  f"grad {fmt.num(gn_tail[-1] if gn_tail else None, 3)}", fixed=True)
        self.query_one("#lr-spark", Sparkline).data = lr_tail
        self.query_one("#gn-spark", Sparkline).data = gn_tail

