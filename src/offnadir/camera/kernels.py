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
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_NB = dict(cache=True, nogil=True, error_model="numpy")
#: a localisation that lands further than this from the model centre, in normalised ground units
#: (the validity domain is ±1), is a spurious root of the extrapolated polynomials, not a ground
#: point: it is reported as not converged (status -2) instead of returned.
MAX_NORM_GROUND = 3.0


@njit(inline="always", **_NB)
def _poly(c, L, P, H, LP, LH, PH, LL, PP, HH):
    # 20-term cubic in RPC00B order, grouped so each monomial is formed once
    return (c[0] + c[1] * L + c[2] * P + c[3] * H + c[4] * LP + c[5] * LH + c[6] * PH
            + c[7] * LL + c[8] * PP + c[9] * HH + c[10] * LP * H + c[11] * LL * L
            + c[12] * L * PP + c[13] * L * HH + c[14] * LL * P + c[15] * PP * P
            + c[16] * P * HH + c[17] * LL * H + c[18] * PP * H + c[19] * HH * H)


@njit(inline="always", **_NB)
def _rfm_norm(coefs, L, P, H):
    """Normalised (row, col) of normalised (L, P, H)."""
    LP = L * P
    LH = L * H
    PH = P * H
    LL = L * L
    PP = P * P
    HH = H * H
    rn = _poly(coefs[0], L, P, H, LP, LH, PH, LL, PP, HH)
    rd = _poly(coefs[1], L, P, H, LP, LH, PH, LL, PP, HH)
    cn = _poly(coefs[2], L, P, H, LP, LH, PH, LL, PP, HH)
    cd = _poly(coefs[3], L, P, H, LP, LH, PH, LL, PP, HH)
    return rn / rd, cn / cd


@njit(inline="always", **_NB)
def _project_one(lon, lat, h, norm, coefs, affine):
    dlon = lon - norm[3]
    if dlon > 180.0:
        dlon -= 360.0
    elif dlon < -180.0:
        dlon += 360.0
    L = dlon / norm[8]
    P = (lat - norm[2]) / norm[7]
    H = (h - norm[4]) / norm[9]
    r, c = _rfm_norm(coefs, L, P, H)
    row = r * norm[5] + norm[0]
    col = c * norm[6] + norm[1]
    return (affine[0] * row + affine[1] * col + affine[2],
            affine[3] * row + affine[4] * col + affine[5])


@njit(**_NB)
def project_serial(lon, lat, h, norm, coefs, affine, out_row, out_col):
    """Ground (lon, lat, h) -> image (row, col), one thread."""
    for i in range(lon.shape[0]):
        out_row[i], out_col[i] = _project_one(lon[i], lat[i], h[i], norm, coefs, affine)


@njit(parallel=True, **_NB)
def project_parallel(lon, lat, h, norm, coefs, affine, out_row, out_col):
    """Ground (lon, lat, h) -> image (row, col), numba threads."""
    for i in prange(lon.shape[0]):
        out_row[i], out_col[i] = _project_one(lon[i], lat[i], h[i], norm, coefs, affine)


@njit(inline="always", **_NB)
def _rfm_norm_jac(coefs, L, P, H):
    """Normalised (row, col) and their derivatives with respect to L and P."""
    LP = L * P
    LH = L * H
    PH = P * H
    LL = L * L
    PP = P * P
    HH = H * H
    r = _ratio_jac(coefs[0], coefs[1], L, P, H, LP, LH, PH, LL, PP, HH)
    c = _ratio_jac(coefs[2], coefs[3], L, P, H, LP, LH, PH, LL, PP, HH)
    return (r[0], r[1], r[2], c[0], c[1], c[2])


