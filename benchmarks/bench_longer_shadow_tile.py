"""Per-tile cost of the longer-shadow sums (``change.longer_shadow.tile_sums``), from memory.

    python benchmarks/bench_longer_shadow_tile.py capture OUT.pkl -- DETECT ARGS...
    python benchmarks/bench_longer_shadow_tile.py time OUT.pkl [--repeat 7] [--check]

``capture``: runs ``offnadir detect DETECT ARGS --workers 1 --local-workers threads`` in this
process with ``longer_shadow.tile_sums`` (and ``missing_shadow.tile_sums``, for comparison) wrapped:
every call's context, tile, the arrays it read from the store (each read recorded by name and key)
and its result are pickled to OUT.pkl. ``time``: replays every captured tile on one core from
memory (the recorded reads), warm (one untimed call first), the minimum over ``--repeat`` runs
of the CPU time (``time.process_time``) per tile and function; with ``--check`` the replayed
results must equal the captured ones exactly (``np.array_equal`` on ids and every column), so a
change to the code replayed against a capture of the code before it is an exact A/B check.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time

import numpy as np


class RecordingIO:
    """Reads through ``io``, keeping every (name, key) -> array read."""

    def __init__(self, io):
        self.io, self.reads = io, {}

    def read(self, name, key):
        a = self.io.read(name, key)
        self.reads[(name, repr(key))] = np.array(a, copy=True)
        return a

    def __getattr__(self, k):
        return getattr(self.io, k)


class ReplayIO:
    """Returns the recorded reads (a read not recorded is an error)."""

    def __init__(self, reads):
        self.reads = reads

    def read(self, name, key):
        return self.reads[(name, repr(key))]


def capture(out: str, detect_args: list[str]) -> int:
    import threading

    from offnadir.change import longer_shadow as LS
    from offnadir.change import missing_shadow as MS
    from offnadir.cli import main

    calls, lock = [], threading.Lock()

    def wrap(mod, name):
        orig = getattr(mod, name)

        def f(io, ctx, tile, keep=None, **kw):
            rec = RecordingIO(io)
            kv = None if keep is None or "value" not in keep else np.array(keep["value"], copy=True)
            res = orig(rec, ctx, tile, keep=keep, **kw)
            with lock:
                calls.append(dict(fn=f"{mod.__name__.rsplit('.', 1)[1]}.{name}", ctx=ctx, tile=tile, value=kv,
                                  reads=rec.reads, result=res))
            return res
        setattr(mod, name, f)
        return orig

    saved = [(LS, "tile_sums", wrap(LS, "tile_sums")), (MS, "tile_sums", wrap(MS, "tile_sums"))]
    try:
        rc = main(["detect", *detect_args, "--workers", "1", "--local-workers", "threads", "--quiet"])
    finally:
        for m, n, o in saved:
            setattr(m, n, o)
    with open(out, "wb") as fh:
        pickle.dump(calls, fh)
    print(f"{len(calls)} calls captured -> {out} (detect exit {rc})")
    return rc


def _equal(a, b) -> bool:
    if not np.array_equal(a["ids"], b["ids"]) or set(a["rows"]) != set(b["rows"]):
        return False
    return all(np.array_equal(a["rows"][k], b["rows"][k]) for k in a["rows"])


def replay(pkl: str, repeat: int, check: bool) -> int:
    from offnadir.change import longer_shadow as LS
    from offnadir.change import missing_shadow as MS

    with open(pkl, "rb") as fh:
        calls = pickle.load(fh)
    fns = {"longer_shadow.tile_sums": LS.tile_sums, "missing_shadow.tile_sums": MS.tile_sums}
    bad = 0
    tot = {}
    for c in calls:
        fn = fns[c["fn"]]
        io = ReplayIO(c["reads"])

        def once():
            keep = None if c["value"] is None else {"value": c["value"]}
            return fn(io, c["ctx"], c["tile"], keep=keep)

        res = once()  # warm
        ok = _equal(res, c["result"])
        bad += not ok
        best = min(_timed(once) for _ in range(repeat))
        tot[c["fn"]] = tot.get(c["fn"], 0.0) + best
        t = c["tile"]
        print(f"{c['fn']:<26} tile ({t.ti},{t.tj}) {t.i1 - t.i0}x{t.j1 - t.j0}: {best:.4f} CPU-s (min of {repeat})"
              f"  rows {len(res['ids'])}" + ("" if not check else ("  equal" if ok else "  DIFFERENT")))
    for k, v in tot.items():
        print(f"total {k}: {v:.3f} CPU-s")
    if check and bad:
        print(f"{bad} result(s) differ from the capture", file=sys.stderr)
        return 1
    return 0


def _timed(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    detect = []
    if "--" in argv:
        i = argv.index("--")
        argv, detect = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=("capture", "time"))
    ap.add_argument("pkl")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    if a.mode == "capture":
        return capture(a.pkl, detect)
    return replay(a.pkl, a.repeat, a.check)


if __name__ == "__main__":
    sys.exit(main())
