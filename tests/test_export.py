"""offnadir export / quicklook: the files open in GDAL (rasterio, pyogrio) with the store's CRS,
nodata and values; bad input is refused with one line."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import rasterio
import xarray as xr

from offnadir.cli import main
from offnadir.store import _quiet_zarr


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from offnadir.simulate import simulate

    d = tmp_path_factory.mktemp("export")
    sim = simulate(d / "sim", seed=4, size=96, base_view=(5.0, 270.0), target_view=(25.0, 90.0))
    out = d / "out.zarr"
    argv = ["detect", "--dsm", str(sim.paths["dsm"]), "--base", str(sim.paths["base"]), "--target",
            str(sim.paths["target"]), "--gcps", str(sim.paths["gcps_base"]), "--gcps", str(sim.paths["gcps_target"]),
            "-o", str(out), "--chunk", "48", "--workers", "1", "--quiet"]
    assert main(argv) == 0
    return out


def _open(path):
    from offnadir.store import open_dataset

    return open_dataset(path).load()  # the stored codes (change 2 = unobservable)


def _grid(ds):
    x, y = ds["x"].values, ds["y"].values
    return x[1] - x[0], y[1] - y[0], x[0], y[0]


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_store_has_changes_to_export(store):
    ds = _open(store)
    assert ds.sizes["image"] == 2 and (ds["change"].values[1] == 1).sum() > 0


def test_zarr_v2_copy_opens_in_rasterio_gdal(store, tmp_path, capsys):
    ds = _open(store)
    # the store is Zarr v2 itself (tests/test_gdal_zarr.py); --to zarr2 still writes a copy of its maps
    out = tmp_path / "v2.zarr"
    assert main(["export", str(store), "--to", "zarr2", "-o", str(out)]) == 0
    dx, dy, x0, y0 = _grid(ds)
    for name, nodata in (("change", 2), ("score", None), ("patch", 0), ("value", None), ("dsm", None)):
        with rasterio.open(f'ZARR:"{out}":/{name}') as src:
            a = src.read()
            assert src.crs == rasterio.crs.CRS.from_wkt(ds.attrs["proj:wkt2"]), name
            assert src.transform.almost_equals(rasterio.Affine(dx, 0, x0 - dx / 2, 0, dy, y0 - dy / 2)), name
            if nodata is None:
                assert np.isnan(src.nodata), name
            else:
                assert src.nodata == nodata, name
        np.testing.assert_array_equal(a.reshape(ds[name].shape), ds[name].values, err_msg=name)
    # xarray reads the copy too; the flag maps' fill value is CF _FillValue there
    with _quiet_zarr():
        v2 = xr.open_zarr(out, mask_and_scale=False)
    np.testing.assert_array_equal(v2["change"].values, ds["change"].values)
    # the copy is not overwritten without --overwrite
    capsys.readouterr()
    assert main(["export", str(store), "--to", "zarr2", "-o", str(out)]) == 2
    _one_line_error(capsys, str(out), "--overwrite")


def test_cogs_carry_nodata_crs_and_the_stores_values(store, tmp_path, capsys):
    ds = _open(store)
    out = tmp_path / "cog"
    assert main(["export", str(store), "--to", "cog", "-o", str(out), "--variable", "change", "--variable", "score",
                 "--variable", "value", "--variable", "dsm"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == ["change_target.tif", "dsm.tif", "score_target.tif", "value_target.tif"]
    dx, dy, x0, y0 = _grid(ds)
    for name, sel, nodata in (("change", 1, 2), ("score", 1, None), ("value", 1, None), ("dsm", None, None)):
        f = out / (f"{name}_target.tif" if sel is not None else f"{name}.tif")
        with rasterio.open(f) as src:
            assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG", f
            assert src.crs == rasterio.crs.CRS.from_wkt(ds.attrs["proj:wkt2"])
            assert src.transform.almost_equals(rasterio.Affine(dx, 0, x0 - dx / 2, 0, dy, y0 - dy / 2))
            assert (np.isnan(src.nodata) if nodata is None else src.nodata == nodata), (f, src.nodata)
            a = src.read()
        want = ds[name].values if sel is None else ds[name].values[sel]
        np.testing.assert_array_equal(a.reshape(want.shape), want, err_msg=name)
    capsys.readouterr()
    assert main(["export", str(store), "--to", "cog", "-o", str(out), "--variable", "change"]) == 2
    _one_line_error(capsys, "change_target.tif", "--overwrite")
    assert main(["export", str(store), "--to", "cog", "-o", str(out), "--variable", "change", "--overwrite"]) == 0


def test_rio_to_raster_keeps_the_stores_nodata(store, tmp_path):
    import rioxarray  # noqa: F401 - registers .rio

    with _quiet_zarr():
        ds = xr.open_zarr(store)  # CF decoding: change's _FillValue 2 (unobservable) reads as NaN
    raw = _open(store)
    for name, nodata in (("change", 2), ("score", None)):
        da = ds[name].isel(image=1)
        f = tmp_path / f"{name}.tif"
        da.rio.to_raster(f)
        with rasterio.open(f) as src:
            assert src.crs is not None
            assert (np.isnan(src.nodata) if nodata is None else src.nodata == nodata), (name, src.nodata)
            assert src.dtypes[0] == str(raw[name].dtype)  # written back in the stored type: uint8 flags
            np.testing.assert_array_equal(src.read(1), raw[name].isel(image=1).values)


def _components(mask):
    from skimage.measure import label

    return int(label(mask, connectivity=1).max())


def test_polygons_in_gpkg_rasterize_back_to_the_change_map(store, tmp_path):
    pyogrio = pytest.importorskip("pyogrio")
    from rasterio.features import rasterize

    from offnadir.wkb import polygon_rings

    ds = _open(store)
    out = tmp_path / "c.gpkg"
    assert main(["export", str(store), "--to", "gpkg", "-o", str(out)]) == 0
    meta, _, geoms, fields = pyogrio.raw.read(out)  # geometries as GDAL encodes them (WKB)
    assert meta["geometry_type"] == "Polygon"
    assert rasterio.crs.CRS.from_user_input(meta["crs"]) == rasterio.crs.CRS.from_wkt(ds.attrs["proj:wkt2"])
    cols = dict(zip(meta["fields"], fields))
    changed = ds["change"].values[1] == 1
    assert len(geoms) == _components(changed) > 0
    dx, dy, x0, y0 = _grid(ds)
    shapes = [({"type": "Polygon", "coordinates": [r.tolist() for r in polygon_rings(g)]}, i + 1)
              for i, g in enumerate(geoms)]
    burnt = rasterize(shapes, out_shape=changed.shape, transform=rasterio.Affine(dx, 0, x0 - dx / 2, 0, dy,
                                                                                 y0 - dy / 2), dtype="int32")
    np.testing.assert_array_equal(burnt > 0, changed)  # GDAL draws the polygons back onto the change cells
    score = ds["score"].values[1]
    for i in range(len(geoms)):
        cells = burnt == i + 1
        assert cols["n_cells"][i] == cells.sum()
        np.testing.assert_allclose(cols["area_m2"][i], cells.sum() * abs(dx * dy))
        np.testing.assert_allclose(cols["mean_score"][i], np.nanmean(score[cells]), rtol=1e-6)
    assert set(cols["image"]) == {"target"} and set(cols["date_target"]) == {"2023-09-12T10:20:00"}
    assert set(cols["date_base"]) == {str(ds["time"].values[0])[:19]}


def test_geojson_is_wgs84_and_geoparquet_carries_geo_metadata(store, tmp_path):
    pyogrio = pytest.importorskip("pyogrio")
    pq = pytest.importorskip("pyarrow.parquet")
    from pyproj import Transformer

    ds = _open(store)
    n = _components(ds["change"].values[1] == 1)
    gj = tmp_path / "c.geojson"
    assert main(["export", str(store), "--to", "geojson", "-o", str(gj)]) == 0
    info = pyogrio.read_info(gj)
    assert info["crs"] == "EPSG:4326" and info["features"] == n
    x0, y0, x1, y1 = pyogrio.read_info(tmp_path / "c.geojson")["total_bounds"]
    t = Transformer.from_crs(ds.attrs["proj:wkt2"], "EPSG:4326", always_xy=True)
    lon, lat = t.transform(ds["x"].values.mean(), ds["y"].values.mean())
    assert x0 < lon + 1e-3 and x1 > lon - 1e-3 and y0 < lat + 1e-3 and y1 > lat - 1e-3

    gp = tmp_path / "c.parquet"
    assert main(["export", str(store), "--to", "geoparquet", "-o", str(gp)]) == 0
    table = pq.read_table(gp)
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["primary_column"] == "geometry" and geo["columns"]["geometry"]["encoding"] == "WKB"
    assert geo["columns"]["geometry"]["crs"]["id"] == {"authority": "EPSG", "code": 32631}
    assert table.num_rows == n and {"area_m2", "mean_score", "image", "date_target"} <= set(table.column_names)


def test_geoparquet_reads_in_geopandas(store, tmp_path):
    gpd = pytest.importorskip("geopandas")  # an independent GeoParquet reader, where installed
    pytest.importorskip("pyarrow")
    gp = tmp_path / "c.parquet"
    assert main(["export", str(store), "--to", "geoparquet", "-o", str(gp)]) == 0
    df = gpd.read_parquet(gp)
    ds = _open(store)
    assert df.crs.to_epsg() == 32631 and len(df) == _components(ds["change"].values[1] == 1)
    np.testing.assert_allclose(df.area.sum(), df["area_m2"].sum())


def test_bad_input_is_one_line_and_leaves_nothing(store, tmp_path, capsys):
    out = tmp_path / "x.gpkg"
    assert main(["export", str(tmp_path / "missing.zarr"), "--to", "gpkg", "-o", str(out)]) == 2
    _one_line_error(capsys, "missing.zarr")
    assert main(["export", str(store), "--to", "cog", "-o", str(tmp_path / "c"), "--variable", "nope"]) == 2
    _one_line_error(capsys, "--variable nope", "change")
    assert main(["export", str(store), "--to", "gpkg", "-o", str(out), "--image", "other"]) == 2
    _one_line_error(capsys, "--image other", "target")
    # --overwrite replaces outputs, never a directory that is not one
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "mine.txt").write_text("x")
    assert main(["export", str(store), "--to", "gpkg", "-o", str(keep), "--overwrite"]) == 2
    _one_line_error(capsys, "keep", "not replaced")
    assert (keep / "mine.txt").exists()
    shutil.rmtree(keep)
    # an unfinished store is refused
    half = tmp_path / "half.zarr"
    shutil.copytree(store, half)
    import zarr

    with _quiet_zarr():  # either Zarr format: through zarr's API
        g = zarr.open_group(str(half), mode="r+", use_consolidated=False)
        g.attrs["offnadir:status"] = "incomplete"
        zarr.consolidate_metadata(str(half))
    assert main(["export", str(half), "--to", "gpkg", "-o", str(out)]) == 2
    _one_line_error(capsys, "incomplete")
    assert main(["quicklook", str(half), "-o", str(tmp_path / "q.png")]) == 2
    _one_line_error(capsys, "incomplete")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half.zarr"]


def test_quicklook_of_a_store(store, tmp_path, capsys):
    import matplotlib.image

    png = tmp_path / "q.png"
    assert main(["quicklook", str(store), "-o", str(png)]) == 0
    img = matplotlib.image.imread(png)
    assert img.ndim == 3 and img.shape[0] > 300 and img.shape[1] > 300
    capsys.readouterr()
    assert main(["quicklook", str(store), "-o", str(png)]) == 2
    _one_line_error(capsys, "q.png", "--overwrite")


def test_overlay_colours_gain_loss_changed_and_unobservable():
    from offnadir.quicklook import CHANGED, GAIN, LOSS, UNOBSERVED, store_overlay

    grey = np.full((2, 3), 0.5)
    change = np.array([[0, 1, 1], [1, 2, 0]], dtype=np.uint8)
    dh = np.array([[np.nan, 4.0, -3.0], [np.nan, 1.0, 1.0]])
    rgb, masks = store_overlay(grey, change, dh)
    assert masks["gain"].tolist() == [[False, True, False], [False, False, False]]
    assert masks["loss"].tolist() == [[False, False, True], [False, False, False]]
    assert masks["changed"].tolist() == [[False, False, False], [True, False, False]]
    # dh = 0 (the DSM height agrees): changed in appearance only, neither gain nor loss
    _, m0 = store_overlay(grey, change, np.zeros((2, 3)))
    assert not m0["gain"].any() and not m0["loss"].any() and m0["changed"].tolist() == (change == 1).tolist()
    assert masks["unobservable"].tolist() == [[False, False, False], [False, True, False]]
    # each class takes its own hue; unchanged cells stay grey
    for (i, j), colour in (((0, 1), GAIN), ((0, 2), LOSS), ((1, 0), CHANGED), ((1, 1), UNOBSERVED)):
        assert np.argmax(rgb[i, j]) == np.argmax(colour), (i, j)
    assert np.ptp(rgb[0, 0]) == 0 and np.ptp(rgb[1, 2]) == 0
