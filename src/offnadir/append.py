"""Append new dates to a finished ``detect`` store (``offnadir append``).

The store's recorded config gives the DSM, the base and every option. Each new image is added at
the end of the ``image`` dimension (chunk 1 along ``image``: resizing the arrays and writing the
new index touches no earlier chunk); only its cube tiles, its illumination and its change against
the base are computed, tile by tile, under the output lock, resumable (``resume=True`` after a
kill: tiles already written are skipped). Then the per-cell history
(:mod:`offnadir.change.history`) is recomputed from all dates.

An append equals a one-shot ``detect`` over all dates because every per-run choice of the change
stage is per target image (statistics, IR-MAD, scales, calibration, noise, NDVI thresholds) or
depends on the base and the DSM alone (segmentation, height range, parallax range). The
exceptions are checked and said (log and the store's ``offnadir:appends`` attribute), see
``docs/timeseries.md``: a new image that needs a wider occlusion halo or a longer sun-shadow halo
than the store was made with (a one-shot run would have used it for all images), and an IR-MAD
run that stopped on convergence before its iteration cap. A new image sharing its calendar date
with another image (a stereo mate: tie points and the height sweep join the group) is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
from pathlib import Path

import numpy as np

from offnadir import append_io as A
from offnadir.errors import ConfigError, DataError

log = logging.getLogger("offnadir.append")

APPEND_ATTR = "offnadir:append"  # the append in progress (removed when it completes)
HISTORY_ATTR = "offnadir:appends"  # what every append did
PROGRESS = "append_tiles"


# ----------------------------------------------------------------------------- checks
def check_store(path, *, resume: bool) -> tuple[dict, dict | None]:
    """(root attributes, the interrupted append or None) of a store an append may extend."""
    from offnadir import store as S

    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: no such store. Give the Zarr store a finished `offnadir detect` wrote.")
    attrs = S.root_attrs(p)
    if attrs is None or S.PLAN_ATTR not in attrs or "config" not in attrs:
        raise DataError(f"{path}: not a store written by `offnadir detect` (no recorded plan/config). "
                        "Append adds dates to a detect store; run `offnadir detect` first.")
    if "change_options" not in attrs or not (p / "change").exists():
        raise DataError(f"{path}: this store holds no change maps (made by `coregister`/`run` without change "
                        "detection). Append adds dates to a store written by `offnadir detect`.")
    pending = json.loads(attrs[APPEND_ATTR]) if APPEND_ATTR in attrs else None
    if attrs.get(S.STATUS_ATTR) != S.COMPLETE:
        if pending is None:
            raise DataError(f"{path}: the store is incomplete (an unfinished detect run); finish it with the same "
                            "detect command plus --resume before appending.")
        if not resume:
            raise DataError(f"{path}: an append of {', '.join(pending['paths'])} was interrupted; run the same "
                            "append command with --resume to finish it.")
    elif resume and pending is None:
        log.info("%s: nothing to resume; appending", path)
    return attrs, pending


def _stored_config(attrs) -> dict:
    return json.loads(attrs["config"])


def _check_dsm(path, attrs, cfg, dsm) -> None:
    from offnadir import outputs

    rec = cfg["dsm"]["path"]
    if dsm is not None and outputs._real(dsm) != outputs._real(rec):
        raise ConfigError(f"--dsm {dsm}: the store {path} was made with the DSM {rec}; an append uses the store's "
                          "DSM. Leave out --dsm, or run `offnadir detect` for another DSM.")
    stamps = json.loads(attrs[outputs_plan_attr()]).get("inputs", [])
    now = outputs._file_stamp(rec)
    was = next((s for s in stamps if s.get("path") == now.get("path")), None)
    if now.get("missing") or (was is not None and (was.get("size"), was.get("mtime_ns")) !=
                              (now.get("size"), now.get("mtime_ns"))):
        raise DataError(f"{rec}: the store's DSM is {'missing' if now.get('missing') else 'not the file it was'} "
                        f"(size/modification time differ from {path}'s record). An append must use the same DSM; "
                        "put it back, or run `offnadir detect` again over all images.")


def outputs_plan_attr() -> str:
    from offnadir.store import PLAN_ATTR

    return PLAN_ATTR


def _open(path):
    """The store with its stored codes (``change`` 2 stays 2), whatever its Zarr format."""
    import xarray as xr

    from offnadir.store import _quiet_zarr

    with _quiet_zarr():
        return xr.open_zarr(str(path), consolidated=False, mask_and_scale=False)


def _image_vars(ds) -> list[str]:
    return [k for k in ds.variables if ds[k].dims[:1] == ("image",) and k != "image"]


# ----------------------------------------------------------------------------- public entry
def append_images(path, new_images: list[dict], *, dsm=None, resume: bool = False, client=None,
                  quiet: bool = True) -> dict:
    """Append ``new_images`` (config entries: path, model, gcps, name, date, sun_azimuth,
    sun_elevation) to the detect store at ``path``. Returns a summary (tiles and tasks computed,
    exceptions found). ``client``: a ``distributed.Client`` to run on (None: local threads)."""
    from offnadir import outputs

    attrs, pending = check_store(path, resume=resume)
    cfg = _stored_config(attrs)
    _check_dsm(path, attrs, cfg, dsm)
    from offnadir.config import validate

    raw = {k: v for k, v in cfg.items() if k != "change"}
    old_n = len(cfg["images"])
    if pending is not None:
        new_images = [dict(e) for e in pending["entries"]]
        old_n = pending["n_before"]
        raw["images"] = list(cfg["images"])[:old_n]
    if not new_images:
        raise ConfigError(f"{path}: nothing to append: give at least one new image.")
    known = {str(outputs._real(e["path"])) for e in raw["images"]}
    for e in new_images:
        if str(outputs._real(e["path"])) in known:
            raise ConfigError(f"{e['path']}: this image is in the store already; append only new dates.")
    cfg_all = validate({**raw, "images": list(raw["images"]) + list(new_images)}, base=".", source="append")
    cfg_all["change"] = cfg["change"]
    cfg_all["output"] = cfg["output"]
    lock = outputs.OutputLock(path).acquire()
    try:
        return _append_locked(Path(path), attrs, cfg, cfg_all, old_n, pending, client, quiet)
    finally:
        lock.release()


def _say(quiet, msg):
    log.info(msg)
    if not quiet:
        print(f"offnadir: {msg}", file=sys.stderr)


def _append_locked(path, attrs, cfg, cfg_all, n0, pending, client, quiet) -> dict:
    import dask
    import zarr

    from offnadir import store as S
    from offnadir.change.options import ChangeOptions
    from offnadir.cube import graph, tiepoints
    from offnadir.cube.plan import make_plan
    from offnadir.io.dsm import open_dsm_source
    from offnadir.pipeline import load_images

    new_cfg = cfg_all["images"][n0:]
    k_new = len(new_cfg)
    summary = {"store": str(path), "images": [e["path"] for e in new_cfg], "exceptions": [], "n_before": n0}
    ds = _open(path)
    names_old = [str(v) for v in ds["image"].values][:n0]
    _check_dates(ds, n0, new_cfg, path)

    d = cfg["dsm"]
    dsm = open_dsm_source(d["path"], geoid=d["geoid"], vertical_datum=d["vertical_datum"], band=d["band"])
    srcs = load_images([cfg["images"][0]] + list(new_cfg))
    for im in srcs[1:]:
        if im.name in names_old:
            raise ConfigError(f"{im.path}: its name {im.name!r} is taken by an image of the store; give the new image "
                              "another name (--name).")
    chunk = int(cfg["tiling"]["chunk"])
    sched = {"scheduler": client} if client is not None else {}
    with dask.config.set(**sched):
        stats = dask.compute(graph.dsm_stats(dsm, chunk))[0]
        auto = make_plan(dsm, srcs, stats=stats, chunk=chunk, lattice_step=cfg["tiling"]["lattice_step"],
                         z_tol=cfg["occlusion"]["z_tol"])
        halo = int(attrs.get("halo_cells", auto.halo))
        if auto.halo > halo:
            summary["exceptions"].append(f"the new image needs an occlusion halo of {auto.halo} cells, the store was "
                                         f"made with {halo}: a one-shot run would use {auto.halo} for every image")
            halo = auto.halo
        plan = dataclasses.replace(auto, halo=halo)
        sub_cfg = dict(cfg_all, images=[cfg["images"][0]] + list(new_cfg))
        plan, tie_report = tiepoints.run_for_config(plan, sub_cfg, quiet=quiet)
    plan_new = dataclasses.replace(plan, images=plan.images[1:])
    if pending is None or not pending.get("laid_out"):
        _mark_pending(path, {"paths": summary["images"], "entries": new_cfg, "n_before": n0, "laid_out": False})
        _layout(path, ds, plan, sub_cfg, n0, k_new)
        _mark_pending(path, {"paths": summary["images"], "entries": new_cfg, "n_before": n0, "laid_out": True})
    ds = _open(path)
    image_vars = _image_vars(ds)
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    done = np.asarray(g[PROGRESS][...])
    tiles = plan.tiles()
    todo = [t for t in tiles if not done[t.ti, t.tj] & A.CUBE]
    _say(quiet, f"append: {len(todo)} of {len(tiles)} cube tiles to compute for {k_new} new image(s)")
    _run(client, [dask.delayed(_cube_tile, pure=False)(str(path), plan_new, t, n0) for t in todo], "cube tiles")
    summary["cube_tiles"] = len(todo)
    opts = ChangeOptions.from_config(cfg["change"])
    summary["change_tiles"], summary["illumination_tiles"] = 0, 0
    for j in range(k_new):
        r = _change_one(path, ds, opts, image_vars, n0 + j, client, quiet, summary)
        summary["change_tiles"] += r["maps"]
        summary["illumination_tiles"] += r["light"]
    _finish(path, cfg_all, attrs, tie_report, plan, summary)
    return summary


def _check_dates(ds, n0, new_cfg, path) -> None:
    """Refuse a new image that shares its calendar date with another (a stereo mate)."""
    t = np.asarray(ds["time"].values[:n0], dtype="datetime64[D]")
    seen = {str(v): str(ds["image"].values[k]) for k, v in enumerate(t) if not np.isnat(v)}
    for e in new_cfg:
        day = str(e.get("date"))[:10] if e.get("date") else _file_date(e)
        if day is None:
            continue
        if day in seen:
            raise ConfigError(f"{e['path']}: its date {day} is the date of {seen[day]} in the store: same-date "
                              "images are tied to each other and swept for heights as a group, which an append does "
                              "not recompute. Run `offnadir detect` over all images instead.")
        seen[day] = e["path"]


def _file_date(entry):
    from offnadir.cube.dataset import _acquired
    from offnadir.io.image import calendar_date
    from offnadir.pipeline import load_images

    d = calendar_date(_acquired(load_images([entry])[0]))
    return None if d is None else str(d)[:10]


def _mark_pending(path, rec) -> None:
    import zarr

    from offnadir import store as S

    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        g.attrs.update({APPEND_ATTR: json.dumps(rec, default=str), S.STATUS_ATTR: S.INCOMPLETE})


def _layout(path, ds, plan, sub_cfg, n0, k_new) -> None:
    """Resize every image variable by ``k_new`` (new coordinates written, new data left empty)."""
    import dask.array as da
    import xarray as xr
    import zarr

    from offnadir import store as S
    from offnadir.cube import dataset as cube_ds
    from offnadir.cube import graph

    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    if ds.sizes["image"] != n0:  # laid out before an interruption: undo the resize and lay out again
        for k in _image_vars(ds) + ["image"]:
            a = g[k]
            a.resize((n0,) + a.shape[1:])
    cube = cube_ds.cube_dataset(plan, graph.empty_arrays(plan), config=sub_cfg).isel(image=slice(1, None))
    data, coords = {}, {}
    for k in _image_vars(ds):
        a = g[k]
        if k in ds.coords:
            if k == "date_group":
                vals = int(np.max(ds[k].values[:n0])) + 1 + np.arange(k_new, dtype=ds[k].dtype)
            else:
                vals = cube[k].values
            coords[k] = (ds[k].dims, vals, _attrs(ds[k]))
            continue
        chunks = tuple(a.chunks)
        shape = (k_new,) + tuple(a.shape[1:])
        arr = da.full(shape, a.fill_value if a.fill_value is not None else 0, dtype=a.dtype,
                      chunks=tuple((min(c, s),) * max(1, math.ceil(s / c)) if s else (0,)
                                   for c, s in zip(chunks, shape)))
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
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        if PROGRESS in g:
            del g[PROGRESS]
        arr = _flag_array(g, PROGRESS, plan.grid_shape, "append progress bits: 1 segmented (the base's), "
                          "4 change maps, 8 cube, 16 illumination written")
        arr[...] = np.full(plan.grid_shape, A.SEGMENTED, np.uint8)


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


def _run(client, tasks, desc):
    import dask

    if not tasks:
        return []
    if client is not None:
        from offnadir.cluster import run_tasks

        return run_tasks(client, tasks, desc=desc, quiet=True)
    return list(dask.compute(*tasks))


def _cube_tile(path, plan_new, tile, first) -> tuple[int, int]:
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


def _set_bit(g, tile, bit) -> None:
    cur = np.asarray(g[PROGRESS][tile.ti, tile.tj])
    g[PROGRESS][tile.ti, tile.tj] = cur | np.uint8(bit)


# the change stage of one new image, through a two-image view of the store -----------------------
def _stage():
    """The change stage's runner (its module moves as the stage is reorganised)."""
    from offnadir.change import stage

    if hasattr(stage, "_Runner"):
        return stage._Runner, lambda run, done: stage._run_all(run, done, mark=True), stage.PROGRESS, True
    from offnadir.change import runner

    return runner.Runner, lambda run, done: runner.run_all(run, done, mark=True), \
        getattr(runner, "PROGRESS", stage.PROGRESS), False


