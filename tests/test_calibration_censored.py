"""The censored mixture fit of :func:`offnadir.change.calibrate.fit` (``censor=``) and the per-key
fit options of the change stage (:data:`offnadir.change.cells.FIT`)."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import calibrate as C
from offnadir.change import cells as P


def _logistic(z):
    return 1.0 / (1.0 + np.exp(-z))


def _ground_null(rng, n=40000, tail=6000):
    """An unchanged ground stratum as the hard simulator's seed 5 shows it (log R): a peak, and a
    heavy tail of cells that agree far *better* than typical (below the peak only)."""
    return np.r_[rng.normal(-0.44, 0.11, n), -0.5 - np.abs(rng.normal(0.0, 0.45, tail))]


def test_truncated_moments_match_scipy():
    from scipy.stats import truncnorm

    mu, sd = np.array([-0.4, 0.3]), np.array([0.1, 0.5])
    for c in (-0.6, -0.4, 0.0, 1.2):
        f, ex, ex2 = C._truncated_moments(c, mu, sd)
        for k in range(2):
            d = truncnorm(-np.inf, (c - mu[k]) / sd[k], loc=mu[k], scale=sd[k])
            assert f[k] == pytest.approx(truncnorm.cdf((c - mu[k]) / sd[k], -np.inf, np.inf), rel=1e-9)
            assert ex[k] == pytest.approx(d.mean(), abs=1e-9)
            assert ex2[k] == pytest.approx(d.var() + d.mean() ** 2, abs=1e-9)


def test_a_heavy_agreeing_tail_hides_a_small_change_unless_censored():
    rng = np.random.default_rng(0)
    null = _ground_null(rng)
    changed = rng.normal(-0.13, 0.05, 1200)  # 2.6 %: a new building's cells
    z = np.r_[null, changed]
    h = C.histogram(_logistic(z))
    shape = C.fit(h, anchor=0.0)
    assert shape["fallback"]  # the tail takes one component and the peak the other
    m = C.fit(h, anchor=0.0, censor=0.5, plateau=False)
    assert not m["fallback"], m
    assert m["censored_below"] == pytest.approx(np.median(z), abs=C.centres()[1] - C.centres()[0])
    assert m["pi"][1] == pytest.approx(len(changed) / len(z), abs=0.01)
    assert m["mean"][1] == pytest.approx(-0.13, abs=0.03)
    assert m["mean"][0] == pytest.approx(-0.44, abs=0.03)
    p = C.probability(_logistic(z), m)
    assert (p[len(null):] >= 0.5).mean() > 0.5
    assert (p[: len(null)] >= 0.5).mean() < 0.01
    assert np.all(np.diff(np.asarray(m["table"])) >= 0)


def test_censored_fit_of_an_unchanged_stratum_flags_almost_nothing():
    rng = np.random.default_rng(1)
    for null in (_ground_null(rng), rng.normal(-0.5, 0.2, 50000)):
        e = _logistic(null)
        m = C.fit(C.histogram(e), anchor=0.0, censor=0.5, plateau=False)
        assert (C.probability(e, m) >= 0.5).mean() < 0.02, m


def test_censoring_below_the_null_keeps_a_clean_mixture():
    """Where the changed component lies wholly above the median, the censored fit recovers the same
    mixture as the fit by shape (the cut only hides the null's lower half, which it predicts)."""
    rng = np.random.default_rng(3)
    z = np.r_[rng.normal(-1.0, 0.3, 80000), rng.normal(1.0, 0.4, 20000)]
    h = C.histogram(_logistic(z))
    a, b = C.fit(h), C.fit(h, censor=0.5)
    assert not b["fallback"]
    np.testing.assert_allclose(b["pi"], a["pi"], atol=0.01)
    np.testing.assert_allclose(b["mean"], a["mean"], atol=0.02)
    np.testing.assert_allclose(b["sd"], a["sd"], atol=0.02)


def test_gaussian_tail_holds_the_probability_at_its_maximum():
    rng = np.random.default_rng(4)
    z = np.r_[rng.normal(-0.44, 0.11, 40000), rng.normal(-0.13, 0.05, 1200)]
    h = C.histogram(_logistic(z))
    tail = C.fit(h, anchor=0.0, censor=0.5, plateau=False)
    flat = C.fit(h, anchor=0.0, censor=0.5, plateau=True)
    t, f = np.asarray(tail["table"]), np.asarray(flat["table"])
    assert np.all(np.diff(t) >= 0) and np.all(t <= f + 1e-12)
    # below the changed mean both are the same posterior; beyond it the tail's stays at its maximum
    zc = C.centres()
    below = zc < tail["mean"][1]
    np.testing.assert_allclose(t[below], f[below], atol=1e-12)
    assert f[-1] == pytest.approx(1.0) and t[-1] < 1.0
    assert t[-1] == pytest.approx(t[zc > tail["mean"][1]].max())


def test_change_stage_fits_only_the_census_ground_stratum_censored():
    rng = np.random.default_rng(5)
    h = C.histogram(_logistic(np.r_[_ground_null(rng), rng.normal(-0.13, 0.05, 1200)]))
    ground = P.calibration_model(("evidence", 1, 0), h)
    assert ground["censored_below"] is not None and not ground["plateau"] and not ground["fallback"]
    for key in (("evidence", 1, 1), ("local", 1, 0), ("ortho", 1, 0)):
        m = P.calibration_model(key, h)
        assert m["censored_below"] is None and m["plateau"]
        assert m == C.fit(h, anchor=P.ANCHOR[key[0]])
