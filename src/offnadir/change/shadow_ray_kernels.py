"""Kernel of :mod:`offnadir.change.shadow_ray`: per cell, how many marked cells lie on a ray of
fixed integer offsets (numba; numpy in, numpy out)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def ray_counts(mark, di, dj, i0, i1, j0, j1):
    """out[i - i0, j - j0] = number of k with ``mark[i + di[k], j + dj[k]]`` set (cells outside
    ``mark`` count 0), for the cells i0 <= i < i1, j0 <= j < j1 of ``mark`` (uint8, 2-D)."""
    ny, nx = mark.shape
    out = np.zeros((i1 - i0, j1 - j0), np.float64)
    for i in range(i0, i1):
        for j in range(j0, j1):
            c = 0
            for k in range(di.shape[0]):
                a, b = i + di[k], j + dj[k]
                if 0 <= a < ny and 0 <= b < nx and mark[a, b] != 0:
                    c += 1
            out[i - i0, j - j0] = c
    return out
