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
vanished; undefined (NaN) where chance would predict fewer than :data:`MIN_EXPECTED` reversals
in the window (then "no reversal" says nothing). In window sums: ``S = max(D, 1/2) n / (A- B+ + A+ B-)`` (:data:`CONTINUITY`).

Inputs are the packed census words of :func:`offnadir.change.census_codes.pack` (bits of the directions
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
#: fewest reversals chance must predict in a window (``E = (A- B+ + A+ B-) / n``) for ``S`` to be
#: defined: under "unrelated" the count of reversals is about Poisson(E), and seeing none then has
#: probability exp(-E); below E = 3 (exp(-3) = 0.05) "no reversal" does not tell agreement from
#: chance, and on a roof flat at both dates (a handful of noise codes) the ratio would be noise
#: divided by almost nothing. ``R`` stands there.
MIN_EXPECTED = 3.0


@njit(**_NB)
def _row_counts(A, B, i, di, dj, ja, jb, pop, row):
    """The six counts ``n, D, A-, A+, B-, B+`` of base row ``i``, columns [ja, jb), against the
    target shifted by (di, dj), into ``row[:, 0:jb - ja]`` (0 where the target falls outside)."""
    H, W = A.shape
    ii = i + di
    for j in range(ja, jb):
        jj = j + dj
        x = j - ja
        if ii < 0 or ii >= H or jj < 0 or jj >= W:
            for k in range(6):
                row[k, x] = 0
            continue
        a = A[i, j]
        b = B[ii, jj]
        both = (a >> 16) & (b >> 16) & 0xFF
        an = a & both
        ap = (a >> 8) & both
        bn = b & both
        bp = (b >> 8) & both
        row[0, x] = pop[both]
        row[1, x] = pop[(an & bp) | (ap & bn)]
        row[2, x] = pop[an]
        row[3, x] = pop[ap]
        row[4, x] = pop[bn]
        row[5, x] = pop[bp]


@njit(**_NB)
def _fmin_offset(A, B, di, dj, r, ci0, ci1, cj0, cj1, pop, half, min_expected, out):
    """``out = fmin(out, S)`` over the core for one offset: column sums of the counts roll down
    the rows (one row in, one out), window sums along each row (one column in, one out)."""
    H, W = A.shape
    ja, jb = max(cj0 - r, 0), min(cj1 + r, W)  # the columns some core window touches
    nw = jb - ja
    col = np.zeros((6, nw), np.int64)
    row = np.zeros((6, nw), np.int32)
    top = max(ci0 - r, 0)
    for i in range(top, min(ci0 + r, H)):  # the first core row's window except its last row
        _row_counts(A, B, i, di, dj, ja, jb, pop, row)
        for k in range(6):
            for x in range(nw):
                col[k, x] += row[k, x]
    v = np.zeros(6, np.int64)
    for i in range(ci0, ci1):
        if i + r < H:
            _row_counts(A, B, i + r, di, dj, ja, jb, pop, row)
            for k in range(6):
                for x in range(nw):
                    col[k, x] += row[k, x]
        if i - r - 1 >= top:
            _row_counts(A, B, i - r - 1, di, dj, ja, jb, pop, row)
            for k in range(6):
                for x in range(nw):
                    col[k, x] -= row[k, x]
        for k in range(6):
            v[k] = 0
        for x in range(max(cj0 - r, 0) - ja, min(cj0 + r, W) - ja):  # first window except its last column
            for k in range(6):
                v[k] += col[k, x]
        for j in range(cj0, cj1):
            x = j + r - ja
            if x < nw:
                for k in range(6):
                    v[k] += col[k, x]
            x = j - r - 1 - ja
            if x >= 0:
                for k in range(6):
                    v[k] -= col[k, x]
            if v[0] < 1:
                continue
            den = float(v[2]) * float(v[5]) + float(v[3]) * float(v[4])
            if den <= 0.0 or den < min_expected * float(v[0]):
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
    out = np.full((i1 - i0, j1 - j0), np.nan)
    for di, dj in offsets:
        _fmin_offset(A, B, int(di), int(dj), r, i0, i1, j0, j1, _POP8, CONTINUITY, MIN_EXPECTED, out)
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
        # window means: den / n is E / w^2
        ok = (n > 0.5 / window**2) & (den > 0.5 / window**4) & (den >= MIN_EXPECTED * n / window**2 * (1 - 1e-12))
        return np.where(ok, d * n / np.where(ok, den, 1.0), np.nan)
