"""The near-sensor rim test (offnadir.change.outline and the ``outline`` criterion): a roof raised
between the dates shows its facade where the base shows the roof's rim; an unchanged roof,
re-textured, keeps its rim."""

import numpy as np
import pytest

from offnadir.change import outline as OL
from offnadir.change.criteria import CRITERIA, TargetTable
from offnadir.change.options import ChangeOptions


def _scene(rng, raise_cells: int):
    """A 40 x 60 grid: textured ground (0.2), a flat roof (rows 10-29, cols 20-44) of brightness 0.6
    whose rim (first column) is a bright 0.9 parapet; the target sensor is to the west (step
    (0, -1)). The target is re-textured (multiplied by 1 + 0.2 N(0, 1)); with ``raise_cells`` > 0
    its first columns of the roof show the facade (0.4, nearly flat: a wall seen obliquely) and the
    roof, parapet included, moved that many cells east."""
    ny, nx = 40, 60
    lab = np.zeros((ny, nx), np.int64)
    lab[10:30, 20:45] = 7
    elev = lab > 0
    ground = 0.2 + 0.05 * rng.standard_normal((ny, nx))

    def roof_img(shift):
        x = ground.copy()
        x[10:30, 20:45] = 0.6 + 0.05 * rng.standard_normal((20, 25))
        x[10:30, 20 + shift] = 0.9  # the rim
        if shift:
            x[10:30, 20:20 + shift] = 0.4 + 0.002 * rng.standard_normal((20, shift))  # facade
        return x

    xb = roof_img(0)
    xt = roof_img(raise_cells) * (1.0 + 0.2 * rng.standard_normal((ny, nx)))  # re-textured
    if raise_cells:  # a wall seen obliquely: a few pixels of it stretched over the strip, little texture
        xt[10:30, 20:20 + raise_cells] = 0.4 + 0.002 * rng.standard_normal((20, raise_cells))
    ok = np.ones((ny, nx), bool)
    return lab, elev, xb, xt, ok


def _ratios(raise_cells, seed=0):
    lab, elev, xb, xt, ok = _scene(np.random.default_rng(seed), raise_cells)
    rowmap = np.where(lab > 0, 0, -1)
    s = OL.patch_sums(lab, elev, xb, xt, ok, (0, -1), (0, lab.shape[0], 0, lab.shape[1]), rowmap, 1)
    assert s[0, 3] == 20  # one rim pair per roof row
    assert s[0, 0] == 20 * 24  # every pair of the roof along the step
    b1, t1 = OL.rim_ratios(s)
    return b1[0], t1[0], s


def test_unchanged_roof_keeps_its_rim_raised_roof_loses_it():
    b1, t1, _ = _ratios(0)
    assert b1 > OL.EDGE_FACTOR and t1 > 1.0 / OL.EDGE_FACTOR
    assert OL.rim_lost(np.array([b1]), np.array([t1]))[0] < 1.0
    b1, t1, _ = _ratios(4)
    assert b1 > OL.EDGE_FACTOR and t1 < 1.0 / OL.EDGE_FACTOR
    assert OL.rim_lost(np.array([b1]), np.array([t1]))[0] > 1.0


def _shadow_roof(rng):
    """A 40 x 40 grid, a 20 x 20 roof (patch 3, cols 10-29), the target's sensor to the west (step (0, -1)),
    textured roof and ground lit at 200, 50 in a predicted shadow (codes 120 / 0)."""
    ny, nx = 40, 40
    lab = np.zeros((ny, nx), np.int64)
    lab[10:30, 10:30] = 3
    tex = lambda: 2.0 * rng.standard_normal((ny, nx))  # noqa: E731
    return lab, tex


def _lost(lab, xb, xt, lb=None, lt=None, reading="all"):
    elev, ok, rowmap = lab > 0, np.ones(lab.shape, bool), np.where(lab > 0, 0, -1)
    sums = OL.patch_sums(lab, elev, xb, xt, ok, (0, -1), (0, lab.shape[0], 0, lab.shape[1]), rowmap, 1, lb, lt)
    if reading == "criterion":  # lost over every pair and over each image's one-light pairs
        return float(OL.rim_lost_in_one_light(sums)[0])
    return float(OL.rim_lost(*OL.rim_ratios(sums, one_light=reading == "one"))[0])


