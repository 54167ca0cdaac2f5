"""The cube side of ``offnadir detect`` (plan, tie points, tile writes) per stage and per process.

    python benchmarks/bench_cube_side.py [--size 2048] [--workdir /tmp/cube_side] [--reps 3]
                                         [--threads] [--full] [--json out.json]

Inputs: ``offnadir simulate --size SIZE --seed 0`` (as :mod:`bench_detect`), made once in
``WORKDIR/sim{SIZE}`` and reused. Each repetition starts a fresh local cluster of two workers
(single-threaded worker processes, as ``bench_detect`` runs them; ``--threads``: two threads in
this process, what ``offnadir detect`` picks for plans this small) and runs the config of
``offnadir detect --dsm dsm.tif --base base.tif --target target.tif`` up to the written cube
(``--full``: with the height sweep and the change stage too). Printed per repetition and stage:
wall seconds and CPU seconds of every process (this one, which holds the scheduler and the client,
then each worker): on a shared machine wall seconds follow the load, CPU seconds much less so, and
the split shows where work and first-use costs (imports, numba cache loads in each fresh worker
process) land. A fresh cluster per repetition is what a command pays; within one process the
Python imports of the client are paid by the first repetition only.

To compare two versions, run this script alternately from both (e.g. a ``git worktree`` of the
older commit with ``PYTHONPATH=WORKTREE/src``) and compare the CPU columns.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(scene: Path, out: Path, *, processes: bool, full: bool) -> list[tuple[str, float, list[float]]]:
    import dask
    import psutil

    from offnadir import pipeline
    from offnadir.cluster import dask_client
    from offnadir.config import validate
    from offnadir.cube import tiepoints

    cfg = validate({"dsm": {"path": str(scene / "dsm.tif")},
                    "images": [{"path": str(scene / "base.tif")}, {"path": str(scene / "target.tif")}],
                    "output": {"path": str(out), "overwrite": True}, "change": {"enabled": True}},
                   base=".", source="bench_cube_side")
    rows: list = []
    if out.exists():
        shutil.rmtree(out)
    with dask_client(None, 2, quiet=True, processes=processes) as client:
        pids = [os.getpid()] + sorted(set(client.run(os.getpid).values()) - {os.getpid()})
        procs = [psutil.Process(p) for p in pids]

        def cpu():
            return [sum(p.cpu_times()[:2]) for p in procs]

        def timed(name, fn):
            def wrap(*a, **k):
                t0, c0 = time.perf_counter(), cpu()
                try:
                    return fn(*a, **k)
                finally:
                    rows.append((name, time.perf_counter() - t0, [b - a for a, b in zip(c0, cpu())]))
            return wrap

        patches = [(pipeline, "plan_cube", "plan"), (tiepoints, "run_for_config", "tie points"),
                   (pipeline, "write_cube", "tile writes")]
        saved = [(o, a, getattr(o, a)) for o, a, _ in patches]
        for o, a, name in patches:
            setattr(o, a, timed(name, getattr(o, a)))
        t0, c0 = time.perf_counter(), cpu()
        try:
            with dask.config.set(scheduler=client):
                if full:
                    pipeline.detect_config(cfg, quiet=True, client=client)
                else:
                    pipeline.run_config(cfg, quiet=True, stage_hooks=(), client=client)
        finally:
            for o, a, f in saved:
                setattr(o, a, f)
        rows.append(("detect, end to end" if full else "cube side, end to end", time.perf_counter() - t0,
                     [b - a for a, b in zip(c0, cpu())]))
    return rows


def main(argv=None) -> int:
    import bench_detect

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/cube_side"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", action="store_true", help="two threads in this process instead of worker processes")
    ap.add_argument("--full", action="store_true", help="run the height sweep and the change stage too")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    scene = bench_detect.make_scene(a.workdir, a.size)
    out = a.workdir / f"cube_side_{a.size}.zarr"
    kind = "2 threads in this process" if a.threads else "2 single-threaded worker processes"
    print(f"DSM {a.size}^2, 2 images, local cluster of {kind}, fresh per repetition; CPU s: all (this process / "
          f"each worker{'' if not a.threads else ': none, the threads are in this process'})")
    reps = []
    for r in range(a.reps):
        load = os.getloadavg()[0]
        rows = run(scene, out, processes=not a.threads, full=a.full)
        reps.append({"load": load, "rows": rows})
        print(f"repetition {r + 1} (load average {load:.2f})")
        for name, wall, cpus in rows:
            print(f"  {name:<24} wall {wall:6.2f} s   CPU {sum(cpus):6.2f} s ({' / '.join(f'{c:.2f}' for c in cpus)})")
    if a.json:
        a.json.write_text(json.dumps({"size": a.size, "threads": a.threads, "full": a.full, "reps": reps}, indent=1))
    return 0


if __name__ == "__main__":
    if "--help" not in sys.argv and "-h" not in sys.argv:
        import multiprocessing

        multiprocessing.freeze_support()
    sys.exit(main())
