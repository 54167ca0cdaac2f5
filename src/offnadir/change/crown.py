"""Is a patch a rigid surface the parallax criterion applies to? Per-patch DSM surface figures.

Kernels layer: numpy and numba only, no dask, no metadata.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
    h = np.asarray(h)
    rows = np.asarray(rows)
    if (h.dtype not in (np.float32, np.float64) or rows.dtype.kind not in "iu" or h.shape != rows.shape
            or h.ndim != 2 or (rows.size and int(rows.max()) >= n)):
        return _plane_sums_numpy(h, rows, n, i0, j0)
    out = np.zeros((int(n), 10))
    _plane_sums_kernel(h, rows, int(i0), int(j0), out)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _plane_sums_kernel(h, rows, i0, j0, out):
    """The ten sums of :func:`plane_sums_rows` in one pass: per cell in row-major order, the same
    float64 products added to the same row as ``np.bincount(rows, weights)`` adds them (in cell
    order onto 0.0), so the same numbers bit for bit (tested against :func:`_plane_sums_numpy`)."""
    ny, nx = h.shape
    for i in range(ny):
        y = np.float64(i + i0)
        for j in range(nx):
            r = rows[i, j]
            if r < 0:
                continue
            z = np.float64(h[i, j])
            if not np.isfinite(z):
                continue
            x = np.float64(j + j0)
            o = out[r]
            o[0] += 1.0
            o[1] += x
            o[2] += y
            o[3] += z
            o[4] += x * x
            o[5] += y * y
            o[6] += x * y
            o[7] += x * z
            o[8] += y * z
            o[9] += z * z


def _plane_sums_numpy(h, rows, n: int, i0: int = 0, j0: int = 0):
    """:func:`plane_sums_rows` with numpy's grouped sums (the reference of the kernel's test; other
    dtypes)."""
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
