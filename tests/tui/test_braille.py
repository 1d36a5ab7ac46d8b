"""Braille lines drawn with numpy (tui/braille.py) equal textual-hires-canvas's own, dot
for dot: the Compare screen and the loss chart draw through it (issue 11's speed)."""

from __future__ import annotations

import numpy as np
import pytest
from textual.app import App, ComposeResult
from textual.containers import Horizontal
from textual_hires_canvas import Canvas
from textual_plot import HiResMode, PlotWidget

from clmtune.tui import braille
from clmtune.tui.widgets.loss_chart import QuietLegend


def _library_line(x0: int, y0: int, x1: int, y1: int) -> set[tuple[int, int]]:
    return set(Canvas._get_line_coordinates(None, x0, y0, x1, y1))  # uses no state


SEGMENTS = [(0, 0, 0, 0), (0, 0, 7, 0), (7, 0, 0, 0), (3, 0, 3, 9), (3, 9, 3, 0),
            (0, 0, 5, 5), (5, 5, 0, 0), (0, 0, 9, 2), (9, 2, 0, 0), (0, 0, 2, 9),
            (2, 9, 0, 0), (1, 8, 6, 0), (6, 0, 1, 8), (0, 3, 40, 1), (0, 0, 1, 150)]


@pytest.mark.parametrize("segment", SEGMENTS)
def test_one_segment_has_the_canvas_dots(segment):
    x, y = braille.segment_pixels(*(np.array([v]) for v in segment))
    assert set(zip(x.tolist(), y.tolist(), strict=True)) == _library_line(*segment)


def test_many_segments_at_once_have_every_segments_dots():
    rng = np.random.default_rng(0)
    ends = rng.integers(0, 60, size=(500, 4))
    x, y = braille.segment_pixels(ends[:, 0], ends[:, 1], ends[:, 2], ends[:, 3])
    expected = set().union(*(_library_line(*map(int, e)) for e in ends))
    assert set(zip(x.tolist(), y.tolist(), strict=True)) == expected


def test_glyphs_are_the_canvas_table():
    from textual_hires_canvas.hires import pixels

    table = pixels[HiResMode.BRAILLE]
    assert braille.GLYPHS[0] is None
    assert braille.GLYPHS[0b1] == table[(1, 0, 0, 0, 0, 0, 0, 0)]  # top left dot
    assert braille.GLYPHS[0b10000000] == table[(0, 0, 0, 0, 0, 0, 0, 1)]  # bottom right
    assert len(set(braille.GLYPHS[1:])) == 255


class Fast(QuietLegend):
    """The dashboard's chart base: numpy braille, one refresh per redraw."""


class TwoCharts(App):
    CSS = "PlotWidget { width: 1fr; height: 1fr; }"

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield PlotWidget(id="library")
            yield Fast(id="ours")


def _draw(chart: PlotWidget, curves, zoom) -> None:
    chart.clear()
    for i, (x, y) in enumerate(curves):
        chart.plot(x, y, line_style=("cyan", "dim magenta", "yellow")[i % 3],
                   hires_mode=HiResMode.BRAILLE)
    chart.plot([0, 1], [5, 5], line_style="red")  # not braille: the library's own path
    if zoom:
        chart.set_xlimits(*zoom)  # segments leave the canvas: clipped


@pytest.mark.anyio
@pytest.mark.parametrize("zoom", [None, (120.0, 300.0)])
async def test_a_chart_is_drawn_dot_for_dot_as_the_library_draws_it(zoom):
    rng = np.random.default_rng(1)
    steps = np.arange(400, dtype=np.float64)
    curves = [(steps, np.cumsum(rng.normal(size=400))) for _ in range(3)]
    curves.append((steps[:50], np.full(50, 2.0)))  # flat
    curves.append((np.array([10.0, 11.0]), np.array([-30.0, 40.0])))  # one steep segment
    curves.append((steps[:2], np.array([np.nan, 1.0])))  # a point the canvas cannot place
    app = TwoCharts()
    async with app.run_test(size=(160, 30)) as pilot:
        library, ours = app.query_one("#library", PlotWidget), app.query_one("#ours", Fast)
        for chart in (library, ours):
            _draw(chart, curves[:-1] if chart is library else curves, zoom)
        await pilot.pause()
        await pilot.pause()
        a = library.query_one("#plot", Canvas)
        b = ours.query_one("#plot", Canvas)
        assert a._canvas_size == b._canvas_size
        assert sum(ch != " " for row in b._buffer for ch in row) > 200
        assert a._buffer == b._buffer
        # The frame's colour says which chart has the focus: compare inside it.
        assert [row[1:-1] for row in a._styles[1:-1]] == [row[1:-1] for row in b._styles[1:-1]]


@pytest.mark.anyio
async def test_a_library_without_the_attributes_we_read_still_draws(monkeypatch):
    """Another textual-plot / hires-canvas inside: our drawing steps aside, theirs draws."""

    def missing(self, canvas, dataset):
        raise AttributeError("'Canvas' object has no attribute '_buffer'")

    monkeypatch.setattr(QuietLegend, "_render_braille", missing)
    steps = np.arange(50, dtype=np.float64)
    curves = [(steps, np.sin(steps / 5))]
    app = TwoCharts()
    async with app.run_test(size=(120, 24)) as pilot:
        library, ours = app.query_one("#library", PlotWidget), app.query_one("#ours", Fast)
        for chart in (library, ours):
            _draw(chart, curves, None)
        await pilot.pause()
        await pilot.pause()
        a = library.query_one("#plot", Canvas)
        b = ours.query_one("#plot", Canvas)
        assert sum(ch != " " for row in b._buffer for ch in row) > 20
        assert a._buffer == b._buffer
