"""Rendering one view: lines of sight from the physical camera, traced through the box DSM.

The lines of sight come from :meth:`PushbroomCamera.localize` (the camera's exact inverse) at two
heights, on a lattice of pixel positions every ``step`` pixels; the kernels interpolate them
bilinearly for every sub-pixel ray. :func:`lattice_error` measures what that interpolation costs
(micrometres for a 600 km camera: the pixel -> ground map at a fixed height is affine to ~1e-9).
No RPC is used here, and nothing projects DSM cells forward: visibility is what the rays hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offnadir.simulate import bounded, render, tiles
from offnadir.simulate.camera_model import PushbroomCamera
from offnadir.simulate.grid import Grid

#: walls at least this high above the previous cell are façades (m)
WALL_MIN = 0.75
#: see render.sun_blocked (m)
SHADOW_TOL = 0.35


@dataclass
class RayLattice:
    u_top: np.ndarray
    v_top: np.ndarray
    u_bot: np.ndarray
    v_bot: np.ndarray
    step: float
    r0: float
    c0: float
    z_top: float
    z_bot: float


@dataclass
class Hits:
    """Per sub-pixel ray: hit code, cell, ray parameter, wall face, end points (u,v top / bottom)."""

    code: np.ndarray
    i: np.ndarray
    j: np.ndarray
    s: np.ndarray
    face: np.ndarray
    ray: np.ndarray
    ss: int
    shape: tuple[int, int]
    lattice: RayLattice


def ray_lattice(camera: PushbroomCamera, grid: Grid, shape, z_top: float, z_bot: float,
                step: int = 8) -> RayLattice:
    nr, nc = shape
    rows = -1.0 + step * np.arange(int(math.ceil((nr + 1) / step)) + 2)
    cols = -1.0 + step * np.arange(int(math.ceil((nc + 1) / step)) + 2)
    R, C = np.meshgrid(rows, cols, indexing="ij")
    out = []
    for z in (z_top, z_bot):
        lon, lat = camera.localize(R, C, np.full(R.shape, z))
        u, v = grid.lonlat_to_uv(lon, lat)
        out += [np.ascontiguousarray(u, dtype=np.float64), np.ascontiguousarray(v, dtype=np.float64)]
    return RayLattice(out[0], out[1], out[2], out[3], float(step), -1.0, -1.0, float(z_top), float(z_bot))


def lattice_error(camera: PushbroomCamera, grid: Grid, lat: RayLattice, n: int = 400, seed: int = 0) -> float:
    """Max distance (grid cells) between interpolated and exact ray end points at random pixels."""
    nr = (lat.u_top.shape[0] - 3) * lat.step
    nc = (lat.u_top.shape[1] - 3) * lat.step
    rng = np.random.default_rng(seed)
    r = rng.uniform(-0.5, nr, n)
    c = rng.uniform(-0.5, nc, n)
    err = 0.0
    for z, lu, lv in ((lat.z_top, lat.u_top, lat.v_top), (lat.z_bot, lat.u_bot, lat.v_bot)):
        lon, la = camera.localize(r, c, np.full(n, z))
        u, v = grid.lonlat_to_uv(lon, la)
        ui = np.array([_lerp(lu, lat, a, b) for a, b in zip(r, c)])
        vi = np.array([_lerp(lv, lat, a, b) for a, b in zip(r, c)])
        err = max(err, float(np.max(np.hypot(ui - u, vi - v))))
    return err


def _lerp(arr, lat, r, c):
    fr, fc = (r - lat.r0) / lat.step, (c - lat.c0) / lat.step
    a = min(max(int(math.floor(fr)), 0), arr.shape[0] - 2)
    b = min(max(int(math.floor(fc)), 0), arr.shape[1] - 2)
    wr, wc = fr - a, fc - b
    return ((1 - wr) * ((1 - wc) * arr[a, b] + wc * arr[a, b + 1])
            + wr * ((1 - wc) * arr[a + 1, b] + wc * arr[a + 1, b + 1]))


def trace_view(camera: PushbroomCamera, grid: Grid, dsm: np.ndarray, shape, *, ss: int = 3,
               z_top: float | None = None, z_bot: float | None = None, lattice: RayLattice | None = None,
               wall_min: float = WALL_MIN) -> Hits:
    """First surface hit of ``ss × ss`` rays per pixel of an image of ``shape`` (rows, cols)."""
    dsm = np.ascontiguousarray(dsm, dtype=np.float64)
    if lattice is None:
        z_top = float(np.max(dsm)) + 1.0 if z_top is None else z_top
        z_bot = float(np.min(dsm)) - 1.0 if z_bot is None else z_bot
        lattice = ray_lattice(camera, grid, shape, z_top, z_bot)
    if not (lattice.z_top > float(np.max(dsm)) and lattice.z_bot < float(np.min(dsm))):
        raise ValueError("ray lattice heights must bracket the DSM")
    nr, nc = int(shape[0]), int(shape[1])
    n = (nr * ss, nc * ss)
    code = np.empty(n, np.int8)
    hi = np.empty(n, np.int32)
    hj = np.empty(n, np.int32)
    s = np.empty(n, np.float64)
    face = np.empty(n, np.int8)
    ray = np.empty(n + (4,), np.float64)
    from offnadir.simulate import perray  # the plain per-ray renderer (small scenes, tests)

    perray.trace_image(lattice.u_top, lattice.v_top, lattice.u_bot, lattice.v_bot, lattice.step,
                       lattice.r0, lattice.c0, lattice.z_top, lattice.z_bot, nr, nc, ss, dsm,
                       float(wall_min), code, hi, hj, s, face, ray)
    return Hits(code, hi, hj, s, face, ray, ss, (nr, nc), lattice)


def visible_counts(hits: Hits, grid_shape) -> np.ndarray:
    """Rays whose first hit is each DSM cell's top (int32 on the grid); 0 = occluded."""
    from offnadir.simulate import perray

    out = np.zeros(grid_shape, np.int32)
    perray.mark_visible(hits.code, hits.i, hits.j, int(grid_shape[0]), int(grid_shape[1]), out)
    return out


