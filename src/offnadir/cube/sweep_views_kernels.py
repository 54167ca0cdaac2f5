"""numba kernel of the height sweep's resampling (:mod:`offnadir.cube.sweep_views`): the lattice
interpolation of :func:`offnadir.cube.kernels.interp_lattice`, with each lattice row's interpolation
along the columns made once for the block rather than once per fine row (issue 7, p2 ninth round).

Kernels know numpy and numba only; one thread (``nogil``), preallocated outputs.
"""

from __future__ import annotations

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
