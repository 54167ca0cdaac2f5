"""The Zarr v3 store: laid out once from a lazy template, then filled tile by tile.

Each tile task writes its own chunk-aligned region of every variable and then sets its cell of
``tile_done`` (one chunk per tile, so no two tasks touch the same chunk). A rerun with
``resume=True`` skips tiles already done. Metadata is consolidated when the run completes.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, OutputExistsError

DONE = "tile_done"
log = logging.getLogger("offnadir.store")


@contextmanager
def _quiet_zarr():
    """zarr warns that consolidated metadata and some dtypes are not yet in the v3 spec; we know."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        yield


#: root attributes that make a store offnadir's: its state and the plan it was computed from
STATUS_ATTR, PLAN_ATTR = "offnadir:status", "offnadir:plan"
INCOMPLETE, COMPLETE = "incomplete", "complete"
#: what prepare() decided
NEW, RESUME, NOTHING_TO_DO = "new", "resume", "complete"


def root_attrs(path) -> dict | None:
    """The root group's attributes of a Zarr v3 store (read from its zarr.json), None if ``path``
    is not one."""
    f = Path(path) / "zarr.json"
    try:
        meta = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    return meta.get("attributes") or {} if isinstance(meta, dict) and meta.get("node_type") == "group" else None


def is_offnadir_store(path) -> bool:
    """A store this software wrote: its root carries offnadir's status attribute (stores of 0.1.0,
    which had none, are known by their ``software`` attribute)."""
    attrs = root_attrs(path)
    return attrs is not None and (STATUS_ATTR in attrs or str(attrs.get("software", "")).startswith("offnadir "))


def status(path) -> str | None:
    attrs = root_attrs(path)
    return None if attrs is None else attrs.get(STATUS_ATTR)


def prepare(path, *, overwrite: bool = False, resume: bool = False, plan: dict | None = None) -> str:
    """Decide what to do with the output path before any work: ``NEW`` (nothing there, or an old
    offnadir store removed because ``overwrite``), ``RESUME`` (an unfinished store computed from the
    same ``plan``) or ``NOTHING_TO_DO`` (that store is already complete). Anything else raises."""
    from offnadir.outputs import plan_differences

    p = Path(path)
    if not p.exists():
        return NEW
    attrs = root_attrs(p)
    if resume:
        if attrs is None or PLAN_ATTR not in attrs:
            raise OutputExistsError(
                f"{p}: --resume needs a store written by this version of offnadir, which records the plan it was "
                "computed from; this one does not, so it cannot be checked. Use --overwrite to start again, or "
                "another output path.")
        if plan is not None:
            diffs = plan_differences(json.loads(attrs[PLAN_ATTR]), plan)
            if diffs and overwrite:
                log.warning("%s: computed from another plan (%s); --overwrite given: starting again", p, diffs[0])
                remove(p)
                return NEW
            if diffs:
                more = f" (and {len(diffs) - 5} more)" if len(diffs) > 5 else ""
                raise ConfigError(
                    f"{p}: --resume with another plan than the store was computed from: {'; '.join(diffs[:5])}{more}. "
                    "Resume with the same inputs and options, or use --overwrite to start again.")
        return NOTHING_TO_DO if attrs.get(STATUS_ATTR) == COMPLETE else RESUME
    if not overwrite:
        hint = (" It is an unfinished offnadir store: --resume finishes it." if attrs is not None
                and attrs.get(STATUS_ATTR) == INCOMPLETE else "")
        raise OutputExistsError(
            f"{p}: the output already exists.{hint} Pass --overwrite (config: output.overwrite: true) to replace it, "
            "--resume to finish an interrupted run, or choose another output path.")
    remove(p)
    return NEW


def remove(path, *, created_here: bool = False) -> None:
    """Remove an output store: only one offnadir wrote (or ``created_here``: made by this run)."""
    p = Path(path)
    if not p.exists():
        return
    if not (created_here or is_offnadir_store(p)):
        raise OutputExistsError(f"{p}: not removed: it is not a store written by offnadir. Remove it yourself if "
                                "you mean to, or choose another output path.")
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()


