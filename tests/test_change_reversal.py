"""The sign-reversal ratio of the census codes (:mod:`offnadir.change.reversal`): the numba kernel
against its numpy twin, and what it is for -- a roof re-covered with new texture still agrees, a
demolished one does not -- and how the elevated cells' evidence uses it."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from offnadir.change import cells as P
from offnadir.change import census as K
from offnadir.change import census_codes as CW
from offnadir.change import evidence as EV
from offnadir.change import reversal as RV


@pytest.mark.parametrize("seed, window, offsets", [(0, 5, [(0, 0)]), (1, 11, [(0, 0), (1, 2), (-3, 0)]),
                                                   (2, 21, [(0, -2), (0, -1), (0, 0), (0, 1), (0, 2)])])
def test_kernel_equals_the_numpy_formula(seed, window, offsets):
    rng = np.random.default_rng(seed)
    ny, nx = 60, 75
    a = ndi.gaussian_filter(rng.normal(size=(ny, nx)), 0.7)
    b = 0.6 * a + 0.4 * ndi.gaussian_filter(rng.normal(size=(ny, nx)), 0.7)
    b[20:35, 30:50] = 0.0  # a flat patch: codes 0 in the target only
    oa, ob = rng.random((ny, nx)) > 0.1, rng.random((ny, nx)) > 0.1
    oa[:, :16] = False  # a strip without base samples wider than the windows: no pair, NaN
    ca, va = EV.census(a, oa, 0.05)
    cb, vb = EV.census(b, ob, 0.05)
    got = RV.min_reversal_ratio(CW.pack(ca, va), CW.pack(cb, vb), offsets, window)
    ref = np.full((ny, nx), np.nan)
    for di, dj in offsets:
        ref = np.fmin(ref, RV.reversal_ratio_reference(ca, va, EV.shift(cb, di, dj, 0), EV.shift(vb, di, dj, False),
                                                        window))
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    assert np.isnan(got).any() and np.isfinite(got).mean() > 0.5
    np.testing.assert_allclose(got[np.isfinite(got)], ref[np.isfinite(ref)], rtol=1e-12, atol=1e-12)
    core = (7, 41, 12, 70)
    part = RV.min_reversal_ratio(CW.pack(ca, va), CW.pack(cb, vb), offsets, window, core)
    np.testing.assert_array_equal(part, got[7:41, 12:70])


def _roof_scene(rng, n=120):
    """Textured ground, a flat roof [40:80, 40:80] with three dark fixtures (chimneys, vents)."""
    ground = ndi.gaussian_filter(rng.standard_normal((n, n)), 1.0) * 40.0 + 300.0
    base = ground.copy()
    base[40:80, 40:80] = 420.0
    for i, j in ((46, 48), (60, 66), (70, 50)):
        base[i:i + 5, j:j + 5] = 200.0
    return ground, base


def test_retextured_roof_agrees_and_demolished_roof_does_not():
    rng = np.random.default_rng(3)
    ground, base = _roof_scene(rng)
    roof = (slice(40, 80), slice(40, 80))
    tex = ndi.gaussian_filter(rng.standard_normal(base.shape), 1.0) * 30.0
    # date 2, roof still there: another gain and offset, and the flat roof re-covered (texture appears)
    kept = base.copy()
    kept[roof] = np.where(base[roof] > 300.0, base[roof] + tex[roof], base[roof])
    kept = 0.8 * kept + 25.0 + rng.normal(0, 1.0, base.shape)
    # date 2, roof demolished: the ground under it (texture the base never saw)
    gone = base.copy()
    gone[roof] = ndi.gaussian_filter(rng.standard_normal((40, 40)), 1.0) * 40.0 + 300.0
    gone = 0.8 * gone + 25.0 + rng.normal(0, 1.0, base.shape)
    base = base + rng.normal(0, 1.0, base.shape)
    ok = np.ones(base.shape, bool)
    sig = None  # each image's own noise sigma (evidence.noise_sigma), as the pipeline estimates it
    window = 21
    centre = (slice(52, 68), slice(52, 68))  # windows inside the roof
    r_kept, s_kept = EV.structural_evidence(base, kept, ok, ok, window, [(0, 0)], sig, reversal=True)
    r_gone, s_gone = EV.structural_evidence(base, gone, ok, ok, window, [(0, 0)], sig, reversal=True)
    # the census ratio reads texture appearing on the flat roof as disagreement, as much as demolition
    assert np.median(r_kept[centre]) > 0.7
    # the reversal ratio does not: the fixtures' edges kept their order
    assert np.median(s_kept[centre]) < 0.25
    # the demolished roof: no agreement beyond chance in either
    assert np.median(s_gone[centre]) > 0.7 and np.median(r_gone[centre]) > 0.7
    # the roof's evidence separates the two where R alone did not
    e_kept, e_gone = EV.roof_evidence(r_kept, s_kept), EV.roof_evidence(r_gone, s_gone)
    assert np.median(e_gone[centre]) > 2.0 * np.median(e_kept[centre])


def test_stratum_evidence_uses_the_reversal_ratio_on_elevated_cells_only():
    rng = np.random.default_rng(5)
    _, base = _roof_scene(rng, 90)
    target = 0.7 * base + 40.0 + rng.normal(0, 2.0, base.shape)
    target[40:80, 40:80] += ndi.gaussian_filter(rng.standard_normal((40, 40)), 1.0) * 20.0
    base = base + rng.normal(0, 2.0, base.shape)
    ok = np.ones(base.shape, bool)
    ok[:, :3] = False
    elevated = np.zeros(base.shape, bool)
    elevated[40:80, 40:80] = True
    offs, window, sig = [(0, -1), (0, 0), (0, 1)], 15, (2.0, 2.0)
    core = (5, 85, 5, 85)
    e = P.stratum_evidence(base, target, ok, ok, elevated, window, offs, sig, core=core)
    r, s = EV.structural_evidence(base, target, ok, ok, window, offs, sig, core=core, reversal=True)
    ground = EV.structural_evidence(base, target, ok, ok, window, offs, sig, compare=~elevated, core=core)
    el = elevated[5:85, 5:85]
    np.testing.assert_allclose(e[el], np.sqrt(r * s)[el])
    np.testing.assert_allclose(e[~el], np.fmin(r, ground)[~el])
    # cells outside the ``reversal`` mask (the pipeline: where a same-date pair measured dh) keep R
    half = np.zeros(el.shape, bool)
    half[:, :40] = True
    e2 = P.stratum_evidence(base, target, ok, ok, elevated, window, offs, sig, core=core, reversal=half)
    np.testing.assert_allclose(e2[el & half], np.sqrt(r * s)[el & half])
    np.testing.assert_allclose(e2[el & ~half], r[el & ~half])
    np.testing.assert_allclose(e2[~el], e[~el])
    assert not np.allclose(r[el & half], np.sqrt(r * s)[el & half])  # the two differ here
    # where the reversal ratio is undefined the census ratio stands
    assert np.array_equal(EV.roof_evidence(np.array([0.5, 0.8]), np.array([np.nan, 0.2])), np.array([0.5, 0.4]))


def test_evidence_tile_keeps_the_census_ratio_on_roofs_where_a_pair_measured_dh():
    from types import SimpleNamespace

    from offnadir.change.tileio import MemoryIO
    from offnadir.cube.plan import Tile

    rng = np.random.default_rng(7)
    _, base = _roof_scene(rng, 90)
    target = 0.7 * base + 40.0 + rng.normal(0, 2.0, base.shape)
    target[40:80, 40:80] += ndi.gaussian_filter(rng.standard_normal((40, 40)), 1.0) * 20.0
    base = base + rng.normal(0, 2.0, base.shape)
    elevated = np.zeros(base.shape, bool)
    elevated[40:80, 40:80] = True
    dh = np.full((2,) + base.shape, np.nan, np.float32)
    dh[1][:, :60] = 0.0  # the same-date pair measured the left part of the scene
    arrays = {"visible": np.ones((2,) + base.shape, np.uint8), "value": np.stack([base, target])[:, None],
              "elevated": elevated.astype(np.uint8), "dh": dh,
              "evidence": np.full((2,) + base.shape, np.nan, np.float32)}
    offs, window, sig = [(0, -1), (0, 0), (0, 1)], 15, (2.0, 2.0)
    plan = {"window": window, "offsets": {1: offs}, "sigmas": list(sig), "structural": True, "sample_rate": 1.0,
            "want_patch": False, "want_ortho": False}
    ctx = SimpleNamespace(shape=base.shape, n_images=2, targets=(1,))
    P.evidence_tile(MemoryIO(arrays), ctx, Tile(0, 0, 0, 90, 0, 90), plan, {"elevated": True, "dh": True})
    got = arrays["evidence"][1]
    ok = np.ones(base.shape, bool)
    with_s = P.stratum_evidence(base, target, ok, ok, elevated, window, offs, sig)
    without = P.stratum_evidence(base, target, ok, ok, elevated, window, offs, sig, reversal=np.zeros(base.shape, bool))
    measured = np.isfinite(dh[1])
    np.testing.assert_allclose(got[elevated & measured], without[elevated & measured], rtol=1e-6)
    np.testing.assert_allclose(got[elevated & ~measured], with_s[elevated & ~measured], rtol=1e-6)
    assert not np.allclose(with_s[elevated & measured], without[elevated & measured])


def test_a_roof_flat_at_both_dates_gets_no_reversal_ratio(monkeypatch):
    """A handful of noise codes on a roof flat at both dates: chance predicts fewer than
    MIN_EXPECTED reversals, so S is undefined there (not noise over almost nothing) and R stands."""
    rng = np.random.default_rng(11)
    ground = ndi.gaussian_filter(rng.standard_normal((100, 100)), 1.0) * 40.0 + 300.0
    base, target = ground.copy(), 0.8 * ground + 25.0
    base[30:70, 30:70], target[30:70, 30:70] = 420.0, 360.0
    base += rng.normal(0, 1.0, base.shape)
    target += rng.normal(0, 1.0, base.shape)
    ok = np.ones(base.shape, bool)
    sig = (2.0, 2.0)  # dead band 4: about one noise code in 200 pairs on the roof
    inner = (slice(40, 60), slice(40, 60))  # windows on the flat roof only
    r, s = EV.structural_evidence(base, target, ok, ok, 15, [(0, 0)], sig, reversal=True)
    assert np.isnan(s[inner]).all()
    assert np.isfinite(s[:20, :20]).all()  # textured ground: defined
    np.testing.assert_array_equal(EV.roof_evidence(r, s)[inner], r[inner])
    # what the rule prevents: the few noise reversals over almost no expected ones
    monkeypatch.setattr(RV, "MIN_EXPECTED", 0.0)
    _, s0 = EV.structural_evidence(base, target, ok, ok, 15, [(0, 0)], sig, reversal=True)
    assert np.nanmedian(s0[inner]) > 10.0


@pytest.mark.parametrize("seed, window, offsets, core", [(4, 9, [(0, 0), (2, -1), (-5, 3)], None),
                                                         (5, 31, [(0, k) for k in range(-6, 7)], (9, 50, 14, 66))])
def test_census_sweep_with_the_reversal_ratio_is_identical_to_both_kernels(seed, window, offsets, core):
    # min_census_ratio(..., reversal=True) takes S from the census sweep's window sums (one more
    # lane): every number must equal min_census_ratio and min_reversal_ratio run apart
    rng = np.random.default_rng(seed)
    ny, nx = 64, 80
    a = ndi.gaussian_filter(rng.normal(size=(ny, nx)), 0.8)
    b = np.where(rng.random((ny, nx)) > 0.3, 0.7 * a, 0.0) + 0.3 * ndi.gaussian_filter(rng.normal(size=(ny, nx)), 0.8)
    oa, ob = rng.random((ny, nx)) > 0.15, rng.random((ny, nx)) > 0.15
    oa[:, :12] = False
    wa = CW.pack(*EV.census(a, oa, 0.05))
    wb = CW.pack(*EV.census(b, ob, 0.05))
    r, s = K.min_census_ratio(wa, wb, offsets, window, core, reversal=True)
    r_alone = K.min_census_ratio(wa, wb, offsets, window, core)
    s_alone = RV.min_reversal_ratio(wa, wb, offsets, window, core)
    np.testing.assert_array_equal(r, r_alone)
    np.testing.assert_array_equal(s, s_alone)
    assert np.isfinite(s).mean() > 0.3
    assert np.isnan(s).any() == (core is None)  # the strip without base samples: no pair, NaN
    # the unpacked (wide) sums take S from the reversal kernel: the same numbers
    r_w, s_w = K.min_census_ratio(wa, wb, offsets, window, core, packed=False, reversal=True)
    np.testing.assert_array_equal(r_w, r_alone)
    np.testing.assert_array_equal(s_w, s_alone)
