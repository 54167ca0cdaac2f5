"""Ground geometry of the DSM grid: cell centres to lon/lat (pyproj), lines of sight of a camera
expressed on the grid, and the coarse lattice that makes both cheap and tiling-independent.

Grid indices: ``i`` is the DSM row (y), ``j`` the DSM column (x); cell (i, j) has its centre at
``transform * (j + 0.5, i + 0.5)``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from offnadir.errors import DataError


@lru_cache(maxsize=16)
def _to_lonlat(crs_wkt: str):
    from pyproj import CRS, Transformer

    crs = CRS.from_wkt(crs_wkt)
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    return Transformer.from_crs(crs, CRS.from_epsg(4326), always_xy=True)


def cell_xy(transform, i, j):
    a, b, c, d, e, f = transform[:6]
    i = np.asarray(i, dtype=np.float64) + 0.5
    j = np.asarray(j, dtype=np.float64) + 0.5
    return c + a * j + b * i, f + d * j + e * i


def cell_lonlat(dsm, i, j):
    """lon/lat (degrees, WGS84) of DSM cell centres (i, j may be fractional)."""
    x, y = cell_xy(dsm.transform, i, j)
    lon, lat = _to_lonlat(dsm.crs_wkt).transform(x, y)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def lattice_nodes(i0: int, i1: int, j0: int, j1: int, step: int):
    """Lattice node indices covering fine rows i0..i1-1 and cols j0..j1-1. Nodes sit at global fine
    indices that are multiples of ``step``, so any block sees the same nodes (tiling-independent)."""
    a0 = int(np.floor(i0 / step))
    a1 = int(np.ceil((i1 - 1) / step))
    b0 = int(np.floor(j0 / step))
    b1 = int(np.ceil((j1 - 1) / step))
    ni = np.arange(a0, max(a1, a0 + 1) + 1) * step
    nj = np.arange(b0, max(b1, b0 + 1) + 1) * step
    return ni, nj


def los_on_grid(camera, dsm, i, j, lon, lat, z):
    """Line of sight of ``camera`` on the DSM grid at cells (i, j) with lon/lat and height z:
    the grid displacement (di, dj), in cells, of the ground point seen at the same pixel when the
    height rises by one metre. Its norm is tan(off-nadir)/cell size; it points towards the sensor."""
    shape = np.shape(i)
    i = np.ravel(i).astype(np.float64)
    j = np.ravel(j).astype(np.float64)
    lon = np.ravel(lon)
    lat = np.ravel(lat)
    z = np.broadcast_to(np.asarray(z, dtype=np.float64), i.shape)
    lon_i, lat_i = cell_lonlat(dsm, i + 1.0, j)
    lon_j, lat_j = cell_lonlat(dsm, i, j + 1.0)
    r0, c0 = camera.project(lon, lat, z, parallel=False)
    ri, ci = camera.project(lon_i, lat_i, z, parallel=False)
    rj, cj = camera.project(lon_j, lat_j, z, parallel=False)
    rz, cz = camera.project(lon, lat, z + 1.0, parallel=False)
    # J (pixel per cell) and g (pixel per metre); the ray keeps the pixel: J @ d + g = 0
    j11, j12, j21, j22 = ri - r0, rj - r0, ci - c0, cj - c0
    g1, g2 = rz - r0, cz - c0
    det = j11 * j22 - j12 * j21
    di = -(j22 * g1 - j12 * g2) / det
    dj = -(-j21 * g1 + j11 * g2) / det
    return di.reshape(shape), dj.reshape(shape)


def outline_lonlat(dsm, n: int = 9):
    """lon/lat of points along the DSM outline (cell centres of the border)."""
    ny, nx = dsm.shape
    t = np.linspace(0.0, 1.0, n)
    i = np.concatenate([np.zeros(n), t * (ny - 1), np.full(n, ny - 1.0), t * (ny - 1)])
    j = np.concatenate([t * (nx - 1), np.zeros(n), t * (nx - 1), np.full(n, nx - 1.0)])
    return cell_lonlat(dsm, i, j)


def max_los_norm(dsm, camera, z_ref: float) -> float:
    """Largest |LOS| (cells per metre) over the DSM's corners and centre."""
    ny, nx = dsm.shape
    i = np.array([0, 0, ny - 1, ny - 1, (ny - 1) / 2])
    j = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2])
    lon, lat = cell_lonlat(dsm, i, j)
    di, dj = los_on_grid(camera, dsm, i, j, lon, lat, z_ref)
    return float(np.nanmax(np.hypot(di, dj)))


def check_overlap(dsm, image, h_min: float, h_max: float) -> None:
    """Raise DataError when the DSM's ground area, at any height in range, misses the image."""
    lon, lat = outline_lonlat(dsm, n=17)
    rows, cols = [], []
    for h in (h_min, h_max):
        r, c = image.camera.project(lon, lat, np.full_like(lon, h), parallel=False)
        rows.append(r)
        cols.append(c)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    nr, nc = image.shape
    if not np.isfinite(r).any() or r.max() < -0.5 or r.min() > nr - 0.5 or c.max() < -0.5 or c.min() > nc - 0.5:
        raise DataError(
            f"{image.path}: the image does not overlap the DSM {dsm.path}: the DSM area projects to rows "
            f"{np.nanmin(r):.0f}..{np.nanmax(r):.0f}, cols {np.nanmin(c):.0f}..{np.nanmax(c):.0f} of an image of "
            f"{nr}x{nc} pixels. Check that the image and the DSM cover the same place (and that the image's "
            "camera model is the right one)."
        )
