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


def _roof_edges(seed, shape=(64, 96)):
    """Wide flat boxes whose north and south edges fall inside the march's 8 x 32 blocks (rows
    8k + 3 .. 8k + 5), on rough ground: a block over such an edge holds roof rows (nothing above
    them) and ground rows (shadowed under a sun from the north or the south)."""
    rng = np.random.default_rng(seed)
    h = 50.0 + rng.normal(0, 0.05, shape)
    for k in range(6):
        i = 8 * rng.integers(0, shape[0] // 8 - 2) + rng.integers(3, 6)
        j = rng.integers(0, shape[1] - 48)
        h[i:i + 8 * rng.integers(1, 3), j:j + rng.integers(34, 48)] += rng.uniform(4, 20)
    h[rng.random(shape) < 0.01] = np.nan
    return h


@pytest.mark.parametrize("seed,az,el", [(5, 0.0, 35.0), (1, 180.0, 30.0), (2, 160.0, 50.0), (3, 20.0, 20.0),
                                        (4, 200.0, 45.0)])
def test_rows_of_a_block_on_a_roof_and_on_the_ground_march_as_the_per_cell_march(seed, az, el):
    """The per-row skip (a row's lowest top against the 8-row band of maxima it samples) leaves the
    numbers of the per-cell march where a block's rows lie partly on a roof, partly on the ground."""
    h = _roof_edges(seed)
    a, e = math.radians(az), math.radians(el)
    rise, di, dj = math.tan(e) * 0.5, -math.cos(a), math.sin(a)
    got = np.empty(h.shape)
    K.caster_distances(h, rise, di, dj, 0.3, 60.0, got)
    want = _march_twin(h, rise, di, dj, 0.3, 60.0)
    np.testing.assert_array_equal(got, want)
    # the case has blocks with a shadowed row and a roof row (no blocker) side by side
    roof = np.isfinite(h) & (h > 52.0)
    mixed = 0
    for r0 in range(0, h.shape[0], 8):
        for c0 in range(0, h.shape[1], 32):
            blk = (slice(r0, r0 + 8), slice(c0, c0 + 32))
            rows_roof = (roof | ~np.isfinite(h))[blk].all(axis=1) & roof[blk].any(axis=1)
            rows_shadow = (want[blk] > 0).any(axis=1) & ~roof[blk].any(axis=1)
            mixed += int(rows_roof.any() and rows_shadow.any())
    assert mixed > 0
