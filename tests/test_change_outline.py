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
    np.testing.assert_allclose(s, [n, sb, st, ne, eb, et], rtol=1e-12)


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
                     outline=np.vstack([s, np.zeros((1, 6))]))
    value, score = CRITERIA["outline"](tb, ChangeOptions())
    assert (score[0] >= 0.5) == changed
    assert score[1] == 0.0 and value[1] == 0.0
    assert getattr(CRITERIA["outline"], "own_evidence", False)  # no radiometric gate (used = 0 above)


def test_outline_is_a_default_criterion():
    assert "outline" in ChangeOptions().criteria
