"""The illumination kernel's ray march (kernels.caster_distances: one pass per ray offset) against a
slow, obvious per-cell march, and the codes against the physics of a box's shadow."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offnadir.change import kernels as K
from offnadir.change import shadow as SH


def _march_twin(h, rise, di, dj, tol, max_dist):
    """Per cell: walk s = 0.5, 1, ... <= max_dist; sample the cell floor((i, j) + s d + 1/2); stop
    at the window's edge or once the ray is above the window's highest top; the first sample whose
    top is more than tol above the ray gives s."""
    ny, nx = h.shape
    hmax = np.nanmax(h)
    out = np.full(h.shape, -1.0)
    for i in range(ny):
        for j in range(nx):
            z = h[i, j]
            if not np.isfinite(z):
                continue
            s = 0.5
            while s <= max_dist:
                zr = z + s * rise
                if zr >= hmax:
                    break
                p, q = math.floor(i + s * di + 0.5), math.floor(j + s * dj + 0.5)
                if not (0 <= p < ny and 0 <= q < nx):
                    break
                if (p, q) != (i, j) and np.isfinite(h[p, q]) and h[p, q] - zr > tol:
                    out[i, j] = s
                    break
                s += 0.5
    return out


def _city(seed, shape=(48, 56)):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    h = 100.0 + 0.05 * yy - 0.03 * xx + rng.normal(0, 0.1, shape)
    for _ in range(8):
        i, j = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 6)
        h[i:i + rng.integers(2, 9), j:j + rng.integers(2, 9)] += rng.uniform(2, 15)
    h[rng.random(shape) < 0.02] = np.nan  # nodata planted
    return h


@pytest.mark.parametrize("seed,az,el,tol,max_dist", [(0, 150.3, 40.0, 0.3, 200.0), (1, 17.0, 25.0, 0.3, 12.5),
                                                     (2, 270.0, 10.0, 0.0, 200.0), (3, 91.0, 60.0, -0.2, 30.0),
                                                     (4, 200.0, 3.0, 0.5, 40.0), (5, 150.0, 40.0, 0.3, 200.0),
                                                     (6, 330.0, 25.0, 0.3, 200.0)])
def test_caster_distances_match_the_per_cell_march(seed, az, el, tol, max_dist):
    h = _city(seed)
    a, e = math.radians(az), math.radians(el)
    rise, di, dj = math.tan(e) * 0.5, -math.cos(a), math.sin(a)
    got = np.empty(h.shape)
    K.caster_distances(h, rise, di, dj, tol, max_dist, got)
    want = _march_twin(h, rise, di, dj, tol, max_dist)
    np.testing.assert_array_equal(got, want)
    assert (want > 0).any() and (want < 0).any()  # the case has shadows and sunlit cells
    # the illumination codes are shaded exactly where the march is blocked or the face turns away
    codes = np.empty(h.shape, np.uint8)
    K.illumination(h, 0.5, a, e, tol, 1.0, max_dist, codes)
    assert (codes[want > 0] == K.SHADED).all()
    assert (codes[~np.isfinite(h)] == K.UNKNOWN).all()
    # shadow.cast_distance: the same distances on the shaded cells, -1 elsewhere
    dist = np.empty(h.shape)
    SH.cast_distance(h, 0.5, a, e, tol, max_dist, codes, dist)
    np.testing.assert_array_equal(dist, np.where(codes == K.SHADED, want, -1.0))
