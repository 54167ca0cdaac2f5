"""The sweep's noise model for the test of the DSM's own height: the window's *effective* number
of independent samples (what ``dh_sigma`` uses) and the stricter test built on it
(``sweep_tile(dsm_test="effective")``, :func:`offnadir.cube.sweep.beats_dsm`): on weak, smooth
texture a flat agreement curve must not invent a height change, while a real height step on
texture is still found. A synthetic pair on the ground grid stands in for the sweep: a height
candidate k samples the second image k cells further along x (what a height change does to a
stereo pair), k = 0 is the DSM's height."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from offnadir.cube import sweep
from offnadir.cube import sweep_kernels as swk

R = sweep.WINDOW_RADIUS
MIN_COUNT = sweep.MIN_WINDOW_FRACTION * (2 * R + 1) ** 2
NY, NX, PAD, SHIFTS = 60, 120, 30, range(-20, 21)


def _field(rng, blur, shape):
    f = ndi.gaussian_filter(rng.normal(size=shape), blur) if blur else rng.normal(size=shape)
    return f / f.std()


def _sweep(seed, texture_blur, noise_sd, true_shift):
    """(s at the best shift, its shift, s at shift 0, N_eff) over the window-complete cells of a
    pair seeing one texture, the second displaced by ``true_shift`` cells (a height change)."""
    rng = np.random.default_rng(seed)
    base = _field(rng, texture_blur, (NY, NX + 2 * PAD))
    a = (base[:, PAD:PAD + NX] + noise_sd * _field(rng, 1.0, (NY, NX))).astype(np.float32)
    b_full = base + noise_sd * _field(rng, 1.0, base.shape)
    out = np.empty((NY, NX), np.float32)
    work = np.empty((7, NY, NX))
    best = np.full((NY, NX), -np.inf)
    best_k = np.zeros((NY, NX), int)
    b_at = {}
    for k in SHIFTS:
        b = b_full[:, PAD + true_shift - k:PAD + true_shift - k + NX].astype(np.float32)
        swk.window_ncc(a, b, R, MIN_COUNT, out, work)
        if k == 0:
            s0, b0 = out.copy(), b
        m = out > best
        best[m], best_k[m] = out[m], k
        b_at[k] = b
    # as the sweep does: the larger effective count of the disagreement at the DSM height and at
    # the best one (here the shift most cells chose)
    k_best = int(np.bincount(best_k.ravel() - SHIFTS[0]).argmax()) + SHIFTS[0]
    n_eff = np.fmax(sweep.effective_samples([a, b0], [(0, 1)], R, MIN_COUNT),
                    sweep.effective_samples([a, b_at[k_best]], [(0, 1)], R, MIN_COUNT))
    core = (slice(R, -R), slice(R, -R))
    return best[core], best_k[core], s0[core], n_eff[core]


def test_flat_weak_texture_keeps_the_dsm_height():
    # smooth texture (correlation length ~3 cells) under noise: the curve is flat, the best of 41
    # shifts lands off the truth for most cells and beats the DSM height by a little
    best, best_k, s0, n_eff = _sweep(0, 3.0, 0.6, 0)
    assert (best_k != 0).mean() > 0.5
    # with the window's 169 cells taken as independent (the former rule) many cells "moved"
    naive = best - sweep.SE_FACTOR * (1 - best ** 2) / math.sqrt((2 * R + 1) ** 2) > s0
    assert naive.mean() > 0.1
    # their effective number is far smaller (the disagreement is smooth), and the difference is
    # within its noise
    assert np.median(n_eff) < 0.5 * (2 * R + 1) ** 2
    assert sweep.beats_dsm(best, s0, n_eff).mean() < 0.03


def test_a_height_step_on_texture_is_found():
    best, best_k, s0, n_eff = _sweep(1, 0.7, 0.3, 6)
    assert (best_k == 6).mean() > 0.95
    assert sweep.beats_dsm(best, s0, n_eff).mean() > 0.95
    # and the same texture unchanged keeps its height everywhere
    best, best_k, s0, n_eff = _sweep(1, 0.7, 0.3, 0)
    assert not sweep.beats_dsm(best, s0, n_eff).any()


def test_effective_samples_follow_the_disagreement():
    rng = np.random.default_rng(2)
    n = (2 * R + 1) ** 2
    inner = (slice(R, -R), slice(R, -R))
    texture = _field(rng, 3.0, (40, 40))
    # the same smooth texture, independent noise per cell: the disagreement is white
    white = [(texture + 0.3 * rng.normal(size=texture.shape)).astype(np.float32) for _ in range(2)]
    ne_white = sweep.effective_samples(white, [(0, 1)], R, MIN_COUNT)[inner]
    assert np.median(ne_white) > 0.7 * n and ne_white.max() <= n
    # a smooth disagreement (blurred noise): few independent samples
    smooth = [(texture + 0.3 * _field(rng, 3.0, texture.shape)).astype(np.float32) for _ in range(2)]
    ne_smooth = sweep.effective_samples(smooth, [(0, 1)], R, MIN_COUNT)[inner]
    assert np.median(ne_smooth) < 0.2 * n and ne_smooth.min() >= 1.0
    # a triplet counts as its worst pair
    trio = smooth + white[:1]
    ne_3 = sweep.effective_samples(trio, [(0, 1), (0, 2), (1, 2)], R, MIN_COUNT)[inner]
    each = [sweep.effective_samples([trio[i], trio[j]], [(0, 1)], R, MIN_COUNT)[inner]
            for i, j in [(0, 1), (0, 2), (1, 2)]]
    np.testing.assert_allclose(ne_3, np.minimum.reduce(each))
    np.testing.assert_allclose(ne_3, ne_smooth)
    # a window without variance holds no more than one sample; too few cells: not measured
    flat = np.full((40, 40), 5.0, np.float32)
    assert np.allclose(sweep.effective_samples([flat, flat], [(0, 1)], R, MIN_COUNT)[inner], 1.0, atol=1e-3)
    holey = [np.full((40, 40), np.nan, np.float32), white[1]]
    assert np.isnan(sweep.effective_samples(holey, [(0, 1)], R, MIN_COUNT)).all()


def test_the_dsm_test_in_fisher_z():
    # equal agreements never beat the DSM; a large lead does only with enough independent samples
    s = np.array([0.9, 0.9, 0.9, 0.9])
    s0 = np.array([0.9, 0.5, 0.5, np.nan])
    n_eff = np.array([100.0, 100.0, 4.0, 50.0])
    assert list(sweep.beats_dsm(s, s0, n_eff)) == [False, True, False, True]
    # the threshold: SE_FACTOR standard errors of a difference of two Fisher z's
    z = math.atanh(0.5) + sweep.SE_FACTOR * math.sqrt(2 / (50 - 3))
    assert not sweep.beats_dsm(np.array([math.tanh(z) - 1e-4]), np.array([0.5]), np.array([50.0]))[0]
    assert sweep.beats_dsm(np.array([math.tanh(z) + 1e-4]), np.array([0.5]), np.array([50.0]))[0]


def test_the_effective_test_on_a_simulated_stereo_scene(tmp_path):
    """sweep_tile(dsm_test="effective") on the simulator's epoch-2 scene seen from two sides: the
    changed buildings are still measured, unchanged cells stay at dh = 0, no more cells move than
    with the default test, and dh_sigma is no narrower."""
    import dask
    import rasterio

    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    a = simulate(tmp_path / "a", seed=3, size=96, target_view=(20.0, 270.0)).paths
    b = simulate(tmp_path / "b", seed=3, size=96, target_view=(20.0, 90.0)).paths
    with rasterio.open(a["dsm"]) as f1, rasterio.open(a["dsm_epoch2"]) as f2:
        truth = f2.read(1).astype(np.float64) - f1.read(1)
    out = {}
    with dask.config.set(scheduler="synchronous"):
        plan = plan_cube(a["dsm"], [a["target"], b["target"]], chunk=96, vertical_datum="ellipsoid")
        geom = sweep.pair_geometry(plan, [0, 1])
        (tile,) = list(plan.tiles())
        for test in ("window", "effective"):
            out[test] = sweep.sweep_tile(plan, tile, geom, plan.h_max - plan.h_min, dsm_test=test)
        with pytest.raises(ValueError, match="dsm_test"):
            sweep.sweep_tile(plan, tile, geom, plan.h_max - plan.h_min, dsm_test="strict")
    w, e = out["window"], out["effective"]
    assert np.array_equal(np.isnan(w["dh"]), np.isnan(e["dh"]))  # the same cells measured
    ok = np.isfinite(e["dh"])
    changed = ok & (np.abs(truth) > sweep.STOREY_M)
    assert changed.sum() > 100
    assert np.median(np.abs(e["dh"] - truth)[changed]) < 1.0
    assert np.median(np.abs(e["dh"][ok & (np.abs(truth) < 0.5)])) == 0.0
    assert ((e["dh"] != 0) & ok).sum() <= ((w["dh"] != 0) & ok).sum()
    assert np.all(e["dh_sigma"][ok] >= w["dh_sigma"][ok] - 1e-6)
