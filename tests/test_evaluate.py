"""offnadir evaluate: metrics by hand, class split, truth rasters on the grid, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401
import xarray as xr
from affine import Affine

from offnadir.change.evaluate import evaluate, metrics
from offnadir.cli import main
from offnadir.errors import DataError
from offnadir.store import _quiet_zarr

T = Affine(0.5, 0.0, 1000.0, 0.0, -0.5, 2000.0)
CRS = "EPSG:32631"


def test_metrics_by_hand():
    truth = np.array([1, 1, 0, 0, 0, 1], bool)
    pred = np.array([1, 0, 1, 0, 0, 1], bool)
    m = metrics(truth, pred)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 1, 2)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3) and m["overall_accuracy"] == pytest.approx(4 / 6)
    # Cohen: p_o = 4/6, p_e = (3*3 + 3*3)/36 = 1/2
    assert m["kappa"] == pytest.approx((4 / 6 - 0.5) / 0.5)
    assert m["false_alarm_rate"] == pytest.approx(1 / 3)
    empty = metrics(np.zeros(4, bool), np.zeros(4, bool))
    assert math.isnan(empty["precision"]) and math.isnan(empty["recall"]) and empty["false_alarm_rate"] == 0.0


def _store(tmp_path, ny=20, nx=30):
    """A tiny change store: 2 images, left half elevated, a changed block, some hidden cells."""
    vis = np.ones((2, ny, nx), np.uint8)
    vis[1, :, :3] = 0  # hidden in the target
    vis[0, :2, :] = 2  # outside the base
    change = np.zeros((2, ny, nx), np.uint8)
    change[1, 5:10, 5:10] = 1  # detected
    change[1, 15:18, 20:25] = 1  # false alarm on ground
    change[1][(vis[0] != 1) | (vis[1] != 1)] = 2
    change[0][vis[0] != 1] = 2
    ortho = np.zeros_like(change)
    ortho[1, :, :] = 1
    elev = np.zeros((ny, nx), np.uint8)
    elev[:, :15] = 1
    xs = T.c + T.a * (np.arange(nx) + 0.5)
    ys = T.f + T.e * (np.arange(ny) + 0.5)
    ds = xr.Dataset({"visible": (("image", "y", "x"), vis), "change": (("image", "y", "x"), change),
                     "change_ortho": (("image", "y", "x"), ortho), "elevated": (("y", "x"), elev),
                     "dsm": (("y", "x"), np.full((ny, nx), 100.0, np.float32))},
                    coords={"x": xs, "y": ys, "image": ["a", "b"]})
    ds = ds.rio.write_crs(CRS).rio.write_transform(T)
    ds.attrs["spatial:transform"] = list(T)[:6]
    ds.attrs["change_method"] = "patch"
    path = tmp_path / "out.zarr"
    with _quiet_zarr():
        ds.to_zarr(path, mode="w", consolidated=True)
    return path, ds


def _raster(path, arr, transform=T, crs=CRS):
    with rasterio.open(path, "w", driver="GTiff", width=arr.shape[1], height=arr.shape[0], count=1,
                       dtype=arr.dtype, crs=crs, transform=transform) as dst:
        dst.write(arr, 1)
    return path


def test_evaluate_splits_classes_and_uses_visible_cells(tmp_path):
    path, _ = _store(tmp_path)
    truth = np.zeros((20, 30), np.uint8)
    truth[5:12, 5:10] = 1  # 2 rows missed
    d = tmp_path / "truth"
    d.mkdir()
    _raster(d / "truth_change.tif", truth)
    occ = np.zeros((20, 30), np.uint8)
    occ[:, 29] = 2  # the truth says the last column is hidden in the target
    _raster(d / "truth_occluded.tif", occ)
    rep = evaluate(path, d / "truth_change.tif")
    assert rep["inputs"]["occluded"].endswith("truth_occluded.tif")
    assert "store" in rep["inputs"]["elevated"]
    res = rep["images"]["b"]
    cells = np.zeros((20, 30), bool)
    cells[2:, 3:29] = True
    el = res["patch"]["elevated"]
    assert el["n"] == cells[:, :15].sum()
    assert (el["tp"], el["fn"], el["fp"]) == (25, 10, 0)
    gr = res["patch"]["ground"]
    assert gr["n"] == cells[:, 15:].sum() and gr["fp"] == 15 and gr["tp"] == 0
    assert res["patch"]["all"]["n"] == cells.sum()
    assert res["ortho"]["elevated"]["recall"] == 1.0
    assert res["gain_f1"]["elevated"] == pytest.approx(el["f1"] / res["ortho"]["elevated"]["f1"])


def test_evaluate_cli_json_and_table(tmp_path, capsys):
    path, _ = _store(tmp_path)
    truth = np.zeros((20, 30), np.uint8)
    truth[5:10, 5:10] = 1
    t = _raster(tmp_path / "t.tif", truth)
    e = _raster(tmp_path / "e.tif", np.ones((20, 30), np.uint8))
    assert main(["evaluate", str(path), str(t), "--elevated", str(e), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["images"]["b"]["patch"]["elevated"]["f1"] == 1.0 or rep["images"]["b"]["patch"]["elevated"]["fp"] > 0
    assert rep["images"]["b"]["patch"]["ground"]["n"] == 0  # everything elevated by the given raster
    assert main(["evaluate", str(path), str(t)]) == 0
    text = capsys.readouterr().out
    assert "precision" in text and "ortho" in text and "F1 gain" in text


def test_truth_not_on_the_dsm_grid_is_a_clear_error(tmp_path, capsys):
    path, _ = _store(tmp_path)
    bad_shape = _raster(tmp_path / "shape.tif", np.zeros((21, 30), np.uint8))
    assert main(["evaluate", str(path), str(bad_shape)]) == 2
    err = capsys.readouterr().err
    assert "DSM grid" in err and "21 x 30" in err and "gdalwarp" in err and "Traceback" not in err
    shifted = _raster(tmp_path / "shift.tif", np.zeros((20, 30), np.uint8), transform=T * Affine.translation(3, 0))
    with pytest.raises(DataError, match="not the DSM grid"):
        evaluate(path, shifted)
    other_crs = _raster(tmp_path / "crs.tif", np.zeros((20, 30), np.uint8), crs="EPSG:32632")
    with pytest.raises(DataError, match="CRS"):
        evaluate(path, other_crs)
    assert main(["evaluate", str(path), str(tmp_path / "missing.tif")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing.zarr"), str(bad_shape)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["evaluate", str(path), str(_raster(tmp_path / "ok.tif", np.zeros((20, 30), np.uint8))),
                 "--image", "zzz"]) == 2
    assert "zzz" in capsys.readouterr().err


def test_elevated_from_the_dsm_when_nothing_else(tmp_path):
    _, ds = _store(tmp_path)
    ds = ds.drop_vars("elevated")
    h = np.full((20, 30), 100.0)
    h[5:10, 5:10] = 110.0
    ds["dsm"] = (("y", "x"), h.astype(np.float32))
    truth = _raster(tmp_path / "t.tif", np.zeros((20, 30), np.uint8))
    rep = evaluate(ds, truth, siblings=False)
    assert rep["images"]["b"]["patch"]["elevated"]["n"] == 25  # the block, all visible
    assert "DSM" in rep["inputs"]["elevated"]


def test_height_change_reference_is_recognised_and_scored_on_decided_cells(tmp_path):
    """A 0/1/2/255 reference: loss and gain both count as change, 255 and undecided cells are left
    out, AUC comes from the probability, objects >= 100 m2 are counted (cells of 0.25 m2 here:
    a 5 x 5 block is 6.25 m2, so only with min area scaled down does it count)."""
    from offnadir.change.reference import height_scores

    path, ds = _store(tmp_path)
    ref = np.zeros((20, 30), np.uint8)
    ref[5:10, 5:10] = 1      # loss, detected (change block 5:10, 5:10)
    ref[12:14, 0:30] = 2     # gain, missed (cols 0-2 hidden in the target)
    ref[0:2, :] = 255        # ignored (also outside the base)
    ref[18:20, 26:30] = 255  # ignored
    prob = np.where(ds["change"].values == 1, 0.9, 0.2).astype(np.float32)
    prob[ds["change"].values == 2] = np.nan
    ds["probability"] = (("image", "y", "x"), prob)
    ds = ds.drop_vars("change_ortho")
    rep = evaluate(ds, _raster(tmp_path / "ref.tif", ref))
    assert rep["inputs"]["reference_kind"] == "height"
    r = rep["images"]["b"]["reference"]["patch"]
    cells = (ds["visible"].values[0] == 1) & (ds["visible"].values[1] == 1)
    decided = cells & (ref != 255)
    n_changed = int(((ref == 1) | (ref == 2))[decided].sum())  # 25 loss + 2 x 27 visible gain
    assert n_changed == 25 + 54
    assert (r["n"], r["tp"], r["fp"], r["fn"]) == (int(decided.sum()), 25, 15, 54)
    assert r["f1"] == pytest.approx(50 / (50 + 15 + 54))
    # AUC: positives 25 at 0.9 and 54 at 0.2; negatives 15 at 0.9, the rest at 0.2
    n0 = int(decided.sum()) - n_changed
    wins = 25 * (n0 - 15) + 0.5 * 25 * 15 + 0.5 * 54 * (n0 - 15)
    assert r["auc"] == pytest.approx(wins / (n_changed * n0))
    assert r["objects"]["objects"] == 0  # both blobs are < 100 m2 at 0.5 m cells
    small = height_scores(ref, ds["change"].values[1], prob[1], cells, cell_area=4.0)  # as if 2 m cells
    assert small["objects"]["objects"] == 2 and small["objects"]["found"] == 1
    # the same raster forced to be read as binary ignores the gain class
    rep_b = evaluate(ds, tmp_path / "ref.tif", reference="binary")
    assert "reference" not in rep_b["images"]["b"]
