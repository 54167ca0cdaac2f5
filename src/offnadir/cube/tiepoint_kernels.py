"""Numba kernels of the tie-point measurement: normalised cross-correlation of a template (base
image values at a window of DSM cells) against another image sampled at the cells' predicted
positions plus a shift, integer search then Gauss-Newton sub-pixel refinement.

Inputs per tie point ``p``: ``tpl[p, :]`` template values, ``rows[p, :]``/``cols[p, :]`` predicted
pixel positions (RPC00B native) of the same cells in the other image; ``img`` a window of that image
whose first pixel is at (``r0``, ``c0``). NaN template values are skipped. numpy and numba only.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _bilinear(img, r, c):
    """Bilinear value of ``img`` at local (r, c); NaN outside or next to NaN."""
    nr, nc = img.shape
    if not (r >= 0.0 and c >= 0.0 and r <= nr - 1 and c <= nc - 1):
        return math.nan
    i = min(int(r), nr - 2) if nr > 1 else 0
    j = min(int(c), nc - 2) if nc > 1 else 0
    fr = r - i
    fc = c - j
    return ((1 - fr) * ((1 - fc) * img[i, j] + fc * img[i, j + 1])
            + fr * ((1 - fc) * img[i + 1, j] + fc * img[i + 1, j + 1]))


@njit(cache=True, nogil=True)
def sample(img, r, c, out):
    """Bilinear values of ``img`` at local positions (r, c) (1-D arrays); NaN outside."""
    for k in range(r.shape[0]):
        out[k] = _bilinear(img, r[k], c[k])


@njit(cache=True, nogil=True)
def _ncc_at(tpl, rows, cols, img, r0, c0, dr, dc, min_n):
    n = 0
    st = 0.0
    sv = 0.0
    stt = 0.0
    svv = 0.0
    stv = 0.0
    for k in range(tpl.shape[0]):
        t = tpl[k]
        if not math.isfinite(t):
            continue
        v = _bilinear(img, rows[k] + dr - r0, cols[k] + dc - c0)
        if not math.isfinite(v):
            continue
        n += 1
        st += t
        sv += v
        stt += t * t
        svv += v * v
        stv += t * v
    if n < min_n:
        return math.nan
    vt = stt - st * st / n
    vv = svv - sv * sv / n
    if vt <= 0.0 or vv <= 0.0:
        return math.nan
    return (stv - st * sv / n) / math.sqrt(vt * vv)


@njit(cache=True, nogil=True)
def ncc_search(tpl, rows, cols, img, r0, c0, dr0, dc0, radius, min_n, out):
    """``out[p, a, b]`` = NCC of point p at the shift (dr0[p] + a - radius, dc0[p] + b - radius)."""
    for p in range(tpl.shape[0]):
        for a in range(2 * radius + 1):
            for b in range(2 * radius + 1):
                out[p, a, b] = _ncc_at(tpl[p], rows[p], cols[p], img, r0, c0,
                                       dr0[p] + a - radius, dc0[p] + b - radius, min_n)


@njit(cache=True, nogil=True)
def refine_shift(tpl, rows, cols, img, r0, c0, dr, dc, max_iter, max_move, min_n, out):
    """Gauss-Newton on ``img(pos + d) ≈ a·tpl + b`` for each point, from (dr[p], dc[p]).

    ``out[p]`` = (dr, dc, ncc, sigma_px): the refined shift, the NCC there and the shift's standard
    error from the residuals (NaN when the refinement fails: too few samples, singular normal
    equations, or a move of more than ``max_move`` px from the start)."""
    eps = 0.5
    for p in range(tpl.shape[0]):
        d_r = dr[p]
        d_c = dc[p]
        ok = False
        sig = math.nan
        for it in range(max_iter):
            # linear radiometry fit at the current shift, then a 2-D step on the shift
            JTJ = np.zeros((4, 4))
            JTr = np.zeros(4)
            n = 0
            # first pass: a, b by regression of v on t
            st = 0.0
            sv = 0.0
            stt = 0.0
            stv = 0.0
            for k in range(tpl.shape[1]):
                t = tpl[p, k]
                if not math.isfinite(t):
                    continue
                v = _bilinear(img, rows[p, k] + d_r - r0, cols[p, k] + d_c - c0)
                if not math.isfinite(v):
                    continue
                n += 1
                st += t
                sv += v
                stt += t * t
                stv += t * v
            if n < min_n:
                break
            vt = stt - st * st / n
            if vt <= 0.0:
                break
            a = (stv - st * sv / n) / vt
            b = (sv - a * st) / n
            ssr = 0.0
            for k in range(tpl.shape[1]):
                t = tpl[p, k]
                if not math.isfinite(t):
                    continue
                rr = rows[p, k] + d_r - r0
                cc = cols[p, k] + d_c - c0
                v = _bilinear(img, rr, cc)
                gr = 0.5 * (_bilinear(img, rr + eps, cc) - _bilinear(img, rr - eps, cc)) / eps
                gc = 0.5 * (_bilinear(img, rr, cc + eps) - _bilinear(img, rr, cc - eps)) / eps
                if not (math.isfinite(v) and math.isfinite(gr) and math.isfinite(gc)):
                    continue
                res = v - a * t - b
                ssr += res * res
                J = (gr, gc, -t, -1.0)
                for u in range(4):
                    JTr[u] += J[u] * res
                    for w in range(4):
                        JTJ[u, w] += J[u] * J[w]
            det = np.linalg.det(JTJ)
            if not (det > 0.0) or not math.isfinite(det):
                break
            inv = np.linalg.inv(JTJ)
            step = inv @ JTr
            d_r -= step[0]
            d_c -= step[1]
            if abs(d_r - dr[p]) > max_move or abs(d_c - dc[p]) > max_move:
                break
            dof = max(n - 4, 1)
            s2 = ssr / dof
            sig = math.sqrt(max(s2 * 0.5 * (inv[0, 0] + inv[1, 1]), 0.0))
            if abs(step[0]) < 1e-3 and abs(step[1]) < 1e-3:
                ok = True
                break
        if ok:
            out[p, 0] = d_r
            out[p, 1] = d_c
            out[p, 2] = _ncc_at(tpl[p], rows[p], cols[p], img, r0, c0, d_r, d_c, min_n)
            out[p, 3] = sig
        else:
            out[p, 0] = math.nan
            out[p, 1] = math.nan
            out[p, 2] = math.nan
            out[p, 3] = math.nan


@njit(cache=True, nogil=True)
def _smooth_axis0(img, w, out):
    """``out`` = ``img`` correlated along axis 0 with the symmetric odd weights ``w``, edges
    extended by their nearest value. The same operations in the same order as
    ``scipy.ndimage.correlate1d(mode="nearest")`` on symmetric weights (centre term first, then the
    pairs of neighbours from the outermost in), so the result is the same to the bit."""
    ny, nx = img.shape
    r = (w.shape[0] - 1) // 2
    for i in range(ny):
        for j in range(nx):
            acc = img[i, j] * w[r]
            for q in range(-r, 0):
                a = min(max(i + q, 0), ny - 1)
                b = min(max(i - q, 0), ny - 1)
                acc += (img[a, j] + img[b, j]) * w[r + q]
            out[i, j] = acc


@njit(cache=True, nogil=True)
def _smooth_axis1(img, w, out):
    """:func:`_smooth_axis0` along axis 1."""
    ny, nx = img.shape
    r = (w.shape[0] - 1) // 2
    for i in range(ny):
        for j in range(nx):
            acc = img[i, j] * w[r]
            for q in range(-r, 0):
                a = min(max(j + q, 0), nx - 1)
                b = min(max(j - q, 0), nx - 1)
                acc += (img[i, a] + img[i, b]) * w[r + q]
            out[i, j] = acc


@njit(cache=True, nogil=True)
def gaussian_nearest(img, w, tmp, out):
    """Separable smoothing of a float64 image (axis 0, then axis 1) by symmetric weights ``w``,
    edges extended by their nearest value: ``scipy.ndimage.gaussian_filter(img, sigma,
    mode="nearest")`` given its weights, bit for bit (``tmp`` and ``out``: arrays of img's shape)."""
    _smooth_axis0(img, w, tmp)
    _smooth_axis1(tmp, w, out)
