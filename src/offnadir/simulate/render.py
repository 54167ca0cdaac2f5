"""Ray-tracing kernels of the simulator (numpy and numba only).

Geometry: the DSM is read as **box geometry** — cell (i, j) is a flat-topped prism at height
``dsm[i, j]``; neighbouring prisms of different heights are joined by vertical walls. Outside the
grid the border cells are continued (clamped indices), so rays that start outside still meet a
surface. Coordinates are grid units ``u`` (columns, east) and ``v`` (rows, south), with the cell
(i, j) covering ``j <= u < j+1``, ``i <= v < i+1``, and ``z`` in metres.

A line of sight is given by where it crosses two heights ``z_top`` (above every surface) and
``z_bot`` (below every surface); between them it is straight in (u, v, z). Instead of marching
in fixed steps and bisecting, the kernels walk the exact sequence of cells the ray passes over
(Amanatides & Woo's grid traversal) and intersect each prism exactly:

* the ray enters a cell below its top -> it hit the **wall** on the entry face; a wall rising at
  least ``wall_min`` metres above the previous cell is a **façade** (it has no DSM cell), a lower
  step (terrain, the stairs of a pitched roof in box geometry) counts as the cell's top;
* the ray leaves a cell below its top -> it hit the **top** of that cell.

Hit codes: 0 none (cannot happen when z_bot is below the surface), 1 top, 2 low step (counted as
the top of the cell), 3 façade.

The walk of one line of sight is :func:`offnadir.simulate.perray.trace` (every cell) and
:func:`offnadir.simulate.bounded.first_hit` (skipping blocks the ray passes above, same hits);
this module holds what both renderers share: the shading of one ray (:func:`shade_ray`), the sun
walk, per-cell shadows, normals and the per-centre occlusion.

Shadows trace from the hit point towards the sun the same way; a cell blocks the sun when the
ray enters it more than ``shadow_tol`` metres below its top (the tolerance keeps the box stairs
of pitched roofs and sloping ground from shadowing themselves; it shortens real cast shadows by
``shadow_tol / tan(sun elevation)`` metres).

Kernels take per-pixel ray end points from a coarse lattice (``lat_*``, one node every
``step`` pixels, first node at pixel ``(r0, c0)``) and interpolate them bilinearly for each of the
``ss × ss`` sub-pixel rays; the caller computes the lattice with the exact camera and bounds the
interpolation error.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from offnadir.simulate.bounded import FACADE, NONE, STEP, TOP, _h, blocked  # noqa: F401

_NB = dict(cache=True, nogil=True, error_model="numpy")


@njit(inline="always", **_NB)
def dda_start(p0, d, n):
    """Amanatides & Woo's start along one axis of a ray ``p0 + t d`` in cell ``n``: step sign,
    ray parameter of the first cell-edge crossing, ray parameter per cell (shared by the per-cell
    reference walks :func:`sun_blocked` and :func:`offnadir.simulate.perray.trace`)."""
    if d > 0:
        return 1, (n + 1 - p0) / d, 1.0 / d
    if d < 0:
        return -1, (n - p0) / d, -1.0 / d
    return 0, np.inf, np.inf


@njit(**_NB)
def sun_blocked(dsm, u, v, z, su, sv, sz, cell, zmax, tol):
    """True when the ray from (u, v, z) towards the sun (unit vector (su, sv, sz) in metres, east,
    south, up) meets a cell more than ``tol`` above the ray before climbing over ``zmax``.
    The start cell (the one the ray leaves) is not tested."""
    if sz <= 0.0:
        return True
    if z >= zmax:
        return False
    du = su / cell
    dv = sv / cell
    t_end = (zmax - z) / sz
    eps = 1e-7
    j = int(math.floor(u + (eps if du > 0 else (-eps if du < 0 else 0.0))))
    i = int(math.floor(v + (eps if dv > 0 else (-eps if dv < 0 else 0.0))))
    sj, tmu, tdu = dda_start(u, du, j)
    si, tmv, tdv = dda_start(v, dv, i)
    while True:
        if tmu < tmv:
            t = tmu
            j += sj
            tmu += tdu
        else:
            t = tmv
            i += si
            tmv += tdv
        if t > t_end:
            return False
        if z + sz * t < _h(dsm, i, j) - tol:
            return True


@njit(inline="always", **_NB)
def _lerp_lattice(lat, step, r0, c0, r, c):
    fr = (r - r0) / step
    fc = (c - c0) / step
    nr, nc = lat.shape
    a = int(math.floor(fr))
    b = int(math.floor(fc))
    if a < 0:
        a = 0
    elif a > nr - 2:
        a = nr - 2
    if b < 0:
        b = 0
    elif b > nc - 2:
        b = nc - 2
    wr = fr - a
    wc = fc - b
    return ((1 - wr) * ((1 - wc) * lat[a, b] + wc * lat[a, b + 1])
            + wr * ((1 - wc) * lat[a + 1, b] + wc * lat[a + 1, b + 1]))


@njit(inline="always", **_NB)
def _hash01(i, j, k):
    h = (i * 73856093) ^ (j * 19349663) ^ (k * 83492791)
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return (h & 0xFFFF) / 65535.0


@njit(**_NB)
def shade_ray(c, i, j, s, f, ut, vt, ub, vb, z_top, z_bot, dsm, bmax, k_block, terrain, albedo, side, kind,
              normals, cell, sun, sky, sun_on, shadows, shadow_tol, zmax, outside, glass, floor_h, roof_kind,
              acc):
    """Add the radiance (4 bands) of one traced ray to ``acc``: hit code ``c``, cell (i, j), ray
    parameter ``s``, wall face ``f``, ray end points (ut, vt) at ``z_top`` and (ub, vb) at ``z_bot``.
    ``k_block`` > 0: sun rays skip blocks by ``bmax`` (:func:`offnadir.simulate.bounded.blocked`);
    0: plain walk (:func:`sun_blocked`). See :func:`shade_image` for the other arguments."""
    ny, nx = dsm.shape
    u = ut + (ub - ut) * s
    v = vt + (vb - vt) * s
    z = z_top + (z_bot - z_top) * s
    inside = 0 <= i < ny and 0 <= j < nx
    ic = min(max(i, 0), ny - 1)
    jc = min(max(j, 0), nx - 1)
    if c == FACADE:
        n0, n1, n2 = 0.0, 0.0, 0.0
        if f == 0:
            n0 = -1.0
        elif f == 1:
            n0 = 1.0
        elif f == 2:
            n1 = -1.0
        else:
            n1 = 1.0
        sky_f = 0.5
        window = False
        if inside and kind[ic, jc] == roof_kind:
            along = (v if f < 2 else u) * cell
            hz = (z - terrain[ic, jc]) / floor_h
            fz = hz - math.floor(hz)
            fa = along / 2.4 - math.floor(along / 2.4)
            window = hz > 0.6 and 0.3 < fz < 0.78 and 0.22 < fa < 0.78 and z < dsm[ic, jc] - 0.9
        z_sh = z
    else:
        n0 = normals[0, ic, jc]
        n1 = normals[1, ic, jc]
        n2 = normals[2, ic, jc]
        sky_f = 1.0
        window = False
        z_sh = dsm[ic, jc] if c == STEP else z
    cosi = n0 * sun[0] + n1 * sun[1] + n2 * sun[2]
    direct = 0.0
    if sun_on and cosi > 0.0:
        lit = True
        if shadows:
            if k_block > 0:
                lit = not blocked(dsm, bmax, k_block, u, v, z_sh + 0.02, sun[0], sun[1], sun[2], cell, zmax,
                                  shadow_tol)
            else:
                lit = not sun_blocked(dsm, u, v, z_sh + 0.02, sun[0], sun[1], sun[2], cell, zmax, shadow_tol)
        if lit:
            direct = cosi
    for k in range(4):
        if not inside:
            rho = outside[k] * (0.85 + 0.3 * _hash01(i, j, 7))
        elif c == FACADE:
            rho = glass[k] if window else side[k, ic, jc]
        else:
            rho = albedo[k, ic, jc]
        acc[k] += rho * (sky[k] * sky_f + direct)


@njit(parallel=True, **_NB)
def cell_shadows(dsm, bmax, k_block, sun, cell, zmax, tol, out):
    """out[i, j] = 1 where the centre of cell (i, j)'s top does not see the sun (blocks of
    ``k_block`` cells skipped by their maxima ``bmax``, :func:`offnadir.simulate.bounded.blocked`)."""
    ny, nx = dsm.shape
    for i in prange(ny):
        for j in range(nx):
            out[i, j] = 1 if blocked(dsm, bmax, k_block, j + 0.5, i + 0.5, dsm[i, j] + 0.02, sun[0], sun[1],
                                     sun[2], cell, zmax, tol) else 0


@njit(**_NB)
def surface_normals(dsm, cell, max_step, out):
    """Unit normals (east, south, up) of the box tops from the DSM gradient, ignoring neighbours
    that differ by ``max_step`` metres or more (walls): central differences where both neighbours
    are on the same surface, one-sided where one is, flat where none is."""
    ny, nx = dsm.shape
    for i in range(ny):
        for j in range(nx):
            h = dsm[i, j]
            ga = 0.0
            okl = j > 0 and abs(dsm[i, j - 1] - h) < max_step
            okr = j < nx - 1 and abs(dsm[i, j + 1] - h) < max_step
            if okl and okr:
                ga = (dsm[i, j + 1] - dsm[i, j - 1]) / (2 * cell)
            elif okl:
                ga = (h - dsm[i, j - 1]) / cell
            elif okr:
                ga = (dsm[i, j + 1] - h) / cell
            gb = 0.0
            oku = i > 0 and abs(dsm[i - 1, j] - h) < max_step
            okd = i < ny - 1 and abs(dsm[i + 1, j] - h) < max_step
            if oku and okd:
                gb = (dsm[i + 1, j] - dsm[i - 1, j]) / (2 * cell)
            elif oku:
                gb = (h - dsm[i - 1, j]) / cell
            elif okd:
                gb = (dsm[i + 1, j] - h) / cell
            nrm = math.sqrt(ga * ga + gb * gb + 1.0)
            out[0, i, j] = -ga / nrm
            out[1, i, j] = -gb / nrm
            out[2, i, j] = 1.0 / nrm


@njit(parallel=True, **_NB)
def centre_los_blocked(dsm, bmax, k_block, row0, dirs, cell, zmax, out):
    """out[r, j] = 1 where the straight line from the centre of cell (row0 + r, j)'s top towards the
    sensor (unit vectors ``dirs`` (3, rows, W) in east, south, up) passes below another cell's top."""
    n_rows = out.shape[0]
    nx = dsm.shape[1]
    for r in prange(n_rows):
        i = row0 + r
        for j in range(nx):
            out[r, j] = 1 if blocked(dsm, bmax, k_block, j + 0.5, i + 0.5, dsm[i, j] + 1e-6, dirs[0, r, j],
                                     dirs[1, r, j], dirs[2, r, j], cell, zmax, 0.0) else 0
