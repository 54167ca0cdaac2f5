"""Sun geometry for the renderer: time parsing and the sun vector on the grid (the almanac itself
is :func:`offnadir.sun.sun_position`)."""

from __future__ import annotations

import math
from datetime import datetime, timezone


def parse_utc(text: str) -> datetime:
    """ISO 8601 text (``2021-06-01T10:40:00Z``) -> aware UTC datetime."""
    t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


def sun_vector(elevation_deg: float, grid_azimuth_deg: float) -> tuple[float, float, float]:
    """Unit vector towards the sun in (east, south, up) grid axes."""
    e, a = math.radians(elevation_deg), math.radians(grid_azimuth_deg)
    return (math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e))


def random_dates(rng, center_lonlat):
    """Two acquisition times drawn from the seed: any day of 2021 / 2023, local solar time
    09:30-12:30 (a sun-synchronous morning pass), redrawn until the almanac's sun is at least
    20 degrees high at the scene centre."""
    from datetime import timedelta

    from offnadir.sun import sun_position

    out = []
    for year in (2021, 2023):
        while True:
            day = int(rng.integers(0, 365))
            local_h = float(rng.uniform(9.5, 12.5))
            utc_h = local_h - center_lonlat[0] / 15.0
            t = datetime(year, 1, 1, tzinfo=timezone.utc) + timedelta(days=day, hours=utc_h)
            t = t.replace(microsecond=0)
            if sun_position(t, *center_lonlat)[0] >= 20.0:
                break
        out.append(t.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return tuple(out)
