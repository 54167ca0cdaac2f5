"""numba kernel of the census evidence (:mod:`offnadir.change.evidence`): the smallest window
ratio ``R = H / H_chance`` over the parallax offsets, in one sweep per offset. numpy and numba only.

The numpy formula (:func:`offnadir.change.evidence.census_ratio`) box-filters eight direction
planes of float64 masks six times per offset; at a hundred offsets per cell (a 45 m building seen
from 5 and 25 degrees on 0.5 m cells) that was most of the change stage. Here the eight ternary
codes of a cell are packed into three bytes (bits set where the code is -1, +1, valid), so per
cell and offset the counts ``n`` (valid pairs), ``d`` (pairs that differ) and the code frequencies
are six population counts of a byte; their window sums come from one summed-area table per offset
(exact integers: the same window sums as ``uniform_filter(mode="constant")`` times ``w^2``).
Tested against the numpy formula on random codes with invalid cells planted.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")
#: number of set bits of every byte
POPCOUNT = np.array([bin(k).count("1") for k in range(256)], np.int32)


def pack(codes, valid):
    """(8, y, x) int8 codes and bool validity -> three (y, x) uint8: bits of the directions whose
    code is -1, +1, and that are valid."""
    neg = np.zeros(codes.shape[1:], np.uint8)
    pos = np.zeros(codes.shape[1:], np.uint8)
    val = np.zeros(codes.shape[1:], np.uint8)
    for d in range(codes.shape[0]):
        bit = np.uint8(1 << d)
        neg |= np.where(codes[d] < 0, bit, np.uint8(0))
        pos |= np.where(codes[d] > 0, bit, np.uint8(0))
        val |= np.where(valid[d], bit, np.uint8(0))
    return neg, pos, val


@njit(**_NB)
def _tables(na, pa, va, nb, pb, vb, di, dj, pop, S):
    """Summed-area tables S (H+1, W+1, 6) of the per-cell counts (valid pairs, differing pairs,
    base -1, base +1, target -1, target +1) with the target shifted by (di, dj)."""
    H, W = na.shape
    S[0, :, :] = 0
    for i in range(H):
        S[i + 1, 0, :] = 0
        c0 = c1 = c2 = c3 = c4 = c5 = 0
        ii = i + di
        inside = 0 <= ii < H
        for j in range(W):
            jj = j + dj
            if inside and 0 <= jj < W:
                both = va[i, j] & vb[ii, jj]
                if both:
                    an = na[i, j] & both
                    ap = pa[i, j] & both
                    bn = nb[ii, jj] & both
                    bp = pb[ii, jj] & both
                    c0 += pop[both]
                    c1 += pop[(an ^ bn) | (ap ^ bp)]
                    c2 += pop[an]
                    c3 += pop[ap]
                    c4 += pop[bn]
                    c5 += pop[bp]
            S[i + 1, j + 1, 0] = S[i, j + 1, 0] + c0
            S[i + 1, j + 1, 1] = S[i, j + 1, 1] + c1
            S[i + 1, j + 1, 2] = S[i, j + 1, 2] + c2
            S[i + 1, j + 1, 3] = S[i, j + 1, 3] + c3
            S[i + 1, j + 1, 4] = S[i, j + 1, 4] + c4
            S[i + 1, j + 1, 5] = S[i, j + 1, 5] + c5


@njit(**_NB)
def _box(S, i0, i1, j0, j1, q):
    return float(S[i1, j1, q] - S[i0, j1, q] - S[i1, j0, q] + S[i0, j0, q])


@njit(**_NB)
def _min_ratio(S, w, ci0, cj0, out):
    """``out = fmin(out, R)`` on the cells ``[ci0, ci0 + out rows) x [cj0, cj0 + out cols)``."""
    H = S.shape[0] - 1
    W = S.shape[1] - 1
    r = w // 2
    for oi in range(out.shape[0]):
        i = ci0 + oi
        i0 = max(i - r, 0)
        i1 = min(i + r + 1, H)
        for oj in range(out.shape[1]):
            j = cj0 + oj
            j0 = max(j - r, 0)
            j1 = min(j + r + 1, W)
            n = _box(S, i0, i1, j0, j1, 0)
            if n < 1.0:  # no valid pair in the window: nothing to say
                continue
            d = _box(S, i0, i1, j0, j1, 1)
            am = _box(S, i0, i1, j0, j1, 2)
            ap = _box(S, i0, i1, j0, j1, 3)
            bm = _box(S, i0, i1, j0, j1, 4)
            bp = _box(S, i0, i1, j0, j1, 5)
            chance = 1.0 - (am * bm + (n - am - ap) * (n - bm - bp) + ap * bp) / (n * n)
            if chance > 1e-6:
                rr = (d / n) / chance
            else:  # no code variety in the window (both flat, all codes equal): nothing disagrees
                rr = 0.0
            v = out[oi, oj]
            if v != v or rr < v:
                out[oi, oj] = rr


def min_census_ratio(base_codes, target_codes, offsets, window: int, core=None) -> np.ndarray:
    """``min over offsets (di, dj) of census_ratio(base, target shifted by (di, dj))`` (NaN where
    no offset has a valid pair in the window). ``*_codes``: :func:`pack` triples. ``core``:
    ``(i0, i1, j0, j1)``, compute only those cells (the rest of the arrays is halo)."""
    na, pa, va = base_codes
    nb, pb, vb = target_codes
    H, W = na.shape
    if 8 * (H + 1) * (W + 1) >= 2**31:
        raise ValueError(f"census window of {H}x{W} cells is too large for int32 sums; use smaller tiles.")
    i0, i1, j0, j1 = core if core is not None else (0, H, 0, W)
    S = np.empty((H + 1, W + 1, 6), np.int32)
    out = np.full((i1 - i0, j1 - j0), np.nan)
    for di, dj in offsets:
        _tables(na, pa, va, nb, pb, vb, int(di), int(dj), POPCOUNT, S)
        _min_ratio(S, int(window), i0, j0, out)
    return out