def normals(dsm: np.ndarray, cell: float, max_step: float = 1.0) -> np.ndarray:
    out = np.empty((3,) + dsm.shape, np.float64)
    render.surface_normals(np.ascontiguousarray(dsm, dtype=np.float64), float(cell), float(max_step), out)
    return out


GLASS = np.array([0.05, 0.07, 0.08, 0.06])
OUTSIDE = np.array([0.09, 0.11, 0.12, 0.25])


def shade(hits: Hits, *, dsm, terrain, albedo, side, kind, cell: float, sun, sky, sun_on: bool = True,
          shadows: bool = True, shadow_tol: float = SHADOW_TOL, floor_h: float = 3.0, roof_kind: int = 4,
          outside=OUTSIDE, glass=GLASS, nrm=None) -> np.ndarray:
    """Radiance image (4, rows, cols) float32 of traced rays (see perray.shade_image)."""
    dsm = np.ascontiguousarray(dsm, dtype=np.float64)
    nrm = normals(dsm, cell) if nrm is None else nrm
    out = np.empty((albedo.shape[0],) + tuple(hits.shape), np.float64)
    from offnadir.simulate import perray

    perray.shade_image(hits.code, hits.i, hits.j, hits.s, hits.face, hits.ray, hits.lattice.z_top,
                       hits.lattice.z_bot, hits.ss, dsm, np.ascontiguousarray(terrain, dtype=np.float64),
                       np.ascontiguousarray(albedo, dtype=np.float64),
                       np.ascontiguousarray(side, dtype=np.float64), np.ascontiguousarray(kind, dtype=np.uint8),
                       nrm, float(cell), np.asarray(sun, dtype=np.float64), np.asarray(sky, dtype=np.float64),
                       bool(sun_on), bool(shadows), float(shadow_tol), float(np.max(dsm)) + 0.5,
                       np.asarray(outside, dtype=np.float64), np.asarray(glass, dtype=np.float64),
                       float(floor_h), int(roof_kind), out)
    return out.astype(np.float32)


def cast_shadows(dsm: np.ndarray, sun, cell: float, tol: float = SHADOW_TOL, *, bmax=None) -> np.ndarray:
    """1 where the centre of a cell's top does not see the sun (uint8 on the grid)."""
    out = np.empty(dsm.shape, np.uint8)
    dsm = np.ascontiguousarray(dsm, dtype=np.float64)
    bmax = bounded.block_max(dsm) if bmax is None else bmax
    render.cell_shadows(dsm, bmax, bounded.BLOCK, np.asarray(sun, dtype=np.float64), float(cell),
                        float(np.max(dsm)) + 0.5, float(tol), out)
    return out


def centre_hidden(camera: PushbroomCamera, grid: Grid, dsm: np.ndarray, *, bmax=None,
                  rows: int = 256) -> np.ndarray:
    """1 where the line of sight from a cell's top centre to the satellite (at the time that point is
    imaged) is blocked by another cell: the stricter, per-centre occlusion (uint8 on the grid).
    The view directions are computed ``rows`` grid rows at a time (memory ~ 100 bytes a cell of
    the block)."""
    ny, nx = grid.shape
    dsm = np.ascontiguousarray(dsm, dtype=np.float64)
    bmax = bounded.block_max(dsm) if bmax is None else bmax
    zmax = float(dsm.max()) + 0.5
    out = np.empty(grid.shape, np.uint8)
    for i0 in range(0, ny, rows):
        i1 = min(i0 + rows, ny)
        ii, jj = np.mgrid[i0:i1, 0:nx]
        lon, lat = grid.cell_lonlat(ii.ravel(), jj.ravel())
        zen, az = camera.view_angles_at(lon, lat, dsm[i0:i1].ravel())
        a = np.radians(az + grid.north_angle())
        z = np.radians(zen)
        dirs = np.stack([np.sin(z) * np.sin(a), -np.sin(z) * np.cos(a), np.cos(z)]).reshape(3, i1 - i0, nx)
        render.centre_los_blocked(dsm, bmax, bounded.BLOCK, i0, np.ascontiguousarray(dirs), float(grid.cell),
                                  zmax, out[i0:i1])
    return out


