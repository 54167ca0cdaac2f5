"""One block of image rows traced and shaded in one pass (numpy and numba only).

:func:`offnadir.simulate.perray.trace_image` keeps every sub-pixel ray's hit (code, cell, ray
parameter, face, end points: 50 bytes a ray, 9 rays a pixel), then
:func:`~offnadir.simulate.perray.shade_image` reads them back: 8 GB for a 4096² scene. Here each
ray is traced (:func:`offnadir.simulate.bounded.first_hit`) and shaded
(:func:`offnadir.simulate.render.shade_ray`, the same code as ``shade_image``) where it is made;
only the flat index of the DSM cell whose top it sees is kept (int32, -1 for walls and rays
outside the grid), for the visibility counts (:func:`count_cells`, serial so the counts need no
atomics). The caller walks the image in blocks of rows, so memory is one block of cell indices
plus the radiance image.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from offnadir.simulate.bounded import STEP, TOP, first_hit
from offnadir.simulate.render import _lerp_lattice, shade_ray

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(parallel=True, **_NB)
def render_rows(lat_u_top, lat_v_top, lat_u_bot, lat_v_bot, step, r0, c0, z_top, z_bot, row0, ss,
                dsm, bmax, k_block, wall_min, shade, terrain, albedo, side, kind, normals, cell,
                sun, sky, sun_on, shadows, shadow_tol, zmax, outside, glass, floor_h, roof_kind,
                out_cell, out_rad):
    """Image rows ``row0 .. row0 + out_cell.shape[0] / ss``, ``ss × ss`` rays per pixel.

    ``out_cell`` (rows*ss, cols*ss) int32: ``i * W + j`` of the DSM cell whose top (or low step)
    the ray hits first, -1 otherwise. ``shade``: also write the pixel radiance (mean of its rays)
    into ``out_rad`` (4, rows, cols); the shading arguments are those of
    :func:`offnadir.simulate.perray.shade_image` (unused when ``shade`` is False)."""
    ny, nx = dsm.shape
    n_rows = out_cell.shape[0] // ss
    n_cols = out_cell.shape[1] // ss
    inv = 1.0 / (ss * ss)
    for pr in prange(n_rows):
        acc = np.zeros(4)
        for pc in range(n_cols):
            acc[:] = 0.0
            for a in range(ss):
                rr = pr * ss + a
                r = (row0 * ss + rr) / ss + (0.5 / ss - 0.5)
                for b in range(ss):
                    cc = pc * ss + b
                    c = cc / ss + (0.5 / ss - 0.5)
                    ut = _lerp_lattice(lat_u_top, step, r0, c0, r, c)
                    vt = _lerp_lattice(lat_v_top, step, r0, c0, r, c)
                    ub = _lerp_lattice(lat_u_bot, step, r0, c0, r, c)
                    vb = _lerp_lattice(lat_v_bot, step, r0, c0, r, c)
                    code, i, j, s, face = first_hit(dsm, bmax, k_block, ut, vt, z_top, ub, vb, z_bot, wall_min)
                    if (code == TOP or code == STEP) and 0 <= i < ny and 0 <= j < nx:
                        out_cell[rr, cc] = i * nx + j
                    else:
                        out_cell[rr, cc] = -1
                    if shade:
                        shade_ray(code, i, j, s, face, ut, vt, ub, vb, z_top, z_bot, dsm, bmax, k_block, terrain,
                                  albedo, side, kind, normals, cell, sun, sky, sun_on, shadows, shadow_tol, zmax,
                                  outside, glass, floor_h, roof_kind, acc)
            if shade:
                for k in range(4):
                    out_rad[k, pr, pc] = acc[k] * inv


@njit(**_NB)
def count_cells(out_cell, counts):
    """counts.flat[c] += 1 for every ray cell index c >= 0 (serial: no lost updates)."""
    flat = counts.reshape(-1)
    for a in range(out_cell.shape[0]):
        for b in range(out_cell.shape[1]):
            c = out_cell[a, b]
            if c >= 0:
                flat[c] += 1
