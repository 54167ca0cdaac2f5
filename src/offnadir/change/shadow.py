"""Predicted cast shadows widened by their geometric uncertainty (numpy/numba; no dask, no scipy).

The DSM and the sun predict which cells get no direct sun
(:func:`offnadir.change.kernels.illumination`), but the sun is known to a fraction of a degree
(estimated, :mod:`offnadir.change.sun_estimate`, or vendor metadata) and the DSM's edges to a
cell or so. A shadow cast at horizontal distance ``L`` from its caster (its caster is
``H = L tan e`` higher) moves, for 1-sigma sun errors ``d_e``, ``d_a`` (radians), by
``H d_e / sin^2 e = L d_e / (sin e cos e)`` with the elevation and by ``L d_a`` sideways with the
azimuth. So a predicted shadow cell may be off by

    r = 1 + rint(eps L)  (cells),   eps = 2 (d_e / (sin e cos e) + d_a)

two sigmas of both, to the nearest cell, plus one cell of grid discretisation and resampling
blur (which also holds the half cell of rounding) (:func:`relative_error` gives ``eps``,
:func:`cast_distance` the cell's ``L``: the ray march of the illumination kernel towards the sun,
up to the cell that blocks it; 0 for faces turned away from the sun). A rooftop parapet's short
shadow is widened by a cell, a tower's long one by several; at most :data:`MARGIN_CAP` cells.

Every image's predicted shadow (code 0) is widened that way (:func:`widen`), on the surface it
lies on (a widened edge slides along the ground or a roof; it does not climb a wall): a cell
there *may* be in shadow at that date, and is treated like one: not compared by radiance
(:mod:`offnadir.change.fit`: radiance is a witness only where both dates had direct sun), and not
compared by structure when the other date had direct sun (:mod:`offnadir.change.cells`: a moved
shadow's edge is not change). Shadows are a nuisance, not change; the structural evidence of the
cells around them still speaks for them, so a building demolished in a shadow is not
"unchanged" by fiat.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from offnadir.change.sun_kernels import caster_distances

#: largest widening (cells): the halo of the shadow computation includes it
MARGIN_CAP = 8
#: sun sigma (degrees) assumed when the sun comes with none (metadata, almanac): about the
#: almanac's 0.01 degree and a vendor's rounding, far below the cell of resampling blur
SIGMA_KNOWN_DEG = 0.01




def relative_error(elevation_deg: float, sigma_az_deg: float, sigma_el_deg: float) -> float:
    """``eps``: two sigmas of a shadow's displacement per unit of its distance to the caster
    (see the module docstring)."""
    e = math.radians(min(max(float(elevation_deg), 1.0), 89.0))
    da, de = math.radians(max(sigma_az_deg, 0.0)), math.radians(max(sigma_el_deg, 0.0))
    return 2.0 * (de / (math.sin(e) * math.cos(e)) + da)


def cast_distance(h, cell, sun_az, sun_el, tol, max_dist, codes, out):
    """Horizontal distance (cells) from each cell top with illumination code 0 in ``codes`` (no
    direct sun), towards the sun, to the first cell whose top is more than ``tol`` metres above
    the ray (the caster of its shadow), sampled as :func:`offnadir.change.kernels.illumination`
    does (:func:`~offnadir.change.kernels.caster_distances`); -1 where the ray is not blocked
    within ``max_dist`` cells or the window (a face turned away from the sun), on other cells and
    on NaN heights. ``sun_az`` grid azimuth, ``sun_el`` elevation (radians). A Python function:
    numba's on-disk cache of a jitted caller would keep an old copy of the kernel it calls."""
    di = -math.cos(sun_az)
    dj = math.sin(sun_az)
    rise = math.tan(max(sun_el, 1e-6)) * cell
    caster_distances(np.ascontiguousarray(h, np.float64), rise, di, dj, float(tol), float(max_dist), out)
    out[np.asarray(codes) != 0] = -1.0


