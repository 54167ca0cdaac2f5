"""The cube's task graph stays small: one task per tile plus one shared plan node, tile arguments
as plain integers (no object walked or embedded per task), statistics tasks sharing one DSM node;
and the integer form computes the same tile as the Tile form."""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import dask
import numpy as np

from offnadir.cube import graph
from offnadir.cube.plan import Tile


@dataclass(frozen=True)
class BigPlan:
    """Stands for a plan: what tile_write_tasks reads of it, plus weight that must not be copied."""

    grid: tuple[int, int]
    chunk: int = 1024
    ballast: bytes = b"x" * 200_000

    def tiles(self):
        c = self.chunk
        return [Tile(a, b, a * c, a * c + c, b * c, b * c + c)
                for a in range(self.grid[0]) for b in range(self.grid[1])]


@dataclass(frozen=True)
class BlockDsm:
    shape: tuple[int, int]
    ballast: bytes = b"y" * 200_000

    def read_block(self, i0, i1, j0, j1):
        i, j = np.mgrid[i0:i1, j0:j1]
        return (i + 0.001 * j).astype(np.float64)


def _graph(collections) -> dict:
    from dask.base import collections_to_expr

    return dict(collections_to_expr(collections).__dask_graph__())


def test_tile_tasks_share_one_plan_node_and_take_integers():
    plan = BigPlan((12, 9))
    tasks = graph.tile_write_tasks(plan, "/nowhere/cube.zarr", skip={(0, 0), (3, 4)})
    assert len(tasks) == 12 * 9 - 2
    g = _graph(tasks)
    assert len(g) == len(tasks) + 1                   # the tiles and one plan node
    # each task is shipped on its own: the plan's 200 kB travel with one node, not with every task,
    # and a tile is six integers, not an object
    sizes = sorted(len(pickle.dumps(v)) for v in g.values())
    assert sizes[-1] > 200_000 and sizes[-2] < 2_000
    assert sum(b"Tile" in pickle.dumps(v) for v in g.values()) == 0


def test_stats_tasks_share_one_dsm_node_and_give_the_block_extremes():
    dsm = BlockDsm((1000, 700))
    d = graph.dsm_stats(dsm, 128)
    g = _graph([d])
    n_blocks = 8 * 6
    assert len(g) >= n_blocks + 1
    sizes = sorted(len(pickle.dumps(v)) for v in g.values())
    assert sizes[-1] > 200_000 and sizes[-2] < 2_000     # the DSM travels with one node only
    lo, hi, n = dask.compute(d, scheduler="synchronous")[0]
    assert (lo, hi, n) == (0.0, 999 + 0.699, 1000 * 700)


def test_tile_runs_stay_in_one_row_side_by_side():
    plan = BigPlan((3, 5))
    todo = [t for t in plan.tiles() if (t.ti, t.tj) not in {(0, 2), (2, 0)}]
    runs = graph.tile_runs(todo, 2)
    assert [[(t.ti, t.tj) for t in r] for r in runs] == [
        [(0, 0), (0, 1)], [(0, 3), (0, 4)],                   # the skipped (0, 2) breaks the run
        [(1, 0), (1, 1)], [(1, 2), (1, 3)], [(1, 4)],         # never across rows
        [(2, 1), (2, 2)], [(2, 3), (2, 4)]]
    assert [t for r in runs for t in r] == todo
    assert [len(r) for r in graph.tile_runs(todo, 1)] == [1] * len(todo)


def test_tiles_per_task_leaves_every_worker_a_task():
    assert graph.tiles_per_task(4, 2, 2) == 2          # 2x2 tiles, 2 workers: one row each
    assert graph.tiles_per_task(4, 2, 4) == 1
    assert graph.tiles_per_task(16, 4, 2) == 4
    assert graph.tiles_per_task(10_000, 100, 8) == graph.TILES_PER_TASK_MAX
    assert graph.tiles_per_task(9, 1, 2) == 1          # one tile per row: nothing to share
    assert graph.tiles_per_task(16, 4, 0) == 1         # unknown worker count


def test_run_tasks_share_one_plan_node_and_cover_every_tile():
    plan = BigPlan((4, 5))
    skip = {(1, 1)}
    tasks = graph.tile_write_tasks(plan, "/nowhere/cube.zarr", skip=skip, per_task=2)
    assert len(tasks) == len(graph.tile_runs([t for t in plan.tiles() if (t.ti, t.tj) not in skip], 2)) == 12
    g = _graph(tasks)
    assert len(g) == len(tasks) + 1
    sizes = sorted(len(pickle.dumps(v)) for v in g.values())
    assert sizes[-1] > 200_000 and sizes[-2] < 2_000


def test_a_run_writes_what_its_tiles_write_one_by_one(tmp_path):
    """write_tiles_at of a run: the same store content as write_tile_at tile by tile."""
    import zarr
    from synthetic import affine_rpc, box_scene, write_dsm, write_image

    from offnadir.cube.layout import create_store
    from offnadir.pipeline import plan_cube

    dsm = write_dsm(tmp_path / "dsm.tif", box_scene(n=100, boxes=((30, 60, 35, 80, 20.0),)))
    images = [write_image(tmp_path / f"img{k}.tif", affine_rpc(th, ph, rows=260, cols=260), 260, 260)
              for k, (th, ph) in enumerate(((8.0, 20.0), (26.0, 260.0)))]
    plan = plan_cube(dsm, images, chunk=48)
    stores = [str(tmp_path / "one.zarr"), str(tmp_path / "runs.zarr")]
    for s in stores:
        create_store(s, plan)
    for t in plan.tiles():
        graph.write_tile_at(stores[0], plan, *graph._ints(t))
    for run in graph.tile_runs(plan.tiles(), 3):
        graph.write_tiles_at(stores[1], plan, *[v for t in run for v in graph._ints(t)])
    a, b = zarr.open_group(stores[0], mode="r"), zarr.open_group(stores[1], mode="r")
    for name in ("row", "col", "visible", "value", "dsm", "tile_done"):
        np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)
    assert np.asarray(b["tile_done"][...]).all() and (np.asarray(a["visible"][...]) == 0).any()
