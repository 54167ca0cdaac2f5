"""Benchmark: the client's peak memory of the change stage's sun resolution
(:func:`offnadir.change.illumination.resolve_suns`) on a large lazy cube whose second image has no
sun and no time (so its sun is estimated, and the estimate's window chosen over the whole grid).

The cube is synthetic and dask-backed (nothing is in memory until read): an N² DSM of boxes on
sloping ground (float32, 1024² chunks), every cell visible, one band of noise per image; image 0
carries a sun (config), image 1 none. Each measurement runs in a fresh process (the peak resident
set size is per process) with the synchronous scheduler, as the change stage calls it
(:func:`offnadir.change.context.resolve_sun`), and prints:

* ``tracemalloc peak``: the most bytes Python and numpy held at once during the call;
* ``RSS growth``: the process's peak resident set size minus its size just before the call.

Modes: ``resolve`` (the call itself, from the source tree given by ``--src``, default the installed
package) and ``whole-grid pick`` (what resolve_suns did before the window came from per-chunk
counts: ``dsm.values`` and ``visible.values`` of the whole grid into
:func:`~offnadir.change.sun_window_choice.pick_window`). For the whole function before the change, run
``resolve`` against an older tree: ``git worktree add /tmp/old a4e6a5d`` then ``--src /tmp/old/src``.

    python benchmarks/bench_sun_window_memory.py [--size 8192] [--modes resolve pick] [--src DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHUNK = 1024


def lazy_cube(n: int):
    import dask.array as da
    import numpy as np
    import rioxarray  # noqa: F401
    import xarray as xr

    def dsm_block(block_id=None, block_info=None):
        (i0, i1), (j0, j1) = block_info[None]["array-location"]
        rng = np.random.default_rng(block_id[0] * 100003 + block_id[1])
        yy, xx = np.mgrid[i0:i1, j0:j1]
        h = 100.0 + 0.01 * yy + 0.005 * xx
        for _ in range(((i1 - i0) * (j1 - j0)) // 4000):  # ~25 % of the cells under roofs
            i, j = rng.integers(0, i1 - i0), rng.integers(0, j1 - j0)
            h[i:i + rng.integers(8, 40), j:j + rng.integers(8, 40)] += rng.uniform(3.0, 30.0)
        return h.astype(np.float32)

    def noise_block(block_id=None, block_info=None):
        shape = tuple(b - a for a, b in block_info[None]["array-location"])
        return np.random.default_rng(7 + sum(block_id)).normal(500.0, 50.0, shape).astype(np.float32)

    chunks = ((CHUNK,) * (n // CHUNK) + ((n % CHUNK,) if n % CHUNK else ()),) * 2
    dsm = da.map_blocks(dsm_block, chunks=chunks, dtype=np.float32, meta=np.empty((0, 0), np.float32))
    val = da.stack([da.map_blocks(noise_block, chunks=chunks, dtype=np.float32, meta=np.empty((0, 0), np.float32))
                    for _ in range(2)])[:, None]
    vis = da.ones((2, n, n), np.uint8, chunks=(1, CHUNK, CHUNK))
    ds = xr.Dataset({"dsm": (("y", "x"), dsm), "value": (("image", "band", "y", "x"), val),
                     "visible": (("image", "y", "x"), vis)},
                    coords={"image": ["base", "target"], "x": 500000.25 + 0.5 * np.arange(n),
                            "y": 4790000.0 - 0.25 - 0.5 * np.arange(n),
                            "sun_azimuth": ("image", [150.0, np.nan]), "sun_elevation": ("image", [50.0, np.nan]),
                            "sun_source": ("image", ["config: images[0] (base)", "none"])})
    return ds.rio.write_crs("EPSG:32631")


def measure(mode: str, n: int) -> dict:
    """In this process: build the cube, run ``mode`` once, return the figures."""
    import resource
    import time
    import tracemalloc

    import dask
    import numpy as np

    cube = lazy_cube(n)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # MB (Linux: kB)
    tracemalloc.start()
    t0 = time.perf_counter()
    with dask.config.set(scheduler="sync"):
        if mode == "resolve":
            from offnadir.change.illumination import resolve_suns

            out = resolve_suns(cube)
            detail = {k: out[1].get(k) for k in ("azimuth", "elevation", "source")}
        else:
            from offnadir.change.sun_window_choice import pick_window

            h = np.asarray(cube["dsm"].values, np.float64)
            vis = np.asarray(cube["visible"].isel(image=1).values) == 1
            detail = {"window": pick_window(h, vis, 512)}
    wall = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"mode": mode, "size": n, "tracemalloc_peak_mb": peak / 2**20, "rss_growth_mb": rss1 - rss0,
            "seconds": wall, "detail": {k: str(v) for k, v in detail.items()}}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=8192, help="grid side (cells)")
    ap.add_argument("--modes", nargs="+", default=["resolve", "pick"], choices=["resolve", "pick"])
    ap.add_argument("--src", default=None, help="import offnadir from this source tree (e.g. an old worktree's src)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        if a.src:
            sys.path.insert(0, a.src)
        print(json.dumps(measure(a.child, a.size)))
        return 0
    import offnadir

    src = a.src or os.path.dirname(os.path.dirname(offnadir.__file__))
    print(f"lazy cube {a.size}^2 cells ({a.size**2 * 4 / 2**30:.2f} GiB of float32 DSM), chunks {CHUNK}^2; "
          f"offnadir from {src}")
    for mode in a.modes:
        cmd = [sys.executable, __file__, "--size", str(a.size), "--child", mode] + (["--src", a.src] if a.src else [])
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if r.returncode:
            print(f"{mode}: failed\n{r.stderr[-2000:]}")
            continue
        f = json.loads(r.stdout.strip().splitlines()[-1])
        name = "resolve_suns" if mode == "resolve" else "whole-grid pick (before)"
        print(f"{name:26s} tracemalloc peak {f['tracemalloc_peak_mb']:8.1f} MB  RSS growth {f['rss_growth_mb']:8.1f} MB"
              f"  {f['seconds']:6.1f} s  {f['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
