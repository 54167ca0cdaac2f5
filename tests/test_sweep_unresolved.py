"""The window test keeps the DSM height where the images agree there about as well as at the best
swept height. Where neither height beats the other by the test's margin (a tie), the test cannot
tell them apart, so the zero it writes keeps the best height within reach (``dh_sigma >= |z* - h| /
SE_FACTOR``), as the off-level and region tests' zeros do, instead of a zero as certain as the
agreement peak's curvature; where the DSM heights agree better by more than the margin, the zero
stays certain (issue 7, H4)."""

from __future__ import annotations

import numpy as np

from offnadir.change.dh_evidence import dh_probability
from offnadir.cube import sweep


def _sweep_with_offsets(tmp_path, monkeypatch):
    """sweep_tile on a simulated same-date pair, with the best height's offset from the DSM and the
    window test's answer captured (the block's core)."""
    import dask

    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    seen = {}
    wt = sweep.SN.window_test

    def spy(s_best, s_dsm, s_null, offset, curv, n_cells, k):
        out = wt(s_best, s_dsm, s_null, offset, curv, n_cells, k)
        seen.update(offset=np.array(offset), explained=out[0].copy(),
                    tie=sweep.SN.unresolved(out[0], s_best, s_dsm, n_cells, k))
        return out

    monkeypatch.setattr(sweep.SN, "window_test", spy)
    monkeypatch.setattr(sweep.SS, "EDGE_SECOND", False)  # the window test's own zeros (the second window re-tests some)
    a = simulate(tmp_path / "a", seed=1, size=80, target_view=(20.0, 270.0))
    b = simulate(tmp_path / "b", seed=1, size=80, target_view=(20.0, 90.0))
    with dask.config.set(scheduler="synchronous"):
        plan = plan_cube(a.paths["dsm"], [a.paths["target"], b.paths["target"]], chunk=80,
                         vertical_datum="ellipsoid")
        geom = sweep.pair_geometry(plan, [0, 1])
        tile = next(iter(plan.tiles()))
        # the window test's own zeros (the default off-level test adds zeros of its own)
        res = sweep.sweep_tile(plan, tile, geom, plan.h_max - plan.h_min, dsm_test="window")
    i0, _, j0, _ = sweep.block_bounds(plan, tile)
    core = (slice(tile.i0 - i0, tile.i1 - i0), slice(tile.j0 - j0, tile.j1 - j0))
    return res, seen["offset"][core], seen["explained"][core], seen["tie"][core], geom


def test_a_tied_dsm_height_keeps_the_best_height_within_reach(tmp_path, monkeypatch):
    res, offset, explained, tie, geom = _sweep_with_offsets(tmp_path, monkeypatch)
    dh, sig = res["dh"], res["dh_sigma"]
    kept = np.isfinite(dh) & (dh == 0)
    assert kept.sum() > 100 and explained[kept].all()
    ties, wins = kept & tie, kept & ~tie  # wins: the DSM heights agree better by the margin
    # every tie keeps its best height within SE_FACTOR sigmas
    assert (sig[ties] >= np.abs(offset[ties]) / sweep.SE_FACTOR - 1e-5).all()
    # the scene has ties and wins whose best height lies a storey or more away (else this could not fail)
    far = np.abs(offset) >= sweep.STOREY_M
    print("zeros:", int(kept.sum()), "ties:", int(ties.sum()), "a storey or more away: ties",
          int((ties & far).sum()), "wins", int((wins & far).sum()))
    assert (ties & far).sum() >= 5 and (wins & far).sum() >= 5
    # a win stays as certain as the peak's own sigma (about the step), however far the best height
    assert np.median(sig[wins & far]) < geom["step_m"] < np.median(np.abs(offset[wins & far])) / sweep.SE_FACTOR
    # measured heights (not kept) are untouched by the rule: no sigma floor from their offset
    moved = np.isfinite(dh) & (dh != 0)
    assert moved.any() and np.median(sig[moved]) < 0.5 * np.median(np.abs(dh[moved]))


def test_an_unresolved_zero_is_a_mild_no_not_a_veto():
    """The change stage's dh test on such a zero: a best height 9 m away (a raised roof whose window
    the DSM explains as well) gives p about 0.1-0.3, not the ~0 of a zero with the peak's sigma."""
    bound = 2.5
    certain = dh_probability(np.array([0.0]), np.array([0.16]), bound)[0]
    unresolved = dh_probability(np.array([0.0]), np.array([9.0 / sweep.SE_FACTOR]), bound)[0]
    assert certain < 1e-6 < 0.1 < unresolved < 0.5


def test_a_tie_is_within_the_window_tests_margin_both_ways():
    n, k = 169, sweep.SE_FACTOR
    s = np.array([0.9, 0.9, 0.9, 0.9, 0.5])
    margin = k * (1 - 0.81) / 13.0
    s0 = np.array([0.9 + 0.5 * margin, 0.9 + 1.5 * margin, 0.9 - 0.5 * margin, 0.9, 0.9])
    explained = np.array([True, True, True, False, True])
    assert sweep.SN.unresolved(explained, s, s0, n, k).tolist() == [True, False, True, False, False]
