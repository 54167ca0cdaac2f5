"""Two-scale ground evidence (offnadir.change.localise): the fine window localises a new object that
the wide window spreads over its neighbourhood, and the combination rule raises only where both
scales call change."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from offnadir.change import calibrate as C
from offnadir.change import localise as L


def _texture(rng, shape, smooth=1.0):
    return ndi.gaussian_filter(rng.normal(0.0, 40.0, shape), smooth)


def test_fine_window_is_a_quarter_of_the_wide_one():
    assert L.fine_window(41) == 11
    assert L.fine_window(21) == 7
    assert L.fine_window(3) == 3  # never below one cell each side
    assert L.fine_window(41) % 2 == 1


def test_fine_evidence_beside_a_new_object_is_that_of_the_unchanged_scene():
    """A new object (another texture) appears in the target on textured ground. Beyond half the fine
    window (+ the census radius) from it, the fine evidence is exactly what the scene without the
    object gives, while the wide window still carries the object's disagreement there."""
    rng = np.random.default_rng(3)
    n = 120
    ground = _texture(rng, (n, n))
    base = ground + rng.normal(0, 1.0, (n, n))
    target = ground + rng.normal(0, 1.0, (n, n))
    changed = target.copy()
    b0, b1 = 50, 70
    changed[b0:b1, b0:b1] = _texture(rng, (b1 - b0, b1 - b0)) + 40.0  # a new roof: unrelated structure
    ok = np.ones((n, n), bool)
    elev = np.zeros((n, n), bool)
    sig = (1.0, 1.0)
    fw = L.fine_window(41)
    args = dict(offsets=[(0, 0)], sigmas=sig)
    fine_new = L.ground_fine_evidence(base, changed, ok, ok, elev, fw, **args)
    fine_old = L.ground_fine_evidence(base, target, ok, ok, elev, fw, **args)
    wide_new = L.ground_fine_evidence(base, changed, ok, ok, elev, 41, **args)
    wide_old = L.ground_fine_evidence(base, target, ok, ok, elev, 41, **args)
    # cells whose fine window (and its codes' neighbours) misses the object
    reach = fw // 2 + 1
    far = np.ones((n, n), bool)
    far[b0 - reach:b1 + reach, b0 - reach:b1 + reach] = False
    ring = np.zeros((n, n), bool)
    ring[b0 - 12:b1 + 12, b0 - 12:b1 + 12] = True
    ring &= far  # 7..12 cells from the object: inside the wide window, outside the fine one
    np.testing.assert_array_equal(fine_new[far], fine_old[far])
    assert np.all(wide_new[ring] > wide_old[ring])
    inside = np.zeros((n, n), bool)
    inside[b0 + 5:b1 - 5, b0 + 5:b1 - 5] = True
    # on the object the fine window sees only unrelated structure: no agreement beyond chance
    assert np.nanmedian(fine_new[inside]) > 0.8
    # beside it the fine evidence is that of unchanged ground: below the wide one's (median),
    # and the two populations (object, beside it) do not overlap at the fine scale
    assert np.nanmedian(fine_new[ring]) < np.nanmedian(wide_new[ring])
    assert np.nanmax(fine_new[ring]) < np.nanmin(fine_new[inside])


def test_fine_evidence_is_nan_on_elevated_cells():
    rng = np.random.default_rng(0)
    x = _texture(rng, (40, 40))
    ok = np.ones(x.shape, bool)
    elev = np.zeros(x.shape, bool)
    elev[10:20, 10:20] = True
    e = L.ground_fine_evidence(x, x + rng.normal(0, 1, x.shape), ok, ok, elev, 7, [(0, 0)], (1.0, 1.0))
    assert np.all(np.isnan(e[elev]))
    assert np.all(np.isfinite(e[~elev][5:-5]))


def _model(seed=0, pi1=0.1):
    rng = np.random.default_rng(seed)
    z = np.r_[rng.normal(-0.5, 0.25, int(1e5 * (1 - pi1))), rng.normal(-0.1, 0.07, int(1e5 * pi1))]
    r = np.exp(z)
    m = C.fit(C.histogram(r / (1 + r)), anchor=0.0)
    assert not m["fallback"]
    return m


def test_log_likelihood_ratio_is_the_density_ratio_and_non_decreasing():
    m = _model()
    tab = L.log_likelihood_ratio(m)
    z = C.centres()
    assert np.all(np.diff(tab) >= 0)
    k = np.searchsorted(z, m["mean"][1] - 0.05)  # below the changed mean, above the null's
    mu, sd = m["mean"], m["sd"]
    want = np.log(C._normal(z[k], mu[1], sd[1]) / C._normal(z[k], mu[0], sd[0]))
    assert tab[k] == pytest.approx(want, rel=1e-9)
    assert L.log_likelihood_ratio({"fallback": True}) is None


