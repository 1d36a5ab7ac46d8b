"""Thin long histories to what a chart can show: min and max per pixel column.

A run can log 100,000 steps; a terminal chart is ~200 braille pixel columns wide.
Plotting every point costs seconds per redraw; keeping the min and the max of each
column keeps every spike visible (a plain stride would hide them) at ~2 points per
column. Pure numpy, no Textual, so it is unit-tested on its own.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def thin_minmax(
    x: ArrayLike,
    y: ArrayLike,
    columns: int,
    x_min: float | None = None,
    x_max: float | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Points of ``(x, y)`` inside ``[x_min, x_max]`` reduced to ≤ 2 per column.

    ``x`` must be non-decreasing (steps). Non-finite ``y`` are dropped. Within each of
    ``columns`` equal-width x buckets the points holding the minimum and the maximum
    ``y`` are kept, in x order, so the line still runs left to right. The nearest point
    outside each side of the window is kept too, so a zoomed line reaches the edges.
    """
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length: {xs.shape} vs {ys.shape}")
    finite = np.isfinite(ys) & np.isfinite(xs)
    if not finite.all():
        xs, ys = xs[finite], ys[finite]
    if xs.size == 0:
        return xs, ys
    lo = float(xs[0]) if x_min is None else float(x_min)
    hi = float(xs[-1]) if x_max is None else float(x_max)
    # Window plus one neighbour each side (searchsorted: x is sorted).
    start = max(int(np.searchsorted(xs, lo, side="left")) - 1, 0)
    stop = min(int(np.searchsorted(xs, hi, side="right")) + 1, xs.size)
    xs, ys = xs[start:stop], ys[start:stop]
    columns = max(int(columns), 1)
    if xs.size <= 2 * columns or hi <= lo:
        return xs.copy(), ys.copy()
    inside = (xs >= lo) & (xs <= hi)
    edges_keep = np.flatnonzero(~inside)  # the two neighbours, kept as they are
    first_inside = int(np.argmax(inside))
    xi, yi = xs[inside], ys[inside]
    # x is sorted, so every bucket is a contiguous run: find where each one starts.
    edges = lo + (hi - lo) * np.arange(columns) / columns
    starts = np.unique(np.searchsorted(xi, edges, side="left"))
    starts = starts[starts < xi.size]
    seg = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, xi.size]))
    keep_inside = np.union1d(
        _first_match(yi, np.minimum.reduceat(yi, starts)[seg], seg),
        _first_match(yi, np.maximum.reduceat(yi, starts)[seg], seg),
    )
    keep = np.union1d(keep_inside + first_inside, edges_keep)  # sorted -> x order kept
    return xs[keep], ys[keep]


def _first_match(values: FloatArray, target: FloatArray, seg: NDArray[np.int64]) -> NDArray:
    """Index of the first element of each segment equal to that segment's target."""
    hits = np.flatnonzero(values == target)
    _, first = np.unique(seg[hits], return_index=True)
    return hits[first]


def log10_positive(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """``(x, log10(y))`` for the points with ``y > 0`` (log-scale charts)."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        mask = ys > 0
    return xs[mask], np.log10(ys[mask])
