"""Where the tie-point step's wall goes on a threaded local cluster, as `offnadir detect` runs it.

    python benchmarks/bench_tie_step.py [SCENE] [--workers 2] [--timeline]
    python benchmarks/bench_tie_step.py --dsm DSM --image BASE --image TARGET ... [--date D --date D ...]

SCENE: a folder with dsm.tif, base.tif, target.tif (default: bench_detect's simulated 2048^2
scene, /tmp/offnadir_bench_detect/sim2048; make it with `python benchmarks/bench_detect.py` once).
The scene is planned as the pipeline plans it (local cluster of threads in this process, with its
kernel preload thread), then the tie-point step runs once, cold, as in a run. Printed: the step's
wall and this process's CPU seconds over it (other threads included), the wall inside the gathers
(the blocks' dask tasks) and outside them (the client's fits and imports), the worker threads'
busy seconds in the tasks, the idle thread-seconds inside the gathers (threads x gather wall minus
busy), and the delay from each gather's call to its first task's start; with ``--timeline`` every
task, fit and measurement with its thread and times.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
import time


def _timed(f, key, *a, **k):
    """Run ``f``, recording (key, thread, start, end) on the tie-point module (reachable from a
    task pickled by value: the record lives in an importable module, not in this script)."""
    t = time.perf_counter()
    try:
        return f(*a, **k)
    finally:
        import offnadir.cube.tiepoints as tp

        tp.__dict__.setdefault("_bench_events", []).append((key, threading.current_thread().name, t,
                                                            time.perf_counter()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", nargs="?", default="/tmp/offnadir_bench_detect/sim2048")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeline", action="store_true")
    ap.add_argument("--dsm", help="a DSM instead of SCENE's (with --image, base first)")
    ap.add_argument("--image", action="append", default=[])
    ap.add_argument("--date", action="append", default=[], help="per --image, in order")
    a = ap.parse_args(argv)

    import dask

    from offnadir import pipeline
    from offnadir.cluster import dask_client
    from offnadir.config import validate
    from offnadir.cube import tie_tasks, tiebias, tiepoints
    from offnadir.io.dsm import open_dsm_source

    for mod, name in ((tiebias, "gather"), (tiebias, "_measure_labelled"), (tiebias, "fit_robust"),
                      (tie_tasks, "block_data_row")):
        setattr(mod, name, functools.partial(_timed, getattr(mod, name), name))
    paths = a.image or [f"{a.scene}/base.tif", f"{a.scene}/target.tif"]
    dates = a.date or [None] * len(paths)
    raw = {"dsm": {"path": a.dsm or f"{a.scene}/dsm.tif"},
           "images": [{"path": p, "date": d} for p, d in zip(paths, dates)],
           "output": {"path": "unused.zarr", "overwrite": True}, "change": {"enabled": True}}
    cfg = validate(raw, base=".", source="bench_tie_step")
    d = cfg["dsm"]
    dsm = open_dsm_source(d["path"], geoid=d["geoid"], vertical_datum=d["vertical_datum"], band=d["band"])
    images = pipeline.load_images(cfg["images"])
    with dask_client(None, a.workers, quiet=True, processes=False) as client:
        with dask.config.set(scheduler=client):
            plan = pipeline.plan_cube(dsm, images, chunk=cfg["tiling"]["chunk"],
                                      lattice_step=cfg["tiling"]["lattice_step"], z_tol=cfg["occlusion"]["z_tol"])
            c0, t0 = time.process_time(), time.perf_counter()
            _, report = tiepoints.run_for_config(plan, cfg, quiet=True)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ev = sorted(getattr(tiepoints, "_bench_events", []), key=lambda e: e[2])
    gathers = [(s, e) for k, _, s, e in ev if k == "gather"]
    tasks = [(s, e) for k, _, s, e in ev if k == "block_data_row"]
    g_wall = sum(e - s for s, e in gathers)
    busy = sum(e - s for s, e in tasks)
    delay = sum(min((s for s, _ in tasks if gs <= s <= ge), default=ge) - gs for gs, ge in gathers)
    print(f"tie step: wall {wall:.3f} s, process CPU {cpu:.3f} s; {len(gathers)} gathers {g_wall:.3f} s "
          f"(outside them {wall - g_wall:.3f} s), {len(tasks)} tasks busy {busy:.3f} thread-s, idle in the gathers "
          f"{a.workers * g_wall - busy:.3f} thread-s, gather call to first task {delay:.3f} s")
    for entry in report[1:]:
        print(f"  {entry.get('image')}: blocks {entry.get('blocks_measured')}, points {entry.get('n_points')}")
    if a.timeline:
        for k, th, s, e in ev:
            print(f"  {k:18s} {th[-14:]:14s} {s - t0:7.3f} .. {e - t0:7.3f}  ({e - s:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
