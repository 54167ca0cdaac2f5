"""Golden values from other projects' tests (data/real/golden, compiled in PROVENANCE.md), each
reproduced with offnadir's readers and Camera within the tolerance its source states.

Conventions (golden_values.json): GDAL and shareloc count pixels from the top-left corner of the
first pixel (native + 0.5); rpcm/s2p and the triangulation README use RPC00B native pixels.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import rasterio
from conftest import real
from pyproj import Transformer

from offnadir.camera.readers import read_camera
from offnadir.errors import ConvergenceError

GOLDEN = json.loads(real("golden/golden_values.json").read_text())
T11 = json.loads(real("golden/gdal_transformer_11_rpc_and_golden.json").read_text())
GDAL_CASES = GOLDEN["gdal_autotest_transformer"]["cases"]
SHARELOC = GOLDEN["shareloc"]["cases"]


# ------------------------------------------------------------------------------ GDAL autotest

def _gdal_image_to_ground():
    out = []
    for case in GDAL_CASES:
        for i, g in enumerate(case["image_to_ground"]):
            out.append(pytest.param(case["rpc_file"], g, id=f"{case['rpc_file'].rsplit('/', 1)[-1]}-{i}"))
    return out


@pytest.mark.parametrize("rpc_file,g", _gdal_image_to_ground())
def test_gdal_image_to_ground(rpc_file, g):
    """GDAL pixel/line are corner-based: native = GDAL - 0.5."""
    cam = read_camera(real(rpc_file))
    lon, lat = cam.localize(g["line"] - 0.5, g["pixel"] - 0.5, g["h"])
    assert abs(lon - g["lon"]) <= g["tol_deg"] and abs(lat - g["lat"]) <= g["tol_deg"]


def test_gdal_rpc_vrt_ground_to_image_round_trip():
    case = GDAL_CASES[0]
    cam = read_camera(real(case["rpc_file"]))
    for g in case["image_to_ground"]:
        r, c = cam.project(g["lon"], g["lat"], g["h"])
        tol = case["ground_to_image_roundtrip_tol_px"]
        assert abs(r - (g["line"] - 0.5)) <= tol and abs(c - (g["pixel"] - 0.5)) <= tol


@pytest.mark.parametrize("i", range(3))
def test_gdal_rpc_vrt_dem_cases(i):
    """GDAL's DEM cases reduce to a constant height: DEM 15 m x RPC_HEIGHT_SCALE 2 = 30 m, and
    RPC_DEM_MISSING_VALUE 0 (x2) = 0 m outside the DEM. The 'near' case differs from bilinear by
    3e-10 deg, well inside the 1e-6 deg tolerance of the non-DEM cases."""
    case = GDAL_CASES[0]
    d = case["dem_cases"][i]
    h = 0.0 if "MISSING_VALUE" in d["desc"] else 30.0
    cam = read_camera(real(case["rpc_file"]))
    lon, lat = cam.localize(d["line"] - 0.5, d["pixel"] - 0.5, h)
    assert abs(lon - d["lon"]) <= 1e-6 and abs(lat - d["lat"]) <= 1e-6


def test_gdal_transformer_11():
    """RPC_HEIGHT=1150: GDAL (0, 0) is native (-0.5, -0.5). RPC_HEIGHT=4000 must fail (GDAL: no
    convergence): it is 231 height scales outside the model; offnadir raises ConvergenceError
    instead of returning the spurious root it would otherwise find 20 longitude scales away."""
    cam = read_camera(real("golden/gdal_transformer_11_rpc_and_golden.json"))
    ok, fail = T11["golden"]
    lon, lat = cam.localize(ok["line"] - 0.5, ok["pixel"] - 0.5, ok["height"])
    assert abs(lon - ok["lon"]) <= ok["tol"] and abs(lat - ok["lat"]) <= ok["tol"]
    with pytest.raises(ConvergenceError):
        cam.localize(fail["line"] - 0.5, fail["pixel"] - 0.5, fail["height"])
    lon, lat = cam.localize(fail["line"] - 0.5, fail["pixel"] - 0.5, fail["height"], errors="nan")
    assert np.isnan(lon) and np.isnan(lat)
    assert cam.shape == (T11["raster_size"][1], T11["raster_size"][0])


# ----------------------------------------------------------------------------------- shareloc

@pytest.mark.parametrize("case,rpc_file", [(i, f) for i in (0, 1) for f in SHARELOC[i]["rpc_files"]])
def test_shareloc_ground_to_image(case, rpc_file):
    g = SHARELOC[case]["ground_to_image"]
    cam = read_camera(real(rpc_file))
    r, c = cam.project(g["lon"], g["lat"], g["h"])
    assert abs(r - (g["row_shareloc"] - 0.5)) <= g["tol_px"]
    assert abs(c - (g["col_shareloc"] - 0.5)) <= g["tol_px"]


def _tri():
    return SHARELOC[2]


@pytest.mark.parametrize("side", ["left", "right"])
def test_shareloc_triangulation_sensor_points(side):
    """README points (CNES tools): native sensor position <-> WGS84 at two heights. The source gives
    no tolerance; its reproduction note says 2e-5 px, so 1e-4 px and 1e-9 deg (0.1 mm) are used."""
    t = _tri()
    cam = read_camera(real(t[f"{side}_rpc"]))
    for p in t[side]:
        r, c = cam.project(p["lon"], p["lat"], p["h"])
        assert abs(r - p["row"]) < 1e-4 and abs(c - p["col"]) < 1e-4
        lon, lat = cam.localize(p["row"], p["col"], p["h"])
        assert abs(lon - p["lon"]) < 1e-9 and abs(lat - p["lat"]) < 1e-9


def test_shareloc_triangulation_ecef():
    """Two lines of sight (each through its point at two heights) meet at the README's ECEF point.
    Tolerance 1 mm (no tolerance given; offnadir's midpoint lands 5e-5 m from it)."""
    t = _tri()
    to_ecef = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    lines = []
    for side in ("left", "right"):
        cam = read_camera(real(t[f"{side}_rpc"]))
        pts = []
        for p in t[side]:
            lon, lat = cam.localize(p["row"], p["col"], p["h"])
            pts.append(np.array(to_ecef.transform(float(lon), float(lat), p["h"])))
        lines.append(pts)
    (a0, a1), (b0, b1) = lines
    u, v, w = a1 - a0, b1 - b0, a0 - b0
    s, q = np.linalg.solve([[u @ u, -(u @ v)], [u @ v, -(v @ v)]], [-(w @ u), -(w @ v)])
    mid = (a0 + s * u + b0 + q * v) / 2
    assert np.linalg.norm(mid - np.array(t["triangulated_ECEF"])) < 1e-3


def _grid(path):
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.float64), ds.transform


