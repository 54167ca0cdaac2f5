"""numba/numpy kernels of change detection: sun visibility, per-patch accumulations, and (from
:mod:`offnadir.change.segment_kernels`) ground estimate, labelling, superpixels. numpy and numba
only (no xarray, dask, zarr, scipy).

Every kernel works on a *window* of the DSM grid whose first cell has global position
``(gi0, gj0)``; results that the stage keeps (the window's core) are functions of global positions
and of data within a bounded distance only, so they never depend on where a tile starts (the
bounds are stated per kernel and the stage reads that much halo). Each kernel has a slow, obvious
twin in ``tests/test_change_kernels.py``.

Label IDs are **1 + the smallest global linear index** ``gi * NX + gj`` of the cells of a
component: unique across the whole grid, and the same whatever the tiling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# the segment pass's kernels (ground estimate, labelling, SLIC) live in their own module
from offnadir.change.segment_kernels import (  # noqa: F401  (re-exported)
    ground_estimate,
    label_components,
    merge_small_pieces,
    running_min_2d,
    slic_blocks,
    slic_features,
)

_NB = dict(cache=True, nogil=True, error_model="numpy")

#: illumination codes: 0 no direct sun; 1..254 direct irradiance relative to flat ground x 100
#: (cos(incidence) / sin(sun elevation), clipped to 2.54); 255 unknown (nodata)
SHADED = np.uint8(0)
UNKNOWN = np.uint8(255)
ILLUM_SCALE = 100.0
#: rows and columns of the blocks :func:`caster_distances` marches together
_ROWS, _COLS = 8, 32


# ----------------------------------------------------------------------------- sun visibility
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
    for i in range(ny):
        for j in range(nx):
            z = h[i, j]
            if not np.isfinite(z):
                out[i, j] = UNKNOWN
                continue
            if dist[i, j] >= 0.0:  # in a cast shadow: no normal needed
                out[i, j] = SHADED
                continue
            gx = _slope(h, i, j, 0, 1, step_max) / cell  # dz/d(east)
            gy = -_slope(h, i, j, 1, 0, step_max) / cell  # dz/d(north)
            cosi = (-gx * se - gy * sn + su) / math.sqrt(gx * gx + gy * gy + 1.0)
            if cosi <= 0.0:
                out[i, j] = SHADED
            else:
                q = int(round(ILLUM_SCALE * cosi / su))
                out[i, j] = np.uint8(min(max(q, 1), 254))


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
    cell: no cell of the block can be blocked there. The numbers are those of the per-cell march
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
    for r0 in range(0, ny, _ROWS):
        r1 = min(ny, r0 + _ROWS)
        for c0 in range(0, nx, _COLS):
            c1 = min(nx, c0 + _COLS)
            zb = np.inf  # the block's lowest top (NaN cells never match)
            for i in range(r0, r1):
                for j in range(c0, c1):
                    zb = min(zb, h[i, j])
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
                for p in range((i0 + a) >> 3, ((i1 - 1 + a) >> 3) + 1):
                    for q in range((j0 + b) >> 3, ((j1 - 1 + b) >> 3) + 1):
                        m = max(m, bm[p, q])
                if m - (zb + sr) <= tol:  # rounding is monotone: no cell's h - (z + sr) exceeds it
                    continue
                for i in range(i0, i1):
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


# ----------------------------------------------------------------------------- patch profiles
@njit(**_NB)
def parallax_sums(lab, row, x, y, di, dj, ci0, ci1, cj0, cj1, out):
    """Correlation sums of base ``x`` at a core cell against target ``y`` shifted along the
    parallax direction, for every shift k: pairs (c, c + (di[k], dj[k])) whose two cells belong
    to the same patch (``lab``) and are both usable (``x`` and ``y`` finite).

    ``row[i, j]`` is the table row of the core cell's patch (-1: skip). ``out[row, k, :]`` +=
    (n, Σx, Σy, Σx², Σy², Σxy). Only core cells (``ci0 <= i < ci1``, ``cj0 <= j < cj1``) start a
    pair, so each pair is counted by exactly one tile."""
    nk = di.shape[0]
    ny, nx = lab.shape
    for i in range(ci0, ci1):
        for j in range(cj0, cj1):
            r = row[i, j]
            if r < 0:
                continue
            xv = x[i, j]
            if not np.isfinite(xv):
                continue
            L = lab[i, j]
            for k in range(nk):
                a = i + di[k]
                b = j + dj[k]
                if a < 0 or a >= ny or b < 0 or b >= nx or lab[a, b] != L:
                    continue
                yv = y[a, b]
                if not np.isfinite(yv) or not np.isfinite(x[a, b]):
                    continue
                out[r, k, 0] += 1.0
                out[r, k, 1] += xv
                out[r, k, 2] += yv
                out[r, k, 3] += xv * xv
                out[r, k, 4] += yv * yv
                out[r, k, 5] += xv * yv


# ----------------------------------------------------------------------------- grouped sums (numpy)
def group_index(ids):
    """(unique ids, inverse) of a 1-D int64 array, as ``np.unique(ids, return_inverse=True)``:
    the groups are found by hashing (O(n)), only the distinct ids are sorted."""
    ids = np.ascontiguousarray(ids, np.int64).ravel()
    if len(ids) < 4096:
        return np.unique(ids, return_inverse=True)
    size = 1 << int(len(ids) * 2 - 1).bit_length()  # load factor <= 1/2
    uniq, inv = _hash_groups(ids, size)
    order = np.argsort(uniq, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inv]


@njit(**_NB)
def _hash_groups(ids, size):
    """Distinct ids in order of first appearance and each element's index among them (open
    addressing, ``size`` a power of two larger than ``len(ids)``)."""
    keys = np.empty(size, np.int64)
    slot = np.full(size, -1, np.int64)
    uniq = np.empty(ids.shape[0], np.int64)
    inv = np.empty(ids.shape[0], np.int64)
    mask = np.uint64(size - 1)
    n = 0
    for r in range(ids.shape[0]):
        v = ids[r]
        hsh = (np.uint64(v) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(17)
        q = hsh & mask
        while True:
            g = slot[q]
            if g < 0:
                slot[q] = n
                keys[q] = v
                uniq[n] = v
                inv[r] = n
                n += 1
                break
            if keys[q] == v:
                inv[r] = g
                break
            q = (q + np.uint64(1)) & mask
    return uniq[:n], inv


def group_sums(inv, n_groups, values):
    """Per-group sums of ``values`` (n,) or (n, k) float64 given the group index ``inv``: the sums
    ``np.bincount(inv, values[:, c])`` gives, in one pass over the rows."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        return np.bincount(inv, values, minlength=n_groups)
    out = np.zeros((n_groups, values.shape[1]))
    _add_rows(np.asarray(inv, np.int64), np.ascontiguousarray(values), out)
    return out


