"""The sweep's off-level test (:data:`offnadir.cube.sweep.OFF_LEVEL`): a best height's lead over the
DSM heights must not come from the window cells whose DSM surface lies at that height (they agree
there whatever the cell does: the fronto-parallel window's fattening at height steps). The kernel
against a slow, obvious twin, and the rule on a simulated same-date pair."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.cube import sweep
from offnadir.cube import sweep_level as SL
from offnadir.cube import sweep_kernels as swk


def _off_level_slow(a, b, h, zc, delta, r, min_count):
    ny, nx = a.shape
    out = np.full((ny, nx), np.nan)
    cnt = np.zeros((ny, nx))
    for y in range(ny):
        for x in range(nx):
            if not np.isfinite(zc[y, x]):
                continue
            ys = slice(max(y - r, 0), y + r + 1)
            xs = slice(max(x - r, 0), x + r + 1)
            wa, wb, wh = a[ys, xs].ravel(), b[ys, xs].ravel(), h[ys, xs].ravel()
            m = np.isfinite(wa) & np.isfinite(wb) & np.isfinite(wh) & ~(np.abs(wh - zc[y, x]) < delta)
            cnt[y, x] = m.sum()
            if m.sum() < max(min_count, 2) or wa[m].std() == 0 or wb[m].std() == 0:
                continue
            out[y, x] = np.corrcoef(wa[m].astype(np.float64), wb[m].astype(np.float64))[0, 1]
    return out, cnt


@pytest.mark.parametrize("seed", [0, 1])
def test_ncc_off_level_matches_the_slow_reference(seed):
    rng = np.random.default_rng(seed)
    ny, nx, r = 23, 31, 3
    a = rng.normal(size=(ny, nx)).astype(np.float32)
    b = (0.6 * a + 0.4 * rng.normal(size=(ny, nx))).astype(np.float32)
    a[rng.random((ny, nx)) < 0.1] = np.nan
    b[rng.random((ny, nx)) < 0.1] = np.nan
    h = np.where(rng.random((ny, nx)) < 0.4, 20.0, 0.0) + rng.normal(0, 0.3, (ny, nx))  # roofs and ground
    h[rng.random((ny, nx)) < 0.05] = np.nan
    zc = rng.choice([0.0, 20.0, 10.0, np.nan], size=(ny, nx))
    out = np.empty((ny, nx), np.float32)
    cnt = np.empty((ny, nx))
    swk.ncc_off_level(a, b, h, zc, 1.5, r, 8.0, out, cnt)
    ref, ref_cnt = _off_level_slow(a, b, h, zc, 1.5, r, 8.0)
    assert np.array_equal(cnt, ref_cnt)
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    assert np.isfinite(ref).sum() > 100 and (np.isnan(ref) & np.isfinite(zc)).sum() > 10
    np.testing.assert_allclose(out[np.isfinite(ref)], ref[np.isfinite(ref)], atol=2e-5)


def _textures(seed, shape):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for _ in range(3)]


def test_a_lead_carried_by_cells_at_the_best_height_is_no_height_change():
    """A ground cell beside a roof 20 m up, whose window agrees best at the roof's height only
    because the roof's cells agree there (their own surface): off the roof the DSM heights agree
    and the best height does not: dh = 0. A demolished roof (DSM 20 m, best height on the ground):
    off the ground's level the DSM heights disagree and the best height agrees: kept."""
    ny, nx, r = 40, 60, sweep.WINDOW_RADIUS
    min_count = sweep.MIN_WINDOW_FRACTION * (2 * r + 1) ** 2
    h = np.zeros((ny, nx))
    h[:, 30:] = 20.0  # a roof on the right half
    ground, roof, other = _textures(0, (ny, nx))
    noise = _textures(1, (ny, nx))
    # nothing moved: both images agree at the DSM heights everywhere
    at_dsm = [ground + np.where(h > 0, roof, 0) + 0.2 * noise[0], ground + np.where(h > 0, roof, 0) + 0.2 * noise[1]]
    step = 0.5
    best_k = np.full((ny, nx), int(20.0 / step))  # every cell's best height: the roof's (z0 = 0)

    def far(h, z):  # the cells the rule tests: best height at least the level away from the DSM
        return np.abs(z - h) >= 1.5

    # at the roof's height the roof cells agree (their surface), the ground cells do not
    at_z = [np.where(h > 0, at_dsm[0], ground), np.where(h > 0, at_dsm[1], other)]
    off, cells = SL.off_level_agreement(at_z, [(0, 1)], h, np.full((ny, nx), 20.0), 1.5, r, min_count)
    res = SL.off_level_rule(at_dsm, [(0, 1)], h, best_k * step, far(h, best_k * step), off, cells, 1.5, r, min_count,
                            sweep.SE_FACTOR)
    edge = (slice(7, 33), slice(24, 30))  # ground cells whose window holds roof cells (half a window or more)
    assert res[edge].all()
    assert not res[:, 30:].any()  # roof cells: their best height is their DSM height, not tested
    # the roof was demolished: the DSM heights disagree on the roof, the ground's height agrees there
    at_dsm_gone = [np.where(h > 0, other, ground) + 0.2 * noise[0], np.where(h > 0, roof, ground) + 0.2 * noise[1]]
    best0 = np.zeros((ny, nx), int)  # best height 0 (the ground) everywhere
    at_0 = [ground + 0.2 * noise[0], ground + 0.2 * noise[1]]
    off0, cells0 = SL.off_level_agreement(at_0, [(0, 1)], h, np.zeros((ny, nx)), 1.5, r, min_count)
    kept = ~SL.off_level_rule(at_dsm_gone, [(0, 1)], h, best0 * step, far(h, best0 * step), off0, cells0, 1.5, r,
                              min_count, sweep.SE_FACTOR)
    assert kept[5:35, 30:].all()


