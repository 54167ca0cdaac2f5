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
