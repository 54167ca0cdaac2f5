"""The sweep's lattice interpolation (issue 7, p2 ninth round): each lattice row interpolated once per
block equals the cube's interp_lattice to the bit, NaN nodes included."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.cube import kernels as cubek
from offnadir.cube import sweep_views_kernels as svk


@pytest.mark.parametrize("i0,j0,ny,nx,il,jl,step", [(5, 7, 70, 54, 0, 0, 16), (13, 3, 37, 29, 0, 0, 8),
                                                    (16, 32, 33, 20, 16, 32, 16), (17, 1, 1, 15, 16, 0, 16),
                                                    (0, 0, 16, 16, 0, 0, 16), (2, 2, 9, 9, 0, 0, 1)])
def test_interp_lattice_rows_equals_the_cubes_interpolation(i0, j0, ny, nx, il, jl, step):
    rng = np.random.default_rng(3)
    nli = (i0 + ny - 1 - il) // step + 2
    nlj = (j0 + nx - 1 - jl) // step + 2
    lattice = rng.normal(5000.0, 800.0, (nli, nlj))
    if lattice.size >= 12:  # NaN nodes where the lattice holds cells away from them
        lattice[rng.random(lattice.shape) < 0.1] = np.nan
    ref = np.empty((ny, nx))
    out = np.full((ny, nx), -1.0)
    cubek.interp_lattice(lattice, step, il, jl, i0, j0, ref)
    svk.interp_lattice_rows(lattice, step, il, jl, i0, j0, out)
    assert np.array_equal(out, ref, equal_nan=True)
    assert np.isfinite(out).any()


def test_interp_lattice_rows_refuses_a_lattice_that_does_not_cover_the_block():
    with pytest.raises(ValueError):
        svk.interp_lattice_rows(np.zeros((2, 2)), 16, 0, 0, 10, 0, np.empty((10, 4)))


def test_sample_bilinear_nan_equals_the_cubes_sampling():
    rng = np.random.default_rng(5)
    img = rng.normal(500.0, 100.0, (1, 90, 70)).astype(np.float32)
    img[0, rng.random((90, 70)) < 0.02] = np.nan
    Y, X = np.mgrid[0:60, 0:50]
    row = 10.3 + Y * 1.01 + 0.2 * X + rng.normal(0.0, 0.01, Y.shape)
    col = 5.7 + X * 0.98 - 0.1 * Y
    row[::7, ::5] = np.round(row[::7, ::5])  # on pixel centres: one neighbour alone
    col[::3, ::4] = np.round(col[::3, ::4])
    row[5, 5] = np.nan
    row[7, 7] = -100.0  # outside the window
    col[9, 9] = 1e4
    ref = np.empty((1, 60, 50), np.float32)
    out = np.full((60, 50), -1.0, np.float32)
    cubek.sample_bilinear(img, row, col, 3.0, 2.0, np.nan, ref)
    svk.sample_bilinear_nan(img[0], row, col, 3.0, 2.0, out)
    assert np.array_equal(out, ref[0], equal_nan=True)
    assert np.isfinite(out).mean() > 0.8 and np.isnan(out[5, 5]) and np.isnan(out[7, 7]) and np.isnan(out[9, 9])
