"""Per-cell change history of a multi-date store, from its ``change`` maps and ``time`` coordinate.

Every target image's ``change`` map says whether the cell differs from the base (0 no, 1 yes,
2 not observable). Taken in date order, with the base as the first observed state (0, "as in the
base") where the base sees the cell, a cell's observed states form a sequence; a **change** is a
step from one observed state to the next that differs (0 -> 1: built/demolished/altered; 1 -> 0:
back to the base state, e.g. rebuilt as before, or an earlier false alarm). Unobservable dates are
skipped, not counted as a step. Images without a date are left out (and said in the log).

Variables (all (y, x), written beside ``change``):

* ``first_change`` / ``last_change``: date of the first / last step, int32 days since 1970-01-01
  (``units`` "d", ``epoch`` "1970-01-01": not CF's "days since", which xarray would decode to
  ``datetime64`` and fail on the fill value when the stored values are kept); ``_FillValue``
  -2147483648 where the cell never changed (:func:`decode_days` gives ``datetime64`` with NaT);
* ``n_changes`` uint16: number of steps;
* ``last_observed``: date of the last image (the base included) in which the cell was observable,
  same encoding; NaT where no image saw it.

``offnadir detect`` writes it tile by tile in the change stage's maps pass, from the ``change``
maps the same task has just written (:func:`history_tile`; the arrays are created with the other
change variables, :func:`create_arrays`): no pass of its own. :func:`write_history` recomputes it
whole for a store (one pass over the ``change`` maps, a dask map over the grid's chunks), after
each append (the history of a cell depends on all its dates).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("offnadir.change.history")

NAMES = ("first_change", "last_change", "n_changes", "last_observed")
DAY_FILL = np.iinfo(np.int32).min
#: not CF's "days since ..." on purpose: xarray would decode it to datetime64, which fails for the
#: fill value when a reader keeps the stored values (``mask_and_scale=False``, as offnadir's do)
UNITS, EPOCH = "d", "1970-01-01"
UNOBSERVABLE = 2
ATTRS = {
    "first_change": {"long_name": "date of the first change of the cell (a step between two observed states in "
                                  "date order; the base's state first)"},
    "last_change": {"long_name": "date of the last change of the cell"},
    "n_changes": {"long_name": "number of changes of the cell over the dates (steps between observed states)",
                  "units": "1"},
    "last_observed": {"long_name": "date of the last image in which the cell was observable"},
}


def history_block(change: np.ndarray, days: np.ndarray) -> dict:
    """History of a block. ``change`` (n_images, ...) uint8 with the base first; ``days`` (n_images,)
    int64 days since 1970-01-01, in any order (images without a date must be left out before).
    Returns int32 day maps (``DAY_FILL`` where none) and the uint16 count."""
    change = np.asarray(change)
    days = np.asarray(days, np.int64)
    shape = change.shape[1:]
    order = [0] + sorted(range(1, len(days)), key=lambda k: (days[k], k))
    state = np.where(change[0] != UNOBSERVABLE, 0, -1).astype(np.int8)  # -1: nothing observed yet
    first = np.full(shape, DAY_FILL, np.int32)
    last = np.full(shape, DAY_FILL, np.int32)
    last_obs = np.where(state == 0, np.int32(days[0]), DAY_FILL).astype(np.int32)
    n = np.zeros(shape, np.uint16)
    for k in order[1:]:
        c = change[k]
        seen = c != UNOBSERVABLE
        cur = np.where(c == 1, 1, 0).astype(np.int8)
        # a target compares with the base: its first observation is a step when it differs from the base
        prev = np.where(state < 0, 0, state)
        step = seen & (cur != prev)
        d = np.int32(days[k])
        first = np.where(step & (first == DAY_FILL), d, first)
        last = np.where(step, d, last)
        n = n + step.astype(np.uint16)
        state = np.where(seen, cur, state)
        last_obs = np.where(seen, d, last_obs)
    return {"first_change": first, "last_change": last, "n_changes": n, "last_observed": last_obs}


def image_days(times) -> tuple[np.ndarray, np.ndarray]:
    """(indices of dated images, their days since 1970-01-01) from the ``time`` coordinate."""
    t = np.asarray(times, dtype="datetime64[ns]")
    ok = ~np.isnat(t)
    days = t[ok].astype("datetime64[D]").astype(np.int64)
    return np.flatnonzero(ok), days


def dated_images(times, names) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the images the history follows, their days since 1970-01-01) from the ``time``
    coordinate; says in the log which images are left out (no date), and gives none when the
    base has no date (the history is then empty)."""
    keep, days = image_days(times)
    names = [str(v) for v in names]
    if len(keep) < len(names):
        log.warning("change history leaves out images without a date: %s (give one with --date)",
                    ", ".join(names[k] for k in range(len(names)) if k not in set(keep.tolist())))
    if 0 not in set(keep.tolist()):
        log.warning("the base image has no date: change history is empty")
        keep, days = np.zeros(0, np.int64), np.zeros(0, np.int64)
    return keep, days


def history_of(change: np.ndarray, keep, days) -> dict:
    """:func:`history_block` of the images ``keep`` of ``change`` (n_images, ...) (from
    :func:`dated_images`); none kept: no change, never observed."""
    if len(keep) == 0:
        shape = np.shape(change)[1:]
        out = {k: np.full(shape, DAY_FILL, np.int32) for k in NAMES}
        out["n_changes"] = np.zeros(shape, np.uint16)
        return out
    return history_block(np.asarray(change)[np.asarray(keep)], days)


