"""The pairs of elevated patches joined across tile borders, found from the border rows and
columns each segmentation task returns (:func:`offnadir.change.tile.strip_pairs`), equal those
read back from the store tile by tile (:func:`offnadir.change.tile.tile_border_pairs`, still used
on resume), in the same order."""

from __future__ import annotations

import numpy as np
import pytest

from offnadir.change import tile as T
from offnadir.change.options import ChangeOptions
from offnadir.change.runner import tiles_of


@pytest.mark.parametrize("chunk", [(16, 16), (25, 40), (64, 33)])
def test_strip_pairs_equal_the_pairs_read_from_the_store(chunk):
    rng = np.random.default_rng(sum(chunk))
    ny, nx = 64, 90
    # blocky labels (roofs spanning borders), elevated on most, heights with steps of 0-3 m
    lab = (np.arange(ny)[:, None] // 7 * 100 + np.arange(nx)[None, :] // 9 + 1).astype(np.int64)
    lab[rng.random((ny, nx)) < 0.05] = 0
    elev = (rng.random((ny, nx)) < 0.8).astype(np.uint8)
    h = 10 + np.round(rng.random((ny, nx)) * 3, 1)
    h[rng.random((ny, nx)) < 0.02] = np.nan
    opts = ChangeOptions()
    ctx = T.Context(shape=(ny, nx), n_images=2, n_bands=1, cell=1.0, opts=opts, targets=(1,))
    io = T.MemoryIO({"patch": lab, "elevated": elev, "dsm": h.astype(np.float32)})
    cy = tuple(min(chunk[0], ny - k) for k in range(0, ny, chunk[0]))
    cx = tuple(min(chunk[1], nx - k) for k in range(0, nx, chunk[1]))
    tiles = tiles_of(cy, cx)
    want = np.concatenate([T.tile_border_pairs(io, ctx, t) for t in tiles])
    hf = h.astype(np.float32).astype(np.float64)  # as segment_tile reads the DSM
    strips = {(t.ti, t.tj): T.border_strips(lab[t.i0:t.i1, t.j0:t.j1], elev[t.i0:t.i1, t.j0:t.j1],
                                            hf[t.i0:t.i1, t.j0:t.j1]) for t in tiles}
    got = T.strip_pairs(strips, tiles, float(opts.roof_step))
    assert len(want) > 10  # the scene has joins the test can miss
    np.testing.assert_array_equal(got, want)
