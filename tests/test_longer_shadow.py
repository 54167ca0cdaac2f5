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


def test_tile_sums_do_not_depend_on_the_tiling_and_feed_the_decision():
    from offnadir.change import missing_shadow as MS
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    h, lab, codes, usable, x, _ = _scene(4.0, seed=2)
    x0 = _scene(0.0, seed=3)[4]  # the base: the DSM's date, same sun
    n = h.shape[0]
    clf = SO.calibrate(x, codes, usable)
    arrays = {"dsm": h.astype(np.float32), "illumination": np.stack([codes, codes]), "patch": lab,
              "elevated": (lab > 0).astype(np.uint8), "visible": np.ones((2, n, n), np.uint8),
              "value": np.stack([x0, x])[:, None].astype(np.float32)}
    ctx = Context(shape=(n, n), n_images=2, n_bands=1, cell=CELL, opts=ChangeOptions(), targets=(1,),
                  h_range=(0.0, 8.0), sun=((AZ, EL),) * 2, shadow_classes=(clf, clf))
    io = MemoryIO(arrays)
    whole = LS.tile_sums(io, ctx, Tile(0, 0, 0, n, 0, n))
    ids, nn, s = LS.fringe_sums(h, lab, codes, usable, arrays["value"][1, 0], clf, CELL, AZ, EL,
                                ChangeOptions().sun_tolerance, float(n))
    assert np.array_equal(whole["ids"], ids)
    assert np.array_equal(whole["rows"]["lsh_n"][:, 1], nn) and np.allclose(whole["rows"]["lsh_s"][:, 1], s)
    step = 40
    parts = [LS.tile_sums(io, ctx, Tile(a // step, b // step, a, min(a + step, n), b, min(b + step, n)))
             for a in range(0, n, step) for b in range(0, n, step)]
    tiled = MS.add_sums(*parts)
    assert np.array_equal(whole["ids"], tiled["ids"])
    for k in ("lsh_n", "lsh_s"):
        assert np.allclose(whole["rows"][k], tiled["rows"][k], rtol=0, atol=1e-9)
    assert np.all(whole["rows"]["lsh_n"][:, 0] > 0) and np.all(whole["rows"]["lsh_s"][:, 0] < 0)  # base: lit
    # beside the missing-shadow columns (a table without them gets zeros), and into the decision
    both = MS.add_sums({"ids": np.array([1, 3]), "rows": {"msh_n": np.ones((2, 2)), "msh_llr": np.zeros((2, 2))}},
                       tiled)
    assert list(both["ids"]) == [1, 2, 3] and both["rows"]["lsh_n"][2, 1] == 0 and both["rows"]["msh_n"][1, 1] == 0
    report = [{}, {}]
    gone = LS.decide_targets(both, {1: (np.array([1, 2, 3]), np.array([0.0, 0.0, 0.7]))}, (1,), (clf, clf),
                             report=report)
    ids_g, p = gone[1]
    assert list(ids_g) == [1, 2, 3]
    assert p[0] < 0.5 <= p[1] and p[2] == 0.7  # box 2 raised; the missing-shadow decision of 3 kept
    assert report[1]["longer_shadows"]["casters_raised"] == 1 and report[1]["longer_shadows"]["shadow_witness"]



def test_a_shadow_beyond_the_prediction_at_both_dates_is_not_a_raise():
    """The DSM lower than the caster (the base shows the same longer shadow): the base's fringe is
    shadowed too, ``-S_0`` rejects it."""
    h, lab, codes, usable, x, _ = _scene(4.0, seed=4)
    x0 = _scene(4.0, seed=5)[4]
    clf = SO.calibrate(x, codes, usable)
    ids, n, s = LS.fringe_sums(h, lab, codes, usable, x, clf, CELL, AZ, EL, TOL, MAXD)
    _, n0, s0 = LS.fringe_sums(h, lab, codes, usable, x0, clf, CELL, AZ, EL, TOL, MAXD)
    assert LS.decide(n, s, clf)[1] >= 0.5 > LS.decide(n, s, clf, n0, s0)[1]


def test_a_classifier_that_misses_most_shadows_is_no_witness():
    import dataclasses

    h, lab, codes, usable, x, _ = _scene(4.0, seed=6)
    clf = SO.calibrate(x, codes, usable)
    ids, n, s = LS.fringe_sums(h, lab, codes, usable, x, clf, CELL, AZ, EL, TOL, MAXD)
    assert LS.decide(n, s, clf)[1] >= 0.5
    weak = dataclasses.replace(clf, accuracy_shadow=LS.SHADOW_WITNESS / 2)
    assert np.all(LS.decide(n, s, weak) == 0)


def test_fringe_of_a_core_is_the_window_fringe_restricted_to_it():
    """The core-only fringe (filters on the core's crop, the window's far side NaN to the march) is
    the whole window's fringe cut to the core: same cells, same order, same casters, for suns from
    every side (the axis-aligned ones included) and cores touching the window's edges."""
    rng = np.random.default_rng(5)
    n = 96
    h = rng.normal(0.0, 0.3, (n, n))
    lab = np.zeros((n, n), np.int64)
    for k in range(1, 13):  # boxes of 3-12 m, some cut by the window's edges
        i, j = rng.integers(-4, n - 4, 2)
        a, b = rng.integers(5, 16, 2)
        lab[max(i, 0):i + a, max(j, 0):j + b] = k
        h[max(i, 0):i + a, max(j, 0):j + b] += rng.uniform(3.0, 12.0)
    h[rng.random((n, n)) < 0.002] = np.nan
    usable = rng.random((n, n)) > 0.03
    found = 0
    for az_deg in (0.0, 37.0, 90.0, 150.0, 180.0, 221.0, 270.0, 333.0):
        az, el = math.radians(az_deg), math.radians(rng.uniform(30.0, 60.0))
        d = np.empty((n, n))
        caster_distances(np.ascontiguousarray(h), math.tan(el) * CELL, -math.cos(az), math.sin(az), TOL, 40.0, d)
        codes = np.where(np.isnan(h), 255, np.where(d > 0, 0, 100)).astype(np.uint8)
        wi, wj, wl = LS.fringe(h, lab, codes, usable, CELL, az, el, TOL, 40.0)
        for core in ((20, 60, 30, 70), (0, 50, 40, n), (45, n, 0, 33), (0, n, 0, n), (10, 11, 5, 90)):
            a0, a1, b0, b1 = core
            sel = (wi >= a0) & (wi < a1) & (wj >= b0) & (wj < b1)
            ci, cj, cl = LS.fringe(h, lab, codes, usable, CELL, az, el, TOL, 40.0, core=core)
            assert np.array_equal(ci, wi[sel]) and np.array_equal(cj, wj[sel]) and np.array_equal(cl, wl[sel])
            found += int(sel.sum())
    assert found > 100  # the scenes have fringes to compare


def test_core_distances_at_the_candidates_are_the_whole_window_march():
    """_core_distances (the blocked passes at a block's candidate cells, skipped per block and per
    row from the candidates' lowest tops) gives caster_distances' numbers at every candidate, where
    wide boxes put the north and south edges inside the 8-row blocks (roof rows and ground rows in
    one block) and candidates lie on roofs and on the ground of the same blocks."""
    rng = np.random.default_rng(7)
    n = 96
    h = rng.normal(0.0, 0.05, (n, n))
    for _ in range(6):
        i = 8 * rng.integers(0, n // 8 - 3) + rng.integers(3, 6)
        j = rng.integers(0, n - 48)
        h[i:i + 8 * rng.integers(1, 3), j:j + rng.integers(34, 48)] += rng.uniform(4.0, 20.0)
    h[rng.random((n, n)) < 0.005] = np.nan
    cand = rng.random((n, n)) < 0.3
    hits = 0
    for az_deg in (0.0, 20.0, 160.0, 180.0, 200.0, 270.0):
        az, el = math.radians(az_deg), math.radians(rng.uniform(25.0, 50.0))
        rise, di, dj = math.tan(el) * CELL, -math.cos(az), math.sin(az)
        want = np.empty((n, n))
        caster_distances(h, rise, di, dj, TOL, 40.0, want)
        got = LS._core_distances(h, cand, rise, di, dj, TOL, 40.0)
        np.testing.assert_array_equal(got[cand], want[cand])
        hits += int((want[cand] > 0).sum())
    assert hits > 200  # candidates in shadow, not only sunlit ones
