"""numba kernel of the patch parallax profiles (:func:`parallax_sums`, the sums pass's
:func:`offnadir.change.tile.patch_tile`): correlation sums of a patch's base cells against the
target shifted along the parallax direction, per shift. numpy and numba only.

A start cell pairs only with the cells of its own patch. The offsets are taken as rows of
consecutive columns (:func:`offset_rows`: a digital line has one such run per row it crosses;
under a sensor east or west of the scene, one row of ~100 columns), and each row is walked by
label runs (:func:`_row_run_ends`): a run of another patch is passed in one step instead of one
label test per offset, which was 79 % of the tests on the bench (``bench_detect.py --size 2048``).
Each (patch, offset) sum still adds its cells in raster order of the start cells, one term per
start cell, so the sums are the old kernel's bit for bit (tested against its definition).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


def offset_rows(di, dj):
    """The offsets ``(di[k], dj[k])`` as rows of consecutive columns: ``(gdi, glo, ghi, gk0, kof)``,
    row group ``g`` holds the offsets ``(gdi[g], d)`` for ``glo[g] <= d <= ghi[g]``, and the index
    ``k`` of ``d`` is ``kof[gk0[g] + d - glo[g]]``. Every offset is in exactly one group (a repeated
    offset starts a group of its own)."""
    di = np.asarray(di, np.int64).ravel()
    dj = np.asarray(dj, np.int64).ravel()
    gdi, glo, ghi, gk0, kof = [], [], [], [], []
    for k in np.lexsort((dj, di)):
        a, b = int(di[k]), int(dj[k])
        if gdi and gdi[-1] == a and ghi[-1] == b - 1:
            ghi[-1] = b
        else:
            gdi.append(a)
            glo.append(b)
            ghi.append(b)
            gk0.append(len(kof))
        kof.append(int(k))
    return tuple(np.array(v, np.int64) for v in (gdi, glo, ghi, gk0, kof))


@njit(**_NB)
def _row_run_ends(lab, rend):
    """``rend[a, b]``: the first column after ``b`` on row ``a`` whose label differs from
    ``lab[a, b]`` (the row's width at its last run)."""
    ny, nx = lab.shape
    for a in range(ny):
        e = nx
        for b in range(nx - 1, -1, -1):
            if b + 1 < nx and lab[a, b + 1] != lab[a, b]:
                e = b + 1
            rend[a, b] = e


@njit(**_NB)
def _parallax_sums_rows(lab, row, x, y, gdi, glo, ghi, gk0, kof, ci0, ci1, cj0, cj1, rend, out):
    ny, nx = lab.shape
    ng = gdi.shape[0]
    for i in range(ci0, ci1):
        for j in range(cj0, cj1):
            r = row[i, j]
            if r < 0:
                continue
            xv = x[i, j]
            if not np.isfinite(xv):
                continue
            L = lab[i, j]
            for g in range(ng):
                a = i + gdi[g]
                if a < 0 or a >= ny:
                    continue
                b = max(j + glo[g], 0)
                e = min(j + ghi[g] + 1, nx)
                k0 = gk0[g] - j - glo[g]  # the offset index of column c: kof[k0 + c]
                while b < e:
                    if lab[a, b] != L:  # another patch's run: passed in one step
                        b = rend[a, b]
                        continue
                    re = min(rend[a, b], e)
                    for c in range(b, re):
                        yv = y[a, c]
                        if not np.isfinite(yv) or not np.isfinite(x[a, c]):
                            continue
                        k = kof[k0 + c]
                        out[r, k, 0] += 1.0
                        out[r, k, 1] += xv
                        out[r, k, 2] += yv
                        out[r, k, 3] += xv * xv
                        out[r, k, 4] += yv * yv
                        out[r, k, 5] += xv * yv
                    b = re


def parallax_sums(lab, row, x, y, di, dj, ci0, ci1, cj0, cj1, out):
    """Correlation sums of base ``x`` at a core cell against target ``y`` shifted along the
    parallax direction, for every shift k: pairs (c, c + (di[k], dj[k])) whose two cells belong
    to the same patch (``lab``) and are both usable (``x`` and ``y`` finite).

    ``row[i, j]`` is the table row of the core cell's patch (-1: skip). ``out[row, k, :]`` +=
    (n, Σx, Σy, Σx², Σy², Σxy). Only core cells (``ci0 <= i < ci1``, ``cj0 <= j < cj1``) start a
    pair, so each pair is counted by exactly one tile."""
    lab = np.ascontiguousarray(lab)
    groups = offset_rows(di, dj)
    rend = np.empty(lab.shape, np.int32)
    _row_run_ends(lab, rend)
    _parallax_sums_rows(lab, row, x, y, *groups, int(ci0), int(ci1), int(cj0), int(cj1), rend, out)