#: largest height difference (m) between neighbours a widened shadow crosses: the wall step of
#: :func:`offnadir.change.kernels.illumination`'s normals (a storey is ~3 m; 1 m is a kerb or a
#: roof's slope over a cell, not a wall)
STEP_M = 1.0


def reach_cells(codes, distance, eps: float):
    """Per cell, the widening of its predicted shadow (cells): ``1 + rint(eps L)`` on shaded
    cells (the displacement to the nearest cell, and one cell of grid discretisation; ``L`` from
    :func:`cast_distance`, 0 on faces turned away), capped at :data:`MARGIN_CAP`; -1 elsewhere."""
    from offnadir.change.kernels import SHADED

    L = np.where(distance > 0, distance, 0.0)
    return np.where(codes == SHADED, np.minimum(1.0 + np.rint(eps * L), MARGIN_CAP), -1.0)


def widen(codes, reach, h=None, step: float = STEP_M):
    """Illumination codes with every cell within ``reach`` (per source cell, or one number for all
    shaded cells) 8-connected steps of a shaded cell (code 0) set to 0, the steps staying on the
    surface the shadow lies on: with heights ``h``, a step joins two cells whose heights differ by
    at most ``step`` metres (a shifted shadow edge slides along the ground or a roof; it does not
    climb a wall onto its caster). Unknown cells (255) stay unknown. A new array; a cell's
    result depends on cells within :data:`MARGIN_CAP`."""
    from offnadir.change.kernels import SHADED, UNKNOWN

    out = np.array(codes, np.uint8, copy=True)
    shaded = out == SHADED
    r = np.where(shaded, np.asarray(reach, np.float64) if np.ndim(reach) else float(reach), -1.0)
    r = np.minimum(r, MARGIN_CAP)
    hz = np.zeros(out.shape) if h is None else np.asarray(h, np.float64)
    r = _spread(r, hz, h is not None, float(step))
    out[(r >= 0) & (out != UNKNOWN)] = SHADED
    return out


def widened(h, codes, cell, sun_az, sun_el, tol, max_dist, eps):
    """Illumination ``codes`` of the heights ``h`` with their shadows widened by ``eps``
    (:func:`cast_distance`, :func:`reach_cells`, :func:`widen`); ``codes`` as given when ``eps``
    is None. The one recipe of the change stage's segmentation and of ``offnadir append``."""
    if eps is None:
        return codes
    h = np.ascontiguousarray(h)
    dist = np.empty(h.shape)
    cast_distance(h, cell, sun_az, sun_el, tol, max_dist, codes, dist)
    return widen(codes, reach_cells(codes, dist, eps), h)


@njit(cache=True, nogil=True, error_model="numpy")
def _spread(r, h, use_h, step):
    """Synchronous steps ``r[c] = max(r[c], max over neighbours n of r[n] - 1)`` (neighbours
    joined when ``|h[c] - h[n]| <= step`` with ``use_h``) until nothing changes or ceil(max r)
    steps; returns the final ``r``."""
    ny, nx = r.shape
    steps = 0
    mx = -1.0
    for i in range(ny):
        for j in range(nx):
            if r[i, j] > mx:
                mx = r[i, j]
    if mx > 0:
        steps = int(math.ceil(mx))
    cur = r.copy()
    nxt = r.copy()
    for _ in range(steps):
        changed = False
        for i in range(ny):
            for j in range(nx):
                best = cur[i, j]
                for di in range(-1, 2):
                    for dj in range(-1, 2):
                        a = i + di
                        b = j + dj
                        if (di == 0 and dj == 0) or a < 0 or a >= ny or b < 0 or b >= nx:
                            continue
                        v = cur[a, b] - 1.0
                        if v <= best:
                            continue
                        if use_h and not (abs(h[a, b] - h[i, j]) <= step):
                            continue
                        best = v
                if best != cur[i, j]:
                    changed = True
                nxt[i, j] = best
        cur, nxt = nxt, cur
        if not changed:
            break
    return cur
