"""Braille line drawing with numpy: the pixels textual-hires-canvas would set, set at once.

A chart line in ``HiResMode.BRAILLE`` goes through textual-hires-canvas as Python code per
pixel: Bresenham per segment, then per pixel a bounds check, a dict and a set, a small
numpy array per cell and a ``refresh()`` per cell. Ten runs of ~400 thinned points each
cost ~300 ms per redraw that way, most of a key press on the Compare screen (issue 11).

These functions compute the same thing over whole arrays: the same coordinate mapping
(``textual_plot``'s ``linear_mapper``, same operations in the same order, so the same
floats), the same integer Bresenham steps (every segment advanced together), and the
same glyph per cell (the canvas's own table). Clipping a segment that leaves the canvas
is left to the canvas's own function (a zoomed chart has at most one such segment per
side). ``tests/tui/test_braille.py`` checks the result pixel for pixel against the
library's own drawing. Pure numpy, no Textual.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from textual_hires_canvas.hires import HiResMode, pixels

IntArray = NDArray[np.int64]
#: Braille: 2 x 4 dots per cell.
DOTS_X, DOTS_Y = 2, 4


def _glyph_table() -> list[str | None]:
    """The canvas's glyph of each 8-dot mask (bit ``row * 2 + column`` set for a dot)."""
    table = pixels[HiResMode.BRAILLE]
    return [table[tuple((mask >> bit) & 1 for bit in range(8))] for mask in range(256)]


GLYPHS = _glyph_table()


def to_hires(x: ArrayLike, y: ArrayLike, limits: tuple[float, float, float, float],
             region: tuple[int, int, int, int]) -> tuple[NDArray, NDArray]:
    """Data coordinates → canvas coordinates (in cells, with fractions), as textual-plot
    maps them: ``limits`` = (x_min, x_max, y_min, y_max), ``region`` = (x, y, right,
    bottom) of the plot's scale rectangle; y grows downwards."""
    x_min, x_max, y_min, y_max = limits
    left, top, right, bottom = region
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        cx = left + (xs - x_min) * (right - left) / (x_max - x_min)
        cy = bottom + (ys - y_min) * (top - bottom) / (y_max - y_min)
    return cx, cy


def inside(cx: NDArray, cy: NDArray, width: int, height: int) -> NDArray:
    """Which points the canvas's clipping accepts as they are (``0 ≤ x ≤ width - 1``, the
    same for y); NaN is not inside."""
    return (cx >= 0) & (cx <= width - 1) & (cy >= 0) & (cy <= height - 1)


def segment_pixels(x0: IntArray, y0: IntArray, x1: IntArray,
                   y1: IntArray) -> tuple[IntArray, IntArray]:
    """Every dot of the segments ``(x0, y0) → (x1, y1)`` (dot coordinates), with the steps
    of the canvas's Bresenham (``Canvas._get_line_coordinates``), all segments at once.

    The result may repeat a dot; the order is not the canvas's (a cell's glyph depends
    only on which of its dots are set)."""
    x, y = np.array(x0, dtype=np.int64), np.array(y0, dtype=np.int64)
    x1, y1 = np.asarray(x1, dtype=np.int64), np.asarray(y1, dtype=np.int64)
    out_x, out_y = [x.copy()], [y.copy()]  # every segment's first dot
    dx = np.abs(x1 - x)
    dy = -np.abs(y1 - y)
    sx = np.where(x < x1, 1, -1)
    sy = np.where(y < y1, 1, -1)
    err = dx + dy
    limit = np.maximum(dx, -dy) + 1  # the canvas's safety stop
    count = np.ones_like(x)
    live = np.flatnonzero((x != x1) | (y != y1))
    x, y, x1, y1, dx, dy, sx, sy, err, limit, count = (
        a[live] for a in (x, y, x1, y1, dx, dy, sx, sy, err, limit, count))
    while x.size:
        e2 = 2 * err
        step_x = e2 >= dy
        stop = step_x & (x == x1)
        step_x &= ~stop
        err = err + np.where(step_x, dy, 0)
        x = x + np.where(step_x, sx, 0)
        step_y = (e2 <= dx) & ~stop
        stop_y = step_y & (y == y1)
        step_y &= ~stop_y
        stop |= stop_y
        err = err + np.where(step_y, dx, 0)
        y = y + np.where(step_y, sy, 0)
        kept = ~stop
        out_x.append(x[kept])
        out_y.append(y[kept])
        count = count + kept
        stop |= ((x == x1) & (y == y1)) | (count > limit)
        if stop.any():
            go = ~stop
            x, y, x1, y1, dx, dy, sx, sy, err, limit, count = (
                a[go] for a in (x, y, x1, y1, dx, dy, sx, sy, err, limit, count))
    return np.concatenate(out_x), np.concatenate(out_y)


def cells(dot_x: IntArray, dot_y: IntArray, width: int,
          height: int) -> list[tuple[int, int, str]]:
    """``(cell x, cell y, glyph)`` of every canvas cell holding at least one of the dots
    (dots outside the ``width`` x ``height`` canvas are dropped, as the canvas does)."""
    cx, cy = dot_x // DOTS_X, dot_y // DOTS_Y
    keep = (cx >= 0) & (cx < width) & (cy >= 0) & (cy < height)
    if not keep.all():
        dot_x, dot_y, cx, cy = dot_x[keep], dot_y[keep], cx[keep], cy[keep]
    if not cx.size:
        return []
    index = cy * width + cx
    masks = np.zeros(width * height, dtype=np.int64)
    np.bitwise_or.at(masks, index, 1 << ((dot_y % DOTS_Y) * DOTS_X + dot_x % DOTS_X))
    hit = np.flatnonzero(masks)
    glyphs = GLYPHS
    return [(int(i % width), int(i // width), glyphs[m])
            for i, m in zip(hit.tolist(), masks[hit].tolist(), strict=True)]
