"""dask wiring of the cube: which task computes which tile, how tiles assemble into arrays.
No math here: every task calls a function of :mod:`offnadir.cube.tile` or :mod:`offnadir.store`.

Workers import this module to run :func:`write_tile_at`: ``dask.array`` (which brings xarray,
pandas and scipy's FFT and sparse modules, ~0.7 CPU-s) is imported only where arrays are built."""

from __future__ import annotations

import logging
import operator
from typing import TYPE_CHECKING

import dask
import numpy as np

from offnadir.cube import tile as tilemod
from offnadir.cube.plan import Tile

if TYPE_CHECKING:  # only for the annotations: dask.array is imported where arrays are built
    import dask.array as da

log = logging.getLogger("offnadir.cube.graph")


# Every task gets the DSM and the plan as one shared graph node (traverse=False) and its tile as
# plain integers: dask.delayed unpacks and tokenizes the arguments of every call, and a dataclass
# (the DSM source, a Tile) is walked field by field each time. For a 100,000^2-cell plan (9,604
# tiles, 10,979 statistics tasks) that walking was most of the time to build and submit the graph.


def dsm_stats(dsm, chunk: int):
    """Delayed (h_min, h_max, n_valid) of the stored DSM heights: one task per block, tree-combined."""
    ny, nx = dsm.shape
    dsm_node = dask.delayed(dsm, pure=True, traverse=False)
    parts = [dask.delayed(tilemod.block_stats, pure=True)(dsm_node, i, min(i + chunk, ny), j, min(j + chunk, nx))
             for i in range(0, ny, chunk) for j in range(0, nx, chunk)]
    while len(parts) > 1:
        parts = [dask.delayed(tilemod.combine_stats, pure=True)(*parts[k:k + 8]) for k in range(0, len(parts), 8)]
    return parts[0]


def cube_arrays(plan) -> dict[str, da.Array]:
    """Lazy arrays of every cube field, one compute_tile task per tile shared by all fields."""
    import dask.array as da

    n_img = len(plan.images)
    grid = plan.grid_shape
    blocks = {name: [[None] * grid[1] for _ in range(grid[0])] for name in tilemod.FIELDS}
    plan_node = dask.delayed(plan, pure=True, traverse=False)
    for t in plan.tiles():
        res = dask.delayed(compute_tile_at, pure=True)(plan_node, *_ints(t))
        ny, nx = t.shape
        shapes = {"row": (n_img, ny, nx), "col": (n_img, ny, nx), "visible": (n_img, ny, nx),
                  "value": (n_img, plan.n_bands, ny, nx), "dsm": (ny, nx)}
        for name, dtype in tilemod.FIELDS.items():
            part = dask.delayed(operator.getitem, pure=True)(res, name)
            blocks[name][t.ti][t.tj] = da.from_delayed(part, shape=shapes[name], dtype=dtype)
    return {name: da.block(rows) for name, rows in blocks.items()}


def tile_write_tasks(plan, store_path: str, skip: set | None = None, per_task: int = 1, shared=None) -> list:
    """Delayed tasks computing the tiles not in ``skip`` and writing their regions: one per tile, or
    with ``per_task`` > 1 one per run of up to that many consecutive tiles of one tile row
    (:func:`tile_runs`). ``shared``: the plan already on the workers (a future of
    ``client.scatter(plan, broadcast=True)``): every worker then holds the tasks' one input, so the
    scheduler places them by load alone, not all where a plan node was computed."""
    skip = skip or set()
    # one graph node holds the plan, shared by every task (not re-traversed and embedded per tile)
    plan_node = shared if shared is not None else dask.delayed(plan, pure=True, traverse=False)
    todo = [t for t in plan.tiles() if (t.ti, t.tj) not in skip]
    if per_task <= 1:
        return [dask.delayed(write_tile_at, pure=False)(store_path, plan_node, *_ints(t)) for t in todo]
    return [dask.delayed(write_tile_at, pure=False)(store_path, plan_node, *_ints(run[0])) if len(run) == 1 else
            dask.delayed(write_tiles_at, pure=False)(store_path, plan_node, *[v for t in run for v in _ints(t)])
            for run in tile_runs(todo, per_task)]


