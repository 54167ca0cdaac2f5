"""Putting the stages together: inputs -> plan -> cube (lazy, or written tile by tile to Zarr)."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path

import dask
import numpy as np

from offnadir.cube import graph
from offnadir.cube.plan import make_plan
from offnadir.cube import tiepoints
from offnadir.errors import ConfigError, OffnadirError
from offnadir.io.dsm import DsmSource, open_dsm_source
from offnadir.io.image import ImageSource, open_image_source
from offnadir.stopwatch import Stopwatch

_log = logging.getLogger("offnadir.pipeline")


def load_images(images, gcps=None) -> list[ImageSource]:
    """Images as paths, dicts ({path, model, gcps, name}) or ImageSource; ``gcps`` an optional list
    aligned with ``images`` (None entries allowed)."""
    if isinstance(images, (str, Path, ImageSource, dict)):
        images = [images]
    if gcps is not None and len(gcps) != len(images):
        raise ConfigError(f"{len(gcps)} GCP files given for {len(images)} images; give one per image "
                          "(use 'none' for an image without GCPs).")
    out = []
    for k, im in enumerate(images):
        if isinstance(im, ImageSource):
            out.append(im)
            continue
        d = dict(im) if isinstance(im, dict) else {"path": im}
        g = d.get("gcps") or (gcps[k] if gcps is not None else None)
        if isinstance(g, str) and g.lower() == "none":
            g = None
        out.append(open_image_source(d["path"], model=d.get("model"), gcps=g, name=d.get("name"), date=d.get("date")))
    names = [im.name for im in out]
    if len(set(names)) != len(names):
        # keep labels unique: image names become coordinate labels
        seen: dict[str, int] = {}
        fixed = []
        for im in out:
            n = seen.get(im.name, 0)
            seen[im.name] = n + 1
            fixed.append(im if n == 0 else ImageSource(im.path, im.camera, im.shape, im.count, im.dtype,
                                                       im.nodata, f"{im.name}_{n}", im.date))
        out = fixed
    return out


def plan_cube(dsm, images, *, gcps=None, chunk: int = 1024, geoid=None, vertical_datum: str = "auto",
              lattice_step: int = 16, z_tol: float = 0.05, halo: int | None = None, dsm_band: int = 1):
    """Open the inputs and build the tile plan (computes DSM statistics with the current dask
    scheduler: a distributed Client if one is active, else local threads)."""
    dsm_src = dsm if isinstance(dsm, DsmSource) or hasattr(dsm, "read_block") else \
        open_dsm_source(dsm, geoid=geoid, vertical_datum=vertical_datum, band=dsm_band)
    image_srcs = load_images(images, gcps)
    stats = dask.compute(graph.dsm_stats(dsm_src, chunk))[0]
    return make_plan(dsm_src, image_srcs, stats=stats, chunk=chunk, lattice_step=lattice_step, z_tol=z_tol,
                     halo=halo)


def coregister(dsm, images, *, gcps=None, chunk: int = 1024, geoid=None, vertical_datum: str = "auto",
               lattice_step: int = 16, z_tol: float = 0.05, config: dict | None = None):
    """The co-registered cube as a lazy ``xarray.Dataset`` on the DSM grid.

    Variables: ``row``, ``col`` (image, y, x) float32 image coordinates (RPC00B native);
    ``visible`` (image, y, x) uint8: 1 visible, 0 hidden by relief, 2 outside the image or DSM
    nodata; ``value`` (image, band, y, x) float32 bilinear samples; ``dsm`` (y, x) ellipsoidal
    heights. Nothing is computed until the arrays are (e.g. ``.to_zarr``, ``.compute()``)."""
    from offnadir.cube import dataset as cube_ds

    plan = plan_cube(dsm, images, gcps=gcps, chunk=chunk, geoid=geoid, vertical_datum=vertical_datum,
                     lattice_step=lattice_step, z_tol=z_tol)
    return cube_ds.cube_dataset(plan, graph.cube_arrays(plan), config=config)


def write_cube(plan, out, *, client, overwrite: bool = False, resume: bool = False, config: dict | None = None,
               quiet: bool = False, fingerprint: dict | None = None, complete: bool = True,
               clock: "Stopwatch | None" = None, attrs: dict | None = None) -> Path:
    """Write the cube to a Zarr store tile by tile on ``client``. Bad input found before writing
    leaves nothing behind; a run that fails mid-way keeps what it wrote for ``resume`` (and says so).
    The store records ``fingerprint`` (default: from ``config`` and the plan) so that a resume with
    another plan is refused; ``complete`` marks it complete at the end (callers that run more
    stages mark it themselves). ``clock``: a :class:`Stopwatch` that times the layout, the tiles
    and the finalisation; ``attrs``: root attributes to add (the run's automatic choices)."""
    from offnadir import outputs, store
    from offnadir.cluster import run_tasks
    from offnadir.cube.layout import create_store

    clock = clock or Stopwatch()

    out = store.location(out)  # a URL (s3://...) stays text
    fp = fingerprint if fingerprint is not None else outputs.fingerprint(config or {}, extra=_plan_summary(plan))
    with outputs.OutputLock(out), _removals_joined():
        state = store.prepare(out, overwrite=overwrite, resume=resume, plan=fp)
        if state == store.NOTHING_TO_DO:
            _say(quiet, f"{out} is complete already; nothing to resume.")
            return out
        if state == store.NEW:
            outputs.check_target(out, [plan.dsm.path] + [im.path for im in plan.images], replacing=False)
            try:  # zarr directly: what to_zarr of cube_dataset writes, without importing xarray (cube.layout)
                create_store(out, plan, fp, config=config,
                             zarr_format=((config or {}).get("output") or {}).get("zarr_format"))
            except BaseException as e:
                store.remove(out, created_here=True)
                if isinstance(e, OSError):
                    raise _write_error(out, e) from None
                raise
        if state == store.RESUME:
            _check_store_tiles(out, plan)
        skip = store.done_tiles(out) if state == store.RESUME else set()
        n = len(plan.tiles())
        per_task = graph.tiles_per_task(n - len(skip), plan.grid_shape[1], _threads(client))
        tasks = graph.tile_write_tasks(plan, str(out), skip, per_task, shared=_on_every_worker(client, plan))
        clock.lap("store layout")
        (ny, nx), (cy, cx) = plan.dsm.shape, plan.tile_shape
        _say(quiet, f"{n - len(skip)} of {n} tiles to compute ({ny}x{nx} cells in tiles of {cy}x{cx}, "
                    f"{len(plan.images)} images, halo {plan.halo} cells)")
        try:
            run_tasks(client, tasks, desc="cube tiles", quiet=quiet,
                      weights=graph.tiles_per_write_task(plan, skip, per_task))
            clock.lap("tiles")
            store.finalize(out, attrs)
            clock.lap("finalize")
        except BaseException as e:
            keep_or_remove(out, created=state == store.NEW, quiet=quiet)
            if isinstance(e, OSError):
                raise _write_error(out, e) from None
            raise
        if complete:
            store.mark_complete(out)
    return out


@contextmanager
def _removals_joined():
    """Leave only when a store replaced by ``--overwrite`` (deleted on a thread while the tiles
    run, see :func:`offnadir.store.remove`) is gone, whatever happened."""
    from offnadir import store

    try:
        yield
    finally:
        store.wait_for_removals()


def _check_store_tiles(out, plan) -> None:
    """A resumed store must have been cut into the tiles of ``plan`` (stores of versions before the
    even tiles of :func:`offnadir.cube.plan.tile_sizes` may not be)."""
    import zarr

    from offnadir.store import _quiet_zarr

    with _quiet_zarr():
        have = tuple(int(c) for c in zarr.open_group(str(out), mode="r")["dsm"].chunks)
    if have != tuple(plan.tile_shape):
        raise ConfigError(f"{out}: the store's tiles are {have[0]} x {have[1]} cells, this version cuts the grid "
                          f"into {plan.tile_shape[0]} x {plan.tile_shape[1]} (chunk {plan.chunk}); it cannot resume "
                          "it. Run again with --overwrite (or another output path).")


def _say(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"offnadir: {msg}", file=sys.stderr)


def _plan_summary(plan) -> dict:
    """What a cube computed without a config depends on (for the store's fingerprint)."""
    from offnadir.outputs import _file_stamp

    return {"dsm": _file_stamp(plan.dsm.path), "images": [[im.name, _file_stamp(im.path)] for im in plan.images],
            "cameras": [dask.base.tokenize(im.camera) for im in plan.images], "chunk": plan.chunk,
            "lattice_step": plan.lattice_step, "z_tol": plan.z_tol, "halo": plan.halo}


def keep_or_remove(out, *, created: bool, quiet: bool = False) -> None:
    """After a failure: keep a store that holds finished work (resumable, and say so), remove one
    this run created that holds none, so no half-written output is left without a word."""
    from offnadir import store

    out = store.location(out)
    if not store.exists(out):
        return
    try:
        done, n = store.progress(out)
    except Exception:  # noqa: BLE001 - no readable progress: nothing finished
        done, n = 0, 0
    if done == 0 and created:
        store.remove(out, created_here=True)
        return
    print(f"offnadir: the unfinished store {out} is kept ({done} of {n} cube tiles written); run the same command "
          "with --resume to finish it, or --overwrite to start again.", file=sys.stderr)


def _write_error(out, e: OSError) -> OffnadirError:
    import errno

    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
           errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied"}.get(e.errno, e.strerror or str(e))
    from offnadir.errors import DataError

    return DataError(f"{out}: cannot write the output store: {why}. Free space or fix permissions, then run the same "
                     "command with --resume (an unfinished store is kept when it holds finished tiles).")


def run_config(cfg: dict, *, quiet: bool = False, stage_hooks=(), client=None) -> Path:
    """Run a validated config (see :mod:`offnadir.config`): plan, then write the cube on the cluster.
    ``stage_hooks`` are callables ``hook(cfg, plan, out_path, client)`` run after the cube is written
    (change detection registers itself this way). ``client``: an existing ``distributed.Client``
    (a notebook's, dask-gateway's...) to run on instead of the config's cluster; it is left open."""
    from offnadir import outputs, store

    out = store.location(cfg["output"]["path"])
    overwrite, resume = cfg["output"]["overwrite"], cfg["output"]["resume"]
    fp = outputs.fingerprint(cfg)
    # refuse a dangerous or busy output, an existing one without --overwrite/--resume, or a resume
    # of another plan, and open every input, before any work or any cluster
    outputs.check_target(out, outputs.input_paths(cfg), replacing=overwrite and not resume)
    lock = outputs.OutputLock(out).acquire()
    try:
        return _run_locked(cfg, out, fp, overwrite, resume, quiet, stage_hooks, client)
    finally:
        lock.release()


def _run_locked(cfg, out, fp, overwrite, resume, quiet, stage_hooks, given_client=None) -> Path:
    from contextlib import nullcontext

    from offnadir import store
    from offnadir.cluster import dask_client

    state = store.prepare(out, overwrite=False, resume=resume, plan=fp) if store.exists(out) and not overwrite \
        else None
    if state == store.NOTHING_TO_DO:
        _say(quiet, f"{out} is complete already (same plan); nothing to do.")
        return out
    clock = Stopwatch()
    d = cfg["dsm"]
    dsm = open_dsm_source(d["path"], geoid=d["geoid"], vertical_datum=d["vertical_datum"], band=d["band"])
    images = load_images(cfg["images"])
    processes, why = _local_workers(cfg, dsm, images, given_client)
    clock.lap("open inputs")
    cluster = nullcontext(given_client) if given_client is not None else \
        dask_client(cfg["cluster"]["scheduler"], cfg["cluster"]["n_workers"], quiet=quiet, processes=processes,
                    options={**cfg["cluster"], "chunk": cfg["tiling"]["chunk"], "n_images": len(cfg["images"]),
                             "multi_view": _multi_view(images)})
    with cluster as client:
        clock.lap("cluster start")
        for hook in stage_hooks:
            getattr(hook, "preload", lambda: None)()
        with dask.config.set(scheduler=client):
            plan = plan_cube(dsm, images, chunk=cfg["tiling"]["chunk"], lattice_step=cfg["tiling"]["lattice_step"],
                             z_tol=cfg["occlusion"]["z_tol"])
            clock.lap("plan")
            plan, tie_report = tiepoints.run_for_config(plan, cfg, quiet=quiet)  # relative bias (issue 8)
            clock.lap("tie points")
        # the tie-point report goes in with the run's attributes: one attribute write and consolidation
        # after the tiles, not a second finalisation of its own
        attrs = {"cluster_workers": f"local cluster, {_workers_text(client, processes)}: {why}"} if why else {}
        attrs.update(tiepoints.report_attrs(tie_report))
        write_cube(plan, out, client=client, overwrite=overwrite, resume=resume, config=cfg, quiet=quiet,
                   fingerprint=fp, complete=False, clock=clock, attrs=attrs)
        try:
            for hook in stage_hooks:
                hook(cfg, plan, out, client)
                clock.lap(type(hook).__name__.strip("_"))
        except BaseException as e:
            keep_or_remove(out, created=False, quiet=quiet)
            if isinstance(e, OSError):
                raise _write_error(out, e) from None
            raise
    clock.lap("cluster close")
    store.mark_complete(out)
    clock.lap("mark complete")
    _log.info("%s", clock.summary())
    _log.info("%s", clock.cpu_summary())
    return out


def _multi_view(images) -> bool:
    """Whether a date has two images or more (the height sweep's kernels are then needed: the
    cluster's kernel preload loads them only then)."""
    from offnadir.cube.dataset import date_groups

    g = date_groups(images, say=False)
    return bool(len(g)) and int(np.bincount(g).max()) >= 2


def _local_workers(cfg, dsm, images, given_client) -> tuple[bool | None, str | None]:
    """A local cluster's workers: processes or threads of this process (logged; see
    :func:`offnadir.cluster.local_workers`). (None, None) when the run uses another cluster."""
    from offnadir.cluster import local_workers

    c = cfg["cluster"]
    if given_client is not None or c.get("scheduler") or (c.get("kind") or "local") != "local":
        return None, None
    processes, why = local_workers(c.get("local_workers"), c.get("n_workers"), dsm.shape[0] * dsm.shape[1],
                                   len(images))
    _log.info("local cluster workers: %s", why)
    return processes, why


def _on_every_worker(client, obj):
    """``obj`` scattered to every worker (a future), or None when the client cannot."""
    try:
        return client.scatter(obj, broadcast=True, hash=False)
    except Exception as e:  # noqa: BLE001 - the tasks then carry it as a graph node
        _log.debug("scatter to every worker failed (%s): the plan travels as a graph node", e)
        return None


def _threads(client) -> int:
    """Worker threads of the cluster (0 when it cannot say)."""
    try:
        return int(sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 - a figure for choices and messages only
        return 0


def _workers_text(client, processes: bool) -> str:
    threads = _threads(client) or "?"
    return f"{threads} single-threaded worker processes" if processes else f"{threads} threads in the client process"


def stage_hooks(cfg: dict, *, quiet: bool = False) -> tuple:
    """Stages that run after the cube for this config: the height sweep (two images or more), then
    change detection when the config's
    ``change.enabled`` is true, or unset and there are at least two images. Options are checked
    here, before any work."""
    from offnadir.cube.sweep_stage import SweepStage

    # the same-date height sweep runs first (it finds its date groups itself; none: it says so)
    sweep = (SweepStage(quiet),) if len(cfg.get("images", [])) >= 2 else ()
    section = cfg.get("change") or {}
    enabled = section.get("enabled")
    if enabled is None:
        enabled = len(cfg.get("images", [])) >= 2
    if not enabled:
        return sweep
    from offnadir.change.options import ChangeOptions

    opts = ChangeOptions.from_config(section)
    if len(cfg.get("images", [])) < 2:
        raise ConfigError("change.enabled is true but the config has one image; change detection compares the base "
                          "(first) image with at least one other.")
    return sweep + (_ChangeStage(opts, quiet),)


class _ChangeStage:
    """Run change detection on the store the cube was just written to (a stage hook)."""

    def __init__(self, opts, quiet: bool):
        self.opts, self.quiet = opts, quiet

    def preload(self):
        """The stage's client-side imports (xarray, pandas...) in a background thread while the cube is
        computed. Started once the cluster runs: a thread started before a local threaded cluster
        would get a malloc arena of its own (offnadir.malloc_reuse)."""
        from offnadir.change.preload import start

        start()

    def __call__(self, cfg, plan, out, client):
        from offnadir.change.stage import detect_store

        # also the per-cell history over the dates (first/last change...), as `offnadir append` keeps it;
        # the metadata is consolidated once the run is marked complete (store.mark_complete), not also here
        detect_store(out, self.opts, client=client, resume=bool(cfg["output"]["resume"]), quiet=self.quiet,
                     consolidate=False)


def detect_config(cfg: dict, *, quiet: bool = False, client=None) -> Path:
    """Cube and change detection in one go from a validated config (``offnadir detect``), on
    ``client`` when given (see :func:`run_config`)."""
    cfg = dict(cfg)
    cfg["change"] = {**(cfg.get("change") or {}), "enabled": True}
    return run_config(cfg, quiet=quiet, stage_hooks=stage_hooks(cfg, quiet=quiet), client=client)


def run(config, *, client=None, quiet: bool = True) -> Path:
    """Run a job from Python: ``config`` is a YAML path or a config mapping (the schema of
    ``offnadir template-config``; relative paths from the file's folder, or the current one).
    ``client``: an existing ``distributed.Client`` (a notebook's, dask-gateway's, Coiled's...) to
    run on; it is used as it is and left open. Change detection runs as in ``offnadir run``."""
    from offnadir import config as config_mod

    cfg = config_mod.load(config) if isinstance(config, (str, Path)) else \
        config_mod.validate(config, base=".", source="config")
    return run_config(cfg, quiet=quiet, stage_hooks=stage_hooks(cfg, quiet=quiet), client=client)
