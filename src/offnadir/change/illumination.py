"""Where the sun was: its elevation and azimuth at an acquisition time and place, and that
azimuth on the DSM grid. Used to find cells whose direct sun differs between the dates
(:func:`offnadir.change.kernels.illumination`), which are illumination change, not change.

Sun position: the Astronomical Almanac's low-precision formulae (mean anomaly and longitude of
the sun, ecliptic longitude with the two-term equation of centre, obliquity, right ascension and
declination, Greenwich mean sidereal time, local hour angle); about 0.01 degree between 1950 and
2050, no refraction. Acquisition times without a time zone are taken as UTC (satellite metadata
are UTC).
"""

from __future__ import annotations

import math

import numpy as np


def sun_position(when, lon: float, lat: float) -> tuple[float, float]:
    """(elevation, azimuth) in degrees at ``when`` (numpy datetime64 or ISO text, UTC), azimuth
    clockwise from true north."""
    t = np.datetime64(str(when).replace("Z", "")[:26], "ns")
    days = (t - np.datetime64("2000-01-01T12:00:00", "ns")) / np.timedelta64(1, "D")
    n = float(days)
    g = math.radians((357.529 + 0.98560028 * n) % 360.0)  # mean anomaly
    q = (280.459 + 0.98564736 * n) % 360.0  # mean longitude
    ecl = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    obl = math.radians(23.439 - 0.00000036 * n)
    ra = math.atan2(math.cos(obl) * math.sin(ecl), math.cos(ecl))
    dec = math.asin(math.sin(obl) * math.sin(ecl))
    gmst_h = (18.697374558 + 24.06570982441908 * n) % 24.0
    hour_angle = math.radians(gmst_h * 15.0 + lon) - ra
    phi = math.radians(lat)
    el = math.asin(math.sin(phi) * math.sin(dec) + math.cos(phi) * math.cos(dec) * math.cos(hour_angle))
    az = math.atan2(-math.sin(hour_angle), math.tan(dec) * math.cos(phi) - math.sin(phi) * math.cos(hour_angle))
    return math.degrees(el), math.degrees(az) % 360.0


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