def test_log_likelihood_ratio_lowers_when_the_densities_underflow_far_left():
    # 1024² seed 1's fine mixture (null sd 0.195, changed 0.081): both densities underflow below
    # z ~ -7.5, which the floored densities read as log LR = 0, and the running maximum then held
    # every bin up to the crossing at 0 (no cell could be lowered)
    m = {"fallback": False, "pi": [0.83, 0.17], "mean": [-0.418, -0.145], "sd": [0.195, 0.081]}
    tab = L.log_likelihood_ratio(m)
    z = C.centres()
    assert np.all(np.diff(tab) >= 0)
    k = np.searchsorted(z, m["mean"][0])  # at the null's mean: the null is the likelier component
    mu, sd = m["mean"], m["sd"]
    want = np.log(C._normal(z[k], mu[1], sd[1]) / C._normal(z[k], mu[0], sd[0]))
    assert want < -1.0
    assert tab[k] == pytest.approx(want, rel=1e-9)
    assert tab[0] == -L.LLR_BOUND
    p = L.localise(np.array([0.6]), np.array([np.exp(mu[0])]), None, m)
    assert p[0] < 0.3  # an agreeing small neighbourhood lowers a wide window's change


def test_localise_raises_only_where_both_scales_call_change():
    coarse = _model(1, pi1=0.08)
    fine = _model(2, pi1=0.12)
    r_changed, r_agree = np.exp(-0.05), np.exp(-0.8)  # fine evidence: unrelated / agreeing
    p = np.array([0.45, 0.45, 0.01, 0.45, np.nan])
    rf = np.array([r_changed, r_agree, r_changed, np.nan, r_changed])
    q = L.localise(p, rf, coarse, fine)
    assert q[0] > 0.5  # the changed cell of a change-like neighbourhood
    assert q[1] < 0.45  # its unchanged neighbour: lowered
    assert q[2] == p[2]  # coarse evidence against change (p below its prior): no raise
    assert q[3] == p[3]  # no fine evidence
    assert np.isnan(q[4])
    # fine evidence that is not change on its own (below its posterior 1/2) does not raise
    tab = L.log_likelihood_ratio(fine)
    z = C.centres()
    k = np.nonzero(tab < np.log(fine["pi"][0] / fine["pi"][1]))[0][-1]
    r_weak = np.exp(z[k])
    assert L.localise(np.array([0.45]), np.array([r_weak]), coarse, fine)[0] <= 0.45


def test_localise_without_mixtures_changes_nothing_upwards():
    fine = _model(2)
    p = np.array([0.3, 0.45])
    rf = np.array([np.exp(-0.05), np.exp(-0.05)])
    np.testing.assert_array_equal(L.localise(p, rf, {"fallback": True}, fine), p)  # wide: no changed population
    np.testing.assert_array_equal(L.localise(p, rf, _model(1), {"fallback": True}), p)  # fine: no mixture


def test_maps_pass_localises_with_the_stored_fine_evidence():
    """cells.probability_tile (the maps pass) on in-memory arrays: a neighbourhood the wide window
    calls change-like at p ~ 0.45 everywhere; the stored fine evidence says which cells changed.
    With ``evidence_local`` those cells are flagged and their neighbours not; without it, the
    probability is the wide window's alone (the layer is what switches the rule)."""
    from types import SimpleNamespace

    from offnadir.change import cells as P
    from offnadir.change.tileio import MemoryIO

    coarse, fine = _model(1, pi1=0.08), _model(2, pi1=0.12)
    z45 = C.threshold_z(coarse, 0.45)
    n = 40
    changed = np.zeros((n, n), bool)
    changed[10:20, 10:20] = True

    def run(with_fine):
        arrays = {"visible": np.ones((2, n, n), np.uint8), "elevated": np.zeros((n, n), np.uint8),
                  "evidence": np.full((2, n, n), np.exp(z45), np.float32),
                  "probability": np.full((2, n, n), np.nan, np.float32), "change": np.full((2, n, n), 2, np.uint8),
                  "score": np.full((2, n, n), np.nan, np.float32)}
        if with_fine:
            arrays["evidence_local"] = np.where(changed, np.exp(-0.05), np.exp(-0.8))[None].repeat(2, 0).astype(
                np.float32)
        ctx = SimpleNamespace(n_images=2, targets=[1], shape=(n, n))
        models = {("evidence", 1, 0): coarse, ("evidence", 1, 1): coarse, ("local", 1, 0): fine}
        plan = {"bound": 2.5, "structural": True, "ortho": None, "decisions": {}}
        P.probability_tile(MemoryIO(arrays), ctx, SimpleNamespace(i0=0, i1=n, j0=0, j1=n), models,
                           {"elevated": True}, plan)
        return arrays["probability"][1], arrays["change"][1]

    p0, c0 = run(False)
    assert np.allclose(p0, p0[0, 0]) and 0.4 < p0[0, 0] < 0.5 and not c0.any()
    p1, c1 = run(True)
    np.testing.assert_array_equal(c1 == 1, changed)
    assert np.all(p1[~changed] < p0[~changed])
