"""Kernel of :mod:`offnadir.change.shadow_ray`: per cell, how many marked cells lie on a ray of
fixed integer offsets (numba; numpy in, numpy out)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def ray_counts(mark, di, dj, i0, i1, j0, j1):
    """out[i - i0, j - j0] = number of k with ``mark[i + di[k], j + dj[k]]`` set (cells outside
    ``mark`` count 0), for the cells i0 <= i < i1, j0 <= j < j1 of ``mark`` (uint8, 2-D).

    Row by row: for each offset the output row gains the marks of one shifted row of ``mark``
    (its columns clipped to the grid), a contiguous loop the compiler vectorises; integer counts,
    so the order of the additions does not matter."""
    ny, nx = mark.shape
    n = max(j1 - j0, 0)
    out = np.zeros((max(i1 - i0, 0), n), np.float64)
    one = np.empty((ny, nx), np.uint8)  # marks as 0 / 1
    for a in range(ny):
        for b in range(nx):
            one[a, b] = mark[a, b] != 0
    acc = np.zeros(n, np.int32)
    for i in range(i0, i1):
        acc[:] = 0
        for k in range(di.shape[0]):
            a = i + di[k]
            if a < 0 or a >= ny:
                continue
            d = dj[k]
            lo, hi = max(j0, -d), min(j1, nx - d)
            if hi <= lo:
                continue
            dst = acc[lo - j0:hi - j0]
            src = one[a, lo + d:hi + d]
            for q in range(hi - lo):
                dst[q] += src[q]
        row = out[i - i0]
        for q in range(n):
            row[q] = acc[q]
    return out
