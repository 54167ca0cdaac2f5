"""The one-pass change stage's machinery against slow, obvious twins.

* the numba census kernel equals the numpy formula (per-offset box filters) on random textures
  with invalid cells and unlit cells planted;
* IR-MAD fitted on the sample gathered tile by tile equals IR-MAD iterated over the whole array
  (every iteration a fresh pass, as the stage did before) when the sample is the whole scene, and
  the robust scales equal the histogram medians of all cells;
* the sample is a function of global cell positions only: the same cells whatever the tiling;
* the stage's result does not depend on the tile size (in-memory cube, threaded scheduler).
"""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import evidence as EV
from offnadir.change import fit as F
from offnadir.change import irmad


@pytest.mark.parametrize("window", [3, 9, 21, 95])
def test_census_kernel_equals_the_numpy_formula(window):
    rng = np.random.default_rng(window)
    H, W = 90, 110
    base = rng.normal(0, 10, (H, W)).cumsum(axis=1)
    target = 1.7 * base + 30 + rng.normal(0, 3, (H, W))
    target[30:60, 40:80] = rng.normal(0, 10, (30, 40))  # a change
    base[:, :30] = target[:, :30] = 5.0  # flat at both dates: no code variety
    ok_b, ok_t = rng.random((H, W)) > 0.1, rng.random((H, W)) > 0.1
    ok_t[70:, 90:] = False  # a hidden corner: no valid pair in some windows
    lit = rng.random((H, W)) > 0.05
    offsets = [(0, 0), (1, -1), (2, -2), (-3, 1), (0, 7), (40, 0)]
    a = EV.structural_evidence(base, target, ok_b, ok_t, window, offsets, (2.0, 2.5), compare=lit)
    b = EV.structural_evidence_reference(base, target, ok_b, ok_t, window, offsets, (2.0, 2.5), compare=lit)
    assert np.array_equal(np.isfinite(a), np.isfinite(b))
    assert np.isfinite(a).mean() > 0.5
    assert np.allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=0, atol=1e-12)
    if window < 30:  # windows inside the flat strip (30 columns wide) give R = 0
        assert (a[np.isfinite(a)] == 0).any()
    # a core inside a halo: the same values as the whole array there
    c = EV.structural_evidence(base, target, ok_b, ok_t, window, offsets, (2.0, 2.5), compare=lit, core=(7, 61, 12, 95))
    np.testing.assert_array_equal(c, a[7:61, 12:95])


def test_census_kernel_lanes_and_wide_sums_agree():
    """The packed window sums (16-bit lanes) and the six-integer slide give the same ratios, and
    a window too wide for the lanes is refused rather than overflowing."""
    from offnadir.change import census as K
    from offnadir.change import census_codes as CW

    rng = np.random.default_rng(5)
    H, W = 70, 90
    base = rng.normal(0, 10, (H, W)).cumsum(axis=0)
    target = np.where(rng.random((H, W)) < 0.3, rng.normal(0, 10, (H, W)), base)
    ok = rng.random((H, W)) > 0.1
    ca = CW.pack(*EV.census(base, ok, 1.0))
    cb = CW.pack(*EV.census(target, ok, 1.0))
    offs = [(0, 0), (2, -1), (-5, 3)]
    for w in (5, 41, K.PACKED_MAX_WINDOW - 1):
        a = K.min_census_ratio(ca, cb, offs, w, (4, 60, 3, 80))
        b = K.min_census_ratio(ca, cb, offs, w, (4, 60, 3, 80), packed=False)
        assert np.isfinite(a).mean() > 0.9
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="16-bit"):
        K.min_census_ratio(ca, cb, offs, K.PACKED_MAX_WINDOW + 2, packed=True)


def _cells(n, p, rng):
    x = rng.normal(100, 20, (n, p))
    y = x @ rng.normal(0.5, 0.3, (p, p)) + rng.normal(0, 5, (n, p)) + 40
    y[: n // 20] = rng.normal(150, 30, (n // 20, p))  # 5 % changed
    return x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)


