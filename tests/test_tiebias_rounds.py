"""Tie-point bias (issue 8): the weighted robust fit, its uncertainty, and the coarse first round
that stops early. Accuracy on real and simulated scenes: ``benchmarks/eval_tiebias.py``."""

from __future__ import annotations

import dataclasses

import dask
import numpy as np
import pytest

from offnadir.camera.bias_robust import affine_displacement, apply_affine, fit_robust
from offnadir.cube import tie_tasks, tiebias, tiepoints
from offnadir.cube.tiepoints import TieOptions

AFF = (1.0015, 0.002, 1.2, -0.001, 0.999, -2.0)
SHAPE = (1000, 1000)


def _err(bias):
    """Largest displacement over the image between a fitted affine and the true one."""
    corners = np.array([[0, 0], [0, 999], [999, 0], [999, 999]], float)
    a = np.column_stack(apply_affine(bias, *corners.T))
    b = np.column_stack(apply_affine(AFF, *corners.T))
    return float(np.max(np.hypot(*(a - b).T)))


def _hetero(seed, n=200):
    """Points of graded quality: formal errors log-uniform in 0.01..0.3 px, true errors 3x those
    (the formal errors of correlation rank points but underestimate them). With two well-separated
    qualities the outlier rejection alone drops the bad half; a continuum needs the weights."""
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0, 1000, size=(n, 2))
    sig = np.exp(rng.uniform(np.log(0.01), np.log(0.3), n))
    meas = np.column_stack(apply_affine(AFF, *pred.T)) + rng.normal(0, 1, (n, 2)) * 3 * sig[:, None]
    return pred, meas, sig


def test_weights_beat_equal_weights_on_points_of_unequal_quality():
    e_w, e_u = [], []
    for seed in range(8):
        pred, meas, sig = _hetero(seed)
        e_w.append(_err(fit_robust(pred, meas, "affine", sigma_pts=sig).bias))
        e_u.append(_err(fit_robust(pred, meas, "affine").bias))
    assert np.mean(e_w) < 0.6 * np.mean(e_u), (e_w, e_u)   # measured: 0.031 vs 0.069


def _homo(seed, n=120, noise=0.2):
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0, 1000, size=(n, 2))
    return pred, np.column_stack(apply_affine(AFF, *pred.T)) + rng.normal(0, noise, (n, 2))


@pytest.mark.parametrize("case", ["weighted, graded quality", "equal weights, equal quality", "shift"])
def test_variance_factor_and_displacement_sd_are_calibrated(case):
    """The reported standard deviation of the correction matches the scatter of the fitted
    corrections over repeated draws (with weights, the formal errors are 3x too small: the
    variance factor from the residuals must bring them to pixels)."""
    corners = (np.array([0.0, 999.0]), np.array([0.0, 999.0]))
    if case.startswith("weighted"):
        fits = [fit_robust(p, m, "affine", sigma_pts=s) for p, m, s in (_hetero(seed, 120) for seed in range(60))]
    elif case == "shift":
        fits = [fit_robust(*_homo(seed, noise=0.1), "shift") for seed in range(60)]
        corners = (np.array([500.0]), np.array([500.0]))
    else:
        fits = [fit_robust(*_homo(seed), "affine") for seed in range(60)]
    moved = np.array([np.column_stack(apply_affine(f.bias, *corners)) for f in fits])    # (60, corners, 2)
    empirical = np.sqrt(moved.var(axis=0).sum(axis=1))                                   # per corner
    predicted = np.median([f.displacement_sd(*corners) for f in fits], axis=0)
    np.testing.assert_allclose(predicted, empirical, rtol=0.25)
    assert all(f.inliers.mean() > 0.95 for f in fits)


def test_bad_point_errors_are_refused():
    from offnadir.errors import GCPError

    pred, meas, sig = _hetero(0, 20)
    sig[3] = np.nan
    with pytest.raises(GCPError, match="positive finite"):
        fit_robust(pred, meas, sigma_pts=sig)


def test_first_round_blocks_are_a_spread_quarter():
    from offnadir.cube.plan import Tile

    tiles = [Tile(-1, -1, i, i + 10, j, j + 10) for i in range(0, 60, 10) for j in range(0, 60, 10)]
    first = tiepoints.first_round(tiles, 10)
    assert len(first) == 9
    rows = sorted({tiles[n].i0 for n in first})
    assert rows == [0, 20, 40] and sorted({tiles[n].j0 for n in first}) == [0, 20, 40]
    assert tiepoints.first_round(tiles[:4], 10) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory):
    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    d = tmp_path_factory.mktemp("tierounds")
    simulate(d, seed=1, size=256)
    with dask.config.set(scheduler="threads", num_workers=1):
        return plan_cube(d / "dsm.tif", [d / "base.tif", d / "target.tif"], chunk=256)


