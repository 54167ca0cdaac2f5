"""numba kernels of the RFM: ground -> image (``project``) and image -> ground (``localize``).

Kernels know numpy and numba only. Inputs are 1-D float64 arrays of equal length, outputs are
preallocated. Each loop exists twice: ``*_serial`` (what dask workers call: one level of
parallelism) and ``*_parallel`` (prange, what interactive ``Camera`` calls use).

Parameter layouts (built by :class:`offnadir.camera.rpc.RPC` and :class:`~offnadir.camera.Camera`):

* ``norm``   (10,): line_off, samp_off, lat_off, lon_off, height_off, line_scale, samp_scale,
  lat_scale, lon_scale, height_scale;
* ``coefs``  (4, 20): line_num, line_den, samp_num, samp_den in RPC00B term order;
* ``affine`` (6,): a, b, c, d, e, f with ``row' = a*row + b*col + c`` and ``col' = d*row + e*col + f``,
  applied after the RPC (bias compensation composed with any crop offset);
* ``guess``  (8,): first-order inverse used as the Newton start, ``L = g0 + g1*r + g2*c + g3*H``
  and ``P = g4 + g5*r + g6*c + g7*H`` in normalised units (r, c normalised row and column).

Speed (see ``benchmarks/bench_rpc.py``). The per-point loops are written so that LLVM vectorises
them across points (SIMD): the coefficients are copied into tuples before the loop (registers, not
memory that might alias the outputs), the cubics are evaluated as ``A(L,P) + H*(B + H*(C + H*d))``
on shared monomials, longitude wrap-around is branch-free and the loop body has no calls.
The only floating-point licence taken is ``contract`` (fused multiply-add). Checked against an
80-bit long-double evaluation of the same model on seven real RPCs of ``data/real``, ``project``
errs by at most 5e-11 px over the validity domains of the Pleiades, QuickBird and WorldView
models, and never more than the previous strictly sequential float64 version did: far below the
1e-6 px parity with GDAL. No ``nnan``/``ninf``: NaN inputs still give NaN outputs and finiteness
checks still work.

``localize`` runs in two passes: a straight-line pass, vectorised across points, takes up to two
undamped Newton steps exactly as the damped iteration would take them; the few points it cannot
settle (a step that did not decrease the residual, a singular Jacobian, more iterations needed)
are finished by the scalar damped Newton iteration, from the same state. Results and iteration
counts are those of the damped iteration alone.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_FAST = {"contract"}
_NB = dict(cache=True, nogil=True, error_model="numpy", fastmath=_FAST)
#: a localisation that lands further than this from the model centre, in normalised ground units
#: (the validity domain is ±1), is a spurious root of the extrapolated polynomials, not a ground
#: point: it is reported as not converged (status -2) instead of returned.
MAX_NORM_GROUND = 3.0

#: out_status markers between the two localize passes (never returned)
_RESTART = -10  # redo the point with the damped iteration from the initial guess
_RESUME = -11  # resume the damped iteration at iteration 2 from (L, P) stored in out_lon/out_lat
_FAST_STEPS = 2


# ---------------------------------------------------------------------------- polynomial helpers
@njit(inline="always", **_NB)
def _terms(c, k):
    """Row ``k`` of a (4, 20) coefficient array as a 20-tuple (lives in registers)."""
    return (c[k, 0], c[k, 1], c[k, 2], c[k, 3], c[k, 4], c[k, 5], c[k, 6], c[k, 7], c[k, 8], c[k, 9],
            c[k, 10], c[k, 11], c[k, 12], c[k, 13], c[k, 14], c[k, 15], c[k, 16], c[k, 17], c[k, 18],
            c[k, 19])


@njit(inline="always", **_NB)
def _dterms(c, k):
    """Coefficients of d/dL and d/dP of row ``k``, grouped as :func:`_dpoly` reads them."""
    t = _terms(c, k)
    # d/dL of the 20 terms: 0,1,0,0,P,H,0,2L,0,0,PH,3L²,P²,H²,2LP,0,0,2LH,0,0
    dl = (t[1], t[4], 2.0 * t[7], 3.0 * t[11], t[12], 2.0 * t[14], t[5], t[10], 2.0 * t[17], t[13])
    # d/dP: 0,0,1,0,L,0,H,0,2P,0,LH,0,2LP,0,L²,3P²,H²,0,2PH,0
    dp = (t[2], t[4], 2.0 * t[8], 3.0 * t[15], t[14], 2.0 * t[12], t[6], t[10], 2.0 * t[18], t[16])
    return dl, dp


@njit(inline="always", **_NB)
def _poly(t, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP):
    """20-term cubic in RPC00B order:
    1 L P H LP LH PH L² P² H² LPH L³ LP² LH² L²P P³ PH² L²H P²H H³, as A + H(B + H(C + H d))."""
    a = (t[0] + t[1] * L + t[2] * P + t[4] * LP + t[7] * LL + t[8] * PP + t[11] * LLL
         + t[12] * LPP + t[14] * LLP + t[15] * PPP)
    b = t[3] + t[5] * L + t[6] * P + t[10] * LP + t[17] * LL + t[18] * PP
    c = t[9] + t[13] * L + t[16] * P
    return a + H * (b + H * (c + H * t[19]))


@njit(inline="always", **_NB)
def _dpoly(d, u, v, H, uv, uu, vv):
    """A derivative of a cubic (coefficients from :func:`_dterms`): ``u`` is the variable
    differentiated, ``v`` the other horizontal one; ``d = (1, v, u, u², v², uv | H, vH, uH, H²)``."""
    return (d[0] + d[1] * v + d[2] * u + d[3] * uu + d[4] * vv + d[5] * uv
            + H * (d[6] + d[7] * v + d[8] * u + H * d[9]))


@njit(inline="always", **_NB)
def _wrap180(dlon):
    """dlon ± 360 into [-180, 180] (values within ±540°); branch-free, exact (k*360 is exact)."""
    return dlon - 360.0 * np.rint(dlon * (1.0 / 360.0))


# ---------------------------------------------------------------------------- project
@njit(**_NB)
def _project_block(lon, lat, h, norm, coefs, affine, out_row, out_col):
    rn_t = _terms(coefs, 0)
    rd_t = _terms(coefs, 1)
    cn_t = _terms(coefs, 2)
    cd_t = _terms(coefs, 3)
    lat_off = norm[2]
    lon_off = norm[3]
    h_off = norm[4]
    ilat = 1.0 / norm[7]
    ilon = 1.0 / norm[8]
    ih = 1.0 / norm[9]
    # affine ∘ denormalisation, folded: row' = A0*r + A1*c + A2 with r, c the normalised RFM values
    a0 = affine[0] * norm[5]
    a1 = affine[1] * norm[6]
    a2 = affine[0] * norm[0] + affine[1] * norm[1] + affine[2]
    b0 = affine[3] * norm[5]
    b1 = affine[4] * norm[6]
    b2 = affine[3] * norm[0] + affine[4] * norm[1] + affine[5]
    for i in range(lon.shape[0]):
        L = _wrap180(lon[i] - lon_off) * ilon
        P = (lat[i] - lat_off) * ilat
        H = (h[i] - h_off) * ih
        LP = L * P
        LL = L * L
        PP = P * P
        LLL = LL * L
        LPP = L * PP
        LLP = LL * P
        PPP = PP * P
        r = (_poly(rn_t, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
             / _poly(rd_t, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP))
        c = (_poly(cn_t, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
             / _poly(cd_t, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP))
        out_row[i] = a0 * r + a1 * c + a2
        out_col[i] = b0 * r + b1 * c + b2


#: points per parallel task: big enough to amortise the task, small enough to balance threads
_CHUNK = 16384


@njit(**_NB)
def project_serial(lon, lat, h, norm, coefs, affine, out_row, out_col):
    """Ground (lon, lat, h) -> image (row, col), one thread."""
    _project_block(lon, lat, h, norm, coefs, affine, out_row, out_col)


@njit(parallel=True, **_NB)
def project_parallel(lon, lat, h, norm, coefs, affine, out_row, out_col):
    """Ground (lon, lat, h) -> image (row, col), numba threads."""
    n = lon.shape[0]
    nchunk = (n + _CHUNK - 1) // _CHUNK
    for k in prange(nchunk):
        s = slice(k * _CHUNK, min(n, (k + 1) * _CHUNK))
        _project_block(lon[s], lat[s], h[s], norm, coefs, affine, out_row[s], out_col[s])


# ---------------------------------------------------------------------------- localize
@njit(inline="always", **_NB)
def _model(coefs):
    """Coefficient tuples of row and column: (num, den, d num/dL, d num/dP, d den/dL, d den/dP)."""
    rn_l, rn_p = _dterms(coefs, 0)
    rd_l, rd_p = _dterms(coefs, 1)
    cn_l, cn_p = _dterms(coefs, 2)
    cd_l, cd_p = _dterms(coefs, 3)
    return ((_terms(coefs, 0), _terms(coefs, 1), rn_l, rn_p, rd_l, rd_p),
            (_terms(coefs, 2), _terms(coefs, 3), cn_l, cn_p, cd_l, cd_p))


@njit(inline="always", **_NB)
def _consts(norm, inv_affine, guess):
    """Per-call constants of :func:`_start`, as a tuple (registers, no reloads in the loop)."""
    return (inv_affine[0], inv_affine[1], inv_affine[2], inv_affine[3], inv_affine[4], inv_affine[5],
            norm[0], norm[1], norm[4], 1.0 / norm[5], 1.0 / norm[6], 1.0 / norm[9],
            guess[0], guess[1], guess[2], guess[3], guess[4], guess[5], guess[6], guess[7])


@njit(inline="always", **_NB)
def _start(row, col, h, k):
    """Normalised target (rt, ct), height H and the first guess (L, P) of a pixel."""
    # undo the image-space affine: native RPC pixel
    r0 = k[0] * row + k[1] * col + k[2]
    c0 = k[3] * row + k[4] * col + k[5]
    rt = (r0 - k[6]) * k[9]
    ct = (c0 - k[7]) * k[10]
    H = (h - k[8]) * k[11]
    L = k[12] + k[13] * rt + k[14] * ct + k[15] * H
    P = k[16] + k[17] * rt + k[18] * ct + k[19] * H
    return rt, ct, H, L, P


@njit(inline="always", **_NB)
def _value(tr, tc, L, P, H):
    """Normalised (r, c) of normalised (L, P, H)."""
    LP = L * P
    LL = L * L
    PP = P * P
    LLL = LL * L
    LPP = L * PP
    LLP = LL * P
    PPP = PP * P
    r = (_poly(tr[0], L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
         / _poly(tr[1], L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP))
    c = (_poly(tc[0], L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
         / _poly(tc[1], L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP))
    return r, c


@njit(inline="always", **_NB)
def _ratio_jac(t, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP):
    N = _poly(t[0], L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
    D = _poly(t[1], L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
    NL = _dpoly(t[2], L, P, H, LP, LL, PP)
    NP = _dpoly(t[3], P, L, H, LP, PP, LL)
    DL = _dpoly(t[4], L, P, H, LP, LL, PP)
    DP = _dpoly(t[5], P, L, H, LP, PP, LL)
    iD = 1.0 / D
    q = N * iD
    # (N/D)' = (N' - (N/D) D') / D
    return q, (NL - q * DL) * iD, (NP - q * DP) * iD


@njit(inline="always", **_NB)
def _jac(tr, tc, L, P, H):
    """Normalised (r, dr/dL, dr/dP, c, dc/dL, dc/dP) of normalised (L, P, H)."""
    LP = L * P
    LL = L * L
    PP = P * P
    LLL = LL * L
    LPP = L * PP
    LLP = LL * P
    PPP = PP * P
    r = _ratio_jac(tr, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
    c = _ratio_jac(tc, L, P, H, LP, LL, PP, LLL, LPP, LLP, PPP)
    return r[0], r[1], r[2], c[0], c[1], c[2]


@njit(inline="always", **_NB)
def _finite(x):
    return abs(x) < np.inf  # False for NaN and ±inf


@njit(inline="always", **_NB)
def _step(f, er, ec):
    """Newton step (dL, dP) for residuals (er, ec), and whether the Jacobian is usable."""
    det = f[1] * f[5] - f[2] * f[4]
    idet = 1.0 / det
    return (f[5] * er - f[2] * ec) * idet, (f[1] * ec - f[4] * er) * idet, (det != 0.0) & _finite(det)


@njit(inline="always", **_NB)
def _newton(L, P, it0, rt, ct, H, tr, tc, s_r, s_c, tol_r, tol_c, max_iter):
    """Damped Newton from (L, P), counting iterations from ``it0``; returns (L, P, status)."""
    status = -1
    f = _jac(tr, tc, L, P, H)
    er = f[0] - rt
    ec = f[3] - ct
    err = (er * s_r) ** 2 + (ec * s_c) ** 2
    for it in range(it0, max_iter):
        if abs(er) <= tol_r and abs(ec) <= tol_c:
            status = it
            break
        dL, dP, ok = _step(f, er, ec)
        if not ok:
            break
        # damped Newton: halve the step until the pixel residual decreases
        step = 1.0
        for _ in range(30):
            Ln = L - step * dL
            Pn = P - step * dP
            fn = _jac(tr, tc, Ln, Pn, H)
            ern = fn[0] - rt
            ecn = fn[3] - ct
            errn = (ern * s_r) ** 2 + (ecn * s_c) ** 2
            if errn < err or not _finite(err):
                break
            step *= 0.5
        if not (errn < err or not _finite(err)):
            # no descent possible: either converged to rounding or stuck
            if abs(er) <= tol_r and abs(ec) <= tol_c:
                status = it
            break
        L, P, f, er, ec, err = Ln, Pn, fn, ern, ecn, errn
    else:
        if abs(er) <= tol_r and abs(ec) <= tol_c:
            status = max_iter
    return L, P, _far(L, P, status)


@njit(inline="always", **_NB)
def _far(L, P, status):
    """status, or -2 for a root outside :data:`MAX_NORM_GROUND` (a spurious one)."""
    return -2 if status >= 0 and (abs(L) > MAX_NORM_GROUND or abs(P) > MAX_NORM_GROUND) else status


@njit(**_NB)
def _localize_block(row, col, h, norm, coefs, inv_affine, guess, tol_px, max_iter,
                    out_lon, out_lat, out_status):
    """The vectorised pass, then the damped iteration where it is needed."""
    tr, tc = _model(coefs)
    k = _consts(norm, inv_affine, guess)
    s_r = norm[5]
    s_c = norm[6]
    tol_r = tol_px / abs(s_r)
    tol_c = tol_px / abs(s_c)
    lon_s = norm[8]
    lon_o = norm[3]
    lat_s = norm[7]
    lat_o = norm[2]
    if max_iter > _FAST_STEPS:
        # pass 1, straight-line (SIMD across points): the first two Newton steps, each taken only
        # where the damped iteration takes it in full, i.e. where it decreased the residual
        for i in range(row.shape[0]):
            rt, ct, H, L0, P0 = _start(row[i], col[i], h[i], k)
            f = _jac(tr, tc, L0, P0, H)  # iteration 0
            er = f[0] - rt
            ec = f[3] - ct
            err0 = (er * s_r) ** 2 + (ec * s_c) ** 2
            conv0 = (abs(er) <= tol_r) & (abs(ec) <= tol_c)
            dL, dP, ok0 = _step(f, er, ec)
            L1 = L0 - dL
            P1 = P0 - dP
            f = _jac(tr, tc, L1, P1, H)  # iteration 1
            er = f[0] - rt
            ec = f[3] - ct
            err1 = (er * s_r) ** 2 + (ec * s_c) ** 2
            take1 = (err1 < err0) | (not _finite(err0))
            conv1 = (abs(er) <= tol_r) & (abs(ec) <= tol_c)
            dL, dP, ok1 = _step(f, er, ec)
            L2 = L1 - dL
            P2 = P1 - dP
            r, c = _value(tr, tc, L2, P2, H)  # iteration 2: values suffice to test convergence
            er = r - rt
            ec = c - ct
            err2 = (er * s_r) ** 2 + (ec * s_c) ** 2
            take2 = (err2 < err1) | (not _finite(err1))
            conv2 = (abs(er) <= tol_r) & (abs(ec) <= tol_c)
            if conv0:
                L, P, st = L0, P0, 0
            elif not (ok0 and take1):
                L, P, st = L0, P0, _RESTART
            elif conv1:
                L, P, st = L1, P1, 1
            elif not (ok1 and take2):
                L, P, st = L0, P0, _RESTART
            elif conv2:
                L, P, st = L2, P2, 2
            else:
                L, P, st = L2, P2, _RESUME
            st = _far(L, P, st)
            done = st >= -2
            out_lon[i] = L * lon_s + lon_o if done else L
            out_lat[i] = P * lat_s + lat_o if done else P
            out_status[i] = st
    # pass 2, scalar: the damped iteration for the points pass 1 left (all if max_iter is small)
    for i in range(row.shape[0]):
        if max_iter > _FAST_STEPS and out_status[i] > _RESTART:
            continue
        rt, ct, H, L, P = _start(row[i], col[i], h[i], k)
        it0 = 0
        if max_iter > _FAST_STEPS and out_status[i] == _RESUME:
            L = out_lon[i]
            P = out_lat[i]
            it0 = _FAST_STEPS
        L, P, st = _newton(L, P, it0, rt, ct, H, tr, tc, s_r, s_c, tol_r, tol_c, max_iter)
        out_lon[i] = L * lon_s + lon_o
        out_lat[i] = P * lat_s + lat_o
        out_status[i] = st


@njit(**_NB)
def localize_serial(row, col, h, norm, coefs, inv_affine, guess, tol_px, max_iter,
                    out_lon, out_lat, out_status):
    """Image (row, col, h) -> ground (lon, lat) by damped Newton; status = iterations, or -1 (no
    convergence) / -2 (converged outside :data:`MAX_NORM_GROUND`)."""
    _localize_block(row, col, h, norm, coefs, inv_affine, guess, tol_px, max_iter,
                    out_lon, out_lat, out_status)


@njit(parallel=True, **_NB)
def localize_parallel(row, col, h, norm, coefs, inv_affine, guess, tol_px, max_iter,
                      out_lon, out_lat, out_status):
    """As :func:`localize_serial`, numba threads."""
    n = row.shape[0]
    nchunk = (n + _CHUNK - 1) // _CHUNK
    for k in prange(nchunk):
        s = slice(k * _CHUNK, min(n, (k + 1) * _CHUNK))
        _localize_block(row[s], col[s], h[s], norm, coefs, inv_affine, guess, tol_px, max_iter,
                        out_lon[s], out_lat[s], out_status[s])
