"""Geoid undulation grids (EGM96 / EGM2008 as GTX, OTB .grd, GeoTIFF: anything GDAL reads in lon/lat).

``h_ellipsoid = H_geoid + N(lon, lat)``. The grid is read once per process and interpolated
bilinearly with longitude wrap-around.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from offnadir.errors import DataError, InputFileError


@dataclass(frozen=True)
class Geoid:
    path: str

    def undulation(self, lon, lat) -> np.ndarray:
        """Geoid height N (metres above the WGS84 ellipsoid) at lon/lat (degrees)."""
        grid, lon0, dlon, lat0, dlat, wraps = _load(self.path)
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        fx = (lon - lon0) / dlon
        if wraps:
            fx = np.mod(fx, grid.shape[1])
        fy = (lat - lat0) / dlat
        x0 = np.floor(fx).astype(np.int64)
        y0 = np.floor(fy).astype(np.int64)
        tx = fx - x0
        ty = fy - y0
        ny, nx = grid.shape
        if wraps:
            x1 = (x0 + 1) % nx
        else:
            x0 = np.clip(x0, 0, nx - 2)
            x1 = x0 + 1
        y0 = np.clip(y0, 0, ny - 2)
        y1 = y0 + 1
        g = grid
        return ((1 - ty) * ((1 - tx) * g[y0, x0] + tx * g[y0, x1]) + ty * ((1 - tx) * g[y1, x0] + tx * g[y1, x1]))


@lru_cache(maxsize=4)
def _load(path: str):
    import rasterio

    try:
        with rasterio.open(path) as ds:
            grid = ds.read(1).astype(np.float64)
            t = ds.transform
            nodata = ds.nodata
            crs = ds.crs
    except rasterio.errors.RasterioIOError as e:
        raise InputFileError(f"{path}: cannot open the geoid grid ({e}). Name a GTX, .grd or GeoTIFF geoid grid, "
                             "e.g. ../shared/data/real/shareloc/tests/data/dtm/geoid/egm96_15.gtx.") from None
    if crs is not None and not crs.is_geographic:
        raise DataError(f"{path}: a geoid grid must be in longitude/latitude, this one is in {crs}.")
    if nodata is not None:
        grid[grid == nodata] = np.nan
    if t.b != 0 or t.d != 0:
        raise DataError(f"{path}: rotated geoid grids are not supported.")
    # pixel-centre lon/lat of the first cell
    lon0 = t.c + 0.5 * t.a
    lat0 = t.f + 0.5 * t.e
    span = grid.shape[1] * t.a
    wraps = abs(span - 360.0) < 1e-6 * 360 or abs(span - 360.0 - t.a) < 1e-9
    if wraps and abs(span - 360.0 - t.a) < 1e-9:
        grid = grid[:, :-1]  # last column repeats the first (0..360 inclusive grids)
    return grid, lon0, t.a, lat0, t.e, wraps
