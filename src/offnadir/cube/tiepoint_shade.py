"""Which tie-window cells have direct sun in an image (:mod:`offnadir.cube.tiepoints`): a cell
in shadow on either date is left out of the windows, since a shadow edge moves with the sun, not
with the camera. The sun comes from the config, the image metadata or the almanac
(:func:`plan_suns`); shadows are traced on the DSM towards the sun by the change stage's
illumination kernel and dilated by one cell. Without a known sun nothing is left out here and
shadowed windows are left to the robust fit.
"""

from __future__ import annotations

import logging
import math

import numpy as np

# the tie-point step's logger: these choices are part of its report
log = logging.getLogger("offnadir.cube.tiepoints")

#: shadows are traced at most this many cells towards the sun (cost bound; longer shadows are rare
#: at VHR cell sizes and are left to the robust fit)
SHADOW_MAX_CELLS = 96
#: metres a cell must rise above a sun ray to shade it (the change stage's default sun_tolerance)
SHADOW_TOL_M = 0.3


def plan_suns(plan, image_configs=None) -> list:
    """Per image ``(grid azimuth, elevation)`` of the sun in radians (config, metadata or almanac:
    :func:`offnadir.io.acquisition.image_suns`), or None where unknown."""
    from offnadir.io.dsm import grid_centre_lonlat_and_north
    from offnadir.io.acquisition import image_suns

    try:
        lon, lat, north = grid_centre_lonlat_and_north(plan.dsm.crs_wkt, plan.dsm.transform, plan.dsm.shape)
        suns = image_suns(plan.images, image_configs, (lon, lat))
    except Exception as e:  # the sun only removes shadowed windows; the robust fit copes without it
        log.info("tie points: sun positions unavailable (%s); shadowed windows are left to the robust fit", e)
        return [None] * len(plan.images)
    return [None if s is None else (math.radians(s.azimuth + north), math.radians(s.elevation)) for s in suns]


def _shade_reach(plan, sun):
    """``(max_dist, (top, bottom, left, right))``: how far shadows are traced (cells) and the heights
    a block needs around it for that. Rays run towards the sun only, so the halo is one-sided
    (one cell elsewhere, for the slope): 2-3x fewer cells traced than a halo on every side."""
    az, el = sun
    cell = abs(float(plan.dsm.transform[0]))
    relief = plan.h_max - plan.h_min
    max_dist = min(relief / (math.tan(el) * cell) + 2.0, SHADOW_MAX_CELLS)
    di, dj = -math.cos(az), math.sin(az)   # grid direction towards the sun (rows grow southwards)
    far_i = int(math.ceil(max_dist * abs(di))) + 2
    far_j = int(math.ceil(max_dist * abs(dj))) + 2
    return max_dist, (far_i if di < 0 else 1, far_i if di > 0 else 1, far_j if dj < 0 else 1, far_j if dj > 0 else 1)


def shaded_cells(plan, tile, sun, heights=None) -> np.ndarray | None:
    """Cells of the block without direct sun (cast shadow or facing away), dilated by one cell.
    ``heights``: ``(block, (top, bottom, left, right))`` already read around the tile (at least
    the :func:`_shade_reach` pads), or None to read them."""
    from offnadir.change import kernels as chk
    from offnadir.cube.tile import height_block

    az, el = sun
    if not el > 0:
        return None
    max_dist, (t, b, lf, rt) = _shade_reach(plan, sun)
    if heights is None:
        heights = (height_block(plan, tile.i0 - t, tile.i1 + b, tile.j0 - lf, tile.j1 + rt), (t, b, lf, rt))
    hb, (T, _, L, _) = heights
    ny, nx = tile.i1 - tile.i0, tile.j1 - tile.j0
    hb = np.ascontiguousarray(hb[T - t:T + ny + b, L - lf:L + nx + rt], np.float64)
    buf = np.empty(hb.shape, np.uint8)
    cell = abs(float(plan.dsm.transform[0]))
    chk.illumination(hb, cell, az, el, SHADOW_TOL_M, 1.0, float(max_dist), buf)
    return dilate_cross(buf[t:t + ny, lf:lf + nx] == chk.SHADED)


def dilate_cross(mask) -> np.ndarray:
    """``mask`` dilated by one cell along rows and columns (outside: not set): what
    ``scipy.ndimage.binary_dilation(mask, iterations=1)`` gives, without importing scipy.ndimage
    into the tie-point tasks."""
    m = np.asarray(mask, dtype=bool)
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def shade_heights(plan, tile, suns):
    """Heights around the tile for every known sun's shadow tracing, read once."""
    from offnadir.cube.tile import height_block

    pads = [_shade_reach(plan, s)[1] for s in suns if s is not None and s[1] > 0]
    if not pads:
        return None
    t, b, lf, rt = (max(p[q] for p in pads) for q in range(4))
    return height_block(plan, tile.i0 - t, tile.i1 + b, tile.j0 - lf, tile.j1 + rt), (t, b, lf, rt)
