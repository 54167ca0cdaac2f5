"""The structural criterion's neighbour smoothing along the parallax offsets: the numba kernel
against its numpy twin (the formula criteria._smooth3 used before the kernel)."""

import numpy as np
import pytest

from offnadir.change.criteria import _smooth3
from offnadir.change.kernels import smooth3


def _numpy_twin(r):
    pad = np.pad(r, ((0, 0), (1, 1)), constant_values=np.nan)
    stack = np.stack([pad[:, :-2], pad[:, 1:-1], pad[:, 2:]])
    with np.errstate(all="ignore"):
        cnt = np.sum(np.isfinite(stack), axis=0)
        out = np.nansum(stack, axis=0) / np.where(cnt > 0, cnt, 1)
    return np.where(np.isfinite(r), out, np.nan)


def test_smooth3_equals_the_numpy_formula_bit_for_bit():
    rng = np.random.default_rng(3)
    r = rng.uniform(-1, 1, (400, 37))
    r[rng.random(r.shape) < 0.35] = np.nan
    r[0, :4] = [np.inf, -0.0, np.nan, 0.5]  # inf neighbour: added by nansum, not counted
    r[1, :2] = [-0.0, np.nan]  # signed zero kept as numpy keeps it
    r[2, :] = np.nan  # a row without profile
    want = _numpy_twin(r)
    for got in (smooth3(r), _smooth3(r)):
        assert np.array_equal(got, want, equal_nan=True)
        assert np.array_equal(np.signbit(got), np.signbit(want))
    one = np.array([[0.2, np.nan, 0.4, 0.6]])
    assert np.allclose(smooth3(one), [[0.2, np.nan, 0.5, 0.5]], equal_nan=True)
    assert smooth3(np.zeros((0, 5))).shape == (0, 5)
    with pytest.raises(ValueError):
        smooth3(np.zeros(5))
