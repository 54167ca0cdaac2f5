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
``docs/timeseries.md``: a new image that needs a wider occlusion halo than the store was made with
(a one-shot run would have used it for all images), or whose sun is unknown (a one-shot run would
switch shadow handling off), or a new date group in a store without ``dh`` (a flag of the earlier
targets' calibration record differs). A new image sharing its calendar date
with an image of the store (a stereo mate: tie points and the height sweep join the group) is
refused; new images of one date (a new stereo pair) are tied and swept as a group, as in ``detect``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path

import numpy as np

from offnadir import append_io as A
from offnadir import append_layout as L
from offnadir.append_checks import APPEND_ATTR, check_dates, check_dsm, check_store, previous_date, stored_config
from offnadir.append_layout import PROGRESS
from offnadir.errors import ConfigError, DataError
from offnadir.logs import say

log = logging.getLogger("offnadir.append")

HISTORY_ATTR = "offnadir:appends"  # what every append did


# ----------------------------------------------------------------------------- checks
def _open(path):
    """The store with its stored codes (``change`` 2 stays 2), whatever its Zarr format."""
    import xarray as xr

    from offnadir.store import _quiet_zarr

    with _quiet_zarr():
        return xr.open_zarr(str(path), consolidated=False, mask_and_scale=False)


# ----------------------------------------------------------------------------- public entry
def prepare(path, new_images: list[dict], *, dsm=None, resume: bool = False) -> dict:
    """Every check an append makes before any work (cheap: metadata and file stamps only); returns
    what the append needs. Raises ConfigError/DataError with the fix."""
    from offnadir import outputs
    from offnadir.config import validate

    attrs, pending = check_store(path, resume=resume)
    cfg = stored_config(attrs)
    check_dsm(path, attrs, cfg, dsm)
    raw = {k: v for k, v in cfg.items() if k != "change"}
    old_n = len(cfg["images"])
    if pending is not None:
        given = [str(outputs._real(e["path"])) for e in new_images]
        if given and given != [str(outputs._real(p)) for p in pending["paths"]]:
            raise ConfigError(f"{path}: the interrupted append was of {', '.join(pending['paths'])}; resume it with "
                              "those images (or none: --resume alone) before appending others.")
        new_images = [dict(e) for e in pending["entries"]]
        old_n = pending["n_before"]
        raw["images"] = list(cfg["images"])[:old_n]
    if not new_images:
        raise ConfigError(f"{path}: nothing to append: give at least one new image (--image NEW.tif or --stac).")
    known = {str(outputs._real(e["path"])) for e in raw["images"]}
    for e in new_images:
        if not Path(e["path"]).exists():
            raise ConfigError(f"{e['path']}: no such image file. Check the path given to --image.")
        if str(outputs._real(e["path"])) in known:
            raise ConfigError(f"{e['path']}: this image is in the store already; append only new dates.")
        known.add(str(outputs._real(e["path"])))
    cfg_all = validate({**raw, "images": list(raw["images"]) + list(new_images)}, base=".", source="append")
    cfg_all["change"] = cfg["change"]
    cfg_all["output"] = cfg["output"]
    if pending is None:  # (a resumed append was checked when it started; its layout may be half done)
        check_dates(_open(path), old_n, cfg_all["images"][old_n:], path)
    return {"attrs": attrs, "pending": pending, "cfg": cfg, "cfg_all": cfg_all, "n_before": old_n}


def append_images(path, new_images: list[dict], *, dsm=None, resume: bool = False, client=None,
                  quiet: bool = True, against_previous: bool = False) -> dict:
    """Append ``new_images`` (config entries: path, model, gcps, name, date, sun_azimuth,
    sun_elevation) to the detect store at ``path``. Returns a summary (tiles computed per kind,
    the exceptions found). ``client``: a ``distributed.Client`` to run on (None: local threads).
    ``resume``: finish an interrupted append (its images are recorded in the store).
    ``against_previous``: also compare each new image with the image of the previous date
    (``change_prev``, ``probability_prev``... on the base's patches)."""
    from offnadir import outputs

    p = prepare(path, new_images, dsm=dsm, resume=resume)
    attrs, pending, cfg, cfg_all, old_n = p["attrs"], p["pending"], p["cfg"], p["cfg_all"], p["n_before"]
    if pending is not None:
        against_previous = bool(pending.get("against_previous", against_previous))
    lock = outputs.OutputLock(path).acquire()
    try:
        return _append_locked(Path(path), attrs, cfg, cfg_all, old_n, pending, client, quiet, against_previous)
    finally:
        lock.release()


def _say(quiet, msg):
    say(log, msg, quiet)


def _append_locked(path, attrs, cfg, cfg_all, n0, pending, client, quiet, against_previous) -> dict:
    import dask
    import zarr

    from offnadir.change.options import ChangeOptions
    from offnadir.cube import graph, tiepoints
    from offnadir.cube.plan import make_plan
    from offnadir.io.dsm import open_dsm_source
    from offnadir.pipeline import load_images

    new_cfg = cfg_all["images"][n0:]
    k_new = len(new_cfg)
    summary = {"store": str(path), "images": [e["path"] for e in new_cfg], "exceptions": [], "n_before": n0}
    if pending is not None and not pending.get("laid_out"):
        shrunk = L.undo_resize(path, n0)  # the layout was interrupted: lay it out again
        if shrunk:
            log.info("append: an interrupted layout is undone (%d arrays back to %d images)", len(shrunk), n0)
    ds = _open(path)
    names_old = [str(v) for v in ds["image"].values][:n0]
    old_days, new_days = check_dates(ds, n0, new_cfg, path)

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
            _note(summary, f"the new image needs an occlusion halo of {auto.halo} cells, the store was made with "
                           f"{halo}: a one-shot run would use {auto.halo} for every image")
            halo = auto.halo
        # the store's own tiles (its chunks), whatever the tile rule of this version picks
        enc = ds["visible"].encoding.get("chunks") or ds["visible"].data.chunksize
        plan = dataclasses.replace(auto, halo=halo, tile=(int(enc[-2]), int(enc[-1])))
        sub_cfg = dict(cfg_all, images=[cfg["images"][0]] + list(new_cfg))
        plan, tie_report = tiepoints.run_for_config(plan, sub_cfg, quiet=quiet)
    plan_new = dataclasses.replace(plan, images=plan.images[1:])
    if pending is None or not pending.get("laid_out"):
        rec = {"paths": summary["images"], "entries": new_cfg, "n_before": n0, "against_previous": against_previous}
        _mark_pending(path, dict(rec, laid_out=False))
        L.layout(path, ds, plan, sub_cfg, n0, k_new, against_previous)
        _mark_pending(path, dict(rec, laid_out=True))
    ds = _open(path)
    image_vars = L.image_vars(ds)
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    done = np.asarray(g[PROGRESS][...])
    tiles = plan.tiles()
    todo = [t for t in tiles if not done[t.ti, t.tj] & A.CUBE]
    _say(quiet, f"append: {len(todo)} of {len(tiles)} cube tiles to compute for {k_new} new image(s)")
    _run(client, [dask.delayed(L.cube_tile, pure=False)(str(path), plan_new, t, n0) for t in todo], "cube tiles")
    summary["cube_tiles"] = len(todo)
    groups = L.new_groups(old_days, new_days)
    if groups:  # a new stereo pair/triplet: its height sweep, before its change (which uses dh)
        _sweep(path, plan, groups, n0, client, quiet, summary, had_dh="dh" in ds)
        ds = _open(path)
        image_vars = L.image_vars(ds)
    opts = ChangeOptions.from_config(cfg["change"])
    summary["change_tiles"], summary["illumination_tiles"], summary["previous_tiles"] = 0, 0, 0
    for j in range(k_new):
        r = _change_one(path, ds, opts, image_vars, n0 + j, client, quiet, summary)
        summary["change_tiles"] += r["maps"]
        summary["illumination_tiles"] += r["light"]
        if against_previous:
            prev = previous_date(ds, n0 + j)
            r = _change_one(path, ds, opts, image_vars, n0 + j, client, quiet, summary, against=prev)
            summary["previous_tiles"] += r["maps"]
    _finish(path, cfg_all, attrs, tie_report, plan, summary)
    return summary


def _note(summary, msg) -> None:
    if msg not in summary["exceptions"]:
        summary["exceptions"].append(msg)


def _sweep(path, plan, groups, n0, client, quiet, summary, had_dh) -> None:
    import zarr

    from offnadir import store as S

    # sweep tasks read the plan's images at the group's store indices only; the earlier slots hold the base
    plan_all = dataclasses.replace(plan, images=(plan.images[0],) * n0 + tuple(plan.images[1:]))
    names = [[plan_all.images[k].name for k in m] for m in groups]
    _say(quiet, f"append: height sweep of the new date group(s) {names}")
    part = L.sweep_groups(path, plan_all, groups, client=client, run=lambda tasks: _run(client, tasks, "sweep"))
    summary["sweep_tiles"] = len(part["tiles"])
    if not had_dh:
        _note(summary, "the store had no dh before: a one-shot run records dh_used true in every target's "
                       "change_calibration (its maps are the same: dh is NaN outside the group's images)")
    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        old = json.loads(g.attrs.get("height_sweep", "null") or "null") or {}
        old["groups"] = list(old.get("groups", [])) + part["groups"]
        old["tiles"] = list(old.get("tiles", [])) + part["tiles"]
        g.attrs["height_sweep"] = json.dumps(old, default=float)


def _mark_pending(path, rec) -> None:
    import zarr

    from offnadir import store as S

    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        g.attrs.update({APPEND_ATTR: json.dumps(rec, default=str), S.STATUS_ATTR: S.INCOMPLETE})


def _run(client, tasks, desc):
    import dask

    if not tasks:
        return []
    if client is not None:
        from offnadir.cluster import run_tasks

        return run_tasks(client, tasks, desc=desc, quiet=True)
    return list(dask.compute(*tasks))


# the change stage of one new image, through a two-image view of the store -----------------------
def _stage():
    """The change stage's runner (its module moves as the stage is reorganised)."""
    from offnadir.change import runner, tasks

    def run_all(run, done, skip=()):
        """:func:`offnadir.change.runner.run_all`, leaving out passes already run."""
        if not skip or not hasattr(runner.Runner, "PASSES"):
            return runner.run_all(run, done, mark=True)
        run.done, run.mark = done, True
        for name in runner.Runner.PASSES:
            if name not in skip:
                getattr(run, name)()
        return run

    return runner.Runner, run_all, tasks.PROGRESS


def _change_one(path, ds, opts, image_vars, index, client, quiet, summary, against=None) -> dict:
    """The change of image ``index`` against the base (``against`` None) or against image
    ``against`` (written to the ``*_prev`` maps), through a two-image view of the store."""
    import zarr

    from offnadir import store as S

    Runner, run_all, progress = _stage()
    enc = ds["visible"].encoding.get("chunks") or ds["visible"].data.chunksize
    cy, cx = int(enc[-2]), int(enc[-1])
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    chunks_yx = (tuple(min(cy, ny - k) for k in range(0, ny, cy)), tuple(min(cx, nx - k) for k in range(0, nx, cx)))
    prev = against is not None
    ref = against if prev else 0
    pname = L.progress_name(index, prev)
    rename = {v: f"{v}_prev" for v in L.PREV_VARS if f"{v}_prev" in ds} if prev else {}
    io = A.ImageSubsetIO(path, (ref, index), image_vars, {progress: pname}, rename)
    cube = _open(path).isel(image=[ref, index])
    cube = cube.assign_coords({k: cube[k].load() for k in cube.coords if "image" in cube[k].dims})
    run = Runner(io, cube, opts, chunks_yx, client=client, quiet=quiet)
    ctx = run.context()
    light = 0 if prev else _illumination(path, run, ctx, ds, index, client, summary, chunks_yx)
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    done = np.asarray(g[pname][...])
    n_maps = int(sum(1 for t in L.tiles(*chunks_yx) if not done[t.ti, t.tj] & A.WRITTEN))
    names = [str(v) for v in ds["image"].values]
    _say(quiet, f"append: change of {names[index]} against {names[ref]}{' (previous date)' if prev else ''}, "
                f"{n_maps} of {done.size} tiles to write")
    run_all(run, done, skip=("context",))  # the context is computed above (the sun of the illumination)
    with S._quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        if prev:
            rec = json.loads(g.attrs.get("change_prev", "{}"))
            rec[str(index)] = {"against": names[ref], "against_index": int(ref),
                               **{k: v for k, v in run.summary_attrs().items() if k in
                                  ("change_irmad", "change_calibration", "change_robust_scale")}}
            g.attrs["change_prev"] = json.dumps(rec)
            return {"maps": n_maps, "light": 0}
        tab = run.table()
        if tab is not None:
            ids = np.asarray(g["patch_id"][...]) if "patch_id" in g else None
            if ids is None or not np.array_equal(ids, tab["patch_id"].values):
                raise DataError(f"{path}: the patch IDs of the new run differ from the store's; the store's "
                                "segmentation was changed after detect. Run `offnadir detect` again.")
            for name in tab.data_vars:
                if tab[name].dims == ("image", "patch_id") and name in g:
                    g[name][index] = tab[name].values[1]
        g.attrs.update(A.merge_change_attrs(dict(g.attrs), run.summary_attrs(), index))
    return {"maps": n_maps, "light": light}


def _illumination(path, run, ctx, ds, index, client, summary, chunks_yx) -> int:
    """Illumination of the new image, with the sun-shadow halo a one-shot run over all images
    would use (the longest of every image's)."""
    import dask
    import zarr

    if not ctx.use_sun:
        if ds.sizes["image"] and json.loads(ds.attrs.get("change_sun_deg", "null") or "null"):
            _note(summary, "the new image's sun is unknown: a one-shot run would switch shadow handling off for "
                           "every image")
        return 0
    stored = json.loads(ds.attrs.get("change_sun_deg") or "null") or []
    if any(v is None for v in stored):
        stored = []
    suns_old = tuple((math.radians(az), math.radians(el)) for el, az in stored)
    halo_old = dataclasses.replace(ctx, n_images=len(suns_old), sun=suns_old).sun_halo() if suns_old else 0
    all_suns = suns_old + (ctx.sun[1],)
    full = dataclasses.replace(ctx, n_images=len(all_suns), sun=all_suns)
    sh = full.sun_halo()
    if suns_old and sh > halo_old:
        # a one-shot run would read this wider window to segment the base: the patches are the same, since
        # segment.segment_halo already makes them exact; each image's shadows are traced as far as its own
        # sun needs, so the earlier images' illumination is the same too
        log.info("append: the new image's sun is the lowest: shadows traced up to %d cells (the store's: %d)",
                 sh, halo_old)
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    done = np.asarray(g[L.progress_name(index)][...])
    todo = [t for t in L.tiles(*chunks_yx) if not done[t.ti, t.tj] & A.LIGHT]
    _run(client, [dask.delayed(L.light_tile, pure=False)(str(path), full.shape, full.cell, ctx.sun[1],
                                                        float(run.opts.sun_tolerance), sh, t, index,
                                                        ctx.shadow_error(1)) for t in todo],
         "illumination")
    return len(todo)


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
        hist.append({k: summary[k] for k in ("images", "n_before", "cube_tiles", "change_tiles", "previous_tiles",
                                             "exceptions")})
        fp = outputs.fingerprint(cfg_all)
        new = {"images": json.dumps(images), "config": json.dumps(cfg_all, default=str),
               S.PLAN_ATTR: json.dumps(fp, sort_keys=True), HISTORY_ATTR: json.dumps(hist, default=str)}
        if ties is not None:
            new["tie_bias"] = json.dumps(ties, default=str)
        g.attrs.update(new)
        if APPEND_ATTR in g.attrs:
            del g.attrs[APPEND_ATTR]
        for name in list(g.array_keys()):
            if name == PROGRESS or name.startswith(PROGRESS + "_"):
                del g[name]
    for e in summary["exceptions"]:
        log.warning("append: %s", e)
    S.mark_complete(path)
