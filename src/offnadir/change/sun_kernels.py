"""numba kernels of the sun on the DSM grid: which cell tops get direct sun (cast shadows, faces
turned away) and how far a shadowed cell is from its caster. numpy and numba only.

Every kernel works on a window of heights; a cell's result depends on the heights within the
distance stated per kernel towards the sun (the change stage reads that much halo). The slow,
obvious twin (the per-cell march) is in ``tests/test_illumination_kernel.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")

#: illumination codes: 0 no direct sun; 1..254 direct irradiance relative to flat ground x 100
#: (cos(incidence) / sin(sun elevation), clipped to 2.54); 255 unknown (nodata)
SHADED = np.uint8(0)
UNKNOWN = np.uint8(255)
ILLUM_SCALE = 100.0
#: rows and columns of the blocks :func:`caster_distances` marches together
_ROWS, _COLS = 8, 32


@njit(**_NB)
def illumination(h, cell, sun_az, sun_el, tol, step_max, max_dist, out):
    """Direct sun on each cell top, relative to flat ground (codes: see :data:`SHADED`,
    :data:`UNKNOWN`; else ``round(100 cos(i) / sin(e))`` clipped to 1..254).

    ``sun_az`` is the sun's azimuth on the grid (radians, clockwise from grid north = row -1),
    ``sun_el`` its elevation (radians). The normal comes from centred height differences (a
    difference across a step higher than ``step_max`` metres, i.e. a wall, is replaced by the one
    on the other side, or 0). No direct sun when the surface faces away from the sun or when the
    ray from the cell top towards the sun passes more than ``tol`` metres below a cell top
    (:func:`caster_distances`). A cell's result depends on heights within ``max_dist + 1`` cells
    towards the sun."""
    ny, nx = h.shape
    if sun_el <= 0.0:
        for i in range(ny):
            for j in range(nx):
                out[i, j] = SHADED if np.isfinite(h[i, j]) else UNKNOWN
        return
    se = math.cos(sun_el) * math.sin(sun_az)  # east
    sn = math.cos(sun_el) * math.cos(sun_az)  # north
    su = math.sin(sun_el)
    di = -math.cos(sun_az)  # grid rows grow southwards
    dj = math.sin(sun_az)
    rise = math.tan(sun_el) * cell  # metres per cell of horizontal travel
    dist = np.empty((ny, nx))
    caster_distances(h, rise, di, dj, tol, max_dist, dist)
    cosr = np.empty(nx)
    for i in range(ny):
        if 0 < i < ny - 1 and nx > 2:
            # interior cells without bounds checks or branches (vectorised): the arithmetic of
            # _slope and of the cosine below, cell for cell; the row's two end cells below
            _row_cosines(h[i - 1], h[i], h[i + 1], cell, se, sn, su, step_max, cosr)
            j0, j1 = 1, nx - 1
        else:
            j0, j1 = 0, 0
        for j in range(nx):
            z = h[i, j]
            if not np.isfinite(z):
                out[i, j] = UNKNOWN
                continue
            if dist[i, j] >= 0.0:  # in a cast shadow: no normal needed
                out[i, j] = SHADED
                continue
            if j0 <= j < j1:
                cosi = cosr[j]
            else:
                gx = _slope(h, i, j, 0, 1, step_max) / cell  # dz/d(east)
                gy = -_slope(h, i, j, 1, 0, step_max) / cell  # dz/d(north)
                cosi = (-gx * se - gy * sn + su) / math.sqrt(gx * gx + gy * gy + 1.0)
            if cosi <= 0.0:
                out[i, j] = SHADED
            else:
                q = int(round(ILLUM_SCALE * cosi / su))
                out[i, j] = np.uint8(min(max(q, 1), 254))


@njit(inline="always", **_NB)
def _pick(up, dn, step_max):
    """:func:`_slope` from its two one-sided differences, without branches."""
    uok = np.isfinite(up) & (np.abs(up) <= step_max)
    dok = np.isfinite(dn) & (np.abs(dn) <= step_max)
    both = 0.5 * (up + dn)
    one = up if uok else (dn if dok else 0.0)
    return both if (uok & dok) else one


@njit(**_NB)
def _row_cosines(above, row, below, cell, se, sn, su, step_max, cosr):
    """``cos(incidence)`` of the interior cells ``1 .. nx - 2`` of a row whose neighbours are rows
    ``above`` and ``below``: :func:`_slope` along both axes, then the cosine, as :func:`illumination`
    computes them per cell (same operations in the same order; values at non-finite cells unused)."""
    nx = row.shape[0]
    for j in range(1, nx - 1):
        z = row[j]
        gx = _pick(row[j + 1] - z, z - row[j - 1], step_max) / cell
        gy = -_pick(below[j] - z, z - above[j], step_max) / cell
        cosr[j] = (-gx * se - gy * sn + su) / math.sqrt(gx * gx + gy * gy + 1.0)


@njit(inline="always", **_NB)
def _step(i, s, d):
    """Offset from cell index ``i`` of the nearest cell to ``i + s d`` as the per-cell march
    computes it: ``floor(i + s d + 1/2) - i`` (the rounding of ``i + s d`` makes it depend on
    ``i`` where ``s d`` lands a rounding error away from a cell edge, e.g. sun azimuth 150 deg)."""
    return int(math.floor(i + s * d + 0.5)) - i


@njit(**_NB)
def ray_offsets(di, dj, max_dist, rise, climb, gi, gj):
    """The cells a ray from a cell top visits towards the sun, as offsets from that cell: samples
    every half cell ``s = k / 2`` (k = 1, 2, ...; ``s <= max_dist``) at the nearest cell
    (:func:`_step` from row ``gi`` and column ``gj``); only the first sample of each offset is
    kept (a later one in the same cell sees the same top from a higher ray), and (0, 0) never
    is. Stops once the ray has climbed ``climb`` metres (``rise`` per cell): no top can block it
    beyond. Returns (offset rows, offset cols, s) in the order of ``s``."""
    kmax = int(math.floor(max_dist / 0.5))
    oi = np.empty(max(kmax, 0), np.int64)
    oj = np.empty(max(kmax, 0), np.int64)
    ss = np.empty(max(kmax, 0))
    n = 0
    li = 0
    lj = 0
    for k in range(1, kmax + 1):
        s = 0.5 * k
        if s * rise > climb:
            break
        a = _step(gi, s, di)
        b = _step(gj, s, dj)
        if a == li and b == lj:
            continue
        li = a
        lj = b
        oi[n] = a
        oj[n] = b
        ss[n] = s
        n += 1
    return oi[:n], oj[:n], ss[:n]


@njit(**_NB)
def _regular(n, d, g, max_dist, rise, climb):
    """Per index ``i < n``: do its steps (:func:`_step`) equal those of index ``g`` for every
    sample that can block a ray (``s rise <= climb``)?"""
    kmax = int(math.floor(max_dist / 0.5))
    out = np.ones(n, np.bool_)
    for k in range(1, kmax + 1):
        s = 0.5 * k
        if s * rise > climb:
            break
        ref = _step(g, s, d)
        for i in range(n):
            if out[i] and _step(i, s, d) != ref:
                out[i] = False
    return out


@njit(inline="always", **_NB)
def _march(h, i, j, rise, di, dj, hmax, tol, max_dist):
    """The per-cell march (every half cell, nearest cell, first top more than ``tol`` above the
    ray; -1 at the window's edge, above ``hmax`` or beyond ``max_dist``)."""
    ny, nx = h.shape
    z = h[i, j]
    s = 0.5
    while s <= max_dist:
        zr = z + s * rise
        if zr >= hmax:
            return -1.0
        pi = int(math.floor(i + s * di + 0.5))
        pj = int(math.floor(j + s * dj + 0.5))
        if pi < 0 or pi >= ny or pj < 0 or pj >= nx:
            return -1.0
        if (pi != i or pj != j) and np.isfinite(h[pi, pj]) and h[pi, pj] - zr > tol:
            return s
        s += 0.5
    return -1.0


@njit(**_NB)
def caster_distances(h, rise, di, dj, tol, max_dist, out):
    """Per cell, the horizontal distance (cells) from its top, towards the sun, to the first cell
    whose top is more than ``tol`` metres above the sun ray (``rise`` metres per cell; direction
    ``(di, dj)`` in rows and columns per cell), sampled as :func:`ray_offsets` says up to
    ``max_dist`` cells, the window's edge or the window's highest top; -1 when nothing blocks the
    ray (and on NaN heights).

    The samples' offsets are the same for every cell, so the march runs as passes over blocks of
    cells per offset (contiguous rows, no per-cell branching), nearest offsets first, each cell
    keeping its first blocker; a block skips an offset when the highest top of the cells it would
    sample (bounded by 8 x 8 block maxima) is within ``tol`` of the ray from the block's lowest
    cell: no cell of the block can be blocked there; and a row of the block skips it when the same
    holds from the row's lowest top to the maxima of the 8-row band it samples (a block over a roof
    edge marches only its ground rows; the row's hit test, cell for cell, is unchanged). The numbers are those of the per-cell march
    (:func:`_march`), also in the rows and columns whose rounding differs (marched cell by cell)."""
    ny, nx = h.shape
    hmax = -np.inf
    zmin = np.inf
    bm = np.full(((ny + 7) >> 3, (nx + 7) >> 3), -np.inf)  # highest finite top per 8 x 8 block
    for i in range(ny):
        for j in range(nx):
            v = h[i, j]
            out[i, j] = -1.0
            if np.isfinite(v):
                hmax = max(hmax, v)
                zmin = min(zmin, v)
                bm[i >> 3, j >> 3] = max(bm[i >> 3, j >> 3], v)
    if not hmax >= zmin:
        return
    # a sample blocks only if hmax - (z + s rise) > tol with z >= zmin (1e-9: rounding)
    climb = (hmax - zmin) - tol + 1e-9 * (1.0 + abs(hmax) + abs(zmin))
    # the offsets of the last row and column; rows and columns whose steps differ (a few near
    # index 0, at azimuths where steps land on cell edges) are marched cell by cell below
    oi, oj, ss = ray_offsets(di, dj, max_dist, rise, climb, ny - 1, nx - 1)
    row_ok = _regular(ny, di, ny - 1, max_dist, rise, climb)
    col_ok = _regular(nx, dj, nx - 1, max_dist, rise, climb)
    zlo = np.empty(_ROWS)  # the lowest top of each row of the block
    mrow = np.empty(_ROWS // 8 + 1)  # the highest top per 8-row band a block samples
    for r0 in range(0, ny, _ROWS):
        r1 = min(ny, r0 + _ROWS)
        for c0 in range(0, nx, _COLS):
            c1 = min(nx, c0 + _COLS)
            zb = np.inf  # the block's lowest top (NaN cells never match)
            for i in range(r0, r1):
                zi = np.inf
                for j in range(c0, c1):
                    zi = min(zi, h[i, j])
                zlo[i - r0] = zi
                zb = min(zb, zi)
            if not zb < np.inf:
                continue
            for n in range(oi.shape[0]):
                a = oi[n]
                b = oj[n]
                s = ss[n]
                sr = s * rise
                i0 = max(r0, -a)
                i1 = min(r1, ny - a)
                j0 = max(c0, -b)
                j1 = min(c1, nx - b)
                if i0 >= i1 or j0 >= j1:
                    continue
                m = -np.inf  # bound of the tops this block samples at this offset
                p0 = (i0 + a) >> 3
                for p in range(p0, ((i1 - 1 + a) >> 3) + 1):
                    mp = -np.inf
                    for q in range((j0 + b) >> 3, ((j1 - 1 + b) >> 3) + 1):
                        mp = max(mp, bm[p, q])
                    mrow[p - p0] = mp
                    m = max(m, mp)
                if m - (zb + sr) <= tol:  # rounding is monotone: no cell's h - (z + sr) exceeds it
                    continue
                for i in range(i0, i1):
                    # the same bound per row: its lowest top, the tops of the block row it samples
                    if mrow[((i + a) >> 3) - p0] - (zlo[i - r0] + sr) <= tol:
                        continue
                    hr = h[i + a]
                    zrow = h[i]
                    orow = out[i]
                    for j in range(j0, j1):
                        zr = zrow[j] + sr
                        hit = (zr < hmax) & (hr[j + b] - zr > tol) & (orow[j] < 0.0)  # no branch: SIMD
                        orow[j] = s if hit else orow[j]
    for i in range(ny):
        for j in range(nx):
            if not (row_ok[i] and col_ok[j]) and np.isfinite(h[i, j]):
                out[i, j] = _march(h, i, j, rise, di, dj, hmax, tol, max_dist)


@njit(inline="always", **_NB)
def _slope(h, i, j, a, b, step_max):
    """Height difference per cell along (a, b) at (i, j): centred, or one-sided across a wall."""
    ny, nx = h.shape
    z = h[i, j]
    up = np.nan
    dn = np.nan
    if 0 <= i + a < ny and 0 <= j + b < nx:
        v = h[i + a, j + b] - z
        if np.isfinite(v) and abs(v) <= step_max:
            up = v
    if 0 <= i - a < ny and 0 <= j - b < nx:
        v = z - h[i - a, j - b]
        if np.isfinite(v) and abs(v) <= step_max:
            dn = v
    if np.isfinite(up) and np.isfinite(dn):
        return 0.5 * (up + dn)
    if np.isfinite(up):
        return up
    if np.isfinite(dn):
        return dn
    return 0.0


@njit(**_NB)
def caster_distances_at(h, rise, di, dj, tol, max_dist, mask, out):
    """:func:`caster_distances` at the cells of ``mask`` only (-1 elsewhere): the per-cell march
    (:func:`_march`, whose numbers the blocked passes reproduce) with the window's highest top.
    For a few cells of a window (the sure shadows whose casters the missing-shadow sums look up)
    this is cheaper than the blocked passes over every cell."""
    ny, nx = h.shape
    hmax = -np.inf
    for i in range(ny):
        for j in range(nx):
            v = h[i, j]
            if np.isfinite(v) and v > hmax:
                hmax = v
    for i in range(ny):
        for j in range(nx):
            out[i, j] = -1.0
            if mask[i, j] and np.isfinite(h[i, j]):
                out[i, j] = _march(h, i, j, rise, di, dj, hmax, tol, max_dist)


@njit(**_NB)
def window_top(h):
    """The window's highest finite top (-inf: none), the bound :func:`caster_distances_at` marches to."""
    ny, nx = h.shape
    hmax = -np.inf
    for i in range(ny):
        for j in range(nx):
            v = h[i, j]
            if np.isfinite(v) and v > hmax:
                hmax = v
    return hmax


@njit(**_NB)
def march_cells(h, ii, jj, rise, di, dj, hmax, tol, max_dist, out):
    """:func:`caster_distances_at` at the listed cells ``(ii[m], jj[m])`` into ``out[m]`` (``hmax``:
    :func:`window_top` of ``h``): the same march, without the window-sized mask and output and the
    window scans per call (the sun range's four ends march the same few cells of one window)."""
    for m in range(ii.shape[0]):
        i = ii[m]
        j = jj[m]
        if np.isfinite(h[i, j]):
            out[m] = _march(h, i, j, rise, di, dj, hmax, tol, max_dist)
        else:
            out[m] = -1.0
