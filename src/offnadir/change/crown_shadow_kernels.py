"""Kernels of :mod:`offnadir.change.crown_shadow`: the sun ray's march from a shadow cell to its
first caster and on, to another object that would still shade it. Kernels layer: numpy and numba
only."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


#: length (cells along the ray) of the bins of :func:`_strip_ahead`'s suffix maxima
STRIP_STEP = 4.0
#: bound on how far the nearest cell of a march lies from the ray's line, across it or along it:
#: 0.5 (|di| + |dj|) <= sqrt(1/2) = 0.7071 cells, rounded up past the coordinates' float error
STRIP_REACH = 0.75


@njit(**_NB)
def _strip_ahead(h, rise, di, dj):
    """What a march along the ray's own line can still meet: cells binned by their offset across
    the ray ``u = di * j - dj * i`` (bins of 1 cell) and along it ``t = di * i + dj * j`` (bins of
    :data:`STRIP_STEP`, from the window's least ``t``), per (u bin, t bin) the largest finite
    ``g = h - rise * t`` over its u bin and the two beside it, at or beyond that t bin. A march
    from a cell of u bin ``b`` samples cells within :data:`STRIP_REACH` of its line (bins
    ``b - 1 .. b + 1``), at distance ``s`` at ``t' >= t0 + s - STRIP_REACH`` and so
    ``s >= t' - t0 - STRIP_REACH``: a top there exceeds the ray by at most
    ``g' + rise * (t0 + STRIP_REACH) - z``. Returns (bounds, u origin, t origin, float slack);
    row ``b + 1`` holds u bin ``b``."""
    ny, nx = h.shape
    umin = tmin = np.inf
    umax = tmax = -np.inf
    for ci in (0, ny - 1):
        for cj in (0, nx - 1):
            u = di * cj - dj * ci
            t = di * ci + dj * cj
            umin, umax, tmin, tmax = min(umin, u), max(umax, u), min(tmin, t), max(tmax, t)
    umin -= 1.0
    tmin -= 1.0
    nu = int(math.floor(umax - umin)) + 3
    nt = int(math.floor((tmax - tmin) / STRIP_STEP)) + 2
    m = np.full((nu + 2, nt + 1), -np.inf)
    big = 0.0
    for i in range(ny):
        for j in range(nx):
            v = h[i, j]
            if np.isfinite(v):
                t = di * i + dj * j - tmin
                ub = int(math.floor(di * j - dj * i - umin)) + 1
                tb = int(math.floor(t / STRIP_STEP))
                g = v - rise * t
                big = max(big, abs(v))
                if g > m[ub, tb]:
                    m[ub, tb] = g
    for ub in range(nu + 2):
        for tb in range(nt - 1, -1, -1):
            m[ub, tb] = max(m[ub, tb], m[ub, tb + 1])
    out = np.full((nu + 2, nt + 1), -np.inf)
    for ub in range(1, nu + 1):
        for tb in range(nt + 1):
            out[ub, tb] = max(m[ub - 1, tb], m[ub, tb], m[ub + 1, tb])
    # the bound is in real numbers; the march's float tests and these sums round by ~1e-16 of
    # the magnitudes involved: a slack 1e7 times that keeps every break exact
    slack = 1e-9 * (1.0 + big + abs(rise) * (tmax - tmin + 2.0 * STRIP_STEP))
    return out, umin, tmin, slack


@njit(**_NB)
def first_and_other(h, elevated, ii, jj, rise, di, dj, hmax, tol, max_dist, dist, other):
    """Per cell ``(ii[k], jj[k])`` of ``h``: ``dist[k]`` the distance (cells) towards the sun to its
    first caster, the march of :func:`offnadir.change.sun_kernels.caster_distances_at` (every half
    cell, nearest cell, the first top more than ``tol`` above the ray ``rise`` metres per cell;
    -1 at the window's edge, at ``hmax`` or beyond ``max_dist``: the same numbers); ``other[k]``
    whether the march, continued past that caster, meets a top above the ray after crossing a cell
    whose ``elevated`` is not 1 (ground): another object, which would still shade the cell were the
    first caster's object gone. The march stops where no top ahead of it on the ray's line
    (:func:`_strip_ahead`) can reach the rising ray: nothing further can block it (the same answers as marching on to
    ``hmax``, tested)."""
    ny, nx = h.shape
    strip, umin, tmin, slack = _strip_ahead(h, rise, di, dj)
    nt = strip.shape[1] - 1
    for k in range(ii.shape[0]):
        i, j = ii[k], jj[k]
        dist[k] = -1.0
        other[k] = False
        z = h[i, j]
        if not np.isfinite(z):
            continue
        srow = strip[int(math.floor(di * j - dj * i - umin)) + 1]
        t0 = di * i + dj * j - tmin
        c0 = rise * (t0 + STRIP_REACH) - z - tol + slack  # a hit ahead needs g' + c0 > 0
        t0 -= STRIP_REACH
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
            tb = int(math.floor((t0 + s) / STRIP_STEP))
            if srow[min(max(tb, 0), nt)] + c0 <= 0.0:
                break  # no top ahead on the ray's line reaches the rising ray: no (further) caster
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