def history_tile(io, tile, keep, days) -> None:
    """Write the history of one tile (``io``: :class:`offnadir.change.tileio.StoreIO`) from the
    ``change`` maps of every image written there (the maps pass of ``offnadir detect``)."""
    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    out = history_of(io.read("change", (slice(None),) + yx), keep, days)
    for k in NAMES:
        io.write(k, yx, out[k])


def variable_attrs(k: str, grid_mapping: str | None = None) -> dict:
    """The attributes of history variable ``k``."""
    attrs = dict(ATTRS[k])
    if k != "n_changes":
        attrs.update({"units": UNITS, "epoch": EPOCH, "comment": f"days since {EPOCH}; "
                      f"{DAY_FILL} (_FillValue): never; offnadir.change.history.decode_days converts"})
    if grid_mapping:
        attrs["grid_mapping"] = grid_mapping
    return attrs


def encodings(cy: int, cx: int) -> dict:
    """``to_zarr`` encodings: day maps int32 with ``_FillValue`` (GDAL and rioxarray keep the nodata)."""
    enc = {}
    for k in NAMES:
        e = {"chunks": (cy, cx)}
        if k != "n_changes":
            e.update({"_FillValue": DAY_FILL, "dtype": "int32"})
        enc[k] = e
    return enc


def create_arrays(path, shape_yx, chunks_yx, grid_mapping, group_attrs: dict, zarr_format: int) -> None:
    """Create the (empty) history variables in the store at ``path`` as :func:`write_history`
    writes them (same metadata); ``offnadir detect``'s maps pass fills them tile by tile."""
    import dask.array as da
    import xarray as xr

    cy, cx = int(chunks_yx[0]), int(chunks_yx[1])
    data = {k: (("y", "x"), da.zeros(shape_yx, chunks=(cy, cx), dtype=np.uint16 if k == "n_changes" else np.int32),
                variable_attrs(k, grid_mapping)) for k in NAMES}
    tmpl = xr.Dataset(data)
    tmpl.attrs = dict(group_attrs)  # xarray's append mode rewrites the group attributes
    tmpl.to_zarr(str(path), mode="a", compute=False, zarr_format=zarr_format, consolidated=False,
                 encoding=encodings(cy, cx))


def history_dataset(ds):
    """The history variables of a Dataset holding ``change`` (image, y, x) and a ``time``
    coordinate, as lazy (dask) or numpy arrays like ``change``."""
    import dask.array as da
    import xarray as xr

    if "change" not in ds or "time" not in ds.coords:
        from offnadir.errors import DataError

        raise DataError("change history needs the 'change' maps and the 'time' coordinate of a detect store; "
                        "this dataset lacks them. Run `offnadir detect` first.")
    keep, days = dated_images(ds["time"].values, ds["image"].values)
    ch = ds["change"].data
    if len(keep) and isinstance(ch, da.Array):
        sub = ch[keep].rechunk({0: -1})
        out = {k: da.map_blocks(lambda c, k=k: history_block(c, days)[k], sub, drop_axis=0,
                                dtype=np.uint16 if k == "n_changes" else np.int32) for k in NAMES}
    else:
        out = history_of(np.zeros((0,) + ch.shape[1:], np.uint8) if len(keep) == 0 else ch, keep, days)
    gm = ds["change"].attrs.get("grid_mapping")
    return xr.Dataset({k: (("y", "x"), out[k], variable_attrs(k, gm)) for k in NAMES})


def decode_days(arr) -> np.ndarray:
    """int32 day maps -> datetime64[D] with NaT where filled."""
    a = np.asarray(arr)
    if np.issubdtype(a.dtype, np.datetime64):
        return a.astype("datetime64[D]")
    bad = ~np.isfinite(a) | (a == DAY_FILL) if a.dtype.kind == "f" else (a == DAY_FILL)
    out = np.where(bad, 0, a).astype("int64").astype("datetime64[D]")
    out[bad] = np.datetime64("NaT")
    return out


def write_history(path) -> None:
    """(Re)compute the history of the store at ``path`` and write it (replacing earlier history).
    Day maps are stored as int32 with ``_FillValue`` so GDAL and rioxarray keep the nodata."""
    import xarray as xr
    import zarr

    from offnadir import store as S

    with S._quiet_zarr():
        ds = xr.open_zarr(str(path), consolidated=False, mask_and_scale=False)
        hist = history_dataset(ds)
        chunks = ds["change"].encoding.get("chunks") or ds["change"].data.chunksize
        cy, cx = int(chunks[-2]), int(chunks[-1])
        hist = hist.chunk({"y": cy, "x": cx})
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        for k in NAMES:
            if k in g:
                del g[k]
        fmt = g.metadata.zarr_format
        enc = encodings(cy, cx)
        hist.attrs = dict(g.attrs)  # xarray's append mode rewrites the group attributes
        hist.to_zarr(str(path), mode="a", zarr_format=fmt, consolidated=False, encoding=enc)
        zarr.consolidate_metadata(str(path))
    log.info("change history written for %d image(s)", ds.sizes["image"])