def _change_one(path, ds, opts, image_vars, index, client, quiet, summary) -> dict:
    import zarr

    from offnadir import store as S
    Runner, run_all, progress, old_api = _stage()
    enc = ds["visible"].encoding.get("chunks") or ds["visible"].data.chunksize
    cy, cx = int(enc[-2]), int(enc[-1])
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    chunks_yx = (tuple(min(cy, ny - k) for k in range(0, ny, cy)), tuple(min(cx, nx - k) for k in range(0, nx, cx)))
    io = A.ImageSubsetIO(path, (0, index), image_vars, {progress: PROGRESS})
    cube = _open(path).isel(image=[0, index])
    run = Runner(io, cube, opts, chunks_yx, client=client, quiet=quiet)
    ctx = run.context()
    light = _illumination(path, run, ctx, ds, index, client, summary, chunks_yx)
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    done = np.asarray(g[PROGRESS][...])
    n_maps = int(sum(1 for t in _tiles(*chunks_yx) if not done[t.ti, t.tj] & A.WRITTEN))
    _say(quiet, f"append: change of {ds['image'].values[index] if index < ds.sizes['image'] else index} against the "
                f"base, {n_maps} of {done.size} tiles to write")
    red = run_all(run, done)
    tab = run.table(red) if old_api else run.table()
    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        if tab is not None:
            ids = np.asarray(g["patch_id"][...]) if "patch_id" in g else None
            if ids is None or not np.array_equal(ids, tab["patch_id"].values):
                raise DataError(f"{path}: the patch IDs of the new run differ from the store's; the store's "
                                "segmentation was changed after detect. Run `offnadir detect` again.")
            for name in tab.data_vars:
                if tab[name].dims == ("image", "patch_id") and name in g:
                    g[name][index] = tab[name].values[1]
        g.attrs.update(A.merge_change_attrs(dict(g.attrs), run.summary_attrs(), index))
    _check_irmad(run, summary, index)
    return {"maps": n_maps, "light": light}


