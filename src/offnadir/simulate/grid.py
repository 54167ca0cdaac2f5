"""The simulator's DSM grid: a north-up raster in a projected CRS (UTM by default)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS84 UTM zone holding (lon, lat)."""
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True)
class Grid:
    """``ny × nx`` cells of ``cell`` metres; (x0, y0) is the north-west corner of cell (0, 0).

    Grid units: ``u = (x - x0) / cell`` (columns, east) and ``v = (y0 - y) / cell`` (rows, south);
    cell (i, j) covers ``j <= u < j+1`` and ``i <= v < i+1``, its centre is (u, v) = (j+0.5, i+0.5)."""

    crs: str
    x0: float
    y0: float
    cell: float
    ny: int
    nx: int

    @classmethod
    def centred(cls, lon: float, lat: float, size: int, cell: float, crs: str | None = None) -> "Grid":
        """A size × size grid centred (to the metre) on (lon, lat)."""
        crs = crs or f"EPSG:{utm_epsg(lon, lat)}"
        x, y = _tr("EPSG:4326", crs).transform(lon, lat)
        half = size * cell / 2
        return cls(crs, float(round(x - half)), float(round(y + half)), float(cell), int(size), int(size))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    @property
    def transform(self):
        from affine import Affine

        return Affine(self.cell, 0.0, self.x0, 0.0, -self.cell, self.y0)

    def xy_to_uv(self, x, y):
        return (np.asarray(x) - self.x0) / self.cell, (self.y0 - np.asarray(y)) / self.cell

    def uv_to_xy(self, u, v):
        return self.x0 + np.asarray(u) * self.cell, self.y0 - np.asarray(v) * self.cell

    def lonlat_to_uv(self, lon, lat):
        x, y = _tr("EPSG:4326", self.crs).transform(np.asarray(lon, dtype=np.float64),
                                                     np.asarray(lat, dtype=np.float64))
        return self.xy_to_uv(x, y)

    def uv_to_lonlat(self, u, v):
        x, y = self.uv_to_xy(u, v)
        lon, lat = _tr(self.crs, "EPSG:4326").transform(np.asarray(x, dtype=np.float64),
                                                         np.asarray(y, dtype=np.float64))
        return np.asarray(lon), np.asarray(lat)

    def cell_lonlat(self, i, j):
        """lon, lat of cell centres."""
        return self.uv_to_lonlat(np.asarray(j) + 0.5, np.asarray(i) + 0.5)

    def north_angle(self) -> float:
        """Grid azimuth of true north at the grid centre (degrees clockwise from grid north; the
        meridian convergence). A true azimuth A is the grid azimuth A + this."""
        lon, lat = self.uv_to_lonlat(self.nx / 2, self.ny / 2)
        u0, v0 = self.lonlat_to_uv(lon, lat)
        u1, v1 = self.lonlat_to_uv(lon, lat + 1e-4)
        return math.degrees(math.atan2(float(u1 - u0), float(v0 - v1)))

    def describe(self) -> dict:
        return dict(crs=self.crs, x0=self.x0, y0=self.y0, cell=self.cell, shape=[self.ny, self.nx],
                    transform=list(self.transform)[:6])


def _tr(src, dst):
    from offnadir.simulate.camera_model import _transformer

    return _transformer(src, dst)
