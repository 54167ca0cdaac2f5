"""The sun estimate's window on a cube of any size (dask wiring only; the counting is
:func:`offnadir.change.sun_window_choice.wall_block_counts`, the choice
:func:`~offnadir.change.sun_window_choice.pick_window_from_counts`).

:func:`offnadir.change.sun_window_choice.pick_window` wants the whole grid's heights and visibility in
memory: at 60 000² cells that is tens of GB in one process. Here every chunk of the DSM (with one
row above and one column left of it: a wall is a step to those neighbours) counts its usable wall
cells between the window edges and its own edges, so the client only ever holds one chunk per task
and a table of counts (a few entries per window stride); the window chosen is the same.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("offnadir.change.sun_window")


def _as_dask(a, chunks):
    import dask.array as da

    return a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=chunks)


def pick_window_lazy(dsm, visible, max_side: int):
    """(i0, i1, j0, j1): the ``max_side``² window of the grid with the most usable wall cells,
    identical to ``pick_window(dsm.values, visible.values == 1, max_side)`` without reading either
    whole. ``dsm`` (y, x) and ``visible`` (y, x, 1 = visible) DataArrays or arrays, dask-backed or
    not; computed with the current dask scheduler (:func:`wall_counts_lazy`)."""
    from offnadir.change.sun_window_choice import pick_window_from_counts

    ny, nx = dsm.shape
    if ny <= max_side and nx <= max_side:
        return 0, ny, 0, nx
    counts, cuts_y, cuts_x = wall_counts_lazy(dsm, visible, max_side)
    win = pick_window_from_counts(counts, cuts_y, cuts_x, max_side)
    log.debug("sun estimate window %s from wall counts between %d x %d cuts", win, len(cuts_y), len(cuts_x))
    return win


def wall_counts_lazy(dsm, visible, max_side: int):
    """(counts, cuts_y, cuts_x): usable wall cells summed between consecutive cuts (every window
    edge of :func:`~offnadir.change.sun_window_choice.pick_window` and every chunk edge of ``dsm``).

    Two passes, each streaming chunk by chunk (a chunk is read, used and dropped): the first gathers
    the DSM's nanmin (the height non-finite cells take) and its rows and columns just before each
    chunk edge (the halos: a wall is a step to the cell above or to the left), the second counts
    each chunk's walls with its halo row and column (one task per chunk). The client holds the
    halos (one row per chunk row and one column per chunk column of the grid) and the counts (a few
    entries per window stride and chunk along each axis)."""
    import dask
    import dask.array as da

    from offnadir.change.sun_window_choice import wall_block_counts, window_cuts

    h = _as_dask(getattr(dsm, "data", dsm), "auto")
    ny, nx = h.shape
    vis = _as_dask(getattr(visible, "data", visible), h.chunks).rechunk(h.chunks)
    offs = [np.concatenate([[0], np.cumsum(c)]).astype(np.int64) for c in h.chunks]
    lo, anyfin, above, before = dask.compute(da.nanmin(h), da.isfinite(h).any(), h[offs[0][1:-1] - 1, :],
                                             h[:, offs[1][1:-1] - 1])
    fill = float(lo) if bool(anyfin) else 0.0
    cuts = [window_cuts(n, max_side, o) for n, o in zip((ny, nx), offs)]
    # per chunk, the block-local starts of the intervals between cuts it holds (chunk edges are cuts)
    local = [[c[(c >= o[k]) & (c < o[k + 1])] - o[k] for k in range(len(o) - 1)] for c, o in zip(cuts, offs)]

    def block(hb, vb, block_id=None):
        bi, bj = block_id
        (y0, y1), (x0, x1) = offs[0][bi:bi + 2], offs[1][bj:bj + 2]
        top, left = int(bi > 0), int(bj > 0)
        # the chunk with its halo row and column (their corner steps to no counted cell)
        ext = np.full((top + y1 - y0, left + x1 - x0), np.nan)
        ext[top:, left:] = hb
        if top:
            ext[0, left:] = above[bi - 1, x0:x1]
        if left:
            ext[top:, 0] = before[y0:y1, bj - 1]
        return wall_block_counts(ext, vb == 1, fill, top, left, local[0][bi], local[1][bj])

    counts = da.map_blocks(block, h, vis, chunks=tuple(tuple(len(s) for s in ax) for ax in local), dtype=np.int64,
                           meta=np.empty((0, 0), np.int64))
    return counts.compute(), cuts[0], cuts[1]
