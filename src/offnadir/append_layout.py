"""Store layout and tile tasks of ``offnadir append`` (:mod:`offnadir.append`): resizing every image
variable for the new dates, and the per-tile tasks that write the new images' cube fields and
illumination. The tasks are module-level functions (picklable) that open the store themselves."""

from __future__ import annotations

import numpy as np

from offnadir import append_io as A

PROGRESS = "append_tiles"


def image_vars(ds) -> list[str]:
    return [k for k in ds.variables if ds[k].dims[:1] == ("image",) and k != "image"]


#: change maps that ``--against-previous`` also writes against the previous date, as ``<name>_prev``
PREV_VARS = ("change", "score", "evidence", "probability", "change_ortho", "score_ortho")


def progress_name(index: int, prev: bool = False) -> str:
    """The progress array of one new image's change maps (against the base, or the previous date)."""
    return f"{PROGRESS}_{index}{'_prev' if prev else ''}"


def _dims(a) -> tuple:
    names = getattr(a.metadata, "dimension_names", None)
    return tuple(names) if names else tuple(a.attrs.get("_ARRAY_DIMENSIONS", ()))


def undo_resize(path, n0: int) -> list[str]:
    """Shrink every ``image`` array back to ``n0`` images (an interrupted layout; zarr only, since
    xarray refuses arrays of different lengths along one dimension). Returns the arrays shrunk."""
    import zarr

    from offnadir import store as S

    out = []
    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        for name in list(g.array_keys()):
            a = g[name]
            if _dims(a)[:1] == ("image",) and a.shape[0] != n0:
                a.resize((n0,) + tuple(a.shape[1:]))
                out.append(name)
    return out


def layout(path, ds, plan, sub_cfg, n0, k_new, against_previous: bool = False) -> None:
    """Resize every image variable by ``k_new`` (new coordinates written, new data left empty) and
    create the append's progress arrays (and the ``*_prev`` maps when first asked for)."""
    import dask.array as da
    import xarray as xr
    import zarr

    from offnadir import store as S
    from offnadir.cube import dataset as cube_ds
    from offnadir.cube import graph

    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    cube = cube_ds.cube_dataset(plan, graph.empty_arrays(plan), config=sub_cfg).isel(image=slice(1, None))
    data, coords = {}, {}
    for k in image_vars(ds):
        a = g[k]
        if k in ds.coords:
            if k == "date_group":  # the template numbers the base's group 0, the new dates' 1, 2, ...
                vals = (int(np.max(ds[k].values[:n0])) + cube[k].values).astype(ds[k].dtype)
            else:
                vals = cube[k].values
            coords[k] = (ds[k].dims, vals, _attrs(ds[k]))
            continue
        chunks = tuple(a.chunks)
        shape = (k_new,) + tuple(a.shape[1:])
        arr = da.full(shape, a.fill_value if a.fill_value is not None else 0, dtype=a.dtype,
                      chunks=tuple(max(1, min(c, s)) for c, s in zip(chunks, shape)))
        data[k] = (ds[k].dims, arr, _attrs(ds[k]))
    coords["image"] = ("image", cube["image"].values)
    tmpl = xr.Dataset(data, coords=coords)
    for k in tmpl.variables:  # keep the stored encodings (xarray checks they agree)
        if k in ds.variables:
            tmpl[k].encoding = {e: v for e, v in ds[k].encoding.items() if e in ("units", "calendar", "dtype")}
    tmpl.attrs = dict(g.attrs)
    with S._quiet_zarr():
        tmpl.to_zarr(str(path), mode="a", append_dim="image", compute=False, consolidated=False,
                     zarr_format=g.metadata.zarr_format)
        if against_previous:
            _prev_vars(path, n0 + k_new)
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        names = [PROGRESS] + [progress_name(n0 + j, p) for j in range(k_new) for p in (False, True)
                              if against_previous or not p]
        for name in names:
            if name in g:
                del g[name]
            arr = _flag_array(g, name, plan.grid_shape, "append progress bits: 1 segmented (the base's), "
                              "4 change maps, 8 cube, 16 illumination written")
            arr[...] = np.full(plan.grid_shape, A.SEGMENTED, np.uint8)


