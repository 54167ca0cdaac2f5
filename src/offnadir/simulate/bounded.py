"""Grid traversals that skip whole blocks of the DSM the ray passes above (numpy and numba only).

The simulator's rays (lines of sight going down, sun rays going up) walk the exact sequence of
cells they pass over (:mod:`offnadir.simulate.render`). Most of that walk is over ground the ray is
far above: a line of sight starts above the highest roof of the scene and, at 25° off-nadir,
crosses ~60 cells before it reaches a street. These kernels keep the exact per-cell tests and add
one bound: the DSM is cut into ``k × k`` blocks and :func:`block_max` keeps each block's highest
top. When a ray enters a block (inside the grid) it is tested against that maximum first:

* a descending line of sight is lowest where it leaves the block; if it is still above the
  block's maximum there, it cannot hit anything in the block, and it jumps to the cell it enters
  after the block;
* an ascending sun ray is lowest where it enters the block; if it is at least ``bmax - tol``
  there, no cell of the block can block it (the per-cell test is ``z(t) < h - tol``), so it jumps.

Both bounds are exact (never skip a cell that could be hit), so :func:`first_hit` and
:func:`blocked` return what :func:`offnadir.simulate.perray.trace` and
:func:`~offnadir.simulate.render.sun_blocked` return, up to the last bits of the ray parameters
(the cell crossings are recomputed from the ray's start instead of accumulated), which can move a
hit by a rounding error at an exact cell corner. Outside the grid (border cells continued) no
block is skipped. The wall entered by a line of sight is judged against the neighbour across the
entry face, which is the previous cell of the walk, as in ``perray.trace``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")

#: hit codes of a line of sight (see :mod:`offnadir.simulate.render`)
NONE, TOP, STEP, FACADE = 0, 1, 2, 3

#: block side (cells): a street is 10-20 cells wide at 0.5 m, so 8-cell blocks over open ground are
#: skipped while a block holding any roof or tree is walked cell by cell
BLOCK = 8


@njit(inline="always", **_NB)
def _h(dsm, i, j):
    """Height of cell (i, j), border cells continued outside the grid."""
    ny, nx = dsm.shape
    if i < 0:
        i = 0
    elif i >= ny:
        i = ny - 1
    if j < 0:
        j = 0
    elif j >= nx:
        j = nx - 1
    return dsm[i, j]


@njit(inline="always", **_NB)
def _log2(k):
    """log2 of a power of two (block indices are cell indices shifted right)."""
    s = 0
    while (1 << s) < k:
        s += 1
    return s


def block_max(dsm: np.ndarray, k: int = BLOCK) -> np.ndarray:
    """Highest top of each ``k × k`` block of ``dsm`` (float64, ceil(H/k) × ceil(W/k)); ``k`` a
    power of two."""
    if k < 1 or k & (k - 1):
        raise ValueError(f"block side {k} must be a power of two")
    ny, nx = dsm.shape
    nby, nbx = -(-ny // k), -(-nx // k)
    out = np.empty((nby, nbx), np.float64)
    for a in range(nby):
        out[a] = np.maximum.reduceat(np.max(dsm[a * k:(a + 1) * k], axis=0), np.arange(0, nx, k))
    return out


@njit(inline="always", **_NB)
def _crossing(p0, inv, n, sgn):
    """Ray parameter at which the coordinate ``p0 + t / inv`` reaches the far edge of cell ``n``
    when moving in direction ``sgn`` (inf when not moving)."""
    if sgn > 0:
        return (n + 1 - p0) * inv
    if sgn < 0:
        return (n - p0) * inv
    return np.inf


@njit(**_NB)
def first_hit(dsm, bmax, k, u0, v0, z0, u1, v1, z1, wall_min):
    """First intersection of the segment (u0, v0, z0) -> (u1, v1, z1) (going down) with the box DSM;
    same result and codes as :func:`offnadir.simulate.perray.trace`."""
    ny, nx = dsm.shape
    du = u1 - u0
    dv = v1 - v0
    dz = z1 - z0
    sj = 1 if du > 0 else (-1 if du < 0 else 0)
    si = 1 if dv > 0 else (-1 if dv < 0 else 0)
    inv_u = 1.0 / du if sj != 0 else 0.0
    inv_v = 1.0 / dv if si != 0 else 0.0
    j = int(math.floor(u0))
    i = int(math.floor(v0))
    s_in = 0.0
    face = -1
    bi = -1
    bj = -1
    ks = _log2(k)
    while True:
        if 0 <= i < ny and 0 <= j < nx:
            ib = i >> ks
            jb = j >> ks
            if ib != bi or jb != bj:
                bi = ib
                bj = jb
                tcu = _crossing(u0, inv_u, jb * k + (k - 1 if sj > 0 else 0), sj)
                tcv = _crossing(v0, inv_v, ib * k + (k - 1 if si > 0 else 0), si)
                t_exit = min(tcu, tcv)
                if t_exit < 1.0 and z0 + dz * t_exit > bmax[ib, jb]:
                    if tcu < tcv:
                        j = jb * k + k if sj > 0 else jb * k - 1
                        i = min(max(int(math.floor(v0 + dv * tcu)), ib * k), ib * k + k - 1)
                        face = 0 if sj > 0 else 1
                        s_in = tcu
                    else:
                        i = ib * k + k if si > 0 else ib * k - 1
                        j = min(max(int(math.floor(u0 + du * tcv)), jb * k), jb * k + k - 1)
                        face = 2 if si > 0 else 3
                        s_in = tcv
                    continue
        h = _h(dsm, i, j)
        if z0 + dz * s_in <= h:
            if face < 0:
                return TOP, i, j, s_in, face
            if face == 0:
                hprev = _h(dsm, i, j - 1)
            elif face == 1:
                hprev = _h(dsm, i, j + 1)
            elif face == 2:
                hprev = _h(dsm, i - 1, j)
            else:
                hprev = _h(dsm, i + 1, j)
            if h - hprev < wall_min:
                return STEP, i, j, s_in, face
            return FACADE, i, j, s_in, face
        tmu = _crossing(u0, inv_u, j, sj)
        tmv = _crossing(v0, inv_v, i, si)
        s_out = min(tmu, tmv, 1.0)
        if z0 + dz * s_out <= h:
            return TOP, i, j, (h - z0) / dz, -1
        if s_out >= 1.0:
            return NONE, i, j, 1.0, -1
        if tmu < tmv:
            j += sj
            s_in = tmu
            face = 0 if sj > 0 else 1
        else:
            i += si
            s_in = tmv
            face = 2 if si > 0 else 3


@njit(**_NB)
def blocked(dsm, bmax, k, u, v, z, su, sv, sz, cell, zmax, tol):
    """True when the ray from (u, v, z) towards the sun (unit vector (su, sv, sz): east, south, up)
    meets a cell more than ``tol`` above the ray before climbing over ``zmax``; the start cell is
    not tested. Same result as :func:`offnadir.simulate.render.sun_blocked`."""
    if sz <= 0.0:
        return True
    if z >= zmax:
        return False
    ny, nx = dsm.shape
    du = su / cell
    dv = sv / cell
    t_end = (zmax - z) / sz
    eps = 1e-7
    j = int(math.floor(u + (eps if du > 0 else (-eps if du < 0 else 0.0))))
    i = int(math.floor(v + (eps if dv > 0 else (-eps if dv < 0 else 0.0))))
    sj = 1 if du > 0 else (-1 if du < 0 else 0)
    si = 1 if dv > 0 else (-1 if dv < 0 else 0)
    inv_u = 1.0 / du if sj != 0 else 0.0
    inv_v = 1.0 / dv if si != 0 else 0.0
    bi = -1
    bj = -1
    ks = _log2(k)
    first = True
    t = 0.0
    while True:
        if not first:
            if t > t_end:
                return False
            if 0 <= i < ny and 0 <= j < nx:
                ib = i >> ks
                jb = j >> ks
                if ib != bi or jb != bj:
                    bi = ib
                    bj = jb
                    if z + sz * t >= bmax[ib, jb] - tol:
                        tcu = _crossing(u, inv_u, jb * k + (k - 1 if sj > 0 else 0), sj)
                        tcv = _crossing(v, inv_v, ib * k + (k - 1 if si > 0 else 0), si)
                        if tcu < tcv:
                            t = tcu
                            j = jb * k + k if sj > 0 else jb * k - 1
                            i = min(max(int(math.floor(v + dv * tcu)), ib * k), ib * k + k - 1)
                        else:
                            t = tcv
                            i = ib * k + k if si > 0 else ib * k - 1
                            j = min(max(int(math.floor(u + du * tcv)), jb * k), jb * k + k - 1)
                        continue
            if z + sz * t < _h(dsm, i, j) - tol:
                return True
        first = False
        tmu = _crossing(u, inv_u, j, sj)
        tmv = _crossing(v, inv_v, i, si)
        if tmu < tmv:
            t = tmu
            j += sj
        else:
            t = tmv
            i += si
