"""The shortcuts of ``visibility_los`` (max pyramid jumps, ahead bound) change nothing: on blocks
large enough for every pyramid level and for long marches, the kernel equals a plain march with no
shortcut at all (a compiled twin of the slow reference in ``test_cube_kernels.py``), cell for cell.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import real
from test_cube_kernels import visibility_ref
from numba import njit

from offnadir.cube import kernels as K


#: the slow reference of test_cube_kernels (every sample, no shortcut), compiled so that it can
#: march the large blocks the shortcuts need
plain_march = njit(cache=False)(visibility_ref)

def city(rng, shape, n_parcels=400, max_h=60.0, nan_frac=0.0):
    """Gentle terrain with boxes of mostly low, sometimes tall buildings (and NaN speckle)."""
    ii, jj = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    dsm = 150.0 + 3.0 * np.sin(ii / 37.0) + 2.0 * np.cos(jj / 53.0)
    for _ in range(n_parcels):
        i0, j0 = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        hi, wi = rng.integers(3, 25, 2)
        dsm[i0:i0 + hi, j0:j0 + wi] = dsm[i0, j0] + 3.0 + (max_h - 3.0) * rng.random() ** 3
    if nan_frac:
        dsm[rng.random(shape) < nan_frac] = np.nan
    return dsm


def smooth_los(shape, theta_deg, az_deg, spread_deg=3.0, cell=0.5):
    """A LOS field whose direction and length drift across the block (as a lattice-interpolated
    field of a real camera does)."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    az = np.radians(az_deg + spread_deg * (yy / shape[0] - 0.5) - 0.5 * spread_deg * (xx / shape[1] - 0.5))
    n = math.tan(math.radians(theta_deg)) / cell * (1.0 + 0.05 * (xx / shape[1] - 0.5))
    return -n * np.cos(az), n * np.sin(az)


def both(dsm, di, dj, ci0, cj0, ch, cw, h_max=np.nan, z_tol=0.05, max_dist=np.inf, step=0.5):
    out = np.empty((ch, cw), np.uint8)
    K.visibility_los(dsm, di, dj, ci0, cj0, ch, cw, h_max, z_tol, max_dist, out, step)
    return out, plain_march(dsm, di, dj, ci0, cj0, ch, cw, h_max, z_tol, max_dist, step)


@pytest.mark.parametrize("theta,az", [(25.0, 200.0), (10.0, 30.0), (35.0, 90.0), (30.0, 0.0), (20.0, 315.0)])
def test_large_block_with_halo_equals_plain_march(theta, az):
    rng = np.random.default_rng(int(theta * 10 + az))
    shape = (360, 340)
    halo = 60
    dsm = city(rng, shape, nan_frac=0.002)
    ch, cw = shape[0] - 2 * halo, shape[1] - 2 * halo
    di, dj = smooth_los((ch, cw), theta, az)
    got, ref = both(dsm, di, dj, halo, halo, ch, cw, h_max=float(np.nanmax(dsm)), max_dist=float(halo))
    np.testing.assert_array_equal(got, ref)
    assert (got == 0).mean() > 0.02 and (got == 1).mean() > 0.2


def test_axis_aligned_and_exact_nadir_los():
    rng = np.random.default_rng(5)
    dsm = city(rng, (300, 300))
    for di0, dj0 in ((1.2, 0.0), (0.0, -0.8), (-0.9, 0.0)):
        di = np.full((300, 300), di0)
        dj = np.full((300, 300), dj0)
        got, ref = both(dsm, di, dj, 0, 0, 300, 300)
        np.testing.assert_array_equal(got, ref)
    di = np.zeros((300, 300))
    got, ref = both(dsm, di, di, 0, 0, 300, 300)
    assert (got == 1).all() and (ref == 1).all()


def test_unbounded_march_and_wide_spread_of_directions():
    """max_dist = inf (the march ends at the block edge) and a LOS field fanning out around nadir
    (no ahead bound: directions spread over more than 120 degrees)."""
    rng = np.random.default_rng(9)
    shape = (280, 300)
    dsm = city(rng, shape, nan_frac=0.01)
    di, dj = smooth_los(shape, 28.0, 120.0, spread_deg=8.0)
    got, ref = both(dsm, di, dj, 0, 0, *shape)
    np.testing.assert_array_equal(got, ref)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    di, dj = 0.01 * (yy - 140.0), 0.01 * (xx - 150.0)
    got, ref = both(dsm, di, dj, 0, 0, *shape, z_tol=0.0)
    np.testing.assert_array_equal(got, ref)
    assert (got == 0).any()


def test_real_stereo_dsm_block_equals_plain_march():
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(real("s2p/tests/data/expected_output/pair/dsm.tif")) as ds:
        dsm = ds.read(1).astype(np.float64)
        if ds.nodata is not None:
            dsm[dsm == ds.nodata] = np.nan
    dsm = np.ascontiguousarray(dsm[:400, :400])
    halo = 40
    ch, cw = dsm.shape[0] - 2 * halo, dsm.shape[1] - 2 * halo
    di, dj = smooth_los((ch, cw), 22.0, 250.0)
    got, ref = both(dsm, di, dj, halo, halo, ch, cw, h_max=float(np.nanmax(dsm)), max_dist=float(halo))
    np.testing.assert_array_equal(got, ref)
    assert (got == 0).any()


def test_ahead_bound_is_an_upper_bound():
    """Random later samples of rays in the sector never exceed the bound of their start cell."""
    rng = np.random.default_rng(3)
    dsm = city(rng, (200, 200))
    cmax, _ = K._coarse_max(dsm, K._SKIP)
    di, dj = smooth_los((50, 50), 25.0, 140.0, spread_deg=40.0)
    ri, rj, lo, hi, n_max, ok = K._los_sector(di, dj)
    assert ok
    ang = np.arctan2(ri * dj - rj * di, ri * di + rj * dj)
    assert lo <= ang.min() + 1e-12 and ang.max() <= hi + 1e-12
    assert n_max == pytest.approx(np.hypot(di, dj).max())
    dmax = 30.0
    A = K._ahead_bound(cmax, K._SKIP, ri, rj, lo, hi, dmax, 1.0 / n_max)
    b = K._SKIP
    n = 200_000
    p = rng.uniform(0, 199, (n, 2))
    a = rng.uniform(lo, hi, n)
    u = np.stack([ri * np.cos(a) - rj * np.sin(a), rj * np.cos(a) + ri * np.sin(a)], axis=1)
    t = rng.uniform(0, dmax, n)
    q = p + t[:, None] * u
    keep = (q >= 0).all(axis=1) & (q < 199).all(axis=1)
    p, q, t = p[keep], q[keep], t[keep]
    start = A[(p[:, 0] // b).astype(int), (p[:, 1] // b).astype(int)]
    later = cmax[(q[:, 0] // b).astype(int), (q[:, 1] // b).astype(int)] - t / n_max
    assert np.all(later <= start + 1e-9)