def test_off_level_only_sets_unresolved_heights_to_an_uncertain_zero(tmp_path, monkeypatch):
    """``dsm_test="off_level"`` on a simulated same-date pair: against the window test alone, every
    cell it changes gets ``dh = 0`` from a best height at least one cell of relative displacement
    away, with a sigma that keeps that height within reach; everything else is identical (the
    second window at a changed object's edge off: it follows each test's own zeros)."""
    import dask

    from offnadir.cube import sweep_small

    monkeypatch.setattr(sweep_small, "EDGE_SECOND", False)

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
        res = {t: sweep.sweep_tile(plan, tile, geom, relief, dsm_test=t) for t in ("window", "off_level")}
    w, o = res["window"], res["off_level"]
    level = geom["step_m"] / sweep.STEP_FRACTION
    moved = np.nan_to_num(w["dh"], nan=1e9) != np.nan_to_num(o["dh"], nan=1e9)
    print("cells set to 0:", int(moved.sum()), "of", int(np.isfinite(w["dh"]).sum()))
    assert moved.any()
    assert (o["dh"][moved] == 0).all() and (np.abs(w["dh"][moved]) >= level - geom["step_m"]).all()
    assert (o["dh_sigma"][moved] >= np.abs(w["dh"][moved]) / sweep.SE_FACTOR - 1e-5).all()
    same = ~moved
    for name in ("dh", "dh_sigma", "dh_score"):
        assert np.array_equal(np.nan_to_num(w[name][same], nan=-9), np.nan_to_num(o[name][same], nan=-9))


def _off_level_explained_full(views, at_dsm, hidden, pairs, h, best, best_k, z0, step, explained, level, radius,
                              min_count, se_factor):
    """The off-level test as it was before (issue 7, n2 ninth round): the whole block sampled at each
    tested best height, the agreement over the whole block (the reference the cell-list version
    must equal to the bit)."""
    z_best = np.where(best_k >= 0, z0 + best_k * step, np.nan)
    with np.errstate(invalid="ignore"):
        far = ~explained & np.isfinite(best) & (np.abs(z_best - h) >= level)
    off_best = np.full(h.shape, np.nan)
    off_cells = np.zeros(h.shape)
    for k in np.unique(best_k[far]):
        sel = far & (best_k == k)
        smp = [v.sample(z0 + k * step).copy() for v in views]
        if hidden is not None:
            for x, hid in zip(smp, hidden):
                x[hid] = np.nan
        a_off, n_off = SL.off_level_agreement(smp, pairs, h, np.where(sel, z0 + k * step, np.nan), level, radius,
                                              min_count)
        off_best[sel] = a_off[sel]
        off_cells[sel] = n_off[sel]
    return SL.off_level_rule(at_dsm, pairs, h, z_best, far, off_best, off_cells, level, radius, min_count,
                             se_factor)


