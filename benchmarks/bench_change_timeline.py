"""Where the change stage's wall time goes on two cores: every task's start, end and CPU, the idle
core-seconds per pass, the CPU of each thread of the process and the client's phases.

    python benchmarks/bench_change_timeline.py STORE [--workdir DIR] [--repeat N] [--keep]

STORE: a store ``offnadir detect`` wrote (e.g. ``bench_detect.py``'s ``bench_detect_2048.zarr``).
Its cube (without the change stage's arrays and attributes) is copied to ``DIR/cube.zarr`` once,
then each repeat copies that to ``DIR/run.zarr`` and runs :func:`offnadir.change.stage.detect_store`
on it as ``offnadir detect`` runs it on that scene size: a local cluster of two worker threads in
this process (``cluster.dask_client(processes=False)``), the client's modules imported first (as
``offnadir.change.preload`` does during the cube stage).

Printed per run: the CPU seconds of every thread of the process during the stage (the two task
threads, the client's main thread, distributed's event loop, zarr's), the client's phases (start,
wall, main-thread CPU: opening the cube, the set-up of the change arrays when it is a function of
its own, the passes, the table's write, the metadata's consolidation), and per pass its wall and
process CPU, the CPU inside its tasks, the idle core-seconds (2 x wall - time inside tasks) and
each task as ``name wall/CPU@start``. On a shared machine wall figures move with the load; run it
alternately on two trees (``PYTHONPATH=tree/src``) and compare CPU first. ``--keep``: leave the
last run's store for an A/B comparison of its arrays.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from pathlib import Path

#: the per-tile task functions of the passes and the reductions between them
TASKS = ("_stats_tile", "_segment_and_mark", "_evidence_tile", "_sums_tile", "_maps_tile", "_fit_task",
         "_add_stats", "_add_sums", "_hist_of")


def cube_only(store: Path, dest: Path) -> Path:
    """A copy of ``store`` without the change stage's arrays and attributes (a fresh cube)."""
    import zarr

    from offnadir.change import history as H
    from offnadir.change.options import ChangeOptions
    from offnadir.change.stage import _var_names
    from offnadir.change.tasks import PROGRESS

    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(store, dest)
    g = zarr.open_group(str(dest), mode="r+", use_consolidated=False)
    names = set(_var_names(ChangeOptions()))
    for n in list(g.array_keys()):
        if n in names or n in H.NAMES or n == PROGRESS or n.startswith("patch_") or n == "patch_id":
            del g[n]
    attrs = {k: v for k, v in dict(g.attrs).items() if not k.startswith("change")}
    g.attrs.clear()
    g.attrs.update(attrs)
    zarr.consolidate_metadata(str(dest))
    return dest


class Recorder:
    """(name, thread, start, end, thread CPU) of every call of the wrapped functions. Kept on a
    module the tasks import (offnadir.logs): dask pickles the wrappers by value."""

    def __init__(self):
        import offnadir.logs as L

        L._timeline = self.rows = []

    def wrap(self, mod, name):
        orig = getattr(mod, name)

        def f(*a, **k):
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return orig(*a, **k)
            finally:
                __import__("offnadir.logs").logs._timeline.append(
                    (name, threading.get_ident(), t0, time.perf_counter(), time.thread_time() - c0))
        setattr(mod, name, f)


def _thread_cpu() -> dict:
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for t in threading.enumerate():
        try:
            f = open(f"/proc/self/task/{t.native_id}/stat").read().rsplit(")", 1)[1].split()
        except (OSError, TypeError):
            continue
        out[t.native_id] = (t.name, (int(f[11]) + int(f[12])) / tick)
    return out


