"""Where the sun was on the DSM grid: the grid azimuth of true north at the scene centre, to turn
the sun azimuth of :func:`offnadir.sun.sun_position` into grid directions. Used to find cells whose direct sun differs between the dates
(:func:`offnadir.change.kernels.illumination`), which are illumination change, not change.

Sun position: the Astronomical Almanac's low-precision formulae (mean anomaly and longitude of
the sun, ecliptic longitude with the two-term equation of centre, obliquity, right ascension and
declination, Greenwich mean sidereal time, local hour angle); about 0.01 degree between 1950 and
2050, no refraction. Acquisition times without a time zone are taken as UTC (satellite metadata
are UTC).
"""

from __future__ import annotations

import math


def grid_centre_lonlat_and_north(crs_wkt: str, transform, shape) -> tuple[float, float, float]:
    """(lon, lat) of the grid centre and the grid azimuth of true north there (degrees,
    clockwise from grid north: add it to a true azimuth to get a grid azimuth)."""
    from pyproj import CRS, Transformer

    a, _, c, _, e, f = transform[:6]
    ny, nx = shape
    x, y = c + a * nx / 2.0, f + e * ny / 2.0
    crs = CRS.from_wkt(crs_wkt)
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    to_xy = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lon, lat = to_ll.transform(x, y)
    x2, y2 = to_xy.transform(lon, lat + 1e-4)
    north = math.degrees(math.atan2(x2 - x, y2 - y))
    return float(lon), float(lat), float(north)