def test_irmad_on_the_sample_equals_whole_array_iterations():
    rng = np.random.default_rng(3)
    p, ny, nx = 4, 60, 70
    x, y = _cells(ny * nx, p, rng)
    stratum = (rng.random(ny * nx) < 0.25).astype(np.int64)
    ref_x, ref_y = x.mean(axis=0), y.mean(axis=0)
    iters = 6
    # before: one pass over all cells per iteration (weights from the previous pass's models)
    models = None
    for it in range(1, iters + 1):
        w = np.ones(len(x)) if models is None else F._weights_strata(models, x, y, stratum)
        sums = irmad.empty_sums(2, p)
        for rows in np.array_split(np.arange(len(x)), 7):  # tiles: sums added up like the reduction
            part = irmad.accumulate(irmad.empty_sums(2, p), x[rows], y[rows], w[rows], stratum[rows], ref_x, ref_y)
            sums = irmad.add_sums(sums, part)
        models = [irmad.solve(sums, k, ref_x, ref_y, iterations=it, previous=None if models is None else models[k],
                              tol=1e-12) for k in range(2)]
    # now: the sample gathered tile by tile (rate 1: every cell), iterated in memory
    vis = np.ones((2, ny, nx), np.uint8)
    val = np.stack([x.T.reshape(p, ny, nx), y.T.reshape(p, ny, nx)])
    lit = np.full((2, ny, nx), 100, np.uint8)
    sh = stratum.reshape(ny, nx) == 1
    lit[0][sh] = lit[1][sh] = 0  # shaded at both dates: stratum 1
    ctx = _Ctx()
    parts = [F.sample_tile(vis[:, a:b], val[:, :, a:b], lit[:, a:b], ctx, (a, 0), 1.0, True, False)
             for a, b in ((0, 25), (25, 41), (41, ny))]
    xs, ys, ss = F.add_samples(*parts)[("patch", 1)]
    assert len(xs) == ny * nx
    got, n_it = F.fit_models(xs, ys, ss, ref_x, ref_y, n_strata=2, iterations=iters, tol=1e-12)
    assert n_it == iters
    for k in range(2):
        assert np.allclose(got[k].rho, models[k].rho, rtol=0, atol=1e-9)
        assert np.allclose(np.abs(got[k].A), np.abs(models[k].A), rtol=1e-6, atol=1e-9)
    # robust scales: 1.4826 median |M_i| of all cells, per stratum
    M = F.mad_cells(models, x, y, stratum)
    for k, sc in enumerate(F.robust_scales(got, xs, ys, ss)):
        want = 1.4826 * np.median(np.abs(M[stratum == k]), axis=0)
        assert np.allclose(sc, want, rtol=0.03)  # histogram bins: 2.3 % relative resolution


def test_weights_in_one_pass_equal_the_per_stratum_weights():
    """fit._weights_strata (the squared MAD norms of every stratum in one numba pass, one chi2_sf)
    gives the numbers of the per-stratum form (a copy of each stratum's rows, their (n, p)
    variates, ``(M * M).sum(axis=1)``, chi2_sf), bit for bit: strata outside the models' range,
    missing models (stratum 0's taken; none at all: weight 1), NaN rows, float32 rows."""
    rng = np.random.default_rng(11)
    p, n = 4, 5000
    x, y = _cells(n, p, rng)
    s = rng.integers(-1, 3, n)  # -1 and 2: no stratum of the fit (weight 1)
    ref_x, ref_y = x.mean(axis=0), y.mean(axis=0)
    sums = irmad.accumulate(irmad.empty_sums(2, p), x, y, np.ones(n), np.clip(s, 0, 1), ref_x, ref_y)
    m0, m1 = (irmad.solve(sums, k, ref_x, ref_y) for k in range(2))
    x[::97, 2] = np.nan
    y[::89, 0] = np.inf
    for ms in ([m0, m1], [m0, None], [None, m1], [m1, m0]):
        for xs, ys in ((x, y), (x.astype(np.float32), y.astype(np.float32))):
            want = F._weights_strata_per_stratum(ms, xs, ys, s)
            got = F._weights_strata(ms, xs, ys, s)
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            assert (want[(s < 0) | (s > 1)] == 1).all() and 0.1 < np.mean(want < 1)
    z, used = irmad.sq_norms_strata([m0, m1], x, y, s)
    assert used.sum() == ((s == 0) | (s == 1)).sum()
    moved = irmad.MadModel(m1.mean_x, m1.mean_y, m1.A, m1.B * (1 + 1e-12), m1.rho, m1.weight, m1.n)
    assert not np.array_equal(F._weights_strata([m0, moved], x, y, s), F._weights_strata([m0, m1], x, y, s))
    assert np.array_equal(F._weights_strata([None, None], x, y, s), np.ones(n))