def run_once(cube: Path, work: Path) -> None:
    import dask
    import psutil

    from offnadir.change import cells, runner, stage, tasks
    from offnadir.cluster import dask_client

    rec = Recorder()
    saved = []
    for n in TASKS:
        for mod in (tasks, runner):
            if hasattr(mod, n):
                saved.append((mod, n, getattr(mod, n)))
                rec.wrap(mod, n)
    for n in ("add_evidence", "add_grouped"):
        saved.append((cells, n, getattr(cells, n)))
        rec.wrap(cells, n)
    proc = psutil.Process()

    def cpu():
        c = proc.cpu_times()
        return c.user + c.system

    passes, phases = [], []

    def timed(mod, name, into, label=None, clock=time.thread_time):
        if not hasattr(mod, name):
            return
        orig = getattr(mod, name)
        saved.append((mod, name, orig))

        def f(*a, **k):
            t0, c0 = time.perf_counter(), clock()
            try:
                return orig(*a, **k)
            finally:
                into.append((label or name, t0, time.perf_counter(), clock() - c0))
        setattr(mod, name, f)

    for m in runner.Runner.PASSES:
        timed(runner.Runner, m, passes, clock=cpu)
    import zarr

    import offnadir.store as S

    for mod, name in ((S, "open_dataset"), (stage, "_set_up"), (stage, "run_all"), (stage, "table"),
                      (zarr, "consolidate_metadata")):
        timed(mod, name, phases)
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(cube, work)
    try:
        with dask_client(None, 2, quiet=True, processes=False) as client:
            with dask.config.set(scheduler=client):
                th0 = _thread_cpu()
                t0, c0 = time.perf_counter(), cpu()
                stage.detect_store(work, client=client)
                wall, pcpu = time.perf_counter() - t0, cpu() - c0
                th1 = _thread_cpu()
    finally:
        for mod, name, orig in reversed(saved):
            setattr(mod, name, orig)
    rows = rec.rows
    print(f"load {os.getloadavg()[0]:.1f}; detect_store wall {wall:.2f} s, process CPU {pcpu:.2f} s")
    per = [(n, v - th0.get(k, (n, 0.0))[1]) for k, (n, v) in th1.items()]
    print("CPU per thread: " + ", ".join(f"{n} {c:.2f}" for n, c in sorted(per, key=lambda p: -p[1]) if c >= 0.01))
    print("client phases (start, wall/main-thread CPU): "
          + "; ".join(f"{n} @{a - t0:.2f} {b - a:.2f}/{c:.2f}" for n, a, b, c in phases))
    busy_all = 0.0
    for m, a, b, c in passes:
        ts = sorted((r for r in rows if r[2] >= a - 1e-6 and r[3] <= b + 1e-6), key=lambda r: r[2])
        threads = {}
        for r in ts:
            threads.setdefault(r[1], []).append(r)
        busy = sum(r[3] - r[2] for r in ts)
        busy_all += busy
        desc = "; ".join(f"th{i}: " + " ".join(f"{r[0].strip('_')[:4]} {r[3] - r[2]:.2f}/{r[4]:.2f}@{r[2] - a:.2f}"
                                              for r in v) for i, v in enumerate(threads.values()))
        print(f"{m:9s} wall {b - a:5.2f} CPU {c:5.2f} in tasks {sum(r[4] for r in ts):5.2f} "
              f"idle core-s {2 * (b - a) - busy:5.2f} | {desc}")
    print(f"passes {sum(b - a for _, a, b, _ in passes):.2f} s of {wall:.2f} s; idle core-s over the stage "
          f"{2 * wall - busy_all:.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", type=Path)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/offnadir_bench_change_timeline"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args(argv)
    if not (a.store / ".zgroup").exists() and not (a.store / "zarr.json").exists():
        sys.exit(f"bench_change_timeline: {a.store} is not a Zarr store; give one `offnadir detect` wrote.")
    a.workdir.mkdir(parents=True, exist_ok=True)
    import offnadir.change.preload as PL

    PL._run(PL.CLIENT_MODULES)
    cube = cube_only(a.store, a.workdir / "cube.zarr")
    for _ in range(a.repeat):
        run_once(cube, a.workdir / "run.zarr")
    if not a.keep:
        shutil.rmtree(a.workdir / "run.zarr", ignore_errors=True)
    shutil.rmtree(cube, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