def compressors():
    """Codecs of every cube array: Blosc LZ4 (level 1) with byte shuffle. On the 4096² cube of
    ``benchmarks/bench_cube.py`` writing a tile took 0.15 s of CPU with it against 0.28 s with
    zarr's default (Zstd), and the store is about a quarter smaller (shuffled float32 fields
    compress better)."""
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"),)


def create(path, template, grid_shape, encoding_fill: dict, plan: dict | None = None) -> None:
    """Write the layout (metadata, coordinates, empty arrays) of ``template`` (a lazy Dataset),
    marked incomplete and carrying ``plan`` (see :func:`offnadir.outputs.fingerprint`)."""
    import zarr

    template = template.copy()
    template.attrs.update({STATUS_ATTR: INCOMPLETE, PLAN_ATTR: json.dumps(plan or {}, sort_keys=True)})

    enc = {}
    for name, var in template.data_vars.items():
        e = {"chunks": tuple(c[0] for c in var.chunks), "compressors": compressors()}
        if name in encoding_fill:
            e["fill_value"] = encoding_fill[name]
        enc[name] = e
    with _quiet_zarr():
        template.to_zarr(str(path), mode="w", compute=False, zarr_format=3, consolidated=False, encoding=enc)
        g = zarr.open_group(str(path), mode="r+")
        g.create_array(DONE, shape=tuple(grid_shape), chunks=(1, 1), dtype="uint8", fill_value=0,
                       dimension_names=("tile_y", "tile_x"),
                       attributes={"long_name": "1 where the tile has been written"})


def write_tile(path, plan, tile) -> tuple[int, int]:
    """Compute one tile and write it into its region; mark it done. Runs on a worker."""
    import zarr

    from offnadir.cube.tile import compute_tile

    res = compute_tile(plan, tile)
    region = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r+")
        for name, arr in res.items():
            g[name][(Ellipsis,) + region] = arr
        g[DONE][tile.ti, tile.tj] = 1
    return tile.ti, tile.tj


def done_tiles(path) -> set[tuple[int, int]]:
    import zarr

    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r")
        done = np.asarray(g[DONE][...])
    return {(int(a), int(b)) for a, b in zip(*np.nonzero(done))}


def finalize(path, attrs: dict | None = None) -> None:
    """Add run attributes and consolidate metadata (so ``xr.open_zarr`` reads it in one go)."""
    import zarr

    with _quiet_zarr():
        if attrs:
            g = zarr.open_group(str(path), mode="r+")
            g.attrs.update(attrs)
        zarr.consolidate_metadata(str(path))


def progress(path) -> tuple[int, int]:
    """(tiles written, tiles) of the cube in a store."""
    import zarr

    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r")
        done = np.asarray(g[DONE][...])
    return int(np.count_nonzero(done)), int(done.size)


def mark_complete(path) -> None:
    """Every stage of the run finished: say so in the store (readers check it)."""
    import zarr

    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        g.attrs[STATUS_ATTR] = COMPLETE
        zarr.consolidate_metadata(str(path))


def require_complete(path, what: str) -> None:
    """Refuse to ``what`` (evaluate, export...) a store that is not complete, saying why."""
    from offnadir.errors import DataError
    from offnadir.outputs import is_locked

    if not Path(path).exists():
        return  # the reader says it is missing, in its own words
    st = status(path)
    if st is None and root_attrs(path) is None:
        raise DataError(f"{path}: not a Zarr store written by offnadir (no zarr.json group). Check the path.")
    if st == COMPLETE or st is None:  # None: a store of offnadir 0.1.0, which did not record it
        return
    running = " A run is writing it right now." if is_locked(path) else ""
    try:
        done, n = progress(path)
        where = f" ({done} of {n} cube tiles written)"
    except Exception:  # noqa: BLE001 - the count is a courtesy
        where = ""
    raise DataError(f"{path}: the store is incomplete{where}; cannot {what} it.{running} Finish it with the same "
                    "command plus --resume.")
