"""numba kernels of the cube's line-of-sight visibility (:mod:`offnadir.cube.kernels` re-exports
them; grid conventions and visibility codes as documented there).

Line-of-sight occlusion (:func:`visibility_los`)
-----------------------------------------------
A DSM cell at height ``z`` is hidden when the ray from it towards the sensor passes below the
surface. The ray is marched on the DSM grid from ``s = step`` (not 0) in steps of ``step``
(default 0.5 cell, measured along the ray in cells); at distance ``s`` its height is
``z + s / |los|`` and the surface there is the bilinear interpolation of the four surrounding
DSM cells (NaN neighbours are skipped and the weights of the others renormalised; a sample with
no valid neighbour is ignored). The cell is hidden when ``surface - ray > z_tol``.

Why this choice (self-occlusion): bilinear interpolation reproduces a plane exactly, so any
planar surface whose slope towards the sensor is below the grazing slope ``1 / |los|`` (metres
per cell) stays visible for every ``z_tol >= 0``, however close to grazing and whatever its
orientation to the grid; a surface rising towards the sensor more steeply than the ray (a roof or
terrain facing away from the sensor beyond grazing) is hidden as soon as the excess rise,
``(slope - 1/|los|) * s``, exceeds ``z_tol``. ``z_tol`` therefore only has to absorb rounding,
height quantisation and DSM noise: :data:`DEFAULT_Z_TOL` = 0.05 m suits clean DSMs (lidar,
float32 storage, cm quantisation); for a noisy stereo DSM use about its vertical noise (0.3-1 m),
which hides fewer cells at the foot of walls (a wall must be ``> z_tol`` above the ray to hide).
A plane tilted at 70 % of the grazing slope stays ``0.3 * s / |los|`` metres below the ray, so it
stays visible even with DSM noise whose peak-to-peak range is below ``z_tol + 0.15 / |los|``
(tested; the first sample is at ``s = 0.5``).

A building of height ``h`` hides the ground strip behind it (away from the sensor) of length
``h * |los|`` cells along the line of sight, to within one cell, never longer: the bilinear
surface turns the wall into a one-cell ramp from the ground centre to the roof centre (the
effective wall sits at the last roof cell centre, half a cell inside the true one) and the ray
must pass ``z_tol`` below the roof. Behind a wall the hidden run holds the cells whose centre
lies within ``h * |los|`` of the wall, or one fewer; its length is within
``[h*|los| - 1 - z_tol*|los|, h*|los|]`` cells (tested against the analytic box shadow).

Chunk invariance: the march positions are computed as offsets from the cell (never from the
block origin), so a cell's result depends only on the DSM values and its own LOS. The march stops
when the ray has risen above ``h_max - z_tol`` (nothing in the block can then hide it), when
``s > max_dist`` or when the 2x2 sample footprint leaves the block; the last never changes the
result when the block carries a halo of :func:`halo_cells` cells around the core. Blocks that
reach past the DSM edge may be clipped there or padded with NaN; both are chunk-invariant, but
they differ from each other for rays that leave the DSM (a NaN-padded footprint still samples the
edge cells), so the whole-vs-tiled reference must use the same convention as the tiles.

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

#: recommended ``z_tol`` (metres) of :func:`visibility_los` for clean DSMs; see the module doc.
DEFAULT_Z_TOL = 0.05
#: default march step of :func:`visibility_los`, in cells along the ray (the maximum allowed).
DEFAULT_LOS_STEP = 0.5


# --------------------------------------------------------------------------- visibility


def halo_cells(h_range_m, los_norm_max):
    """Halo (cells, each side) a block needs around its core for :func:`visibility_los`.

    ``h_range_m``: max height - min height over the tile and its surroundings (metres);
    ``los_norm_max``: the largest ``hypot(los_di, los_dj)`` (cells per metre) of the images.
    Returns ``ceil(h_range_m * los_norm_max) + 2`` (the 2 covers the 2x2 sample footprint).
    """
    h = float(h_range_m)
    n = float(los_norm_max)
    if not (math.isfinite(h) and h >= 0.0):
        raise ValueError(f"halo_cells: h_range_m must be a finite height range >= 0 m, got {h_range_m!r}")
    if not (math.isfinite(n) and n >= 0.0):
        raise ValueError(f"halo_cells: los_norm_max must be finite and >= 0 cells/m, got {los_norm_max!r}")
    return int(math.ceil(h * n)) + 2


#: side (cells) of the coarse max grid of the ahead bound (the pyramid's first level); the pyramid
#: has levels of 4, 8, 32 and 128 cells (the shifts in visibility_los assume these). 4 rather than 8:
#: a finer bound lets more cells stop at once (CPU per 1024^2 tile of the 25-degree view of
#: bench_cube's 2048^2 city: 41.3 -> 37.2 ms; identical results)
_SKIP = 4


@njit(**_NB)
def _coarse_max(dsm, b):
    """``m[I, J]`` = max of the finite heights in rows ``I*b .. I*b+b`` and columns
    ``J*b .. J*b+b`` (both ends included: every 2x2 sample footprint whose top-left cell lies in
    coarse cell (I, J)); -inf where there is none. Also returns the block maximum."""
    H, W = dsm.shape
    nI = (H + b - 1) // b
    nJ = (W + b - 1) // b
    m = np.full((nI, nJ), -np.inf)
    top = -np.inf
    for i in range(H):
        I = i // b
        I2 = I - 1 if (i % b == 0 and I > 0) else -1   # row I*b also closes coarse row I-1
        for j in range(W):
            v = dsm[i, j]
            if not (v > -np.inf):
                continue
            if v > top:
                top = v
            J = j // b
            J2 = J - 1 if (j % b == 0 and J > 0) else -1
            if v > m[I, J]:
                m[I, J] = v
            if J2 >= 0 and v > m[I, J2]:
                m[I, J2] = v
            if I2 >= 0:
                if v > m[I2, J]:
                    m[I2, J] = v
                if J2 >= 0 and v > m[I2, J2]:
                    m[I2, J2] = v
    return m, top


@njit(**_NB)
def _pool_max(m, f):
    """Max of ``f x f`` groups of coarse cells: the next pyramid level (cell side ``f`` times
    larger; the closing row/column of each coarse cell carries over, since each group's last
    coarse cell already includes it)."""
    nI = (m.shape[0] + f - 1) // f
    nJ = (m.shape[1] + f - 1) // f
    out = np.full((nI, nJ), -np.inf)
    for I in range(m.shape[0]):
        for J in range(m.shape[1]):
            v = m[I, J]
            if v > out[I // f, J // f]:
                out[I // f, J // f] = v
    return out


@njit(inline="always", **_NB)
def _jump(k, step, b, I, J, bi, bj, inv_ui, inv_uj):
    """March index to continue from after sample ``k`` was found in coarse cell (I, J) of side
    ``b`` below the ray: about where the march leaves that cell, one step early against rounding
    (never less than k + 1)."""
    s_exit = np.inf
    if inv_ui > 0.0:
        s_exit = (I * b + b - bi) * inv_ui
    elif inv_ui < 0.0:
        s_exit = (I * b - bi) * inv_ui
    if inv_uj > 0.0:
        s_exit = min(s_exit, (J * b + b - bj) * inv_uj)
    elif inv_uj < 0.0:
        s_exit = min(s_exit, (J * b - bj) * inv_uj)
    q = s_exit / step - 1.0
    if q > k + 1:
        return int(q)
    return k + 1


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
def _ahead_bound(cmax, b, ri, rj, lo, hi, dmax, rise_min):
    """``A[I, J]``: an upper bound of ``height - rise_min * distance`` over every 2x2 footprint a
    march can still sample, after a sample whose footprint's top-left cell lies in coarse cell
    (I, J) of ``cmax`` (side ``b``), for rays in directions ``[lo, hi]`` from ``(ri, rj)`` and at
    most ``dmax`` cells further on. All +inf (no bound) when more than
    :data:`_AHEAD_MAX_OFFSETS` coarse cells would be combined (very long or very wide sectors)."""
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
    nI, nJ = cmax.shape
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
                return np.full((nI, nJ), np.inf)
            ci = 0.0 if a0 <= 0.0 <= a1 else min(abs(a0), abs(a1))
            cj = 0.0 if b0 <= 0.0 <= b1 else min(abs(b0), abs(b1))
            off_i[n] = dI
            off_j[n] = dJ
            drop[n] = math.sqrt(ci * ci + cj * cj) * rise_min * (1.0 - 1e-9)
            n += 1
    A = np.empty((nI, nJ))
    for I in range(nI):
        for J in range(nJ):
            v = -np.inf
            for q in range(n):
                I2 = I + off_i[q]
                J2 = J + off_j[q]
                if I2 >= 0 and I2 < nI and J2 >= 0 and J2 < nJ:
                    c = cmax[I2, J2] - drop[q]
                    if c > v:
                        v = c
            A[I, J] = v
    return A


@njit(**_NB)
def visibility_los(dsm, los_di, los_dj, core_i0, core_j0, core_h, core_w, h_max, z_tol,
                   max_dist, out, step=0.5):
    """Visibility of the core cells of a DSM block by marching along each cell's line of sight.

    dsm: (H, W) float64 block = core + halo, NaN = nodata.
    los_di, los_dj: (core_h, core_w) horizontal displacement (fine cells) of the line of sight per
        metre of height gained towards the sensor (``|los| = tan(off_nadir) / cell_size``).
    core_i0, core_j0, core_h, core_w: position and size of the core inside the block.
    h_max: an upper bound of the block heights (metres); NaN/inf = compute it here.
    z_tol: tolerance (m, >= 0) of the occlusion test, see the module doc (:data:`DEFAULT_Z_TOL`).
    max_dist: longest march in cells (``np.inf`` for no limit).
    out: (core_h, core_w) uint8: 1 visible, 0 hidden, 2 nodata (NaN height or non-finite LOS).
    step: march step in cells along the ray, 0 < step <= 0.5.

    A cell with a zero LOS (exact nadir) is visible.
    """
    H, W = dsm.shape
    if core_i0 < 0 or core_j0 < 0 or core_i0 + core_h > H or core_j0 + core_w > W:
        raise ValueError("visibility_los: the core (core_i0, core_j0, core_h, core_w) "
                         "does not fit inside the dsm block")
    if (los_di.shape[0] != core_h or los_di.shape[1] != core_w or los_dj.shape[0] != core_h
            or los_dj.shape[1] != core_w or out.shape[0] != core_h or out.shape[1] != core_w):
        raise ValueError("visibility_los: los_di, los_dj and out must have shape (core_h, core_w)")
    if not (step > 0.0 and step <= 0.5):
        raise ValueError("visibility_los: step must be in (0, 0.5] cell")
    if not (z_tol >= 0.0):
        raise ValueError("visibility_los: z_tol must be >= 0 m")
    cf, top = _coarse_max(dsm, 4)          # coarse cells of 4 (>> 2) = _SKIP
    c0 = _pool_max(cf, 2)                   # 8 (>> 3)
    c1 = _pool_max(c0, 4)                   # 32 (>> 5)
    c2 = _pool_max(c1, 4)                   # 128 (>> 7)
    hm = h_max if np.isfinite(h_max) else top
    ri, rj, lo, hi, n_max, ok = _los_sector(los_di, los_dj)
    sh = 2                                  # ahead[i >> sh, j >> sh]: cells of _SKIP = 4
    if ok:
        dmax = max_dist if max_dist < np.inf else math.sqrt(H * H + W * W) + 2.0
        ahead = _ahead_bound(cf, _SKIP, ri, rj, lo, hi, dmax, 1.0 / n_max)
        if ahead[0, 0] == np.inf:           # too many cells of 4 to combine (long or wide sector): 8
            ahead = _ahead_bound(c0, 2 * _SKIP, ri, rj, lo, hi, dmax, 1.0 / n_max)
            sh = 3
    else:
        ahead = np.full(cf.shape, np.inf)
    for y in range(core_h):
        bi = core_i0 + y
        for x in range(core_w):
            bj = core_j0 + x
            z = dsm[bi, bj]
            di = los_di[y, x]
            dj = los_dj[y, x]
            if not (np.isfinite(z) and np.isfinite(di) and np.isfinite(dj)):
                out[y, x] = 2
                continue
            if z + z_tol >= ahead[bi >> sh, bj >> sh]:
                out[y, x] = 1               # the cell itself is above all it could meet
                continue
            n = math.sqrt(di * di + dj * dj)
            if n == 0.0:
                out[y, x] = 1
                continue
            ui = di / n
            uj = dj / n
            inv_ui = 1.0 / ui if ui != 0.0 else 0.0
            inv_uj = 1.0 / uj if uj != 0.0 else 0.0
            rise = 1.0 / n          # metres gained per cell of march
            vis = 1
            k = 1
            while True:
                s = k * step
                if s > max_dist:
                    break
                ray = z + s * rise
                if ray + z_tol >= hm:
                    break
                ti = s * ui
                tj = s * uj
                fi = math.floor(ti)
                fj = math.floor(tj)
                ai = ti - fi
                aj = tj - fj
                ii = bi + int(fi)
                jj = bj + int(fj)
                if ii < 0 or jj < 0 or ii + 1 >= H or jj + 1 >= W:
                    break
                # nothing in a coarse cell whose max is below the ray can reach the (rising) ray:
                # jump to about where the march leaves the largest such cell; the samples skipped
                # could not hide the cell, so the result is that of the full march
                rz = ray + z_tol
                if rz >= ahead[ii >> sh, jj >> sh]:
                    break                   # nothing left on the path can reach the ray
                I = ii >> 7
                J = jj >> 7
                if rz >= c2[I, J]:
                    k = _jump(k, step, 128, I, J, bi, bj, inv_ui, inv_uj)
                    continue
                I = ii >> 5
                J = jj >> 5
                if rz >= c1[I, J]:
                    k = _jump(k, step, 32, I, J, bi, bj, inv_ui, inv_uj)
                    continue
                I = ii >> 3
                J = jj >> 3
                if rz >= c0[I, J]:
                    k = _jump(k, step, 8, I, J, bi, bj, inv_ui, inv_uj)
                    continue
                I = ii >> 2
                J = jj >> 2
                if rz >= cf[I, J]:
                    k = _jump(k, step, 4, I, J, bi, bj, inv_ui, inv_uj)
                    continue
                acc = 0.0
                wsum = 0.0
                w = (1.0 - ai) * (1.0 - aj)
                v = dsm[ii, jj]
                if w > 0.0 and v == v:
                    acc += w * v
                    wsum += w
                w = (1.0 - ai) * aj
                v = dsm[ii, jj + 1]
                if w > 0.0 and v == v:
                    acc += w * v
                    wsum += w
                w = ai * (1.0 - aj)
                v = dsm[ii + 1, jj]
                if w > 0.0 and v == v:
                    acc += w * v
                    wsum += w
                w = ai * aj
                v = dsm[ii + 1, jj + 1]
                if w > 0.0 and v == v:
                    acc += w * v
                    wsum += w
                if wsum > 0.0 and acc / wsum - ray > z_tol:
                    vis = 0
                    break
                k += 1
            out[y, x] = vis
