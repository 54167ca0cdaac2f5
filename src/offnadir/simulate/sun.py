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
