"""Whole chunks of a local Zarr v2 array written straight to their files (a cube tile's writes).

A cube tile covers whole chunks of every array of the store, so its write is, per chunk, an
encode with the array's compressor and one file: what zarr-python does too, minus its per-call
machinery (an asyncio round trip, the codec pipeline, selection indexing). Measured on a
1024²-cell tile of two 4-band images (``benchmarks/bench_tile_cpu.py --write``): 70 ms of CPU
through ``zarr`` against 35 ms here, and ~0.1 CPU-s less for the first write of each process.

Only what zarr-python writes itself is written here, following the Zarr v2 specification: C-order
chunks, no filters, the ``.zarray``'s compressor, file names joined by its dimension separator, an
edge chunk padded to the full chunk shape with the fill value, and a chunk that holds only the fill
value not stored (zarr's ``write_empty_chunks=False``; an older file of it is removed). Anything
else (Zarr v3, filters, F order, a URL store, a region not on chunk boundaries) is refused with
``None`` so that the caller writes through zarr. ``tests/test_zarr_chunks.py`` compares the files
and the values read back with zarr's own writes.
"""

from __future__ import annotations

import itertools
import json
import os
import threading

import numpy as np


def array_meta(adir: str) -> dict | None:
    """The ``.zarray`` of the v2 array in folder ``adir`` when this module can write its chunks,
    with its codec (``"codec"``), dtype and fill value decoded; else None."""
    try:
        with open(os.path.join(adir, ".zarray")) as f:
            z = json.load(f)
    except (OSError, ValueError):
        return None
    if z.get("zarr_format") != 2 or z.get("filters") or z.get("order", "C") != "C":
        return None
    dtype = np.dtype(z["dtype"])
    if dtype.hasobject or (dtype.byteorder == ">" and dtype.itemsize > 1):
        return None
    codec = None
    if z.get("compressor"):
        import numcodecs

        codec = numcodecs.get_codec(dict(z["compressor"]))
    fill = z.get("fill_value")
    fill = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}.get(fill, fill) if isinstance(fill, str) else fill
    return {"shape": tuple(z["shape"]), "chunks": tuple(z["chunks"]), "dtype": dtype, "fill": fill, "codec": codec,
            "sep": z.get("dimension_separator") or "."}


def chunks_of(meta: dict, start: tuple, shape: tuple) -> list | None:
    """Chunk indices covered by the region at ``start`` of ``shape``, or None when the region does
    not consist of whole chunks (an edge chunk may end at the array's end)."""
    out = []
    for s, n, c, total in zip(start, shape, meta["chunks"], meta["shape"]):
        if s % c or not (n % c == 0 or s + n == total) or s + n > total:
            return None
        out.append(range(s // c, -(-(s + n) // c)))
    return list(itertools.product(*out))


def write_region(adir: str, meta: dict, start: tuple, data: np.ndarray) -> None:
    """Write ``data`` (already checked with :func:`chunks_of`) at ``start`` of the array in ``adir``."""
    data = np.asarray(data, dtype=meta["dtype"])
    chunks, fill = meta["chunks"], meta["fill"]
    for idx in chunks_of(meta, start, data.shape):
        sel = tuple(slice(i * c - s, min((i + 1) * c - s, n)) for i, c, s, n in zip(idx, chunks, start, data.shape))
        block = data[sel]
        path = os.path.join(adir, meta["sep"].join(str(i) for i in idx))
        if fill is not None and _all_fill(block, fill):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            continue
        if block.shape != chunks:  # an edge chunk: stored at full size, padded with the fill value
            full = np.full(chunks, 0 if fill is None else fill, dtype=meta["dtype"])
            full[tuple(slice(0, n) for n in block.shape)] = block
            block = full
        block = np.ascontiguousarray(block)
        payload = meta["codec"].encode(block) if meta["codec"] is not None else block.tobytes()
        _replace_file(path, payload)


def _replace_file(path: str, payload: bytes) -> None:
    """``path`` holds ``payload`` or its old content, never a part of it: written beside it under a
    name of this process and thread, then renamed over it (atomic on one file system). A run killed
    mid-write (SIGKILL, power loss) otherwise leaves a truncated chunk that the codec cannot decode,
    and a resume that reads the tile flags fails on it (seen: ``error during blosc decompression``
    after SIGKILL). zarr's own local store writes the same way."""
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.partial"
    try:
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _all_fill(block: np.ndarray, fill) -> bool:
    if isinstance(fill, float) and np.isnan(fill):
        return bool(np.isnan(block).all()) if block.dtype.kind == "f" else False
    return bool((block == fill).all())


def write_tile_chunks(path, tile, res: dict) -> bool:
    """A cube tile's fields ``res`` (see :func:`offnadir.cube.tile.compute_tile`) written into the
    local v2 store at ``path`` chunk by chunk, then its done flag (``tile_done``). False, having
    written nothing, when any of its arrays cannot be written here (the caller uses zarr)."""
    from offnadir.store import DONE, is_url

    if is_url(path):
        return False
    root = str(path)
    jobs = []
    for name, arr in list(res.items()) + [(DONE, np.ones((1, 1), np.uint8))]:
        meta = array_meta(os.path.join(root, name))
        start = (0,) * (arr.ndim - 2) + ((tile.i0, tile.j0) if name != DONE else (tile.ti, tile.tj))
        if meta is None or len(meta["shape"]) != arr.ndim or chunks_of(meta, start, arr.shape) is None:
            return False
        jobs.append((os.path.join(root, name), meta, start, arr))
    for adir, meta, start, arr in jobs:  # the flag last: a tile is done once its cells are on disk
        write_region(adir, meta, start, arr)
    return True
