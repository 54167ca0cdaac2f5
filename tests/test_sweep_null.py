"""The sweep's null prediction (:func:`offnadir.cube.sweep_noise.null_agreement`): at a wrong
height both images look at *other* places than the cell, and a strong pattern there that does not
change along the pair's relative displacement (an edge parallel to the baseline) agrees as well
as at the right height. Weak texture at the cell then loses to it and the plain window test
invents a height change. A synthetic pair on the ground grid stands in for the sweep: at
candidate k (the height offset, in cells of displacement per step) image a shows the DSM-height
scene k rows further down and image b k rows down and k columns right (both look elsewhere; the
relative displacement is along x)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from offnadir.cube import sweep
from offnadir.cube import sweep_kernels as swk
from offnadir.cube import sweep_noise as SN

R = sweep.WINDOW_RADIUS
N_WIN = (2 * R + 1) ** 2
MIN_COUNT = sweep.MIN_WINDOW_FRACTION * N_WIN
NY, NX, PAD = 60, 90, 28
KS = range(-24, 25)
#: lines of sight (cells per unit of k, towards the sensor): a sees the point (y + k, x) from
#: height k, b the point (y + k, x + k)
LOS = [(-1.0, 0.0), (-1.0, -1.0)]


def _slow_along_ray(src, oy, ox, di, dj, z, h):
    ny, nx = src.shape
    out = np.full(h.shape, np.nan)
    for y in range(h.shape[0]):
        for x in range(h.shape[1]):
            fy, fx = y + oy - di * (z - h[y, x]), x + ox - dj * (z - h[y, x])
            if not (0 <= fy <= ny - 1 and 0 <= fx <= nx - 1):
                continue
            y0, x0 = min(int(fy), ny - 2), min(int(fx), nx - 2)
            wy, wx = fy - y0, fx - x0
            acc, bad = 0.0, False
            for a, wa in ((0, 1 - wy), (1, wy)):
                for b, wb in ((0, 1 - wx), (1, wx)):
                    if wa * wb > 0:
                        v = src[y0 + a, x0 + b]
                        bad |= not np.isfinite(v)
                        acc += wa * wb * v
            out[y, x] = np.nan if bad else acc
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_along_ray_matches_the_slow_reference(seed):
    rng = np.random.default_rng(seed)
    src = rng.normal(size=(23, 31))
    src[rng.random(src.shape) < 0.05] = np.nan
    h = rng.uniform(0.0, 6.0, (17, 25))
    h[3, 4] = np.nan
    for oy, ox, di, dj, z in ((0, 0, 0.7, -0.3, 4.0), (3, 2, -1.2, 0.9, 10.5), (6, 6, 0.0, 0.0, 2.0)):
        out = np.empty(h.shape)
        swk.sample_along_ray(src, oy, ox, di, dj, z, h, out)
        ref = _slow_along_ray(src, oy, ox, di, dj, z, h)
        assert np.array_equal(np.isnan(out), np.isnan(ref))
        np.testing.assert_allclose(out[np.isfinite(out)], ref[np.isfinite(ref)], rtol=1e-12, atol=1e-12)
    assert np.isnan(out[3, 4])


def _scene(seed, moved_cols=None, shift=0, stripes=True):
    """(a at DSM heights, b at DSM heights, {k: (a_k, b_k)}): weak texture with independent noise
    in both images, and (``stripes``) a band of bright stripes varying along y only (parallel to
    the baseline) in rows 36-44; with ``moved_cols`` a textured block whose surface is ``shift``
    steps off the DSM (b sees it ``shift`` columns off at the DSM height)."""
    rng = np.random.default_rng(seed)
    ny, nx = NY + 2 * PAD, NX + 2 * PAD
    scene = 0.15 * ndi.gaussian_filter(rng.normal(size=(ny, nx)), 1.0) / 0.28
    rows = np.arange(ny)[:, None]
    band = (rows >= PAD + 36) & (rows < PAD + 44) & stripes & (np.arange(nx)[None, :] >= 0)
    scene = np.where(band, 3.0 * np.sin(rows * 0.9) + 0.05 * rng.normal(size=(ny, nx)), scene)
    scene_b = scene.copy()
    if moved_cols is not None:
        tex = rng.normal(size=(ny, nx))
        c0, c1 = moved_cols
        block = np.zeros((ny, nx), bool)
        block[PAD + 5:PAD + 35, PAD + c0:PAD + c1] = True
        scene = np.where(block, tex, scene)
        scene_b = np.where(block, np.roll(tex, shift, axis=1), scene_b)
    na = 1.0 * rng.normal(size=(ny, nx)) * 0.15
    nb = 1.0 * rng.normal(size=(ny, nx)) * 0.15
    a_full, b_full = scene + na, scene_b + nb
    y, x = np.arange(NY)[:, None] + PAD, np.arange(NX)[None, :] + PAD
    at = {k: (a_full[y + k, x].astype(np.float32), b_full[y + k, x + k].astype(np.float32)) for k in KS}
    return at[0][0], at[0][1], at


def _window_sweep(a0, b0, at):
    """(dh in steps, moved?, no measurement?) per cell: best candidate, the window test with
    and without the null prediction."""
    h = np.zeros((NY, NX))
    ncc = np.empty((NY, NX), np.float32)
    work = np.empty((7, NY, NX))
    best = np.full((NY, NX), -np.inf)
    best_k = np.zeros((NY, NX), int)
    null_best = np.full((NY, NX), np.nan)
    null = np.empty((NY, NX), np.float32)
    for k in KS:
        a, b = at[k]
        swk.window_ncc(a, b, R, MIN_COUNT, ncc, work)
        s = ncc.astype(np.float64)
        SN.null_agreement([a, b], [a0, b0], (0, 0), LOS, float(k), h, [(0, 1)], R, MIN_COUNT,
                          (np.empty_like(ncc), work), null)
        m = np.isfinite(s) & (s > best)
        best[m], best_k[m], null_best[m] = s[m], k, null[m]
    swk.window_ncc(a0, b0, R, MIN_COUNT, ncc, work)
    # every candidate resolved from the DSM height (the test below checks the resolution rule)
    explained, peak = SN.window_test(best, ncc, null_best, best_k, np.inf, N_WIN, sweep.SE_FACTOR)
    return best_k, explained, peak


def test_a_pattern_seen_from_the_wrong_height_is_no_height_change():
    a0, b0, at = _scene(0)
    best_k, explained, peak = _window_sweep(a0, b0, at)
    weak = np.zeros((NY, NX), bool)
    # weak texture, the stripes within reach of a wrong height (and b's ray within the grid: the
    # prediction needs a's samples where b looks)
    weak[18:30, R:NX - max(KS) - R] = True
    # (a maximum at either end of the range is no measurement in the sweep either)
    moved = weak & ~explained & (best_k != 0) & (np.abs(best_k) < max(KS))
    # without the null prediction the stripes' agreement wins on most weak cells: false moves
    assert moved.sum() > 0.5 * weak.sum()
    # with it, almost all of those are found to be the DSM's prediction: no measurement
    assert (moved & ~peak).sum() < 0.05 * weak.sum()


def test_a_real_height_change_on_texture_is_kept():
    a0, b0, at = _scene(1, moved_cols=(30, 60), shift=5, stripes=False)
    best_k, explained, peak = _window_sweep(a0, b0, at)
    core = np.zeros((NY, NX), bool)
    core[5 + R:35 - R, 30 + R:60 - R] = True
    found = core & ~explained & ~peak & (best_k == 5)
    assert found.sum() >= 0.9 * core.sum()


def test_the_null_is_not_tested_within_the_peak_width():
    s_best = np.full(4, 0.9)
    s_dsm = np.array([0.95, 0.5, 0.5, 0.5])  # the first: the DSM height explains the images
    s_null = np.array([0.9, 0.9, 0.9, 0.5])  # the last: the DSM does not predict the best height
    curv = np.full(4, 0.9)  # peak FWHM = 2 sqrt(0.9 / 0.9) = 2 m
    offset = np.array([5.0, 5.0, 1.5, 5.0])  # the third: within the peak's width
    explained, none = SN.window_test(s_best, s_dsm, s_null, offset, curv, N_WIN, sweep.SE_FACTOR)
    assert explained.tolist() == [True, False, False, False]
    assert none.tolist() == [False, True, False, False]
    # NaN explains nothing
    explained, none = SN.window_test(s_best, np.full(4, np.nan), np.full(4, np.nan), offset, curv, N_WIN, 2.0)
    assert not explained.any() and not none.any()


def test_prediction_barely_depends_on_the_tiling(tmp_path):
    """With dsm_test="prediction" the DSM-height samples are read on a block widened by the rays'
    reach (sweep.null_bounds), so tiles of another size give the same answer but where a best
    height lies outside one tile's range (as with the window test)."""
    import dask

    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    a = simulate(tmp_path / "a", seed=3, size=96, target_view=(20.0, 270.0)).paths
    b = simulate(tmp_path / "b", seed=3, size=96, target_view=(20.0, 90.0)).paths
    maps = []
    with dask.config.set(scheduler="synchronous"):
        for chunk in (32, 96):
            plan = plan_cube(a["dsm"], [a["target"], b["target"]], chunk=chunk, vertical_datum="ellipsoid")
            geom = sweep.pair_geometry(plan, [0, 1])
            relief = plan.h_max - plan.h_min
            dh = np.full(plan.dsm.shape, np.nan, np.float32)
            for t in plan.tiles():
                i0, i1, j0, j1 = sweep.visibility_bounds(plan, t, geom, relief, "prediction")
                assert (i0, i1, j0, j1) == sweep.null_bounds(plan, t, geom, relief)
                dh[t.i0:t.i1, t.j0:t.j1] = sweep.sweep_tile(plan, t, geom, relief, dsm_test="prediction")["dh"]
            maps.append(dh)
    a, b = maps
    both = np.isfinite(a) & np.isfinite(b)
    assert both.mean() > 0.5
    assert (np.isfinite(a) != np.isfinite(b)).mean() < 0.02
    assert (np.abs(a[both] - b[both]) < 1e-3).mean() > 0.98
