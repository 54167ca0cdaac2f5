"""Cube throughput and memory: offnadir against ``gdalwarp -rpc -to RPC_DEM=...``, in one run.

    python benchmarks/bench_cube.py speed  [--size 4096] [--repeat 1] [--chunk 1024] [--json out.json]
    python benchmarks/bench_cube.py memory [--size 20000] [--chunk 1024] [--tile-rows A:B] [--json out.json]
    python benchmarks/bench_cube.py e2e [--sizes 2048,4096] [--workers 2] [--json out.json]
    python benchmarks/bench_cube.py scaling [--size 4096] [--repeat 2] [--json out.json]

**e2e** and **scaling** (``offnadir coregister`` end to end, cold and warm, against gdalwarp cubic
and bilinear as a user types it; the tiles alone; 1 -> 2 workers) are described in
:mod:`bench_cube_e2e`.

**speed** — a synthetic city DSM GeoTIFF (``size``² cells of 0.5 m, buildings up to 60 m, heights
above the WGS84 ellipsoid, local transverse Mercator) and two 4-band uint16 images in sensor
geometry with RPC tags (exact affine RPC00B cameras, 0.5 m pixels, 10° and 25° off-nadir from
different azimuths, image axes rotated from the grid), each covering the whole DSM. Then, in the
same run, on the same 2 cores:

* offnadir writes the co-registered cube of both images (row, col, visibility with occlusion,
  4 bilinear bands, DSM heights) to Zarr on a local dask cluster of ``--workers`` single-threaded
  worker processes. Timed: cluster start-up (+ worker imports and numba cache loading), then the
  plan (DSM statistics pass) and the tile writes. The throughput figure excludes start-up (it is
  paid once per session, not per DSM cell); the figure with start-up is printed too.
* gdalwarp orthorectifies each image onto exactly the DSM grid (``-te``/``-tr``/``-t_srs`` of the
  DSM, ``-rpc -to RPC_DEM=dsm.tif``, bilinear, exact transformer as GDAL uses with RPC_DEM), in
  two ways: the images one after the other with ``-multi -wo NUM_THREADS=2``, and both images at
  once, one single-threaded gdalwarp each. The faster is gdalwarp's figure. ``-wo XSCALE=1 -wo
  YSCALE=1`` makes GDAL's bilinear a plain 2x2 kernel like offnadir's (without it GDAL widens the
  kernel wherever relief makes the source window larger than the destination, which is slower
  and samples differently); ``GDAL_CACHEMAX`` and ``-wm`` are set generously.

Both must have done the same geometric work: on cells offnadir finds visible, offnadir's
``value`` and gdalwarp's output are compared (median and 99th percentile of |difference| in DN;
the test pattern changes by up to ~160 DN per pixel, so a median of a few DN means agreement to
a few hundredths of a pixel; gdalwarp rounds to uint16, so 0.25 DN is the floor).

Figures: DSM megapixels per second for the two images (``size``² / wall seconds), CPU seconds
(all processes: dask workers + scheduler/client; gdalwarp children), the ratio
offnadir / gdalwarp for both, and peak RSS per dask worker. Machine load from elsewhere slows
both; the CPU-time ratio is the less load-sensitive of the two.

**memory** — a procedurally generated ``size``² DSM (:class:`synthetic_dsm.CityDsm`: any block
is computed on demand from global cell indices, nothing is stored) and two procedural 4-band
images of 0.25 m pixels (about (2·size)² pixels each; :class:`synthetic_dsm.ProceduralImage`
generates any window on demand). The plan is the full ``size``² plan; the cube store is laid out
in full (metadata) and every tile — or the tile rows ``--tile-rows A:B`` only — is computed and
written on the local cluster while the RSS of every worker and of the scheduler/client process is
sampled. The store goes to ``--store`` (made when missing; default: a temporary directory under
/tmp) and is deleted afterwards unless ``--keep``.

gdalwarp comes from GDAL's command-line tools: ``apt-get install gdal-bin`` (Debian/Ubuntu),
``conda install -c conda-forge gdal`` or ``brew install gdal``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc
import synthetic_dsm as syn

#: the environment at start: gdalwarp gets this one (dask's nanny writes its workers' malloc settings
#: into this process's environment before spawning them; they must not leak into gdalwarp)
ENV0 = dict(os.environ)
GOAL_RATIO = 5.0
GOAL_WORKER_GIB = 1.5
#: the two views: (name, off-nadir deg, azimuth deg, image-axis rotation deg, pattern seed)
VIEWS = (("view10", 10.0, 30.0, 12.0, 0), ("view25", 25.0, 200.0, -8.0, 1))


# ---------------------------------------------------------------------------- process monitoring
class ProcessMonitor:
    """Peak RSS of a set of processes (sampled every ``interval_s`` by a thread) and their CPU
    seconds (user + system, all threads) between :meth:`mark` and :meth:`cpu_since`."""

    def __init__(self, pids: dict, interval_s: float = 0.02):
        import psutil

        self._gone = psutil.Error
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.peak = {name: 0 for name in pids}
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu0: dict = {}

    def _sample(self):
        for name, p in self.procs.items():
            try:
                self.peak[name] = max(self.peak[name], p.memory_info().rss)
            except self._gone:  # a process that just ended
                continue

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._sample()

    def reset_peaks(self):
        self.peak = {name: 0 for name in self.procs}

    def _cpu(self) -> dict:
        out = {}
        for name, p in self.procs.items():
            t = p.cpu_times()
            out[name] = t.user + t.system
        return out

    def mark(self):
        self._cpu0 = self._cpu()

    def cpu_since(self) -> dict:
        now = self._cpu()
        return {name: now[name] - self._cpu0.get(name, 0.0) for name in now}


def _warm_worker(plan, tile, path):
    """Imports, numba cache loading and the Zarr write path on a worker, by writing one tiny tile."""
    from offnadir import store

    store.write_tile(path, plan, tile)
    return os.getpid()


def tiny_plan():
    """A 64x64-cell plan on procedural inputs (warms workers up without touching real inputs)."""
    from offnadir.cube.plan import make_plan
    from offnadir.cube.tile import block_stats

    dsm = syn.CityDsm((64, 64), parcel=16)
    images = [syn.procedural_image(syn.view_camera(dsm, th, az, kappa_deg=k, name=n), n, seed=s)
              for n, th, az, k, s in VIEWS]
    stats = block_stats(dsm, 0, 64, 0, 64)
    plan = make_plan(dsm, images, stats=stats, chunk=64)
    return plan, plan.tiles()[0]


def start_cluster(n_workers: int):
    """Start the local cluster (offnadir's own: one single-threaded worker per process) and warm
    its workers up. Returns (context manager, client, pids, seconds to start, seconds to warm)."""
    from offnadir import store
    from offnadir.cluster import dask_client
    from offnadir.cube import dataset as cube_ds
    from offnadir.cube import graph

    t0 = time.perf_counter()
    cm = dask_client(None, n_workers, quiet=True)
    client = cm.__enter__()
    t1 = time.perf_counter()
    plan, tile = tiny_plan()
    with tempfile.TemporaryDirectory(prefix="offnadir_bench_warm_") as tmp:
        path = str(Path(tmp) / "warm.zarr")
        store.create(path, cube_ds.cube_dataset(plan, graph.empty_arrays(plan)), plan.grid_shape, cube_ds.FILL)
        pids = client.run(_warm_worker, plan, tile, path)
    t2 = time.perf_counter()
    names = {f"worker{k}": pid for k, pid in enumerate(sorted(pids.values()))}
    names["client+scheduler"] = os.getpid()
    return cm, client, names, t1 - t0, t2 - t1


# ---------------------------------------------------------------------------- inputs
def make_speed_inputs(workdir: Path, size: int, seed: int = 0) -> dict:
    """DSM and image GeoTIFFs in ``workdir`` (reused when already made with the same parameters)."""
    params = {"size": size, "seed": seed, "views": VIEWS, "version": 1}
    meta = workdir / "inputs.json"
    files = {"dsm": workdir / "dsm.tif", **{v[0]: workdir / f"{v[0]}.tif" for v in VIEWS}}
    if meta.exists() and json.loads(meta.read_text()) == json.loads(json.dumps(params)) and \
            all(p.exists() for p in files.values()):
        return {k: str(v) for k, v in files.items()}
    workdir.mkdir(parents=True, exist_ok=True)
    dsm = syn.CityDsm((size, size), seed=seed)
    syn.write_dsm(files["dsm"], dsm)
    for name, th, az, kappa, pseed in VIEWS:
        cam = syn.view_camera(dsm, th, az, kappa_deg=kappa, name=name)
        syn.write_image(files[name], cam, seed=pseed)
    meta.write_text(json.dumps(params))
    return {k: str(v) for k, v in files.items()}


# ---------------------------------------------------------------------------- offnadir
def run_offnadir(client, mon: ProcessMonitor, dsm, images, out: Path, chunk: int) -> dict:
    """Plan and write the cube on ``client``; wall and CPU seconds of each stage."""
    import dask

    from offnadir.pipeline import plan_cube, write_cube

    mon.reset_peaks()
    mon.mark()
    t0 = time.perf_counter()
    with dask.config.set(scheduler=client):
        plan = plan_cube(dsm, images, chunk=chunk)
    t1 = time.perf_counter()
    write_cube(plan, out, client=client, overwrite=True, quiet=True)
    t2 = time.perf_counter()
    cpu = mon.cpu_since()
    return {"plan_s": t1 - t0, "write_s": t2 - t1, "wall_s": t2 - t0, "cpu_s": sum(cpu.values()),
            "cpu_by_process_s": cpu, "peak_rss_mib": {k: v / 2**20 for k, v in mon.peak.items()},
            "halo": plan.halo, "tiles": len(plan.tiles())}


# ---------------------------------------------------------------------------- gdalwarp
def gdalwarp_path() -> str:
    exe = shutil.which("gdalwarp")
    if exe is None:
        sys.exit("bench_cube: gdalwarp not found on PATH. Install GDAL's command-line tools: "
                 "`apt-get install gdal-bin` (Debian/Ubuntu), `conda install -c conda-forge gdal` or "
                 "`brew install gdal`, then rerun.")
    return exe


def gdal_version(exe: str) -> str:
    return subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout.strip()


def gdalwarp_cmd(exe, dsm_path, image, out, grid, *, threads: int, wm_mb: int, plain_bilinear: bool = True):
    (xmin, ymin, xmax, ymax), (rx, ry), srs = grid
    cmd = [exe, "-q", "-overwrite", "-rpc", "-to", f"RPC_DEM={dsm_path}",
           "-te", repr(xmin), repr(ymin), repr(xmax), repr(ymax), "-tr", repr(rx), repr(ry), "-t_srs", srs,
           "-r", "bilinear", "-wm", str(wm_mb), "-co", "TILED=YES", "-dstnodata", "0"]
    if threads > 1:
        cmd += ["-multi", "-wo", f"NUM_THREADS={threads}"]
    else:
        cmd += ["-wo", "NUM_THREADS=1"]
    if plain_bilinear:
        cmd += ["-wo", "XSCALE=1", "-wo", "YSCALE=1"]
    return cmd + [image, out]


def _run_children(cmds, env) -> tuple[float, float, float]:
    """Run commands concurrently; (wall s, CPU s of all of them, peak RSS MiB of any one process).
    The peak is sampled (``bench_cube_e2e.TreePeak``): ``wait4``'s ``ru_maxrss`` carries this
    process's RSS into a child's figure."""
    import bench_cube_e2e

    r = bench_cube_e2e.run_cmd(cmds, env)
    return r["wall_s"], r["cpu_s"], r["peak_rss_mib"]


def run_gdalwarp(exe, files, outdir: Path, grid, *, mode: str, cachemax_mb: int, wm_mb: int,
                 plain_bilinear: bool = True) -> dict:
    env = dict(ENV0, GDAL_CACHEMAX=str(cachemax_mb))
    outs = {name: str(outdir / f"gdalwarp_{name}.tif") for name, *_ in VIEWS}
    if mode == "sequential":
        wall = cpu = rss = 0.0
        for name, *_ in VIEWS:
            cmd = gdalwarp_cmd(exe, files["dsm"], files[name], outs[name], grid, threads=2, wm_mb=wm_mb,
                               plain_bilinear=plain_bilinear)
            w, c, r = _run_children([cmd], env)
            wall, cpu, rss = wall + w, cpu + c, max(rss, r)
    else:
        cmds = [gdalwarp_cmd(exe, files["dsm"], files[name], outs[name], grid, threads=1, wm_mb=wm_mb,
                             plain_bilinear=plain_bilinear) for name, *_ in VIEWS]
        wall, cpu, rss = _run_children(cmds, env)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "outputs": outs}


def dsm_grid(dsm_path: str, workdir: Path):
    import rasterio

    with rasterio.open(dsm_path) as ds:
        b = ds.bounds
        res = ds.res
        wkt = ds.crs.to_wkt()
    srs = workdir / "dsm_crs.wkt"
    srs.write_text(wkt)
    return (b.left, b.bottom, b.right, b.top), res, str(srs)


def agreement(cube_path: Path, gdal_outputs: dict) -> list[dict]:
    """|offnadir value - gdalwarp| on cells visible in each image where both have a value."""
    import rasterio
    import zarr

    g = zarr.open_group(str(cube_path), mode="r")
    names = [str(v) for v in g["image"][...]]
    rows = []
    for name, path in gdal_outputs.items():
        k = names.index(name)
        vis = np.asarray(g["visible"][k]) == 1
        ours = np.asarray(g["value"][k])  # (band, y, x)
        with rasterio.open(path) as ds:
            theirs = ds.read().astype(np.float32)
        ok = vis & np.all(theirs > 0, axis=0) & np.all(np.isfinite(ours), axis=0)
        d = np.abs(ours[:, ok] - theirs[:, ok])
        n_vis = int(vis.sum())
        rows.append({"image": name, "cells_compared": int(ok.sum()), "visible_cells": n_vis,
                     "median_abs_dn": float(np.median(d)) if d.size else math.nan,
                     "p99_abs_dn": float(np.percentile(d, 99)) if d.size else math.nan,
                     "max_abs_dn": float(d.max()) if d.size else math.nan,
                     "hidden_cells": int((np.asarray(g["visible"][k]) == 0).sum())})
    return rows


# ---------------------------------------------------------------------------- speed
def speed(args) -> dict:
    exe = gdalwarp_path()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="offnadir_bench_cube_"))
    cells = args.size * args.size
    print(f"inputs in {workdir} ...", file=sys.stderr)
    t = time.perf_counter()
    files = make_speed_inputs(workdir, args.size)
    print(f"  ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    grid = dsm_grid(files["dsm"], workdir)
    images = [files[name] for name, *_ in VIEWS]
    cube = workdir / "cube.zarr"
    results: dict = {"size": args.size, "cells": cells, "chunk": args.chunk, "workers": args.workers,
                     "gdalwarp_version": gdal_version(exe), "workdir": str(workdir)}
    load0 = os.getloadavg()

    # rounds: offnadir, then each gdalwarp schedule (the cluster idles meanwhile), so that load
    # from elsewhere on the machine hits every contender alike
    modes = args.gdal_modes.split(",")
    runs: list = []
    gd: dict = {m: {"runs": []} for m in modes}
    cm, client, pids, t_start, t_warm = start_cluster(args.workers)
    mon = ProcessMonitor(pids).start()
    try:
        for k in range(args.repeat):
            r = run_offnadir(client, mon, files["dsm"], images, cube, args.chunk)
            print(f"  offnadir run {k + 1}: plan {r['plan_s']:.2f} s + tiles {r['write_s']:.2f} s, "
                  f"CPU {r['cpu_s']:.1f} s", file=sys.stderr)
            runs.append(r)
            for mode in modes:
                g = run_gdalwarp(exe, files, workdir, grid, mode=mode, cachemax_mb=args.gdal_cachemax,
                                 wm_mb=args.gdal_wm, plain_bilinear=not args.gdal_auto_scale)
                print(f"  gdalwarp {mode} run {k + 1}: {g['wall_s']:.2f} s, CPU {g['cpu_s']:.1f} s",
                      file=sys.stderr)
                gd[mode]["runs"].append(g)
    finally:
        mon.stop()
        cm.__exit__(None, None, None)
    best = min(runs, key=lambda r: r["wall_s"])
    results["offnadir"] = {"startup_s": t_start, "warmup_s": t_warm, "runs": runs, "best": best}
    for mode in modes:
        gd[mode]["best"] = min(gd[mode]["runs"], key=lambda r: r["wall_s"])
    gbest_mode = min(gd, key=lambda m: gd[m]["best"]["wall_s"])
    gbest = gd[gbest_mode]["best"]
    results["gdalwarp"] = {"modes": gd, "best_mode": gbest_mode,
                           "command": " ".join(gdalwarp_cmd(exe, files["dsm"], images[0], "out.tif", grid,
                                                            threads=2, wm_mb=args.gdal_wm,
                                                            plain_bilinear=not args.gdal_auto_scale)),
                           "GDAL_CACHEMAX": args.gdal_cachemax}
    # gdalwarp's outputs of the last mode run are compared; every mode writes the same pixels
    results["agreement"] = agreement(cube, gbest["outputs"])
    results["loadavg_before"] = load0
    results["loadavg_after"] = os.getloadavg()

    o = best
    ow = o["wall_s"]
    rows = [
        {"contender": "offnadir (plan + tiles)", "wall_s": ow, "Mcells_s": cells / ow / 1e6, "cpu_s": o["cpu_s"],
         "peak_worker_MiB": max(v for k, v in o["peak_rss_mib"].items() if k.startswith("worker"))},
        {"contender": "offnadir incl. cluster start", "wall_s": ow + t_start + t_warm,
         "Mcells_s": cells / (ow + t_start + t_warm) / 1e6, "cpu_s": None, "peak_worker_MiB": None},
    ]
    for mode, d in gd.items():
        b = d["best"]
        rows.append({"contender": f"gdalwarp {mode}", "wall_s": b["wall_s"], "Mcells_s": cells / b["wall_s"] / 1e6,
                     "cpu_s": b["cpu_s"], "peak_worker_MiB": b["peak_rss_mib"]})
    ratio_wall = gbest["wall_s"] / ow
    ratio_wall_startup = gbest["wall_s"] / (ow + t_start + t_warm)
    ratio_cpu = gbest["cpu_s"] / o["cpu_s"]
    # medians over the runs (less sensitive to a lucky or unlucky run on a shared machine)
    med = statistics.median
    g_med = min(med(r["wall_s"] for r in gd[m]["runs"]) for m in modes)
    ratio_wall_median = g_med / med(r["wall_s"] for r in runs)
    ratio_cpu_median = min(med(r["cpu_s"] for r in gd[m]["runs"]) for m in modes) / med(r["cpu_s"] for r in runs)
    results["table"] = rows
    results["ratio_wall"] = ratio_wall
    results["ratio_wall_with_startup"] = ratio_wall_startup
    results["ratio_cpu"] = ratio_cpu
    results["ratio_wall_median"] = ratio_wall_median
    results["ratio_cpu_median"] = ratio_cpu_median
    results["goal_met"] = ratio_wall >= GOAL_RATIO

    print()
    print(f"speed: DSM {args.size}x{args.size} cells (0.5 m), 2 images x 4 bands uint16, {args.workers} cores; "
          f"offnadir chunk {args.chunk}, halo {o['halo']}, {o['tiles']} tiles; {results['gdalwarp_version']}")
    print(bc.table(rows, ["contender", "wall_s", "Mcells_s", "cpu_s", "peak_worker_MiB"],
                   ["contender", "wall s", "DSM Mpx/s", "CPU s", "peak RSS per process MiB"]))
    print(f"offnadir start-up: cluster {t_start:.2f} s + worker warm-up {t_warm:.2f} s; "
          f"plan {o['plan_s']:.2f} s, tiles {o['write_s']:.2f} s; CPU s by process: "
          + ", ".join(f"{k} {v:.1f}" for k, v in o["cpu_by_process_s"].items()))
    print(f"ratio offnadir/gdalwarp (best gdalwarp: {gbest_mode}): wall {ratio_wall:.2f}x "
          f"(with start-up {ratio_wall_startup:.2f}x), CPU {ratio_cpu:.2f}x; goal >= {GOAL_RATIO:.0f}x: "
          f"{'met' if results['goal_met'] else 'NOT met'}")
    if args.repeat > 1:
        print(f"medians over {args.repeat} runs: wall {ratio_wall_median:.2f}x, CPU {ratio_cpu_median:.2f}x")
    print(bc.table(results["agreement"], ["image", "cells_compared", "median_abs_dn", "p99_abs_dn", "max_abs_dn",
                                          "hidden_cells"],
                   ["image", "cells compared (visible)", "median |d| DN", "p99 |d| DN", "max |d| DN",
                    "hidden cells"]))
    print(f"load average before {tuple(round(v, 2) for v in load0)}, after "
          f"{tuple(round(v, 2) for v in results['loadavg_after'])}")
    if not args.keep:
        shutil.rmtree(cube, ignore_errors=True)
        for d in gd.values():
            for p in d["best"]["outputs"].values():
                Path(p).unlink(missing_ok=True)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


# ---------------------------------------------------------------------------- memory
def _tile_rows(spec: str | None, n: int) -> range:
    if not spec:
        return range(n)
    a, _, b = spec.partition(":")
    return range(int(a or 0), min(int(b) if b else n, n))


def store_root(store: str | None) -> tuple[Path, bool]:
    """The directory the memory benchmark writes its cube into: ``store`` (made, with its parents,
    when missing) or a new temporary directory. Returns (path, whether this call created it)."""
    if not store:
        return Path(tempfile.mkdtemp(prefix="offnadir_bench_mem_")), True
    root = Path(store)
    if root.exists() and not root.is_dir():
        raise SystemExit(f"bench_cube: --store {root} exists and is not a directory; give a directory "
                         "(it is created when missing).")
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    return root, made


def memory(args) -> dict:
    import dask

    from offnadir import store
    from offnadir.cluster import run_tasks
    from offnadir.cube import dataset as cube_ds
    from offnadir.cube import graph
    from offnadir.pipeline import plan_cube

    dsm = syn.CityDsm((args.size, args.size), seed=args.seed)
    # the procedural sources must not depend on the block asked for (tiles overlap by the halo)
    a, b = dsm.read_block(-40, 300, 950, 1300), dsm.read_block(100, 400, 1000, 1100)
    assert np.array_equal(a[140:, 50:150], b[:200], equal_nan=True), "CityDsm blocks disagree"
    images = [syn.procedural_image(syn.view_camera(dsm, th, az, gsd=args.gsd, kappa_deg=k, name=n), n, seed=s)
              for n, th, az, k, s in VIEWS]
    out_root, made_root = store_root(args.store)
    out = out_root / "cube.zarr"
    results: dict = {"size": args.size, "chunk": args.chunk, "workers": args.workers, "gsd_image_m": args.gsd,
                     "image_shapes": [im.shape for im in images], "store": str(out)}
    cm, client, pids, t_start, t_warm = start_cluster(args.workers)
    mon = ProcessMonitor(pids).start()
    try:
        mon.reset_peaks()
        mon.mark()
        t0 = time.perf_counter()
        with dask.config.set(scheduler=client):
            plan = plan_cube(dsm, images, chunk=args.chunk)
        t1 = time.perf_counter()
        tiles = plan.tiles()
        rows = _tile_rows(args.tile_rows, plan.grid_shape[0])
        todo = [t for t in tiles if t.ti in rows]
        skip = {(t.ti, t.tj) for t in tiles if t.ti not in rows}
        cells_done = sum(t.shape[0] * t.shape[1] for t in todo)
        # bytes per cell: per image row, col, value (4 bands) float32 + visible uint8; dsm float32
        est_gb = cells_done * (len(images) * (4 * (2 + plan.n_bands) + 1) + 4) / 1e9
        free_gb = shutil.disk_usage(out_root).free / 1e9
        print(f"plan: {len(tiles)} tiles ({plan.grid_shape[0]}x{plan.grid_shape[1]}), halo {plan.halo}; "
              f"computing {len(todo)} tiles (rows {rows.start}..{rows.stop - 1}), "
              f"<= {est_gb:.1f} GB uncompressed to {out} ({free_gb:.0f} GB free)", file=sys.stderr)
        if est_gb * 0.8 > free_gb:
            raise SystemExit(f"bench_cube: not enough free space in {out_root} for the cube "
                             f"(~{est_gb:.0f} GB uncompressed); choose --store elsewhere or fewer --tile-rows.")
        template = cube_ds.cube_dataset(plan, graph.empty_arrays(plan))
        store.prepare(out, overwrite=True)
        store.create(out, template, plan.grid_shape, cube_ds.FILL)
        tasks = graph.tile_write_tasks(plan, str(out), skip)
        t2 = time.perf_counter()
        run_tasks(client, tasks, desc="cube tiles", quiet=args.quiet)
        t3 = time.perf_counter()
        cpu = mon.cpu_since()
        store_bytes = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    finally:
        mon.stop()
        cm.__exit__(None, None, None)
        if not args.keep:
            shutil.rmtree(out_root if made_root else out, ignore_errors=True)
    peaks = {k: v / 2**20 for k, v in mon.peak.items()}
    worker_peak = max(v for k, v in peaks.items() if k.startswith("worker"))
    results.update({
        "tiles_total": len(tiles), "tiles_computed": len(todo), "halo": plan.halo,
        "cells_computed": cells_done, "startup_s": t_start, "warmup_s": t_warm, "plan_s": t1 - t0,
        "layout_s": t2 - t1, "tiles_s": t3 - t2, "cpu_s": sum(cpu.values()), "cpu_by_process_s": cpu,
        "peak_rss_mib": peaks, "peak_worker_mib": worker_peak, "store_gb": store_bytes / 1e9,
        "Mcells_s": cells_done / (t3 - t2) / 1e6, "goal_met": worker_peak <= GOAL_WORKER_GIB * 1024,
        "loadavg_after": os.getloadavg(),
    })
    print()
    print(f"memory: procedural DSM {args.size}x{args.size} cells (0.5 m), 2 procedural images "
          f"{images[0].shape[0]}x{images[0].shape[1]} and {images[1].shape[0]}x{images[1].shape[1]} px x 4 bands "
          f"(0.25 m), chunk {args.chunk}, halo {plan.halo}; {len(todo)} of {len(tiles)} tiles computed")
    rows_t = [{"process": k, "peak_rss_MiB": v, "cpu_s": cpu.get(k)} for k, v in peaks.items()]
    print(bc.table(rows_t, ["process", "peak_rss_MiB", "cpu_s"], ["process", "peak RSS MiB", "CPU s"]))
    print(f"plan {t1 - t0:.1f} s, tiles {t3 - t2:.1f} s -> {results['Mcells_s']:.2f} DSM Mpx/s (2 images); "
          f"store {results['store_gb']:.2f} GB (deleted: {not args.keep}); start-up {t_start:.1f} + {t_warm:.1f} s")
    print(f"peak per worker {worker_peak:.0f} MiB; goal <= {GOAL_WORKER_GIB} GiB: "
          f"{'met' if results['goal_met'] else 'NOT met'}")
    return results


# ---------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    sp = sub.add_parser("speed", help="DSM Mpx/s of offnadir vs gdalwarp -rpc -to RPC_DEM")
    sp.add_argument("--size", type=int, default=4096, help="DSM side in cells (default 4096)")
    sp.add_argument("--repeat", type=int, default=1, help="runs of each contender; the best is reported")
    sp.add_argument("--gdal-modes", default="sequential,parallel",
                    help="gdalwarp schedules to time: sequential (one image at a time, 2 threads) and/or "
                         "parallel (both images at once, 1 thread each)")
    sp.add_argument("--gdal-cachemax", type=int, default=1024, help="GDAL_CACHEMAX for gdalwarp, MB")
    sp.add_argument("--gdal-wm", type=int, default=1024, help="gdalwarp -wm, MB")
    sp.add_argument("--gdal-auto-scale", action="store_true",
                    help="leave out -wo XSCALE=1 -wo YSCALE=1 (GDAL's default, wider kernels where relief "
                         "makes the source window larger)")
    sp.add_argument("--workdir", help="where inputs are made (and reused if present); default a temp dir")
    sp.add_argument("--keep", action="store_true", help="keep the cube and gdalwarp outputs")
    mp = sub.add_parser("memory", help="peak RSS per worker on a procedural DSM")
    mp.add_argument("--size", type=int, default=20000, help="DSM side in cells (default 20000)")
    mp.add_argument("--gsd", type=float, default=0.25, help="image pixel size on the ground, m (default 0.25)")
    mp.add_argument("--tile-rows", help="compute only these tile rows, e.g. 0:2 (the plan stays full)")
    mp.add_argument("--store", help="directory for the cube store, made when missing (default a temp dir under /tmp)")
    mp.add_argument("--seed", type=int, default=0)
    mp.add_argument("--keep", action="store_true", help="keep the cube store")
    mp.add_argument("--quiet", action="store_true", help="no progress bar")
    ep = sub.add_parser("e2e", help="offnadir coregister end to end (cold, warm) and the tiles alone vs gdalwarp "
                                    "cubic/bilinear as users run it")
    ep.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[2048, 4096],
                    help="DSM sides in cells, comma-separated (default 2048,4096)")
    ep.add_argument("--gdal-cachemax", type=int, default=1024, help="GDAL_CACHEMAX for gdalwarp, MB")
    ep.add_argument("--gdal-plain-kernel", action="store_true",
                    help="add -wo XSCALE=1 -wo YSCALE=1 (a fixed-size kernel like offnadir's) to gdalwarp")
    ep.add_argument("--workdir", help="where inputs are made (and reused if present); default a temp dir")
    ep.add_argument("--tile-passes", type=int, default=3,
                    help="passes of the tiles alone on the same warm cluster (median reported; default 3)")
    cp = sub.add_parser("scaling", help="tiles/s on 1 and 2 workers, load average printed")
    cp.add_argument("--size", type=int, default=4096, help="DSM side in cells (default 4096)")
    cp.add_argument("--repeat", type=int, default=2, help="rounds of (1 worker, 2 workers)")
    cp.add_argument("--workdir", help="where inputs are made (and reused if present); default a temp dir")
    for p in (sp, mp, ep, cp):
        p.add_argument("--chunk", type=int, default=1024, help="offnadir tile size, cells (default 1024)")
        if p is not cp:
            p.add_argument("--workers", type=int, default=2, help="dask workers = cores used (default 2)")
        p.add_argument("--json", help="save the figures to this JSON file")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning, module="rasterio")
    if args.what in ("e2e", "scaling"):
        import bench_cube_e2e

        res = getattr(bench_cube_e2e, args.what)(args, sys.modules[__name__])
    else:
        res = speed(args) if args.what == "speed" else memory(args)
    facts = bc.machine_facts()
    bc.print_machine(facts)
    if args.json:
        bc.write_json(args.json, {"benchmark": f"bench_cube {args.what}", "argv": sys.argv[1:], "machine": facts,
                                  "results": res})
    return 0


if __name__ == "__main__":
    sys.exit(main())
