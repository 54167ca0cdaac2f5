"""The sun estimate's window from per-chunk wall counts (offnadir.change.sun_window) is the window
the whole-grid pick (offnadir.change.sun_window_choice.pick_window) chooses, on grids both can hold:
buildings, NaN holes, sizes that are no multiple of the stride, strides that do not divide the
window, chunks of any shape (including one-cell chunks and chunks unlike the visibility's)."""

import numpy as np
import pytest

from offnadir.change.sun_window_choice import pick_window, wall_block_counts, window_cuts
from offnadir.change.sun_window import pick_window_lazy


def _city(shape, seed, n_boxes=40, holes=0):
    """Boxes of random heights on gently sloping ground, a hidden share of cells, NaN holes."""
    rng = np.random.default_rng(seed)
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    h = 100.0 + 0.01 * yy + 0.02 * xx
    for _ in range(n_boxes):
        i, j = rng.integers(0, ny), rng.integers(0, nx)
        h[i:i + rng.integers(3, 30), j:j + rng.integers(3, 30)] += rng.uniform(1.0, 25.0)
    for _ in range(holes):
        i, j = rng.integers(0, ny), rng.integers(0, nx)
        h[i:i + rng.integers(2, 40), j:j + rng.integers(2, 40)] = np.nan
    vis = (rng.random(shape) < 0.85).astype(np.uint8)
    vis[np.isnan(h)] = 0
    return h.astype(np.float32), vis


CASES = [  # (shape, max_side, seed, holes)
    ((300, 260), 96, 0, 0),      # stride 24: neither side a multiple of it
    ((257, 401), 90, 1, 6),      # stride 22, 4 x 22 != 90: window ends off the stride; NaN holes
    ((200, 120), 128, 2, 3),     # only the rows exceed the window
    ((513, 517), 128, 3, 10),
]


@pytest.mark.parametrize("shape,max_side,seed,holes", CASES)
def test_lazy_window_is_the_whole_grid_window(shape, max_side, seed, holes):
    import dask.array as da

    h, vis = _city(shape, seed, holes=holes)
    want = pick_window(np.asarray(h, np.float64), vis == 1, max_side)
    for chunks in [(64, 64), (37, 53), (1000, 1000), (shape[0] - 1, 7)]:
        got = pick_window_lazy(da.from_array(h, chunks=chunks), da.from_array(vis, chunks=(50, 70)), max_side)
        assert got == want, (chunks, got, want)
    # plain arrays (an in-memory cube) take the same path
    assert pick_window_lazy(h, vis, max_side) == want


def test_the_choice_depends_on_the_walls_not_on_the_first_window():
    """A planted block of walls far from the origin is found (the comparison above is not
    trivially 'both chose the first window'); NaN cells next to ground count as walls the same
    way in both (filled with the grid's nanmin)."""
    import dask.array as da

    h = np.full((400, 330), 50.0, np.float32)
    h[300:380, 250:320:4] = 70.0  # 20 m wall steps every 4 columns
    h[20:60, 20:60] = np.nan  # a hole: its rim steps to the nanmin (50 m): no wall
    h[100, 100] = 10.0  # one low cell: the nanmin, so the hole's rim is a 40 m step
    vis = np.ones(h.shape, np.uint8)
    want = pick_window(np.asarray(h, np.float64), vis == 1, 128)
    got = pick_window_lazy(da.from_array(h, chunks=(64, 96)), da.from_array(vis, chunks=(64, 96)), 128)
    assert got == want
    i0, i1, j0, j1 = got
    assert i0 <= 300 and i1 >= 380 and j1 >= 318  # the planted walls are inside
    flat = np.full((300, 300), 5.0, np.float32)  # no wall anywhere: every count 0, the first window wins
    assert pick_window_lazy(flat, np.ones(flat.shape, np.uint8), 100) == pick_window(flat, flat > 0, 100) \
        == (0, 100, 0, 100)
    nan = np.full((300, 300), np.nan, np.float32)  # no finite height: filled with 0, no wall
    assert pick_window_lazy(nan, np.ones(nan.shape, np.uint8), 100) == (0, 100, 0, 100)


def test_block_counts_add_up_to_the_whole_grid_count():
    """The kernel alone: one block with its halo row and column counts exactly the whole grid's
    walls of that block, split at the cuts."""
    h, vis = _city((120, 150), 5, holes=4)
    fill = float(np.nanmin(h))
    hz = np.where(np.isfinite(h), h.astype(np.float64), fill)
    wall = np.zeros(h.shape, bool)
    wall[:, 1:] |= np.abs(np.diff(hz, axis=1)) > 2.0
    wall[1:, :] |= np.abs(np.diff(hz, axis=0)) > 2.0
    wall &= vis == 1
    y0, y1, x0, x1 = 40, 100, 30, 120
    sy, sx = np.array([0, 7, 33]), np.array([0, 50])
    got = wall_block_counts(h[y0 - 1:y1, x0 - 1:x1], vis[y0:y1, x0:x1] == 1, fill, 1, 1, sy, sx)
    core = wall[y0:y1, x0:x1]
    want = [[core[a:b, c:d].sum() for c, d in zip(sx, [*sx[1:], x1 - x0])] for a, b in zip(sy, [*sy[1:], y1 - y0])]
    assert got.tolist() == want
    cuts = window_cuts(150, 64, (30, 120))
    assert cuts[0] == 0 and cuts[-1] == 150 and {30, 120, 86} <= set(cuts.tolist())  # 86 = 150 - 64


def test_every_interval_count_is_the_whole_grid_count():
    """Not only the arg-max: each count between cuts equals the whole grid's wall mask summed
    there, whatever the chunks (so every window's count is exact)."""
    import dask.array as da

    from offnadir.change.sun_window import wall_counts_lazy

    h, vis = _city((230, 190), 7, holes=5)
    hz = np.where(np.isfinite(h), h.astype(np.float64), float(np.nanmin(h)))
    wall = np.zeros(h.shape, bool)
    wall[:, 1:] |= np.abs(np.diff(hz, axis=1)) > 2.0
    wall[1:, :] |= np.abs(np.diff(hz, axis=0)) > 2.0
    wall &= vis == 1
    for chunks in [(41, 29), (230, 3), (64, 64)]:
        counts, cy, cx = wall_counts_lazy(da.from_array(h, chunks=chunks), vis, 60)
        want = np.add.reduceat(np.add.reduceat(wall.astype(np.int64), cy[:-1], axis=0), cx[:-1], axis=1)
        assert counts.shape == want.shape and (counts == want).all(), chunks
