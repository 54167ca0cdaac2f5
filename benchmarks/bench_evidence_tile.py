"""Per-tile cost of the change stage's evidence and maps tasks (``change.cells.evidence_tile``,
``change.cells.probability_tile``), from memory: an exact A/B of a code change on captured tiles.

    python benchmarks/bench_evidence_tile.py capture OUT.pkl -- DETECT ARGS...
    python benchmarks/bench_evidence_tile.py time OUT.pkl [--repeat 5] [--check] [--only evidence_tile]

``capture``: runs ``offnadir detect DETECT ARGS --workers 1 --local-workers threads`` in this
process with both functions wrapped: every call's arguments, the arrays it read from the store
(by name and key), the store's ``has`` answers, what it wrote (by name and key) and its result are
pickled to OUT.pkl. ``time``: replays every captured call on one core from memory, warm (one
untimed call first), and prints the minimum over ``--repeat`` runs of the CPU time
(``time.process_time``) per call and the totals per function; with ``--check`` every write and the
result must equal the capture exactly (``np.array_equal``, NaN equal to NaN, recursively through
dicts, lists and tuples), so replaying a capture of the code before a change is an exact A/B
check. Run ``time`` with the two trees alternately (``PYTHONPATH=tree/src``) to compare them.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time

import numpy as np

FUNCS = ("evidence_tile", "probability_tile")


class RecordingIO:
    def __init__(self, io):
        self.io, self.reads, self.writes, self.hasq = io, {}, {}, {}

    def read(self, name, key):
        a = self.io.read(name, key)
        self.reads[(name, repr(key))] = np.array(a, copy=True)
        return a

    def write(self, name, key, arr):
        self.writes[(name, repr(key))] = np.array(arr, copy=True)
        return self.io.write(name, key, arr)

    def has(self, name):
        self.hasq[name] = bool(self.io.has(name))
        return self.hasq[name]

    def __getattr__(self, k):
        return getattr(self.io, k)


class ReplayIO:
    """Returns the recorded reads and ``has`` answers (anything else is an error); keeps the writes."""

    def __init__(self, reads, hasq):
        self.reads, self.hasq, self.writes = reads, hasq, {}

    def read(self, name, key):
        return self.reads[(name, repr(key))]

    def has(self, name):
        return self.hasq[name]

    def write(self, name, key, arr):
        self.writes[(name, repr(key))] = np.array(arr, copy=True)


def capture(out: str, detect_args: list[str]) -> int:
    import threading

    from offnadir.change import cells
    from offnadir.cli import main

    calls, lock = [], threading.Lock()

    def wrap(name):
        orig = getattr(cells, name)

        def f(io, *args):
            rec = RecordingIO(io)
            res = orig(rec, *args)
            with lock:
                calls.append(dict(fn=name, args=args, reads=rec.reads, hasq=rec.hasq, writes=rec.writes, result=res))
            return res
        setattr(cells, name, f)
        return orig

    saved = [(n, wrap(n)) for n in FUNCS]
    try:
        rc = main(["detect", *detect_args, "--workers", "1", "--local-workers", "threads", "--quiet"])
    finally:
        for n, o in saved:
            setattr(cells, n, o)
    with open(out, "wb") as fh:
        pickle.dump(calls, fh)
    print(f"{len(calls)} calls captured -> {out} (detect exit {rc})")
    return rc


def equal(a, b) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return a == b


def replay(pkl: str, repeat: int, check: bool, only) -> int:
    from offnadir.change import cells

    with open(pkl, "rb") as fh:
        calls = pickle.load(fh)
    bad, tot = 0, {}
    for c in calls:
        if only and c["fn"] not in only:
            continue
        fn = getattr(cells, c["fn"])

        def once():
            io = ReplayIO(c["reads"], c["hasq"])
            return io, fn(io, *c["args"])

        io, res = once()  # warm (and the numba kernels compiled)
        ok = equal(res, c["result"]) and equal(io.writes, c["writes"])
        bad += not ok
        best = min(_timed(once) for _ in range(repeat))
        tot[c["fn"]] = tot.get(c["fn"], 0.0) + best
        t = c["args"][1]
        print(f"{c['fn']:<17} tile ({t.i0},{t.j0}) {t.i1 - t.i0}x{t.j1 - t.j0}: {best:.4f} CPU-s (min of {repeat})"
              + ("" if not check else ("  equal" if ok else "  DIFFERENT")))
    for k, v in tot.items():
        print(f"total {k}: {v:.3f} CPU-s")
    if check and bad:
        print(f"{bad} call(s) differ from the capture", file=sys.stderr)
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
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", nargs="*", choices=FUNCS)
    a = ap.parse_args(argv)
    if a.mode == "capture":
        return capture(a.pkl, detect)
    return replay(a.pkl, a.repeat, a.check, a.only)


if __name__ == "__main__":
    sys.exit(main())