def test_too_few_points_in_the_first_round_skip_the_other_blocks(small_plan, monkeypatch):
    """A target that shows nothing (a blank image: cloud, or no overlap with textured ground): the
    first round finds no point, so the other blocks are never computed and the camera is kept,
    with a warning that says so."""
    from offnadir.io.image import ImageSource

    @dataclasses.dataclass(frozen=True)
    class Blank(ImageSource):
        def read_window(self, r0, r1, c0, c1):
            return np.full_like(super().read_window(r0, r1, c0, c1), 100)

    calls = []
    real = tiebias.gather

    def counting(plan, tiles, *a, **k):
        calls.append(len(tiles))
        return real(plan, tiles, *a, **k)

    monkeypatch.setattr(tiebias, "gather", counting)
    base, tgt = small_plan.images
    far = Blank(**{f.name: getattr(tgt, f.name) for f in dataclasses.fields(tgt)})
    plan = dataclasses.replace(small_plan, images=(base, far))
    with dask.config.set(scheduler="threads", num_workers=1):
        fitted, rep = tiebias.fit_tie_bias(plan, TieOptions())
    n_tiles = len(tiepoints.block_tiles(plan, TieOptions()))
    assert calls == [len(tiepoints.first_round(tiepoints.block_tiles(plan, TieOptions()), 66))] and calls[0] < n_tiles
    e = rep[1]
    assert not e["applied"] and "first" in e["warning"] and "kept as given" in e["warning"]
    assert fitted.images[1].camera == far.camera


def test_first_round_then_stages_recover_a_bias(small_plan, monkeypatch):
    """With a bias inside the search radius: the first round, then stages of blocks until the fit
    meets its target (or every block is in); the report's standard deviation bounds the true
    error within a few sigma, and says how many blocks were measured."""
    calls = []
    real = tiebias.gather
    monkeypatch.setattr(tiebias, "gather", lambda plan, tiles, *a, **k: calls.append(len(tiles)) or real(plan, tiles, *a, **k))
    plan = _biased(small_plan)
    with dask.config.set(scheduler="threads", num_workers=1):
        fitted, rep = tiebias.fit_tie_bias(plan, TieOptions())
    tiles = tiepoints.block_tiles(plan, TieOptions())
    sizes = [len(s) for s in tiepoints.stages(tiles, 66)]
    assert calls == sizes[:len(calls)] and len(calls) >= 2     # stages in order, each computed once
    e = rep[1]
    assert e["blocks_measured"] == [sum(calls), len(tiles)]
    assert e["applied"] and e["n_iter"] >= 2 and np.isfinite(e["correction_sd_px"])
    if sum(calls) < len(tiles):   # stopped early: only with a fit that meets the target
        assert e["n_points"] >= tiebias.WEAK_POINTS and e["correction_sd_px"] <= tiebias.WEAK_SD_PX
        assert e["correction_sd_blocks_px"] <= tiebias.WEAK_SD_PX
    err = affine_displacement(fitted.images[1].camera.bias, plan.images[1].shape)
    assert err < 0.2
    assert 0 < e["correction_sd_px"] < 0.1


def _biased(plan):
    base, tgt = plan.images
    centre = (np.asarray(tgt.shape, float) - 1) / 2
    L = np.array([[1.0015, 0.002], [-0.001, 0.999]])
    t = centre + np.array([2.5, -1.5]) - L @ centre
    inj = (L[0, 0], L[0, 1], t[0], L[1, 0], L[1, 1], t[1])
    return dataclasses.replace(plan, images=(base, dataclasses.replace(tgt, camera=tgt.camera.with_bias(inj))))


def test_stages_are_a_first_quarter_a_second_in_between_and_the_rest():
    from offnadir.cube.plan import Tile

    tiles = [Tile(-1, -1, i, i + 10, j, j + 10) for i in range(0, 60, 10) for j in range(0, 60, 10)]
    st = tiepoints.stages(tiles, 10)
    assert [len(s) for s in st] == [9, 9, 18]
    assert st[0] == tiepoints.first_round(tiles, 10)
    assert sorted({tiles[n].i0 for n in st[1]}) == [10, 30, 50] and sorted({tiles[n].j0 for n in st[1]}) == [10, 30, 50]
    assert sorted(n for s in st for n in s) == list(range(36)) and all(s == sorted(s) for s in st)
    assert tiepoints.stages(tiles[:4], 10) == [[0, 1, 2, 3]]
    one_row = tiles[:6]   # a single row of blocks: no odd row, so no second stage
    assert [len(s) for s in tiepoints.stages(one_row, 10)] == [3, 3]


