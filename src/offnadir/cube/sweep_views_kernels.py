"""numba kernels of the height sweep's resampling (:mod:`offnadir.cube.sweep_views`), equal to the
bit to the cube's: the lattice interpolation of :func:`offnadir.cube.kernels.interp_lattice`, with
each lattice row's interpolation along the columns made once for the block rather than once per
fine row, and :func:`offnadir.cube.kernels.sample_bilinear` for the sweep's one float32 band without
a nodata value (issue 7, p2 ninth round).

Kernels know numpy and numba only; one thread (``nogil``), preallocated outputs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_NB)
def interp_lattice_rows(lattice, step, i_lat0, j_lat0, i0, j0, out):
    """:func:`offnadir.cube.kernels.interp_lattice`, equal to the bit: a cell between lattice rows
    ``a`` and ``a + 1`` is ``v0 + fi (v1 - v0)`` with ``v0``, ``v1`` the rows' interpolations along
    the columns at the cell's column, which depend on the lattice row and the column alone; they
    are made once per lattice row (the same arithmetic, the same NaN rule: a cell on a lattice row
    or column uses that row or column alone) and every fine row between two lattice rows reads them."""
    nli, nlj = lattice.shape
    ny, nx = out.shape
    if step < 1:
        raise ValueError("interp_lattice_rows: step must be >= 1 fine cell")
    if ny == 0 or nx == 0:
        return
    ri_first = i0 - i_lat0
    ri_last = i0 + ny - 1 - i_lat0
    rj_first = j0 - j_lat0
    rj_last = j0 + nx - 1 - j_lat0
    if (ri_first < 0 or rj_first < 0 or ri_last > (nli - 1) * step
            or rj_last > (nlj - 1) * step):
        raise ValueError("interp_lattice_rows: the lattice does not cover the requested block; "
                         "extend the lattice by one node on each side")
    jb = np.empty(nx, np.int64)
    fj = np.empty(nx, np.float64)
    for x in range(nx):
        r = j0 + x - j_lat0
        b = r // step
        jb[x] = b
        fj[x] = (r - b * step) / step
    a_lo = ri_first // step
    a_hi = min(ri_last // step + 1, nli - 1)
    rows = np.empty((a_hi - a_lo + 1, nx))
    for a in range(a_lo, a_hi + 1):
        h = rows[a - a_lo]
        for x in range(nx):
            b = jb[x]
            f = fj[x]
            v = lattice[a, b]
            if f != 0.0:
                v = v + f * (lattice[a, b + 1] - v)
            h[x] = v
    for y in range(ny):
        r = i0 + y - i_lat0
        a = r // step
        fi = (r - a * step) / step
        o = out[y]
        h0 = rows[a - a_lo]
        if fi != 0.0:
            h1 = rows[a + 1 - a_lo]
            for x in range(nx):
                v0 = h0[x]
                o[x] = v0 + fi * (h1[x] - v0)
        else:
            for x in range(nx):
                o[x] = h0[x]


@njit(**_NB)
def sample_bilinear_nan(image, row, col, row0, col0, out):
    """:func:`offnadir.cube.kernels.sample_bilinear` of a one-band float32 window without a nodata
    value (NaN pixels propagate), equal to the bit: the same positions, weights and arithmetic.
    image: (h, w) float32; row, col: (ny, nx) float64; out: (ny, nx) float32."""
    h = image.shape[0]
    w = image.shape[1]
    ny, nx = row.shape
    rmax = np.float64(h - 1)
    cmax = np.float64(w - 1)
    one = np.uintp(1)
    for y in range(ny):
        ry = row[y]
        cy = col[y]
        oy = out[y]
        for x in range(nx):
            r = ry[x] - row0
            c = cy[x] - col0
            if not (r >= 0.0 and r <= rmax and c >= 0.0 and c <= cmax):
                oy[x] = np.nan
                continue
            ir = int(math.floor(r))
            ic = int(math.floor(c))
            fr = r - ir
            fc = c - ic
            ur = np.uintp(ir)
            uc = np.uintp(ic)
            a00 = np.float64(image[ur, uc])
            top = a00
            if fc != 0.0:
                a01 = np.float64(image[ur, uc + one])
                top = a00 + fc * (a01 - a00)
            val = top
            if fr != 0.0:
                a10 = np.float64(image[ur + one, uc])
                bot = a10
                if fc != 0.0:
                    a11 = np.float64(image[ur + one, uc + one])
                    bot = a10 + fc * (a11 - a10)
                val = top + fr * (bot - top)
            oy[x] = val
