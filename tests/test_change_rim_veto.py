"""The structural (parallax) criterion is set aside on a roof whose near-sensor rim is there at both
dates (offnadir.change.criteria.rim_contradicts): a height change moves the rim, a chance
correlation of a re-covered roof's texture with a shifted copy does not."""

import numpy as np
import pytest

from offnadir.change import outline as OL
from offnadir.change.criteria import CRITERIA, RIM_MOVE_CELLS, TargetTable, rim_contradicts
from offnadir.change.options import ChangeOptions

SHIFTS = np.arange(-8, 9, dtype=np.float64)  # signed offsets (cells) along the parallax direction


def _sums(x, y):
    return np.array([len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()])


def _table(move_cells, rim_b, rim_t, seed=0, n=400):
    """One elevated patch whose target texture is the base's moved by ``move_cells`` (the parallax
    profile peaks there; at zero offset the two are unrelated), with outline sums giving the rim
    ratios ``rim_b``/``rim_t`` (None: no outline sums)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    prof = np.zeros((1, len(SHIFTS), 6))
    for k, s in enumerate(SHIFTS):
        y = x + 0.3 * rng.standard_normal(n) if abs(s - move_cells) <= 1 else rng.standard_normal(n)
        prof[0, k] = _sums(x, y)
    c0 = _sums(x, rng.standard_normal(n))[None]
    outline = None
    if rim_b is not None:  # (n_all, sum_all b, sum_all t, n_edge, sum_edge b, sum_edge t): roof mean step 1
        outline = np.array([[200.0, 200.0, 200.0, 20.0, 20.0 * rim_b, 20.0 * rim_t]])
    return TargetTable(ids=np.array([1]), n_cells=np.array([float(n)]), elevated=np.array([True]),
                       used=np.array([float(n)]), mean_rob=np.zeros((1, 1)), frac_above=np.zeros((1, 1)),
                       c0=c0, profile=prof, shift_cells=SHIFTS, cell=0.5, outline=outline)


def _structural(tb):
    _, score = CRITERIA["structural"](tb, ChangeOptions())
    return float(score[0])


def test_a_move_fires_without_a_rim_at_both_dates():
    assert _structural(_table(5, None, None)) >= 0.5  # no outline sums: the criterion as before
    assert _structural(_table(5, 3.0, 0.3)) >= 0.5  # the rim went (a raise): consistent
    assert _structural(_table(-5, 1.0, 3.0)) >= 0.5  # no rim in the base to speak for the roof


@pytest.mark.parametrize("move", [5, -5])
def test_a_rim_kept_at_both_dates_contradicts_a_move(move):
    tb = _table(move, 3.0, 3.0)
    assert _structural(tb) == 0.0
    assert rim_contradicts(tb, np.array([float(move)]))[0]


def test_a_small_move_keeps_the_edge_in_the_first_step():
    # a move under RIM_MOVE_CELLS leaves the moved edge inside the rim's first pair: no contradiction
    tb = _table(3, 3.0, 3.0)  # as a roof of the default simulator raised by a 3-cell move
    assert 3 < RIM_MOVE_CELLS
    assert _structural(tb) >= 0.5
    assert not rim_contradicts(tb, np.array([3.0]))[0]


def test_rim_ratios_of_the_table_are_the_outline_module_s():
    tb = _table(5, 3.0, 2.5)
    b1, t1 = OL.rim_ratios(tb.outline)
    np.testing.assert_allclose([b1[0], t1[0]], [3.0, 2.5])
    assert rim_contradicts(tb, np.array([5.0]))[0]
    # a ground patch never: no rim, no roof to move
    tb.elevated = np.array([False])
    assert not rim_contradicts(tb, np.array([5.0]))[0]


def test_decide_reports_the_roofs_whose_rim_stayed():
    from offnadir.change.decide import decide

    kept, lost = _table(5, 3.0, 3.0), _table(5, 3.0, 0.3)
    assert decide(kept, ChangeOptions())["rim_kept"].tolist() == [True]
    assert decide(lost, ChangeOptions())["rim_kept"].tolist() == [False]


def test_rim_witness_keeps_the_census_probability_below_the_decision():
    from offnadir.change.cells import DECISION_P, either, paint
    from offnadir.change.outline import rim_witness

    lab = np.array([[1, 1, 2], [1, 2, 0]])
    ids = np.array([1, 2])
    p = np.array([[0.9, 0.3, 0.95], [np.nan, 0.6, np.nan]])
    out = rim_witness(p, paint(lab, ids, np.array([1.0, 0.0])))  # patch 1's rim stayed
    assert out[0, 0] < DECISION_P and out[0, 0] > 0.49  # below the decision, above the others below it
    assert np.float32(out[0, 0]) < DECISION_P  # also as stored (float32)
    assert out[0, 1] == 0.3 and np.isnan(out[1, 0])  # lower values and NaN untouched
    np.testing.assert_array_equal(out[:, 2], p[:, 2])  # patch 2 and the cell without a patch
    assert out[1, 1] == 0.6
    # a patch criterion applied after the witness still decides (a re-roof's spectral change)
    assert either(out, paint(lab, ids, np.array([0.8, 0.0])))[0, 0] == 0.8
