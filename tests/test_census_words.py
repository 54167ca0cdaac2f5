"""census.census_words (one pass) equals pack(*evidence.census(...)) (the numpy formula)."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import census as K
from offnadir.change import evidence as EV


@pytest.mark.parametrize("dtype,r", [(np.float64, 1), (np.float32, 1), (np.float32, 2), (np.float64, 3)])
def test_census_words_equal_the_packed_numpy_codes(dtype, r):
    rng = np.random.default_rng(r)
    x = np.round(rng.normal(100.0, 3.0, (41, 37)), 1).astype(dtype)  # ties at the dead band occur
    x[5:9, 10:20] = 100.0  # flat: codes 0
    mask = rng.random(x.shape) > 0.1
    sigma = 0.5
    want = K.pack(*EV.census(x, mask, sigma, r))
    got = K.census_words(x, mask, EV.DEADBAND * sigma, r, EV._NEIGH)
    np.testing.assert_array_equal(got, want)
    assert (got & 0xFF).any() and (got & 0xFF00).any() and (got & 0xFF0000).any()
