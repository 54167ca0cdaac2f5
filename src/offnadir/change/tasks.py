"""The change stage's per-tile task functions, at module level so that dask can pickle them by
reference; the dask wiring that calls them is :mod:`offnadir.change.runner`. Each calls a function
of :mod:`~offnadir.change.tile`, :mod:`~offnadir.change.cells` or :mod:`~offnadir.change.fit`."""

from __future__ import annotations

import numpy as np

from offnadir.change import fit as F
from offnadir.change import tile as T
from offnadir.errors import DataError

PROGRESS = "change_tiles"
SEGMENTED, WRITTEN = 1, 4


def _stats_tile(io, shape, n_images, n_bands, tile, r):
    from offnadir.change import cells as P

    io = _ReadOnce(io)  # the noise histograms read the visible and value arrays the statistics just read
    out = T.stats(io, shape, n_images, n_bands, tile, r)
    out["noise"] = P.noise_tile(io, T.Context(shape=shape, n_images=n_images, n_bands=n_bands, cell=1.0, opts=None,
                                              targets=()), tile)
    return out


class _ReadOnce:
    """``io`` whose reads are kept for the task by (name, key): a second read of the same region
    returns the same array, not another copy assembled from the chunks. For functions that only
    read what they read (:func:`~offnadir.change.tile.stats`, :func:`~offnadir.change.cells.noise_tile`)."""

    def __init__(self, io):
        self.io, self.kept = io, {}

    def read(self, name, key):
        k = (name, repr(key))
        if k not in self.kept:
            self.kept[k] = self.io.read(name, key)
        return self.kept[k]

    def __getattr__(self, name):
        return getattr(self.io, name)


def _add_stats(*parts):
    out = T.add_stats(*parts)
    out["noise"] = {k: sum(p["noise"][k] for p in parts) for k in parts[0]["noise"]}
    return out


def _hist_of(reduced):
    return reduced["hist"]


def _fit_task(reduced, ctx, names, want_patch, want_ortho, ndvi_min, target):
    """One target's fit for one method; a DataError is returned (raised by the client in order)."""
    try:
        return F.fit_all(reduced["sample"], ctx, names, want_patch, want_ortho, ndvi_min, targets=(target,))
    except DataError as e:
        return e


def _segment_and_mark(io, ctx, tile):
    """Segment the tile, mark it; ((ti, tj), its border strips)."""
    strips = T.segment_tile(io, ctx, tile)
    _mark(io, tile, SEGMENTED)
    return (tile.ti, tile.tj), strips


def _relabel(io, ctx, tile, oldnew):
    return T.relabel_tile(io, ctx, tile, *oldnew)


def _evidence_tile(io, ctx, tile, plan, has, oldnew=None):
    """The tile's IDs joined across tile borders first (``oldnew``: the segment pass's (old, new)
    IDs, None: none in this tile), then its evidence (:func:`~offnadir.change.cells.evidence_tile`)."""
    from offnadir.change import cells as P

    if oldnew is not None:
        T.relabel_tile(io, ctx, tile, *oldnew)
    return P.evidence_tile(io, ctx, tile, plan, has)


def _sums_tile(io, ctx, tile, models, want_patch, want_ortho):
    from offnadir.change import cells as P

    m, sc, ortho = models
    out, arrays = {}, {}
    if want_patch:
        from offnadir.change import missing_shadow as MS

        out["patch"] = T.patch_tile(io, ctx, tile, m, sc, keep=arrays)
        from offnadir.change import crown_shadow as CS
        from offnadir.change import longer_shadow as LS

        crowns = CS.tile_sums(io, ctx, tile, keep=arrays)  # crowns' shadows no other casts; first: it keeps
        # the sure shadows' first casters in the shared shadow window, which the missing-shadow sums then take
        out["shadow"] = MS.add_sums(MS.tile_sums(io, ctx, tile, keep=arrays),  # the core values patch_tile read
                                    LS.tile_sums(io, ctx, tile, keep=arrays), crowns)
        if CS.wanted(ctx):  # the elevated patches' adjacency: crowns decided whole (crown_shadow)
            out["crowns"] = CS.tile_pairs(io, tile, ctx.shape)
    if want_ortho:
        out["hist"] = P.ortho_tile(io, ctx, tile, ortho, want_patch, arrays)
    return out


def _add_sums(*parts):
    from offnadir.change import cells as P

    out = {}
    pp = [p["patch"] for p in parts if "patch" in p]
    if pp:
        out["patch"] = T.add_patch(*pp)
    ss = [p["shadow"] for p in parts if "shadow" in p]
    if ss:
        from offnadir.change import missing_shadow as MS

        out["shadow"] = MS.add_sums(*ss)
    cp = [p["crowns"] for p in parts if "crowns" in p]
    if cp:
        from offnadir.change import crown_shadow as CS

        out["crowns"] = CS.add_pairs(*cp)
    hh = [p["hist"] for p in parts if "hist" in p]
    if hh:
        out["hist"] = P.add_hist(*hh)
    return out


def _maps_tile(io, ctx, tile, models, has, plan, mark):
    from offnadir.change import cells as P

    out = P.probability_tile(io, ctx, tile, models, has, plan)
    if plan.get("history") is not None:  # the per-cell history from the change maps just written
        from offnadir.change.history import history_tile

        history_tile(io, tile, *plan["history"])
    if mark:
        _mark(io, tile, WRITTEN)
    return out


def _mark(io, tile, bit):
    if PROGRESS in getattr(io, "arrays", {PROGRESS: None}) or not hasattr(io, "arrays"):
        cur = io.read(PROGRESS, (slice(tile.ti, tile.ti + 1), slice(tile.tj, tile.tj + 1)))
        io.write(PROGRESS, (slice(tile.ti, tile.ti + 1), slice(tile.tj, tile.tj + 1)), cur | np.uint8(bit))
