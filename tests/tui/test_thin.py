"""Thinning keeps ≤ 2 points per column and every column's extremes."""

from __future__ import annotations

import numpy as np
import pytest

from clmtune.tui.thin import log10_positive, thin_minmax


def test_100k_points_thin_to_two_per_column_and_keep_extremes():
    rng = np.random.default_rng(0)
    x = np.arange(100_000, dtype=float)
    y = rng.normal(size=x.size)
    y[12_345] = 50.0  # a spike a stride would miss
    y[77_777] = -40.0
    columns = 200
    tx, ty = thin_minmax(x, y, columns)
    assert len(tx) <= 2 * columns
    assert np.all(np.diff(tx) > 0), "x order kept"
    assert 50.0 in ty and -40.0 in ty
    # every bucket keeps its own min and max
    bucket = np.minimum((x / x[-1] * columns).astype(int), columns - 1)
    for b in (0, 61, 199):
        sel = bucket == b
        assert y[sel].max() in ty and y[sel].min() in ty


def test_small_series_unchanged():
    x, y = [1, 2, 3], [3.0, 2.0, 1.0]
    tx, ty = thin_minmax(x, y, 50)
    assert tx.tolist() == [1, 2, 3] and ty.tolist() == [3.0, 2.0, 1.0]


def test_window_keeps_one_neighbour_each_side_and_thins_inside():
    x = np.arange(10_000, dtype=float)
    y = np.sin(x / 50)
    tx, ty = thin_minmax(x, y, 10, x_min=2000, x_max=3000)
    inside = (tx >= 2000) & (tx <= 3000)
    assert inside.sum() <= 20
    assert tx[0] == 1999 and tx[-1] == 3001  # the line reaches both edges


def test_non_finite_dropped_and_empty_ok():
    tx, ty = thin_minmax([1, 2, 3], [1.0, float("nan"), float("inf")], 10)
    assert tx.tolist() == [1.0] and ty.tolist() == [1.0]
    ex, ey = thin_minmax([], [], 10)
    assert ex.size == 0 and ey.size == 0


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match="differ in length"):
        thin_minmax([1, 2], [1.0], 10)


def test_log10_positive_drops_non_positive():
    lx, ly = log10_positive([1, 2, 3], [10.0, 0.0, 100.0])
    assert lx.tolist() == [1.0, 3.0] and ly.tolist() == [1.0, 2.0]
