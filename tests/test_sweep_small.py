"""The height sweep's second, smaller window at a changed object's edge (:mod:`offnadir.cube.sweep_small`)."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.cube import sweep
from offnadir.cube import sweep_small as SS


def _planted(n=60):
    """A +9 m block (rows/cols 10..39) whose west band (cols 10..14) the large window kept at 0, on
    zero ground, and a one-cell streak of +9 m (a false peak) far from it."""
    dh = np.zeros((n, n))
    dh[10:40, 10:40] = 9.0
    dh[10:40, 10:15] = 0.0
    dh[52, 5:50] = 9.0
    return dh


def test_suspects_are_the_zeros_beside_a_coherent_change():
    dh = _planted()
    sus, nb = SS.edge_suspects(dh, 2.5, 6)
    # the band's cells whose window holds the quadrant of the measured block (the band's west part does not:
    # a band a window wide keeps some zeros; n6 ninth round)
    assert sus[25, 12:15].all() and np.allclose(nb[25, 12:15], 9.0) and not sus[25, 10:12].any()
    assert sus[8, 25] and nb[8, 25] == 9.0  # ground just outside the north edge: the small window decides there
    assert not sus[25, 7] and not sus[2, 25] and not sus[5, 55]  # farther than the window's quadrant allows
    assert not sus[25, 20]  # a measured change is not a suspect
    assert not sus[50:55, 20:40].any()  # a streak is not coherent: nothing beside it is suspect
    dh[25, 12] = np.nan
    assert not SS.edge_suspects(dh, 2.5, 6)[0][25, 12]  # an unmeasured cell stays unmeasured


def test_only_a_beyond_answer_on_the_neighbours_side_is_taken():
    dh = _planted()
    core = (slice(0, 60), slice(0, 60))
    seen = {}

    def small(ys, xs):
        seen["n"] = ys.size
        d = np.full(ys.size, 8.5)  # beyond, on the neighbours' side (+9 m)
        d[xs == 12] = 1.0  # within: the zero stays
        d[xs == 13] = np.nan  # not measured: the zero stays
        d[xs == 14] = -8.0  # beyond on the other side: the zero stays
        d[ys == 8] = 4.0  # beyond, on the neighbours' side though lower than them: taken
        d[(ys == 8) & (xs == 30)] = -11.9  # beyond below the DSM: the zero stays
        return d, np.full(ys.size, 0.3), np.full(ys.size, 0.9)

    (ys, xs, d, sg, sc), fl, n = SS.at_edges(dh, core, 2.5, 6, 3.0, small)
    assert n[0] == seen["n"] > 0 and n[2] == ys.size and n[1] == n[3] == 0 == fl[0].size  # no DSM given: no narrow-roof test
    assert set(np.unique(xs[(ys >= 10) & (ys < 40)])) & {12, 13, 14} == set()
    assert (8, 25) in set(zip(ys, xs)) and (8, 30) not in set(zip(ys, xs))
    assert np.isin(d, (8.5, 4.0)).all() and (sg == 0.3).all() and (sc == 0.9).all()
    # tile coordinates: the same cells from a block whose core starts at (5, 5)
    (ys2, xs2, *_), _, _ = SS.at_edges(dh, (slice(5, 60), slice(5, 60)), 2.5, 6, 3.0, small)
    assert set(zip(ys2 + 5, xs2 + 5)) == {(y, x) for y, x in zip(ys, xs) if y >= 5 and x >= 5}


def _tower(n=60):
    """DSM: flat ground at 0 with a 29 m tower (rows 20..27, cols 20..27, narrower than the 13² window) and a
    30 x 30 flat 20 m block far from it; the large window measured the tower at the ground (-28 m) and the
    block's west part at -20 m (a demolition) and a flat ground patch at +9 m (a new roof)."""
    h = np.zeros((n, n))
    h[20:28, 20:28] = 29.0
    dh = np.zeros((n, n))
    dh[20:28, 20:28] = -28.0
    dh[45:58, 45:58] = 9.0  # far from any DSM step
    return h, dh


