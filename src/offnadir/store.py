"""The result store: laid out once from a lazy template, then filled tile by tile.

Each tile task writes its own chunk-aligned region of every variable and then sets its cell of
``tile_done`` (one chunk per tile, so no two tasks touch the same chunk). A rerun with
``resume=True`` skips tiles already done. Metadata is consolidated when the run completes.

**Format.** Zarr v2 by default (config ``output.zarr_format``, CLI ``--zarr-format``): GDAL 3.10,
the one inside rasterio's wheels, refuses every array of a Zarr v3 store written by zarr-python 3
("Unsupported codec: bytes": it knows that codec only by its draft name ``endian``, renamed in GDAL
3.11), while it opens v2 with Blosc, CF ``grid_mapping`` (CRS) and the fill value as nodata. Zarr v3
is kept as an option for readers that want it. Everything after the layout (stages, readers) asks
the store which format it is (:func:`zarr_format`) instead of assuming one.

**Where.** A local folder, or an fsspec URL (``s3://bucket/out.zarr``; endpoint and credentials
come from the usual environment, e.g. ``AWS_ENDPOINT_URL``). Paths stay strings for URLs
(:func:`location`): ``pathlib`` would fold ``s3://`` into ``s3:/``.

**Nodata.** Every variable carries a CF ``_FillValue`` that is also the Zarr array's fill value,
so GDAL reports it as nodata and ``xr.open_zarr(store)`` masks it (unobservable ``change`` cells
become NaN, as CF readers expect). offnadir's own readers open the store with
:func:`open_dataset`, which keeps the stored codes (``mask_and_scale=False``).
"""

from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, OutputExistsError
from offnadir.store_removal import ASIDE_TAG, remove_aside, rmtree_retrying, wait_for_removals  # noqa: F401 - re-exported

DONE = "tile_done"
log = logging.getLogger("offnadir.store")

#: Zarr formats offnadir writes; v2 is what GDAL 3.10 (rasterio's) opens
ZARR_FORMATS = (2, 3)
DEFAULT_ZARR_FORMAT = 2


