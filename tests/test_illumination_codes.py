"""The illumination kernel's codes (``sun_kernels.illumination``: interior rows through the
branch-free ``_row_cosines``, border cells through ``_slope``) against a slow, obvious per-cell
twin of its definition, given the caster distances (tested against the per-cell march in
tests/test_illumination_kernel.py): UNKNOWN at non-finite heights, SHADED in a cast shadow or
facing away from the sun, else round(100 cos(i) / sin(e)) clipped to 1..254, the normal from
centred height differences (one-sided across a step above ``step_max``, 0 when neither side is
usable)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offnadir.change import sun_kernels as K


def _slope_twin(h, i, j, a, b, step_max):
    ny, nx = h.shape
    z = h[i, j]
    up = dn = None
    if 0 <= i + a < ny and 0 <= j + b < nx:
        v = h[i + a, j + b] - z
        if math.isfinite(v) and abs(v) <= step_max:
            up = v
    if 0 <= i - a < ny and 0 <= j - b < nx:
        v = z - h[i - a, j - b]
        if math.isfinite(v) and abs(v) <= step_max:
            dn = v
    if up is not None and dn is not None:
        return 0.5 * (up + dn)
    return up if up is not None else (dn if dn is not None else 0.0)


def _codes_twin(h, cell, az, el, tol, step_max, max_dist):
    ny, nx = h.shape
    out = np.empty((ny, nx), np.uint8)
    if el <= 0.0:
        return np.where(np.isfinite(h), K.SHADED, K.UNKNOWN).astype(np.uint8)
    dist = np.empty((ny, nx))
    K.caster_distances(h, math.tan(el) * cell, -math.cos(az), math.sin(az), tol, max_dist, dist)
    se, sn, su = math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)
    for i in range(ny):
        for j in range(nx):
            if not math.isfinite(h[i, j]):
                out[i, j] = K.UNKNOWN
                continue
            if dist[i, j] >= 0.0:
                out[i, j] = K.SHADED
                continue
            gx = _slope_twin(h, i, j, 0, 1, step_max) / cell
            gy = -_slope_twin(h, i, j, 1, 0, step_max) / cell
            cosi = (-gx * se - gy * sn + su) / math.sqrt(gx * gx + gy * gy + 1.0)
            out[i, j] = K.SHADED if cosi <= 0.0 else min(max(int(round(K.ILLUM_SCALE * cosi / su)), 1), 254)
    return out


def _terrain(rng, shape):
    ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    h = 100.0 + 0.3 * yy - 0.2 * xx + rng.normal(0, 0.5, shape)
    for _ in range(4):
        i, j = rng.integers(0, ny), rng.integers(0, nx)
        h[i:i + rng.integers(1, 7), j:j + rng.integers(1, 7)] += rng.uniform(1, 12)  # walls
    h[rng.random(shape) < 0.05] = np.nan
    h[rng.random(shape) < 0.01] = np.inf
    return h


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (6, 1), (2, 2), (3, 3), (3, 17), (29, 41)])
def test_codes_equal_the_per_cell_twin(shape):
    rng = np.random.default_rng(sum(shape))
    seen = set()
    for k in range(12):
        h = _terrain(rng, shape)
        az, el = rng.uniform(0, 2 * math.pi), math.radians(rng.uniform(5, 85))
        cell, tol = float(rng.choice([0.5, 1.0, 2.0])), float(rng.choice([0.0, 0.3]))
        step_max = float(rng.choice([0.8, 2.0, 50.0]))  # walls cut the centred difference or not
        out = np.empty(shape, np.uint8)
        K.illumination(np.ascontiguousarray(h), cell, az, el, tol, step_max, 40.0, out)
        np.testing.assert_array_equal(out, _codes_twin(h, cell, az, el, tol, step_max, 40.0),
                                      err_msg=f"case {k}")
        seen.update(np.unique(out).tolist())
    if shape == (29, 41):  # every kind of code came out: a wrong branch would show
        assert {K.SHADED, K.UNKNOWN} <= seen and len(seen - {K.SHADED, K.UNKNOWN}) > 10
