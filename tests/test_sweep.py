"""The same-date height sweep: kernels against slow obvious twins, a simulated scene whose height
change is known, and images grouped by date from metadata, the config and the command line."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import rasterio
import xarray as xr

from offnadir.cli import main
from offnadir.cube import sweep
from offnadir.cube import sweep_kernels as swk


# ----------------------------------------------------------------------------- kernels
def _ncc_slow(a, b, r, min_count):
    ny, nx = a.shape
    out = np.full((ny, nx), np.nan)
    for y in range(ny):
        for x in range(nx):
            wa = a[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].astype(np.float64)
            wb = b[max(y - r, 0):y + r + 1, max(x - r, 0):x + r + 1].astype(np.float64)
            m = np.isfinite(wa) & np.isfinite(wb)
            if m.sum() < min_count:
                continue
            va = wa[m] - wa[m].mean()
            vb = wb[m] - wb[m].mean()
            den = math.sqrt((va * va).sum() * (vb * vb).sum())
            if den > 0:
                out[y, x] = (va * vb).sum() / den
    return out


@pytest.mark.parametrize("r", [1, 2, 4])
def test_window_ncc_matches_the_slow_reference(r):
    rng = np.random.default_rng(r)
    a = rng.normal(500, 40, (17, 23)).astype(np.float32)
    b = (0.6 * a + rng.normal(0, 30, a.shape) + 100).astype(np.float32)
    a[rng.random(a.shape) < 0.1] = np.nan
    b[rng.random(b.shape) < 0.1] = np.nan
    b[:4, :5] = 7.0  # a flat patch: no variance -> NaN where the window sees only it
    min_count = 0.5 * (2 * r + 1) ** 2
    out = np.empty(a.shape, np.float32)
    swk.window_ncc(a, b, r, min_count, out, np.empty((7,) + a.shape))
    ref = _ncc_slow(a, b, r, min_count)
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    assert np.isfinite(ref).sum() > 0.5 * ref.size
    np.testing.assert_allclose(out[np.isfinite(ref)], ref[np.isfinite(ref)], atol=2e-5)


def test_window_ncc_ignores_gain_and_offset():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, (12, 12)).astype(np.float32)
    out = np.empty(a.shape, np.float32)
    swk.window_ncc(a, (3 * a + 7).astype(np.float32), 2, 5, out, np.empty((7,) + a.shape))
    np.testing.assert_allclose(out, 1.0, atol=1e-5)
    swk.window_ncc(a, (-2 * a).astype(np.float32), 2, 5, out, np.empty((7,) + a.shape))
    np.testing.assert_allclose(out, -1.0, atol=1e-5)


def test_running_argmax_and_parabola_match_the_slow_reference():
    rng = np.random.default_rng(3)
    n, shape = 30, (9, 11)
    vol = rng.random((n,) + shape).astype(np.float32)
    vol[rng.random(vol.shape) < 0.05] = np.nan
    best = np.full(shape, -np.inf, np.float32)
    best_k = np.full(shape, -1, np.int32)
    s_prev = np.full(shape, np.nan, np.float32)
    s_next = np.full(shape, np.nan, np.float32)
    last = np.full(shape, np.nan, np.float32)
    for k in range(n):
        swk.update_best(vol[k], k, best, best_k, s_prev, s_next, last)
    k_ref = np.nanargmax(vol, axis=0)
    assert np.array_equal(best_k, k_ref)
    yy, xx = np.indices(shape)
    assert np.array_equal(best, vol[k_ref, yy, xx])
    before = np.where(k_ref > 0, vol[np.maximum(k_ref - 1, 0), yy, xx], np.nan)
    after = np.where(k_ref < n - 1, vol[np.minimum(k_ref + 1, n - 1), yy, xx], np.nan)
    assert np.array_equal(np.isnan(s_prev), np.isnan(before)) and np.allclose(s_prev[~np.isnan(before)],
                                                                              before[~np.isnan(before)])
    assert np.array_equal(np.isnan(s_next), np.isnan(after)) and np.allclose(s_next[~np.isnan(after)],
                                                                             after[~np.isnan(after)])
    z = np.empty(shape)
    curv = np.empty(shape)
    swk.refine(best, best_k, s_prev, s_next, n, 10.0, 0.5, z, curv)
    d2 = before - 2 * best + after
    inside = (k_ref > 0) & (k_ref < n - 1) & np.isfinite(d2) & (d2 < 0)
    z_ref = 10.0 + (k_ref + 0.5 * (before - after) / d2) * 0.5
    assert np.array_equal(np.isfinite(z), inside)
    np.testing.assert_allclose(z[inside], z_ref[inside], rtol=1e-6)


def test_parabola_recovers_a_sub_step_maximum():
    z_true, z0, step, n = 3.37, 0.0, 0.5, 20
    best = np.full((1, 1), -np.inf, np.float32)
    best_k = np.full((1, 1), -1, np.int32)
    s_prev, s_next, last = (np.full((1, 1), np.nan, np.float32) for _ in range(3))
    for k in range(n):
        s = np.array([[1.0 - 0.1 * (z0 + k * step - z_true) ** 2]], np.float32)
        swk.update_best(s, k, best, best_k, s_prev, s_next, last)
    z, curv = np.empty((1, 1)), np.empty((1, 1))
    swk.refine(best, best_k, s_prev, s_next, n, z0, step, z, curv)
    assert z[0, 0] == pytest.approx(z_true, abs=1e-4)
    assert curv[0, 0] == pytest.approx(0.2, rel=1e-3)


def _label_slow(dh, tol):
    """Breadth-first regions of moved cells, 8-neighbours of one sign within ``tol``, seeds in
    row-major order."""
    from collections import deque

    ny, nx = dh.shape
    lab = np.zeros((ny, nx), np.int32)
    n = 0
    for y0 in range(ny):
        for x0 in range(nx):
            if lab[y0, x0] or not np.isfinite(dh[y0, x0]) or dh[y0, x0] == 0:
                continue
            n += 1
            lab[y0, x0] = n
            q = deque([(y0, x0)])
            while q:
                y, x = q.popleft()
                for yy in range(max(y - 1, 0), min(y + 2, ny)):
                    for xx in range(max(x - 1, 0), min(x + 2, nx)):
                        w = dh[yy, xx]
                        if (not lab[yy, xx] and np.isfinite(w) and w != 0 and (w > 0) == (dh[y, x] > 0)
                                and abs(w - dh[y, x]) <= tol):
                            lab[yy, xx] = n
                            q.append((yy, xx))
    return lab, n


@pytest.mark.parametrize("seed", [0, 1])
def test_consistent_regions_match_the_slow_reference(seed):
    rng = np.random.default_rng(seed)
    dh = np.round(rng.normal(0, 4, (30, 40)))  # zeros, both signs, steps of all sizes
    dh[rng.random(dh.shape) < 0.1] = np.nan
    lab = np.zeros(dh.shape, np.int32)
    n = swk.label_consistent(dh, 3.0, lab)
    ref, n_ref = _label_slow(dh, 3.0)
    assert n == n_ref > 5 and np.array_equal(lab, ref)
    # a wall higher than the tolerance splits one sign into two regions
    step = np.zeros((5, 8))
    step[:, :4], step[:, 4:] = 2.0, 9.0
    assert swk.label_consistent(step, 3.0, lab[:5, :8]) == 2
    assert swk.label_consistent(step, 7.0, lab[:5, :8]) == 1


def test_halo_counts_match_a_dilation():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    lab = np.zeros((50, 70), np.int32)
    n = swk.label_consistent(np.round(rng.normal(0, 4, lab.shape)), 3.0, lab)
    for r in (0, 2, 6):
        out = np.empty(n + 1, np.int64)
        swk.halo_counts(lab, n, r, out)
        box = np.ones((2 * r + 1, 2 * r + 1), bool)
        ref = [0] + [int(ndi.binary_dilation(lab == k, box).sum()) for k in range(1, n + 1)]
        assert n > 20 and list(out) == ref


def test_the_config_chooses_the_dsm_test(monkeypatch):
    from offnadir.config import validate
    from offnadir.config_schema import schema
    from offnadir.cube import sweep_stage
    from offnadir.errors import OffnadirError

    # the config offers exactly the tests the sweep knows, with the same default
    f = schema()["height_sweep"]["dsm_test"]
    assert tuple(f.choices) == sweep.DSM_TESTS and f.default == sweep.DSM_TEST
    seen = []
    monkeypatch.setattr(sweep_stage, "sweep_store", lambda *a, **k: seen.append(k["dsm_test"]))
    monkeypatch.setattr(sweep_stage, "check_tie_consistency", lambda *a: [])
    base = {"dsm": {"path": "d.tif"}, "images": [{"path": "a.tif"}, {"path": "b.tif"}], "output": {"path": "o.zarr"}}
    for section, want in (({}, "off_level"), ({"height_sweep": {"dsm_test": "region"}}, "region")):
        cfg = validate({**base, **section}, source="t")
        sweep_stage.SweepStage(quiet=True)(cfg, None, "o.zarr", None)
    assert seen == ["off_level", "region"]
    with pytest.raises(OffnadirError, match="dsm_test"):
        validate({**base, "height_sweep": {"dsm_test": "effective"}}, source="t")


def test_change_map_from_dh_keeps_buildings_and_drops_speckle():
    dh = np.zeros((60, 60), np.float32)
    dh[10:30, 10:30] = 6.0      # a new storey and more
    dh[40:55, 35:55] = -9.0     # a demolition
    dh[5, 50] = 8.0             # single-cell outliers
    dh[50, 5] = -8.0
    dh[33, 33] = np.nan
    sig = np.full(dh.shape, 0.3, np.float32)
    c = sweep.dh_change(dh, sig, 0.5)
    assert (c[12:28, 12:28] == 2).all() and (c[42:53, 37:53] == 1).all()
    assert c[5, 50] == 0 and c[50, 5] == 0 and c[33, 33] == 255
    assert (c[dh == 0] == 0).all()
    # beyond one storey but within its uncertainty: not a change
    assert (sweep.dh_change(dh, np.full(dh.shape, 2.0, np.float32), 0.5)[12:28, 12:28] == 0).all()


# ----------------------------------------------------------------------------- simulated scene
@pytest.fixture(scope="module")
def stereo_epoch2(tmp_path_factory):
    """The simulator's epoch-2 scene seen from two sides on one date (two runs, same seed, two
    target views), and its epoch-1 DSM: the known height change is dsm_epoch2 - dsm."""
    from offnadir.simulate import simulate

    root = tmp_path_factory.mktemp("sweep_sim")
    a = simulate(root / "a", seed=3, size=96, target_view=(20.0, 270.0))
    b = simulate(root / "b", seed=3, size=96, target_view=(20.0, 90.0))
    return root, a.paths, b.paths


def test_simulated_height_change_is_recovered(stereo_epoch2, caplog):
    root, pa, pb = stereo_epoch2
    cfg = root / "job.yaml"
    cfg.write_text(f"dsm:\n  path: {pa['dsm']}\nimages:\n  - path: {pa['target']}\n  - path: {pb['target']}\n"
                   f"output:\n  path: {root / 'out.zarr'}\n  overwrite: true\ntiling:\n  chunk: 48\n"
                   "cluster:\n  n_workers: 1\nchange:\n  enabled: false\ntie_bias:\n  enabled: false\n")
    with caplog.at_level(logging.INFO, logger="offnadir"):
        assert main(["run", str(cfg), "--quiet"]) == 0
    assert "B/H" in caplog.text and "swept ellipsoidal heights" in caplog.text
    ds = xr.open_zarr(root / "out.zarr")
    assert list(ds["date_group"].values) == [0, 0]  # same acquisition date in both images' metadata
    for name in ("dh", "dh_sigma", "dh_score"):
        assert ds[name].dims == ("image", "y", "x") and ds[name].dtype == np.float32
    dh = ds["dh"].values
    assert np.array_equal(np.isnan(dh[0]), np.isnan(dh[1])) and np.array_equal(dh[0][~np.isnan(dh[0])],
                                                                                 dh[1][~np.isnan(dh[1])])
    vis = ds["visible"].values
    assert np.isnan(dh[0][(vis != 1).any(axis=0)]).all()
    with rasterio.open(pa["dsm"]) as f1, rasterio.open(pa["dsm_epoch2"]) as f2:
        truth = f2.read(1).astype(np.float64) - f1.read(1)
    changed = np.abs(truth) > sweep.STOREY_M
    ok = np.isfinite(dh[0])
    seen = changed & (vis == 1).all(axis=0)  # the rest is hidden by relief in either image
    assert seen.sum() > 100 and (ok & seen).sum() >= 0.8 * seen.sum()
    # sub-metre on the changed buildings (the step is ~0.2 m here), zero where nothing changed
    assert np.median(np.abs(dh[0] - truth)[ok & changed]) < 0.5
    assert np.median(np.abs(dh[0][ok & ~changed])) < 0.1
    sig = ds["dh_sigma"].values[0]
    assert np.isfinite(sig[ok]).all() and (sig[ok] > 0).all()
    score = ds["dh_score"].values[0]
    assert np.nanmedian(score[ok]) > 0.5
    attrs = __import__("json").loads(ds.attrs["height_sweep"])
    assert attrs["groups"][0]["images"] == ["target", "target_1"]
    assert 0.6 < attrs["groups"][0]["base_to_height"][0] < 0.9  # 2 tan(20°) = 0.73


# ----------------------------------------------------------------------------- dates
def test_dates_from_config_override_metadata_and_split_groups(stereo_epoch2, caplog):
    from offnadir.config import validate
    from offnadir.cube.dataset import image_coords
    from offnadir.cube.sweep_stage import multi_view_groups
    from offnadir.pipeline import load_images

    _, pa, pb = stereo_epoch2
    raw = {"dsm": {"path": str(pa["dsm"])}, "output": {"path": "x.zarr"},
           "images": [{"path": str(pa["base"])}, {"path": str(pa["target"])},
                      {"path": str(pb["target"]), "date": __import__("datetime").date(2023, 9, 13)}]}
    with caplog.at_level(logging.INFO, logger="offnadir"):
        ims = load_images(validate(raw)["images"])
        co = image_coords(ims)
    assert "overrides the metadata's acquisition date" in caplog.text
    assert list(co["date_group"][1]) == [0, 1, 2]
    assert str(co["time"][1][2])[:10] == "2023-09-13"
    assert multi_view_groups(ims) == []
    raw["images"][2]["date"] = "2023-09-12"
    ims = load_images(validate(raw)["images"])
    assert list(image_coords(ims)["date_group"][1]) == [0, 1, 1]
    assert multi_view_groups(ims) == [[1, 2]]


def test_images_without_dates_are_groups_of_their_own(stereo_epoch2, caplog):
    from offnadir.cube.dataset import date_groups
    from offnadir.io.image import ImageSource

    _, pa, _ = stereo_epoch2
    ims = [ImageSource(str(pa["target"]), type("C", (), {"acquired": None})(), (1, 1), 1, "uint8", None, n, d)
           for n, d in (("a", None), ("b", "2020-01-02"), ("c", None), ("d", "2020-01-02T11:00:00Z"))]
    with caplog.at_level(logging.INFO, logger="offnadir"):
        assert list(date_groups(ims)) == [0, 1, 2, 1]
    assert "image a has no acquisition date" in caplog.text


def test_dates_on_the_command_line(tmp_path, capsys):
    from offnadir.cli import build_parser
    from offnadir.cli.coregister import config_from_args

    args = build_parser().parse_args(["detect", "--dsm", "d.tif", "--base", "a.tif", "--target", "b.tif",
                                      "--target", "c.tif", "--date", "2016-04-23", "--date", "none",
                                      "--date", "2023-04-15", "-o", str(tmp_path / "o.zarr")])
    cfg = config_from_args(args, [args.base] + args.targets)
    assert [im["date"] for im in cfg["images"]] == ["2016-04-23", None, "2023-04-15"]
    # one --date per image, in image order
    code = main(["detect", "--dsm", "d.tif", "--base", "a.tif", "--target", "b.tif", "--date", "2016-04-23",
                 "-o", str(tmp_path / "o.zarr")])
    err = capsys.readouterr().err
    assert code == 2 and "1 --date given for 2 images" in err and "Traceback" not in err


def test_a_bad_date_is_a_clear_error(stereo_epoch2, tmp_path, capsys):
    _, pa, pb = stereo_epoch2
    out = tmp_path / "o.zarr"
    code = main(["coregister", "--dsm", str(pa["dsm"]), "--image", str(pa["target"]), "--image",
                 str(pb["target"]), "--date", "2023-09-12", "--date", "12/09/2023", "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "'12/09/2023' is not a date" in err and "YYYY-MM-DD" in err
    assert "Traceback" not in err and not out.exists()


def test_a_date_group_corrected_only_in_part_by_tie_points_is_warned(tmp_path, caplog):
    import json
    import types

    import zarr

    from offnadir.cube.sweep_stage import check_tie_consistency
    from offnadir.io.image import ImageSource

    cam = types.SimpleNamespace(acquired=None)
    ims = [ImageSource("x.tif", cam, (1, 1), 1, "uint8", None, n, d)
           for n, d in (("a", "2020-01-01"), ("b", "2021-01-01"), ("c", "2021-01-01"))]
    plan = types.SimpleNamespace(images=ims)
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    g.attrs["tie_bias"] = json.dumps([{"image": "a", "role": "base"}, {"image": "b", "applied": True},
                                      {"image": "c", "applied": True}])
    assert check_tie_consistency(tmp_path / "s.zarr", plan) == []
    g.attrs["tie_bias"] = json.dumps([{"image": "a", "role": "base"}, {"image": "b", "applied": True},
                                      {"image": "c", "applied": False}])
    with caplog.at_level(logging.WARNING, logger="offnadir"):
        msgs = check_tie_consistency(tmp_path / "s.zarr", plan)
    assert len(msgs) == 1 and "corrected b but kept c" in caplog.text


def test_results_do_not_depend_on_the_tiling(stereo_epoch2):
    """Every tile sweeps the plan's candidate heights and adds its window sums in an order fixed by
    the grid, so dh, dh_sigma and dh_score are the same to the bit whatever the tiles (tiles of
    32, 48 and 96 cells on a 96-cell grid: edges off the 13-cell segments of the window sums)."""
    import dask

    from offnadir.pipeline import plan_cube

    _, pa, pb = stereo_epoch2
    maps = []
    with dask.config.set(scheduler="synchronous"):
        for chunk in (32, 48, 96):
            plan = plan_cube(pa["dsm"], [pa["target"], pb["target"]], chunk=chunk, vertical_datum="ellipsoid")
            geom = sweep.pair_geometry(plan, [0, 1])
            out = {k: np.full(plan.dsm.shape, np.nan, np.float32) for k in ("dh", "dh_sigma", "dh_score")}
            for t in plan.tiles():
                res = sweep.sweep_tile(plan, t, geom, plan.h_max - plan.h_min)
                for k in out:
                    out[k][t.i0:t.i1, t.j0:t.j1] = res[k]
            maps.append({**out, "tiles": plan.tile_shape})
    assert len({m["tiles"] for m in maps}) == 3
    assert np.isfinite(maps[0]["dh"]).mean() > 0.5
    assert (np.abs(np.nan_to_num(maps[0]["dh"])) > 1.0).any()  # the scene's change is measured
    for other in maps[1:]:
        for k in ("dh", "dh_sigma", "dh_score"):
            np.testing.assert_array_equal(maps[0][k], other[k], err_msg=k)


def test_dh_and_change_maps_do_not_depend_on_the_chunk(stereo_epoch2):
    """The whole run (cube, sweep, change stage) with 32- and 96-cell tiles: dh and the change maps
    are the same to the bit (before, a tile's own height range and its window sums' rounding made
    both depend on the chunk: 7,899 dh cells per Kahramanmaraş target between chunks 1024 and 540)."""
    root, pa, pb = stereo_epoch2
    maps = []
    for chunk in (32, 96):
        out = root / f"chunk{chunk}.zarr"
        cfg = root / f"chunk{chunk}.yaml"
        cfg.write_text(f"dsm:\n  path: {pa['dsm']}\nimages:\n  - path: {pa['base']}\n  - path: {pa['target']}\n"
                       f"  - path: {pb['target']}\noutput:\n  path: {out}\n  overwrite: true\ntiling:\n"
                       f"  chunk: {chunk}\ncluster:\n  n_workers: 1\ntie_bias:\n  enabled: false\n")
        assert main(["run", str(cfg), "--quiet"]) == 0
        ds = xr.open_zarr(out)
        assert ds["dh"].chunks[-1][0] == chunk
        maps.append({k: ds[k].values for k in ("dh", "dh_sigma", "change")})
    a, b = maps
    assert np.isfinite(a["dh"][1]).mean() > 0.5 and (a["change"][1:] != 0).any()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
