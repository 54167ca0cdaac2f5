"""Kernels of :mod:`offnadir.change.crown_shadow`: the sun ray's march from a shadow cell to its
first caster and on, to another object that would still shade it. Kernels layer: numpy and numba
only."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_NB)
def first_and_other(h, elevated, ii, jj, rise, di, dj, hmax, tol, max_dist, dist, other):
    """Per cell ``(ii[k], jj[k])`` of ``h``: ``dist[k]`` the distance (cells) towards the sun to its
    first caster, the march of :func:`offnadir.change.sun_kernels.caster_distances_at` (every half
    cell, nearest cell, the first top more than ``tol`` above the ray ``rise`` metres per cell;
    -1 at the window's edge, at ``hmax`` or beyond ``max_dist``: the same numbers); ``other[k]``
    whether the march, continued past that caster, meets a top above the ray after crossing a cell
    whose ``elevated`` is not 1 (ground): another object, which would still shade the cell were the
    first caster's object gone."""
    ny, nx = h.shape
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
