"""Parity with GDAL's RPC transformer, for every real camera model.

* ``Camera.project`` equals GDAL's ground -> image transform (minus its +0.5 pixel-corner offset)
  to <= 1e-6 px on 10,000 random points of the model's validity domain. GDAL reads the model
  from the file itself where it can (GeoTIFF/NITF/VRT, and .RPB / _rpc.txt / ALOS sidecars put next
  to a dummy GeoTIFF); for formats GDAL cannot read (DIMAP, .geom, JSON, YAML, EnMAP) it gets the
  same numbers through ``RPC.to_gdal()``, which checks the arithmetic, not the parsing (the
  parsing of those is checked in ``test_readers.py``).
* ``project(localize(row, col, h)) == (row, col)`` to <= 1e-4 px on random pixels of the image
  (or of the model's line/sample range) at random heights of the validity domain.
* Crop cameras (CNES crops, ``Camera.crop`` not identity) are compared on the native full scene,
  and their crop affine is checked separately.

Heights are passed to GDAL as per-point z (no RPC_HEIGHT / DEM options). The SkySat L1A and
``rpc_5395.vrt`` models have LAT_SCALE = LONG_SCALE = 1, a ±1° "validity domain" around a scene of a
few km: nearly all points drawn from that domain lie outside the image (0 % for SkySat, 0.7 % for
5395), where the cubics extrapolate to pixel values up to ~8e5. GDAL and offnadir still agree there
to < 1e-9 px, so no special tolerance is needed; the footprint sample (random image pixels
localised at random heights, then projected by both) covers the imaged area for every model.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import real
from rasterio.rpc import RPC as RioRPC
from rasterio.transform import RPCTransformer
from test_readers import CROPS, ENMAP, GD, MODELS, RP, SKYSAT

from offnadir.camera.camera import IDENTITY
from offnadir.camera.readers import read_camera

N_POINTS = 10_000
N_PIXELS = 2_000

#: text sidecars GDAL loads next to a GeoTIFF: file -> (tif name, sidecar name)
_SIDECARS = {
    GD + "md_dg.RPB": ("x.tif", "x.RPB"),
    GD + "md_ge_rgb_0010000_rpc.txt": ("x.tif", "x_rpc.txt"),
    GD + "md_ov_rpc.txt": ("x.tif", "x_rpc.txt"),
    GD + "test_rpc.txt": ("x.tif", "x_rpc.txt"),
    RP + "rpc_IKONOS.txt": ("x.tif", "x_rpc.txt"),
    RP + "rpc_PLANET_L1A.txt": ("x.tif", "x_rpc.txt"),
    RP + "rpc_PLANET_L1B.txt": ("x.tif", "x_rpc.txt"),
    SKYSAT: ("x.tif", "x_RPC.TXT"),
    GD + "alos/RPC-md_alos.txt": ("IMG-md_alos.tif", "RPC-md_alos.txt"),
}


def _gdal_rpc(rel: str, cam, tmp_path: Path):
    """GDAL's own RPC for the model file, and how it was obtained."""
    if MODELS[rel][0].startswith("gdal-raster"):
        with rasterio.open(real(rel)) as ds:
            return ds.rpcs, "file"
    if rel in _SIDECARS:
        tif, side = _SIDECARS[rel]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with rasterio.open(tmp_path / tif, "w", driver="GTiff", width=4, height=4, count=1,
                               dtype="uint8") as ds:
                ds.write(np.zeros((1, 4, 4), "uint8"))
        shutil.copy(real(rel), tmp_path / side)
        if "alos" in rel:
            (tmp_path / "summary.txt").write_text('Lbi_Satellite="ALOS"\n')
        with rasterio.open(tmp_path / tif) as ds:
            assert ds.rpcs is not None, f"GDAL did not load {side}"
            return ds.rpcs, "sidecar"
    return RioRPC.from_gdal(cam.rpc.to_gdal()), "to_gdal"


def _gdal_project(rio_rpc, lon, lat, h):
    with RPCTransformer(rio_rpc) as t:
        rows, cols = t.rowcol(lon, lat, zs=h, op=lambda x: x)
    return np.asarray(rows, float) - 0.5, np.asarray(cols, float) - 0.5


def _domain_points(cam, n, seed):
    lon0, lon1, lat0, lat1, h0, h1 = cam.rpc.domain
    rng = np.random.default_rng(seed)
    return rng.uniform(lon0, lon1, n), rng.uniform(lat0, lat1, n), rng.uniform(h0, h1, n)


PARITY = sorted(MODELS) + [f"{ENMAP}#band=150"]


@pytest.mark.parametrize("key", PARITY)
def test_project_matches_gdal(key, tmp_path):
    rel, _, band = key.partition("#band=")
    cam = read_camera(real(rel), band=int(band) if band else None)
    rio_rpc, how = _gdal_rpc(rel, cam, tmp_path) if not band else (RioRPC.from_gdal(cam.rpc.to_gdal()), "to_gdal")
    lon, lat, h = _domain_points(cam, N_POINTS, seed=7)
    # plus points of the imaged area: random pixels localised at random heights
    r0, r1, c0, c1 = _pixel_box(cam)
    rng = np.random.default_rng(8)
    hf = rng.uniform(cam.rpc.domain[4], cam.rpc.domain[5], N_PIXELS)
    lonf, latf = cam.localize(rng.uniform(r0, r1, N_PIXELS), rng.uniform(c0, c1, N_PIXELS), hf)
    for name, (lo, la, hh) in {"domain": (lon, lat, h), "footprint": (lonf, latf, hf)}.items():
        r, c = cam.project(lo, la, hh)
        gr, gc = _gdal_project(rio_rpc, lo, la, hh)
        assert np.isfinite(gr).all() and np.isfinite(gc).all(), f"GDAL failed on {name} points"
        err = max(np.abs(r - gr).max(), np.abs(c - gc).max())
        assert err <= 1e-6, (f"{key} ({how}, {name} sample): max error {err:.3g} px at |pixel| up to "
                             f"{max(np.abs(gr).max(), np.abs(gc).max()):.3g}")


