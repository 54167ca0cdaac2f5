"""Geometry of the *ahead bound* of :func:`offnadir.cube.visibility_kernels.visibility_los`: which
coarse cells a line-of-sight march can still reach, and how much the ray must have risen by then.
It depends on the lines of sight only, not on the heights: the march combines it with the block's
max grid (:func:`offnadir.cube.visibility_kernels._ahead_combine`).

Speed (the result is exactly that of the plain march: the reference twins in the tests have no
shortcuts, and ``tests/test_visibility_shortcuts.py`` compares on large blocks):

* a max pyramid of the block (coarse cells of 4, 8, 32 and 128 cells) lets the march jump over
  the largest coarse cell around the current sample whose highest height is below the ray; those
  samples could not hide the cell;
* an *ahead bound* ends the march as soon as nothing left on the ray's path can reach it. For the
  4-cell coarse cell of the current sample it bounds every height the rest of the march can meet,
  minus the least rise of the ray on its way there: the coarse cells that rays of the block's
  directions (the sector of its LOS vectors) reach within ``max_dist``, each lowered by its
  distance times the smallest rise ``1 / max|los|``. The march stops when the ray is above it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")

#: side (cells) of the coarse max grid of the ahead bound (the pyramid's first level); the pyramid
#: has levels of 4, 8, 32 and 128 cells (the shifts in visibility_los assume these). 4 rather than 8:
#: a finer bound lets more cells stop at once (CPU per 1024^2 tile of the 25-degree view of
#: bench_cube's 2048^2 city: 41.3 -> 37.2 ms; identical results)
_SKIP = 4


@njit(**_NB)
def _los_sector(los_di, los_dj):
    """The directions of the LOS vectors: ``(ri, rj, lo, hi, n_max, ok)``. Every finite non-zero
    ``(di, dj)`` makes an angle in ``[lo, hi]`` (radians) with the unit vector ``(ri, rj)`` (the
    first such LOS) and has a norm <= ``n_max``; ``ok`` is False when there is none, or when one is
    more than 60 degrees from the reference (no ahead bound then).

    Two passes: the reference first, then one branch-free pass over all vectors (no square root
    or early exit inside it, so numba vectorises it: ~20x faster than one pass with both, which
    took a third of the visibility time of a near-nadir image)."""
    h, w = los_di.shape
    ri = 0.0
    rj = 0.0
    found = False
    for y in range(h):
        for x in range(w):
            di = los_di[y, x]
            dj = los_dj[y, x]
            n2 = di * di + dj * dj
            if n2 > 0.0 and n2 < np.inf:
                m = math.sqrt(n2)
                ri = di / m
                rj = dj / m
                found = True
                break
        if found:
            break
    if not found:
        return ri, rj, 0.0, 0.0, 0.0, False
    tlo = np.inf
    thi = -np.inf
    n2max = 0.0
    bad = False
    for y in range(h):
        for x in range(w):
            di = los_di[y, x]
            dj = los_dj[y, x]
            n2 = di * di + dj * dj
            valid = n2 > 0.0 and n2 < np.inf
            dot = ri * di + rj * dj
            # more than 60 degrees from the reference unless dot > |v| / 2, i.e. dot > 0, 4 dot^2 > |v|^2
            bad |= valid and not (dot > 0.0 and 4.0 * dot * dot > n2)
            t = (ri * dj - rj * di) / dot if valid else 0.0     # tan of the angle from the reference
            if valid:
                tlo = min(tlo, t)
                thi = max(thi, t)
                n2max = max(n2max, n2)
    if bad:
        return ri, rj, 0.0, 0.0, 0.0, False
    return ri, rj, math.atan(tlo), math.atan(thi), math.sqrt(n2max), True


@njit(**_NB)
def _box_meets_polygon(a0, a1, b0, b1, px, py):
    """Whether the box ``[a0, a1] x [b0, b1]`` and the convex polygon (px, py) intersect
    (separating axis test)."""
    npts = px.shape[0]
    if px.max() < a0 or px.min() > a1 or py.max() < b0 or py.min() > b1:
        return False
    for q in range(npts):
        nx = py[q] - py[(q + 1) % npts]        # an edge normal
        ny = px[(q + 1) % npts] - px[q]
        pmn = np.inf
        pmx = -np.inf
        for r in range(npts):
            v = nx * px[r] + ny * py[r]
            pmn = min(pmn, v)
            pmx = max(pmx, v)
        v0 = nx * a0 + ny * b0
        v1 = nx * a0 + ny * b1
        v2 = nx * a1 + ny * b0
        v3 = nx * a1 + ny * b1
        if pmx < min(min(v0, v1), min(v2, v3)) or max(max(v0, v1), max(v2, v3)) < pmn:
            return False
    return True


#: most coarse cells the ahead bound may combine per coarse cell (beyond that it is not built)
_AHEAD_MAX_OFFSETS = 512


@njit(**_NB)
def _ahead_offsets(b, ri, rj, lo, hi, dmax, rise_min):
    """``(off_i, off_j, drop, ok)``: the coarse cells (side ``b``) a march can still sample after a
    sample in coarse cell (I, J) lie at (I + off_i, J + off_j), at least ``drop / rise_min`` cells
    further on, for rays in directions ``[lo, hi]`` from ``(ri, rj)`` and at most ``dmax`` cells
    long; ``drop`` is the least rise of the ray on its way there. ``ok`` is False (no bound) when
    more than :data:`_AHEAD_MAX_OFFSETS` cells would be combined (very long or very wide sectors)."""
    lo -= 1e-6                                 # margins against rounding (radians, cells)
    hi += 1e-6
    mid = 0.5 * (lo + hi)
    reach = dmax * (1.0 + 1e-9) + 1e-6
    # the sector (apex at the current sample, radius reach) inside a convex polygon: the apex, the
    # two end points of the arc and the meeting point of the arc's end tangents
    px = np.zeros(4)
    py = np.zeros(4)
    for q in range(3):
        ang = lo if q == 0 else (mid if q == 1 else hi)
        rad = reach / math.cos(0.5 * (hi - lo)) if q == 1 else reach
        ca = math.cos(ang)
        sa = math.sin(ang)
        px[q + 1] = (ri * ca - rj * sa) * rad
        py[q + 1] = (rj * ca + ri * sa) * rad
    far = max(np.abs(px).max(), np.abs(py).max())
    K = int(math.ceil(far / b)) + 2
    n_max = (2 * K + 1) ** 2
    off_i = np.empty(n_max, np.int64)
    off_j = np.empty(n_max, np.int64)
    drop = np.empty(n_max)
    n = 0
    m = 0.01
    for dI in range(-K, K + 1):
        for dJ in range(-K, K + 1):
            # a later sample in coarse cell (I+dI, J+dJ) is displaced from the current one by a
            # vector in this (slightly enlarged) box
            a0 = b * dI - b - m
            a1 = b * dI + b + m
            b0 = b * dJ - b - m
            b1 = b * dJ + b + m
            if not _box_meets_polygon(a0, a1, b0, b1, px, py):
                continue
            if n == _AHEAD_MAX_OFFSETS:
                return off_i[:0], off_j[:0], drop[:0], False
            ci = 0.0 if a0 <= 0.0 <= a1 else min(abs(a0), abs(a1))
            cj = 0.0 if b0 <= 0.0 <= b1 else min(abs(b0), abs(b1))
            off_i[n] = dI
            off_j[n] = dJ
            drop[n] = math.sqrt(ci * ci + cj * cj) * rise_min * (1.0 - 1e-9)
            n += 1
    return off_i[:n], off_j[:n], drop[:n], True


def ahead_offsets(los_di, los_dj, shape, max_dist):
    """The ahead bound's geometry for a block of ``shape`` and these lines of sight:
    ``(off_i, off_j, drop, sh)`` (:func:`_ahead_offsets`) on coarse cells of ``2**sh`` cells: 4
    (``sh`` 2), else 8 when more than :data:`_AHEAD_MAX_OFFSETS` cells of 4 would be combined;
    ``sh`` -1 when there is no bound (too many cells of 8 too, or LOS directions more than 60
    degrees apart)."""
    H, W = shape
    ri, rj, lo, hi, n_max, ok = _los_sector(los_di, los_dj)
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), -1)
    if not ok:
        return none
    dmax = max_dist if max_dist < np.inf else math.sqrt(H * H + W * W) + 2.0
    for sh, b in ((2, _SKIP), (3, 2 * _SKIP)):
        off_i, off_j, drop, ok = _ahead_offsets(b, ri, rj, lo, hi, dmax, 1.0 / n_max)
        if ok:
            return off_i, off_j, drop, sh
    return none