def tiles_per_write_task(plan, skip: set | None = None, per_task: int = 1) -> list[int]:
    """How many tiles each task of :func:`tile_write_tasks` (same arguments) writes, in its order
    (the progress counts tiles, not tasks)."""
    skip = skip or set()
    todo = [t for t in plan.tiles() if (t.ti, t.tj) not in skip]
    return [1] * len(todo) if per_task <= 1 else [len(run) for run in tile_runs(todo, per_task)]


#: at most this many tiles side by side per cube task (see :func:`tile_runs`)
TILES_PER_TASK_MAX = 4


def tiles_per_task(n_todo: int, tiles_per_row: int, workers: int) -> int:
    """Tiles of one row per cube task (:func:`tile_runs`): as many as still gives each of the
    ``workers`` at least one task, at most :data:`TILES_PER_TASK_MAX` (a task is one unit for
    the scheduler's load balancing); 1 when the worker count is unknown (0). Logged."""
    if workers <= 0:
        return 1
    k = max(1, min(TILES_PER_TASK_MAX, tiles_per_row, n_todo // workers))
    if k > 1:
        log.info("cube tasks write runs of up to %d tiles side by side (%d tiles, %d worker threads): a worker "
                 "decompresses the image rows they share once", k, n_todo, workers)
    return k


def tile_runs(tiles, per_task: int) -> list[list[Tile]]:
    """``tiles`` (row-major) cut into runs of at most ``per_task`` tiles side by side in one tile
    row. Why: the tiles of a row read the same image rows, and images are often stored in strips
    (whole rows, compressed), so a worker writing them one after the other decompresses those rows
    once (GDAL's block cache, :mod:`offnadir.io.open_files`), not once per tile."""
    runs: list[list[Tile]] = []
    for t in tiles:
        last = runs[-1][-1] if runs else None
        if last is not None and len(runs[-1]) < per_task and last.ti == t.ti and last.tj + 1 == t.tj:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def _ints(t) -> tuple[int, ...]:
    return t.ti, t.tj, t.i0, t.i1, t.j0, t.j1


def compute_tile_at(plan, ti, tj, i0, i1, j0, j1) -> dict:
    """:func:`offnadir.cube.tile.compute_tile` of the tile given by its integers (a task)."""
    return tilemod.compute_tile(plan, Tile(ti, tj, i0, i1, j0, j1))


def write_tile_at(store_path, plan, ti, tj, i0, i1, j0, j1):
    """:func:`offnadir.store.write_tile` of the tile given by its integers (a task)."""
    from offnadir import store

    return store.write_tile(store_path, plan, Tile(ti, tj, i0, i1, j0, j1))


def write_tiles_at(store_path, plan, *ints):
    """:func:`write_tile_at` of several tiles, six integers each, one after the other (a task),
    their input files kept open in between (:func:`offnadir.io.open_files.session`)."""
    from offnadir.io.open_files import session

    with session():
        return [write_tile_at(store_path, plan, *ints[k:k + 6]) for k in range(0, len(ints), 6)]


def empty_arrays(plan) -> dict[str, da.Array]:
    """Cheap lazy placeholders with the cube's shapes and chunks (used to lay out a store)."""
    import dask.array as da

    n_img = len(plan.images)
    cy, cx = plan.chunks()
    return {
        "row": da.full((n_img, sum(cy), sum(cx)), np.nan, chunks=((1,) * n_img, cy, cx), dtype=np.float32),
        "col": da.full((n_img, sum(cy), sum(cx)), np.nan, chunks=((1,) * n_img, cy, cx), dtype=np.float32),
        "visible": da.full((n_img, sum(cy), sum(cx)), 2, chunks=((1,) * n_img, cy, cx), dtype=np.uint8),
        "value": da.full((n_img, plan.n_bands, sum(cy), sum(cx)), np.nan,
                         chunks=((1,) * n_img, (plan.n_bands,), cy, cx), dtype=np.float32),
        "dsm": da.full((sum(cy), sum(cx)), np.nan, chunks=(cy, cx), dtype=np.float32),
    }
