"""Small synthetic scenes that know their answer, for cube tests.

The DSM is on a local transverse Mercator grid centred on the scene (so grid north is true north
and the scale is 1 at the centre). The camera is an exact affine view at off-nadir angle ``theta``
and azimuth ``phi`` (ground -> sensor, clockwise from north) written as an RPC00B with linear
terms: a point at height h is seen where the ground point ``h·tanθ`` towards the sensor would be
seen at height 0... i.e. relief displacement is ``h·tanθ`` away from the sensor. Image values
encode the ground position that pixel sees at h=0 (``value = 1000 + 10*col + row/100``), so any
sampling can be checked.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from offnadir.camera.rpc import RPC

LON0, LAT0 = 5.44, 43.26
_A = 6378137.0
_E2 = 6.69437999014e-3


def metres_per_degree(lat0=LAT0):
    phi = math.radians(lat0)
    w = math.sqrt(1 - _E2 * math.sin(phi) ** 2)
    k_e = math.radians(1) * _A / w * math.cos(phi)
    k_n = math.radians(1) * _A * (1 - _E2) / w**3
    return k_e, k_n


def local_crs() -> str:
    return f"+proj=tmerc +lat_0={LAT0} +lon_0={LON0} +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m +no_defs"


def affine_rpc(theta_deg, phi_deg, *, gsd=0.5, rows=400, cols=400, h_ref=100.0) -> RPC:
    """Affine camera as RPC00B: image centre sees (LON0, LAT0, h_ref)."""
    k_e, k_n = metres_per_degree()
    t = math.tan(math.radians(theta_deg))
    s, c = math.sin(math.radians(phi_deg)), math.cos(math.radians(phi_deg))
    lon_s, lat_s, h_s, S = 0.01, 0.01, 100.0, 1000.0
    r0, c0 = (rows - 1) / 2, (cols - 1) / 2
    z = [0.0] * 20
    # row = r0 - (N - (h-h_ref) t cosφ)/gsd ; col = c0 + (E - (h-h_ref) t sinφ)/gsd
    line_num = list(z)
    line_num[2] = -lat_s * k_n / (gsd * S)
    line_num[3] = h_s * t * c / (gsd * S)
    samp_num = list(z)
    samp_num[1] = lon_s * k_e / (gsd * S)
    samp_num[3] = -h_s * t * s / (gsd * S)
    den = [1.0] + [0.0] * 19
    return RPC(line_off=r0, samp_off=c0, lat_off=LAT0, lon_off=LON0, height_off=h_ref, line_scale=S,
               samp_scale=S, lat_scale=lat_s, lon_scale=lon_s, height_scale=h_s, line_num=tuple(line_num),
               line_den=tuple(den), samp_num=tuple(samp_num), samp_den=tuple(den), source="synthetic")


def write_image(path, rpc: RPC, rows=400, cols=400, bands=2, acquired="2022-05-01T10:00:00"):
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    data = np.stack([1000.0 + 10.0 * c + r / 100.0 + 7.0 * b for b in range(bands)]).astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", width=cols, height=rows, count=bands, dtype="float32") as dst:
        dst.write(data)
        dst.rpcs = rasterio.rpc.RPC.from_gdal(rpc.to_gdal())
        # GDAL's acquisition field (its IMAGERY domain): the TIFF DateTime tag is the file's creation
        # time, which offnadir does not read as an acquisition time
        dst.update_tags(ns="IMAGERY", ACQUISITIONDATETIME=acquired)
    return Path(path)


def write_dsm(path, heights: np.ndarray, cell=0.5, crs=None, tags=None):
    ny, nx = heights.shape
    transform = from_origin(-nx * cell / 2, ny * cell / 2, cell, cell)
    with rasterio.open(path, "w", driver="GTiff", width=nx, height=ny, count=1, dtype="float32",
                       crs=crs or local_crs(), transform=transform, nodata=None) as dst:
        dst.write(heights.astype(np.float32), 1)
        dst.update_tags(**(tags if tags is not None else {"VERTICAL_DATUM": "ellipsoid"}))
    return Path(path)


def box_scene(n=160, ground=100.0, boxes=((60, 100, 60, 100, 30.0),)):
    """Flat ground at ``ground`` m with boxes (i0, i1, j0, j1, height above ground)."""
    h = np.full((n, n), ground)
    for i0, i1, j0, j1, bh in boxes:
        h[i0:i1, j0:j1] = ground + bh
    return h


def random_boxes(n: int, seed: int) -> np.ndarray:
    """Flat ground at 100 m with 25 boxes 8-28 cells wide and 4-20 m high placed from ``seed``
    (the sun-estimate tests' DSM; benchmarks/eval_sun_null.py draws the same boxes)."""
    rng = np.random.default_rng(seed)
    h = np.full((n, n), 100.0)
    for _ in range(25):
        i, j = rng.integers(0, n - 30, 2)
        a, b = rng.integers(8, 28, 2)
        h[i:i + a, j:j + b] = np.maximum(h[i:i + a, j:j + b], 100 + rng.uniform(4, 20))
    return h
