"""Capture and replay of per-tile functions of the change stage, for the ``bench_*_tile.py``
benchmarks: exact A/B timing of a code change on the tiles of a real run, from memory.

``capture``: runs ``offnadir detect DETECT ARGS --workers 1 --local-workers threads`` in this process
with the named functions wrapped (each takes the run's tile IO first): every call's arguments, the
arrays it read (by name and key), its ``has`` answers, its writes and its result are pickled.
``time``: replays every captured call on one core from memory, warm (one untimed call first), the
minimum over ``--repeat`` runs of its CPU time (``time.process_time``); with ``--check`` each
replayed result and write must equal the capture exactly (:func:`equal`: ``np.array_equal``, NaN
equal to NaN, dtypes and shapes equal, recursively through dicts, lists and tuples), so a capture
made before a change, replayed after it, is an exact A/B check.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import pickle
import sys
import threading
import time

import numpy as np


class RecordingIO:
    """Reads, writes and ``has`` through ``io``, keeping a copy of each by (name, key)."""

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


def _function(label: str):
    mod, name = label.rsplit(".", 1)
    return getattr(importlib.import_module(f"offnadir.change.{mod}"), name)


def capture(out: str, detect_args: list[str], labels) -> int:
    from offnadir.cli import main

    calls, lock, saved = [], threading.Lock(), []

    def wrap(label):
        mod = importlib.import_module(f"offnadir.change.{label.rsplit('.', 1)[0]}")
        name = label.rsplit(".", 1)[1]
        orig = getattr(mod, name)

        def f(io, *args, **kw):
            rec, kw_in = RecordingIO(io), copy.deepcopy(kw)
            res = orig(rec, *args, **kw)
            with lock:
                calls.append(dict(fn=label, args=args, kw=kw_in, reads=rec.reads, hasq=rec.hasq, writes=rec.writes,
                                  result=res))
            return res
        setattr(mod, name, f)
        saved.append((mod, name, orig))

    for label in labels:
        wrap(label)
    try:
        rc = main(["detect", *detect_args, "--workers", "1", "--local-workers", "threads", "--quiet"])
    finally:
        for mod, name, orig in saved:
            setattr(mod, name, orig)
    with open(out, "wb") as fh:
        pickle.dump(calls, fh)
    print(f"{len(calls)} calls captured -> {out} (detect exit {rc})")
    return rc


def _timed(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def replay(pkl: str, repeat: int, check: bool, only=None) -> int:
    with open(pkl, "rb") as fh:
        calls = pickle.load(fh)
    bad, tot = 0, {}
    for c in calls:
        if only and c["fn"] not in only:
            continue
        fn = _function(c["fn"])

        def once():
            io = ReplayIO(c["reads"], c["hasq"])
            return io, fn(io, *c["args"], **copy.deepcopy(c["kw"]))

        io, res = once()  # warm (and the numba kernels compiled)
        ok = equal(res, c["result"]) and equal(io.writes, c["writes"])
        bad += not ok
        best = min(_timed(once) for _ in range(repeat))
        tot[c["fn"]] = tot.get(c["fn"], 0.0) + best
        t = c["args"][1]
        print(f"{c['fn']:<26} tile ({t.i0},{t.j0}) {t.i1 - t.i0}x{t.j1 - t.j0}: {best:.4f} CPU-s (min of {repeat})"
              + ("" if not check else ("  equal" if ok else "  DIFFERENT")))
    for k, v in tot.items():
        print(f"total {k}: {v:.3f} CPU-s")
    if check and bad:
        print(f"{bad} call(s) differ from the capture", file=sys.stderr)
        return 1
    return 0


def main(doc: str, labels, repeat: int, argv=None) -> int:
    """The command line of a tile benchmark over the functions ``labels`` ("module.function" of
    :mod:`offnadir.change`): ``capture OUT.pkl -- DETECT ARGS`` or ``time OUT.pkl``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    detect = []
    if "--" in argv:
        i = argv.index("--")
        argv, detect = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("mode", choices=("capture", "time"))
    ap.add_argument("pkl")
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--only", nargs="*", choices=labels)
    a = ap.parse_args(argv)
    if a.mode == "capture":
        return capture(a.pkl, detect, labels)
    return replay(a.pkl, a.repeat, a.check, a.only)
