"""crown.plane_sums_rows's one-pass kernel gives numpy's grouped sums bit for bit."""

import numpy as np
import pytest

from offnadir.change import crown as CR


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plane_sums_kernel_equals_bincounts(dtype):
    rng = np.random.default_rng(3)
    h = (rng.normal(50.0, 20.0, (61, 47)) * rng.choice([1.0, -1.0], (61, 47))).astype(dtype)
    h[rng.random(h.shape) < 0.1] = np.nan
    h[rng.random(h.shape) < 0.02] = np.inf
    h[0, :5] = -0.0
    rows = rng.integers(-2, 9, h.shape)
    for view in (rows, rows[:, ::-1]):  # a strided view too, as tile.py passes one
        a = CR.plane_sums_rows(h, view, 12, 1000, 2048)
        b = CR._plane_sums_numpy(h, view, 12, 1000, 2048)
        assert a.shape == b.shape == (12, 10)
        assert np.array_equal(a, b) and np.array_equal(np.signbit(a), np.signbit(b))
        assert a[9:].sum() == 0.0 and a[:9, 0].sum() > 0  # unused rows stay empty, the rest counted
    # no cell in a patch, and a row index past n (numpy's bincount widens: so does the fallback)
    assert np.array_equal(CR.plane_sums_rows(h, np.full(h.shape, -1), 3), np.zeros((3, 10)))
    wide = CR.plane_sums_rows(h, np.where(rows > 0, 20, -1), 3)
    assert wide.shape == (21, 10) and np.array_equal(wide, CR._plane_sums_numpy(h, np.where(rows > 0, 20, -1), 3))
