"""The change-detection stage's public entry points: on a cube held in memory
(:func:`detect_dataset`) or written to a Zarr store (:func:`detect_store`). The store layout and
the resume bookkeeping are here; the passes over the tiles are :mod:`offnadir.change.runner`.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np

from offnadir.change import tile as T
from offnadir.change.options import ChangeOptions
from offnadir.change.results import summary_attrs, table
from offnadir.change.runner import Runner, run_all
from offnadir.change.tasks import PROGRESS

_Runner = Runner  # the name before the split


# ----------------------------------------------------------------------------- public entry points
def _var_names(opts):
    names = []
    if opts.method == "patch":
        names += ["elevated", "patch", "illumination", "change", "score", "evidence", "evidence_local", "probability"]
        if opts.baseline:
            names += ["change_ortho", "score_ortho"]
    else:
        names += ["change", "score", "evidence", "probability"]
    return names


def detect_dataset(cube, options: ChangeOptions | None = None, *, chunk: int | None = None, **kw):
    """Change detection on a cube Dataset held in memory (computed first if lazy), with the current
    dask scheduler (threads by default). Returns the cube with the change variables and the
    per-patch table added (``patch_*`` variables on dims ``patch_id``/``image``)."""
    import xarray as xr

    opts = options or ChangeOptions.from_config(None, **kw)
    cube = cube.load() if any(v.chunks is not None for v in cube.data_vars.values()) else cube
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    c = int(chunk or cube.attrs.get("tile_size", 512) or 512)
    cy, cx = (c, c) if chunk or "tile_shape" not in cube.attrs else (int(v) for v in cube.attrs["tile_shape"])
    chunks_yx = (tuple(min(cy, ny - k) for k in range(0, ny, cy)), tuple(min(cx, nx - k) for k in range(0, nx, cx)))
    from offnadir.change.dataset import CHANGE_VARS

    n_img = cube.sizes["image"]
    arrays = {"dsm": cube["dsm"].values, "visible": cube["visible"].values, "value": cube["value"].values}
    for name in ("dh", "dh_sigma"):  # same-date height change (another stage), used where present
        if name in cube:
            arrays[name] = np.asarray(cube[name].values, np.float32)
    for name in _var_names(opts):
        spec = CHANGE_VARS[name]
        shape = (ny, nx) if spec["dims"] == ("y", "x") else (n_img, ny, nx)
        arrays[name] = np.full(shape, spec["fill"], dtype=spec["dtype"])
    io = T.MemoryIO(arrays)
    run = run_all(Runner(io, cube, opts, chunks_yx), np.zeros((len(chunks_yx[0]), len(chunks_yx[1])), np.uint8),
                  mark=False)
    out = cube.copy()
    for name in _var_names(opts):
        spec = CHANGE_VARS[name]
        out[name] = (spec["dims"], arrays[name], dict(spec["attrs"]))
    tab = table(run)
    if tab is not None:
        out = xr.merge([out, tab.drop_vars("image")], compat="override", combine_attrs="override")
    out.attrs.update(summary_attrs(run))
    out.attrs["change_patches"] = int(len(run.red_ids))
    return out


def detect_store(path, options: ChangeOptions | None = None, *, client=None, resume: bool = False,
                 quiet: bool = True, consolidate: bool = True) -> Path:
    """Change detection on a cube written to a Zarr store (``offnadir coregister``): the change
    variables, the per-cell history over the dates (:mod:`offnadir.change.history`) and the
    per-patch table are added to the same store, tile by tile. ``consolidate=False``: leave the
    metadata's consolidation to the caller (the pipeline marks the store complete next, which
    consolidates it)."""
    import zarr

    from offnadir.store import _quiet_zarr, location, open_dataset, zarr_format

    opts = options or ChangeOptions()
    path = location(path)  # a URL (s3://...) stays text
    fmt = zarr_format(path)  # the store's own format (v2 by default, v3 when asked)
    cube = open_dataset(path)  # stored codes (visible 2 stays 2), as the stages expect
    # the per-image coordinates in one compute (the template's string encoding and the runner read them)
    from offnadir.change.illumination import small_coords_loaded

    cube = small_coords_loaded(cube)
    enc = cube["visible"].encoding.get("chunks") or cube["visible"].data.chunksize
    cy, cx = int(enc[-2]), int(enc[-1])
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    chunks_yx = (tuple(min(cy, ny - k) for k in range(0, ny, cy)), tuple(min(cx, nx - k) for k in range(0, nx, cx)))
    done, history = set_up(path, cube, opts, chunks_yx, resume=resume, zarr_format=fmt)
    io = T.StoreIO(path, run=uuid.uuid4().hex)  # this run's token: its workers cache the cube's chunks
    try:
        runner = Runner(io, cube, opts, chunks_yx, client=client, quiet=quiet)
        runner.history = history
        run = run_all(runner, done, mark=True)
    finally:
        _forget(io.run, client)
    tab = table(run)
    with _quiet_zarr():
        if tab is not None:
            g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
            for name in list(g.array_keys()):
                if name.startswith("patch_") or name == "patch_id":
                    del g[name]
            write_table(g, tab, fmt)
            if opts.table_csv:
                from offnadir.change.dataset import table_to_csv

                table_to_csv(table(run), opts.table_csv)
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        g.attrs.update(summary_attrs(run))
        if consolidate:
            zarr.consolidate_metadata(str(path))
    return path


def set_up(path, cube, opts: ChangeOptions, chunks_yx, *, resume: bool, zarr_format: int):
    """The store's change arrays, history arrays and progress flags before the passes (kept when
    ``resume`` finds them made with the same options): ``(progress bits per tile, the history's
    dated images or None)``."""
    import zarr

    from offnadir.change import history as H
    from offnadir.change import store_layout as SL
    from offnadir.store import _quiet_zarr

    fmt = zarr_format
    names = _var_names(opts)
    grid = (len(chunks_yx[0]), len(chunks_yx[1]))
    (ny, nx), (cy, cx) = (sum(chunks_yx[0]), sum(chunks_yx[1])), (chunks_yx[0][0], chunks_yx[1][0])
    # the per-cell history over the dates, written by the maps pass (no pass of its own)
    history = H.dated_images(cube["time"].values, cube["image"].values) if "time" in cube.coords else None
    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        existing = set(g.array_keys())
        prior = g.attrs.get("change_options")
        reuse = (resume and PROGRESS in existing and all(n in existing for n in names)
                 and prior == json.dumps(opts.as_dict(), default=str))
        specs = []
        if not reuse:
            for name in list(existing):
                if name in names or name in H.NAMES or name == PROGRESS or name.startswith("patch_") \
                        or name == "patch_id":
                    del g[name]
                    existing.discard(name)
            # what xarray's to_zarr of dataset.layout wrote, in one round of zarr calls (store_layout)
            specs += SL.change_specs(cube, names, chunks_yx, fmt)
            specs.append(SL.flag_spec(PROGRESS, grid, "change detection progress bits: 1 segmented, 4 maps written",
                                      fmt))
        if history is not None and not set(H.NAMES) <= existing:
            gm = "spatial_ref" if "spatial_ref" in cube.coords or "spatial_ref" in cube else None
            specs += SL.history_specs((ny, nx), (cy, cx), gm, fmt)
        SL.create(g, specs)
        if not reuse:
            g.attrs["change_options"] = json.dumps(opts.as_dict(), default=str)
        done = np.asarray(g[PROGRESS][...])
    return done, history


def write_table(group, tab, fmt: int) -> None:
    """The per-patch table (``results.table``) into the store's ``group`` as xarray's
    ``to_zarr(mode="a")`` of it without its ``image`` coordinate wrote it, in one round of zarr calls
    (:func:`offnadir.change.store_layout.table_specs`): ~95 round trips to zarr's I/O thread at the
    end of the run otherwise, with both workers idle."""
    from offnadir.change import store_layout as SL

    SL.create(group, SL.table_specs(tab.drop_vars("image"), fmt))


def _forget(token, client):
    """Release the run's cached chunks here and on the workers (they hold up to CACHE_BYTES each)."""
    from offnadir.change.tileio import forget

    forget(token)
    if client is not None:
        try:
            client.run(forget, token)
        except Exception:  # noqa: BLE001 - a worker gone or a closed client: its memory went with it
            pass


def _fill(name):
    from offnadir.change.dataset import CHANGE_VARS

    return CHANGE_VARS[name]["fill"]


def _nodata(name):
    """The variable's CF _FillValue / GDAL nodata (None: every value is data)."""
    from offnadir.change.dataset import CHANGE_VARS

    return CHANGE_VARS[name].get("nodata", CHANGE_VARS[name]["fill"])
