"""Every per-tile task of the change stage (all five passes), captured from a real run and replayed
from memory: CPU per task and pass, where it goes (cProfile), and an exact A/B of a code change.

    python benchmarks/bench_change_tasks.py capture STORE OUTDIR
    python benchmarks/bench_change_tasks.py time OUTDIR [--repeat 3] [--check] [--only _sums_tile] [--profile 25]

``capture``: copies STORE (a store ``offnadir detect`` or ``coregister`` wrote, e.g.
``bench_detect.py``'s ``bench_detect_2048.zarr``) to ``OUTDIR/work.zarr`` and runs the change stage on
the copy (:func:`offnadir.change.stage.detect_store`, the options stored with STORE's change maps or
the defaults, dask's synchronous scheduler: one thread) with the per-tile task functions of
:mod:`offnadir.change.tasks` wrapped: each call's arguments, the arrays it read (by name and key),
its ``has`` answers, its writes and its result are pickled, one file per call, to OUTDIR.

``time``: replays every captured call on one core from memory, warm (one untimed call first), the
minimum over ``--repeat`` runs of its CPU time (``time.process_time``); totals per task function (=
per pass: context ``_stats_tile``, segment ``_segment_and_mark``, evidence ``_evidence_tile``, sums
``_sums_tile``, maps ``_maps_tile``). ``--check``: each replayed result and write must equal the
capture exactly (``_tile_replay.equal``: ``np.array_equal``, NaN equal to NaN, dtypes and shapes
equal), so a capture made before a change and replayed after it is an exact A/B of every task.
``--profile N``: one more replay of each function under cProfile, its N largest entries by own time.
Run ``time`` with two trees alternately (``PYTHONPATH=tree/src``) to compare their speed.

The store reads here are from memory: the zarr decoding and the writes a run does are not in these
figures (``bench_detect.py`` has them, per pass, end to end).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import pickle
import pstats
import shutil
import sys
import time
from pathlib import Path

import _tile_replay as TR  # benchmarks/ is the script's directory

TASKS = ("_stats_tile", "_segment_and_mark", "_evidence_tile", "_sums_tile", "_maps_tile")


def capture(store: str, outdir: str) -> int:
    import json

    import dask
    import zarr

    from offnadir.change import runner, tasks
    from offnadir.change.options import ChangeOptions
    from offnadir.change.stage import detect_store

    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work.zarr"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(store, work)
    stored = zarr.open_group(str(work), mode="r").attrs.get("change_options")
    opts = ChangeOptions.from_config(json.loads(stored)) if stored else ChangeOptions()
    n = [0]
    saved = []

    def wrap(name):
        orig = getattr(tasks, name)

        def f(io, *args, **kw):
            rec = TR.RecordingIO(io)
            a_in, kw_in = copy.deepcopy(args), copy.deepcopy(kw)
            res = orig(rec, *args, **kw)
            with open(out / f"{n[0]:04d}{name}.pkl", "wb") as fh:
                pickle.dump(dict(fn=name, args=a_in, kw=kw_in, reads=rec.reads, hasq=rec.hasq, writes=rec.writes,
                                 result=res), fh)
            n[0] += 1
            return res
        for mod in (tasks, runner):
            if hasattr(mod, name):
                saved.append((mod, name, getattr(mod, name)))
                setattr(mod, name, f)

    for name in TASKS:
        wrap(name)
    try:
        with dask.config.set(scheduler="sync"):
            detect_store(work, opts)
    finally:
        for mod, name, orig in saved:
            setattr(mod, name, orig)
    shutil.rmtree(work)
    print(f"{n[0]} calls captured -> {out}")
    return 0


def _tile_of(args):
    from offnadir.cube.plan import Tile

    return next((a for a in args if isinstance(a, Tile)), None)


def replay(outdir: str, repeat: int, check: bool, only=None, profile: int = 0) -> int:
    from offnadir.change import tasks

    files = sorted(Path(outdir).glob("*.pkl"))
    if not files:
        sys.exit(f"bench_change_tasks: no captured calls in {outdir}; run `capture` first.")
    bad, tot, profs = 0, {}, {}
    for f in files:
        with open(f, "rb") as fh:
            c = pickle.load(fh)
        if only and c["fn"] not in only:
            continue
        fn = getattr(tasks, c["fn"])

        def once(c=c, fn=fn):
            io = TR.ReplayIO(c["reads"], c["hasq"])
            return io, fn(io, *copy.deepcopy(c["args"]), **copy.deepcopy(c["kw"]))

        io, res = once()  # warm (numba kernels loaded or compiled)
        ok = TR.equal(res, c["result"]) and TR.equal(io.writes, c["writes"])
        bad += not ok
        best = min(TR._timed(once) for _ in range(repeat))
        tot[c["fn"]] = tot.get(c["fn"], 0.0) + best
        if profile:
            pr = profs.setdefault(c["fn"], cProfile.Profile())
            pr.enable()
            once()
            pr.disable()
        t = _tile_of(c["args"])
        where = f"tile ({t.i0},{t.j0}) {t.i1 - t.i0}x{t.j1 - t.j0}" if t is not None else "-"
        print(f"{c['fn']:<18} {where}: {best:.4f} CPU-s (min of {repeat})"
              + ("" if not check else ("  equal" if ok else "  DIFFERENT")))
    for k, v in tot.items():
        print(f"total {k}: {v:.3f} CPU-s")
    print(f"total all tasks: {sum(tot.values()):.3f} CPU-s")
    for k, pr in profs.items():
        print(f"\n--- {k}: cProfile of one replay of every call, by own time")
        pstats.Stats(pr).sort_stats("tottime").print_stats(profile)
    if check and bad:
        print(f"{bad} call(s) differ from the capture", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("capture")
    c.add_argument("store")
    c.add_argument("outdir")
    t = sub.add_parser("time")
    t.add_argument("outdir")
    t.add_argument("--repeat", type=int, default=3)
    t.add_argument("--check", action="store_true")
    t.add_argument("--only", nargs="*", choices=TASKS)
    t.add_argument("--profile", type=int, default=0)
    a = ap.parse_args(argv)
    if a.mode == "capture":
        return capture(a.store, a.outdir)
    return replay(a.outdir, a.repeat, a.check, a.only, a.profile)


if __name__ == "__main__":
    sys.exit(main())
