"""The sweep's on-level test (:func:`offnadir.cube.sweep_level.on_level_moved`): a DSM height the
window test kept must beat a window that follows the cell's own surface moved to the best height.
The kernel against a slow, obvious twin; the rule on a planted raised roof; the option on a
simulated same-date pair."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.cube import sweep
from offnadir.cube import sweep_level as SL
from offnadir.cube import sweep_level_kernels as slk


def _on_level_slow(a0, b0, a1, b1, h, hc, tol, on_only, r, min_count):
    ny, nx = a0.shape
    out = np.full((ny, nx), np.nan)
    cnt = np.zeros((ny, nx))
    for y in range(ny):
        for x in range(nx):
            if np.isnan(hc[y, x]):
                continue
            va, vb = [], []
            for yy in range(max(y - r, 0), min(y + r, ny - 1) + 1):
                for xx in range(max(x - r, 0), min(x + r, nx - 1) + 1):
                    on = not np.isnan(h[yy, xx]) and abs(h[yy, xx] - hc[y, x]) < tol
                    if on_only and not on:
                        continue
                    p, q = (a1[yy, xx], b1[yy, xx]) if on else (a0[yy, xx], b0[yy, xx])
                    if np.isnan(p) or np.isnan(q):
                        continue
                    va.append(p)
                    vb.append(q)
            cnt[y, x] = len(va)
            if len(va) >= max(min_count, 2) and np.std(va) > 0 and np.std(vb) > 0:
                out[y, x] = np.corrcoef(va, vb)[0, 1]
    return out, cnt


@pytest.mark.parametrize("on_only", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ncc_on_level_matches_the_slow_reference(seed, on_only):
    rng = np.random.default_rng(seed)
    ny, nx, r = 17, 21, 2
    a0, b0, a1, b1 = (rng.normal(size=(ny, nx)).astype(np.float32) for _ in range(4))
    h = np.where(rng.random((ny, nx)) < 0.4, 10.0, 0.0) + rng.normal(0, 0.5, (ny, nx))
    for arr in (a0, b1, h):
        arr[rng.random((ny, nx)) < 0.1] = np.nan
    hc = np.where(rng.random((ny, nx)) < 0.7, h, np.nan)
    out = np.empty((ny, nx), np.float32)
    cnt = np.empty((ny, nx))
    slk.ncc_on_level(a0, b0, a1, b1, h, hc, 1.5, on_only, r, 8.0, out, cnt)
    ref, ref_cnt = _on_level_slow(a0, b0, a1, b1, h, hc, 1.5, on_only, r, 8.0)
    assert np.array_equal(cnt, ref_cnt)
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    assert np.isfinite(out).sum() > ny * nx // 10
    np.testing.assert_allclose(out[np.isfinite(out)], ref[np.isfinite(ref)], atol=1e-5)


class _FakeView:
    """An image that shows texture ``t`` where it is sampled at the true surface, and noise of its
    own (a fresh draw per height) elsewhere: the two images agree at the true surface only."""

    def __init__(self, t, true_surface, seed):
        self.t, self.true, self.rng = t, true_surface, np.random.default_rng(seed)

    def sample_at(self, lon, lat, surface):
        noise = self.rng.normal(size=self.t.shape).astype(np.float32)
        return np.where(np.abs(surface - self.true) < 1e-6, self.t, noise).astype(np.float32)


@pytest.mark.parametrize("on_only,rim_out", [(False, False), (True, False), (False, True)])
def test_on_level_moves_a_raised_roof_and_keeps_the_ground(on_only, rim_out):
    """A roof raised by 4 m beside ground: at the DSM heights the two images disagree on the roof;
    moved by +4 m (its own level only) they agree. The roof cells the window test kept are moved,
    the ground cells with the same claimed offset are not (their on-level window moves the ground
    off its surface), nor are cells whose offset is below the resolution."""
    rng = np.random.default_rng(3)
    ny, nx, r, step = 40, 40, 3, 0.5
    h = np.zeros((ny, nx))
    h[:, 20:] = 10.0  # roof on the right half
    true = h.copy()
    true[:, 20:] += 4.0  # raised
    t = rng.normal(size=(ny, nx)).astype(np.float32)
    views = [_FakeView(t, true, s) for s in (1, 2)]
    lon = lat = np.zeros((ny, nx))
    at_dsm = [v.sample_at(lon, lat, h) for v in views]
    s0, _ = SL.on_level_agreement(at_dsm, at_dsm, [(0, 1)], h, h, 1.0, r, 8.0)
    kept = np.ones((ny, nx), bool)
    offset = np.full((ny, nx), 4.0)
    offset[:5] = 0.5  # below the resolution: not tested
    moved = SL.on_level_moved(views, lon, lat, at_dsm, None, [(0, 1)], h, s0, offset, kept, step, 2.0, 3.0,
                              r, 8.0, 2.0, on_only, rim_out)
    assert moved[5:, 24:].all()  # the roof, away from its edge
    assert not moved[:, :20].any()  # the ground
    assert not moved[:5].any()
    # a cell the window test did not keep is not the on-level test's
    moved2 = SL.on_level_moved(views, lon, lat, at_dsm, None, [(0, 1)], h, s0, offset,
                               kept & (np.arange(nx) < 30)[None, :], step, 2.0, 3.0, r, 8.0, 2.0, on_only, rim_out)
    assert not moved2[:, 30:].any() and moved2[5:, 24:30].all()


def test_on_level_only_turns_kept_zeros_into_their_best_height(tmp_path, monkeypatch):
    """``dsm_test="on_level"`` on a simulated same-date pair: against the window test alone, every
    cell it changes was a kept zero and now holds its best height, at least one cell of relative
    displacement from the DSM; everything else is identical."""
    monkeypatch.setattr(sweep.SS, "EDGE_SECOND", False)  # each test's own zeros (the second window follows them)
    import dask

    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    a = simulate(tmp_path / "a", seed=1, size=80, target_view=(20.0, 270.0))
    b = simulate(tmp_path / "b", seed=1, size=80, target_view=(20.0, 90.0))
    with dask.config.set(scheduler="synchronous"):
        plan = plan_cube(a.paths["dsm"], [a.paths["target"], b.paths["target"]], chunk=80,
                         vertical_datum="ellipsoid")
        geom = sweep.pair_geometry(plan, [0, 1])
        tile = next(iter(plan.tiles()))
        relief = plan.h_max - plan.h_min
        res = {t: sweep.sweep_tile(plan, tile, geom, relief, dsm_test=t) for t in ("window", "on_level")}
    w, o = res["window"], res["on_level"]
    level = geom["step_m"] / sweep.STEP_FRACTION
    changed = np.nan_to_num(w["dh"], nan=1e9) != np.nan_to_num(o["dh"], nan=1e9)
    print("cells moved:", int(changed.sum()), "of", int(np.isfinite(w["dh"]).sum()))
    assert changed.any()
    assert (w["dh"][changed] == 0).all()
    assert (np.abs(o["dh"][changed]) >= level - 1e-4).all()
    same = ~changed
    for name in ("dh", "dh_sigma", "dh_score"):
        assert np.array_equal(np.nan_to_num(w[name][same], nan=-9), np.nan_to_num(o[name][same], nan=-9))