def test_short_of_target_asks_for_points_and_the_footprint_sd():
    rng = np.random.default_rng(0)
    fp = np.array([[0.0, 0.0], [0.0, 999.0], [999.0, 0.0], [999.0, 999.0]])

    def fit(n, noise):
        pred = rng.uniform(0, 1000, (n, 2))
        return fit_robust(pred, pred + [1.0, -2.0] + rng.normal(0, noise, (n, 2)), "shift")

    assert not tiebias.short_of_target(fit(200, 0.1), fp)              # sd ~ 0.1 * sqrt(2 / 200) = 0.01 px
    assert tiebias.short_of_target(fit(200, 0.1), None)                # no footprint: cannot judge
    assert tiebias.short_of_target(fit(tiebias.WEAK_POINTS - 5, 0.01), fp)   # too few inliers
    assert tiebias.short_of_target(fit(200, 1.5), fp)                  # sd ~ 0.15 px > 0.05


def test_a_fit_short_of_target_at_every_stage_is_the_fit_on_all_blocks(small_plan, monkeypatch):
    """When every stage is needed, the rounds measure the same points in the same order, with the
    same corrections and radii, as the fit given every block at once: the same correction, bit
    for bit (what a scene that needs every block got before the stages)."""
    from offnadir.camera.camera import IDENTITY

    plan = _biased(small_plan)
    opts = TieOptions()
    monkeypatch.setattr(tiebias, "short_of_target", lambda fit, footprint, points=None: True)
    with dask.config.set(scheduler="threads", num_workers=1):
        _, rep = tiebias.fit_tie_bias(plan, opts)
        tiles = tiepoints.block_tiles(plan, opts)
        first = tiepoints.first_round(tiles, 66)
        others = [n for n in range(len(tiles)) if n not in first]
        dh = {1: tiepoints.STEP_PX / tiepoints.parallax_sensitivity(plan, 1)}
        suns = tiepoints.plan_suns(plan, None)
        b1 = tie_tasks.gather(plan, [tiles[n] for n in first], opts, dh, suns)
        b2 = tie_tasks.gather(plan, [tiles[n] for n in others], opts, dh, suns)
    data = [b[1] for b in b1 if 1 in b]
    entry, corr = tiebias._fit_image(plan.images[1], data, opts, rest=[b[1] for b in b2 if 1 in b],
                                     first_pts=tiebias._measure(data, IDENTITY, opts.search_px),
                                     footprint=tiebias._footprint(plan, 1))
    assert rep[1]["blocks_measured"] == [len(tiles), len(tiles)]
    assert rep[1]["correction"] == [float(v) for v in corr] and rep[1]["n_points"] == entry["n_points"]


def test_clustered_sd_is_calibrated_where_points_share_a_block_error():
    """Points in 12 blocks of 15, each block off by its own error (sd 0.1 px) on top of the points'
    noise (0.1 px): the fitted shift scatters over repeated draws as the cluster-robust standard
    deviation says, while the independent-point one is far too small."""
    from offnadir.camera.bias_robust import clustered_displacement_sd

    here = (np.array([500.0]), np.array([500.0]))
    moved, formal, clustered = [], [], []
    for seed in range(80):
        rng = np.random.default_rng(seed)
        groups = np.repeat(np.arange(12), 15)
        pred = rng.uniform(0, 1000, (groups.size, 2))
        meas = pred + [1.0, -2.0] + rng.normal(0, 0.1, (12, 2))[groups] + rng.normal(0, 0.1, pred.shape)
        f = fit_robust(pred, meas, "shift")
        moved.append(np.column_stack(apply_affine(f.bias, *here))[0])
        formal.append(f.displacement_sd(*here)[0])
        clustered.append(clustered_displacement_sd(f, pred, meas, groups, *here)[0])
    empirical = float(np.sqrt(np.var(moved, axis=0).sum()))       # ~0.1 * sqrt(2 / 12) = 0.041 px
    assert abs(np.median(clustered) / empirical - 1) < 0.3, (np.median(clustered), empirical)
    assert np.median(formal) < 0.6 * empirical
    one = clustered_displacement_sd(f, pred, meas, np.zeros(groups.size), *here)
    assert np.isinf(one).all()   # one block: the spread between blocks is unknown
