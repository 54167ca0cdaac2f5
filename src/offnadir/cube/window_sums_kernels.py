"""numba kernels of the same-date height sweep's window sums: the windowed normalised
cross-correlation on the ground grid (:func:`window_ncc`), its sums built from runs aligned to the
scene grid so that a cell's result does not depend on where the block starts (issue 7, H7 seventh
round; moved out of :mod:`offnadir.cube.sweep_kernels`, which re-exports it).

Kernels know numpy and numba only; each loops on one thread (``nogil``, dask provides the
parallelism) and writes into preallocated outputs. The slow, obvious twin is in ``tests/test_sweep.py``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")

@njit(**_NB)
def _window_rule(n, r, origin, first, lo, hi, mode):
    """How every window of a line of ``n`` cells is summed, whatever the line's extent.

    The line is cut into runs of ``L = 2r+1`` cells aligned to the *grid* (a run starts where the
    cell's grid index, ``origin`` + its index, is a multiple of L, and at the line's start;
    ``first``). Sums ``pre`` (from a run's start forward) and ``suf`` (from a cell to its run's
    end, backward) are added in one fixed order each. The window ``lo..hi`` of a cell (at most L
    cells, clipped to the line) spans at most two runs: ``mode`` 0 sums it as ``pre[hi]`` (it
    starts a run), 1 as ``suf[lo]`` (it ends one), 2 as ``suf[lo] + pre[hi]``; the run from the
    line's start may be shorter than L. So a window inside
    the line is summed, to the bit, the same in any block that holds it (van Herk / Gil-Werman for
    sums; prefix sums from the block's start carried the rounding of everything before the window)."""
    L = 2 * r + 1
    for p in range(n):
        first[p] = p == 0 or (p + origin) % L == 0
    run_end = np.empty(n, np.int64)
    e = n - 1
    for p in range(n - 1, -1, -1):
        run_end[p] = e
        if first[p]:
            e = p - 1
    for x in range(n):
        a = max(x - r, 0)
        b = min(x + r, n - 1)
        lo[x] = a
        hi[x] = b
        if run_end[a] < b:
            mode[x] = 2
        elif (a + origin) % L == 0 or run_end[a] > b:
            # a window that starts a run; or (a = 0 off the grid's runs and the run goes on past b)
            # one clipped by the line's start: of a cell the block holds only as a window's halo
            mode[x] = 0
        else:
            mode[x] = 1


@njit(**_NB)
def _row_sums(a, b, work, r, ox):
    """work[q, y, x] <- the sum over the row window x-r .. x+r (clipped to the array) of the six
    per-cell terms of :func:`window_ncc` (q: 1 where both samples are finite, a, b, a², b², ab; 0
    elsewhere), rounded the same whatever the array's extent (``ox``: the grid column of its column
    0; :func:`_window_rule`). The terms are made as the row is walked and the six running sums
    advance together: six independent chains of additions (one sum at a time waited on each
    addition's latency), each added in the same order as before, so every sum is the same to the
    bit (issue 7, p2 ninth round; a fill of six (ny, nx) planes then one plane at a time before).
    Returns True when every cell has both samples finite."""
    ny, nx = a.shape
    full = True
    first = np.empty(nx, np.bool_)
    lo = np.empty(nx, np.int64)
    hi = np.empty(nx, np.int64)
    mode = np.empty(nx, np.int8)
    _window_rule(nx, r, ox, first, lo, hi, mode)
    last = np.empty(nx, np.bool_)  # the cell ends its run
    for p in range(nx):
        last[p] = p == nx - 1 or first[p + 1]
    pre = np.empty((6, nx))
    suf = np.empty((6, nx))
    for y in range(ny):
        ay = a[y]
        by = b[y]
        for back in range(2):  # pre: from a run's start forward; suf: from a cell to its run's end
            c0 = c1 = c2 = c3 = c4 = c5 = 0.0
            acc = suf if back else pre
            for i in range(nx):
                p = nx - 1 - i if back else i
                va = ay[p]
                vb = by[p]
                if va == va and vb == vb:
                    da = np.float64(va)
                    db = np.float64(vb)
                    e0, e1, e2, e3, e4, e5 = 1.0, da, db, da * da, db * db, da * db
                else:
                    full = False
                    e0 = e1 = e2 = e3 = e4 = e5 = 0.0
                if (last[p] if back else first[p]):
                    c0, c1, c2, c3, c4, c5 = e0, e1, e2, e3, e4, e5
                else:
                    c0, c1, c2, c3, c4, c5 = e0 + c0, e1 + c1, e2 + c2, e3 + c3, e4 + c4, e5 + c5
                acc[0, p] = c0
                acc[1, p] = c1
                acc[2, p] = c2
                acc[3, p] = c3
                acc[4, p] = c4
                acc[5, p] = c5
        for q in range(6):
            w = work[q, y]
            pq = pre[q]
            sq = suf[q]
            for x in range(nx):
                m = mode[x]
                if m == 0:
                    w[x] = pq[hi[x]]
                elif m == 1:
                    w[x] = sq[lo[x]]
                else:
                    w[x] = sq[lo[x]] + pq[hi[x]]
    return full


@njit(**_NB)
def _box_cols(v, r, suf, oy):
    """v[y, x] <- sum of v[y-r .. y+r, x] (clipped to the array), in place, rounded the same
    whatever the array's extent (``oy``: the grid row of its row 0; :func:`_window_rule`, run row
    by row: a column-wise walk strides through memory). suf: (ny, nx) scratch."""
    ny, nx = v.shape
    first = np.empty(ny, np.bool_)
    lo = np.empty(ny, np.int64)
    hi = np.empty(ny, np.int64)
    mode = np.empty(ny, np.int8)
    _window_rule(ny, r, oy, first, lo, hi, mode)
    for y in range(ny - 1, -1, -1):  # suf from the original rows
        b, vy = suf[y], v[y]
        if y == ny - 1 or first[y + 1]:
            for x in range(nx):
                b[x] = vy[x]
        else:
            a = suf[y + 1]
            for x in range(nx):
                b[x] = vy[x] + a[x]
    # pre in place, r rows ahead of the windows: the window of row y reads pre at rows >= y only
    # (and pre of row p + 1 needs row p, overwritten r steps later), so row y is overwritten
    # top-down right after (one pass: the rows are still in cache)
    done = 0  # pre holds rows < done
    for y in range(ny):
        while done <= hi[y]:
            if done > 0 and not first[done]:
                a, b = v[done - 1], v[done]
                for x in range(nx):
                    b[x] = a[x] + b[x]
            done += 1
        m = mode[y]
        o = v[y]
        if m == 0:
            ph = v[hi[y]]
            for x in range(nx):
                o[x] = ph[x]
        elif m == 1:
            sl = suf[lo[y]]
            for x in range(nx):
                o[x] = sl[x]
        else:
            sl, ph = suf[lo[y]], v[hi[y]]
            for x in range(nx):
                o[x] = sl[x] + ph[x]


@njit(**_NB)
def window_ncc(a, b, r, min_count, out, work, oy=0, ox=0):
    """Normalised cross-correlation of ``a`` and ``b`` in the (2r+1)² window around every cell.

    a, b: (ny, nx) float32, NaN = no sample. Only cells where both are finite enter a window
    (the window is clipped at the array border). out: (ny, nx) float32, the Pearson correlation
    of the window's pairs; NaN where fewer than ``min_count`` pairs, or where either side has no
    variance in the window. work: (7, ny, nx) float64 scratch. oy, ox: the grid row and column
    of the arrays' cell (0, 0): a window's sums are added in an order fixed by the grid
    (:func:`_window_rule`), so a cell whose window lies inside the arrays gets the same result, to
    the bit, from any block that holds it (the height sweep's tiles).
    """
    ny, nx = a.shape
    # raw (uncentred) window sums: the products of float32 samples are exact in float64 and a
    # window's sums hold (2r+1)² terms, so the variances keep ~1e-13 of the squared mean (a
    # centring on the block's mean made every cell depend on the block)
    full = _row_sums(a, b, work, r, ox)
    if full:  # every window's count is its clipped extent: sums of integers, exact in any order
        for y in range(ny):
            cy = np.float64(min(y + r, ny - 1) - max(y - r, 0) + 1)
            for x in range(nx):
                work[0, y, x] = cy * (min(x + r, nx - 1) - max(x - r, 0) + 1)
    for q in range(1 if full else 0, 6):
        _box_cols(work[q], r, work[6], oy)
    for y in range(ny):
        for x in range(nx):
            c = work[0, y, x]
            if c < min_count:
                out[y, x] = np.nan
                continue
            sa = work[1, y, x]
            sb = work[2, y, x]
            vaa = work[3, y, x] - sa * sa / c
            vbb = work[4, y, x] - sb * sb / c
            vab = work[5, y, x] - sa * sb / c
            # a window without variance (to rounding: relative to the sums it came from) has no
            # correlation
            if not (vaa > 1e-9 * work[3, y, x] and vbb > 1e-9 * work[4, y, x]):
                out[y, x] = np.nan
                continue
            den = vaa * vbb
            if not den > 0.0:
                out[y, x] = np.nan
            else:
                out[y, x] = vab / math.sqrt(den)
