"""Where the two cores idle over a whole `offnadir detect` run: every task's interval per worker
thread (distributed's task stream), the stages and the change stage's passes, and the gaps where
fewer tasks run than there are worker threads, each with what the client's main thread did then.

    python benchmarks/bench_run_timeline.py [--size 2048] [--workdir DIR] [--repeat N] [--gap 0.03]
                                            [--keep] [--json out.json]

The scene is ``bench_detect.py``'s (``offnadir simulate --size SIZE --seed 0``, made once in
``WORKDIR/simSIZE`` and reused); the run is ``bench_detect.py``'s (defaults, change detection on,
a local cluster of two worker threads in this process as ``offnadir detect`` runs this size), with
the same per-stage wrappers. Printed per run: the cluster's start-up before it; per stage and per pass
its wall, the core-seconds inside tasks, the idle core-seconds (threads x wall - inside tasks) and
the CPU seconds of the worker threads, the main thread, the event loop and offnadir's own threads
(kernel preload, tie-point measuring; a thread that ended keeps its figure); then every gap of at least
``--gap`` s in which fewer than all worker threads ran a task: its start and length, how many
threads were idle, the stage or pass it falls in, the tasks before and after it, and the CPU of
the client's main thread and of the event loop during it (sampled from ``/proc/self/task`` every
10 ms: so CPU figures are in 10 ms ticks). Wall figures move with the machine's load: compare two
trees alternately (``PYTHONPATH=tree/src``). ``--keep`` leaves the last run's store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_detect as BD  # noqa: E402 - the scene and the per-stage wrappers


class ThreadSampler:
    """(time, {thread name: CPU s}) of every thread of this process, every ``every`` seconds."""

    def __init__(self, every=0.01):
        self.every, self.rows, self.stacks, self._stop = every, [], [], threading.Event()
        self._main = threading.main_thread().ident
        self._tick = os.sysconf("SC_CLK_TCK")
        self._t = threading.Thread(target=self._loop, name="q-sampler", daemon=True)

    def _names(self):
        return {t.native_id: t.name for t in threading.enumerate()}

    def _loop(self):
        last = {}  # tid -> (name, CPU s): a thread that ended keeps its last figure (no negative deltas)
        while not self._stop.is_set():
            names = self._names()
            for tid in os.listdir("/proc/self/task"):
                try:
                    f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                n = names.get(int(tid), last.get(tid, (f"tid{tid}",))[0])
                last[tid] = (n, (int(f[11]) + int(f[12])) / self._tick)
            out = {}
            for n, v in last.values():
                out[n] = out.get(n, 0.0) + v
            self.rows.append((time.time(), out))
            frame = sys._current_frames().get(self._main)
            self.stacks.append((time.time(), _where(frame)))
            self._stop.wait(self.every)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()

    def cpu(self, name, a, b):
        """CPU seconds of the threads whose name starts with ``name`` (or, for the worker threads, holds
        ``Dask-Default-Threads``: a local cluster's are named ``0-Dask-Default-Threads-...``) between
        times ``a`` and ``b``."""
        def at(t):
            best = None
            for ts, d in self.rows:
                if ts <= t:
                    best = d
                else:
                    break
            best = best or (self.rows[0][1] if self.rows else {})
            return sum(v for k, v in best.items() if k.startswith(name) or (name == WORKERS and name in k))
        return at(b) - at(a)


#: the worker threads of a threaded local cluster (named ``0-Dask-Default-Threads-PID-N``)
WORKERS = "Dask-Default-Threads"
#: per-stage CPU columns: (title, thread name prefixes)
GROUPS = (("workers", (WORKERS, "ThreadPoolExecutor")), ("main", ("MainThread",)),
          ("loop", ("IO loop", "Dask-Offload")),
          ("offnadir threads", ("offnadir",)))


def _where(frame, depth=3):
    """The main thread's innermost frames of offnadir (up to ``depth``) and its innermost frame."""
    own, leaf = [], None
    while frame is not None:
        c = frame.f_code
        if leaf is None:
            leaf = f"{Path(c.co_filename).stem}.{c.co_name}"
        if "offnadir" in c.co_filename and len(own) < depth:
            own.append(f"{Path(c.co_filename).stem}.{c.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(own) + f" [{leaf}]"


def run_once(scene: Path, out: Path, workers: int, gap: float) -> dict:
    import dask
    from distributed import get_task_stream

    from offnadir import pipeline
    from offnadir.cluster import dask_client, local_workers
    from offnadir.config import validate
    from offnadir.cube import sweep_stage, tiepoints
    from offnadir.change import stage as change_stage

    raw = {"dsm": {"path": str(scene / "dsm.tif")},
           "images": [{"path": str(scene / "base.tif")}, {"path": str(scene / "target.tif")}],
           "output": {"path": str(out), "overwrite": True}, "change": {"enabled": True}}
    cfg = validate(raw, base=".", source="bench_run_timeline")
    marks = []  # (name, start, end) in time.time()

    def mark(name, fn):
        def f(*a, **k):
            t0 = time.time()
            try:
                return fn(*a, **k)
            finally:
                marks.append((name, t0, time.time()))
        return f

    runner = change_stage.Runner
    patches = [(pipeline, "plan_cube", "plan"), (tiepoints, "run_for_config", "tie points"),
               (pipeline, "write_cube", "tile writes"), (sweep_stage.SweepStage, "__call__", "height sweep"),
               (pipeline._ChangeStage, "__call__", "change stage")]
    patches += [(runner, m, "  " + m) for m in runner.PASSES]
    saved = [(o, a, getattr(o, a)) for o, a, _ in patches]
    for o, a, name in patches:
        setattr(o, a, mark(name, getattr(o, a)))
    if out.exists():
        shutil.rmtree(out)
    size = BD._dsm_cells(scene / "dsm.tif")
    processes, why = local_workers("auto", workers, size, 2)
    try:
        ts0 = time.time()
        with dask_client(None, workers, quiet=True, processes=processes, options=_run_options(cfg)) as client:
            startup = time.time() - ts0
            nthreads = sum(client.nthreads().values())
            with ThreadSampler() as smp, get_task_stream(client) as ts:
                t0 = time.time()
                with dask.config.set(scheduler=client):
                    pipeline.detect_config(cfg, quiet=True, client=client)
                t1 = time.time()
                time.sleep(0.05)
            tasks = [(r["key"], r.get("thread"), s["start"], s["stop"]) for r in ts.data
                     for s in r.get("startstops", ()) if s.get("action") == "compute"]
    finally:
        for o, a, f in reversed(saved):
            setattr(o, a, f)
    return {"why": why, "threads": nthreads, "startup": startup, "t0": t0, "t1": t1, "marks": marks, "tasks": tasks,
            "sampler": smp,
            "processes": processes}


def _name(key):
    k = key[0] if isinstance(key, tuple) else key
    return str(k).rsplit("-", 1)[0][:28]


def report(r: dict, gap: float) -> dict:
    t0, t1, n = r["t0"], r["t1"], r["threads"]
    tasks = sorted(r["tasks"], key=lambda x: x[2])
    smp = r["sampler"]
    # busy count over time: events
    ev = sorted([(a, 1) for _, _, a, _ in tasks] + [(b, -1) for _, _, _, b in tasks])
    gaps, busy, last = [], 0, t0
    for t, d in ev + [(t1, 0)]:
        if busy < n and t - last >= gap and last >= t0:
            gaps.append((last, t, n - busy))
        elif busy < n and t - last >= gap:
            gaps.append((t0, t, n - busy))
        busy += d
        last = t
    wall = t1 - t0
    inside = sum(min(b, t1) - max(a, t0) for _, _, a, b in tasks if b > t0 and a < t1)
    print(f"run wall {wall:.2f} s on {n} worker threads ({r['why']}); inside tasks {inside:.2f} core-s, idle "
          f"{n * wall - inside:.2f} core-s; load {os.getloadavg()[0]:.1f}; cluster start-up before it "
          f"{r['startup']:.2f} s")
    print(f"main thread CPU {smp.cpu('MainThread', t0, t1):.2f} s, event loop "
          f"{smp.cpu('IO loop', t0, t1) + smp.cpu('Dask-Offload', t0, t1):.2f} s, workers' threads "
          f"{smp.cpu(WORKERS, t0, t1) + smp.cpu('ThreadPoolExecutor', t0, t1):.2f} s, all threads "
          f"{smp.cpu('', t0, t1):.2f} s")
    rows = []
    for name, a, b in sorted(r["marks"], key=lambda m: m[1]):
        ins = sum(max(0.0, min(y, b) - max(x, a)) for _, _, x, y in tasks)
        idle = n * (b - a) - ins
        gl = sum(max(0.0, min(y, b) - max(x, a)) * k for x, y, k in gaps)
        cpu = {title: sum(smp.cpu(p, a, b) for p in prefixes) for title, prefixes in GROUPS}
        cpu["all"] = smp.cpu("", a, b)
        rows.append({"name": name.strip(), "start": a - t0, "wall": b - a, "in_tasks": ins, "idle": idle,
                     "main_cpu": smp.cpu("MainThread", a, b), "cpu": cpu})
        print(f"{name:<16} @{a - t0:6.2f} wall {b - a:5.2f} in tasks {ins:5.2f} idle core-s {idle:5.2f} "
              f"(in gaps >= {gap:g} s {gl:5.2f}) CPU s: " + " ".join(f"{k} {v:.2f}" for k, v in cpu.items()))
    print(f"gaps >= {gap:g} s with idle threads: {len(gaps)}, {sum((b - a) * k for a, b, k in gaps):.2f} core-s")
    where = lambda t: ",".join(m[0].strip() for m in r["marks"] if m[1] <= t < m[2]) or "-"  # noqa: E731
    for a, b, k in gaps:
        before = [x for x in tasks if x[3] <= a + 1e-4]
        after = [x for x in tasks if x[2] >= b - 1e-4]
        bn = _name(max(before, key=lambda x: x[3])[0]) if before else "-"
        an = _name(min(after, key=lambda x: x[2])[0]) if after else "-"
        print(f"  @{a - t0:6.2f} {b - a:5.2f} s x{k} [{where(a)}] after {bn} before {an}; main "
              f"{smp.cpu('MainThread', a, b):.2f} loop {smp.cpu('IO loop', a, b):.2f} "
              f"other {smp.cpu('offnadir', a, b):.2f} all {smp.cpu('', a, b):.2f}")
        seen = {}
        for ts, w in smp.stacks:
            if a <= ts < b:
                seen[w] = seen.get(w, 0) + 1
        for w, c in sorted(seen.items(), key=lambda x: -x[1])[:3]:
            print(f"      {c:3d} x {w}")
    return {"wall": wall, "startup": r["startup"], "inside": inside, "stages": rows,
            "gaps": [(a - t0, b - a, k, where(a)) for a, b, k in gaps]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/offnadir_bench_detect"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--gap", type=float, default=0.03)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    scene = BD.make_scene(a.workdir, a.size)
    out = a.workdir / f"timeline_{a.size}.zarr"
    res = []
    for _ in range(a.repeat):
        res.append(report(run_once(scene, out, a.workers, a.gap), a.gap))
    if not a.keep:
        shutil.rmtree(out, ignore_errors=True)
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=str))
    return 0


def _run_options(cfg) -> dict:
    """The cluster option `offnadir detect` gives from its opened inputs (before the cluster starts,
    outside the timed run): whether a date has two images (the kernel preload then loads the height
    sweep's kernels)."""
    from offnadir import pipeline

    return {"multi_view": pipeline._multi_view(pipeline.load_images(cfg["images"]))}


if __name__ == "__main__":
    sys.exit(main())
