"""Predicted shadows widened by the sun's uncertainty (offnadir.change.shadow): the widened
prediction holds the shadows of every sun within two sigmas (cast by the simulator's ray tracer,
an independent code path), the distance to the caster is the wall's, the widening does not climb
walls nor depend on the tiling, and the run records its choice."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offnadir.change import kernels as K
from offnadir.change import shadow as SH


def _boxes(n=160, seed=3):
    rng = np.random.default_rng(seed)
    h = np.full((n, n), 100.0)
    for _ in range(18):
        i, j = rng.integers(10, n - 40, 2)
        a, b = rng.integers(8, 26, 2)
        h[i:i + a, j:j + b] = np.maximum(h[i:i + a, j:j + b], 100 + rng.uniform(5, 25))
    return h


def _ray_traced(h, az_deg, el_deg, cell):
    from offnadir.simulate.sun import sun_vector
    from offnadir.simulate.views import cast_shadows

    return cast_shadows(h, sun_vector(el_deg, az_deg), cell, 0.3).astype(bool)


def _predicted(h, az_deg, el_deg, cell):
    buf = np.empty(h.shape, np.uint8)
    K.illumination(np.ascontiguousarray(h), cell, math.radians(az_deg), math.radians(el_deg), 0.3, 1.0, 1e4, buf)
    return buf


def _widened(h, az, el, s_az, s_el, cell):
    pred = _predicted(h, az, el, cell)
    dist = np.empty(h.shape)
    SH.cast_distance(np.ascontiguousarray(h), cell, math.radians(az), math.radians(el), 0.3, 1e4, pred, dist)
    eps = SH.relative_error(el, s_az, s_el)
    return pred, SH.widen(pred, SH.reach_cells(pred, dist, eps), h)


@pytest.mark.parametrize("az, el, s_az, s_el", [(170.0, 30.0, 0.3, 0.4), (230.0, 55.0, 1.0, 1.0)])
def test_widened_prediction_holds_the_shadows_of_a_sun_two_sigmas_away(az, el, s_az, s_el):
    cell = 0.5
    h = _boxes()
    pred, wide = _widened(h, az, el, s_az, s_el, cell)
    wide = wide == K.SHADED
    inner = (slice(30, -30), slice(30, -30))  # away from the grid border (casters outside it)
    missed_before = 0
    for da in (-2 * s_az, 0.0, 2 * s_az):
        for de in (-2 * s_el, 0.0, 2 * s_el):
            truth = _ray_traced(h, az + da, el + de, cell)
            missed_before += int((truth & (pred != K.SHADED))[inner].sum())
            assert not (truth & ~wide)[inner].any(), (da, de)
    assert missed_before > 0  # the un-widened prediction does miss shadows of those suns
    # and the widening stays a margin, not the whole scene
    assert wide.mean() < (pred == K.SHADED).mean() + 0.25


def test_cast_distance_is_the_distance_to_the_caster():
    # a 10 m wall, sun from grid south (azimuth 180) at 45 deg: the ground north of it is shaded
    # up to 10 m from the wall, each cell at its own distance from the wall
    cell = 0.5
    h = np.zeros((60, 20))
    h[40:, :] = 10.0  # the block's north wall between rows 39 and 40
    dist = np.empty(h.shape)
    SH.cast_distance(h, cell, math.radians(180.0), math.radians(45.0), 0.3, 1e4, np.zeros(h.shape, np.uint8), dist)
    col = dist[:, 10]
    lit = np.empty(h.shape)  # cells not shaded by their code are skipped
    SH.cast_distance(h, cell, math.radians(180.0), math.radians(45.0), 0.3, 1e4, np.full(h.shape, 100, np.uint8), lit)
    assert np.all(lit == -1)
    assert np.all(col[40:] == -1)  # the roof is not blocked
    for i in range(25, 40):  # within 7.5 m: blocked where the ray meets the wall, 40 - i cells away
        assert abs(col[i] - (40 - i)) <= 0.5, (i, col[i])
    assert np.all(col[:19] == -1)  # beyond 10.5 m the ray passes over the wall (10 m high, 45 deg)


def test_relative_error_follows_the_geometry():
    a = SH.relative_error(40.0, 0.2, 0.2)
    assert SH.relative_error(40.0, 0.0, 0.0) == 0.0
    assert SH.relative_error(40.0, 0.5, 0.5) > a and SH.relative_error(20.0, 0.2, 0.2) > a
    # by hand: two sigmas of the elevation term H d_e / sin^2 e per unit of L = H / tan e
    e, de = math.radians(30.0), math.radians(0.5)
    assert SH.relative_error(30.0, 0.0, 0.5) == pytest.approx(2 * de / math.sin(e) ** 2 * math.tan(e))
    # a parapet's short shadow widens by one cell, a tower's long one by more, never beyond the cap
    codes = np.zeros((1, 3), np.uint8)
    r = SH.reach_cells(codes, np.array([[0.0, 100.0, 1e4]]), a)
    assert r[0, 0] == 1.0 and r[0, 1] == 1.0 + np.rint(100 * a) > 1.0 and r[0, 2] == SH.MARGIN_CAP


def test_widen_is_a_bounded_dilation_that_keeps_unknown_cells():
    codes = np.full((40, 40), 100, np.uint8)
    codes[20, 20] = K.SHADED
    codes[0, 0] = K.UNKNOWN
    codes[18, 20] = K.UNKNOWN
    out = SH.widen(codes, 3)
    ii, jj = np.nonzero(out == K.SHADED)
    assert max(np.abs(ii - 20).max(), np.abs(jj - 20).max()) == 3  # 8-connected steps: a 7 x 7 square
    assert (out == K.SHADED).sum() == 7 * 7 - 1  # the unknown cell inside stays unknown
    assert out[18, 20] == K.UNKNOWN and out[0, 0] == K.UNKNOWN
    assert np.array_equal(SH.widen(codes, 0), codes)
    # with heights: the widening slides along the ground, it does not climb a 10 m wall
    h = np.zeros((40, 40))
    h[:, 22:] = 10.0
    out = SH.widen(codes, 3, h)
    assert (out[17:24, 17:22] == K.SHADED).sum() == 7 * 5 - 1 and not (out[:, 22:] == K.SHADED).any()
    # a window with the margin as halo gives the core the same codes as the whole grid
    rng = np.random.default_rng(1)
    big = np.where(rng.random((60, 60)) < 0.05, K.SHADED, np.uint8(120)).astype(np.uint8)
    whole = SH.widen(big, 4)
    part = SH.widen(big[10:50, 5:45], 4)
    assert np.array_equal(part[4:-4, 4:-4], whole[14:46, 9:41])


def test_resolve_records_the_error_per_image():
    """The change stage's sun report says by how much each image's shadows were widened."""
    from offnadir.change.context import shadow_errors
    from offnadir.change.illumination import shadow_errors as compute

    suns = [dict(image="a", azimuth=150.0, elevation=40.0, source="config"),
            dict(image="b", azimuth=160.0, elevation=30.0, source="estimated", sigma_azimuth=0.5, sigma_elevation=0.8),
            dict(image="c", azimuth=None, elevation=None, source="none")]
    got = compute(suns)
    assert 0 < got[0] < got[1] and got[2] == 0.0
    assert tuple(got[:2]) == shadow_errors(suns)[:2]
    assert suns[1]["shadow_relative_error"] == pytest.approx(SH.relative_error(30.0, 0.5, 0.8))


def _widen_reference(codes, reach, h, step=SH.STEP_M):
    """The slow, obvious twin of :func:`offnadir.change.shadow.widen`: synchronous numpy steps."""
    out = codes.copy()
    r = np.where(codes == K.SHADED, np.minimum(reach, SH.MARGIN_CAP), -1.0)
    ny, nx = r.shape
    for _ in range(int(np.ceil(r.max()))):
        nxt = r.copy()
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                if di == dj == 0:
                    continue
                for i in range(ny):
                    for j in range(nx):
                        a, b = i + di, j + dj
                        if 0 <= a < ny and 0 <= b < nx and abs(h[a, b] - h[i, j]) <= step:
                            nxt[i, j] = max(nxt[i, j], r[a, b] - 1.0)
        r = nxt
    out[(r >= 0) & (codes != K.UNKNOWN)] = K.SHADED
    return out


def test_widen_matches_its_reference_twin():
    rng = np.random.default_rng(5)
    h = np.round(rng.normal(0, 1.2, (30, 34)).cumsum(axis=1) * 0.3, 1)
    h[rng.random(h.shape) < 0.05] = np.nan
    codes = np.where(rng.random(h.shape) < 0.06, K.SHADED, np.uint8(90)).astype(np.uint8)
    codes[rng.random(h.shape) < 0.03] = K.UNKNOWN
    reach = rng.uniform(0.5, 5.0, h.shape)
    got = SH.widen(codes, reach, h)
    assert np.array_equal(got, _widen_reference(codes, reach, h))
    assert (got == K.SHADED).sum() > (codes == K.SHADED).sum()
