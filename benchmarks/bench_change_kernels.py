"""CPU per call of the change stage's hot kernels, now and (optionally) at an earlier git revision,
on the same random inputs in one run:

    python benchmarks/bench_change_kernels.py [--size 1184] [--window 41] [--offsets 20] [--against 05c8d73]

* census evidence (:func:`offnadir.change.census.min_census_ratio`): ms per parallax offset on a
  ``size^2`` window (a 1024^2 tile plus its halo), ``window``-cell census window;
* census packing (:func:`offnadir.change.census_codes.pack`): ms per window;
* IR-MAD variates (:meth:`offnadir.change.irmad.MadModel.mad`) of ``size^2`` cells x 4 bands passed
  as ``val[:, ok].T`` (as the stage does);
* same-date sweep NCC (:func:`offnadir.cube.sweep_kernels.window_ncc`), window radius 6;
* the segment pass on a ``size^2`` window of a synthetic city (a tilted plane with random boxes,
  smooth 4-band float32 base, 2 % hidden cells) at 0.5 m cells with default options: ground
  estimate (:func:`offnadir.change.kernels.ground_estimate`, 40 m opening), SLIC
  (:func:`offnadir.change.kernels.slic_blocks`, 4 iterations) and the whole
  :func:`offnadir.change.segment.segment_window` (fed float64 base values at revisions whose
  ``segment_tile`` converted them, as it did: the copy is timed with it).

``--against REV`` loads those modules' files from ``git show REV:path`` into private modules and
times them on the same inputs (results compared too: the kernels are meant to give the same
numbers). CPU seconds of this process (``time.process_time``), best of ``--repeat`` runs, after
one warm-up call (numba compilation excluded). BLAS threads are whatever this process has: set
``OPENBLAS_NUM_THREADS=1`` to match dask worker processes.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILES = {"census": "src/offnadir/change/census.py", "irmad": "src/offnadir/change/irmad.py",
         "sweep_kernels": "src/offnadir/cube/sweep_kernels.py", "kernels": "src/offnadir/change/kernels.py",
         "segment_kernels": "src/offnadir/change/segment_kernels.py", "segment": "src/offnadir/change/segment.py"}
OPTIONAL = {"segment_kernels"}  # not at every revision (split from kernels.py)


def load_rev(rev: str, tmp: Path) -> dict:
    mods = {}
    for name, path in FILES.items():
        try:
            src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True,
                                 text=True).stdout
        except subprocess.CalledProcessError as e:
            if name in OPTIONAL:
                continue
            sys.exit(f"bench_change_kernels: cannot read {path} at {rev}: {e.stderr.strip()}")
        f = tmp / f"{name}_{rev}.py"
        f.write_text(src.replace("cache=True", "cache=False"))  # never write the old kernels into the cache
        spec = importlib.util.spec_from_file_location(f"_old_{name}", f)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up there
        spec.loader.exec_module(mod)
        mods[name] = mod
    mods["seg_k"] = mods.get("segment_kernels", mods["kernels"])
    mods["segment"].K = mods["seg_k"]  # the old segment module on the old kernels
    return mods


def best_cpu(fn, repeat: int) -> tuple:
    out = fn()  # warm-up (compilation)
    best = np.inf
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return best, out


def main(argv=None) -> int:
    from offnadir.change import census, irmad, segment
    from offnadir.change import segment_kernels as KN
    from offnadir.change.options import ChangeOptions
    from offnadir.change import evidence as EV
    from offnadir.cube import sweep_kernels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1184)
    ap.add_argument("--window", type=int, default=41)
    ap.add_argument("--offsets", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", help="a git revision to time the same kernels at")
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n = a.size
    base = rng.normal(0, 10, (n, n)).cumsum(axis=1)
    target = 1.7 * base + 30 + rng.normal(0, 3, (n, n))
    ok_b, ok_t = rng.random((n, n)) > 0.05, rng.random((n, n)) > 0.05
    offs = EV.relative_offsets(0, 5, 135, 25, 45, 0.5)[:a.offsets]
    codes_b, codes_t = EV.census(base, ok_b, 2.0), EV.census(target, ok_t, 2.5)
    h = (n - 1024) // 2 if n > 1024 else 0
    core = (h, n - h, h, n - h)
    val = rng.normal(100, 20, (2, 4, n * n)).astype(np.float32)
    okc = rng.random(n * n) > 0.1
    x, y = val[0][:, okc].T, val[1][:, okc].T
    A, B = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    model_args = dict(mean_x=np.full(4, 100.0), mean_y=np.full(4, 90.0), A=A, B=B, rho=np.array([.9, .8, .7, .6]),
                      weight=1.0, n=1.0)
    fa = rng.normal(size=(n, n)).astype(np.float32)
    fb = (fa + rng.normal(size=(n, n))).astype(np.float32)
    fa[rng.random(fa.shape) < 0.05] = np.nan

    hgt, seg_base, seg_vis = _city(n, rng)
    opts, cell = ChangeOptions(), 0.5
    band_scale = seg_base.reshape(4, -1).std(axis=1).astype(np.float64)
    r_open = segment.opening_radius(opts, cell)
    seg_core = (n // 4, n - n // 4, n // 4, n - n // 4)

    def segment_cases(kn, sg):
        feat = np.ascontiguousarray(seg_base / band_scale[:, None, None], dtype=np.float64)
        mask = np.isfinite(hgt) & (seg_vis == 1)
        NBX = -(-n // opts.segment_step)

        def slic():
            out = np.zeros(hgt.shape, np.int64)
            kn.slic_blocks(feat, mask, 0, 0, opts.segment_step, NBX, opts.segment_compactness,
                           opts.segment_iterations, out)
            return out

        def window():
            b = seg_base if hasattr(kn, "slic_features") else seg_base.astype(np.float64)
            p, e = sg.segment_window(hgt, b, seg_vis, (0, 0), seg_core, (n, n), opts, cell, band_scale)
            return np.concatenate([p.ravel(), e.ravel().astype(np.int64)])

        return [("ground estimate, ms per window", 1, lambda: kn.ground_estimate(hgt, r_open)),
                ("SLIC, ms per window", 1, slic),
                ("segment window, ms per window", 1, window)]

    def cases(cen, ir, sk):
        from offnadir.change import census_codes

        pack = getattr(cen, "pack", census_codes.pack)  # census.py held the packer before census_codes.py
        words = (pack(*codes_b), pack(*codes_t))
        m = ir.MadModel(**model_args)

        def ncc():
            out = np.empty(fa.shape, np.float32)
            sk.window_ncc(fa, fb, 6, 85, out, np.empty((7,) + fa.shape))
            return out

        return [("census evidence, ms per offset", len(offs),
                 lambda: cen.min_census_ratio(*words, offs, a.window, core)),
                ("census packing, ms per window", 2, lambda: (pack(*codes_b), pack(*codes_t))),
                ("IR-MAD variates, ms per call", 1, lambda: m.mad(x, y)),
                ("sweep NCC (r 6), ms per call", 1, ncc)]

    now = cases(census, irmad, sweep_kernels) + segment_cases(KN, segment)
    old = None
    if a.against:
        with tempfile.TemporaryDirectory() as tmp:
            mods = load_rev(a.against, Path(tmp))
            old = cases(mods["census"], mods["irmad"], mods["sweep_kernels"]) + segment_cases(mods["seg_k"],
                                                                                              mods["segment"])
            print(f"{n}^2 cells, census window {a.window}, {len(offs)} offsets; CPU ms, best of {a.repeat}")
            print(f"{'kernel':<34} {'now':>9} {a.against[:9]:>9} {'ratio':>7}  same result")
            for (name, per, fn), (_, _, fo) in zip(now, old):
                t1, r1 = best_cpu(fn, a.repeat)
                t0, r0 = best_cpu(fo, a.repeat)
                same = _same(r1, r0)
                print(f"{name:<34} {1e3 * t1 / per:9.2f} {1e3 * t0 / per:9.2f} {t0 / t1:6.2f}x  {same}")
        return 0
    print(f"{n}^2 cells, census window {a.window}, {len(offs)} offsets; CPU ms, best of {a.repeat}")
    for name, per, fn in now:
        t1, _ = best_cpu(fn, a.repeat)
        print(f"{name:<34} {1e3 * t1 / per:9.2f}")
    return 0


def _city(n, rng):
    """Heights (float64, a tilted plane + 0.3 m noise + boxes 4-30 m tall, 8-60 cells wide, NaN
    specks), a smooth 4-band float32 base that follows the boxes, visibility (2 % hidden)."""
    ii, jj = np.mgrid[0:n, 0:n].astype(np.float64)
    h = 50.0 + 0.01 * ii - 0.02 * jj + rng.normal(0, 0.3, (n, n))
    refl = np.zeros((n, n))
    for _ in range(n * n // 2500):
        i, j = rng.integers(0, n, 2)
        a, b = rng.integers(8, 60, 2)
        h[i:i + a, j:j + b] += rng.uniform(4, 30)
        refl[i:i + a, j:j + b] += rng.normal(0, 1)
    h[rng.random((n, n)) < 0.001] = np.nan
    k = np.ones(5) / 5
    sm = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, rng.normal(0, 1, (n, n)))
    base = np.stack([100 + 20 * refl + 10 * b * sm + rng.normal(0, 2, (n, n)) for b in range(1, 5)])
    vis = (rng.random((n, n)) > 0.02).astype(np.uint8)
    return h, base.astype(np.float32), vis


def _same(r1, r0) -> str:
    if isinstance(r1, tuple):  # packing: words now, bit planes (or words) then
        from offnadir.change.census import words

        w0 = tuple(r if isinstance(r, np.ndarray) else words(*r) for r in r0)
        return "identical" if all(np.array_equal(p, q) for p, q in zip(r1, w0)) else "DIFFERENT"
    if np.array_equal(r1, r0, equal_nan=True):
        return "identical"
    d = np.nanmax(np.abs(np.asarray(r1, np.float64) - np.asarray(r0, np.float64)))
    return f"max |diff| {d:.2g}"


if __name__ == "__main__":
    sys.exit(main())
