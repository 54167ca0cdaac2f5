"""numba kernels of the sun estimate's per-block sums (:meth:`offnadir.change.sun_estimate._Level.sums`,
:func:`offnadir.change.sun_null.draw_sums`). numpy and numba only.

They replace ``np.bincount`` over masked cells: numpy holds the GIL in ``bincount`` and in the
masked copies it needs, so candidate suns scored on two worker threads of one process waited on
each other (:mod:`offnadir.change.sun_tasks`). The sums are the same to the bit: ``bincount`` adds
the weights of a bin one after the other in the order of the cells (``out[bin[i]] += w[i]``); here
each sum is accumulated in the same order (cells in increasing flat index), in float64, with no
reassociation (no fastmath). ``tests/test_sun_block_sums.py`` checks them against ``bincount``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_NB)
def block_sums(codes, ok, block, r, shaded, unknown, nb):
    """Per block, over cells that are ``ok`` and whose code is not ``unknown``: (n usable, n
    with code ``shaded``, rank sum, rank sum of the shaded): float64 array (4, nb). All inputs
    flat and of one length (``codes`` uint8, ``ok`` bool, ``block`` int labels < nb, ``r``
    float64); counts are whole numbers (as ``bincount``'s int64 counts cast)."""
    n = np.zeros(nb, np.int64)
    ns = np.zeros(nb, np.int64)
    out = np.zeros((4, nb))
    for i in range(codes.size):
        c = codes[i]
        if ok[i] and c != unknown:
            b = block[i]
            n[b] += 1
            out[2, b] += r[i]
            if c == shaded:
                ns[b] += 1
                out[3, b] += r[i]
    for b in range(nb):
        out[0, b] = n[b]
        out[1, b] = ns[b]
    return out


@njit(**_NB)
def shaded_row_sums(codes, block, x, shaded, nb):
    """Per row of ``x`` (rows, cells) and block: the sum of the row's values over the cells whose
    code is ``shaded`` (``np.bincount(block[sh], row[sh], minlength=nb)`` of every row):
    float64 array (rows, nb)."""
    sh = np.flatnonzero(codes == shaded)
    out = np.zeros((x.shape[0], nb))
    for k in range(x.shape[0]):
        for i in sh:
            out[k, block[i]] += x[k, i]
    return out
