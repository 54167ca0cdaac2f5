"""longer_shadow: the fringe of a roof's predicted shadow, and its evidence of a raise."""

import math

import numpy as np

from offnadir.change import longer_shadow as LS
from offnadir.change import shadow_observed as SO
from offnadir.change.sun_kernels import caster_distances

CELL, AZ, EL, TOL, MAXD = 0.5, math.radians(180.0), math.radians(45.0), 0.5, 200.0


def _scene(raise_b: float, seed: int = 0):
    """Flat ground with two 8 m boxes (labels 1 and 2); the target shows box 2 raised by ``raise_b``."""
    h = np.zeros((128, 128))
    lab = np.zeros(h.shape, np.int64)
    lab[60:80, 20:50] = 1
    lab[60:80, 70:100] = 2
    h[lab > 0] = 8.0
    truth = h.copy()
    truth[lab == 2] += raise_b
    rise = math.tan(EL) * CELL
    di, dj = -math.cos(AZ), math.sin(AZ)
    d_pred, d_true = np.empty(h.shape), np.empty(h.shape)
    caster_distances(h, rise, di, dj, TOL, MAXD, d_pred)
    caster_distances(truth, rise, di, dj, TOL, MAXD, d_true)
    rng = np.random.default_rng(seed)
    x = np.where(d_true > 0, 0.2, 0.8) + rng.normal(0, 0.05, h.shape)
    codes = np.where(d_pred > 0, 0, 100).astype(np.uint8)
    usable = np.ones(h.shape, bool)
    return h, lab, codes, usable, x, d_pred


def test_fringe_lies_just_beyond_the_predicted_edge():
    h, lab, codes, usable, x, d_pred = _scene(0.0)
    ii, jj, lc = LS.fringe(h, lab, codes, usable, CELL, AZ, EL, TOL, MAXD)
    assert set(np.unique(lc)) == {1, 2}
    # the sun is in the south: shadows reach north (smaller rows) of the boxes' row 60, 16 cells for 8 m
    # at 45 deg; the fringe is the next BAND_CELLS rows, less the one cell of margin at the edge
    edge = 60 - 8.0 / (math.tan(EL) * CELL)
    assert ii.min() >= edge - LS.BAND_CELLS - 1 and ii.max() <= edge - 1
    assert np.all(d_pred[ii, jj] < 0) and np.all(codes[ii, jj] == 100)


def test_raised_roof_longer_shadow_is_evidence_unchanged_is_not():
    h, lab, codes, usable, x, _ = _scene(4.0)
    clf = SO.calibrate(x, codes, usable)
    assert clf is not None
    ids, n, s = LS.fringe_sums(h, lab, codes, usable, x, clf, CELL, AZ, EL, TOL, MAXD)
    assert list(ids) == [1, 2] and np.all(n > 10)
    assert s[0] < 0 < s[1]  # box 1's fringe is lit ground, box 2's is its grown shadow
    p = LS.decide(n, s, clf)
    assert p[1] >= 0.5 > p[0]


def test_no_raise_no_evidence():
    h, lab, codes, usable, x, _ = _scene(0.0, seed=1)
    clf = SO.calibrate(x, codes, usable)
    ids, n, s = LS.fringe_sums(h, lab, codes, usable, x, clf, CELL, AZ, EL, TOL, MAXD)
    assert np.all(s < 0)
    assert np.all(LS.decide(n, s, clf) < 0.5)
    assert LS.decide([], [], clf).shape == (0,)
    assert np.all(LS.decide(n, -s, None) == 0)  # no classifier: no midpoint, nothing decided