def test_mad_histogram_equals_numpy_histogram_and_robust_scales_mad_cells():
    """irmad.histogram (numba, the bin from log10 corrected against the edges) counts what
    np.histogram over the clipped values counts; robust_scales' variates are mad_cells'."""
    rng = np.random.default_rng(5)
    e = irmad.HIST_EDGES
    cases = [np.abs(rng.standard_cauchy((20000, 4))), np.exp(rng.uniform(-18, 18, (20000, 3))),
             np.stack([np.nextafter(e, 0), np.nextafter(e, np.inf), e, e * 1.0000001], 1), np.zeros((0, 2))]
    odd = np.abs(rng.standard_cauchy((3000, 4)))
    odd[::7, 1], odd[::11, 2], odd[::13, 3], odd[:5, 0] = np.nan, np.inf, 0.0, 1e300
    cases.append(odd)
    for a in cases:
        want = irmad.histogram_numpy(a)
        got = irmad.histogram(a)
        np.testing.assert_array_equal(got, want)
        assert got.sum() == (~np.isnan(a)).sum()
    shifted = cases[2].copy()
    shifted[100, 2] = np.nextafter(shifted[100, 2], 0)  # below its edge: one bin lower
    assert not np.array_equal(irmad.histogram(shifted), irmad.histogram(cases[2]))
    p, n = 4, 4000
    x, y = _cells(n, p, rng)
    s = rng.integers(0, 2, n)
    ref_x, ref_y = x.mean(axis=0), y.mean(axis=0)
    sums = irmad.accumulate(irmad.empty_sums(2, p), x, y, np.ones(n), s, ref_x, ref_y)
    ms = [irmad.solve(sums, k, ref_x, ref_y) for k in range(2)]
    for models in (ms, [ms[0], None]):
        got = F.robust_scales(models, x, y, s)
        M = F.mad_cells(models, x, y, s)
        for k in range(2):
            np.testing.assert_array_equal(got[k], irmad.robust_scale(irmad.histogram_numpy(np.abs(M[s == k]))))


class _Ctx:
    targets = (1,)
    use_sun = True


@pytest.mark.parametrize("gij0,shape,rate", [((0, 0), (200, 300), 0.1), ((1024, 2048), (64, 96), 0.0637),
                                              ((5, 7), (1, 1), 0.5), ((10**6, 3), (50, 60), 0.3), ((0, 0), (9, 9), 1.0)])
def test_sampled_equals_its_numpy_form(gij0, shape, rate):
    want = F.sampled_numpy(*gij0, shape, rate)
    got = F.sampled(*gij0, shape, rate)
    assert got.dtype == want.dtype == bool
    np.testing.assert_array_equal(got, want)
    if 0 < rate < 1 and want.size > 100:
        assert not np.array_equal(F.sampled(gij0[0] + 1, gij0[1], shape, rate), want)


def test_sample_depends_on_global_positions_only():
    rate = 0.1
    whole = F.sampled(0, 0, (200, 300), rate)
    assert abs(whole.mean() - rate) < 0.01
    tiled = np.zeros_like(whole)
    for i0 in range(0, 200, 64):
        for j0 in range(0, 300, 96):
            tiled[i0:i0 + 64, j0:j0 + 96] = F.sampled(i0, j0, whole[i0:i0 + 64, j0:j0 + 96].shape, rate)
    assert np.array_equal(whole, tiled)
    assert F.sample_rate(F.SAMPLE_CELLS // 2) == 1.0 and F.sample_rate(4 * F.SAMPLE_CELLS) == 0.25


@pytest.mark.parametrize("rate", [0.07, 0.5, 1.0])
def test_sample_tile_equals_testing_the_whole_tile(rate):
    # sample_tile tests usability on the sampled cells only: the rows of testing every cell and
    # keeping the sampled ones, in the same order, dtypes and memory layout
    from offnadir.change.ortho import usable as ortho_usable

    rng = np.random.default_rng(11)
    ny, nx, p = 70, 90, 4
    vis = rng.integers(0, 3, (2, ny, nx)).astype(np.uint8)
    val = rng.normal(300.0, 50.0, (2, p, ny, nx)).astype(np.float32)
    val[rng.random(val.shape) < 0.03] = np.nan
    lit = rng.choice(np.array([0, 80, 255], np.uint8), (2, ny, nx))
    ctx = _Ctx()
    got = F.sample_tile(vis, val, lit, ctx, (123, 456), rate, True, True)
    keep = F.sampled_numpy(123, 456, (ny, nx), rate)
    ok, st, _ = F.usable(vis, val, lit, 1, True)
    ok &= keep
    want = {("patch", 1): (val[0][:, ok].T.astype(np.float32), val[1][:, ok].T.astype(np.float32),
                           st[ok].astype(np.int8))}
    ok = ortho_usable(vis, val, 1) & keep
    want[("ortho", 1)] = (val[0][:, ok].T.astype(np.float32), val[1][:, ok].T.astype(np.float32))
    assert got.keys() == want.keys()
    for k in want:
        for a, b in zip(got[k], want[k]):
            assert a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
            np.testing.assert_array_equal(a, b)
    assert 0 < len(got[("patch", 1)][0]) < ny * nx
