"""The plain per-ray renderer: every sub-pixel ray's hit kept in arrays, then shaded (numpy and
numba only).

This is the straightforward form of the simulator's rendering — trace every ray to its first hit
(:func:`trace`, Amanatides & Woo's walk over every cell, see :mod:`offnadir.simulate.render`),
keep code, cell, ray parameter, face and end points per ray (:func:`trace_image`), count the rays
that see each cell's top (:func:`mark_visible`), shade each pixel from its rays
(:func:`shade_image`, through :func:`offnadir.simulate.render.shade_ray` with the plain sun
walk). :func:`offnadir.simulate.views.trace_view`, :func:`~offnadir.simulate.views.shade` and
:func:`~offnadir.simulate.views.visible_counts` use it: the tests inspect single rays' hits with it,
and the blocked renderer :func:`offnadir.simulate.views.render_view` (what :func:`simulate` uses:
no per-ray arrays, rays skipping DSM blocks) is tested to give the same images and counts. It
keeps 50 bytes a ray, so it is for small scenes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from offnadir.simulate.bounded import FACADE, NONE, STEP, TOP, _h
from offnadir.simulate.render import _lerp_lattice, dda_start, shade_ray

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(**_NB)
def trace(dsm, u0, v0, z0, u1, v1, z1, wall_min):
    """First intersection of the segment (u0, v0, z0) -> (u1, v1, z1) (going down) with the box DSM.

    Returns (code, i, j, s, face): hit code, cell, ray parameter in [0, 1] of the hit point, and the
    entry face of a wall hit (0: west face, 1: east face, 2: north face, 3: south face; -1 for tops)."""
    du = u1 - u0
    dv = v1 - v0
    dz = z1 - z0
    j = int(math.floor(u0))
    i = int(math.floor(v0))
    sj, tmu, tdu = dda_start(u0, du, j)
    si, tmv, tdv = dda_start(v0, dv, i)
    s_in = 0.0
    face = -1
    hprev = -np.inf
    while True:
        h = _h(dsm, i, j)
        z_in = z0 + dz * s_in
        if z_in <= h:
            if face < 0 or h - hprev < wall_min:
                return STEP if face >= 0 else TOP, i, j, s_in, face
            return FACADE, i, j, s_in, face
        s_out = min(tmu, tmv, 1.0)
        if z0 + dz * s_out <= h:
            s = (h - z0) / dz
            return TOP, i, j, s, -1
        if s_out >= 1.0:
            return NONE, i, j, 1.0, -1
        hprev = h
        if tmu < tmv:
            j += sj
            s_in = tmu
            tmu += tdu
            face = 0 if sj > 0 else 1
        else:
            i += si
            s_in = tmv
            tmv += tdv
            face = 2 if si > 0 else 3


@njit(parallel=True, **_NB)
def trace_image(lat_u_top, lat_v_top, lat_u_bot, lat_v_bot, step, r0, c0, z_top, z_bot,
                n_rows, n_cols, ss, dsm, wall_min, out_code, out_i, out_j, out_s, out_face, out_ray):
    """Trace ``ss × ss`` rays per pixel of an ``n_rows × n_cols`` image.

    Outputs are per ray, shape (n_rows*ss, n_cols*ss): hit code, cell, ray parameter, face, and
    ``out_ray`` (..., 4) = (u_top, v_top, u_bot, v_bot) of the ray."""
    for rr in prange(n_rows * ss):
        r = rr / ss + (0.5 / ss - 0.5)
        for cc in range(n_cols * ss):
            c = cc / ss + (0.5 / ss - 0.5)
            ut = _lerp_lattice(lat_u_top, step, r0, c0, r, c)
            vt = _lerp_lattice(lat_v_top, step, r0, c0, r, c)
            ub = _lerp_lattice(lat_u_bot, step, r0, c0, r, c)
            vb = _lerp_lattice(lat_v_bot, step, r0, c0, r, c)
            code, i, j, s, face = trace(dsm, ut, vt, z_top, ub, vb, z_bot, wall_min)
            out_code[rr, cc] = code
            out_i[rr, cc] = i
            out_j[rr, cc] = j
            out_s[rr, cc] = s
            out_face[rr, cc] = face
            out_ray[rr, cc, 0] = ut
            out_ray[rr, cc, 1] = vt
            out_ray[rr, cc, 2] = ub
            out_ray[rr, cc, 3] = vb


@njit(**_NB)
def mark_visible(code, hit_i, hit_j, shape_y, shape_x, out):
    """out[i, j] += number of rays whose first hit is the top (or a low step) of cell (i, j)."""
    nr, nc = code.shape
    for a in range(nr):
        for b in range(nc):
            if code[a, b] == TOP or code[a, b] == STEP:
                i = hit_i[a, b]
                j = hit_j[a, b]
                if 0 <= i < shape_y and 0 <= j < shape_x:
                    out[i, j] += 1


@njit(parallel=True, **_NB)
def shade_image(code, hit_i, hit_j, hit_s, hit_face, ray, z_top, z_bot, ss,
                dsm, terrain, albedo, side, kind, normals, cell,
                sun, sky, sun_on, shadows, shadow_tol, zmax,
                outside, glass, floor_h, roof_kind, out):
    """Radiance of each pixel (mean of its ss × ss rays) into ``out`` (4, n_rows, n_cols).

    ``albedo``/``side`` (4, H, W): reflectance of tops and of walls; ``normals`` (3, H, W): unit
    normals of the tops in (east, south, up); ``sun`` (3,): unit vector to the sun (east, south, up);
    ``sky`` (4,): diffuse irradiance per band (direct sun irradiance is 1). Walls of ``roof_kind``
    cells are façades with a window grid (``glass`` reflectance, ``floor_h`` metres per floor)."""
    n_rows = out.shape[1]
    n_cols = out.shape[2]
    inv = 1.0 / (ss * ss)
    no_blocks = np.zeros((1, 1))
    for pr in prange(n_rows):
        acc = np.zeros(4)
        for pc in range(n_cols):
            acc[:] = 0.0
            for a in range(ss):
                rr = pr * ss + a
                for b in range(ss):
                    cc = pc * ss + b
                    shade_ray(code[rr, cc], hit_i[rr, cc], hit_j[rr, cc], hit_s[rr, cc], hit_face[rr, cc],
                              ray[rr, cc, 0], ray[rr, cc, 1], ray[rr, cc, 2], ray[rr, cc, 3], z_top, z_bot,
                              dsm, no_blocks, 0, terrain, albedo, side, kind, normals, cell, sun, sky, sun_on,
                              shadows, shadow_tol, zmax, outside, glass, floor_h, roof_kind, acc)
            for k in range(4):
                out[k, pr, pc] = acc[k] * inv
