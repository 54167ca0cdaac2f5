"""The cube as users run it: ``offnadir coregister`` end to end against ``gdalwarp``, and 1 -> 2 workers.

Run through :mod:`bench_cube` (``python benchmarks/bench_cube.py e2e ...`` / ``... scaling ...``).

**e2e** — for every ``--sizes`` DSM side (inputs of ``bench_cube.make_speed_inputs``: a synthetic
city DSM GeoTIFF and two 4-band uint16 images with RPC tags, 10 and 25 degrees off-nadir), one after
the other in one run:

* ``offnadir coregister`` as a subprocess (``python -m offnadir.cli -v coregister --dsm ... --image ...
  --image ... -o ... --workers W``), *cold* (a fresh, empty ``NUMBA_CACHE_DIR``: what a new
  environment or worker image pays) then *warm* (the same command again, the cache filled by the
  cold run); also warm with ``--no-tie-bias`` (the tie-point stage is part of the default command)
  and warm with ``--local-workers processes`` (worker processes whatever the plan's size: the
  local cluster's workers are threads of the command's process for small plans by default, see
  ``offnadir.cluster.local_workers``). Each run's log line ``timings (s): ...`` (``-v``) gives its
  fixed-cost breakdown: before the run (interpreter, imports), inputs, cluster start, plan, tie
  points, store layout, tiles, finalize, cluster close, and the exit (wall minus the rest); its
  line ``process CPU by step (s): ...`` the same steps in CPU seconds of the command's process
  (all its threads, so the tiles of a threaded local cluster; worker processes not included);
* ``gdalwarp -rpc -to RPC_DEM=dsm.tif`` of both images onto exactly the DSM grid, ``-r cubic`` and
  ``-r bilinear``, GDAL's other options at their defaults (as a user types it): both images one
  after the other with ``-wo NUM_THREADS=1``, both at once with one thread each, and one after the
  other with ``-multi -wo NUM_THREADS=2``;
* the tiles alone: the same plan and tile writes in this process on a local cluster of W workers
  that is already started and warm; the tiles' wall time is from the first tile task's start to
  the last one's end in dask's task stream (plan and store layout excluded). ``--tile-passes``
  (default 3) passes on the same workers; the row gives the medians of wall and CPU, every pass
  is printed (the first pays each worker process's first-tile costs: memory, codec set-up).

Wall and CPU seconds (all processes: ``wait4`` of each command with its children; the cluster's
processes for the tiles), peak RSS, and ``gdalwarp wall / offnadir wall`` per contender. The load
average is printed before and after every size: the machine is shared, compare only within a run.

**scaling** — the tiles of one plan on W = 1 then 2 workers (rounds alternate, ``--repeat``), each
on a freshly started and warmed cluster: tiles/s, speed-up over 1 worker, CPU seconds of the
workers, load average before and after each run. Before each round a control
(:func:`machine_parallelism`): two plain CPU-bound processes against one, i.e. how many cores the
machine gave at that moment (on a shared machine the load average alone does not say it).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import _common as bc

GOAL_E2E = 3.0
GOAL_TILES = 5.0
GOAL_COLD_S = 5.0
GOAL_SCALING = 1.8


def _load() -> tuple:
    return tuple(round(v, 2) for v in os.getloadavg())


class TreePeak:
    """Peak RSS of any single process in the trees of some running processes (sampled by a thread
    every ``interval_s``). ``wait4``'s ``ru_maxrss`` cannot be used for a command started from this
    process: Linux carries the high-water mark of the mm a child had before ``exec`` (this
    process's, shared through vfork) into the child's figure."""

    def __init__(self, pids, interval_s: float = 0.05):
        import psutil

        self._psutil = psutil
        self.roots = [psutil.Process(p) for p in pids]
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self.interval_s = interval_s

    def _sample(self):
        for root in self.roots:
            try:
                procs = [root] + root.children(recursive=True)
            except self._psutil.Error:
                continue
            for p in procs:
                try:
                    self.peak = max(self.peak, p.memory_info().rss)
                except self._psutil.Error:
                    continue

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def run_cmd(cmds: list[list[str]], env: dict) -> dict:
    """Run commands at once; wall s, CPU s (each with its waited-for children), the peak RSS
    (MiB) of any one process of theirs (sampled, see :class:`TreePeak`), and their stderr."""
    t0 = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in cmds]
    cpu = 0.0
    errors, stderr = [], []
    # drain the pipes while the commands run (a verbose command must not block on a full pipe)
    readers = [threading.Thread(target=lambda p=p, k=k: stderr.append((k, p.stderr.read())), daemon=True)
               for k, p in enumerate(procs)] + \
              [threading.Thread(target=p.stdout.read, daemon=True) for p in procs]
    for t in readers:
        t.start()
    with TreePeak([p.pid for p in procs]) as peak:
        for p in procs:
            _, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            cpu += ru.ru_utime + ru.ru_stime
    wall = time.perf_counter() - t0
    for t in readers:
        t.join()
    err = {k: v.decode(errors="replace") for k, v in stderr}
    for k, (p, c) in enumerate(zip(procs, cmds)):
        if p.returncode != 0:
            errors.append(f"{' '.join(c)}\n{err.get(k, '')[-4000:]}")
    if errors:
        raise RuntimeError("command failed:\n" + "\n".join(errors))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mib": peak.peak / 2**20,
            "stderr": "".join(err.get(k, "") for k in range(len(procs)))}


def timings(stderr: str, marker: str = "timings (s):") -> dict:
    """The steps of a run from its ``timings (s): ...`` log line (``offnadir.pipeline.Stopwatch``;
    ``marker="process CPU by step (s):"``: the same steps in CPU seconds of the command's process)."""
    line = next((ln for ln in stderr.splitlines() if marker in ln), None)
    if line is None:
        return {}
    steps, run = line.split(marker, 1)[1].rsplit(";", 1)
    out = {}
    for part in steps.split(","):
        name, _, value = part.strip().rpartition(" ")
        out[name] = float(value)
    out["run"] = float(run.strip().split()[-1])
    return out


def coregister_cmd(files: dict, views, out: Path, workers: int, extra=()) -> list[str]:
    cmd = [sys.executable, "-m", "offnadir.cli", "-v", "coregister", "--dsm", files["dsm"]]
    for name, *_ in views:
        cmd += ["--image", files[name]]
    return cmd + ["-o", str(out), "--overwrite", "--workers", str(workers), *extra]


def gdalwarp_user_cmd(exe, dsm_path, image, out, grid, *, resampling: str, threads: int,
                      plain_kernel: bool) -> list[str]:
    """gdalwarp as a user types it for an RPC + DSM ortho on the DSM grid (see the module doc)."""
    (xmin, ymin, xmax, ymax), (rx, ry), srs = grid
    cmd = [exe, "-q", "-overwrite", "-rpc", "-to", f"RPC_DEM={dsm_path}",
           "-te", repr(xmin), repr(ymin), repr(xmax), repr(ymax), "-tr", repr(rx), repr(ry), "-t_srs", srs,
           "-r", resampling, "-co", "TILED=YES", "-dstnodata", "0"]
    cmd += ["-multi", "-wo", f"NUM_THREADS={threads}"] if threads > 1 else ["-wo", "NUM_THREADS=1"]
    if plain_kernel:
        cmd += ["-wo", "XSCALE=1", "-wo", "YSCALE=1"]
    return cmd + [image, out]


def run_gdalwarp(exe, files, views, outdir: Path, grid, *, resampling: str, schedule: str, env: dict,
                 plain_kernel: bool) -> dict:
    """``schedule``: 'one after the other' (1 thread), 'at once' (1 thread each) or '2 threads'."""
    outs = {name: str(outdir / f"gdalwarp_{resampling}_{name}.tif") for name, *_ in views}
    threads = 2 if schedule == "2 threads" else 1
    cmds = [gdalwarp_user_cmd(exe, files["dsm"], files[name], outs[name], grid, resampling=resampling,
                              threads=threads, plain_kernel=plain_kernel) for name, *_ in views]
    if schedule == "at once":
        r = run_cmd(cmds, env)
    else:
        parts = [run_cmd([c], env) for c in cmds]
        r = {"wall_s": sum(p["wall_s"] for p in parts), "cpu_s": sum(p["cpu_s"] for p in parts),
             "peak_rss_mib": max(p["peak_rss_mib"] for p in parts)}
    r["outputs"] = outs
    return r


def tiles_alone(client, mon, files: dict, views, out: Path, chunk: int) -> dict:
    """Plan, lay out and write the cube on a warm cluster; the tiles' span in the task stream."""
    import dask
    from distributed import get_task_stream

    from offnadir.pipeline import plan_cube, write_cube

    mon.reset_peaks()
    t0 = time.perf_counter()
    with dask.config.set(scheduler=client):
        plan = plan_cube(files["dsm"], [files[name] for name, *_ in views], chunk=chunk)
    t1 = time.perf_counter()
    mon.mark()
    with get_task_stream(client) as ts:
        write_cube(plan, out, client=client, overwrite=True, quiet=True)
    t2 = time.perf_counter()
    cpu = mon.cpu_since()
    spans = []
    for rec in ts.data:
        if "write_tile" not in str(rec.get("key", "")):
            continue
        for ss in rec.get("startstops", ()):
            if ss.get("action") == "compute":
                spans.append((ss["start"], ss["stop"]))
    if not spans:
        raise RuntimeError("bench_cube e2e: no write_tile task in dask's task stream")
    busy = sum(b - a for a, b in spans)
    workers_cpu = sum(v for k, v in cpu.items() if k.startswith("worker"))
    span = max(b for _, b in spans) - min(a for a, _ in spans)
    return {"plan_s": t1 - t0, "write_cube_s": t2 - t1, "tiles_wall_s": span,
            "tiles": len(spans), "task_seconds": busy, "s_per_tile": busy / len(spans),
            "cpu_s": sum(cpu.values()), "workers_cpu_s": workers_cpu, "cpu_by_process_s": cpu,
            "peak_rss_mib": {k: v / 2**20 for k, v in mon.peak.items()}}


def e2e(args, bench) -> dict:
    """See the module doc. ``bench`` is the bench_cube module (inputs, cluster, agreement)."""
    exe = bench.gdalwarp_path()
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="offnadir_bench_e2e_"))
    root.mkdir(parents=True, exist_ok=True)
    views = bench.VIEWS
    sched = [s for s in ("one after the other", "at once", "2 threads")]
    results: dict = {"sizes": {}, "workers": args.workers, "gdalwarp_version": bench.gdal_version(exe),
                     "plain_kernel": args.gdal_plain_kernel, "workdir": str(root)}
    env_gdal = dict(bench.ENV0, GDAL_CACHEMAX=str(args.gdal_cachemax))
    for size in args.sizes:
        wd = root / f"s{size}"
        print(f"[{size}] inputs in {wd} ...", file=sys.stderr)
        files = bench.make_speed_inputs(wd, size)
        grid = bench.dsm_grid(files["dsm"], wd)
        res: dict = {"loadavg_before": _load(), "rows": []}
        rows = res["rows"]

        def add(name, r, kind):
            r = {k: v for k, v in r.items() if k not in ("outputs", "stderr")}
            rows.append({"contender": name, "kind": kind, **r})
            print(f"  [{size}] {name}: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.1f} s, load {_load()}",
                  file=sys.stderr)

        # offnadir coregister, cold then warm (a fresh numba cache directory for this size)
        cache = Path(tempfile.mkdtemp(prefix="numba_cold_", dir=root))
        env_off = dict(bench.ENV0, NUMBA_CACHE_DIR=str(cache))
        out = wd / "coregister.zarr"
        res["steps"] = {}
        for label, extra in (("offnadir coregister (cold: empty numba cache)", ()),
                             ("offnadir coregister (warm)", ()),
                             ("offnadir coregister --no-tie-bias (warm)", ("--no-tie-bias",)),
                             ("offnadir coregister --local-workers processes (warm)",
                              ("--local-workers", "processes"))):
            r = run_cmd([coregister_cmd(files, views, out, args.workers, extra)], env_off)
            steps = timings(r["stderr"])
            if steps:
                before = steps.get("before the run (interpreter and imports)", 0.0)
                steps["exit (after the run)"] = max(0.0, r["wall_s"] - before - steps["run"])
                steps["workers"] = next((ln.split("local cluster workers:", 1)[1].strip()
                                         for ln in r["stderr"].splitlines() if "local cluster workers:" in ln), "?")
            res["steps"][label] = steps
            res.setdefault("cpu_steps", {})[label] = timings(r["stderr"], "process CPU by step (s):")
            add(label, r, "offnadir")
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        outs = {}
        for resampling in ("cubic", "bilinear"):
            for s in sched:
                r = run_gdalwarp(exe, files, views, wd, grid, resampling=resampling, schedule=s, env=env_gdal,
                                 plain_kernel=args.gdal_plain_kernel)
                outs[resampling] = r["outputs"]
                add(f"gdalwarp -r {resampling}, {s}" + (" (1 thread each)" if s != "2 threads" else ""), r,
                    "gdalwarp")
        # the tiles alone, on a warm cluster in this process
        cm, client, pids, t_start, t_warm = bench.start_cluster(args.workers)
        mon = bench.ProcessMonitor(pids).start()
        cube = wd / "tiles.zarr"
        passes = []
        try:  # the same tiles again on the same workers: a single pass on a shared machine is noisy
            for _ in range(max(1, getattr(args, "tile_passes", 3))):
                passes.append(tiles_alone(client, mon, files, views, cube, args.chunk))
        finally:
            mon.stop()
            cm.__exit__(None, None, None)
        med = sorted(passes, key=lambda p: p["tiles_wall_s"])[len(passes) // 2]
        t = dict(med, tiles_wall_s=statistics.median(p["tiles_wall_s"] for p in passes),
                 workers_cpu_s=statistics.median(p["workers_cpu_s"] for p in passes),
                 passes=[{k: p[k] for k in ("tiles_wall_s", "workers_cpu_s", "s_per_tile")} for p in passes])
        t.update(cluster_start_s=t_start, warmup_s=t_warm)
        rows.append({"contender": f"offnadir tiles alone ({t['tiles']} tiles, warm cluster, median of "
                                  f"{len(passes)} passes)", "kind": "tiles",
                     "wall_s": t["tiles_wall_s"], "cpu_s": t["workers_cpu_s"],
                     "peak_rss_mib": max(v for k, v in t["peak_rss_mib"].items() if k.startswith("worker"))})
        res["tiles"] = t
        res["agreement"] = {k: bench.agreement(cube, o) for k, o in outs.items()}
        shutil.rmtree(cube, ignore_errors=True)
        for o in outs.values():
            for p in o.values():
                Path(p).unlink(missing_ok=True)
        res["loadavg_after"] = _load()
        _summarise(size, res)
        results["sizes"][size] = res
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    return results


def _find(rows, start):
    return next(r for r in rows if r["contender"].startswith(start))


def _summarise(size: int, res: dict) -> None:
    rows = res["rows"]
    warm = _find(rows, "offnadir coregister (warm)")
    cold = _find(rows, "offnadir coregister (cold")
    tiles = _find(rows, "offnadir tiles alone")
    for r in rows:
        r["wall_vs_warm"] = r["wall_s"] / warm["wall_s"]
        r["cpu_vs_warm"] = r["cpu_s"] / warm["cpu_s"]
    print()
    print(f"e2e: DSM {size}x{size} cells (0.5 m), 2 images x 4 bands uint16; load average before "
          f"{res['loadavg_before']}, after {res['loadavg_after']}")
    print(bc.table(rows, ["contender", "wall_s", "cpu_s", "peak_rss_mib", "wall_vs_warm", "cpu_vs_warm"],
                   ["contender", "wall s", "CPU s", "peak RSS MiB", "wall / coregister warm",
                    "CPU / coregister warm"]))
    t = res["tiles"]
    print(f"tiles: {t['tiles']} tiles, {t['s_per_tile']:.3f} s per tile in its task, span {t['tiles_wall_s']:.2f} s; "
          f"plan {t['plan_s']:.2f} s, write_cube {t['write_cube_s']:.2f} s; cluster start {t['cluster_start_s']:.2f} s "
          f"+ warm-up {t['warmup_s']:.2f} s (not in the tiles' figure)")
    if len(t.get("passes", ())) > 1:
        print("  tiles alone, every pass (wall s / workers' CPU s; the first on fresh worker processes): "
              + ", ".join(f"{p['tiles_wall_s']:.2f} / {p['workers_cpu_s']:.2f}" for p in t["passes"]))
    goals = []
    for ref in ("at once", "one after the other"):
        g = _find(rows, f"gdalwarp -r cubic, {ref}")
        goals.append((f"coregister warm vs gdalwarp cubic {ref} (1 thread each)", g, warm, GOAL_E2E))
    g = _find(rows, "gdalwarp -r cubic, at once")
    goals.append(("tiles alone vs gdalwarp cubic at once (1 thread each)", g, tiles, GOAL_TILES))
    res["goals"] = []
    for name, g, o, goal in goals:
        ratio, ratio_cpu = g["wall_s"] / o["wall_s"], g["cpu_s"] / o["cpu_s"]
        ok = ratio >= goal
        res["goals"].append({"what": name, "ratio": ratio, "ratio_cpu": ratio_cpu, "goal": goal, "met": ok})
        print(f"  {name}: wall {ratio:.2f}x (goal >= {goal:g}x: {'met' if ok else 'NOT met'}), CPU {ratio_cpu:.2f}x")
    _print_steps(res.get("steps") or {})
    _print_steps(res.get("cpu_steps") or {}, "CPU s of the command's process; worker processes not included")
    pen = cold["wall_s"] - warm["wall_s"]
    res["cold_penalty_s"] = pen
    print(f"  cold-environment penalty (cold - warm wall): {pen:.2f} s (goal <= {GOAL_COLD_S:g} s: "
          f"{'met' if pen <= GOAL_COLD_S else 'NOT met'})")
    for k, rows_a in res["agreement"].items():
        for a in rows_a:
            print(f"  agreement with gdalwarp -r {k}, {a['image']}: median |d| {a['median_abs_dn']:.2f} DN, "
                  f"p99 {a['p99_abs_dn']:.2f} DN on {a['cells_compared']:,} visible cells")


def _print_steps(steps: dict, unit: str = "wall s") -> None:
    """The fixed-cost breakdown of each offnadir run (seconds per step, from its log)."""
    for label, st in steps.items():
        if not st:
            print(f"  {label}: no timings line in its log ({unit})")
            continue
        parts = ", ".join(f"{k} {v:.2f}" for k, v in st.items() if k not in ("run", "workers"))
        where = f" [{st['workers']}]" if "workers" in st else ""
        print(f"  {label}{where}: {parts} ({unit})")


# ---------------------------------------------------------------------------- scaling
_SPIN = "import time\nt=time.process_time()\nn=0\nwhile time.process_time()-t<{cpu}:\n    n+=1\n"


def machine_parallelism(cpu_s: float = 2.0) -> float:
    """How many cores this machine gives right now: ``k`` processes that each burn ``cpu_s`` seconds
    of CPU, run alone then two at once; returns (2 x wall alone) / (wall of two at once), ~2 on an
    idle 2-core machine, ~1 when other work takes one core. The control for the scaling table:
    if plain processes do not scale, the cube's workers cannot either."""
    cmd = [sys.executable, "-c", _SPIN.format(cpu=cpu_s)]
    one = run_cmd([cmd], dict(os.environ))["wall_s"]
    two = run_cmd([cmd, cmd], dict(os.environ))["wall_s"]
    return 2.0 * one / two


def scaling(args, bench) -> dict:
    root = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="offnadir_bench_scaling_"))
    root.mkdir(parents=True, exist_ok=True)
    wd = root / f"s{args.size}"
    files = bench.make_speed_inputs(wd, args.size)
    runs = []
    controls = []
    for k in range(args.repeat):
        controls.append(machine_parallelism())
        print(f"  control, round {k + 1}: two plain CPU-bound processes ran {controls[-1]:.2f}x as fast as one",
              file=sys.stderr)
        for n in (1, 2):
            load0 = _load()
            cm, client, pids, t_start, t_warm = bench.start_cluster(n)
            mon = bench.ProcessMonitor(pids).start()
            try:
                t = tiles_alone(client, mon, files, bench.VIEWS, wd / "scaling.zarr", args.chunk)
            finally:
                mon.stop()
                cm.__exit__(None, None, None)
            r = {"workers": n, "round": k + 1, "tiles": t["tiles"], "tiles_wall_s": t["tiles_wall_s"],
                 "tiles_per_s": t["tiles"] / t["tiles_wall_s"], "workers_cpu_s": t["workers_cpu_s"],
                 "s_per_tile": t["s_per_tile"], "loadavg_before": load0, "loadavg_after": _load()}
            print(f"  {n} worker(s), round {k + 1}: {r['tiles_per_s']:.2f} tiles/s, CPU {r['workers_cpu_s']:.1f} s, "
                  f"load {load0} -> {r['loadavg_after']}", file=sys.stderr)
            runs.append(r)
    shutil.rmtree(wd / "scaling.zarr", ignore_errors=True)
    if not args.workdir:
        shutil.rmtree(root, ignore_errors=True)
    best = {n: max(r["tiles_per_s"] for r in runs if r["workers"] == n) for n in (1, 2)}
    med = {n: statistics.median(r["tiles_per_s"] for r in runs if r["workers"] == n) for n in (1, 2)}
    for r in runs:
        r["speedup"] = r["tiles_per_s"] / best[1]
    print()
    print(f"scaling: DSM {args.size}x{args.size}, chunk {args.chunk}; tiles on 1 and 2 single-threaded workers")
    print(bc.table(runs, ["workers", "round", "tiles", "tiles_wall_s", "tiles_per_s", "speedup", "workers_cpu_s",
                          "s_per_tile", "loadavg_before", "loadavg_after"],
                   ["workers", "round", "tiles", "tiles wall s", "tiles/s", "speed-up vs best 1-worker",
                    "workers CPU s",
                    "s per tile (task)", "load before", "load after"]))
    sp, spm = best[2] / best[1], med[2] / med[1]
    print(f"1 -> 2 workers: {sp:.2f}x best-of-{args.repeat}, {spm:.2f}x on medians (goal >= {GOAL_SCALING}x on an "
          f"idle machine: {'met' if sp >= GOAL_SCALING else 'NOT met'}; {os.cpu_count()} CPUs, load now {_load()})")
    print(f"control: two plain CPU-bound processes at once ran {', '.join(f'{c:.2f}' for c in controls)}x as fast "
          "as one (2.0 = two free cores): what this machine allowed during the rounds")
    return {"size": args.size, "chunk": args.chunk, "runs": runs, "speedup_best": sp, "speedup_median": spm,
            "control_parallelism": controls}
