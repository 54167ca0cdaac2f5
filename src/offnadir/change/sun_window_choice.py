"""Where the sun estimate looks: the window of the grid with the most usable wall cells (a wall is
a height step to a row or column neighbour larger than ``WALL_STEP_M``; walls cast the shadows the
estimate fits). :func:`pick_window` on a grid in memory; :func:`window_cuts`,
:func:`wall_block_counts` and :func:`pick_window_from_counts` give the same window from counts per
block (:mod:`offnadir.change.sun_window` wires them over a dask cube of any size). numpy only."""

from __future__ import annotations

import numpy as np

#: a wall for the window choice: height step between neighbours (metres); 2 m ~ below a storey
WALL_STEP_M = 2.0


def pick_window(h, ok, max_side: int):
    """(i0, i1, j0, j1): the max_side² window (stride max_side/4) with the most usable wall cells."""
    ny, nx = h.shape
    if ny <= max_side and nx <= max_side:
        return 0, ny, 0, nx
    hz = np.where(np.isfinite(h), h, np.nanmin(h) if np.isfinite(h).any() else 0.0)
    wall = np.zeros(h.shape, bool)
    wall[:, 1:] |= np.abs(np.diff(hz, axis=1)) > WALL_STEP_M
    wall[1:, :] |= np.abs(np.diff(hz, axis=0)) > WALL_STEP_M
    wall &= ok
    c = np.pad(wall.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sy, sx = min(ny, max_side), min(nx, max_side)
    stride = max(1, max_side // 4)
    best, arg = -1, (0, sy, 0, sx)
    for i0 in list(range(0, ny - sy + 1, stride)) + [ny - sy]:
        for j0 in list(range(0, nx - sx + 1, stride)) + [nx - sx]:
            n = c[i0 + sy, j0 + sx] - c[i0, j0 + sx] - c[i0 + sy, j0] + c[i0, j0]
            if n > best:
                best, arg = n, (i0, i0 + sy, j0, j0 + sx)
    return arg


def window_starts(n: int, side: int, stride: int) -> list:
    """The first rows (or columns) of the windows :func:`pick_window` compares along one axis, in
    its order: every ``stride`` cells, and the last window flush with the grid's end."""
    return list(range(0, n - side + 1, stride)) + [n - side]


def window_cuts(n: int, max_side: int, bounds=()) -> np.ndarray:
    """Sorted cut positions along one axis (0 and ``n`` included): every edge of a window
    :func:`pick_window` compares, and ``bounds`` (e.g. chunk edges). Wall counts summed between
    consecutive cuts give every window's count exactly (:func:`pick_window_from_counts`)."""
    side, stride = min(n, max_side), max(1, max_side // 4)
    starts = window_starts(n, side, stride)
    edges = [0, n, *starts, *(s + side for s in starts), *bounds]
    return np.unique(np.asarray(edges, np.int64))


def wall_block_counts(h, ok, fill: float, top: int, left: int, starts_y, starts_x):
    """Usable wall cells (as :func:`pick_window` counts them) of one block, summed between cuts.

    ``h`` the block's heights with ``top`` (0 or 1) rows above and ``left`` (0 or 1) columns left
    of it (the neighbours a wall step needs), ``ok`` the block's usability (without them),
    ``fill`` the height of non-finite cells (the whole grid's nanmin, as :func:`pick_window`),
    ``starts_y``/``starts_x`` the block-local first row/column of each interval between cuts (the
    first 0). Returns int64 counts, one per interval pair."""
    h = np.asarray(h, np.float64)
    hz = np.where(np.isfinite(h), h, fill)
    wall = np.zeros(h.shape, bool)
    wall[:, 1:] |= np.abs(np.diff(hz, axis=1)) > WALL_STEP_M
    wall[1:, :] |= np.abs(np.diff(hz, axis=0)) > WALL_STEP_M
    core = (wall[top:, left:] & np.asarray(ok, bool)).astype(np.int64)
    return np.add.reduceat(np.add.reduceat(core, starts_y, axis=0), starts_x, axis=1)


def pick_window_from_counts(counts, cuts_y, cuts_x, max_side: int):
    """:func:`pick_window`'s choice from wall counts summed between cuts (:func:`window_cuts`,
    :func:`wall_block_counts`): the same windows compared in the same order, the same counts,
    the same window (ties go to the first)."""
    ny, nx = int(cuts_y[-1]), int(cuts_x[-1])
    if ny <= max_side and nx <= max_side:
        return 0, ny, 0, nx
    c = np.pad(np.asarray(counts, np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    iy = {int(v): k for k, v in enumerate(cuts_y)}
    ix = {int(v): k for k, v in enumerate(cuts_x)}
    sy, sx = min(ny, max_side), min(nx, max_side)
    stride = max(1, max_side // 4)
    best, arg = -1, (0, sy, 0, sx)
    for i0 in window_starts(ny, sy, stride):
        a, b = iy[i0], iy[i0 + sy]
        for j0 in window_starts(nx, sx, stride):
            e, f = ix[j0], ix[j0 + sx]
            n = c[b, f] - c[a, f] - c[b, e] + c[a, e]
            if n > best:
                best, arg = n, (i0, i0 + sy, j0, j0 + sx)
    return arg
