"""The result store opens in GDAL >= 3.10 (rasterio's own GDAL) with CRS, transform, nodata and the
values xarray reads; CF nodata survives ``rio.to_raster``; ``--zarr-format 3`` still works for
every reader (issue 9, build item 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import xarray as xr

from offnadir import store as st
from offnadir.cli import main


@pytest.fixture(scope="module")
def cluster():
    """One in-process dask cluster for the module: kernels compile once, no worker processes."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as c, \
            Client(c):
        yield c.scheduler_address


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from offnadir.simulate import simulate

    d = tmp_path_factory.mktemp("gdal_zarr")
    return simulate(d / "sim", seed=3, size=64, base_view=(5.0, 270.0), target_view=(25.0, 90.0))


def _detect(scene, out, cluster, *extra):
    # one date for both images: the same-date height sweep writes dh too
    argv = ["detect", "--dsm", str(scene.paths["dsm"]), "--base", str(scene.paths["base"]),
            "--target", str(scene.paths["target"]), "--date", "2022-05-01", "--date", "2022-05-01",
            "-o", str(out), "--chunk", "32", "--scheduler", cluster, "--quiet", *extra]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def v2store(scene, cluster, tmp_path_factory):
    return _detect(scene, tmp_path_factory.mktemp("v2") / "out.zarr", cluster)


def _grid(ds):
    x, y = ds["x"].values, ds["y"].values
    dx, dy = x[1] - x[0], y[1] - y[0]
    return rasterio.Affine(dx, 0, x[0] - dx / 2, 0, dy, y[0] - dy / 2)


def test_default_store_is_zarr_v2_and_opens_in_rasterio_gdal(v2store):
    assert st.zarr_format(v2store) == 2 and (v2store / ".zgroup").is_file() and not (v2store / "zarr.json").exists()
    assert st.status(v2store) == st.COMPLETE and st.is_offnadir_store(v2store)
    ds = st.open_dataset(v2store).load()
    assert "dh" in ds and np.isfinite(ds["dh"].values).any(), "the same-date sweep should have measured dh"
    assert (ds["change"].values == 2).any() and (ds["change"].values == 1).any()
    crs = rasterio.crs.CRS.from_wkt(ds.attrs["proj:wkt2"])
    for name, nodata in (("change", 2), ("probability", None), ("dh", None), ("visible", 2), ("dsm", None),
                         ("patch", 0)):
        with rasterio.open(f'ZARR:"{v2store}":/{name}') as src:
            assert src.crs == crs, name
            assert src.transform.almost_equals(_grid(ds)), (name, src.transform)
            assert (np.isnan(src.nodata) if nodata is None else src.nodata == nodata), (name, src.nodata)
            got = src.read()
        want = ds[name].values
        np.testing.assert_array_equal(got.reshape(want.shape), want, err_msg=name)


def test_cf_attributes_and_nodata_survive_rio_to_raster(v2store, tmp_path):
    import rioxarray  # noqa: F401 - registers .rio

    raw = st.open_dataset(v2store)
    for name, var in raw.data_vars.items():
        if {"y", "x"} <= set(var.dims):
            assert var.attrs.get("grid_mapping") == "spatial_ref", name
            assert var.attrs.get("long_name"), name
            assert "units" in var.attrs or "flag_values" in var.attrs, name
    # a nodata per map (elevated has none: 0 is ground; counts such as the history's have none either)
    for name in ("change", "change_ortho", "probability", "score", "evidence", "dh", "dh_sigma", "visible", "row",
                 "col", "value", "dsm", "patch", "illumination"):
        if name in raw:
            assert "_FillValue" in raw[name].encoding, name
    assert raw["dsm"].attrs["standard_name"] == "height_above_reference_ellipsoid"
    assert raw["x"].attrs["standard_name"] == "projection_x_coordinate"
    assert raw["change"].attrs["flag_values"] == [0, 1, 2]
    # what a CF reader sees: unobservable cells are missing; rio.to_raster writes them back as nodata 2
    with st._quiet_zarr():
        cf = xr.open_zarr(v2store)
    codes = raw["change"].isel(image=1).values
    masked = cf["change"].isel(image=1)
    np.testing.assert_array_equal(np.isnan(masked.values), codes == 2)
    for name, da, nodata in (("change", masked, 2), ("probability", cf["probability"].isel(image=1), None)):
        f = tmp_path / f"{name}.tif"
        da.rio.to_raster(f)
        with rasterio.open(f) as src:
            assert src.crs == rasterio.crs.CRS.from_wkt(raw.attrs["proj:wkt2"]), name
            assert (np.isnan(src.nodata) if nodata is None else src.nodata == nodata), (name, src.nodata)
            got = src.read(1)
        if name == "change":
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, codes)
        else:
            np.testing.assert_array_equal(got, raw["probability"].isel(image=1).values)


def test_zarr_format_3_on_request_and_every_reader_follows(scene, cluster, tmp_path, capsys):
    out = tmp_path / "v3.zarr"
    assert main(["coregister", "--dsm", str(scene.paths["dsm"]), "--image", str(scene.paths["base"]),
                 "--image", str(scene.paths["target"]), "-o", str(out), "--chunk", "32", "--scheduler", cluster,
                 "--quiet", "--zarr-format", "3"]) == 0
    assert st.zarr_format(out) == 3 and (out / "zarr.json").is_file()
    assert st.status(out) == st.COMPLETE and st.metadata_file(out) == "zarr.json"
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    assert attrs == st.root_attrs(out)
    # the v2 copy of a v3 store opens in rasterio's GDAL with the same values
    v2 = tmp_path / "copy.zarr"
    assert main(["export", str(out), "--to", "zarr2", "-o", str(v2)]) == 0
    ds = st.open_dataset(out).load()
    with rasterio.open(f'ZARR:"{v2}":/visible') as src:
        assert src.nodata == 2
        np.testing.assert_array_equal(src.read().reshape(ds["visible"].shape), ds["visible"].values)
    # a resume of a v3 store stays v3 (the format is the store's, not the option's)
    assert main(["coregister", "--dsm", str(scene.paths["dsm"]), "--image", str(scene.paths["base"]),
                 "--image", str(scene.paths["target"]), "-o", str(out), "--chunk", "32", "--scheduler", cluster,
                 "--quiet", "--resume"]) == 0
    assert st.zarr_format(out) == 3


def test_bad_zarr_format_is_one_line(tmp_path, capsys):
    from offnadir.config import validate

    with pytest.raises(Exception, match="zarr_format"):
        validate({"dsm": {"path": "d.tif"}, "images": [{"path": "a.tif"}],
                  "output": {"path": str(tmp_path / "o.zarr"), "zarr_format": 4}})
    assert main(["coregister", "--dsm", "d.tif", "--image", "a.tif", "-o", "x.zarr", "--zarr-format", "4"]) == 2
