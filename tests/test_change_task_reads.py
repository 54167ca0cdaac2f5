"""The change stage's per-tile tasks read each region once where two steps of a task need it
(offnadir.change.tasks), with the same results as the steps reading for themselves."""

from __future__ import annotations

import numpy as np

from offnadir.change import cells as P
from offnadir.change import tasks
from offnadir.change import tile as T
from offnadir.cube.plan import Tile


class _Counting(T.MemoryIO):
    def __init__(self, arrays):
        super().__init__(arrays)
        self.reads = []

    def read(self, name, key):
        self.reads.append(name)
        return super().read(name, key)


def _arrays(rng, n_img=2, ny=40, nx=50):
    h = 30.0 + rng.normal(0, 2, (ny, nx)).cumsum(axis=1) * 0.2
    h[rng.random(h.shape) < 0.02] = np.nan
    val = rng.normal(100, 15, (n_img, 3, ny, nx)).astype(np.float32)
    val[rng.random(val.shape) < 0.01] = np.nan
    vis = rng.integers(0, 3, (n_img, ny, nx)).astype(np.uint8)
    return {"dsm": h.astype(np.float32), "value": val, "visible": vis}


def test_stats_task_reads_each_region_once_and_equals_its_steps():
    rng = np.random.default_rng(11)
    arrays = _arrays(rng)
    tile = Tile(0, 1, 8, 40, 20, 50)
    io = _Counting(arrays)
    got = tasks._stats_tile(io, (40, 50), 2, 3, tile, 4)
    assert sorted(io.reads) == ["dsm", "value", "visible"]  # noise_tile's reads were the statistics' own
    ref_io = T.MemoryIO(arrays)
    want = T.stats(ref_io, (40, 50), 2, 3, tile, 4)
    ctx = T.Context(shape=(40, 50), n_images=2, n_bands=3, cell=1.0, opts=None, targets=())
    noise = P.noise_tile(ref_io, ctx, tile)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert set(got["noise"]) == set(noise) == {0, 1}
    for k in noise:
        np.testing.assert_array_equal(got["noise"][k], noise[k])
        assert noise[k].sum() > 0
    # the kept arrays are the store's values: nothing was written through them
    np.testing.assert_array_equal(arrays["value"], _arrays(np.random.default_rng(11))["value"])
