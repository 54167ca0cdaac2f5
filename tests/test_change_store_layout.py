"""The change stage's set-up written with zarr directly (offnadir.change.store_layout, via
``stage.set_up``) is the store xarray's ``to_zarr`` wrote for it before (the reference below: the
set-up as it was): every file of the store equal (metadata key by key, chunk files byte for byte),
Zarr v2 and v3, fresh and over a previous run's arrays, and the same Dataset when read back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from synthetic import affine_rpc, box_scene, write_dsm, write_image

from offnadir import store
from offnadir.change import history as H
from offnadir.change import stage
from offnadir.change.dataset import layout
from offnadir.change.illumination import small_coords_loaded
from offnadir.change.options import ChangeOptions
from offnadir.change.tasks import PROGRESS
from offnadir.cube.layout import create_store
from offnadir.pipeline import plan_cube


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    d = tmp_path_factory.mktemp("change_layout")
    dsm = write_dsm(d / "dsm.tif", box_scene(n=100, boxes=((30, 60, 30, 70, 25.0),)))
    a = write_image(d / "a.tif", affine_rpc(10.0, 60.0), acquired="2021-06-01T10:00:00")
    b = write_image(d / "b.tif", affine_rpc(25.0, 250.0), acquired="2023-06-01T10:00:00")
    return plan_cube(dsm, [a, b], chunk=64)


def _reference(path, cube, opts, chunks_yx, fmt):
    """The set-up as it was written before store_layout (stage.detect_store at 12f23d7)."""
    import zarr

    names = stage._var_names(opts)
    grid = (len(chunks_yx[0]), len(chunks_yx[1]))
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    cy, cx = chunks_yx[0][0], chunks_yx[1][0]
    with store._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        for name in list(g.array_keys()):
            if name in names or name in H.NAMES or name == PROGRESS or name.startswith("patch_") or name == "patch_id":
                del g[name]
        tmpl = layout(cube, names, chunks_yx)
        tmpl.attrs = dict(g.attrs)
        enc = {n: store.encoding(fmt, tuple(c[0] for c in tmpl[n].chunks), stage._nodata(n), stage._fill(n))
               for n in names}
        tmpl.to_zarr(str(path), mode="a", compute=False, zarr_format=fmt, consolidated=False, encoding=enc)
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        store.create_flag_array(g, PROGRESS, grid, "change detection progress bits: 1 segmented, 4 maps written")
        g.attrs["change_options"] = json.dumps(opts.as_dict(), default=str)
        if "time" in cube.coords and not set(H.NAMES) <= set(g.array_keys()):
            H.create_arrays(path, (ny, nx), (cy, cx), "spatial_ref", dict(g.attrs), fmt)


def _files(root: Path) -> dict:
    out = {}
    for f in sorted(root.rglob("*")):
        if f.is_file():
            k = str(f.relative_to(root))
            out[k] = json.loads(f.read_text()) if f.name in (".zarray", ".zattrs", ".zgroup", "zarr.json") \
                else f.read_bytes()
    return out


def _cube(path):
    cube = small_coords_loaded(store.open_dataset(path))
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    cy, cx = (int(v) for v in cube["visible"].encoding["chunks"][-2:])
    return cube, (tuple(min(cy, ny - k) for k in range(0, ny, cy)), tuple(min(cx, nx - k) for k in range(0, nx, cx)))


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("baseline", [True, False])
def test_set_up_is_what_xarray_wrote(plan, tmp_path, zarr_format, baseline):
    opts = ChangeOptions(baseline=baseline)
    empty = tmp_path / "cube.zarr"
    create_store(empty, plan, {"dsm": "x"}, zarr_format=zarr_format)
    ref, new = tmp_path / "ref.zarr", tmp_path / "new.zarr"
    for p in (ref, new):
        shutil.copytree(empty, p)
    for rerun in (False, True):  # fresh, then over the arrays of a previous run (deleted, made again)
        cube, chunks = _cube(ref)
        _reference(ref, cube, opts, chunks, zarr_format)
        cube, chunks = _cube(new)
        done, history = stage.set_up(new, cube, opts, chunks, resume=False, zarr_format=zarr_format)
        assert done.shape == plan.grid_shape and not done.any() and history is not None
        a, b = _files(ref), _files(new)
        assert sorted(a) == sorted(b)
        for name in a:
            assert a[name] == b[name], (rerun, name)
    with store._quiet_zarr():
        ra, rb = xr.open_zarr(ref, consolidated=False), xr.open_zarr(new, consolidated=False)
    xr.testing.assert_identical(ra, rb)
    assert "first_change" in rb and ("change_ortho" in rb) == baseline
    v = rb["probability"].attrs if zarr_format == 2 else rb["probability"].encoding
    assert "coordinates" in rb["probability"].encoding or "coordinates" in v


def test_set_up_resumed_keeps_the_arrays_and_their_progress(plan, tmp_path):
    opts = ChangeOptions()
    path = tmp_path / "cube.zarr"
    create_store(path, plan, {"dsm": "x"}, zarr_format=2)
    cube, chunks = _cube(path)
    stage.set_up(path, cube, opts, chunks, resume=False, zarr_format=2)
    import zarr

    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    g[PROGRESS][0, 0] = 1
    g["change"][0, :4, :4] = 1
    done, _ = stage.set_up(path, cube, opts, chunks, resume=True, zarr_format=2)
    assert done[0, 0] == 1 and int(done.sum()) == 1
    assert np.all(g["change"][0, :4, :4] == 1)
    done, _ = stage.set_up(path, cube, opts, chunks, resume=False, zarr_format=2)  # not resumed: made again
    assert not done.any() and np.all(zarr.open_group(str(path), mode="r")["change"][0, :4, :4] == 2)


def _table(n, rng):
    from offnadir.change.dataset import TABLE_KEYS, table_dataset

    ids = np.sort(rng.choice(10**6, n, replace=False)) + 1
    per = {1: {k: np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n) * 3) for k in TABLE_KEYS.values()}}
    per[1]["rim_base"] = None  # a criterion that did not run: its column left out
    static = {"patch_n_cells": rng.integers(1, 500, n), "patch_elevated": (rng.random(n) < 0.3).astype(np.uint8)}
    return table_dataset(ids, ["base", "target"], per, static, 0.5)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("n", [0, 1, 50_000])
def test_table_is_what_xarray_wrote(plan, tmp_path, zarr_format, n):
    import zarr

    tab = _table(n, np.random.default_rng(n))
    empty = tmp_path / "cube.zarr"
    create_store(empty, plan, {"dsm": "x"}, zarr_format=zarr_format)
    ref, new = tmp_path / "ref.zarr", tmp_path / "new.zarr"
    for p in (ref, new):
        shutil.copytree(empty, p)
    with store._quiet_zarr():
        g = zarr.open_group(str(ref), mode="r+", use_consolidated=False)
        t = tab.drop_vars("image")
        t.attrs = dict(g.attrs)
        t.to_zarr(str(ref), mode="a", zarr_format=zarr_format, consolidated=False)  # the write before
        stage.write_table(zarr.open_group(str(new), mode="r+", use_consolidated=False), tab, zarr_format)
    a, b = _files(ref), _files(new)
    assert sorted(a) == sorted(b) and "patch_probability" in {k.split("/")[0] for k in b}
    for name in a:
        assert a[name] == b[name], name
    with store._quiet_zarr():
        xr.testing.assert_identical(xr.open_zarr(ref, consolidated=False), xr.open_zarr(new, consolidated=False))