@njit(inline="always", **_NB)
def _ratio_jac(n, d, L, P, H, LP, LH, PH, LL, PP, HH):
    N = _poly(n, L, P, H, LP, LH, PH, LL, PP, HH)
    D = _poly(d, L, P, H, LP, LH, PH, LL, PP, HH)
    # d/dL of the 20 terms: 0,1,0,0,P,H,0,2L,0,0,PH,3L²,P²,H²,2LP,0,0,2LH,0,0
    NL = (n[1] + n[4] * P + n[5] * H + 2 * n[7] * L + n[10] * PH + 3 * n[11] * LL
          + n[12] * PP + n[13] * HH + 2 * n[14] * LP + 2 * n[17] * LH)
    DL = (d[1] + d[4] * P + d[5] * H + 2 * d[7] * L + d[10] * PH + 3 * d[11] * LL
          + d[12] * PP + d[13] * HH + 2 * d[14] * LP + 2 * d[17] * LH)
    # d/dP: 0,0,1,0,L,0,H,0,2P,0,LH,0,2LP,0,L²,3P²,H²,0,2PH,0
    NP = (n[2] + n[4] * L + n[6] * H + 2 * n[8] * P + n[10] * LH + 2 * n[12] * LP
          + n[14] * LL + 3 * n[15] * PP + n[16] * HH + 2 * n[18] * PH)
    DP = (d[2] + d[4] * L + d[6] * H + 2 * d[8] * P + d[10] * LH + 2 * d[12] * LP
          + d[14] * LL + 3 * d[15] * PP + d[16] * HH + 2 * d[18] * PH)
    return N / D, (NL * D - N * DL) / (D * D), (NP * D - N * DP) / (D * D)


@njit(inline="always", **_NB)
def _localize_one(row, col, h, norm, coefs, inv_affine, guess, tol_px, max_iter):
    # undo the image-space affine: native RPC pixel
    r0 = inv_affine[0] * row + inv_affine[1] * col + inv_affine[2]
    c0 = inv_affine[3] * row + inv_affine[4] * col + inv_affine[5]
    rt = (r0 - norm[0]) / norm[5]
    ct = (c0 - norm[1]) / norm[6]
    H = (h - norm[4]) / norm[9]
    L = guess[0] + guess[1] * rt + guess[2] * ct + guess[3] * H
    P = guess[4] + guess[5] * rt + guess[6] * ct + guess[7] * H
    tol_r = tol_px / abs(norm[5])
    tol_c = tol_px / abs(norm[6])
    status = -1
    f = _rfm_norm_jac(coefs, L, P, H)
    er = f[0] - rt
    ec = f[3] - ct
    err = (er * norm[5]) ** 2 + (ec * norm[6]) ** 2
    for it in range(max_iter):
        if abs(er) <= tol_r and abs(ec) <= tol_c:
            status = it
            break
        det = f[1] * f[5] - f[2] * f[4]
        if det == 0.0 or not np.isfinite(det):
            break
        dL = (f[5] * er - f[2] * ec) / det
        dP = (f[1] * ec - f[4] * er) / det
        # damped Newton: halve the step until the pixel residual decreases
        step = 1.0
        for _ in range(30):
            Ln = L - step * dL
            Pn = P - step * dP
            fn = _rfm_norm_jac(coefs, Ln, Pn, H)
            ern = fn[0] - rt
            ecn = fn[3] - ct
            errn = (ern * norm[5]) ** 2 + (ecn * norm[6]) ** 2
            if errn < err or not np.isfinite(err):
                break
            step *= 0.5
        if not (errn < err or not np.isfinite(err)):
            # no descent possible: either converged to rounding or stuck
            if abs(er) <= tol_r and abs(ec) <= tol_c:
                status = it
            break
        L, P, f, er, ec, err = Ln, Pn, fn, ern, ecn, errn
    else:
        if abs(er) <= tol_r and abs(ec) <= tol_c:
            status = max_iter
    if status >= 0 and (abs(L) > MAX_NORM_GROUND or abs(P) > MAX_NORM_GROUND):
        status = -2
    lon = L * norm[8] + norm[3]
    lat = P * norm[7] + norm[2]
    return lon, lat, status


@njit(**_NB)
def localize_serial(row, col, h, norm, coefs, inv_affine, guess, tol_px, max_iter,
                    out_lon, out_lat, out_status):
    """Image (row, col, h) -> ground (lon, lat) by damped Newton; status = iterations, or -1 (no
    convergence) / -2 (converged outside :data:`MAX_NORM_GROUND`)."""
    for i in range(row.shape[0]):
        out_lon[i], out_lat[i], out_status[i] = _localize_one(
            row[i], col[i], h[i], norm, coefs, inv_affine, guess, tol_px, max_iter)


@njit(parallel=True, **_NB)
def localize_parallel(row, col, h, norm, coefs, inv_affine, guess, tol_px, max_iter,
                      out_lon, out_lat, out_status):
    """As :func:`localize_serial`, numba threads."""
    for i in prange(row.shape[0]):
        out_lon[i], out_lat[i], out_status[i] = _localize_one(
            row[i], col[i], h[i], norm, coefs, inv_affine, guess, tol_px, max_iter)
