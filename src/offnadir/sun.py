"""Where the sun is: elevation and azimuth from date, time and place (a low-precision almanac,
about 0.01° over 1950-2050). Used by the simulator to light its scenes and by change detection to
know which cells were sunlit at each date."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone

import numpy as np

_J2000 = datetime(2000, 1, 1, 12, tzinfo=timezone.utc)


def days_since_j2000(when) -> float:
    """Days from 2000-01-01T12:00 UTC to ``when`` (aware/naive-UTC datetime, numpy datetime64 or ISO text)."""
    if isinstance(when, datetime):
        t = when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        return (t - _J2000).total_seconds() / 86400.0
    t = _utc(str(when).strip())
    return float((t - np.datetime64("2000-01-01T12:00:00", "ns")) / np.timedelta64(1, "D"))


_ZONE = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")


def _utc(text: str) -> np.datetime64:
    """ISO text (numpy's too) as UTC: a ``Z`` or ``+hh:mm`` / ``-hhmm`` suffix after the date is
    applied (numpy cannot parse one), fractions of a second beyond nanoseconds are cut."""
    minutes = 0
    m = _ZONE.search(text[10:]) if len(text) > 10 else None
    if m:
        zone = m.group(1)
        text = text[:10 + m.start()]
        if zone != "Z":
            minutes = (1 if zone[0] == "+" else -1) * (int(zone[1:3]) * 60 + int(zone[-2:]))
    text = re.sub(r"(\.\d{9})\d+$", r"\1", text)
    return np.datetime64(text, "ns") - np.timedelta64(minutes, "m")


def sun_position(when, lon: float, lat: float) -> tuple[float, float]:
    """(elevation, azimuth) in degrees at ``when`` (UTC); azimuth clockwise from true north."""
    n = days_since_j2000(when)
    g = math.radians((357.529 + 0.98560028 * n) % 360.0)  # mean anomaly
    q = (280.459 + 0.98564736 * n) % 360.0  # mean longitude
    ecl = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))  # ecliptic longitude
    obl = math.radians(23.439 - 0.00000036 * n)  # obliquity
    ra = math.atan2(math.cos(obl) * math.sin(ecl), math.cos(ecl))
    dec = math.asin(math.sin(obl) * math.sin(ecl))
    gmst_h = (18.697374558 + 24.06570982441908 * n) % 24.0
    hour_angle = math.radians(gmst_h * 15.0 + lon) - ra
    phi = math.radians(lat)
    el = math.asin(math.sin(phi) * math.sin(dec) + math.cos(phi) * math.cos(dec) * math.cos(hour_angle))
    az = math.atan2(-math.sin(hour_angle), math.tan(dec) * math.cos(phi) - math.sin(phi) * math.cos(hour_angle))
    return math.degrees(el), math.degrees(az) % 360.0
