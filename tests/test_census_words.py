"""census_codes.census_words (one pass) equals pack(*evidence.census(...)) (the numpy formula)."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import census_codes as CW
from offnadir.change import evidence as EV


@pytest.mark.parametrize("dtype,r", [(np.float64, 1), (np.float32, 1), (np.float32, 2), (np.float64, 3)])
def test_census_words_equal_the_packed_numpy_codes(dtype, r):
    rng = np.random.default_rng(r)
    x = np.round(rng.normal(100.0, 3.0, (41, 37)), 1).astype(dtype)  # ties at the dead band occur
    x[5:9, 10:20] = 100.0  # flat: codes 0
    mask = rng.random(x.shape) > 0.1
    sigma = 0.5
    want = CW.pack(*EV.census(x, mask, sigma, r))
    got = CW.census_words(x, mask, EV.DEADBAND * sigma, r, EV._NEIGH)
    np.testing.assert_array_equal(got, want)
    assert (got & 0xFF).any() and (got & 0xFF00).any() and (got & 0xFF0000).any()


@pytest.mark.parametrize("shape", [(1, 1), (2, 7), (3, 3), (6, 2), (5, 40), (64, 131)])
@pytest.mark.parametrize("dtype,r", [(np.float32, 1), (np.float64, 2)])
def test_census_words_row_sweep_equals_the_cell_by_cell_kernel(shape, dtype, r):
    # the words census_words builds a direction at a time along the rows (edges cell by cell)
    # are those of the one-cell-at-a-time kernel, bit for bit, also on arrays without an inside
    rng = np.random.default_rng(shape[0] * 7 + r)
    x = np.round(rng.normal(100.0, 3.0, shape), 1).astype(dtype)
    x[rng.random(shape) < 0.05] = np.nan  # masked out by the caller, but the values are read
    mask = (rng.random(shape) > 0.1) & np.isfinite(x)
    t = x.dtype.type(EV.DEADBAND * 0.5)
    want = np.empty(shape, np.uint32)
    CW._census_words(x, mask, t, r, np.asarray(EV._NEIGH, np.int64), want)
    got = CW.census_words(x, mask, EV.DEADBAND * 0.5, r, EV._NEIGH)
    np.testing.assert_array_equal(got, want)