@contextmanager
def _quiet_zarr():
    """zarr warns that consolidated metadata and some dtypes are not yet in the v3 spec; we know."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Consolidated metadata.*")
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        warnings.filterwarnings("ignore", message=".*not part of the Zarr format 3 specification.*")
        yield


#: root attributes that make a store offnadir's: its state and the plan it was computed from
STATUS_ATTR, PLAN_ATTR = "offnadir:status", "offnadir:plan"
INCOMPLETE, COMPLETE = "incomplete", "complete"
#: what prepare() decided
NEW, RESUME, NOTHING_TO_DO = "new", "resume", "complete"


# ----------------------------------------------------------------------------- where the store is
def is_url(path) -> bool:
    """True for an fsspec URL (``s3://...``, ``gs://...``, ``memory://...``); False for a local path."""
    from offnadir.io.remote import is_url as _is_url

    return _is_url(path)


def location(path):
    """The store's location as the rest of the code passes it on: a ``Path`` for a local store, the
    URL text for a remote one."""
    return str(path) if is_url(path) else Path(path)


def _fs(path):
    """(fsspec filesystem, path inside it) of a store URL."""
    import fsspec

    return fsspec.core.url_to_fs(str(path))


def exists(path) -> bool:
    if is_url(path):
        fs, p = _fs(path)
        return fs.exists(p)
    return Path(path).exists()


def _read_text(path, name: str) -> str | None:
    """Text of the metadata file ``name`` at the store's root, None when absent."""
    try:
        if is_url(path):
            fs, p = _fs(path)
            return fs.cat_file(f"{p.rstrip('/')}/{name}").decode()
        return (Path(path) / name).read_text()
    except (OSError, ValueError):
        return None
    except Exception as e:  # noqa: BLE001 - remote filesystems raise their own errors (auth, network)
        log.debug("%s/%s: not readable (%s)", path, name, e)
        return None


def _json(text):
    try:
        d = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return d if isinstance(d, dict) else None


def zarr_format(path) -> int | None:
    """2 or 3: the Zarr format of the group at ``path``; None when it holds no Zarr group."""
    meta = _json(_read_text(path, "zarr.json"))
    if meta is not None and meta.get("node_type") == "group":
        return 3
    meta = _json(_read_text(path, ".zgroup"))
    if meta is not None and meta.get("zarr_format") == 2:
        return 2
    return None


def root_attrs(path) -> dict | None:
    """The root group's attributes (Zarr v2 ``.zattrs`` or v3 ``zarr.json``), None if ``path`` is
    not a Zarr group."""
    fmt = zarr_format(path)
    if fmt == 3:
        return _json(_read_text(path, "zarr.json")).get("attributes") or {}
    if fmt == 2:
        return _json(_read_text(path, ".zattrs")) or {}
    return None


def metadata_file(path) -> str:
    """Name of the file holding the root group's attributes (``zarr.json`` or ``.zattrs``)."""
    return "zarr.json" if zarr_format(path) == 3 else ".zattrs"


def is_offnadir_store(path) -> bool:
    """A store this software wrote: its root carries offnadir's status attribute (stores of 0.1.0,
    which had none, are known by their ``software`` attribute)."""
    attrs = root_attrs(path)
    return attrs is not None and (STATUS_ATTR in attrs or str(attrs.get("software", "")).startswith("offnadir "))


def status(path) -> str | None:
    attrs = root_attrs(path)
    return None if attrs is None else attrs.get(STATUS_ATTR)


def open_dataset(path, **kwargs):
    """The store as a lazy Dataset with its stored codes (``change`` 2 stays 2, not NaN): what
    offnadir's own readers use. ``kwargs`` go to ``xr.open_zarr``."""
    import rioxarray  # noqa: F401  (registers .rio: readers of the store use it; nothing else may have imported it)
    import xarray as xr

    kwargs.setdefault("consolidated", None)
    kwargs.setdefault("mask_and_scale", False)
    with _quiet_zarr():
        ds = xr.open_zarr(str(location(path)), **kwargs)
    for var in ds.variables.values():  # undecoded, xarray leaves it among the attributes; it belongs to encoding
        if "_FillValue" in var.attrs:
            var.encoding["_FillValue"] = var.attrs.pop("_FillValue")
    return ds


def prepare(path, *, overwrite: bool = False, resume: bool = False, plan: dict | None = None) -> str:
    """Decide what to do with the output path before any work: ``NEW`` (nothing there, or an old
    offnadir store removed because ``overwrite``), ``RESUME`` (an unfinished store computed from the
    same ``plan``) or ``NOTHING_TO_DO`` (that store is already complete). Anything else raises."""
    from offnadir.outputs import plan_differences

    p = location(path)
    if not exists(p):
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
                remove(p, background=True)
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
    remove(p, background=True)
    return NEW


def remove(path, *, created_here: bool = False, background: bool = False) -> None:
    """Remove an output store: only one offnadir wrote (or ``created_here``: made by this run).
    ``background`` (a local folder replaced by ``--overwrite``): the store is renamed aside at once
    and deleted by a thread while the run goes on (deleting a cube's files took 0.2 s at 2048^2 and
    grows with the store); :func:`wait_for_removals` waits for it."""
    p = location(path)
    if not exists(p):
        return
    if not (created_here or is_offnadir_store(p)):
        raise OutputExistsError(f"{p}: not removed: it is not a store written by offnadir. Remove it yourself if "
                                "you mean to, or choose another output path.")
    if is_url(p):
        fs, root = _fs(p)
        fs.rm(root, recursive=True)
    elif p.is_dir() and not p.is_symlink():
        if not (background and remove_aside(p)):
            rmtree_retrying(p)
    else:
        p.unlink()


# ----------------------------------------------------------------------------- layout
def check_zarr_format(value, where: str = "output.zarr_format") -> int:
    if value is None:
        return DEFAULT_ZARR_FORMAT
    if isinstance(value, bool) or value not in ZARR_FORMATS:
        raise ConfigError(f"{where} must be 2 or 3, got {value!r}; 2 (the default) opens in GDAL >= 3.10 "
                          "(rasterio, QGIS), 3 in GDAL >= 3.11 and zarr-python 3.")
    return int(value)


def compressors(zarr_format: int = DEFAULT_ZARR_FORMAT):
    """Codecs of every array: Blosc LZ4 (level 1) with byte shuffle. On the 4096² cube of
    ``benchmarks/bench_cube.py`` writing a tile took 0.15 s of CPU with it against 0.28 s with
    zarr's default (Zstd), and the store is about a quarter smaller (shuffled float32 fields
    compress better). GDAL's Zarr driver decodes Blosc (checked with rasterio's GDAL 3.10)."""
    if zarr_format == 2:
        import numcodecs

        return (numcodecs.Blosc(cname="lz4", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE),)
    from zarr.codecs import BloscCodec

    return (BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"),)


def encoding(zarr_format: int, chunks, nodata, fill=None) -> dict:
    """``to_zarr`` encoding of one variable: its chunks, the codecs, and ``nodata`` as both the CF
    ``_FillValue`` and the array's fill value (GDAL's nodata). ``nodata`` None: every value is data
    (no ``_FillValue``); unwritten chunks then read as ``fill`` (v3) or zero (v2)."""
    enc = {"chunks": tuple(chunks), "compressors": compressors(zarr_format), "_FillValue": nodata}
    if zarr_format == 3:
        enc["fill_value"] = nodata if nodata is not None else (fill if fill is not None else 0)
    return enc


def create_flag_array(group, name: str, shape, long_name: str):
    """A small uint8 (tile_y, tile_x) bookkeeping array of one chunk per tile, zero when unset."""
    dims = ("tile_y", "tile_x")
    if group.metadata.zarr_format == 2:
        return group.create_array(name, shape=tuple(shape), chunks=(1, 1), dtype="uint8", fill_value=0,
                                  attributes={"long_name": long_name, "_ARRAY_DIMENSIONS": list(dims)})
    return group.create_array(name, shape=tuple(shape), chunks=(1, 1), dtype="uint8", fill_value=0,
                              dimension_names=dims, attributes={"long_name": long_name})


def create(path, template, grid_shape, encoding_fill: dict, plan: dict | None = None, *,
           zarr_format: int = DEFAULT_ZARR_FORMAT) -> None:
    """Write the layout (metadata, coordinates, empty arrays) of ``template`` (a lazy Dataset),
    marked incomplete and carrying ``plan`` (see :func:`offnadir.outputs.fingerprint`).
    ``encoding_fill``: variable -> nodata (also the fill of unwritten chunks)."""
    import zarr

    zarr_format = check_zarr_format(zarr_format)
    template = template.copy()
    template.attrs.update({STATUS_ATTR: INCOMPLETE, PLAN_ATTR: json.dumps(plan or {}, sort_keys=True)})
    enc = {name: encoding(zarr_format, tuple(c[0] for c in var.chunks), encoding_fill.get(name))
           for name, var in template.data_vars.items()}
    log.info("%s: Zarr v%d store (%s)", path, zarr_format,
             "opens in GDAL >= 3.10" if zarr_format == 2 else "GDAL 3.10 cannot open v3; GDAL >= 3.11 can")
    with _quiet_zarr():
        template.to_zarr(str(location(path)), mode="w", compute=False, zarr_format=zarr_format, consolidated=False,
                         encoding=enc)
        g = zarr.open_group(str(location(path)), mode="r+")
        create_flag_array(g, DONE, grid_shape, "1 where the tile has been written")


def write_tile(path, plan, tile) -> tuple[int, int]:
    """Compute one tile and write it into its region; mark it done. Runs on a worker."""
    from offnadir.cube.tile import compute_tile
    from offnadir.zarr_chunks import write_tile_chunks

    res = compute_tile(plan, tile)
    if write_tile_chunks(path, tile, res):  # a local v2 store: straight to the chunk files (zarr not imported)
        return tile.ti, tile.tj
    import zarr

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
            g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
            g.attrs.update(attrs)
        zarr.consolidate_metadata(str(path))


def progress(path) -> tuple[int, int]:
    """(tiles written, tiles) of the cube in a store."""
    import zarr

    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r", use_consolidated=False)
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

    if not exists(path):
        return  # the reader says it is missing, in its own words
    st = status(path)
    if st is None and root_attrs(path) is None:
        raise DataError(f"{path}: not a Zarr store written by offnadir (no Zarr group: neither zarr.json nor "
                        ".zgroup). Check the path.")
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
