"""Kernels of :mod:`offnadir.change.crown_shadow`: the sun ray's march from a shadow cell to its
first caster and on, to another object that would still shade it. Kernels layer: numpy and numba
only."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


#: side (cells) of the blocks whose highest tops bound what the rest of a ray can meet
BLOCK = 8


@njit(**_NB)
def _ahead_max(h, di, dj):
    """Per BLOCK x BLOCK block, the highest finite top over the blocks at or beyond it in both of
    the ray's directions (rows ``di``, columns ``dj``): every cell the rest of a ray from that block
    can sample lies there (the nearest cell of a straight march moves monotonically)."""
    ny, nx = h.shape
    by, bx = (ny + BLOCK - 1) // BLOCK, (nx + BLOCK - 1) // BLOCK
    m = np.full((by, bx), -np.inf)
    for i in range(ny):
        for j in range(nx):
            v = h[i, j]
            if np.isfinite(v) and v > m[i // BLOCK, j // BLOCK]:
                m[i // BLOCK, j // BLOCK] = v
    if di > 0:
        for bi in range(by - 2, -1, -1):
            for bj in range(bx):
                m[bi, bj] = max(m[bi, bj], m[bi + 1, bj])
    elif di < 0:
        for bi in range(1, by):
            for bj in range(bx):
                m[bi, bj] = max(m[bi, bj], m[bi - 1, bj])
    if dj > 0:
        for bj in range(bx - 2, -1, -1):
            for bi in range(by):
                m[bi, bj] = max(m[bi, bj], m[bi, bj + 1])
    elif dj < 0:
        for bj in range(1, bx):
            for bi in range(by):
                m[bi, bj] = max(m[bi, bj], m[bi, bj - 1])
    return m


@njit(**_NB)
def first_and_other(h, elevated, ii, jj, rise, di, dj, hmax, tol, max_dist, dist, other):
    """Per cell ``(ii[k], jj[k])`` of ``h``: ``dist[k]`` the distance (cells) towards the sun to its
    first caster, the march of :func:`offnadir.change.sun_kernels.caster_distances_at` (every half
    cell, nearest cell, the first top more than ``tol`` above the ray ``rise`` metres per cell;
    -1 at the window's edge, at ``hmax`` or beyond ``max_dist``: the same numbers); ``other[k]``
    whether the march, continued past that caster, meets a top above the ray after crossing a cell
    whose ``elevated`` is not 1 (ground): another object, which would still shade the cell were the
    first caster's object gone. The march stops where no top ahead of it (:func:`_ahead_max`)
    reaches the rising ray: nothing further can block it (the same answers as marching on to
    ``hmax``, tested)."""
    ny, nx = h.shape
    ahead = _ahead_max(h, di, dj)
    for k in range(ii.shape[0]):
        i, j = ii[k], jj[k]
        dist[k] = -1.0
        other[k] = False
        z = h[i, j]
        if not np.isfinite(z):
            continue
        found = False
        left = False
        s = 0.5
        while s <= max_dist:
            zr = z + s * rise
            if zr >= hmax:
                break
            pi = int(math.floor(i + s * di + 0.5))
            pj = int(math.floor(j + s * dj + 0.5))
            if pi < 0 or pi >= ny or pj < 0 or pj >= nx:
                break
            if ahead[pi // BLOCK, pj // BLOCK] - zr <= tol:
                break  # nothing ahead reaches the rising ray: no (further) caster
            v = h[pi, pj]
            if not found:
                if (pi != i or pj != j) and np.isfinite(v) and v - zr > tol:
                    dist[k] = s
                    found = True
            else:
                if elevated[pi, pj] != 1:
                    left = True
                if left and np.isfinite(v) and v - zr > tol:
                    other[k] = True
                    break
            s += 0.5
