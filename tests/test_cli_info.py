"""``offnadir info`` on real files: GeoTIFF RPC tags, a .RPB, DIMAP and Maxar XML, a CNES crop with
its .geom; human and JSON output. References: GDAL's RPC transformer (through rasterio) for the
footprint, the vendor's own mean satellite elevation/azimuth for the view angles."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
from conftest import real
from rasterio.rpc import RPC as RioRPC
from rasterio.transform import RPCTransformer

from offnadir.cli import SUBCOMMANDS, main

QB2 = real("orthority/tests/data/rpc/qb2_basic1b.tif")
QB2_GCPS = real("orthority/tests/data/rpc/gcps.geojson")
RPB = real("gdal/autotest/gcore/data/md_dg.RPB")
DIMAP = real("shareloc/tests/data/rpc/RPC_PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.XML")
VENTOUX = real("shareloc/tests/data/image/phr_ventoux/left_image.tif")
VENTOUX_GEOM = real("shareloc/tests/data/rpc/phr_ventoux/left_image.geom")
WV = [real(f"rpcm/tests/test_rpc_files/rpc_WV{k}.xml") for k in (1, 2, 3)]

TOP_KEYS = {"offnadir_version", "file", "model_file", "model_format", "sensor", "acquired", "acquired_from",
            "image_size", "validity_domain", "crop_affine", "footprint", "footprint_note", "view", "view_note", "gcps"}
GCP_KEYS = {"file", "count", "outside_image", "model", "bias", "rms_before", "rms_after", "rms_leave_one_out",
            "mean_miss_before", "points"}
POINT_KEYS = {"id", "lon", "lat", "h", "row", "col", "row_before", "col_before", "row_after", "col_after",
              "residual_row", "residual_col", "residual", "residual_row_before", "residual_col_before",
              "residual_before", "in_image", "row_loo", "col_loo", "residual_loo"}


def info_json(capsys, *argv):
    assert main(["info", *map(str, argv), "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert set(doc) == TOP_KEYS
    return doc, err


def info_text(capsys, *argv):
    assert main(["info", *map(str, argv)]) == 0
    out, err = capsys.readouterr()
    return out, err


def _gdal_corners(rpc_gdal: dict, h: float, nr: int, nc: int, r0: float = 0.0, c0: float = 0.0):
    """lon/lat of the four outer pixel corners from GDAL's RPC transformer (GDAL pixel space:
    (0, 0) is the top-left corner of the first pixel; r0/c0 = crop position in the full scene).
    GDAL inverts the RPC only to 0.1 px by default: ask for 1e-6 px."""
    with RPCTransformer(RioRPC.from_gdal(rpc_gdal), RPC_PIXEL_ERROR_THRESHOLD=1e-6) as t:
        rows = [r0, r0, r0 + nr, r0 + nr]
        cols = [c0, c0 + nc, c0 + nc, c0]
        lon, lat = t.xy(rows, cols, zs=[h] * 4, offset="ul")
    return np.column_stack([lon, lat])


def test_subcommands_registered():
    assert "info" in SUBCOMMANDS


def test_info_geotiff_with_rpc_tags(capsys):
    doc, err = info_json(capsys, QB2)
    assert err == ""
    assert doc["image_size"] == {"rows": 1450, "cols": 850}
    assert doc["model_format"].startswith("gdal-raster") and doc["model_file"] == str(QB2)
    assert doc["gcps"] is None and doc["footprint_note"] is None
    fp = doc["footprint"]
    assert fp["h"] == 703.0 and len(fp["ring"]) == 33 and fp["ring"][0] == fp["ring"][-1]
    with rasterio.open(QB2) as ds:
        ref = _gdal_corners(ds.rpcs.to_gdal(), 703.0, ds.height, ds.width)
    ours = np.array([fp["corners"][k] for k in ("top-left", "top-right", "bottom-right", "bottom-left")])
    np.testing.assert_allclose(ours, ref, atol=1e-7)  # ~1 cm
    v = doc["view"]
    assert (v["row"], v["col"]) == (724.5, 424.5)
    assert 0 < v["off_nadir_deg"] < 30 and 0 <= v["azimuth_deg"] < 360

    out, _ = info_text(capsys, QB2)
    assert "1450 rows x 850 cols" in out and "gdal-raster" in out
    assert re.search(r"top-left\s+24\.3597\d+\s+-33\.6484\d+", out)
    assert re.search(r"off-nadir 15\.\d\d°, azimuth 29\d\.\d\d°", out)


def test_info_with_gcps_reports_residuals(capsys):
    doc, err = info_json(capsys, QB2, "--gcps", QB2_GCPS)
    assert err.startswith("offnadir: warning: ") and "2 of 5 GCPs lie outside" in err
    g = doc["gcps"]
    assert set(g) == GCP_KEYS and g["count"] == 5 and g["outside_image"] == 2 and g["model"] == "shift"
    assert all(set(p) == POINT_KEYS for p in g["points"])
    assert 3.0 < g["mean_miss_before"] < 4.2
    assert g["rms_after"] < 0.2 and g["rms_leave_one_out"] < 0.3
    assert max(p["residual_loo"] for p in g["points"]) < 1.0
    assert [p["id"] for p in g["points"] if not p["in_image"]] == ["house-swcnr-90b", "grasnek-roadjunction1-50"]

    out, err = info_text(capsys, QB2, "--gcps", QB2_GCPS, "--bias-model", "affine")
    assert "GCPs: 5 from" in out and "bias model: affine" in out and "fitted bias: row' = " in out
    assert re.search(r"\*grasnek-roadjunction1-50\s+11\.37\s+-185\.18", out)
    assert re.search(r"RMS\s+3\.6\d", out)
    # the same GCPs from the tif's own tags (Orthority wrote them centre-based)
    doc2, _ = info_json(capsys, QB2, "--gcps", QB2, "--gcp-pixel-origin", "center")
    assert doc2["gcps"]["rms_before"] == pytest.approx(g["rms_before"], abs=1e-9)


def test_info_rpb_sidecar_has_no_size(capsys):
    doc, _ = info_json(capsys, RPB)
    assert doc["image_size"] is None and doc["footprint"] is None
    assert "image size unknown" in doc["footprint_note"]
    assert doc["sensor"] == "WV03" and doc["model_format"] == "rpb"
    assert doc["view"] is not None and "image size unknown" in doc["view_note"]
    out, _ = info_text(capsys, RPB)
    assert "unknown (model file only)" in out and "no footprint" in out


def test_info_dimap_xml(capsys):
    doc, _ = info_json(capsys, DIMAP)
    assert doc["model_format"] == "dimap-v2" and doc["sensor"].startswith("PHR")
    assert doc["acquired"].startswith("2017-09-28")
    # the time is the product name's (no DIM_ document beside this RPC file), and info says so
    assert doc["acquired_from"].startswith("the product name") and "RPC_PHR1B_P_201709281038393" in doc["acquired_from"]
    vd = doc["validity_domain"]
    assert vd["lon_min"] < 7.18 < vd["lon_max"] and vd["lat_min"] < 43.68 < vd["lat_max"]
    out, _ = info_text(capsys, DIMAP)
    assert "dimap-v2" in out and "2017-09-28" in out and "(from the product name in the camera model's file name RPC_PHR1B" in out


@pytest.mark.parametrize("path", WV, ids=lambda p: p.name)
def test_info_view_angles_match_vendor_metadata(capsys, path):
    """Maxar XML gives the mean satellite elevation and azimuth seen from the scene."""
    doc, _ = info_json(capsys, path)
    text = path.read_text()
    sat_el = float(re.search(r"<MEANSATEL>([^<]+)<", text, re.I).group(1))
    sat_az = float(re.search(r"<MEANSATAZ>([^<]+)<", text, re.I).group(1))
    v = doc["view"]
    assert abs((90.0 - v["off_nadir_deg"]) - sat_el) < 0.3
    assert abs((v["azimuth_deg"] - sat_az + 180) % 360 - 180) < 0.3


def test_info_cnes_crop_with_model_option(capsys):
    """left_image.tif has no RPC; its .geom is the full scene's, and its GeoTransform puts the crop
    at (5000, 5000) of the scene: the footprint must be the crop's, as GDAL computes it."""
    doc, _ = info_json(capsys, VENTOUX, "--model", VENTOUX_GEOM)
    assert doc["image_size"] == {"rows": 500, "cols": 500}
    assert doc["file"] == str(VENTOUX) and doc["model_file"] == str(VENTOUX_GEOM)
    assert doc["crop_affine"] == [1.0, 0.0, -5000.0, 0.0, 1.0, -5000.0]
    from offnadir import read_camera

    full = read_camera(VENTOUX_GEOM)
    ref = _gdal_corners(full.rpc.to_gdal(), doc["footprint"]["h"], 500, 500, r0=5000.0, c0=5000.0)
    c = doc["footprint"]["corners"]
    ours = np.array([c[k] for k in ("top-left", "top-right", "bottom-right", "bottom-left")])
    np.testing.assert_allclose(ours, ref, atol=1e-7)
    out, _ = info_text(capsys, VENTOUX, "--model", VENTOUX_GEOM)
    assert "row' = 1·row + 0·col - 5000" in out