def _pixel_box(cam):
    if cam.shape is not None and cam.shape[0] > 2 and cam.shape[1] > 2:
        return -0.5, cam.shape[0] - 0.5, -0.5, cam.shape[1] - 0.5
    n = cam.rpc
    return (n.line_off - abs(n.line_scale), n.line_off + abs(n.line_scale),
            n.samp_off - abs(n.samp_scale), n.samp_off + abs(n.samp_scale))


@pytest.mark.parametrize("key", PARITY)
def test_localize_round_trip(key):
    rel, _, band = key.partition("#band=")
    cam = read_camera(real(rel), band=int(band) if band else None)
    r0, r1, c0, c1 = _pixel_box(cam)
    rng = np.random.default_rng(7)
    row, col = rng.uniform(r0, r1, N_PIXELS), rng.uniform(c0, c1, N_PIXELS)
    h = rng.uniform(cam.rpc.domain[4], cam.rpc.domain[5], N_PIXELS)
    lon, lat = cam.localize(row, col, h)
    r2, c2 = cam.project(lon, lat, h)
    assert max(np.abs(r2 - row).max(), np.abs(c2 - col).max()) <= 1e-4


@pytest.mark.parametrize("image", sorted(CROPS))
def test_crop_camera_parity(image, tmp_path):
    """GDAL on the full-scene model; the crop affine on top is the exact GeoTransform mapping."""
    model = CROPS[image][0]
    cam = read_camera(real(model), image=real(image))
    assert cam.crop != IDENTITY
    full = cam.replace(crop=IDENTITY)
    lon, lat, h = _domain_points(cam, N_POINTS, seed=11)
    fr, fc = full.project(lon, lat, h)
    gr, gc = _gdal_project(RioRPC.from_gdal(cam.rpc.to_gdal()), lon, lat, h)
    assert max(np.abs(fr - gr).max(), np.abs(fc - gc).max()) <= 1e-6
    # crop pixels = inverse GeoTransform of the full-scene pixel (corner frames, ±0.5)
    with rasterio.open(real(image)) as ds:
        inv = ~ds.transform
    x, y = inv * (gc + 0.5, gr + 0.5)
    r, c = cam.project(lon, lat, h)
    assert max(np.abs(r - (np.asarray(y) - 0.5)).max(), np.abs(c - (np.asarray(x) - 0.5)).max()) <= 1e-6
    # round trip on the crop's own pixels
    rng = np.random.default_rng(5)
    row = rng.uniform(-0.5, cam.shape[0] - 0.5, N_PIXELS)
    col = rng.uniform(-0.5, cam.shape[1] - 0.5, N_PIXELS)
    hh = rng.uniform(cam.rpc.domain[4], cam.rpc.domain[5], N_PIXELS)
    lo, la = cam.localize(row, col, hh)
    r2, c2 = cam.project(lo, la, hh)
    assert max(np.abs(r2 - row).max(), np.abs(c2 - col).max()) <= 1e-4


def test_localize_matches_gdal_inverse():
    """GDAL's own image -> ground (tight pixel threshold) agrees with Camera.localize."""
    for rel in (GD + "rpc.vrt", RP + "rpc_WV2.xml", "s2p/tests/data/input_pair/img_01.tif"):
        cam = read_camera(real(rel))
        rng = np.random.default_rng(2)
        r0, r1, c0, c1 = _pixel_box(cam)
        row, col = rng.uniform(r0, r1, 200), rng.uniform(c0, c1, 200)
        h = float(cam.rpc.height_off)
        lon, lat = cam.localize(row, col, h)
        with RPCTransformer(RioRPC.from_gdal(cam.rpc.to_gdal()), RPC_HEIGHT=h,
                            RPC_PIXEL_ERROR_THRESHOLD=1e-7, RPC_MAX_ITERATIONS=100) as t:
            glon, glat = t.xy(row, col, offset="center")  # 'center' adds GDAL's +0.5 to native
        # (with a 1e-9 px threshold GDAL's own iteration gives up on a few points)
        assert np.abs(np.asarray(glon) - lon).max() < 1e-10 and np.abs(np.asarray(glat) - lat).max() < 1e-10


def test_skysat_localize_robust():
    """rpcm's test: localising SkySat pixel (0, 0) diverges in rpcm at h = 70 m and converges at
    90 m. offnadir's damped Newton converges at both (and at extreme heights of the ±9718 m domain),
    to the point GDAL finds, and projects back exactly."""
    cam = read_camera(real(SKYSAT))
    for h in (70.0, 90.0, -6000.0, 0.0, 3287.6, 12000.0):
        lon, lat = cam.localize(0.0, 0.0, h)
        r, c = cam.project(lon, lat, h)
        assert abs(r) < 1e-6 and abs(c) < 1e-6
        # on the imaged area, not on a far spurious root of the ±1° domain
        assert abs(lon - cam.rpc.lon_off) < 0.05 and abs(lat - cam.rpc.lat_off) < 0.05
        with RPCTransformer(RioRPC.from_gdal(cam.rpc.to_gdal()), RPC_HEIGHT=h,
                            RPC_PIXEL_ERROR_THRESHOLD=1e-7, RPC_MAX_ITERATIONS=100) as t:
            glon, glat = t.xy([0.0], [0.0], offset="center")
        assert abs(glon[0] - lon) < 1e-8 and abs(glat[0] - lat) < 1e-8
