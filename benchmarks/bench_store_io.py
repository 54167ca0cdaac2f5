"""CPU of the change stage's tile reads and writes (``change.tileio.StoreIO``) alone, replayed.

    python benchmarks/bench_store_io.py record CALLS.pkl [--size 2048] [--workdir DIR]
    python benchmarks/bench_store_io.py time CALLS.pkl [--repeat 3]

``record``: runs ``bench_detect``'s offnadir run (``offnadir simulate --size SIZE --seed 0``, made
once in ``WORKDIR/sim{SIZE}``; ``offnadir detect`` with defaults on a local threaded cluster) with
every ``StoreIO.read``/``write``/``has`` logged (array, key, run token or not, frozen arrays), and
pickles the log with the path of the finished store. ``time``: copies that store, reads the values
every logged write wrote (outside the timing), then replays the calls in order in one thread:
once to warm up, then ``--repeat`` times, each with a fresh run token (so the run's chunk cache
starts empty, as in a run), printing the whole process's CPU seconds (``getrusage``: zarr-python's
own threads included) and wall seconds per replay. Run ``time`` alternately from two trees
(``PYTHONPATH=tree/src``) to compare them; the log does not depend on the tree.
"""

from __future__ import annotations

import argparse
import pickle
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def record(out: Path, size: int, workdir: Path) -> int:
    import bench_detect

    from offnadir.change import tileio

    log, lock = [], threading.Lock()
    saved = []
    for op in ("read", "write", "has"):
        orig = getattr(tileio.StoreIO, op)

        def f(self, name, *a, _orig=orig, _op=op):
            with lock:
                log.append((_op, name, a[0] if a else None, self.run is not None, tuple(sorted(self.frozen))))
            return _orig(self, name, *a)
        saved.append((op, orig))
        setattr(tileio.StoreIO, op, f)
    workdir.mkdir(parents=True, exist_ok=True)
    scene = bench_detect.make_scene(workdir, size)
    store = workdir / f"store_io_{size}.zarr"
    try:
        bench_detect.run_offnadir(scene, store, 2, "auto")
    finally:
        for op, orig in saved:
            setattr(tileio.StoreIO, op, orig)
    with open(out, "wb") as fh:
        pickle.dump({"store": str(store), "calls": log}, fh)
    print(f"{len(log)} calls ({sum(c[0] == 'read' for c in log)} reads, {sum(c[0] == 'write' for c in log)} writes, "
          f"{sum(c[0] == 'has' for c in log)} has) -> {out}; store {store}")
    return 0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def replay(pkl: Path, repeat: int) -> int:
    import numpy as np
    import zarr

    from offnadir.change import tileio

    with open(pkl, "rb") as fh:
        rec = pickle.load(fh)
    work = Path(rec["store"]).with_name(Path(rec["store"]).stem + "_replay.zarr")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(rec["store"], work)
    try:
        g = zarr.open_group(str(work), mode="r")
        data = [np.asarray(g[name][key]) if op == "write" else None for op, name, key, _, _ in rec["calls"]]

        def once(token):
            for (op, name, key, run, frozen), d in zip(rec["calls"], data):
                io = tileio.StoreIO(str(work), token if run else None, frozen)
                if op == "read":
                    io.read(name, key)
                elif op == "write":
                    io.write(name, key, d)
                else:
                    io.has(name)
            if hasattr(tileio, "forget"):
                tileio.forget(token)

        once("warm-up")
        for r in range(repeat):
            c0, t0 = _cpu(), time.perf_counter()
            once(f"replay-{r}")
            print(f"replay {r + 1}: {len(rec['calls'])} calls, CPU {_cpu() - c0:.3f} s (process), "
                  f"wall {time.perf_counter() - t0:.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("record", "time"))
    ap.add_argument("pkl", type=Path)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/offnadir_bench_store_io"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    return record(a.pkl, a.size, a.workdir) if a.mode == "record" else replay(a.pkl, a.repeat)


if __name__ == "__main__":
    sys.exit(main())
