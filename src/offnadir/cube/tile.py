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


def lonlat_block(plan, i0, i1, j0, j1):
    """lon, lat of fine cells rows i0..i1-1, cols j0..j1-1 (lattice-interpolated; the same values
    whatever block they are computed in)."""
    dsm = plan.dsm
    step = plan.lattice_step
    ni, nj = geometry.lattice_nodes(i0, i1, j0, j1, step)
    return _lattice(lambda I, J: geometry.cell_lonlat(dsm, I, J), ni, nj, step, i0, j0, (i1 - i0, j1 - j0))


def height_block(plan, i0, i1, j0, j1):
    """Ellipsoidal heights of fine cells rows i0..i1-1, cols j0..j1-1 (NaN for nodata): the stored
    heights plus the lattice-interpolated geoid undulation when the DSM is above a geoid."""
    dsm = plan.dsm
    h = dsm.read_block(i0, i1, j0, j1)
    if dsm.geoid is not None:
        step = plan.lattice_step
        ni, nj = geometry.lattice_nodes(i0, i1, j0, j1, step)

        def undulation(I, J):
            return (dsm.geoid.undulation(*geometry.cell_lonlat(dsm, I, J)),)

        h = h + _lattice(undulation, ni, nj, step, i0, j0, h.shape)[0]
    return h


def ground_block(plan, i0, i1, j0, j1):
    """lon, lat, ellipsoidal h of fine cells rows i0..i1-1, cols j0..j1-1 (h NaN for nodata)."""
    lon, lat = lonlat_block(plan, i0, i1, j0, j1)
    return lon, lat, height_block(plan, i0, i1, j0, j1)


def compute_tile(plan, tile, *, values: bool = True, ground: bool = False) -> dict:
    """All cube fields of one tile (numpy arrays, see :data:`FIELDS`). ``values=False``: geometry
    only (no ``value``, no image read: the tie-point blocks sample the images themselves);
    ``ground=True``: also the cells' ``lon``, ``lat`` (float64, as :func:`lonlat_block`)."""
    H = plan.halo
    i0, i1, j0, j1 = tile.i0, tile.i1, tile.j0, tile.j1
    ny, nx = i1 - i0, j1 - j0
    n_img = len(plan.images)
    # row, col and value are written below wherever they are not NaN (filled there, not up front)
    out = {
        "row": np.empty((n_img, ny, nx), np.float32),
        "col": np.empty((n_img, ny, nx), np.float32),
        "visible": np.full((n_img, ny, nx), OUTSIDE, np.uint8),
    }
    if values:
        out["value"] = np.empty((n_img, plan.n_bands, ny, nx), np.float32)
    # the block with halo carries heights for occlusion; ground lon/lat are needed on the core only
    # (lattice values do not depend on the block they are computed in)
    hb = height_block(plan, i0 - H, i1 + H, j0 - H, j1 + H)
    h = np.ascontiguousarray(hb[H:H + ny, H:H + nx])
    out["dsm"] = h.astype(np.float32)
    if not np.isfinite(h).any():
        for name in ("row", "col", "value"):
            if name in out:
                out[name].fill(np.nan)
        if ground:
            out["lon"], out["lat"] = lonlat_block(plan, i0, i1, j0, j1)
        return out
    lon, lat = lonlat_block(plan, i0, i1, j0, j1)
    if ground:
        out["lon"], out["lat"] = lon, lat
    h_block_max = float(np.nanmax(hb))
    step = plan.lattice_step
    ni, nj = geometry.lattice_nodes(i0, i1, j0, j1, step)
    r = np.empty((ny, nx))
    c = np.empty((ny, nx))
    for k, im in enumerate(plan.images):
        norm, coefs, aff = im.camera.kernel_params()
        # r, c are NaN wherever h is (NaN propagates through the RFM), so no masking is needed
        camk.project_serial(lon.ravel(), lat.ravel(), h.ravel(), norm, coefs, aff, r.ravel(), c.ravel())
        nr, nc = im.shape
        n_in, r_min, r_max, c_min, c_max = cubek.image_extent(r, c, nr, nc)
        out["row"][k] = r
        out["col"][k] = c
        if n_in == 0:
            if values:
                out["value"][k].fill(np.nan)
            continue

        def los_nodes(I, J, cam=im.camera):
            lon_n, lat_n = geometry.cell_lonlat(plan.dsm, I, J)
            return geometry.los_on_grid(cam, plan.dsm, I, J, lon_n, lat_n, plan.z_ref)

        los_di, los_dj = _lattice(los_nodes, ni, nj, step, i0, j0, (ny, nx))
        vis = out["visible"][k]
        cubek.visibility_los(hb, los_di, los_dj, H, H, ny, nx, h_block_max, plan.z_tol, float(H), vis)
        cubek.mark_outside(r, c, nr, nc, OUTSIDE, vis)
        if not values:
            continue
        # read only the window the inside cells land in (+1 px for bilinear neighbours)
        r0 = max(int(np.floor(r_min)) - 1, 0)
        r1 = min(int(np.floor(r_max)) + 3, nr)
        c0 = max(int(np.floor(c_min)) - 1, 0)
        c1 = min(int(np.floor(c_max)) + 3, nc)
        window = im.read_window(r0, r1, c0, c1)
        # cells outside the image fall outside the window too: the kernel gives them NaN
        nb = window.shape[0]
        cubek.sample_bilinear(window, r, c, float(r0), float(c0), im.nodata_value, out["value"][k, :nb])
        out["value"][k, nb:].fill(np.nan)   # bands this image lacks
    return out


def block_stats(dsm, i0, i1, j0, j1) -> tuple[float, float, int]:
    """(min, max, count) of valid stored heights in a DSM block."""
    h = dsm.read_block(i0, i1, j0, j1)  # invalid cells are NaN (never +-inf: outside the valid range)
    n = int(np.count_nonzero(~np.isnan(h)))
    if n == 0:
        return float("inf"), float("-inf"), 0
    return float(np.fmin.reduce(h, axis=None)), float(np.fmax.reduce(h, axis=None)), n  # NaN-skipping, no copy


def combine_stats(*parts) -> tuple[float, float, int]:
    return (min(p[0] for p in parts), max(p[1] for p in parts), sum(p[2] for p in parts))
