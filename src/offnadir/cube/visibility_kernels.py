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

Speed: a max pyramid of the block lets the march jump over samples that could not hide the cell,
and an *ahead bound* ends it as soon as nothing left on the ray's path can reach the ray; the
result is exactly that of the plain march (details: :mod:`offnadir.cube.visibility_bound_kernels`,
which holds the bound's geometry).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from offnadir.cube.visibility_bound_kernels import _ahead_offsets, ahead_offsets

_NB = dict(cache=True, nogil=True, error_model="numpy")

#: recommended ``z_tol`` (metres) of :func:`visibility_los` for clean DSMs; see the module doc.
DEFAULT_Z_TOL = 0.05
#: default march step of :func:`visibility_los`, in cells along the ray (the maximum allowed).
DEFAULT_LOS_STEP = 0.5


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


@njit(inline="always", **_NB)
def _surface_sums(dsm, ii, jj, ai, aj):
    """``(sum of w * height, sum of w)`` over the 2x2 footprint with top-left cell (ii, jj) and
    bilinear fractions (ai, aj), leaving out NaN cells and zero weights."""
    acc, wsum = _add_sample(0.0, 0.0, (1.0 - ai) * (1.0 - aj), dsm[ii, jj])
    acc, wsum = _add_sample(acc, wsum, (1.0 - ai) * aj, dsm[ii, jj + 1])
    acc, wsum = _add_sample(acc, wsum, ai * (1.0 - aj), dsm[ii + 1, jj])
    return _add_sample(acc, wsum, ai * aj, dsm[ii + 1, jj + 1])


@njit(inline="always", **_NB)
def _add_sample(acc, wsum, w, v):
    if w > 0.0 and v == v:
        return acc + w * v, wsum + w
    return acc, wsum


@njit(**_NB)
def _ahead_combine(cmax, off_i, off_j, drop):
    """The ahead bound ``A[I, J]``: an upper bound of ``height - rise * distance`` over every 2x2
    footprint a march can still sample after a sample whose footprint's top-left cell lies in
    coarse cell (I, J) of the max grid ``cmax``, from the geometry of
    :func:`~offnadir.cube.visibility_bound_kernels.ahead_offsets`."""
    nI, nJ = cmax.shape
    n = off_i.shape[0]
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


def _ahead_bound(cmax, b, ri, rj, lo, hi, dmax, rise_min):
    """:func:`_ahead_combine` of ``cmax`` (coarse cells of side ``b``) with the geometry of a
    sector (:func:`~offnadir.cube.visibility_bound_kernels._ahead_offsets`); all +inf when there
    is no bound."""
    off_i, off_j, drop, ok = _ahead_offsets(b, ri, rj, lo, hi, dmax, rise_min)
    return _ahead_combine(cmax, off_i, off_j, drop) if ok else np.full(cmax.shape, np.inf)


def visibility_los(dsm, los_di, los_dj, core_i0, core_j0, core_h, core_w, h_max, z_tol,
                   max_dist, out, step=DEFAULT_LOS_STEP):
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
    off_i, off_j, drop, sh = ahead_offsets(los_di, los_dj, dsm.shape, max_dist)
    args = (dsm, los_di, los_dj, core_i0, core_j0, core_h, core_w, h_max, z_tol, max_dist, out, off_i, off_j,
            drop, sh)
    # the default step is left out so that numba compiles it as a constant: the march divides by
    # it (a division by 0.5 is exact, so the result is the same; 5 % less CPU at 25 degrees)
    _march(*args) if step == DEFAULT_LOS_STEP else _march(*args, step)


@njit(**_NB)
def _march(dsm, los_di, los_dj, core_i0, core_j0, core_h, core_w, h_max, z_tol, max_dist, out, off_i, off_j,
           drop, sh, step=DEFAULT_LOS_STEP):
    """:func:`visibility_los` with the ahead bound's geometry (``sh`` -1: no bound)."""
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
    if sh == 2:                             # ahead[i >> sh, j >> sh]: cells of _SKIP = 4
        ahead = _ahead_combine(cf, off_i, off_j, drop)
    elif sh == 3:                           # too many cells of 4 to combine (long or wide sector): 8
        ahead = _ahead_combine(c0, off_i, off_j, drop)
    else:                                   # no bound
        ahead = np.full(cf.shape, np.inf)
        sh = 2
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
                acc, wsum = _surface_sums(dsm, ii, jj, ai, aj)
                if wsum > 0.0 and acc / wsum - ray > z_tol:
                    vis = 0
                    break
                k += 1
            out[y, x] = vis