def test_off_level_on_the_tested_windows_alone_equals_the_whole_block(tmp_path):
    """The off-level test samples the images on the tested cells' windows alone
    (:meth:`sweep_views.View.sample_cells`) and correlates at the tested cells alone: samples,
    agreements and the decision equal to the bit to the whole block's, hidden cells included."""
    import dask

    from offnadir.cube import sweep_views as SV
    from offnadir.cube.tile import height_block, lonlat_block
    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    a = simulate(tmp_path / "a", seed=2, size=80, target_view=(20.0, 270.0))
    b = simulate(tmp_path / "b", seed=2, size=80, target_view=(20.0, 90.0))
    with dask.config.set(scheduler="synchronous"):
        plan = plan_cube(a.paths["dsm"], [a.paths["target"], b.paths["target"]], chunk=80,
                         vertical_datum="ellipsoid")
    geom = sweep.pair_geometry(plan, [0, 1])
    step, r = geom["step_m"], sweep.WINDOW_RADIUS
    ny, nx = plan.dsm.shape
    i0, i1, j0, j1 = 5, ny - 3, 2, nx - 7  # a block not at the lattice's origin
    h = np.ascontiguousarray(height_block(plan, i0, i1, j0, j1), dtype=np.float64)
    z0, n = sweep.height_range(plan.h_min, plan.h_max, step)
    views = [SV.View(plan, plan.images[k], i0, i1, j0, j1, z0, z0 + (n - 1) * step) for k in geom["members"]]
    rng = np.random.default_rng(0)
    hidden = [rng.random(h.shape) < 0.1 for _ in views]
    cy, cx = np.nonzero(rng.random(h.shape) < 0.3)
    for k in (0, n // 3, n // 2, n - 1):
        z = z0 + k * step
        for v, hid in zip(views, hidden):
            full = v.sample(z).copy()
            full[hid] = np.nan
            out = np.full(h.shape, 7.0, np.float32)
            v.sample_cells(z, cy, cx, out, hid)
            assert np.isfinite(full[cy, cx]).sum() > 100
            assert np.array_equal(out[cy, cx], full[cy, cx], equal_nan=True)
            untouched = np.ones(h.shape, bool)
            untouched[cy, cx] = False
            assert (out[untouched] == 7.0).all()
    # the agreement at listed cells equals the whole block's kernel there
    smp = [v.sample(z0 + (n // 2) * step).copy() for v in views]
    zc = np.full(h.shape, np.nan)
    zc[cy, cx] = z0 + (n // 2) * step
    full, cnt = np.empty(h.shape, np.float32), np.empty(h.shape)
    swk.ncc_off_level(smp[0], smp[1], h, zc, 1.0, r, 20.0, full, cnt)
    part, pcnt = np.empty(cy.size, np.float32), np.empty(cy.size)
    swk.ncc_off_level_cells(smp[0], smp[1], h, cy, cx, z0 + (n // 2) * step, 1.0, r, 20.0, part, pcnt)
    assert np.isfinite(part).sum() > 100
    assert np.array_equal(part, full[cy, cx], equal_nan=True) and np.array_equal(pcnt, cnt[cy, cx])
    # the whole test: best heights spread over the range, every cell tested
    best_k = rng.integers(0, n, h.shape).astype(np.int32)
    best = rng.random(h.shape).astype(np.float32)
    explained = rng.random(h.shape) < 0.3
    at_dsm = SV.samples_at(views, *lonlat_block(plan, i0, i1, j0, j1), h, hidden)
    min_count = sweep.MIN_WINDOW_FRACTION * (2 * r + 1) ** 2
    args = (at_dsm, geom["pairs"], h, best, best_k, z0, step, explained, step / sweep.STEP_FRACTION, r, min_count,
            sweep.SE_FACTOR)
    new = SL.off_level_explained(views, args[0], hidden, *args[1:])
    ref = _off_level_explained_full(views, args[0], hidden, *args[1:])
    assert ref.sum() > 50 and (~ref & ~explained).sum() > 50
    assert np.array_equal(new, ref)
