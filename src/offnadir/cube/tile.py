"""One tile of the co-registered cube, in numpy: what a dask task runs.

For the DSM tile plus its halo: ground lon/lat (pyproj on a coarse lattice, interpolated),
ellipsoidal heights (geoid applied if needed), then for every image: projection of the core cells,
line-of-sight field, visibility, the image window the cells land in (read only that), and bilinear
samples of every band. The results depend on each cell alone, never on where the tile is.
"""

from __future__ import annotations

import numpy as np

from offnadir.camera import kernels as camk
from offnadir.cube import geometry
from offnadir.cube import kernels as cubek

#: fields of a tile result and their dtypes (dims: row/col/visible (image, y, x); value (image, band, y, x))
FIELDS = {"row": np.float32, "col": np.float32, "visible": np.uint8, "value": np.float32, "dsm": np.float32}
VISIBLE, HIDDEN, OUTSIDE = 1, 0, 2


def _lattice(fn_nodes, ni, nj, step, i0, j0, shape):
    """Evaluate fn on lattice nodes, interpolate to the fine block starting at (i0, j0)."""
    I, J = np.meshgrid(ni, nj, indexing="ij")
    vals = fn_nodes(I, J)
    outs = []
    for v in vals:
        out = np.empty(shape, dtype=np.float64)
        cubek.interp_lattice(np.ascontiguousarray(v, dtype=np.float64), step, int(ni[0]), int(nj[0]), i0, j0, out)
        outs.append(out)
    return outs


def ground_block(plan, i0, i1, j0, j1):
    """lon, lat, ellipsoidal h of fine cells rows i0..i1-1, cols j0..j1-1 (h NaN for nodata)."""
    dsm = plan.dsm
    step = plan.lattice_step
    ni, nj = geometry.lattice_nodes(i0, i1, j0, j1, step)
    shape = (i1 - i0, j1 - j0)

    def nodes(I, J):
        lon, lat = geometry.cell_lonlat(dsm, I, J)
        if dsm.geoid is not None:
            return lon, lat, dsm.geoid.undulation(lon, lat)
        return lon, lat

    vals = _lattice(nodes, ni, nj, step, i0, j0, shape)
    h = dsm.read_block(i0, i1, j0, j1)
    if dsm.geoid is not None:
        h = h + vals[2]
    return vals[0], vals[1], h


def compute_tile(plan, tile) -> dict:
    """All cube fields of one tile (numpy arrays, see :data:`FIELDS`)."""
    H = plan.halo
    i0, i1, j0, j1 = tile.i0, tile.i1, tile.j0, tile.j1
    ny, nx = i1 - i0, j1 - j0
    n_img = len(plan.images)
    out = {
        "row": np.full((n_img, ny, nx), np.nan, np.float32),
        "col": np.full((n_img, ny, nx), np.nan, np.float32),
        "visible": np.full((n_img, ny, nx), OUTSIDE, np.uint8),
        "value": np.full((n_img, plan.n_bands, ny, nx), np.nan, np.float32),
    }
    # the block with halo carries heights for occlusion; lattice values do not depend on the block
    lon_b, lat_b, hb = ground_block(plan, i0 - H, i1 + H, j0 - H, j1 + H)
    core = (slice(H, H + ny), slice(H, H + nx))
    lon = np.ascontiguousarray(lon_b[core])
    lat = np.ascontiguousarray(lat_b[core])
    h = np.ascontiguousarray(hb[core])
    out["dsm"] = h.astype(np.float32)
    if not np.isfinite(h).any():
        return out
    h_block_max = float(np.nanmax(hb))
    step = plan.lattice_step
    ni, nj = geometry.lattice_nodes(i0, i1, j0, j1, step)
    for k, im in enumerate(plan.images):
        norm, coefs, aff = im.camera.kernel_params()
        r = np.empty(ny * nx)
        c = np.empty(ny * nx)
        camk.project_serial(lon.ravel(), lat.ravel(), h.ravel(), norm, coefs, aff, r, c)
        r = r.reshape(ny, nx)
        c = c.reshape(ny, nx)
        nr, nc = im.shape
        inside = np.isfinite(h) & (r >= -0.5) & (r <= nr - 0.5) & (c >= -0.5) & (c <= nc - 0.5)
        out["row"][k] = np.where(np.isfinite(h), r, np.nan)
        out["col"][k] = np.where(np.isfinite(h), c, np.nan)
        if not inside.any():
            continue

        def los_nodes(I, J, cam=im.camera):
            lon_n, lat_n = geometry.cell_lonlat(plan.dsm, I, J)
            return geometry.los_on_grid(cam, plan.dsm, I, J, lon_n, lat_n, plan.z_ref)

        los_di, los_dj = _lattice(los_nodes, ni, nj, step, i0, j0, (ny, nx))
        vis = np.empty((ny, nx), np.uint8)
        cubek.visibility_los(hb, los_di, los_dj, H, H, ny, nx, h_block_max, plan.z_tol, float(H), vis)
        vis[~inside] = OUTSIDE
        out["visible"][k] = vis
        # read only the window the inside cells land in (+1 px for bilinear neighbours)
        r0 = max(int(np.floor(r[inside].min())) - 1, 0)
        r1 = min(int(np.floor(r[inside].max())) + 3, nr)
        c0 = max(int(np.floor(c[inside].min())) - 1, 0)
        c1 = min(int(np.floor(c[inside].max())) + 3, nc)
        window = im.read_window(r0, r1, c0, c1)
        vals = np.full((window.shape[0], ny, nx), np.nan, np.float32)
        rr = np.where(inside, r, np.nan)
        cc = np.where(inside, c, np.nan)
        cubek.sample_bilinear(window, rr, cc, float(r0), float(c0), im.nodata_value, vals)
        out["value"][k, :window.shape[0]] = vals
    return out


def block_stats(dsm, i0, i1, j0, j1) -> tuple[float, float, int]:
    """(min, max, count) of valid stored heights in a DSM block."""
    h = dsm.read_block(i0, i1, j0, j1)
    ok = np.isfinite(h)
    n = int(ok.sum())
    if n == 0:
        return float("inf"), float("-inf"), 0
    return float(h[ok].min()), float(h[ok].max()), n


def combine_stats(*parts) -> tuple[float, float, int]:
    return (min(p[0] for p in parts), max(p[1] for p in parts), sum(p[2] for p in parts))
