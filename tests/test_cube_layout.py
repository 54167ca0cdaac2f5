"""The cube store's layout written with zarr directly (offnadir.cube.layout) is the store xarray's
``to_zarr`` writes for ``cube_dataset`` (the reference: xarray, rioxarray and pyproj's CF code):
the same metadata files, key by key, and the same Dataset when read back, Zarr v2 and v3."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from synthetic import affine_rpc, box_scene, write_dsm, write_image

from offnadir import store
from offnadir.cube import dataset as cube_ds
from offnadir.cube import graph
from offnadir.cube.layout import create_store, encode_times
from offnadir.pipeline import plan_cube


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    d = tmp_path_factory.mktemp("layout")
    dsm = write_dsm(d / "dsm.tif", box_scene(n=100, boxes=((30, 60, 30, 70, 25.0),)))
    a = write_image(d / "a.tif", affine_rpc(10.0, 60.0), acquired="2021-06-01T10:00:00")
    b = write_image(d / "b.tif", affine_rpc(25.0, 250.0), acquired="2023-06-01T10:00:00")
    c = write_image(d / "c.tif", affine_rpc(18.0, 140.0), acquired="2023-06-01T10:00:00")
    p = plan_cube(dsm, [a, b, c], chunk=64)
    # one image dated to the quarter second, one with no date at all (NaT in the time coordinate)
    ims = list(p.images)
    ims[1] = dataclasses.replace(ims[1], date="2023-06-01T10:00:00.25")
    ims[2] = dataclasses.replace(ims[2], date=None, camera=dataclasses.replace(ims[2].camera, acquired=None))
    return dataclasses.replace(p, images=tuple(ims) if isinstance(p.images, tuple) else ims)


def _metadata(root: Path) -> dict:
    return {str(f.relative_to(root)): json.loads(f.read_text()) for f in sorted(root.rglob("*"))
            if f.name in (".zarray", ".zattrs", ".zgroup", "zarr.json")}


def _reference(path, plan, fp, config, zarr_format):
    """The layout as it was written before cube.layout: xarray's to_zarr of the lazy dataset."""
    template = cube_ds.cube_dataset(plan, graph.empty_arrays(plan), config=config)
    store.create(path, template, plan.grid_shape, cube_ds.FILL, plan=fp, zarr_format=zarr_format)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("crs", ["local", "EPSG:4326"])
def test_layout_is_what_xarray_writes(plan, tmp_path, zarr_format, crs):
    if crs != "local":  # a geographic grid: other CF attributes on x, y and the grid mapping
        from pyproj import CRS

        plan = dataclasses.replace(plan, dsm=dataclasses.replace(plan.dsm, crs_wkt=CRS.from_user_input(crs).to_wkt()))
    fp, config = {"dsm": "x", "n": 3}, {"tiling": {"chunk": 64}, "output": {"zarr_format": zarr_format}}
    ref, new = tmp_path / "ref.zarr", tmp_path / "new.zarr"
    _reference(ref, plan, fp, config, zarr_format)
    create_store(new, plan, fp, config=config, zarr_format=zarr_format)
    a, b = _metadata(ref), _metadata(new)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name] == b[name], name
    with store._quiet_zarr():
        ra, rb = xr.open_zarr(ref, consolidated=False), xr.open_zarr(new, consolidated=False)
    xr.testing.assert_identical(ra, rb)
    t = rb["time"].values
    assert np.isnat(t[2]) and t[1] == np.datetime64("2023-06-01T10:00:00.250")  # decoded as written


def test_time_encoding_round_trips_through_xarray():
    t = np.array(["2016-04-23T10:41:27.123456789", "NaT", "2023-04-15T10:00:00"], dtype="datetime64[ns]")
    values, attrs = encode_times(t)
    decoded = xr.decode_cf(xr.Dataset({"t": ("i", values, attrs)}))["t"].values
    np.testing.assert_array_equal(decoded, t)
    assert attrs["units"] == "nanoseconds since 2016-04-23 10:41:27.123456789"
    values, attrs = encode_times(np.array(["2021-06-01", "2021-06-03"], dtype="datetime64[ns]"))
    assert attrs["units"] == "days since 2021-06-01 00:00:00" and values.tolist() == [0, 2]


def test_coregister_imports_no_xarray(tmp_path):
    """A run's path (plan, tie points, layout, tiles) needs neither xarray, pandas, rioxarray nor
    dask.array: their import cost ~0.7 CPU-s per command."""
    dsm = write_dsm(tmp_path / "dsm.tif", box_scene(n=80))
    a = write_image(tmp_path / "a.tif", affine_rpc(10.0, 60.0))
    b = write_image(tmp_path / "b.tif", affine_rpc(25.0, 250.0))
    code = ("import sys\nfrom offnadir.cli import main\n"
            f"rc = main(['coregister', '--dsm', {str(dsm)!r}, '--image', {str(a)!r}, '--image', {str(b)!r}, "
            f"'-o', {str(tmp_path / 'c.zarr')!r}, '--quiet', '--workers', '1', '--local-workers', 'threads'])\n"
            "print(rc, sorted(m for m in ('xarray', 'pandas', 'rioxarray', 'dask.array') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[-2] == "0 []", out.stdout
    with store._quiet_zarr():
        ds = store.open_dataset(tmp_path / "c.zarr")
    assert ds.rio.crs is not None and int((ds["visible"] == 1).sum()) > 0


class _SyncOnly:
    """A zarr group without the asynchronous side: create_arrays takes its one-at-a-time path."""

    def __init__(self, group):
        self.group, self.metadata = group, group.metadata

    def create_array(self, *a, **k):
        return self.group.create_array(*a, **k)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_layout_written_at_once_is_the_layout_written_one_array_at_a_time(plan, tmp_path, zarr_format, monkeypatch):
    """create_arrays' concurrent writes give the files the serial calls give, byte for byte."""
    import zarr

    from offnadir.cube import layout

    new, one = tmp_path / "new.zarr", tmp_path / "one.zarr"
    create_store(new, plan, {"n": 1}, zarr_format=zarr_format)
    real = layout.write_layout
    monkeypatch.setattr(layout, "write_layout", lambda g, v, c: real(_SyncOnly(g), v, c))
    create_store(one, plan, {"n": 1}, zarr_format=zarr_format)
    files = sorted(str(f.relative_to(new)) for f in new.rglob("*") if f.is_file())
    assert files == sorted(str(f.relative_to(one)) for f in one.rglob("*") if f.is_file())
    assert len(files) > 20
    for f in files:
        assert (new / f).read_bytes() == (one / f).read_bytes(), f
    assert zarr.open_group(str(new), mode="r")["x"][...].size == 100