def _prev_vars(path, n_images) -> None:
    """Empty ``<name>_prev`` maps beside ``<name>`` (same dtype, fill, chunks, codecs), if missing."""
    import dask.array as da
    import xarray as xr
    import zarr

    from offnadir import store as S

    with S._quiet_zarr():
        ds = xr.open_zarr(str(path), consolidated=False)
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        data, enc = {}, {}
        for name in PREV_VARS:
            if name not in ds or f"{name}_prev" in g:
                continue
            a, v = g[name], ds[name]
            arr = da.full((n_images,) + tuple(a.shape[1:]), a.fill_value, dtype=a.dtype,
                          chunks=(1,) + tuple(a.chunks[1:]))
            attrs = dict(v.attrs)
            attrs["long_name"] = f"{attrs.get('long_name', name)}, against the previous date (offnadir append " \
                                 "--against-previous; the base's patches)"
            data[f"{name}_prev"] = (v.dims, arr, attrs)
            enc[f"{name}_prev"] = {k: e for k, e in v.encoding.items()
                                   if k in ("chunks", "compressors", "filters", "_FillValue", "dtype")}
            enc[f"{name}_prev"]["chunks"] = (1,) + tuple(a.chunks[1:])
        if data:
            tmpl = xr.Dataset(data)
            tmpl.attrs = dict(g.attrs)
            tmpl.to_zarr(str(path), mode="a", compute=False, consolidated=False,
                         zarr_format=g.metadata.zarr_format, encoding=enc)


def _flag_array(g, name, shape, long_name):
    """A uint8 (tile_y, tile_x) array of one chunk per tile, in the group's Zarr format."""
    dims = ("tile_y", "tile_x")
    kw = dict(shape=tuple(shape), chunks=(1, 1), dtype="uint8", fill_value=0)
    if g.metadata.zarr_format == 2:
        return g.create_array(name, attributes={"long_name": long_name, "_ARRAY_DIMENSIONS": list(dims)}, **kw)
    return g.create_array(name, dimension_names=dims, attributes={"long_name": long_name}, **kw)


def _attrs(var) -> dict:
    """A stored variable's attributes without the encoding keys xarray writes itself."""
    return {k: v for k, v in var.attrs.items() if k not in ("_FillValue", "missing_value", "coordinates")}


def cube_tile(path, plan_new, tile, first) -> tuple[int, int]:
    """One task: the new images' cube fields of one tile, written at image ``first`` on."""
    import zarr

    from offnadir.cube.tile import compute_tile
    from offnadir.store import _quiet_zarr

    res = compute_tile(plan_new, tile)
    region = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    with _quiet_zarr():
        g = zarr.open_group(path, mode="r+", use_consolidated=False)
        for name, arr in res.items():
            if name == "dsm":
                continue
            for j in range(arr.shape[0]):
                g[name][(first + j, Ellipsis) + region] = arr[j]
        _set_bit(g, tile, A.CUBE)
    return tile.ti, tile.tj


def _set_bit(g, tile, bit, name=PROGRESS) -> None:
    cur = np.asarray(g[name][tile.ti, tile.tj])
    g[name][tile.ti, tile.tj] = cur | np.uint8(bit)


def light_tile(path, shape, cell, sun, tol, sh, tile, index, eps=None):
    """One task: the new image's direct-sun map of one tile (as the change stage's segmentation
    pass computes it for every image, with the halo ``sh`` of a run over all images, and its
    shadows widened by ``eps``, :func:`offnadir.change.shadow.widened`)."""
    import zarr

    from offnadir.change import kernels as K
    from offnadir.change import shadow
    from offnadir.change.tileio import Window
    from offnadir.store import _quiet_zarr

    sw = Window.around(tile, sh, shape)
    with _quiet_zarr():
        g = zarr.open_group(path, mode="r+", use_consolidated=False)
        hs = np.ascontiguousarray(np.asarray(g["dsm"][sw.yx]).astype(np.float64))
        buf = np.empty(hs.shape, np.uint8)
        K.illumination(hs, cell, sun[0], sun[1], tol, 1.0, float(sh), buf)
        buf = shadow.widened(hs, buf, cell, sun[0], sun[1], tol, float(sh), eps)
        a0, a1, b0, b1 = sw.core
        g["illumination"][(index, slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))] = buf[a0:a1, b0:b1]
        _set_bit(g, tile, A.LIGHT, progress_name(index))
    return tile.ti, tile.tj