def _illumination(path, run, ctx, ds, index, client, summary, chunks_yx) -> int:
    """Illumination of the new image, with the sun-shadow halo a one-shot run over all images
    would use (the longest of every image's)."""
    import dask
    import zarr

    if not ctx.use_sun:
        if ds.sizes["image"] and json.loads(ds.attrs.get("change_sun_deg", "null") or "null"):
            summary["exceptions"].append("the new image's sun is unknown: a one-shot run would switch shadow "
                                         "handling off for every image")
        return 0
    stored = json.loads(ds.attrs.get("change_sun_deg") or "null") or []
    suns_old = tuple((math.radians(az), math.radians(el)) for el, az in stored)
    halo_old = dataclasses.replace(ctx, n_images=len(suns_old), sun=suns_old).sun_halo() if suns_old else 0
    all_suns = suns_old + (ctx.sun[1],)
    full = dataclasses.replace(ctx, n_images=len(all_suns), sun=all_suns)
    sh = full.sun_halo()
    if suns_old and sh > halo_old:
        summary["exceptions"].append(f"the new image's sun is lower than every earlier one: a one-shot run would "
                                     f"segment the base with a {sh}-cell halo instead of {halo_old}")
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    done = np.asarray(g[PROGRESS][...])
    todo = [t for t in _tiles(*chunks_yx) if not done[t.ti, t.tj] & A.LIGHT]
    _run(client, [dask.delayed(_light_tile, pure=False)(str(path), full.shape, full.cell, ctx.sun[1],
                                                        float(run.opts.sun_tolerance), sh, t, index) for t in todo],
         "illumination")
    return len(todo)


