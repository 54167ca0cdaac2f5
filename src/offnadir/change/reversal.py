"""Sign-reversal ratio of the census codes (numpy and numba only): the second census witness of
elevated cells (:func:`offnadir.change.cells.stratum_evidence`).

The census ratio ``R`` (:mod:`offnadir.change.census`) counts every code pair that differs, so a
pair that goes from 0 ("flat within the noise") to +-1 counts as much as one whose order reversed.
On a roof that did not move, the first kind is common across years: the surface is re-covered,
stained or weathered, or another gain pushes its texture across the dead band, and a flat roof
turns textured (hard simulator: every surface re-textured at date 2; unchanged roofs reach
``R`` 0.8-0.9). Structure that moved or vanished -- a demolished roof's edges and features, a
raised roof's displaced outline -- reverses the order of neighbouring samples as often as two
unrelated surfaces do. The reversal ratio counts only those:

    S = D / (n * chance_rev),  chance_rev = q_a(-1) q_b(+1) + q_a(+1) q_b(-1)

over the window's ``n`` valid code pairs, ``D`` of which have opposite non-zero codes, with
``q`` the window frequencies of each image's codes (as in ``R``): ``S`` is about 1 where the
two surfaces are unrelated and near 0 where their structure agrees, whatever texture appeared or
vanished; undefined (NaN) where either image has no signed code of one of the two kinds the
chance term needs. In window sums: ``S = max(D, 1/2) n / (A- B+ + A+ B-)`` (:data:`CONTINUITY`).

Inputs are the packed census words of :func:`offnadir.change.census.pack` (bits of the directions
whose code is -1, +1 and valid), so one census serves both ratios.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")
_POP8 = np.array([bin(k).count("1") for k in range(256)], np.int32)
#: continuity correction: a window without any reversed pair counts half a one, so that ``S`` is
#: ``1 / (2 E)`` there (``E``: the reversals chance would give) -- finite, and the lower the more
#: reversals chance predicted -- instead of an exact 0 whose logit the calibration can only clip
CONTINUITY = 0.5


@njit(**_NB)
def _counts(A, B, di, dj, r0, r1, c0, c1, pop, cnt):
    """Per cell of rows [r0, r1) and columns [c0, c1): the six counts ``n, D, A-, A+, B-, B+``
    of the base words against the target shifted by (di, dj) (0 where it falls outside)."""
    H, W = A.shape
    for i in range(r0, r1):
        ii = i + di
        for j in range(c0, c1):
            jj = j + dj
            y, x = i - r0, j - c0
            if ii < 0 or ii >= H or jj < 0 or jj >= W:
                for k in range(6):
                    cnt[k, y, x] = 0
                continue
            a = A[i, j]
            b = B[ii, jj]
            both = (a >> 16) & (b >> 16) & 0xFF
            an = a & both
            ap = (a >> 8) & both
            bn = b & both
            bp = (b >> 8) & both
            cnt[0, y, x] = pop[both]
            cnt[1, y, x] = pop[(an & bp) | (ap & bn)]
            cnt[2, y, x] = pop[an]
            cnt[3, y, x] = pop[ap]
            cnt[4, y, x] = pop[bn]
            cnt[5, y, x] = pop[bp]


@njit(**_NB)
def _integral(cnt, S):
    """Summed-area tables ``S[k, y + 1, x + 1] = sum cnt[k, :y + 1, :x + 1]``."""
    K, h, w = cnt.shape
    for k in range(K):
        for y in range(h):
            run = 0
            for x in range(w):
                run += cnt[k, y, x]
                S[k, y + 1, x + 1] = S[k, y, x + 1] + run


@njit(**_NB)
def _fmin_ratio(S, r, ci0, ci1, cj0, cj1, r0, c0, half, out):
    """``out = fmin(out, S_rev)`` over the core from the window sums of the tables."""
    h, w = S.shape[1] - 1, S.shape[2] - 1
    v = np.zeros(6, np.int64)
    for i in range(ci0, ci1):
        ya, yb = max(i - r - r0, 0), min(i + r + 1 - r0, h)
        for j in range(cj0, cj1):
            xa, xb = max(j - r - c0, 0), min(j + r + 1 - c0, w)
            for k in range(6):
                v[k] = S[k, yb, xb] - S[k, ya, xb] - S[k, yb, xa] + S[k, ya, xa]
            if v[0] < 1:
                continue
            den = float(v[2]) * float(v[5]) + float(v[3]) * float(v[4])
            if den <= 0.0:
                continue
            s = max(float(v[1]), half) * float(v[0]) / den
            o = out[i - ci0, j - cj0]
            if o != o or s < o:
                out[i - ci0, j - cj0] = s


def min_reversal_ratio(base_words, target_words, offsets, window: int, core=None) -> np.ndarray:
    """``min over offsets (di, dj)`` of the reversal ratio ``S`` of the base words against the
    target words shifted by (di, dj) (``out[i, j]`` compares ``base[i, j]`` with
    ``target[i + di, j + dj]``), over a ``window``-cell square (cells outside the arrays count as
    no pair). NaN where no offset defines it. ``core``: ``(i0, i1, j0, j1)``, only those cells."""
    A = np.ascontiguousarray(base_words, np.uint32)
    B = np.ascontiguousarray(target_words, np.uint32)
    H, W = A.shape
    r = int(window) // 2
    i0, i1, j0, j1 = core if core is not None else (0, H, 0, W)
    r0, r1, c0, c1 = max(i0 - r, 0), min(i1 + r, H), max(j0 - r, 0), min(j1 + r, W)
    cnt = np.empty((6, r1 - r0, c1 - c0), np.int32)
    S = np.zeros((6, r1 - r0 + 1, c1 - c0 + 1), np.int64)
    out = np.full((i1 - i0, j1 - j0), np.nan)
    for di, dj in offsets:
        _counts(A, B, int(di), int(dj), r0, r1, c0, c1, _POP8, cnt)
        _integral(cnt, S)
        _fmin_ratio(S, r, i0, i1, j0, j1, r0, c0, CONTINUITY, out)
    return out


def reversal_ratio_reference(ca, va, cb, vb, window: int):
    """The same ratio for one alignment as the numpy formula over (8, y, x) codes and validity
    (``uniform_filter`` window means; the ratio does not depend on their scale): the slow, obvious
    twin the kernel is tested against."""
    from scipy import ndimage as ndi

    both = va & vb

    def f(x):
        return ndi.uniform_filter(x.sum(axis=0).astype(np.float64), window, mode="constant")

    n = f(both)
    d = f(both & (ca.astype(np.int16) * cb < 0))
    d = np.maximum(d, CONTINUITY / window**2)  # counts: max(D, 1/2)
    am, ap = f(both & (ca < 0)), f(both & (ca > 0))
    bm, bp = f(both & (cb < 0)), f(both & (cb > 0))
    den = am * bp + ap * bm
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (n > 0.5 / window**2) & (den > 0.5 / window**4)
        return np.where(ok, d * n / np.where(ok, den, 1.0), np.nan)