@njit(**_NB)
def _add_rows(dest, values, out):
    """``out[dest[r]] += values[r]`` for r in order (each sum in the order np.bincount adds)."""
    for r in range(dest.shape[0]):
        g = dest[r]
        for c in range(values.shape[1]):
            out[g, c] += values[r, c]


@njit(**_NB)
def level_counts(inv, n_groups, v, levels):
    """Per group, how many of its values exceed each of the ascending ``levels``: (n_groups,
    len(levels)) float64 (NaN exceeds none)."""
    out = np.zeros((n_groups, levels.shape[0]))
    for r in range(inv.shape[0]):
        x = v[r]
        g = inv[r]
        for q in range(levels.shape[0]):
            if not x > levels[q]:
                break
            out[g, q] += 1.0
    return out


def merge_grouped(ids_list, arrays_list):
    """Merge per-tile grouped tables: sum the rows with the same id (in the order of the tables).
    ``arrays_list`` is a list (one per table) of dicts name -> array with rows aligned to ids.
    Returns (sorted unique ids, dict name -> summed rows)."""
    if not ids_list:
        return np.zeros(0, np.int64), {}
    ids = np.concatenate(ids_list)
    uid, dest = np.unique(ids, return_inverse=True)
    dest = dest.astype(np.int64).ravel()
    out = {}
    for name in arrays_list[0]:
        first = np.asarray(arrays_list[0][name])
        acc = np.zeros((len(uid),) + first.shape[1:], first.dtype)
        flat = acc.reshape(len(uid), int(np.prod(first.shape[1:], dtype=np.int64)))
        seen = np.zeros(len(uid), np.bool_)
        k0 = 0
        for a in arrays_list:
            v = np.asarray(a[name])
            n = v.shape[0]
            if n:
                _merge_rows(dest[k0:k0 + n], np.ascontiguousarray(v.reshape(n, -1), flat.dtype), flat, seen)
            k0 += n
        out[name] = acc
    return uid, out


@njit(**_NB)
def _merge_rows(dest, values, out, seen):
    """First row of each destination copied, later ones added (the order np.add.reduceat sums)."""
    for r in range(dest.shape[0]):
        g = dest[r]
        if seen[g]:
            for c in range(values.shape[1]):
                out[g, c] += values[r, c]
        else:
            for c in range(values.shape[1]):
                out[g, c] = values[r, c]
            seen[g] = True