def _light_tile(path, shape, cell, sun, tol, sh, tile, index):
    import zarr

    from offnadir.change import kernels as K
    from offnadir.change.tileio import Window
    from offnadir.store import _quiet_zarr

    sw = Window.around(tile, sh, shape)
    with _quiet_zarr():
        g = zarr.open_group(path, mode="r+", use_consolidated=False)
        hs = np.ascontiguousarray(np.asarray(g["dsm"][sw.yx]).astype(np.float64))
        buf = np.empty(hs.shape, np.uint8)
        K.illumination(hs, cell, sun[0], sun[1], tol, 1.0, float(sh), buf)
        a0, a1, b0, b1 = sw.core
        g["illumination"][(index, slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))] = buf[a0:a1, b0:b1]
        _set_bit(g, tile, A.LIGHT)
    return tile.ti, tile.tj


def _tiles(chunks_y, chunks_x):
    from offnadir.cube.plan import Tile

    cy, cx = np.r_[0, np.cumsum(chunks_y)], np.r_[0, np.cumsum(chunks_x)]
    return [Tile(a, b, int(cy[a]), int(cy[a + 1]), int(cx[b]), int(cx[b + 1]))
            for a in range(len(chunks_y)) for b in range(len(chunks_x))]


def _check_irmad(run, summary, index) -> None:
    models = getattr(run, "models", None) or {}
    cap = int(getattr(run.opts, "irmad_iterations", 0) or 0)
    for m in (models.get(1) or []):
        if m is not None and getattr(m, "converged", False) and getattr(m, "iterations", cap) < cap:
            summary["exceptions"].append(f"IR-MAD of image {index} converged after {m.iterations} of {cap} "
                                         "iterations: a one-shot run iterates until every target converges")
            return


