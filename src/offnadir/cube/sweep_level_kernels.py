"""numba kernel of the height sweep's on-level test (:func:`offnadir.cube.sweep_level.on_level_moved`):
the windowed NCC of two images over a window that follows a moved surface, the window cells on the
centre cell's level read from samples at the moved heights, the others from samples at the DSM
heights. numpy and numba only; one thread per call (``nogil``). Slow twin in
``tests/test_sweep_on_level.py``."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_NB)
def ncc_on_level(a0, b0, a1, b1, h, hc, tol, on_only, r, min_count, out, count):
    """Windowed NCC around every cell where ``hc`` is finite: a window cell whose height ``h`` is
    within ``tol`` of the cell's level ``hc`` (``|h - hc| < tol``, the cell itself included) takes
    the moved samples ``a1``/``b1``, every other cell the DSM-height samples ``a0``/``b0`` (with
    ``on_only``: the other cells are left out).

    a0, b0, a1, b1: (ny, nx) float32 samples (NaN = none); h, hc: (ny, nx) float64 (hc NaN: not
    tested, out NaN and count 0). out: float32 Pearson correlation, NaN where fewer than
    ``min_count`` pairs or no variance; count: float64 number of pairs used.
    """
    ny, nx = a0.shape
    for y in range(ny):
        for x in range(nx):
            z = hc[y, x]
            out[y, x] = np.nan
            count[y, x] = 0.0
            if not (z == z):
                continue
            n = 0
            sa = 0.0
            sb = 0.0
            saa = 0.0
            sbb = 0.0
            sab = 0.0
            for yy in range(max(y - r, 0), min(y + r, ny - 1) + 1):
                for xx in range(max(x - r, 0), min(x + r, nx - 1) + 1):
                    hh = h[yy, xx]
                    if hh == hh and abs(hh - z) < tol:
                        va = a1[yy, xx]
                        vb = b1[yy, xx]
                    elif on_only:
                        continue
                    else:
                        va = a0[yy, xx]
                        vb = b0[yy, xx]
                    if not (va == va and vb == vb):
                        continue
                    n += 1
                    sa += va
                    sb += vb
                    saa += va * va
                    sbb += vb * vb
                    sab += va * vb
            count[y, x] = n
            if n < min_count or n < 2:
                continue
            ma = sa / n
            mb = sb / n
            va_ = saa / n - ma * ma
            vb_ = sbb / n - mb * mb
            if va_ <= 0.0 or vb_ <= 0.0:
                continue
            out[y, x] = (sab / n - ma * mb) / math.sqrt(va_ * vb_)
