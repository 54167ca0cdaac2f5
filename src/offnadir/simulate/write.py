"""Writing the simulated scene: GeoTIFFs (DSM grid products and sensor-geometry images with RPC
tags), GCP CSV files and scene.json.

Tags (all in the default GDAL metadata domain unless said otherwise):

* DSM grid rasters (``dsm.tif``, ``dsm_epoch2.tif``, ``dtm.tif``, ``truth_*.tif``): CRS and
  geotransform of the grid (area convention: the transform gives the north-west corner of the
  first cell). DSMs say how their heights are referenced with ``VERTICAL_DATUM=ellipsoid`` (what
  :func:`offnadir.io.dsm.open_dsm_source` reads) and ``VERTICAL_CRS=EPSG:4979`` (the WGS 84 3-D
  geographic CRS whose third axis is the ellipsoidal height); the horizontal CRS is plain UTM. The
  band unit is ``metre``.
* Images (``base.tif``, ``target.tif``): no CRS, no geotransform (sensor geometry), the RPC in the
  GeoTIFF RPC tag (GDAL ``RPC`` domain, written through rasterio), ``TIFFTAG_DATETIME``
  (``YYYY:MM:DD HH:MM:SS``, UTC), ``ACQUISITION_DATETIME`` (ISO 8601 UTC) and, in GDAL's
  ``IMAGERY`` domain, ``ACQUISITIONDATETIME`` and ``SATELLITEID`` (what the vendor metadata readers
  of GDAL fill in); band descriptions B, G, R, NIR.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np

SATELLITE_ID = "OFFNADIR-SIM"
BANDS = ("B", "G", "R", "NIR")


def _profile_grid(grid, dtype, count=1, nodata=None):
    from rasterio.crs import CRS

    p = dict(driver="GTiff", width=grid.nx, height=grid.ny, count=count, dtype=dtype,
             crs=CRS.from_user_input(grid.crs), transform=grid.transform, compress="deflate",
             tiled=True, blockxsize=256, blockysize=256)
    if grid.nx < 256 or grid.ny < 256:
        p.update(tiled=False)
        p.pop("blockxsize")
        p.pop("blockysize")
    if nodata is not None:
        p["nodata"] = nodata
    return p


def write_grid_raster(path: Path, arr: np.ndarray, grid, *, tags: dict, description: str, unit: str | None = None):
    import rasterio

    arr = np.asarray(arr)
    with rasterio.open(path, "w", **_profile_grid(grid, arr.dtype.name)) as dst:
        dst.write(arr, 1)
        dst.update_tags(**{k: str(v) for k, v in tags.items()})
        dst.set_band_description(1, description)
        if unit:
            dst.update_tags(1, UNITTYPE=unit)
            dst.units = (unit,)


def write_dsm(path: Path, dsm: np.ndarray, grid, *, epoch: int, acquired: str, extra: dict | None = None):
    tags = dict(VERTICAL_DATUM="ellipsoid",
                VERTICAL_CRS="EPSG:4979 (WGS 84 ellipsoidal height, metre)",
                HEIGHTS="metres above the WGS84 ellipsoid",
                EPOCH=epoch, ACQUISITION_DATETIME=acquired, SIMULATED_BY="offnadir.simulate",
                GEOMETRY="box: each cell is a flat-topped prism at its value")
    tags.update(extra or {})
    write_grid_raster(path, dsm.astype(np.float32), grid, tags=tags,
                      description="surface height above the WGS84 ellipsoid", unit="metre")


def write_image(path: Path, img: np.ndarray, rpc, *, acquired: str | None, tags: dict):
    """Sensor-geometry image (bands, rows, cols) with RPC tags and acquisition time (none when
    ``acquired`` is None: an image without time metadata; one band is named P)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.rpc import RPC as RioRPC

    from offnadir.simulate.sun import parse_utc

    t = parse_utc(acquired) if acquired is not None else None
    nb, nr, nc = img.shape
    prof = dict(driver="GTiff", width=nc, height=nr, count=nb, dtype=img.dtype.name, compress="deflate",
                interleave="pixel", photometric="MINISBLACK")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(img)
            dst.rpcs = RioRPC.from_gdal(rpc.to_gdal())
            if t is not None:
                dst.update_tags(TIFFTAG_DATETIME=t.strftime("%Y:%m:%d %H:%M:%S"),
                                ACQUISITION_DATETIME=t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                SENSOR=SATELLITE_ID, **{k: str(v) for k, v in tags.items()})
                dst.update_tags(ns="IMAGERY", ACQUISITIONDATETIME=t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                                SATELLITEID=SATELLITE_ID)
            else:
                dst.update_tags(SENSOR=SATELLITE_ID, **{k: str(v) for k, v in tags.items()})
                dst.update_tags(ns="IMAGERY", SATELLITEID=SATELLITE_ID)
            for k, name in enumerate(BANDS[:nb] if nb > 1 else ("P",)):
                dst.set_band_description(k + 1, name)


def write_gcps(path: Path, records: list[dict]):
    """CSV ``id,lon,lat,h,row,col`` (row/col RPC00B native, 0-based pixel centres; h ellipsoidal)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["id", "lon", "lat", "h", "row", "col"])
        for r in records:
            w.writerow([r["id"], f"{r['lon']:.12f}", f"{r['lat']:.12f}", f"{r['h']:.6f}",
                        f"{r['row']:.8f}", f"{r['col']:.8f}"])


def write_json(path: Path, obj: dict):
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o)}")

    with open(path, "w") as f:
        json.dump(obj, f, indent=1, default=default, sort_keys=False)
        f.write("\n")
