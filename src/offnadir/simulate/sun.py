"""Where the sun is: elevation and azimuth from date, time and place (low-precision almanac,
about 0.01° over 1950-2050, far more than the renderer needs)."""

from __future__ import annotations

import math
from datetime import datetime, timezone


def parse_utc(text: str) -> datetime:
    """ISO 8601 text (``2021-06-01T10:40:00Z``) -> aware UTC datetime."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


def sun_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """(elevation, azimuth) in degrees; azimuth clockwise from true north."""
    j2000 = datetime(2000, 1, 1, 12, tzinfo=timezone.utc)
    n = (when - j2000).total_seconds() / 86400.0
    g = math.radians((357.529 + 0.98560028 * n) % 360)
    q = (280.459 + 0.98564736 * n) % 360
    lam = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    eps = math.radians(23.439 - 0.00000036 * n)
    ra = math.atan2(math.cos(eps) * math.sin(lam), math.cos(lam))
    dec = math.asin(math.sin(eps) * math.sin(lam))
    gmst = (18.697374558 + 24.06570982441908 * n) % 24
    ha = math.radians(gmst * 15 + lon) - ra
    phi = math.radians(lat)
    el = math.asin(math.sin(phi) * math.sin(dec) + math.cos(phi) * math.cos(dec) * math.cos(ha))
    az = math.atan2(-math.sin(ha), math.tan(dec) * math.cos(phi) - math.sin(phi) * math.cos(ha))
    return math.degrees(el), math.degrees(az) % 360.0


def sun_vector(elevation_deg: float, grid_azimuth_deg: float) -> tuple[float, float, float]:
    """Unit vector towards the sun in (east, south, up) grid axes."""
    e, a = math.radians(elevation_deg), math.radians(grid_azimuth_deg)
    return (math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e))
