"""benchmarks/eval_shadow_casters.py's measuring machinery (issue 7, H2 fifth round): the casters'
shared-surface spread (one-way random effects) and the design-effect evidence, and the sums of
squared ratios it takes from the pipeline's own caster sums. (The figures come from the evaluation
command, not from tests.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import benchmark_module


esc = benchmark_module("eval_shadow_casters")


def _casters(rng, tau, sigma, n_casters=400, gone=0):
    """Per caster: n cells, sum and sum of squares of ratios mu + b_c + e (b_c ~ N(0, tau), e ~ N(0, sigma));
    ``gone`` casters shifted far up (the few a run holds)."""
    n = rng.integers(81, 600, n_casters)
    b = rng.normal(0.0, tau, n_casters)
    b[:gone] += 5.0
    s, s2 = np.zeros(n_casters), np.zeros(n_casters)
    for k in range(n_casters):
        x = -2.0 + b[k] + rng.normal(0.0, sigma, n[k])
        s[k], s2[k] = x.sum(), (x * x).sum()
    return n, s, s2


@pytest.mark.parametrize("tau,sigma", [(0.5, 1.0), (0.0, 0.8), (1.0, 0.5)])
def test_surface_spread_recovers_the_random_effects(esc, tau, sigma):
    rng = np.random.default_rng(7)
    n, s, s2 = _casters(rng, tau, sigma, gone=10)  # 2.5 % of the casters gone: a median does not move
    sp = esc.surface_spread(n, s, s2)
    rho = tau**2 / (tau**2 + sigma**2)
    assert sp["casters"] == len(n)
    assert abs(sp["sigma"] - sigma) < 0.05 * sigma
    # the median of chi-square variances sits a little below the mean: within the tolerance here
    assert abs(sp["rho"] - rho) < 0.04, (sp, rho)
    assert abs(sp["median"] - (-2.0)) < 0.15


def test_surface_spread_needs_enough_casters(esc):
    rng = np.random.default_rng(1)
    n, s, s2 = _casters(rng, 0.5, 1.0, n_casters=esc.SPREAD_MIN_CASTERS - 1)
    assert esc.surface_spread(n, s, s2)["rho"] == 0.0
    n = np.full(50, esc.SPREAD_MIN_CELLS - 1)  # too few cells each
    assert esc.surface_spread(n, np.zeros(50), np.ones(50) * 100)["casters"] == 0


def test_effective_evidence_is_the_design_effect(esc):
    n = np.array([9.0, 90.0, 900.0, 90000.0])
    s = -1.0 * n  # mean -1 per cell
    assert np.allclose(esc.effective_evidence(n, s, 0.0), s / 9.0)  # independent: S / 9
    rho = 0.2
    e = esc.effective_evidence(n, s, rho)
    k = n / 9.0
    assert np.allclose(e, -k / (1.0 + (k - 1.0) * rho))
    assert e[0] == -1.0  # one observation: unchanged
    assert abs(e[-1] - (-1.0 / rho)) < 0.01 * (1.0 / rho)  # at most 1 / rho observations however many cells
    assert np.all(np.diff(e) < 0)  # more cells still weigh more


def test_squared_classifier_gives_the_squared_ratios(esc):
    # caster_sums' trick: a classifier whose per-bin log ratio r is -r^2 makes the missing-shadow
    # sums' -(log odds - prior) equal r^2
    import dataclasses

    from offnadir.change.shadow_observed import calibrate

    rng = np.random.default_rng(3)
    codes = np.full((64, 64), 100, np.uint8)
    codes[:, :32] = 0
    x = np.where(codes == 0, 40.0, 120.0) + rng.normal(0, 25.0, codes.shape)
    clf = calibrate(x, codes, np.ones(codes.shape, bool))
    sq = dataclasses.replace(clf, log_lr=tuple(-v * v for v in clf.log_lr))
    v = x.ravel()
    llr = -(clf.cell_log_odds(v) - clf.prior)
    llr2 = -(sq.cell_log_odds(v) - sq.prior)
    assert np.allclose(llr2, llr**2)
    assert math.isclose(float(np.sum(llr2)), float(np.sum(llr * llr)))
