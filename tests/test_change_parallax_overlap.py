"""The structural (parallax) criterion searches only offsets at which the patch overlaps its shifted
copy on at least MIN_OVERLAP of its zero-offset pairs (offnadir.change.criteria): a height change
moves a roof's whole texture, a chance match over a sliver at the patch's far ends does not."""

import numpy as np
import pytest

from offnadir.change.criteria import CRITERIA, MIN_OVERLAP, TargetTable
from offnadir.change.options import ChangeOptions

SHIFTS = np.arange(-23, 24, dtype=np.float64)  # signed offsets (cells) along the parallax direction
N0 = 400  # pairs at zero offset: the patch's compared interior cells
LENGTH = 24.0  # the patch's extent along the parallax direction (cells): pairs fall as 1 - |s| / L


def _sums(x, y):
    return np.array([len(x), x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()])


def _pairs(s):
    return int(round(N0 * max(0.0, 1.0 - abs(s) / LENGTH)))


def _table(matches, seed=0, cell=0.5):
    """One elevated patch: at every offset the overlap's pairs (``_pairs``) are unrelated noise,
    except within one cell of each offset in ``matches``, where the target is the base plus 30 %
    noise (a texture moved by that offset). At zero offset the two are unrelated."""
    rng = np.random.default_rng(seed)
    prof = np.zeros((1, len(SHIFTS), 6))
    for k, s in enumerate(SHIFTS):
        n = _pairs(s)
        if n < 3:
            continue
        x = rng.standard_normal(n)
        near = any(abs(s - m) <= 1 for m in matches)
        y = x + 0.3 * rng.standard_normal(n) if near else rng.standard_normal(n)
        prof[0, k] = _sums(x, y)
    x0 = rng.standard_normal(N0)
    c0 = _sums(x0, rng.standard_normal(N0))[None]
    return TargetTable(ids=np.array([1]), n_cells=np.array([float(N0)]), elevated=np.array([True]),
                       used=np.array([float(N0)]), mean_rob=np.zeros((1, 1)), frac_above=np.zeros((1, 1)),
                       c0=c0, profile=prof, shift_cells=SHIFTS, cell=cell)


def _sparse(tb):
    """The same table with the profile as its non-empty (patch, offset) pairs (tile.sparse_profile's form)."""
    k = np.flatnonzero(tb.profile[0, :, 0] > 0)
    tb.profile_pairs = (np.zeros(len(k), np.int64), k, tb.profile[0, k])
    tb.profile_nk = tb.profile.shape[1]
    tb.profile_rows = np.array([0])
    tb.profile = None
    return tb


def _run(tb):
    value, score = CRITERIA["structural"](tb, ChangeOptions())
    return float(value[0]), float(score[0]), float(tb.extra["shift_cells"][0])


def test_the_overlap_of_the_test_offsets():
    # the scene of the tests: 18 cells of move keep 25 % of the pairs, 19 cells 21 %
    assert _pairs(18) / N0 >= MIN_OVERLAP > _pairs(19) / N0


@pytest.mark.parametrize("sparse", [False, True])
def test_a_move_over_most_of_the_patch_fires(sparse):
    tb = _table([8])
    tb = _sparse(tb) if sparse else tb
    value, score, shift = _run(tb)
    assert score >= 0.5 and shift == 8.0


@pytest.mark.parametrize("sparse", [False, True])
def test_a_match_over_a_sliver_of_the_patch_is_not_a_move(sparse):
    # the best correlation lies at 20 cells, where the shifted copy overlaps 17 % of the patch
    tb = _table([20])
    assert tb.profile[0, SHIFTS == 20, 0][0] < MIN_OVERLAP * N0
    tb = _sparse(tb) if sparse else tb
    value, score, shift = _run(tb)
    assert score == 0.0 and value == 0.0
    assert abs(shift) < 19  # the best offset was sought where the overlap speaks for the patch


def test_a_real_move_is_found_beside_a_sliver_match():
    # a sliver match at -20 and a real move at +6: the move is the one found
    value, score, shift = _run(_table([-20, 6]))
    assert score >= 0.5 and shift == 6.0


def test_without_the_overlap_rule_the_sliver_would_fire(monkeypatch):
    # the test's sliver is a match the criterion would take were every offset searched
    import offnadir.change.criteria as CR

    monkeypatch.setattr(CR, "MIN_OVERLAP", 0.0)
    value, score, shift = _run(_table([20]))
    assert score >= 0.5 and shift == 20.0


def test_a_peak_beside_the_sliver_must_still_stand_out_of_it(monkeypatch):
    # 1 m cells (peak width 3 cells): a texture matching itself from 16 to 21 cells, a plateau
    # reaching into the sliver (beyond 18 cells); its best searchable offset (16-18) has a side in
    # the sliver (19-21) as high as itself: no peak, so no move
    tb = _table([17, 18, 19, 20], cell=1.0)
    value, score, shift = _run(tb)
    assert 16 <= shift <= 18 and score < 0.5
    # were the sides judged on the searchable offsets only, the plateau's edge would be a move
    import offnadir.change.criteria as CR

    real = CR._profile_corr
    monkeypatch.setattr(CR, "_profile_corr", lambda tb, m, nk, need: real(tb, m, nk, np.maximum(
        need, MIN_OVERLAP * tb.c0[0, 0])))
    value, score, shift = _run(_table([17, 18, 19, 20], cell=1.0))
    assert score >= 0.5
    # a peak at 12 cells, with its sides at 9 and 15 low: a move
    value, score, shift = _run(_table([12], cell=1.0))
    assert score >= 0.5 and shift == 12.0