def _bilinear(grid, lon, lat):
    """Bilinear interpolation between grid posts (GDAL 'area' pixels: posts at pixel centres)."""
    a, T = grid
    col, row = ~T * (lon, lat)
    col, row = col - 0.5, row - 0.5
    c0, r0 = int(np.floor(col)), int(np.floor(row))
    fc, fr = col - c0, row - r0
    v = a[r0:r0 + 2, c0:c0 + 2]
    return (v[0, 0] * (1 - fc) * (1 - fr) + v[0, 1] * fc * (1 - fr)
            + v[1, 0] * (1 - fc) * fr + v[1, 1] * fc * fr)


def test_shareloc_ventoux_dem_intersection():
    """First pixel centre of phr_ventoux/left_image.tif (full native 5000, 5000) intersected with
    SRTM N44E005 (EGM96 heights) + EGM96 geoid, by bisection on the ellipsoidal height along the
    exact RPC line of sight. (A DEM-intersection API is future work, issue 3; this is test code.)

    The golden is shareloc's own output with a stated tolerance of 1e-8 deg / 1e-4 m. shareloc
    builds a straight line of sight between two heights, so its point projects 0.006 px (3 mm) off
    the target pixel (golden_values.json 'reproduced'); the exact intersection found here is
    1.1e-8 / 2.7e-8 deg and 0.7 mm from it. The tolerance asserted is therefore 5e-8 deg (5 mm) and
    2e-3 m, and the exact intersection must project onto the pixel to 1e-6 px."""
    g = SHARELOC[3]
    cam = read_camera(real(g["rpc_file"]))
    dem, geoid = _grid(real(g["dem"])), _grid(real(g["geoid"]))

    def gap(h):
        lon, lat = cam.localize(5000.0, 5000.0, h)
        lon, lat = float(lon), float(lat)
        return h - (_bilinear(dem, lon, lat) + _bilinear(geoid, lon, lat)), lon, lat

    lo, hi = 0.0, 2000.0
    assert gap(lo)[0] < 0 < gap(hi)[0]
    for _ in range(60):
        mid = (lo + hi) / 2
        if gap(mid)[0] < 0:
            lo = mid
        else:
            hi = mid
    h = (lo + hi) / 2
    _, lon, lat = gap(h)
    res = g["result"]
    assert abs(lon - res["lon"]) < 5e-8 and abs(lat - res["lat"]) < 5e-8 and abs(h - res["h"]) < 2e-3
    r, c = cam.project(lon, lat, h)
    assert abs(r - 5000.0) < 1e-6 and abs(c - 5000.0) < 1e-6
    # the crop camera of left_image.tif puts the same point on its pixel (0, 0)
    crop = read_camera(real("shareloc/tests/data/rpc/phr_ventoux/left_image.geom"),
                       image=real("shareloc/tests/data/image/phr_ventoux/left_image.tif"))
    r, c = crop.project(lon, lat, h)
    assert abs(r) < 1e-6 and abs(c) < 1e-6