#: sub-pixel rays per row block of :func:`render_view` (4 bytes each: 64 MB)
RAYS_PER_BLOCK = 1 << 24


def render_view(lattice: RayLattice, grid: Grid, dsm: np.ndarray, shape, *, ss: int = 3, shading: dict | None = None,
                block_rows: int | None = None, wall_min: float = WALL_MIN):
    """Trace (and, with ``shading``, shade) a view in blocks of image rows; returns
    (radiance float32 (4, rows, cols) or None, visible counts int32 on the grid).

    Same rays, hits and radiance as :func:`trace_view` + :func:`shade` + :func:`visible_counts`,
    without keeping the per-ray hits (see :mod:`offnadir.simulate.tiles`); ``block_rows`` image rows
    at a time (default: :data:`RAYS_PER_BLOCK` rays). ``shading``: the keyword arguments of
    :func:`shade` (``terrain, albedo, side, kind, cell, sun, sky`` and optionally ``sun_on,
    shadows, shadow_tol, floor_h, roof_kind, outside, glass, nrm``)."""
    dsm = np.ascontiguousarray(dsm, dtype=np.float64)
    if not (lattice.z_top > float(np.max(dsm)) and lattice.z_bot < float(np.min(dsm))):
        raise ValueError("ray lattice heights must bracket the DSM")
    bmax = bounded.block_max(dsm)
    nr, nc = int(shape[0]), int(shape[1])
    step = block_rows or max(1, RAYS_PER_BLOCK // (nc * ss * ss))
    counts = np.zeros(grid.shape, np.int32)
    if shading is not None:
        sh = dict(sun_on=True, shadows=True, shadow_tol=SHADOW_TOL, floor_h=3.0, roof_kind=4, outside=OUTSIDE,
                  glass=GLASS, nrm=None)
        sh.update(shading)
        cell = float(sh["cell"])
        args = (np.ascontiguousarray(sh["terrain"], dtype=np.float64), np.ascontiguousarray(sh["albedo"]),
                np.ascontiguousarray(sh["side"]), np.ascontiguousarray(sh["kind"], dtype=np.uint8),
                normals(dsm, cell) if sh["nrm"] is None else sh["nrm"], cell,
                np.asarray(sh["sun"], dtype=np.float64), np.asarray(sh["sky"], dtype=np.float64),
                bool(sh["sun_on"]), bool(sh["shadows"]), float(sh["shadow_tol"]), float(np.max(dsm)) + 0.5,
                np.asarray(sh["outside"], dtype=np.float64), np.asarray(sh["glass"], dtype=np.float64),
                float(sh["floor_h"]), int(sh["roof_kind"]))
        if args[1].dtype != args[2].dtype:
            raise ValueError("albedo and side must have the same dtype")
        rad = np.empty((4, nr, nc), np.float32)
    else:
        z = np.zeros((1, 1, 1), np.float32)
        args = (np.zeros((1, 1)), z, z, np.zeros((1, 1), np.uint8), np.zeros((1, 1, 1)), 1.0, np.zeros(3),
                np.zeros(4), False, False, 0.0, 0.0, np.zeros(4), np.zeros(4), 1.0, 4)
        rad = None
    for row0 in range(0, nr, step):
        n = min(step, nr - row0)
        cells = np.empty((n * ss, nc * ss), np.int32)
        o = np.empty((4, n, nc) if shading is not None else (4, 1, 1), np.float64)
        tiles.render_rows(lattice.u_top, lattice.v_top, lattice.u_bot, lattice.v_bot, lattice.step, lattice.r0,
                          lattice.c0, lattice.z_top, lattice.z_bot, row0, ss, dsm, bmax, bounded.BLOCK,
                          float(wall_min), shading is not None, *args, cells, o)
        tiles.count_cells(cells, counts)
        if rad is not None:
            rad[:, row0:row0 + n] = o
    return rad, counts


def image_frame(camera: PushbroomCamera, grid: Grid, h_min: float, h_max: float, margin: int = 6):
    """Shift the camera so the image covers the grid at every height in [h_min, h_max] with a
    ``margin`` of pixels; returns (camera with shape, (rows, cols))."""
    ny, nx = grid.shape
    t = np.linspace(0, 1, 33)
    u = np.concatenate([t * nx, np.full_like(t, nx), (1 - t) * nx, np.zeros_like(t)])
    v = np.concatenate([np.zeros_like(t), t * ny, np.full_like(t, ny), (1 - t) * ny])
    lon, lat = grid.uv_to_lonlat(u, v)
    rows, cols = [], []
    for h in (h_min, h_max):
        r, c = camera.project(lon, lat, np.full(lon.shape, h))
        rows.append(r)
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    r0 = math.floor(r.min()) - margin
    c0 = math.floor(c.min()) - margin
    shape = (int(math.ceil(r.max())) + margin - r0 + 1, int(math.ceil(c.max())) + margin - c0 + 1)
    return camera.shifted(-r0, -c0, shape), shape
