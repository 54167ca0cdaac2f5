"""numba kernels of the co-registered cube: lattice interpolation, the image extent of projected
cells and bilinear image sampling. Line-of-sight visibility lives in
:mod:`offnadir.cube.visibility_kernels` (re-exported here: ``visibility_los``, ``halo_cells``) and
:mod:`offnadir.cube.visibility_bound_kernels` (the geometry of its ahead bound).

Kernels know numpy and numba only (no xarray, dask or rasterio). Each one loops over 2-D arrays on
one thread (``nogil``: dask provides the parallelism) and writes into a preallocated ``out``.
Each has a slow, obvious reference twin in ``tests/test_cube_kernels.py`` /
``tests/test_occlusion_kernel.py``.

Conventions
-----------
* DSM grid: ``(i, j)`` = (row, column) of the DSM raster, float64 heights above the WGS84
  ellipsoid, NaN = nodata. Blocks passed to the kernels are windows of that grid; every result
  is a function of *global* grid positions only, so it never depends on where a block starts.
* Image pixels: RPC00B native ``(row, col)``, centre of the first pixel = ``(0, 0)``.
* Visibility codes (``uint8``): :data:`VISIBLE` = 1, :data:`HIDDEN` = 0, :data:`NODATA` = 2.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from offnadir.cube.visibility_bound_kernels import (  # noqa: F401  (the cube's kernels in one namespace)
    _AHEAD_MAX_OFFSETS, _SKIP, _box_meets_polygon, _los_sector)
from offnadir.cube.visibility_kernels import (  # noqa: F401
    DEFAULT_LOS_STEP, DEFAULT_Z_TOL, _ahead_bound, _coarse_max, _pool_max, halo_cells, visibility_los)

_NB = dict(cache=True, nogil=True, error_model="numpy")

HIDDEN = np.uint8(0)
VISIBLE = np.uint8(1)
NODATA = np.uint8(2)


# --------------------------------------------------------------------------- lattice interpolation


@njit(**_NB)
def interp_lattice(lattice, step, i_lat0, j_lat0, i0, j0, out):
    """Bilinear interpolation of a coarse lattice onto a block of fine cells.

    ``lattice[a, b]`` is the value at fine index ``(i_lat0 + a*step, j_lat0 + b*step)``;
    ``out[y, x]`` receives the value at fine index ``(i0 + y, j0 + x)``. The lattice must cover
    the block (``ValueError`` otherwise).

    Results are bit-identical whatever block, and whatever covering lattice on the same global
    node positions, is used: each cell is computed from its global position and the (at most
    four) nodes around it only. A cell on a lattice row or column uses that row/column alone, so
    a NaN node only reaches the cells strictly inside the lattice cells around it.
    """
    nli, nlj = lattice.shape
    ny, nx = out.shape
    if step < 1:
        raise ValueError("interp_lattice: step must be >= 1 fine cell")
    if ny == 0 or nx == 0:
        return
    ri_first = i0 - i_lat0
    ri_last = i0 + ny - 1 - i_lat0
    rj_first = j0 - j_lat0
    rj_last = j0 + nx - 1 - j_lat0
    if (ri_first < 0 or rj_first < 0 or ri_last > (nli - 1) * step
            or rj_last > (nlj - 1) * step):
        raise ValueError("interp_lattice: the lattice does not cover the requested block; "
                         "extend the lattice by one node on each side")
    # per-column node index and fraction (integer arithmetic, then one exact division)
    jb = np.empty(nx, np.int64)
    fj = np.empty(nx, np.float64)
    for x in range(nx):
        r = j0 + x - j_lat0
        b = r // step
        jb[x] = b
        fj[x] = (r - b * step) / step
    for y in range(ny):
        r = i0 + y - i_lat0
        a = r // step
        fi = (r - a * step) / step
        for x in range(nx):
            b = jb[x]
            f = fj[x]
            v0 = lattice[a, b]
            if f != 0.0:
                v0 = v0 + f * (lattice[a, b + 1] - v0)
            if fi != 0.0:
                v1 = lattice[a + 1, b]
                if f != 0.0:
                    v1 = v1 + f * (lattice[a + 1, b + 1] - v1)
                v0 = v0 + fi * (v1 - v0)
            out[y, x] = v0


# --------------------------------------------------------------------------- image extent


@njit(**_NB)
def image_extent(row, col, n_rows, n_cols):
    """Where the positions land in an image of ``n_rows`` x ``n_cols`` pixels: ``(count, rmin, rmax,
    cmin, cmax)`` over the positions inside it (``-0.5 <= row <= n_rows - 0.5``, the same for col;
    NaN is outside). ``count`` = 0 (and the bounds +-inf) when none is. One pass, no temporaries
    (the numpy masks and fancy-indexed copies it replaces took ~9 ms per 1024^2 cells and image)."""
    ny, nx = row.shape
    if col.shape[0] != ny or col.shape[1] != nx:
        raise ValueError("image_extent: row and col must have the same shape")
    r_hi = n_rows - 0.5
    c_hi = n_cols - 0.5
    n = 0
    rmin = np.inf
    rmax = -np.inf
    cmin = np.inf
    cmax = -np.inf
    for y in range(ny):
        for x in range(nx):
            r = row[y, x]
            c = col[y, x]
            if r >= -0.5 and r <= r_hi and c >= -0.5 and c <= c_hi:
                n += 1
                rmin = min(rmin, r)
                rmax = max(rmax, r)
                cmin = min(cmin, c)
                cmax = max(cmax, c)
    return n, rmin, rmax, cmin, cmax


@njit(**_NB)
def mark_outside(row, col, n_rows, n_cols, code, out):
    """``out[y, x] = code`` wherever ``(row, col)[y, x]`` is outside the image (the complement of
    the inside test of :func:`image_extent`); other cells are left as they are."""
    ny, nx = row.shape
    if col.shape[0] != ny or col.shape[1] != nx or out.shape[0] != ny or out.shape[1] != nx:
        raise ValueError("mark_outside: row, col and out must have the same shape")
    r_hi = n_rows - 0.5
    c_hi = n_cols - 0.5
    for y in range(ny):
        for x in range(nx):
            r = row[y, x]
            c = col[y, x]
            if not (r >= -0.5 and r <= r_hi and c >= -0.5 and c <= c_hi):
                out[y, x] = code


# --------------------------------------------------------------------------- image sampling


@njit(**_NB)
def sample_bilinear(image, row, col, row0, col0, nodata, out):
    """Bilinear sampling of every band of an image window at image positions.

    image: (bands, h, w), any numeric dtype, = the window whose pixel (0, 0) is image pixel
        (row0, col0). row, col: (ny, nx) float64 positions in full-image native pixels.
    nodata: value flagging invalid pixels (NaN disables the check; NaN pixels always propagate).
    out: (bands, ny, nx) float32. NaN where row/col is NaN, where the position is outside the
        window (inside = between the first and the last pixel centre, both included) or where a
        neighbour with a non-zero weight is nodata/NaN. A position exactly on a pixel centre uses
        that pixel alone (so it is valid next to nodata).
    """
    nb = image.shape[0]
    h = image.shape[1]
    w = image.shape[2]
    ny, nx = row.shape
    if col.shape[0] != ny or col.shape[1] != nx:
        raise ValueError("sample_bilinear: row and col must have the same shape")
    if out.shape[0] != nb or out.shape[1] != ny or out.shape[2] != nx:
        raise ValueError("sample_bilinear: out must have shape (bands, ny, nx)")
    check = nodata == nodata
    nodata_f = np.float64(nodata)
    rmax = np.float64(h - 1)
    cmax = np.float64(w - 1)
    for y in range(ny):
        for x in range(nx):
            r = row[y, x] - row0
            c = col[y, x] - col0
            if not (r >= 0.0 and r <= rmax and c >= 0.0 and c <= cmax):
                for b in range(nb):
                    out[b, y, x] = np.nan
                continue
            ir = int(math.floor(r))
            ic = int(math.floor(c))
            fr = r - ir
            fc = c - ic
            # non-negative here: unsigned indices spare numba's negative-index wraparound (~25 %)
            ur = np.uintp(ir)
            uc = np.uintp(ic)
            one = np.uintp(1)
            for b in range(nb):
                bad = False
                a00 = np.float64(image[b, ur, uc])
                bad |= check and a00 == nodata_f
                top = a00
                if fc != 0.0:
                    a01 = np.float64(image[b, ur, uc + one])
                    bad |= check and a01 == nodata_f
                    top = a00 + fc * (a01 - a00)
                val = top
                if fr != 0.0:
                    a10 = np.float64(image[b, ur + one, uc])
                    bad |= check and a10 == nodata_f
                    bot = a10
                    if fc != 0.0:
                        a11 = np.float64(image[b, ur + one, uc + one])
                        bad |= check and a11 == nodata_f
                        bot = a10 + fc * (a11 - a10)
                    val = top + fr * (bot - top)
                if bad:
                    out[b, y, x] = np.nan
                else:
                    out[b, y, x] = val