# ----------------------------------------------------------------------------------------- s2p

def test_s2p_matches_from_rpc():
    """125 img_01 -> img_02 correspondences generated by s2p from the RPCs at 5 altitudes (native
    pixels). s2p's test tolerance is rtol 0.01 / atol 0.1; they reproduce to 1e-6 px."""
    lines = [ln for ln in real("golden/s2p_pair_matches_from_rpc_with_alt.csv").read_text().splitlines()
             if not ln.startswith("#")]
    rows = list(csv.DictReader(lines))
    assert len(rows) == 125
    a = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    c1 = read_camera(real("s2p/tests/data/input_pair/img_01.tif"))
    c2 = read_camera(real("s2p/tests/data/input_pair/img_02.tif"))
    lon, lat = c1.localize(a["y1"], a["x1"], a["alt"])
    r2, col2 = c2.project(lon, lat, a["alt"])
    np.testing.assert_allclose(col2, a["x2"], rtol=0.01, atol=0.1)
    np.testing.assert_allclose(r2, a["y2"], rtol=0.01, atol=0.1)
    assert max(np.abs(col2 - a["x2"]).max(), np.abs(r2 - a["y2"]).max()) < 1e-6
    # the derived lon/lat columns came from GDAL's inverse
    assert np.abs(lon - a["lon"]).max() < 1e-9 and np.abs(lat - a["lat"]).max() < 1e-9


def _roi(cam, z):
    poly = np.array(GOLDEN["s2p"]["roi_process"]["ll_poly"])
    r, c = cam.project(poly[:, 0], poly[:, 1], z)
    return [c.min(), r.min(), c.max() - c.min(), r.max() - r.min()]


def test_s2p_roi_process():
    roi = GOLDEN["s2p"]["roi_process"]
    cam = read_camera(real(roi["rpc"]))
    case_off, case_dsm, case_geoid, case_srtm = roi["cases"]
    assert np.allclose(_roi(cam, cam.rpc.height_off), case_off["expected"], atol=case_off["tol"], rtol=0)
    # the exogenous DSM value, sampled like s2p (nearest, at the polygon centroid)
    centroid = np.array(roi["ll_poly"]).mean(axis=0)
    with rasterio.open(real("s2p/tests/data/expected_output/pair/dsm.tif")) as ds:
        x, y = Transformer.from_crs("EPSG:4326", ds.crs, always_xy=True).transform(*centroid)
        z = float(next(ds.sample([(x, y)]))[0])
    assert z == pytest.approx(2333.6707, abs=1e-4)
    assert np.allclose(_roi(cam, z), case_dsm["expected"], atol=case_dsm["tol"], rtol=0)
    # + EGM96 geoid undulation there (bilinear on the 15' grid) -> ellipsoidal height
    n = _bilinear(_grid(real("shareloc/tests/data/dtm/geoid/egm96_15.gtx")), *centroid)
    assert n == pytest.approx(2.26, abs=0.01)
    assert np.allclose(_roi(cam, z + n), case_geoid["expected"], atol=case_geoid["tol"], rtol=0)
    assert "not reproducible offline" in case_srtm["note"]  # SRTM via srtm4 download: not tested


@pytest.mark.skip(reason="s2p roi_process with SRTM heights needs srtm4's download: not reproducible offline")
def test_s2p_roi_process_srtm():
    pass


# ------------------------------------------------------------------------------------ orthority

def test_orthority_gcp_offsets():
    """The QB2 vendor RPC misses the 5 surveyed GCPs by the measured (col, row) offsets (given to
    3 decimals, so 6e-4 px)."""
    g = GOLDEN["orthority_qb2_field_gcps"]
    cam = read_camera(real("orthority/tests/data/rpc/qb2_basic1b.tif"))
    feats = json.loads(real("orthority/tests/data/rpc/gcps.geojson").read_text())["features"]
    for f, (dc, dr) in zip(feats, g["rpc_minus_gcp_px_measured"]):
        j, i = f["properties"]["ji"]
        lon, lat, h = f["geometry"]["coordinates"]
        r, c = cam.project(lon, lat, h)
        assert abs((c - j) - dc) < 6e-4 and abs((r - i) - dr) < 6e-4

