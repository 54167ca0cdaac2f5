"""``image_extent`` / ``mark_outside`` (the inside test of a cube tile) against the numpy masks
they replace, on random positions with NaN, infinities and exact image edges planted."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.cube import kernels as K


def reference(row, col, n_rows, n_cols):
    inside = (row >= -0.5) & (row <= n_rows - 0.5) & (col >= -0.5) & (col <= n_cols - 0.5)
    return inside


def positions(rng, shape, n_rows, n_cols):
    row = rng.uniform(-20.0, n_rows + 20.0, shape)
    col = rng.uniform(-20.0, n_cols + 20.0, shape)
    flat = row.ravel(), col.ravel()
    k = rng.choice(row.size, 60, replace=False)
    edges = np.array([-0.5, n_rows - 0.5, -0.5 - 1e-12, n_rows - 0.5 + 1e-9, np.nan, np.inf, -np.inf])
    flat[0][k[:30]] = rng.choice(edges, 30)
    flat[1][k[30:]] = rng.choice(np.array([-0.5, n_cols - 0.5, n_cols - 0.5 + 1e-9, np.nan, -np.inf]), 30)
    return row, col


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_extent_and_outside_match_numpy_masks(seed):
    rng = np.random.default_rng(seed)
    n_rows, n_cols = 300, 170
    row, col = positions(rng, (57, 83), n_rows, n_cols)
    inside = reference(row, col, n_rows, n_cols)
    assert inside.any() and (~inside).any()
    n, rmin, rmax, cmin, cmax = K.image_extent(row, col, n_rows, n_cols)
    assert n == inside.sum()
    assert (rmin, rmax, cmin, cmax) == (row[inside].min(), row[inside].max(), col[inside].min(), col[inside].max())
    out = rng.integers(0, 2, row.shape).astype(np.uint8)
    expect = out.copy()
    expect[~inside] = 2
    K.mark_outside(row, col, n_rows, n_cols, 2, out)
    np.testing.assert_array_equal(out, expect)


def test_nothing_inside_and_shape_errors():
    row = np.full((4, 5), -3.0)
    col = np.zeros((4, 5))
    n, rmin, rmax, cmin, cmax = K.image_extent(row, col, 10, 10)
    assert n == 0 and rmin == np.inf and rmax == -np.inf and cmin == np.inf and cmax == -np.inf
    out = np.ones((4, 5), np.uint8)
    K.mark_outside(row, col, 10, 10, 2, out)
    assert (out == 2).all()
    with pytest.raises(ValueError, match="same shape"):
        K.image_extent(row, col[:, :4].copy(), 10, 10)
    with pytest.raises(ValueError, match="same shape"):
        K.mark_outside(row, col, 10, 10, 2, out[:, :4].copy())
