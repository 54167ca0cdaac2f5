"""numba kernels of the same-date height sweep: windowed normalised cross-correlation on the
ground grid, and the running arg-max over candidate heights with the neighbours the sub-step
refinement needs.

Kernels know numpy and numba only; each loops on one thread (``nogil``, dask provides the
parallelism) and writes into preallocated outputs. Each has a slow, obvious twin in
``tests/test_sweep.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from offnadir.cube.window_sums_kernels import window_ncc  # noqa: F401  (re-exported: callers use swk.window_ncc)

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_NB)
def update_best(score, k, best, best_k, s_prev, s_next, last):
    """One step of the arg-max over candidate heights k = 0, 1, 2, ...

    score: (ny, nx) float32 agreement at height k (NaN = not measured). best, best_k: running
    maximum and its index (-1 before any). s_prev, s_next: score at best_k - 1 and best_k + 1
    (NaN when not measured). last: the score at k - 1 (NaN for k = 0); overwritten with ``score``.
    """
    ny, nx = score.shape
    for y in range(ny):
        for x in range(nx):
            s = score[y, x]
            if s == s and (best_k[y, x] < 0 or s > best[y, x]):
                best[y, x] = s
                best_k[y, x] = k
                s_prev[y, x] = last[y, x]
                s_next[y, x] = np.nan
            elif best_k[y, x] == k - 1 and k > 0:
                s_next[y, x] = s
            last[y, x] = s


@njit(**_NB)
def refine(best, best_k, s_prev, s_next, n_heights, z0, step, z_out, curv_out):
    """Sub-step height of the maximum from the parabola through the best score and its two
    neighbours: ``z = z0 + (k + d) step`` with ``d = (s- - s+) / (2 (s- - 2 s0 + s+))``.

    curv_out: the parabola's curvature ``-(s- - 2 s0 + s+) / step²`` (score per m², > 0 at a
    maximum). NaN for both where the maximum is at either end of the range (not bracketed), a
    neighbour is missing, or the curve is not concave there.
    """
    ny, nx = best.shape
    for y in range(ny):
        for x in range(nx):
            k = best_k[y, x]
            a = s_prev[y, x]
            c = s_next[y, x]
            s0 = best[y, x]
            if k <= 0 or k >= n_heights - 1 or not (a == a and c == c):
                z_out[y, x] = np.nan
                curv_out[y, x] = np.nan
                continue
            d2 = a - 2.0 * s0 + c
            if not d2 < 0.0:
                z_out[y, x] = np.nan
                curv_out[y, x] = np.nan
                continue
            d = 0.5 * (a - c) / d2
            z_out[y, x] = z0 + (k + d) * step
            curv_out[y, x] = -d2 / (step * step)



@njit(**_NB)
def label_consistent(dh, tol, out):
    """Connected regions of cells that moved (finite ``dh != 0``), 8-neighbours joined where
    their ``dh`` have one sign and differ by at most ``tol``: int32 labels 1..n in ``out`` (0:
    none). Returns n. A flood fill with an explicit stack (row-major seeds: the labels are the
    same whatever the caller)."""
    ny, nx = dh.shape
    for y in range(ny):
        for x in range(nx):
            out[y, x] = 0
    stack = np.empty(ny * nx, np.int64)
    n = 0
    for y0 in range(ny):
        for x0 in range(nx):
            v0 = dh[y0, x0]
            if out[y0, x0] != 0 or not (v0 == v0) or v0 == 0.0:
                continue
            n += 1
            out[y0, x0] = n
            top = 0
            stack[0] = y0 * nx + x0
            top = 1
            while top > 0:
                top -= 1
                p = stack[top]
                y = p // nx
                x = p - y * nx
                v = dh[y, x]
                for dy in range(-1, 2):
                    yy = y + dy
                    if yy < 0 or yy >= ny:
                        continue
                    for dx in range(-1, 2):
                        xx = x + dx
                        if xx < 0 or xx >= nx or out[yy, xx] != 0:
                            continue
                        w = dh[yy, xx]
                        if not (w == w) or w == 0.0 or (w > 0.0) != (v > 0.0) or abs(w - v) > tol:
                            continue
                        out[yy, xx] = n
                        stack[top] = yy * nx + xx
                        top += 1
    return n


@njit(**_NB)
def halo_counts(lab, n, r, out):
    """out[k] = number of cells within ``r`` cells (a (2r+1)² square) of region ``k`` of the int
    labels ``lab`` (k = 1..n; out[0] = 0): the cells the windows of the region's cells hold. Per
    region, an integral image of its mask over its bounding box widened by ``r``."""
    ny, nx = lab.shape
    y0 = np.full(n + 1, ny, np.int64)
    y1 = np.full(n + 1, -1, np.int64)
    x0 = np.full(n + 1, nx, np.int64)
    x1 = np.full(n + 1, -1, np.int64)
    for y in range(ny):
        for x in range(nx):
            k = lab[y, x]
            if k > 0:
                y0[k] = min(y0[k], y)
                y1[k] = max(y1[k], y)
                x0[k] = min(x0[k], x)
                x1[k] = max(x1[k], x)
    out[0] = 0
    for k in range(1, n + 1):
        out[k] = 0
        if y1[k] < 0:
            continue
        a0 = max(y0[k] - r, 0)
        a1 = min(y1[k] + r, ny - 1)
        b0 = max(x0[k] - r, 0)
        b1 = min(x1[k] + r, nx - 1)
        h = a1 - a0 + 1
        w = b1 - b0 + 1
        ii = np.zeros((h + 1, w + 1), np.int64)
        for y in range(h):
            acc = 0
            for x in range(w):
                if lab[a0 + y, b0 + x] == k:
                    acc += 1
                ii[y + 1, x + 1] = ii[y, x + 1] + acc
        c = 0
        for y in range(h):
            lo_y = max(y - r, 0)
            hi_y = min(y + r, h - 1) + 1
            for x in range(w):
                lo_x = max(x - r, 0)
                hi_x = min(x + r, w - 1) + 1
                if ii[hi_y, hi_x] - ii[lo_y, hi_x] - ii[hi_y, lo_x] + ii[lo_y, lo_x] > 0:
                    c += 1
        out[k] = c


@njit(**_NB)
def sample_along_ray(src, oy, ox, di, dj, z, h, out):
    """``src`` (an image's samples at the DSM heights, on a grid whose cell (0, 0) is cell
    ``(-oy, -ox)`` of ``out``'s) read where another image's ray through every cell of ``out``
    (the shape of ``h``) at height ``z`` meets the DSM: bilinear at ``(y + oy - di (z - h),
    x + ox - dj (z - h))`` with ``(di, dj)`` that image's line of sight in cells per metre
    (towards the sensor) and ``h`` the cell's DSM height (the DSM taken as level over the ray's
    footprint). NaN outside ``src``, where ``h`` is NaN, or where a corner with weight is NaN."""
    ny, nx = src.shape
    for y in range(h.shape[0]):
        for x in range(h.shape[1]):
            dz = z - h[y, x]
            fy = y + oy - di * dz
            fx = x + ox - dj * dz
            if not (fy >= 0.0 and fx >= 0.0 and fy <= ny - 1 and fx <= nx - 1):
                out[y, x] = np.nan
                continue
            y0 = min(int(fy), ny - 2) if ny > 1 else 0
            x0 = min(int(fx), nx - 2) if nx > 1 else 0
            wy = fy - y0
            wx = fx - x0
            acc = 0.0
            bad = False
            for a in range(2):
                wa = wy if a else 1.0 - wy
                if wa == 0.0 or y0 + a >= ny:
                    continue
                for b in range(2):
                    wb = wx if b else 1.0 - wx
                    if wb == 0.0 or x0 + b >= nx:
                        continue
                    v = src[y0 + a, x0 + b]
                    if not (v == v):
                        bad = True
                    acc += wa * wb * v
            out[y, x] = np.nan if bad else acc


@njit(**_NB)
def coherent_share(dh, r, tol, out):
    """out[y, x] = share of the cells of the (2r+1)² window around (y, x) (clipped to the array;
    the share is of the cells inside it) whose ``dh`` is within ``tol`` of the cell's own (the
    cell itself included); NaN where ``dh`` is NaN. A NaN neighbour is never within ``tol``."""
    ny, nx = dh.shape
    for y in range(ny):
        for x in range(nx):
            v = dh[y, x]
            if not (v == v):
                out[y, x] = np.nan
                continue
            n = 0
            m = 0
            for yy in range(max(y - r, 0), min(y + r, ny - 1) + 1):
                for xx in range(max(x - r, 0), min(x + r, nx - 1) + 1):
                    m += 1
                    if abs(dh[yy, xx] - v) <= tol:
                        n += 1
            out[y, x] = n / m


@njit(**_NB)
def off_level_ncc_at(a, b, h, y, x, z, delta, r, min_count):
    """One cell of :func:`ncc_off_level`: ``(ncc, n)`` over the window of radius ``r`` around ``(y, x)``
    without the cells whose height ``h`` is within ``delta`` of ``z`` or NaN in either image (ncc NaN
    under ``min_count`` pairs or without variance); shared with the sweep's listed-cell form
    (:func:`offnadir.cube.sweep_level_kernels.ncc_off_level_cells`)."""
    ny, nx = a.shape
    n = 0
    sa = 0.0
    sb = 0.0
    saa = 0.0
    sbb = 0.0
    sab = 0.0
    for yy in range(max(y - r, 0), min(y + r, ny - 1) + 1):
        for xx in range(max(x - r, 0), min(x + r, nx - 1) + 1):
            va = a[yy, xx]
            vb = b[yy, xx]
            hh = h[yy, xx]
            if not (va == va and vb == vb and hh == hh) or abs(hh - z) < delta:
                continue
            n += 1
            sa += va
            sb += vb
            saa += va * va
            sbb += vb * vb
            sab += va * vb
    if n < min_count or n < 2:
        return np.nan, float(n)
    ma = sa / n
    mb = sb / n
    va_ = saa / n - ma * ma
    vb_ = sbb / n - mb * mb
    if va_ <= 0.0 or vb_ <= 0.0:
        return np.nan, float(n)
    return (sab / n - ma * mb) / math.sqrt(va_ * vb_), float(n)


@njit(**_NB)
def ncc_off_level(a, b, h, zc, delta, r, min_count, out, count):
    """Windowed NCC of ``a`` and ``b`` around every cell over the window cells whose height ``h``
    is *not* within ``delta`` of the cell's level ``zc`` (``|h - zc| >= delta``; the cell itself
    under the same rule): the DSM heights' agreement on the cells the sweep compared at ``zc``.

    a, b: (ny, nx) float32 samples (NaN = none); h: (ny, nx) float64; zc: (ny, nx) float64, NaN:
    no level (out NaN, count 0). out: float32 Pearson correlation, NaN where fewer than
    ``min_count`` pairs or no variance; count: float64 number of pairs used.
    """
    ny, nx = a.shape
    for y in range(ny):
        for x in range(nx):
            z = zc[y, x]
            out[y, x] = np.nan
            count[y, x] = 0.0
            if not (z == z):
                continue
            out[y, x], count[y, x] = off_level_ncc_at(a, b, h, y, x, z, delta, r, min_count)


@njit(**_NB)
def ncc_off_level_cells(a, b, h, ys, xs, z, delta, r, min_count, out, count):
    """:func:`ncc_off_level` at the listed cells ``(ys, xs)`` only, all at the level ``z`` (the same
    cell sums, :func:`off_level_ncc_at`: equal to the bit; the height sweep's off-level test,
    :mod:`offnadir.cube.sweep_level`). out: float32, count: float64, one value per listed cell."""
    for i in range(ys.shape[0]):
        out[i], count[i] = off_level_ncc_at(a, b, h, ys[i], xs[i], z, delta, r, min_count)