def test_a_shadow_edge_along_the_base_rim_is_no_rim():
    """An unchanged roof in a neighbour's cast shadow whose edge runs along the rim in the base on half its rows
    (the outline column lit, the rest of the roof not; on the other rows the edge lies 5 columns in) and
    across the roof's middle in the target: over every pair the base reads a strong rim and the target none
    ("rim lost"); each image over its own one-light pairs reads the roof's texture, and the criterion's reading
    is not lost."""
    rng = np.random.default_rng(4)
    lab, tex = _shadow_roof(rng)
    lit_b = np.full(lab.shape, 120, np.uint8)
    lit_b[10:20, 11:30] = 0  # rows 10-19: the base's shadow edge between the rim and its inner neighbour
    lit_b[20:30, 15:30] = 0
    lit_t = np.full(lab.shape, 120, np.uint8)
    lit_t[10:30, 10:20] = 0  # the target's sun: the shadow over the roof's western half
    xb = np.where(lit_b > 0, 200.0, 50.0) + tex()
    xt = np.where(lit_t > 0, 200.0, 50.0) + tex()
    assert _lost(lab, xb, xt) > 1.0  # the shadow edges read as a rim lost
    assert _lost(lab, xb, xt, lit_b, lit_t, "one") < 1.0
    assert _lost(lab, xb, xt, lit_b, lit_t, "criterion") < 1.0
    # every rim pair straddling the base's edge: no base outline evidence in one light, the all-pairs reading
    lit_b1 = np.full(lab.shape, 120, np.uint8)
    lit_b1[10:30, 11:30] = 0
    xb1 = np.where(lit_b1 > 0, 200.0, 50.0) + tex()
    assert np.isnan(_lost(lab, xb1, xt, lit_b1, lit_t, "one"))
    assert _lost(lab, xb1, xt, lit_b1, lit_t, "criterion") == _lost(lab, xb1, xt)


def test_a_raised_roof_keeps_its_target_reading_where_only_the_base_straddles():
    """A raised roof whose base rim pairs straddle a neighbour's shadow edge on half its rows (the base's step
    there is the light's) while the target, its roof in one light, shows the raise's flat facade over the
    first columns: each image's own one-light pairs still read "rim lost" (the base's lit rim rows keep a real
    parapet, the target's every rim pair is the facade's). A pair left out of both ratios when either image
    straddles (s2's eleventh-round reading) would drop the target's facade steps on those rows too."""
    rng = np.random.default_rng(5)
    lab, tex = _shadow_roof(rng)
    lit_b = np.full(lab.shape, 120, np.uint8)
    lit_b[20:30, 11:30] = 0  # rows 20-29: the outline column lit, the roof beyond in a shadow
    xb = np.where(lit_b > 0, 100.0, 30.0) + tex()
    xb[10:20, 10] = 180.0  # rows 10-19, lit: a bright parapet, the base's rim
    lit_t = np.full(lab.shape, 120, np.uint8)
    xt = 100.0 + tex()
    xt[10:30, 10:13] = 60.0 + 0.01 * rng.standard_normal((20, 3))  # the new floors' facade
    assert _lost(lab, xb, xt) > 1.0
    assert _lost(lab, xb, xt, lit_b, lit_t, "one") > 1.0
    assert _lost(lab, xb, xt, lit_b, lit_t, "criterion") > 1.0
    # the target with no prediction (no sun): every pair, the same reading
    assert _lost(lab, xb, xt, lit_b, None, "criterion") > 1.0