def tiles(chunks_y, chunks_x):
    from offnadir.cube.plan import Tile

    cy, cx = np.r_[0, np.cumsum(chunks_y)], np.r_[0, np.cumsum(chunks_x)]
    return [Tile(a, b, int(cy[a]), int(cy[a + 1]), int(cx[b]), int(cx[b + 1]))
            for a in range(len(chunks_y)) for b in range(len(chunks_x))]


# ----------------------------------------------------------------------------- same-date groups
def new_groups(old_days, new_days) -> list[list[int]]:
    """Global indices of the date groups of >= 2 images made of new images only (``old_days``,
    ``new_days``: calendar dates or None; new image ``j`` is image ``len(old_days) + j``)."""
    n0 = len(old_days)
    by_day: dict = {}
    for j, d in enumerate(new_days):
        if d is not None:
            by_day.setdefault(d, []).append(n0 + j)
    return [m for m in by_day.values() if len(m) >= 2]


def sweep_groups(path, plan_all, groups, *, client, run) -> dict:
    """The height sweep (:mod:`offnadir.cube.sweep_stage`) of the new date groups only: ``dh``,
    ``dh_sigma``, ``dh_score`` of their images (laid out with NaN for every image when the store
    has none yet). ``plan_all``: a plan whose ``images[k]`` is store image ``k`` for every member.
    Returns the groups' part of the ``height_sweep`` attribute."""
    import json

    import dask
    import dask.array as da
    import xarray as xr
    import zarr

    from offnadir import store as S
    from offnadir.cube import sweep
    from offnadir.cube.sweep_stage import SWEEP_VARS, sweep_region

    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        missing = [n for n in SWEEP_VARS if n not in g]
        if missing:
            vis = g["visible"]
            n_img = vis.shape[0]
            cy, cx = vis.chunks[-2], vis.chunks[-1]
            data = {n: (("image", "y", "x"), da.full((n_img,) + vis.shape[1:], np.nan, dtype=np.float32,
                                                     chunks=(1, cy, cx)),
                        {**SWEEP_VARS[n], "grid_mapping": "spatial_ref"}) for n in missing}
            tmpl = xr.Dataset(data)
            tmpl.attrs = dict(g.attrs)
            fmt = g.metadata.zarr_format
            enc = {n: S.encoding(fmt, (1, cy, cx), np.nan) for n in missing}
            tmpl.to_zarr(str(path), mode="a", compute=False, zarr_format=fmt, consolidated=False, encoding=enc)
    relief = float(plan_all.h_max - plan_all.h_min)
    geoms = [sweep.pair_geometry(plan_all, m) for m in groups]
    plan_node = dask.delayed(plan_all, pure=True, traverse=False)
    # the store's own test of the DSM height (config height_sweep.dsm_test of the run that made it)
    with S._quiet_zarr():
        made = json.loads(zarr.open_group(str(path), mode="r", use_consolidated=False).attrs.get("config") or "{}")
    dsm_test = (made.get("height_sweep") or {}).get("dsm_test") or sweep.DSM_TEST
    results = run([dask.delayed(sweep_region, pure=False)(str(path), plan_node, t, geom, relief, dsm_test)
                   for t in plan_all.tiles() for geom in geoms])
    names = [im.name for im in plan_all.images]
    return {"groups": [{"images": [names[k] for k in geom["members"]], "pairs": geom["pairs"],
                        "base_to_height": geom["base_to_height"], "step_m": geom["step_m"]} for geom in geoms],
            "tiles": [{"tile": r["tile"], "images": [names[k] for k in r["members"]], "z_min": r["z0"],
                       "z_max": r["z0"] + (r["n"] - 1) * r["step"] if r["n"] else None, "heights": r["n"],
                       "cells_measured": r["measured"]} for r in results if isinstance(r, dict)]}
