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


def test_only_a_beyond_answer_at_the_neighbours_surface_is_taken():
    dh = _planted()
    core = (slice(0, 60), slice(0, 60))
    seen = {}

    def small(ys, xs):
        seen["n"] = ys.size
        d = np.full(ys.size, 8.5)  # beyond, within a storey of the neighbours' 9 m
        d[xs == 12] = 1.0  # within: the zero stays
        d[xs == 13] = np.nan  # not measured: the zero stays
        d[xs == 14] = -8.0  # beyond on the other side: the zero stays
        d[ys == 8] = 4.0  # beyond, but two storeys below the neighbours: another surface, the zero stays
        d[(ys == 8) & (xs == 30)] = 11.9  # within a storey above them: taken
        return d, np.full(ys.size, 0.3), np.full(ys.size, 0.9)

    (ys, xs, d, sg, sc), n = SS.at_edges(dh, core, 2.5, 6, 3.0, small)
    assert n == seen["n"] > 0
    assert set(np.unique(xs[(ys >= 10) & (ys < 40)])) & {12, 13, 14} == set()
    assert (8, 25) not in set(zip(ys, xs)) and (8, 30) in set(zip(ys, xs))
    assert np.isin(d, (8.5, 11.9)).all() and (sg == 0.3).all() and (sc == 0.9).all()
    # tile coordinates: the same cells from a block whose core starts at (5, 5)
    (ys2, xs2, *_), _ = SS.at_edges(dh, (slice(5, 60), slice(5, 60)), 2.5, 6, 3.0, small)
    assert set(zip(ys2 + 5, xs2 + 5)) == {(y, x) for y, x in zip(ys, xs) if y >= 5 and x >= 5}


def test_halo_and_size():
    assert SS.halo(6, "off_level") == 18 and SS.halo(6, "window") == 18
    assert SS.halo(6, "region") == 6 and SS.halo(6, "prediction") == 6
    assert SS.SMALL_RADIUS < sweep.WINDOW_RADIUS
    # the smaller window's noise peak is wider, and still below a textured window's agreement
    from offnadir.cube.sweep_noise import noise_peak

    n = (2 * SS.SMALL_RADIUS + 1) ** 2
    assert noise_peak((2 * sweep.WINDOW_RADIUS + 1) ** 2, 150) < noise_peak(n, 150) < 0.5


@pytest.mark.parametrize("radius", [3])
def test_small_window_on_a_simulated_pair(radius, tmp_path_factory):
    """On the simulator's epoch-2 scene seen from two sides: the rule fires, the cells it changes are
    exactly those it lists, each moved beyond the bound; switched off, dh is the large window's."""
    import dask

    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    root = tmp_path_factory.mktemp("sweep_small")
    a = simulate(root / "a", seed=3, size=96, target_view=(20.0, 270.0)).paths
    b = simulate(root / "b", seed=3, size=96, target_view=(20.0, 90.0)).paths
    with dask.config.set(scheduler="synchronous"):
        plan = plan_cube(a["dsm"], [a["target"], b["target"]], chunk=96, vertical_datum="ellipsoid")
    geom = sweep.pair_geometry(plan, [0, 1])
    t = plan.tiles()[0]
    on = sweep.sweep_tile(plan, t, geom, plan.h_max - plan.h_min)
    try:
        SS.EDGE_SECOND = False
        off = sweep.sweep_tile(plan, t, geom, plan.h_max - plan.h_min)
    finally:
        SS.EDGE_SECOND = True
    assert off["edge"] == [0, 0] and on["edge"][0] > 0
    moved = np.nan_to_num(on["dh"], nan=-99) != np.nan_to_num(off["dh"], nan=-99)
    assert moved.sum() == on["edge"][1]
    assert (np.abs(off["dh"][moved]) <= 2.5).all() and (np.abs(on["dh"][moved]) > 2.5).all()
    assert np.array_equal(np.isnan(on["dh"]), np.isnan(off["dh"]))  # measuredness unchanged
