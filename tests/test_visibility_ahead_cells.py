"""The ahead bound of ``visibility_los`` on cells of 4, and its fall-back to cells of 8 when a long
or wide sector would combine too many cells of 4: both regimes give the plain march's result."""

from __future__ import annotations

import numpy as np
from test_visibility_shortcuts import both, city, smooth_los

from offnadir.cube import kernels as K


def _ahead_gives_up(dsm, di, dj, dmax, b):
    cmax, _ = K._coarse_max(dsm, b)
    ri, rj, lo, hi, n_max, ok = K._los_sector(di, dj)
    assert ok
    return bool(np.isposinf(K._ahead_bound(cmax, b, ri, rj, lo, hi, dmax, 1.0 / n_max)).all())


def test_short_sector_uses_cells_of_4():
    rng = np.random.default_rng(21)
    shape, halo = (300, 320), 50
    dsm = city(rng, shape, nan_frac=0.003)
    ch, cw = shape[0] - 2 * halo, shape[1] - 2 * halo
    di, dj = smooth_los((ch, cw), 27.0, 160.0)
    assert not _ahead_gives_up(dsm, di, dj, float(halo), K._SKIP)
    got, ref = both(dsm, di, dj, halo, halo, ch, cw, h_max=float(np.nanmax(dsm)), max_dist=float(halo))
    np.testing.assert_array_equal(got, ref)
    assert (got == 0).mean() > 0.02 and (got == 1).mean() > 0.2


def test_long_wide_sector_falls_back_to_cells_of_8():
    rng = np.random.default_rng(22)
    shape, c0, n = (320, 320), 60, 200
    dsm = city(rng, shape, nan_frac=0.003)
    di, dj = smooth_los((n, n), 30.0, 70.0, spread_deg=12.0)
    dmax = 200.0
    assert _ahead_gives_up(dsm, di, dj, dmax, K._SKIP)
    assert not _ahead_gives_up(dsm, di, dj, dmax, 2 * K._SKIP)
    got, ref = both(dsm, di, dj, c0, c0, n, n, h_max=float(np.nanmax(dsm)), max_dist=dmax)
    np.testing.assert_array_equal(got, ref)
    assert (got == 0).mean() > 0.02 and (got == 1).mean() > 0.2
