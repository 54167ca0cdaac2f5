"""Task-graph size and scheduler memory of a regional plan, without computing it.

    python benchmarks/bench_graph.py [--size 100000] [--chunk 1024] [--tiles 0] [--json out.json]

Builds, for a ``size`` x ``size``-cell procedural DSM (``synthetic_dsm.CityDsm``: no file, any
block computed from its indices) seen by two procedural off-nadir images, everything a run sends
to the scheduler: the DSM statistics graph (one task per block, tree-combined by 8) and the
tile-write tasks (one per tile, all sharing one plan node). It prints the number of tasks, the
pickled graph bytes, and the scheduler's memory (RSS of a real ``dask scheduler`` process, with no
worker, before and after the whole tile graph is submitted to it; then cancelled: nothing runs).

The plan's height range comes from DSM statistics over a strided sample of blocks (computed here,
a few seconds); the full statistics graph is only built and measured.

``--tiles N`` also computes N real tiles of the plan (on one single-threaded local worker, after
one warm-up tile that compiles the kernels; computed, not written) and prints seconds per tile
per worker, the figure the cost model in ``deploy/README.md`` uses.

Last, a cost model for ``--cost-workers`` (default 100): bytes one tile reads (DSM block with
halo, each image's window from the tile's edges projected at the plan's height range) and writes
(the cube fields, uncompressed and at ``--compression``), the whole plan's I/O, and its tile time
from ``--s-per-tile`` (or from the ``--tiles`` measurement plus 0.075 s of Zarr write).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import synthetic_dsm as syn  # noqa: E402

#: the two views of benchmarks/bench_cube.py (name, off-nadir deg, azimuth deg, kappa deg, seed)
VIEWS = (("view10", 10.0, 30.0, 12.0, 0), ("view25", 25.0, 200.0, -8.0, 1))


def _sample_stats(dsm, chunk: int, n: int = 5):
    """(h_min, h_max, n_valid) over an n x n strided sample of blocks."""
    from offnadir.cube import tile as tilemod

    ny, nx = dsm.shape
    parts = []
    for i in np.linspace(0, max(ny - chunk, 0), n).astype(int):
        for j in np.linspace(0, max(nx - chunk, 0), n).astype(int):
            parts.append(tilemod.block_stats(dsm, int(i), int(min(i + chunk, ny)), int(j), int(min(j + chunk, nx))))
    return tilemod.combine_stats(*parts)


def _graph_of(collections) -> dict:
    import dask
    from dask.base import collections_to_expr

    try:
        return dict(collections_to_expr(collections).__dask_graph__())
    except Exception:  # noqa: BLE001 (older dask)
        return dict(dask.base.collections_to_dsk(collections))


def _scheduler_rss(client) -> int:
    def rss():
        import psutil

        return psutil.Process().memory_info().rss

    return int(client.run_on_scheduler(rss))


def measure_graph(size: int, chunk: int) -> dict:
    import dask
    from distributed import Client, LocalCluster

    from offnadir.cube import graph
    from offnadir.cube.plan import make_plan

    out: dict = {"size": size, "chunk": chunk}
    dsm = syn.CityDsm((size, size))
    images = [syn.procedural_image(syn.view_camera(dsm, th, az, kappa_deg=k, name=n), n, seed=s)
              for n, th, az, k, s in VIEWS]
    t0 = time.perf_counter()
    stats = _sample_stats(dsm, chunk)
    plan = make_plan(dsm, images, stats=stats, chunk=chunk)
    out["plan_s"] = time.perf_counter() - t0
    out["tiles"] = len(plan.tiles())
    out["grid"] = list(plan.grid_shape)
    out["halo"] = plan.halo
    out["image_shapes"] = [list(im.shape) for im in images]

    t0 = time.perf_counter()
    stats_graph = _graph_of([graph.dsm_stats(dsm, chunk)])
    tasks = graph.tile_write_tasks(plan, "/nonexistent/plan-only.zarr")
    tile_graph = _graph_of(tasks)
    out["build_s"] = time.perf_counter() - t0
    out["stats_tasks"] = len(stats_graph)
    out["stats_graph_bytes"] = len(pickle.dumps(stats_graph, protocol=5))
    out["tile_tasks"] = len(tile_graph)
    out["tile_graph_bytes"] = len(pickle.dumps(tile_graph, protocol=5))
    out["plan_node_bytes"] = len(pickle.dumps(plan, protocol=5))

    # a real scheduler process, no worker: submit the tile graph, measure, cancel (nothing runs)
    with dask.config.set({"distributed.scheduler.work-stealing": False}), \
            LocalCluster(n_workers=0, processes=True, scheduler_kwargs={"dashboard": False},
                         dashboard_address=None) as cluster, Client(cluster) as client:
        import gc

        client.run_on_scheduler(gc.collect)
        before = _scheduler_rss(client)
        t0 = time.perf_counter()
        futures = client.compute(tasks)
        # wait until the scheduler holds every task
        for _ in range(600):
            n = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            if n >= len(tasks):
                break
            time.sleep(0.1)
        out["submit_s"] = time.perf_counter() - t0
        out["scheduler_tasks_held"] = int(n)
        after = _scheduler_rss(client)
        client.cancel(futures)
        del futures
    out["scheduler_rss_before_mib"] = before / 2**20
    out["scheduler_rss_with_graph_mib"] = after / 2**20
    out["scheduler_bytes_per_task"] = (after - before) / max(len(tasks), 1)
    return out, plan


def _tile_cells(plan, tile) -> int:
    """Compute one tile on a worker; return its cell count (the arrays stay on the worker)."""
    from offnadir.cube import tile as tilemod

    res = tilemod.compute_tile(plan, tile)
    return int(res["dsm"].size)


def measure_tiles(plan, n: int) -> dict:
    """Seconds per tile on one single-threaded worker (warm: one tile first compiles the kernels).
    The tile is computed, not encoded and written (the Zarr write adds about 0.12 s per 1024^2
    tile: benchmarks/README.md, bench_cube profile)."""
    from offnadir.cluster import dask_client

    tiles = plan.tiles()
    mid = len(tiles) // 2
    pick = tiles[mid:mid + n + 1]
    with dask_client(n_workers=1, quiet=True, options={"dashboard": "none"}) as client:
        plan_f = client.scatter(plan, broadcast=True)
        client.submit(_tile_cells, plan_f, pick[0], pure=False).result()  # warm-up: numba compiles
        t0 = time.perf_counter()
        cells = client.gather([client.submit(_tile_cells, plan_f, t, pure=False) for t in pick[1:]])
        dt = time.perf_counter() - t0
    return {"tiles_timed": len(pick) - 1, "cells_timed": int(sum(cells)),
            "s_per_tile_per_worker": dt / max(len(pick) - 1, 1), "tiles_per_s_per_worker": (len(pick) - 1) / dt}


def tile_bytes(plan, tile) -> dict:
    """Bytes one tile reads and writes (uncompressed): the DSM block with its halo (float32, as a
    GeoTIFF DSM is usually stored), each image's window (the tile's edges projected at the plan's
    lowest and highest heights, +3 px for bilinear neighbours, all bands, the image's dtype), and
    the cube fields (row, col float32, visible uint8, value float32 per band and image; dsm)."""
    from offnadir.cube import geometry

    H = plan.halo
    ny, nx = tile.shape
    dsm_b = (ny + 2 * H) * (nx + 2 * H) * 4
    e = np.linspace(0.0, 1.0, 33)
    along_i, along_j = tile.i0 + e * (ny - 1), tile.j0 + e * (nx - 1)
    ii = np.concatenate([along_i, np.full(33, tile.i1 - 1.0), along_i, np.full(33, tile.i0)])
    jj = np.concatenate([np.full(33, tile.j0), along_j, np.full(33, tile.j1 - 1.0), along_j])
    lon, lat = geometry.cell_lonlat(plan.dsm, ii, jj)
    img_b = []
    for im in plan.images:
        rows, cols = [], []
        for h in (plan.h_min, plan.h_max):
            r, c = im.camera.project(lon, lat, np.full_like(lon, h))
            rows.append(r)
            cols.append(c)
        r, c = np.concatenate(rows), np.concatenate(cols)
        n_px = (np.ptp(r) + 4) * (np.ptp(c) + 4)
        img_b.append(n_px * im.count * np.dtype(im.dtype).itemsize)
    n_img, nb = len(plan.images), plan.n_bands
    out_b = ny * nx * (n_img * (4 + 4 + 1 + 4 * nb) + 4)
    return {"dsm_read_bytes": dsm_b, "image_read_bytes": float(sum(img_b)), "cube_write_bytes": out_b}


def cost_model(res: dict, plan, workers: int, s_per_tile: float, compression: float) -> str:
    """A few lines: the plan's tiles, bytes per tile, and the expected wall time on ``workers``."""
    tiles = plan.tiles()
    b = tile_bytes(plan, tiles[len(tiles) // 2])
    res.update({f"tile_{k}": v for k, v in b.items()})
    n = len(tiles)
    wall = n * s_per_tile / workers
    read = n * (b["dsm_read_bytes"] + b["image_read_bytes"])
    write = n * b["cube_write_bytes"] / compression
    res.update({"cost_workers": workers, "cost_s_per_tile": s_per_tile, "cost_tiles_wall_s": wall,
                "cost_read_bytes": read, "cost_write_bytes": write, "cost_io_gb_per_s": (read + write) / wall / 1e9})
    return "\n".join([
        f"cost model: {n:,} tiles on {workers} workers at {s_per_tile:.3f} s per tile (CPU, compute + write, "
        f"one worker) -> {wall:,.0f} s of tile time (+ graph build {res['build_s']:.0f} s and submit "
        f"{res['submit_s']:.0f} s on this client)",
        f"  per tile: DSM read {b['dsm_read_bytes'] / 1e6:.1f} MB, image windows {b['image_read_bytes'] / 1e6:.1f} MB, "
        f"cube written {b['cube_write_bytes'] / 1e6:.1f} MB uncompressed "
        f"({b['cube_write_bytes'] / compression / 1e6:.1f} MB "
        f"at ratio {compression:g})",
        f"  whole plan: {read / 1e12:.2f} TB read, {write / 1e12:.2f} TB written: "
        f"{(read + write) / wall / 1e9:.1f} GB/s for the filesystem to keep the workers busy"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=100_000, help="DSM cells per side (default 100,000)")
    ap.add_argument("--chunk", type=int, default=1024, help="tile size (default 1024)")
    ap.add_argument("--tiles", type=int, default=0, help="also time this many real tiles on one worker")
    ap.add_argument("--cost-workers", type=int, default=100, help="workers of the printed cost model (default 100)")
    ap.add_argument("--s-per-tile", type=float, default=0.22,
                    help="CPU s per tile of the cost model when --tiles is not given (default 0.22: compute + "
                         "Zarr write per 1024^2 tile of 2 images, benchmarks/bench_tile_cpu.py --write)")
    ap.add_argument("--compression", type=float, default=1.58,
                    help="cube store compression ratio of the cost model (default 1.58: LZ4 + shuffle on "
                         "bench_cube's city)")
    ap.add_argument("--json", help="write the figures to this JSON file")
    args = ap.parse_args(argv)
    res, plan = measure_graph(args.size, args.chunk)
    if args.tiles:
        res.update(measure_tiles(plan, args.tiles))
    s_tile = res["s_per_tile_per_worker"] + 0.075 if args.tiles else args.s_per_tile   # + Zarr write (measured)
    model = cost_model(res, plan, args.cost_workers, s_tile, args.compression)
    w = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{w}}  {v:,.3f}" if isinstance(v, float) else f"{k:<{w}}  {v}")
    print(model)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
