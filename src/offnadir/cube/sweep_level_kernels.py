"""numba kernels of the height sweep's on-level and off-level tests (:mod:`offnadir.cube.sweep_level`).
On-level (:func:`~offnadir.cube.sweep_level.on_level_moved`): the windowed NCC of two images over a
window that follows a moved surface, the window cells on the centre cell's level read from samples at
the moved heights, the others from samples at the DSM heights (slow twin in
``tests/test_sweep_on_level.py``). Off-level (:func:`~offnadir.cube.sweep_level.off_level_explained`):
the windows of the tested cells and the images sampled there alone (the off-level NCC at those cells
alone is :func:`offnadir.cube.sweep_kernels.ncc_off_level_cells`, beside the whole-block kernel whose
cell sums it shares), each equal to the bit to the whole-block kernels (``tests/test_sweep_off_level.py``). numpy and
numba only; one thread per call (``nogil``)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_NB)
def ncc_on_level(a0, b0, a1, b1, h, hc, tol, on_only, r, min_count, out, count):
    """Windowed NCC around every cell where ``hc`` is finite: a window cell whose height ``h`` is
    within ``tol`` of the cell's level ``hc`` (``|h - hc| < tol``, the cell itself included) takes
    the moved samples ``a1``/``b1``, every other cell the DSM-height samples ``a0``/``b0`` (with
    ``on_only``: the other cells are left out).

    a0, b0, a1, b1: (ny, nx) float32 samples (NaN = none); h, hc: (ny, nx) float64 (hc NaN: not
    tested, out NaN and count 0). out: float32 Pearson correlation, NaN where fewer than
    ``min_count`` pairs or no variance; count: float64 number of pairs used.
    """
    ny, nx = a0.shape
    for y in range(ny):
        for x in range(nx):
            z = hc[y, x]
            out[y, x] = np.nan
            count[y, x] = 0.0
            if not (z == z):
                continue
            n = 0
            sa = 0.0
            sb = 0.0
            saa = 0.0
            sbb = 0.0
            sab = 0.0
            for yy in range(max(y - r, 0), min(y + r, ny - 1) + 1):
                for xx in range(max(x - r, 0), min(x + r, nx - 1) + 1):
                    hh = h[yy, xx]
                    if hh == hh and abs(hh - z) < tol:
                        va = a1[yy, xx]
                        vb = b1[yy, xx]
                    elif on_only:
                        continue
                    else:
                        va = a0[yy, xx]
                        vb = b0[yy, xx]
                    if not (va == va and vb == vb):
                        continue
                    n += 1
                    sa += va
                    sb += vb
                    saa += va * va
                    sbb += vb * vb
                    sab += va * vb
            count[y, x] = n
            if n < min_count or n < 2:
                continue
            ma = sa / n
            mb = sb / n
            va_ = saa / n - ma * ma
            vb_ = sbb / n - mb * mb
            if va_ <= 0.0 or vb_ <= 0.0:
                continue
            out[y, x] = (sab / n - ma * mb) / math.sqrt(va_ * vb_)


@njit(**_NB)
def window_cells(ys, xs, r, stamp, tag, cy, cx):
    """The cells of the ``(2r+1)²`` windows (clipped to the block) around the cells ``(ys, xs)``,
    each once: written to ``cy``/``cx`` (int64, room for every cell of the block), their number
    returned. ``stamp``: (ny, nx) int64 marks, a cell is taken where its mark is not ``tag`` (then
    set to ``tag``: a new ``tag`` per call spares clearing it)."""
    ny, nx = stamp.shape
    m = 0
    for i in range(ys.shape[0]):
        y = ys[i]
        x = xs[i]
        for yy in range(max(y - r, 0), min(y + r, ny - 1) + 1):
            for xx in range(max(x - r, 0), min(x + r, nx - 1) + 1):
                if stamp[yy, xx] != tag:
                    stamp[yy, xx] = tag
                    cy[m] = yy
                    cx[m] = xx
                    m += 1
    return m


@njit(**_NB)
def _lattice_at(lattice, a, b, fi, f):
    """:func:`offnadir.cube.kernels.interp_lattice`'s value of one cell: node (a, b), fractions fi, f."""
    v0 = lattice[a, b]
    if f != 0.0:
        v0 = v0 + f * (lattice[a, b + 1] - v0)
    if fi != 0.0:
        v1 = lattice[a + 1, b]
        if f != 0.0:
            v1 = v1 + f * (lattice[a + 1, b + 1] - v1)
        v0 = v0 + fi * (v1 - v0)
    return v0


@njit(**_NB)
def sample_cells(image, lat_r, lat_c, step, i_lat0, j_lat0, i0, j0, row0, col0, cy, cx, hidden, use_hidden,
                 out):
    """The sweep's samples of one image (:meth:`offnadir.cube.sweep_views.View.sample`) at the listed
    cells only, to the bit: the image positions interpolated from the lattice ``lat_r``/``lat_c``
    as :func:`offnadir.cube.kernels.interp_lattice` does, then sampled bilinearly as
    :func:`offnadir.cube.kernels.sample_bilinear` does (one band, no nodata value: NaN pixels
    propagate); NaN where ``hidden`` (with ``use_hidden``).

    image: (h, w) float32 window whose pixel (0, 0) is image pixel (row0, col0); cy, cx: int64 cell
    indices of the block whose cell (0, 0) is fine index (i0, j0); out: (ny, nx) float32, written at
    the listed cells only."""
    h = image.shape[0]
    w = image.shape[1]
    rmax = np.float64(h - 1)
    cmax = np.float64(w - 1)
    for n in range(cy.shape[0]):
        y = cy[n]
        x = cx[n]
        if use_hidden and hidden[y, x]:
            out[y, x] = np.nan
            continue
        ri = i0 + y - i_lat0
        a = ri // step
        fi = (ri - a * step) / step
        rj = j0 + x - j_lat0
        b = rj // step
        f = (rj - b * step) / step
        r = _lattice_at(lat_r, a, b, fi, f) - row0
        c = _lattice_at(lat_c, a, b, fi, f) - col0
        if not (r >= 0.0 and r <= rmax and c >= 0.0 and c <= cmax):
            out[y, x] = np.nan
            continue
        ir = int(math.floor(r))
        ic = int(math.floor(c))
        fr = r - ir
        fc = c - ic
        top = np.float64(image[ir, ic])
        if fc != 0.0:
            top = top + fc * (np.float64(image[ir, ic + 1]) - top)
        val = top
        if fr != 0.0:
            bot = np.float64(image[ir + 1, ic])
            if fc != 0.0:
                bot = bot + fc * (np.float64(image[ir + 1, ic + 1]) - bot)
            val = top + fr * (bot - top)
        out[y, x] = val