def test_an_unchanged_roof_without_a_rim_stays_without_one_in_one_light():
    """Left out, the straddling pairs lower a roof's mean step and raise the base ratio of a roof without a
    rim; the criterion's conjunction with the all-pairs reading keeps it not lost."""
    rng = np.random.default_rng(6)
    lab, tex = _shadow_roof(rng)
    lit_b = np.full(lab.shape, 120, np.uint8)
    lit_b[10:30, 20:30] = 0  # a shadow edge across the roof's middle: big steps in the base's mean only
    xb = np.where(lit_b > 0, 100.0, 30.0) + 6.0 * rng.standard_normal(lab.shape)
    xb[10:30, 10] += 15.0  # a faint rim
    xt = 100.0 + 6.0 * rng.standard_normal(lab.shape)
    xt[10:30, 10:12] = 100.0 + 0.5 * rng.standard_normal((20, 2))  # a flat target rim
    lit_t = np.full(lab.shape, 120, np.uint8)
    b_all, _ = OL.rim_ratios(OL.patch_sums(lab, lab > 0, xb, xt, np.ones(lab.shape, bool), (0, -1),
                                           (0, 40, 0, 40), np.where(lab > 0, 0, -1), 1, lit_b, lit_t))
    b_one, _ = OL.rim_ratios(OL.patch_sums(lab, lab > 0, xb, xt, np.ones(lab.shape, bool), (0, -1),
                                           (0, 40, 0, 40), np.where(lab > 0, 0, -1), 1, lit_b, lit_t),
                             one_light=True)
    assert b_all[0] < OL.EDGE_FACTOR < b_one[0]  # the base ratio rises without the light's steps in the mean
    assert _lost(lab, xb, xt) < 1.0
    assert _lost(lab, xb, xt, lit_b, lit_t, "criterion") < 1.0


def test_sums_match_a_direct_count():
    lab, elev, xb, xt, ok = _scene(np.random.default_rng(3), 3)
    ok[12, 30] = False  # an unobservable cell drops its two pairs
    rowmap = np.where(lab > 0, 0, -1)
    s = OL.patch_sums(lab, elev, xb, xt, ok, (0, -1), (0, 40, 0, 60), rowmap, 1)[0]
    n = sb = st = ne = eb = et = 0.0
    for i in range(40):
        for j in range(1, 60):  # pair (c, c - step) = (j, j + 1) for step (0, -1)
            if j + 1 >= 60 or lab[i, j] != 7 or lab[i, j + 1] != 7 or not (ok[i, j] and ok[i, j + 1]):
                continue
            db, dt = abs(xb[i, j + 1] - xb[i, j]), abs(xt[i, j + 1] - xt[i, j])
            n, sb, st = n + 1, sb + db, st + dt
            if lab[i, j - 1] != 7:
                ne, eb, et = ne + 1, eb + db, et + dt
    # no light known: each image's one-light columns are its every-pair ones
    np.testing.assert_allclose(s, [n, sb, st, ne, eb, et, n, sb, ne, eb, n, st, ne, et], rtol=1e-12)


def test_sensor_step_from_parallax_offsets():
    from offnadir.change.tileio import parallax_offsets

    assert OL.sensor_step(*parallax_offsets(270.0, 25.0, 20.0, 0.5)) == (0, -1)  # sensor to the west
    assert OL.sensor_step(*parallax_offsets(0.0, 25.0, 20.0, 0.5)) == (-1, 0)  # north: rows decrease
    assert OL.sensor_step(*parallax_offsets(135.0, 25.0, 20.0, 0.5)) == (1, 1)
    assert OL.sensor_step(*parallax_offsets(float("nan"), 25.0, 20.0, 0.5)) is None


@pytest.mark.parametrize("raise_cells,changed", [(0, False), (4, True)])
def test_outline_criterion_scores_the_patch(raise_cells, changed):
    _, _, s = _ratios(raise_cells, seed=5)
    n = 2  # a second, ground patch without rim sums
    tb = TargetTable(ids=np.array([1, 2]), n_cells=np.array([500.0, 300.0]), elevated=np.array([True, False]),
                     used=np.array([0.0, 300.0]), mean_rob=np.zeros((n, 1)), frac_above=np.zeros((n, 1)),
                     c0=np.zeros((n, 6)), profile=None, shift_cells=np.zeros(0),
                     outline=np.vstack([s, np.zeros((1, s.shape[1]))]))
    value, score = CRITERIA["outline"](tb, ChangeOptions())
    assert (score[0] >= 0.5) == changed
    assert score[1] == 0.0 and value[1] == 0.0
    assert getattr(CRITERIA["outline"], "own_evidence", False)  # no radiometric gate (used = 0 above)


def test_outline_is_a_default_criterion():
    assert "outline" in ChangeOptions().criteria
