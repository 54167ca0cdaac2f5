"""kernels.band_mean (evidence.intensity) gives numpy's float64 band mean bit for bit."""

import numpy as np
import pytest

from offnadir.change import evidence as EV
from offnadir.change import kernels as K


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nb", [1, 3, 4, 7, 9])
def test_band_mean_is_numpys_mean(dtype, nb):
    rng = np.random.default_rng(nb)
    v = (rng.normal(size=(nb, 41, 57)) * 300).astype(dtype)
    v[:, 0, 0] = -0.0  # numpy's sum starts from +0.0: the mean of -0.0s is +0.0
    v[0, 1, 1] = np.nan
    v[nb - 1, 2, 2] = np.inf
    v[:, 3, 3] = [(-1) ** k * np.inf for k in range(nb)]
    v[:, 4, 4] = np.finfo(dtype).max  # overflows in float32 only if summed there
    v[:, 5, 5] = np.finfo(dtype).tiny
    with np.errstate(all="ignore"):  # inf - inf and the overflow: numpy warns
        ref = np.asarray(v, np.float64).mean(axis=0)
        got = K.band_mean(v)
        via = EV.intensity(v)
    for a in (got, via):
        assert a.dtype == np.float64 and a.shape == ref.shape
        assert np.array_equal(a, ref, equal_nan=True)
        assert np.array_equal(np.signbit(a), np.signbit(ref))


def test_band_mean_takes_views_and_single_bands():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(2, 4, 30, 40)).astype(np.float32)
    view = v[1][:, 3:27, 5:35]  # not contiguous
    assert np.array_equal(K.band_mean(view), np.asarray(view, np.float64).mean(axis=0))
    assert np.array_equal(EV.intensity(v[0, 2]), v[0, 2].astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16])
def test_masked_cells_is_numpys_boolean_indexing(dtype):
    rng = np.random.default_rng(3)
    v = (rng.normal(size=(2, 4, 50, 61)) * 100).astype(dtype)
    view = v[1][:, 7:43, 2:59]  # strided, as patch_tile's core of the window
    mask = rng.random(view.shape[1:]) < 0.6
    ref = view[:, mask]
    got = K.masked_cells(view, mask)
    assert got.dtype == ref.dtype and got.shape == ref.shape and got.strides == ref.strides  # same layout
    assert np.array_equal(got, ref)
    assert K.masked_cells(view, np.zeros(mask.shape, bool)).shape == (4, 0)
