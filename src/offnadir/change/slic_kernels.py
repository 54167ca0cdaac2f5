"""numba kernels of grid-anchored SLIC superpixels (the segment pass's ground patches): the
features of a window and the superpixel labels. numpy and numba only.

Like :mod:`offnadir.change.segment_kernels`, a kernel works on a *window* of the DSM grid whose
first cell has global position ``(gi0, gj0)``; labels depend on global positions and on data
within a bounded distance only (stated per kernel). Slow, obvious twins are in
``tests/test_change_kernels.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


# ----------------------------------------------------------------------------- superpixels
@njit(**_NB)
def slic_features(h, base, visible, scale, feat, seg):
    """SLIC inputs of a window in one pass: ``feat[b] = base[b] / scale[b]`` in float64 (0 where
    the height or any band is not finite), ``seg`` = finite everywhere and ``visible == 1``.
    ``base`` may be float32: each value is widened before the division."""
    nb, ny, nx = base.shape
    ok = np.empty(nx, np.bool_)
    for i in range(ny):  # row by row, band by band: contiguous and without branches (vectorised)
        hr = h[i]
        for j in range(nx):
            ok[j] = np.isfinite(hr[j])
        for b in range(nb):
            br = base[b, i]
            for j in range(nx):
                ok[j] = ok[j] & np.isfinite(br[j])
        for b in range(nb):
            br = base[b, i]
            fr = feat[b, i]
            sb = scale[b]
            for j in range(nx):
                fr[j] = np.float64(br[j]) / sb if ok[j] else 0.0
        vr = visible[i]
        sr = seg[i]
        for j in range(nx):
            sr[j] = ok[j] & (vr[j] == 1)


@njit(**_NB)
def slic_blocks(feat, mask, gi0, gj0, S, NBX, m, iters, out):
    """Grid-anchored SLIC: one centre per ``S x S`` block of the *global* grid holding any ``mask``
    cell, started at the mean position/features of the block's cells. Each iteration assigns
    every mask cell to the nearest centre among its own block and the 8 neighbouring blocks,
    ``d = |f - f_c|² / m² + |p - p_c|² / S²``, then moves every centre to the mean of its cells.
    ``out`` (int64) = 1 + global block index ``bi * NBX + bj`` of the assigned centre (0 off mask).

    Locality: after ``iters`` iterations a label depends on data within ``(2 iters + 1) S`` cells
    (each iteration reaches one block further for the assignment and one for the update)."""
    nf, ny, nx = feat.shape
    b0i = gi0 // S
    b0j = gj0 // S
    nbi = (gi0 + ny - 1) // S - b0i + 1
    nbj = (gj0 + nx - 1) // S - b0j + 1
    cnt = np.zeros((nbi, nbj))
    ci = np.zeros((nbi, nbj))
    cj = np.zeros((nbi, nbj))
    cf = np.zeros((nbi, nbj, nf))
    exists = np.zeros((nbi, nbj), np.bool_)
    for i in range(ny):
        bi = (gi0 + i) // S - b0i
        for j in range(nx):
            if not mask[i, j]:
                continue
            bj = (gj0 + j) // S - b0j
            cnt[bi, bj] += 1
            ci[bi, bj] += i
            cj[bi, bj] += j
            for f in range(nf):
                cf[bi, bj, f] += feat[f, i, j]
    for bi in range(nbi):
        for bj in range(nbj):
            if cnt[bi, bj] > 0:
                exists[bi, bj] = True
                ci[bi, bj] /= cnt[bi, bj]
                cj[bi, bj] /= cnt[bi, bj]
                for f in range(nf):
                    cf[bi, bj, f] /= cnt[bi, bj]
    out[:, :] = 0
    inv_m2 = 1.0 / (m * m)
    inv_s2 = 1.0 / (S * S)
    cand = np.empty((9, 2), np.int64)
    best = np.empty(S)
    dist = np.empty(S)
    bc = np.empty(S, np.int64)
    si = np.zeros((nbi, nbj))
    sj = np.zeros((nbi, nbj))
    sf = np.zeros((nbi, nbj, nf))
    n_it = max(iters, 1)
    for it in range(n_it):
        update = it < n_it - 1
        if update:  # the centres' new sums, accumulated as cells are assigned (row-major order)
            cnt[:, :] = 0.0
            si[:, :] = 0.0
            sj[:, :] = 0.0
            sf[:, :, :] = 0.0
        for i in range(ny):
            bi0 = (gi0 + i) // S - b0i
            mrow = mask[i]
            j = 0
            while j < nx:  # one run of cells in the same block column: the same 9 candidates
                bj0 = (gj0 + j) // S - b0j
                L = min(nx, (bj0 + b0j + 1) * S - gj0) - j
                anym = False
                for q in range(L):
                    anym = anym or mrow[j + q]
                if not anym:  # no cell of the run is assigned: nothing to compute (roofs, hidden cells)
                    j += L
                    continue
                nc = 0
                for di in range(-1, 2):
                    bi = bi0 + di
                    if bi < 0 or bi >= nbi:
                        continue
                    for dj in range(-1, 2):
                        bj = bj0 + dj
                        if bj < 0 or bj >= nbj or not exists[bi, bj]:
                            continue
                        cand[nc, 0] = bi
                        cand[nc, 1] = bj
                        nc += 1
                best[:L] = np.inf
                bc[:L] = -1
                # per candidate, the distance of every cell of the run and the first strict minimum,
                # without branches: one pass per candidate for one or four bands (the distance kept
                # in a register, the bands' rows read side by side), else a pass per term; the same
                # operations in the same order per cell either way
                if nf == 4:
                    f0 = feat[0, i, j:j + L]
                    f1 = feat[1, i, j:j + L]
                    f2 = feat[2, i, j:j + L]
                    f3 = feat[3, i, j:j + L]
                    for c in range(nc):
                        bi = cand[c, 0]
                        bj = cand[c, 1]
                        dy2 = (i - ci[bi, bj]) ** 2
                        cjv = cj[bi, bj]
                        c0 = cf[bi, bj, 0]
                        c1 = cf[bi, bj, 1]
                        c2 = cf[bi, bj, 2]
                        c3 = cf[bi, bj, 3]
                        for q in range(L):
                            d = (dy2 + ((j + q) - cjv) ** 2) * inv_s2
                            d += (f0[q] - c0) ** 2 * inv_m2
                            d += (f1[q] - c1) ** 2 * inv_m2
                            d += (f2[q] - c2) ** 2 * inv_m2
                            d += (f3[q] - c3) ** 2 * inv_m2
                            lt = d < best[q]
                            best[q] = d if lt else best[q]
                            bc[q] = c if lt else bc[q]
                elif nf == 1:
                    f0 = feat[0, i, j:j + L]
                    for c in range(nc):
                        bi = cand[c, 0]
                        bj = cand[c, 1]
                        dy2 = (i - ci[bi, bj]) ** 2
                        cjv = cj[bi, bj]
                        c0 = cf[bi, bj, 0]
                        for q in range(L):
                            d = (dy2 + ((j + q) - cjv) ** 2) * inv_s2
                            d += (f0[q] - c0) ** 2 * inv_m2
                            lt = d < best[q]
                            best[q] = d if lt else best[q]
                            bc[q] = c if lt else bc[q]
                else:
                    for c in range(nc):  # same order and arithmetic per cell as one cell at a time
                        bi = cand[c, 0]
                        bj = cand[c, 1]
                        dy2 = (i - ci[bi, bj]) ** 2
                        cjv = cj[bi, bj]
                        for q in range(L):
                            dist[q] = (dy2 + ((j + q) - cjv) ** 2) * inv_s2
                        for f in range(nf):
                            cfv = cf[bi, bj, f]
                            fr = feat[f, i, j:j + L]
                            for q in range(L):
                                dist[q] += (fr[q] - cfv) ** 2 * inv_m2
                        for q in range(L):  # first strict minimum, without branches
                            lt = dist[q] < best[q]
                            best[q] = dist[q] if lt else best[q]
                            bc[q] = c if lt else bc[q]
                if update:  # the centres' sums (the labels of the last iteration only are kept)
                    for q in range(L):
                        if mrow[j + q] and bc[q] >= 0:
                            bi = cand[bc[q], 0]
                            bj = cand[bc[q], 1]
                            cnt[bi, bj] += 1
                            si[bi, bj] += i
                            sj[bi, bj] += j + q
                            for f in range(nf):
                                sf[bi, bj, f] += feat[f, i, j + q]
                else:
                    orow = out[i]
                    for q in range(L):
                        if mrow[j + q] and bc[q] >= 0:
                            orow[j + q] = (cand[bc[q], 0] + b0i) * NBX + (cand[bc[q], 1] + b0j) + 1
                j += L
        if not update:
            break
        for bi in range(nbi):
            for bj in range(nbj):
                if cnt[bi, bj] > 0:
                    ci[bi, bj] = si[bi, bj] / cnt[bi, bj]
                    cj[bi, bj] = sj[bi, bj] / cnt[bi, bj]
                    for f in range(nf):
                        cf[bi, bj, f] = sf[bi, bj, f] / cnt[bi, bj]