def test_narrow_roof_suspects_straddle_a_dsm_step():
    h, dh = _tower()
    sus = SS.narrow_suspects(dh, h, 2.5, 6)
    assert sus[20:28, 20:28].all()  # the tower's beyond answers: its windows hold the ground
    assert not sus[45:58, 45:58].any()  # beyond answers on flat DSM: no step, no suspicion
    assert not sus[10, 10] and not sus[18, 24]  # within answers are not narrow-roof suspects
    h2 = h.copy()
    h2[20:28, 20:28] = 2.0  # a step within the bound is no step
    assert not SS.narrow_suspects(dh, h2, 2.5, 6).any()
    dh[21, 21] = np.nan
    assert not SS.narrow_suspects(dh, h, 2.5, 6)[21, 21]


def test_narrow_roof_floors_sigma_only_where_the_small_window_rejects_the_height():
    h, dh = _tower()
    core = (slice(0, 60), slice(0, 60))
    seen = {}

    def small(ys, xs):  # the edge suspects' full sweep: nothing taken here
        seen["small"] = set(zip(ys, xs))
        return np.full(ys.size, np.nan), np.full(ys.size, np.nan), np.full(ys.size, np.nan)

    def firm(ys, xs):
        seen["firm"] = set(zip(ys, xs))
        return np.isin(ys, (20, 24, 25))  # the small window rejects -28 m on those rows only

    edge, (ys, xs, fl), n = SS.at_edges(dh, core, 2.5, 6, 3.0, small, h, 2.0, firm)
    tower = {(y, x) for y in range(20, 28) for x in range(20, 28)}
    assert seen["firm"] == tower and not (seen["small"] & tower)  # the narrow roof is read, not swept again
    assert set(zip(ys, xs)) == {(y, x) for y in (20, 24, 25) for x in range(20, 28)}
    assert n == [len(seen["small"]), 64, 0, 24] and edge[0].size == 0  # the large window's height is not replaced
    assert np.allclose(fl, 14.0)  # |dh| / se_factor
    (_, _, n_off) = SS.at_edges(dh, core, 2.5, 6, 3.0, small)
    assert n_off[1] == n_off[3] == 0  # without the DSM no narrow-roof test


def test_rejects_by_the_window_tests_margin():
    n = 49
    peak = 0.47
    tol = 2.0 * (1.0 - 0.5 ** 2) / 7.0  # two standard errors of a correlation of 0.5 over 49 cells
    s_at = np.array([0.5, 0.5, 0.5, 0.2, np.nan, 0.5])
    s_dsm = np.array([0.5 + tol + 0.01, 0.5 + tol - 0.01, 0.9, 0.45, 0.9, np.nan])
    # beats by the margin; within it (a tie); far better; better but no measurement (below the peak); NaN
    assert SS.rejects(s_dsm, s_at, n, 2.0, peak).tolist() == [True, False, True, False, False, False]


def test_halo_and_size():
    assert SS.halo(6, "off_level") == 18 and SS.halo(6, "window") == 18
    assert SS.halo(6, "region") == 6 and SS.halo(6, "prediction") == 6
    assert SS.SMALL_RADIUS < sweep.WINDOW_RADIUS
    # the smaller window's noise peak is wider, and still below a textured window's agreement
    from offnadir.cube.sweep_noise import noise_peak

    n = (2 * SS.SMALL_RADIUS + 1) ** 2
    assert noise_peak((2 * sweep.WINDOW_RADIUS + 1) ** 2, 150) < noise_peak(n, 150) < 0.5


@pytest.fixture(scope="module")
def pair_plan(tmp_path_factory):
    import dask

    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    root = tmp_path_factory.mktemp("sweep_small")
    a = simulate(root / "a", seed=3, size=96, target_view=(20.0, 270.0)).paths
    b = simulate(root / "b", seed=3, size=96, target_view=(20.0, 90.0)).paths
    with dask.config.set(scheduler="synchronous"):
        return plan_cube(a["dsm"], [a["target"], b["target"]], chunk=96, vertical_datum="ellipsoid")


