"""Is a patch a rigid surface the parallax criterion applies to? Per-patch DSM surface figures.

Kernels layer: numpy only, no dask, no metadata.
"""

from __future__ import annotations

import numpy as np


def _group(lab, ids):
    idx = np.clip(np.searchsorted(ids, lab), 0, max(len(ids) - 1, 0))
    inp = (lab > 0) & (np.asarray(ids)[idx] == lab) if len(ids) else np.zeros(lab.shape, bool)
    return idx, inp


def plane_sums(h, lab, ids, i0: int = 0, j0: int = 0):
    """Per patch ``ids`` the sums (n, Sx, Sy, Sz, Sxx, Syy, Sxy, Sxz, Syz, Szz) over its cells with
    a finite height ``h`` (cells ``lab``, coordinates in cells from ``(i0, j0)``; x along columns,
    y along rows). Mergeable by addition across tiles when every tile uses the same origin."""
    idx, inp = _group(lab, ids)
    return plane_sums_rows(h, np.where(inp, idx, -1), len(ids), i0, j0)


def plane_sums_rows(h, rows, n: int, i0: int = 0, j0: int = 0):
    """:func:`plane_sums` from each cell's row ``rows`` (0 .. n-1, negative: no patch), as the
    tiles' patch pass has them."""
    ok = (rows >= 0) & np.isfinite(h)
    ii, jj = np.nonzero(ok)
    r = rows[ok]
    x = (jj + j0).astype(np.float64)
    y = (ii + i0).astype(np.float64)
    z = h[ok].astype(np.float64)
    cols = (np.ones_like(z), x, y, z, x * x, y * y, x * y, x * z, y * z, z * z)
    return np.stack([np.bincount(r, c, minlength=n) for c in cols], 1)


def plane_rms(sums):
    """Rms departure of the heights from their least-squares plane, from :func:`plane_sums`
    (NaN with fewer than 4 cells; the patch's mean when its cells are on a line)."""
    s = np.asarray(sums, np.float64)
    n = s[:, 0]
    with np.errstate(all="ignore"):
        mx, my, mz = s[:, 1] / n, s[:, 2] / n, s[:, 3] / n
        cxx = s[:, 4] / n - mx * mx
        cyy = s[:, 5] / n - my * my
        cxy = s[:, 6] / n - mx * my
        cxz = s[:, 7] / n - mx * mz
        cyz = s[:, 8] / n - my * mz
        czz = s[:, 9] / n - mz * mz
        det = cxx * cyy - cxy * cxy
        good = det > 1e-9 * np.maximum(cxx * cyy, 1e-12)
        bx = np.where(good, (cyy * cxz - cxy * cyz) / np.where(good, det, 1.0), 0.0)
        by = np.where(good, (cxx * cyz - cxy * cxz) / np.where(good, det, 1.0), 0.0)
        var = czz - bx * cxz - by * cyz
    var = np.maximum(var, 0.0)
    return np.where(n >= 4, np.sqrt(var), np.nan)


def patch_surface(h, lab, ids, cell: float, direction, tan_t: float):
    """(rms departure from the patch's plane in metres, share of its cells foreshortened by more
    than half along ``direction`` (row, col unit step towards the sensor) in a view at ``tan_t``)."""
    rms = plane_rms(plane_sums(h, lab, ids))
    di, dj = direction
    gi, gj = np.gradient(np.asarray(h, np.float64), cell)
    s = gi * di + gj * dj
    idx, inp = _group(lab, ids)
    steep = inp & np.isfinite(s) & (np.abs(s * tan_t) > 0.5)
    n = np.bincount(idx[inp], minlength=len(ids)).astype(np.float64)
    with np.errstate(all="ignore"):
        share = np.bincount(idx[steep], minlength=len(ids)) / n
    return rms, share