def _finish(path, cfg_all, attrs, tie_report, plan, summary) -> None:
    import zarr

    from offnadir import outputs
    from offnadir import store as S
    from offnadir.change.history import write_history

    write_history(path)
    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        images = json.loads(g.attrs.get("images", "[]"))
        images += [{"name": im.name, "path": im.path, "model_format": im.camera.model_format,
                    "bias": list(im.camera.bias), "date": getattr(im, "date", None),
                    "date_source": getattr(im, "date_source", "")} for im in plan.images[1:]]
        ties = json.loads(g.attrs.get("tie_bias", "null") or "null")
        if isinstance(ties, list):
            ties += list(tie_report[1:])
        hist = json.loads(g.attrs.get(HISTORY_ATTR, "[]"))
        hist.append({k: summary[k] for k in ("images", "n_before", "cube_tiles", "change_tiles", "exceptions")})
        fp = outputs.fingerprint(cfg_all)
        new = {"images": json.dumps(images), "config": json.dumps(cfg_all, default=str),
               S.PLAN_ATTR: json.dumps(fp, sort_keys=True), HISTORY_ATTR: json.dumps(hist, default=str)}
        if ties is not None:
            new["tie_bias"] = json.dumps(ties, default=str)
        g.attrs.update(new)
        if APPEND_ATTR in g.attrs:
            del g.attrs[APPEND_ATTR]
        if PROGRESS in g:
            del g[PROGRESS]
    for e in summary["exceptions"]:
        log.warning("append: %s", e)
    S.mark_complete(path)
