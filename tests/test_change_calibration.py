"""Cross-date structural evidence, its per-run calibration, the dh evidence and the
height-change reference scores, on small arrays whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from offnadir.change import calibrate as C
from offnadir.change import cells as P
from offnadir.change import evidence as EV
from offnadir.change import reference as R


# ----------------------------------------------------------------------------- evidence
def _ground(rng, n=160):
    from scipy import ndimage as ndi

    return 100 + 40 * ndi.gaussian_filter(rng.standard_normal((n, n)), 1.5)


def _roof(img, i0, i1, j0, j1, level):
    out = img.copy()
    out[i0:i1, j0:j1] = level
    out[i0:i1, j0] = level + 60  # a lit edge and a dark edge, like a real roof
    out[i0:i1, j1 - 1] = level - 60
    return out


def test_demolished_and_new_buildings_give_evidence_radiometry_does_not():
    rng = np.random.default_rng(0)
    g = _ground(rng)
    ok = np.ones(g.shape, bool)
    # target: same surface, another season/sensor: gain 0.5, offset, a gamma and new noise
    def other_date(x):
        return 20 + 0.5 * (x / 150.0) ** 1.3 * 150 + rng.normal(0, 0.5, x.shape)

    base = _roof(g, 40, 80, 40, 80, 180)        # a building in the base ...
    target = other_date(g)                      # ... demolished in the target
    target = _roof(target, 100, 140, 96, 136, 60)  # a new building where the base shows ground
    base_noisy = base + rng.normal(0, 0.5, g.shape)
    e = EV.structural_evidence(base_noisy, target, ok, ok, 15)
    demolished = np.nanmedian(e[45:75, 45:75])
    new = np.nanmedian(e[105:135, 101:131])
    unchanged = np.nanmedian(e[10:30, 100:150])
    assert demolished > 0.8 and new > 0.8
    assert unchanged < 0.5
    # texture-neutral: unrelated surfaces sit near 1 whatever their texture
    other = _ground(np.random.default_rng(5))
    assert abs(np.nanmedian(EV.structural_evidence(g, other, ok, ok, 15)[20:-20, 20:-20]) - 1.0) < 0.1


def test_parallax_search_absorbs_a_dsm_error_but_not_a_change():
    rng = np.random.default_rng(1)
    g = _ground(rng)
    ok = np.ones(g.shape, bool)
    moved = EV.shift(g, 0, 3, 0.0)  # the target's samples moved by 3 cells (DSM error along the parallax)
    offs = [(0, k) for k in range(-4, 5)]
    e0 = EV.structural_evidence(g, moved, ok, ok, 15)
    e1 = EV.structural_evidence(g, moved, ok, ok, 15, offs)
    assert np.nanmedian(e0[20:-20, 20:-20]) > 0.8
    assert np.nanmedian(e1[20:-20, 20:-20]) < 0.1


def test_relative_offsets_follow_the_two_views():
    # same view direction at both dates: no relative parallax, only (0, 0)
    assert EV.relative_offsets(90, 20, 90, 20, 30, 0.5) == [(0, 0)]
    # base at nadir, target 45 deg off-nadir looking from the east: dh = 10 m moves 20 cells along x
    offs = EV.relative_offsets(0, 0, 90, 45, 10, 0.5)
    assert (0, 0) in offs and (0, 20) in offs and (0, -20) in offs and all(di == 0 for di, _ in offs)
    assert EV.relative_offsets(float("nan"), 0, 90, 45, 10, 0.5) == [(0, 0)]


def test_noise_sigma_of_white_noise():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 3.0, (200, 200))
    assert EV.noise_sigma(x, np.ones(x.shape, bool)) == pytest.approx(3.0, rel=0.05)
    counts = P.noise_tile(_IO({"visible": np.ones((1, 200, 200), np.uint8), "value": x[None, None]}),
                          _Ctx(1), _Tile(200))[0]
    assert P.noise_sigma(counts) == pytest.approx(3.0, rel=0.05)


class _IO:
    def __init__(self, arrays):
        self.arrays = arrays

    def read(self, name, key):
        return np.asarray(self.arrays[name][key])


class _Ctx:
    def __init__(self, n):
        self.n_images = n


class _Tile:
    def __init__(self, n):
        self.i0, self.i1, self.j0, self.j1 = 0, n, 0, n


# ----------------------------------------------------------------------------- calibration
def _logistic(z):
    return 1 / (1 + np.exp(-z))


def test_mixture_recovers_the_changed_fraction_and_the_bayes_boundary():
    rng = np.random.default_rng(3)
    z = np.r_[rng.normal(-1.0, 0.3, 80000), rng.normal(1.0, 0.4, 20000)]
    m = C.fit(C.histogram(_logistic(z)))
    assert not m["fallback"]
    assert m["pi"][1] == pytest.approx(0.2, abs=0.02)
    assert m["mean"] == pytest.approx([-1.0, 1.0], abs=0.05)
    # Bayes boundary of the true mixture: 0.8 N(-1, .3) = 0.2 N(1, .4)
    zz = np.linspace(-1, 1, 20001)
    d = 0.8 * np.exp(-0.5 * ((zz + 1) / 0.3) ** 2) / 0.3 - 0.2 * np.exp(-0.5 * ((zz - 1) / 0.4) ** 2) / 0.4
    boundary = zz[np.argmin(np.abs(d))]
    assert C.threshold_z(m) == pytest.approx(boundary, abs=0.06)
    p = C.probability(_logistic(z), m)
    assert np.all((p >= 0) & (p <= 1))
    truth = np.r_[np.zeros(80000, bool), np.ones(20000, bool)]
    assert ((p >= 0.5) == truth).mean() > 0.97
    # more evidence never lowers the probability
    assert np.all(np.diff(np.asarray(m["table"])) >= 0)


def test_an_unchanged_scene_flags_almost_nothing():
    rng = np.random.default_rng(4)
    for sd in (0.2, 0.5):
        e = _logistic(rng.normal(-0.5, sd, 100000))
        m = C.fit(C.histogram(e))
        p = C.probability(e, m)
        assert (p >= 0.5).mean() < 0.02, m


def test_too_few_cells_give_probability_zero_and_nan_stays_nan():
    m = C.fit(C.histogram(np.array([0.2, 0.9, 0.95])))
    assert m["fallback"]
    p = C.probability(np.array([0.99, np.nan]), m)
    assert p[0] == 0 and np.isnan(p[1])


# ----------------------------------------------------------------------------- dh
def test_height_change_evidence_against_its_bound():
    dh = np.array([10.0, 0.0, -6.0, 2.5, np.nan])
    sig = np.array([1.0, 0.5, 1.0, 1.0, 1.0])
    p = P.dh_probability(dh, sig, 2.5)
    assert p[0] > 0.999 and p[1] < 1e-6 and p[2] > 0.99 and p[3] == pytest.approx(0.5) and np.isnan(p[4])
    # combined with the structural probability: log-odds add; NaN dh leaves it alone
    ps = np.array([0.5, 0.9, 0.2, 0.7, 0.7])
    c = P.combine(ps, p)
    assert c[0] > 0.999 and c[1] < 1e-5 and c[3] == pytest.approx(0.7) and c[4] == pytest.approx(0.7)


# ----------------------------------------------------------------------------- reference scores
def test_reference_kind():
    assert R.kind(np.array([0, 1, 2, 255])) == "height"
    assert R.kind(np.array([0, 1])) == "binary"
    assert R.kind(np.array([0, 1]), "height") == "height"


def test_auc_of_known_rankings():
    y = np.array([0, 0, 1, 1], bool)
    assert R.auc(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert R.auc(y, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert R.auc(y, [0.5, 0.5, 0.5, 0.5]) == 0.5
    # one of four pairs wrong
    assert R.auc(y, [0.1, 0.85, 0.8, 0.9]) == 0.75
    assert math.isnan(R.auc(np.zeros(3, bool), [1, 2, 3]))


def test_height_scores_on_a_small_map():
    ref = np.zeros((20, 20), np.uint8)
    ref[2:8, 2:8] = 1        # a loss object: 36 cells
    ref[12:18, 12:18] = 2    # a gain object: 36 cells
    ref[0, 19] = 2           # a 1-cell object: below the area bound
    ref[19, :] = 255         # ignored row
    change = np.zeros_like(ref)
    change[2:8, 2:5] = 1     # half of the loss object (18 cells)
    change[12:14, 12:18] = 1  # a third of the gain object (12 cells)
    change[9, 0:4] = 1       # 4 false alarms
    change[10, :] = 2        # undecided row
    prob = np.where(change == 1, 0.9, 0.1).astype(float)
    cells = np.ones(ref.shape, bool)
    r = R.height_scores(ref, change, prob, cells, cell_area=4.0)  # 2 m cells: objects of 144 m2
    decided = 19 * 20 - 20
    assert r["n"] == decided
    assert (r["tp"], r["fp"], r["fn"]) == (30, 4, 73 - 30)
    assert r["f1"] == pytest.approx(60 / (60 + 4 + 43))
    assert r["objects"]["objects"] == 2 and r["objects"]["found"] == 1
    assert r["objects"]["loss_recall"] == 1.0 and r["objects"]["gain_recall"] == 0.0
    # AUC from the two-level probability: positives 30 at 0.9, 43 at 0.1; negatives 4 at 0.9
    n1, n0 = 73, decided - 73
    wins = 30 * (n0 - 4) + 0.5 * 30 * 4 + 0.5 * 43 * (n0 - 4)
    assert r["auc"] == pytest.approx(wins / (n1 * n0))


def test_stored_probability_keeps_the_decision_of_the_float64_value():
    """A probability within float32 rounding under the decision (1e-6 against 1 - 1e-6 evidence
    ties) must not be stored as the decision value itself: the store's change map is
    ``probability >= decision_p``."""
    eps = np.finfo(np.float32).eps
    p = np.array([0.5 - 1e-9, 0.5 - 1e-12, 0.5, 0.5 + 1e-9, 0.3, 0.9, np.nan, 0.0, 1.0])
    q = C.stored(p, 0.5)
    assert q.dtype == np.float32
    fin = np.isfinite(p)
    np.testing.assert_array_equal(q[fin] >= 0.5, p[fin] >= 0.5)
    assert np.all(np.abs(q[fin] - p[fin]) <= eps) and np.isnan(q[~fin]).all()
    # values away from the decision are the plain float32
    np.testing.assert_array_equal(q[4:6], p[4:6].astype(np.float32))
    assert float(C.stored(np.array([0.5 - 1e-9]), 0.5)[0]) < 0.5


def test_model_says_how_many_of_its_cells_it_decides_and_when_none():
    """A fitted mixture decides its changed mode's cells (the count matches the table on the histogram);
    a fallback whose threshold lies beyond every cell (as both20 seed 5's roofs: no cell at R >= 1.2)
    decides none, and its summary says the calibrated decision is off."""
    rng = np.random.default_rng(3)
    z = np.r_[rng.normal(-1.5, 0.3, 20000), rng.normal(-0.2, 0.1, 1500)]
    counts = C.histogram(1.0 / (1.0 + np.exp(-z)))
    m = C.fit(counts, anchor=0.0)
    assert not m["fallback"]
    table = np.asarray(m["table"])
    assert m["decided_cells"] == int(counts[table >= 0.5].sum())
    assert 1200 < m["decided_cells"] < 2000 and m["decision_z"] < 0
    assert "of 21500 cells" in C.summary(m) and "off" not in C.summary(m)
    # one broad population with no tail (every cell's R well under 1): no mixture, and the outlier
    # test's 3 robust sigmas lie beyond every cell
    flat = rng.uniform(-0.7, -0.1, 12000)
    m = C.fit(C.histogram(1.0 / (1.0 + np.exp(-flat))), anchor=0.0)
    assert m["fallback"] and m["decided_cells"] == 0 and m["decision_z"] > flat.max()
    assert "of 12000 cells (its calibrated decision is off" in C.summary(m)
    assert C.summary(C.fit(np.zeros(C.N_BINS))).startswith("fallback (fewer than")