def test_two_heights_equal_the_full_planes_agreement(pair_plan):
    """The two-height read, plane by plane on the listed cells' windows, equals the small window's
    correlation on the views sampled over the whole block at those planes and at the DSM."""
    from offnadir.cube import sweep_kernels as swk
    from offnadir.cube import sweep_views as SV
    from offnadir.cube.tile import height_block, lonlat_block

    plan = pair_plan
    geom = sweep.pair_geometry(plan, [0, 1])
    t = plan.tiles()[0]
    i0, i1, j0, j1 = sweep.block_bounds(plan, t, 6)
    h = np.ascontiguousarray(height_block(plan, i0, i1, j0, j1), dtype=np.float64)
    z0, n = sweep.height_range(plan.h_min, plan.h_max, geom["step_m"])
    views = [SV.View(plan, plan.images[k], i0, i1, j0, j1, z0, z0 + (n - 1) * geom["step_m"]) for k in geom["members"]]
    at_dsm = SV.samples_at(views, *lonlat_block(plan, i0, i1, j0, j1), h, None)
    rng = np.random.default_rng(0)
    ys = rng.integers(0, h.shape[0], 300)
    xs = rng.integers(0, h.shape[1], 300)
    ks = rng.integers(0, n, 300) // 20 * 20  # a few planes, several cells each
    s_dsm, s_at = SS.two_heights(views, at_dsm, geom["pairs"], h, ys, xs, ks, z0, geom["step_m"], 3, 0.5)
    assert np.isfinite(s_at).mean() > 0.9 and np.isfinite(s_dsm).mean() > 0.9
    out = np.empty(1, np.float32)
    cnt = np.empty(1)
    (a, b), = geom["pairs"]
    for i in range(0, 300, 7):
        z = z0 + int(ks[i]) * geom["step_m"]
        full = [v.sample(z).copy() for v in views]
        swk.ncc_off_level_cells(full[a], full[b], h, ys[i:i + 1], xs[i:i + 1], z, -1.0, 3, 0.5 * 49, out, cnt)
        assert np.array_equal(np.float64(out[0]), s_at[i], equal_nan=True)
        swk.ncc_off_level_cells(at_dsm[a], at_dsm[b], h, ys[i:i + 1], xs[i:i + 1], 0.0, -1.0, 3, 0.5 * 49, out, cnt)
        assert np.array_equal(np.float64(out[0]), s_dsm[i], equal_nan=True)


@pytest.mark.parametrize("radius", [3])
def test_small_window_on_a_simulated_pair(radius, pair_plan):
    """On the simulator's epoch-2 scene seen from two sides: the rule fires, the cells it changes are
    exactly those it lists, each moved beyond the bound; switched off, dh is the large window's."""
    plan = pair_plan
    geom = sweep.pair_geometry(plan, [0, 1])
    t = plan.tiles()[0]
    on = sweep.sweep_tile(plan, t, geom, plan.h_max - plan.h_min)
    try:
        SS.EDGE_SECOND = False
        off = sweep.sweep_tile(plan, t, geom, plan.h_max - plan.h_min)
    finally:
        SS.EDGE_SECOND = True
    assert off["edge"] == [0, 0, 0, 0] and on["edge"][0] > 0
    moved = np.nan_to_num(on["dh"], nan=-99) != np.nan_to_num(off["dh"], nan=-99)
    assert moved.sum() == on["edge"][2]  # only the edges' zeros take a height
    assert (np.abs(off["dh"][moved]) <= 2.5).all() and (np.abs(on["dh"][moved]) > 2.5).all()
    # a narrow roof keeps its height, its sigma only grows, and only on beyond answers
    less_sure = ~moved & (np.nan_to_num(on["dh_sigma"], nan=-99) != np.nan_to_num(off["dh_sigma"], nan=-99))
    assert less_sure.sum() <= on["edge"][3] <= on["edge"][1]
    assert (on["dh_sigma"][less_sure] > off["dh_sigma"][less_sure]).all() and (np.abs(on["dh"][less_sure]) > 2.5).all()
    assert np.array_equal(np.isnan(on["dh"]), np.isnan(off["dh"]))  # measuredness unchanged
