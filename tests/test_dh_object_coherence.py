"""The small-object coherence of the same-date height change (``dh_evidence.object_coherent``): a
crown smaller than the sweep window whose cells all answer "lower" is kept although its window
quadrant does not share the answer; a streak crossing a small object is not; an object larger than
the window is left to the window rule; ``coherent_dh`` with objects does not depend on the tiling."""

import numpy as np
import pytest

from offnadir.change.dh_evidence import coherent_dh, coherent_mask, dh_answer, object_coherent, small_object_removal
from offnadir.change.tileio import MemoryIO
from offnadir.cube.plan import Tile


def _crowns(seed=0, n=(70, 90)):
    """Unchanged ground (dh ~0), a cut crown (7x7 DSM-elevated cells, dh -8 m, one cell missed),
    an unchanged small roof (6x6) crossed by a false peak's streak (2 cells wide, +9 m, along the
    baseline), an unchanged large roof (20x30, dh 0), another cut crown at an image corner and an
    unchanged crown (5x5) whose window peaked 20 m higher."""
    rng = np.random.default_rng(seed)
    dh = rng.normal(0.0, 0.2, n)
    elev = np.zeros(n, bool)
    elev[10:17, 10:17] = True
    dh[10:17, 10:17] = -8.0 + rng.normal(0.0, 0.5, (7, 7))
    dh[12, 13] = -1.0  # the sweep missed one cell of the crown
    elev[40:46, 20:26] = True
    dh[42:44, 5:60] = 9.0
    elev[30:50, 50:80] = True
    elev[0:5, 85:90] = True
    dh[0:5, 85:90] = -6.0
    elev[55:60, 5:10] = True
    dh[55:60, 5:10] = 20.0
    return dh, elev


def test_a_cut_crown_is_kept_by_its_object_not_by_its_window():
    dh, elev = _crowns()
    ans = dh_answer(dh, 2.5)
    window = coherent_mask(ans, 6, 0.5)
    obj = object_coherent(ans, elev, 6)
    crown = np.zeros(dh.shape, bool)
    crown[10:17, 10:17] = True
    crown[12, 13] = False
    assert not window[crown].any()  # 48 cells of a 169-cell window: below the quadrant (49)
    assert obj[crown].all() and not obj[12, 13]  # the crown's answer, not the missed cell's
    assert obj[0:5, 85:90].all()  # clipped by the image edge: still one small object
    streak_on_roof = np.zeros(dh.shape, bool)
    streak_on_roof[42:44, 20:26] = True
    assert not obj[streak_on_roof].any()  # 12 of the roof's 36 cells: a streak, not the object's answer
    assert not (window | obj)[42:44, 5:60].any()
    assert not obj[30:50, 50:80].any()  # larger than the window: the window rule's object
    assert obj[55:60, 5:10].all()  # the object test alone keeps the crown's false rise...
    removal = small_object_removal(ans, elev, 6)
    assert not removal[55:60, 5:10].any()  # ...its removal rule does not: a small object's rise
    np.testing.assert_array_equal(removal, obj & (ans == -1))  # cannot win its window (module doc)


def test_labels_and_a_share():
    ans = np.zeros((20, 20))
    lab = np.zeros((20, 20), int)
    lab[2:6, 2:6] = 3
    ans[2:6, 2:6] = 1
    ans[2:4, 2:6] = 0  # half the patch answers "higher"
    assert object_coherent(ans, lab, 3, 0.5)[4:6, 2:6].all()
    assert not object_coherent(ans, lab, 3, 0.6)[4:6, 2:6].any()
    ans[5, 5] = np.nan  # holes count against, and stay unmeasured
    assert not object_coherent(ans, lab, 3, 0.5)[4:6, 2:6].any()
    assert not object_coherent(ans, np.zeros((20, 20), bool), 3).any()


@pytest.mark.parametrize("size", [17, 29])
def test_coherent_dh_with_objects_does_not_depend_on_the_tiling(size):
    ny, nx = 70, 90
    a, elev = _crowns(1)
    b, _ = _crowns(2)
    b[20:34, 30:44] = -7.0  # a 14x14 elevated block: one cell more than the window, not small
    elev[20:34, 30:44] = True
    dh = np.stack([np.full((ny, nx), np.nan), a, b]).astype(np.float32)
    io = MemoryIO({"dh": dh, "elevated": elev.astype(np.uint8)})
    whole = coherent_dh(io, Tile(0, 0, 0, ny, 0, nx), (ny, nx), 2.5, objects=True)
    plain = coherent_dh(io, Tile(0, 0, 0, ny, 0, nx), (ny, nx), 2.5, objects=False)
    assert np.isfinite(whole[1, 10:17, 10:17]).all()  # the crown by its object, the missed cell by its window
    assert np.isfinite(plain[1, 10:17, 10:17]).sum() == 1
    assert (np.isfinite(whole) >= np.isfinite(plain)).all()
    assert np.isnan(whole[1:, 55:60, 5:10]).all()  # the small crown's false rise stays unmeasured
    tiled = np.full(dh.shape, -1.0)
    for i, i0 in enumerate(range(0, ny, size)):
        for j, j0 in enumerate(range(0, nx, size)):
            t = Tile(i, j, i0, min(i0 + size, ny), j0, min(j0 + size, nx))
            tiled[:, t.i0:t.i1, t.j0:t.j1] = coherent_dh(io, t, (ny, nx), 2.5, objects=True)
    np.testing.assert_array_equal(tiled, whole)


def test_the_change_stage_weighs_a_cut_crowns_dh_by_its_object(monkeypatch):
    """A stereo cube (tests/test_dh_coherence's) whose DSM holds a small crown (6x6 cells, +8 m)
    that the same-date dh measures 8 m lower: its dh weighs in with the object rule, not with the
    window rule alone (36 cells of a 169-cell window, the quadrant is 49); the store records the rule. (The images are
    unchanged, so the structural probability sits at its clip and the dh's only ties it, 0.5:
    dh_evidence.combine; what is checked is that the crown's dh reaches the decision.)"""
    import json
    import warnings

    import dask

    from offnadir.change import detect
    from offnadir.change import dh_evidence as DE
    from test_dh_coherence import _stereo_cube

    ds = _stereo_cube()
    ds["dsm"].values[70:76, 70:76] += 8.0
    ds["dh"].values[1, 70:76, 70:76] = -8.0
    out = {}
    for rule in (False, True):
        monkeypatch.setattr(DE, "OBJECT_RULE", rule)
        with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
            warnings.simplefilter("ignore")
            out[rule] = detect(ds.copy(deep=True), chunk=48, shadows=False)
    assert (out[False]["elevated"].values[70:76, 70:76] == 1).all()
    assert (out[False]["probability"].values[1, 70:76, 70:76] < 0.01).all()  # the structural evidence alone
    assert (out[True]["probability"].values[1, 70:76, 70:76] > 0.49).all()  # and the crown's dh
    block = (1, slice(30, 60), slice(30, 60))  # the large raised block: the window rule's, unchanged
    np.testing.assert_array_equal(out[True]["change"].values[block], out[False]["change"].values[block])
    rule = json.loads(out[True].attrs["change_calibration"])["dh_coherence"]
    assert rule["small_objects"]["min_share"] == DE.OBJECT_MIN_SHARE
