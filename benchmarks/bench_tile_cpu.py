"""Where a cube tile's CPU time goes, in one process (no cluster): CPU seconds, not wall.

    python benchmarks/bench_tile_cpu.py [--size 2048] [--chunk 1024] [--repeat 3] [--write] [--json out.json]

Inputs: ``bench_cube.make_speed_inputs`` (synthetic city DSM GeoTIFF and two 4-band images with RPC
tags, 10 and 25 degrees off-nadir) in ``--workdir`` (default /tmp/offnadir_bench_tile_cpu). Every
tile of the plan is computed ``--repeat`` times (``compute_tile``; with ``--write`` also written to
a Zarr store with ``store.write_tile``) after one warm-up tile; reported: the best CPU seconds per
tile (``time.process_time``: all threads of this process, so Zarr's codec threads count) and, from
one profiled pass, the CPU seconds per tile of each kernel and step.

CPU time, unlike wall time, hardly moves with load from other processes, so two versions can be
compared on a shared machine by running this script alternately with each on ``PYTHONPATH``::

    git archive <commit> src | tar -x -C /tmp/base
    for k in 1 2; do PYTHONPATH=/tmp/base/src python benchmarks/bench_tile_cpu.py; \\
                     PYTHONPATH=src python benchmarks/bench_tile_cpu.py; done
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cube  # noqa: E402

#: profile entries reported (function name -> label)
STEPS = {"visibility_los": "visibility (LOS march)", "sample_bilinear": "bilinear sampling (4 bands)",
         "read_window": "image window reads", "interp_lattice": "lattice interpolation",
         "project_serial": "RFM projection", "transform": "pyproj (lattice nodes)",
         "read_block": "DSM block read", "image_extent": "image extent", "mark_outside": "outside marking",
         "compute_tile": "compute_tile (own numpy glue)"}


def main(argv=None) -> int:
    import dask

    import offnadir
    from offnadir import store
    from offnadir.cube import dataset as cube_ds
    from offnadir.cube import graph
    from offnadir.cube.tile import compute_tile
    from offnadir.pipeline import plan_cube

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="also write each tile to a Zarr store")
    ap.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "offnadir_bench_tile_cpu"))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    files = bench_cube.make_speed_inputs(Path(args.workdir) / f"s{args.size}", args.size)
    with dask.config.set(scheduler="synchronous"):
        plan = plan_cube(files["dsm"], [files[v[0]] for v in bench_cube.VIEWS], chunk=args.chunk)
    tiles = plan.tiles()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        out = str(Path(tmp) / "cube.zarr")
        if args.write:
            store.create(out, cube_ds.cube_dataset(plan, graph.empty_arrays(plan)), plan.grid_shape, cube_ds.FILL)

        def one(t):
            return store.write_tile(out, plan, t) if args.write else compute_tile(plan, t)

        one(tiles[0])                                   # warm-up: numba cache, GDAL, codecs
        best = float("inf")
        for _ in range(args.repeat):
            c0 = time.process_time()
            for t in tiles:
                one(t)
            best = min(best, (time.process_time() - c0) / len(tiles))
        prof = cProfile.Profile(time.process_time)
        prof.enable()
        for t in tiles:
            one(t)
        prof.disable()
    st = pstats.Stats(prof).stats
    steps = {}
    for (_file, _line, name), (_cc, _nc, tt, ct, _callers) in st.items():
        if name in STEPS:
            steps[STEPS[name]] = steps.get(STEPS[name], 0.0) + (tt if name == "compute_tile" else ct) / len(tiles)
    src = offnadir.__file__.rsplit("/offnadir/", 1)[0]
    print(f"{src}: {len(tiles)} tiles of {args.chunk}^2 cells, 2 images; best CPU per tile "
          f"{'(compute + write) ' if args.write else '(compute) '}{best * 1e3:.1f} ms "
          f"(best of {args.repeat}); load average {tuple(round(v, 2) for v in os.getloadavg())}")
    for k, v in sorted(steps.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<32} {v * 1e3:7.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"src": src, "cpu_per_tile_s": best, "steps_s": steps,
                                               "tiles": len(tiles), "write": args.write}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
