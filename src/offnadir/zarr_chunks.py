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

The change stage's tile reads and writes go the same way (:class:`ChunkArray`, through
``change.tileio.StoreIO``): a selection of ints and unit-step slices is assembled from the decoded
chunk files (a missing chunk reads as the fill value), and a write of whole chunks is
:func:`write_region`; any other selection, or a write that covers part of a chunk, goes through
zarr. Why: each zarr-python call is a round trip to its own event-loop thread, with the codec and
the file read run on a thread pool: on the 2048^2 bench run those two threads took ~1 CPU-s of an
~11 CPU-s run for ~150 tile reads and ~110 writes, several times what decoding the chunks costs.
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
    if block.size == 0:
        return True
    first = block.flat[0]  # most chunks hold data: decided by their first value, not a pass over all
    if isinstance(fill, float) and np.isnan(fill):
        return bool(block.dtype.kind == "f" and np.isnan(first) and np.isnan(block).all())
    return bool(first == fill and (block == fill).all())


def _chunk_path(adir: str, meta: dict, idx) -> str:
    return os.path.join(adir, meta["sep"].join(str(i) for i in idx))


def _region(meta: dict, key):
    return key_region(meta["shape"], key)


def key_region(shape, key):
    """``(start, stop, dropped axes)`` of ``key`` (ints and unit-step slices, fewer than the axes
    allowed) on an array of ``shape``; None for any other key or an int out of range."""
    key = key if isinstance(key, tuple) else (key,)
    if len(key) > len(shape):
        return None
    key = key + (slice(None),) * (len(shape) - len(key))
    lo, hi, drop = [], [], []
    for ax, (k, n) in enumerate(zip(key, shape)):
        if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                return None
            lo.append(i)
            hi.append(i + 1)
            drop.append(ax)
        elif isinstance(k, slice) and k.step in (None, 1):
            b, e, _ = k.indices(n)
            lo.append(b)
            hi.append(max(b, e))
        else:
            return None
    return lo, hi, drop


def _decoded(adir: str, meta: dict, idx) -> np.ndarray | None:
    """The chunk ``idx`` decoded, full chunk shape (read-only); None when its file is absent."""
    try:
        with open(_chunk_path(adir, meta, idx), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    buf = meta["codec"].decode(raw) if meta["codec"] is not None else raw
    return np.frombuffer(buf, dtype=meta["dtype"]).reshape(meta["chunks"])


def _decode_into(adir: str, meta: dict, lo, out: np.ndarray) -> bool:
    """Decode the chunk starting at ``lo`` straight into ``out`` (its full chunk shape) when the
    file is there and the codec decodes into a buffer; False, ``out`` to be filled by the caller,
    otherwise."""
    if meta["codec"] is None or not hasattr(meta["codec"], "decode"):
        return False
    idx = tuple(b // c for b, c in zip(lo, meta["chunks"]))
    try:
        with open(_chunk_path(adir, meta, idx), "rb") as f:
            raw = f.read()
        meta["codec"].decode(raw, out=out)
    except (FileNotFoundError, TypeError, ValueError, RuntimeError):
        return False
    return True


def read_region(adir: str, meta: dict, key) -> np.ndarray | None:
    """``a[key]`` of the array in ``adir`` (``meta``: :func:`array_meta`) read from its chunk files,
    the values zarr returns; None when ``key`` is not ints and unit-step slices."""
    reg = _region(meta, key)
    if reg is None:
        return None
    lo, hi, drop = reg
    chunks, shape = meta["chunks"], meta["shape"]
    out = np.empty(tuple(e - b for b, e in zip(lo, hi)), meta["dtype"])
    if out.shape == tuple(chunks) and not any(b % c for b, c in zip(lo, chunks)) and _decode_into(adir, meta, lo, out):
        pass  # one whole chunk (a tile's core): decoded straight into the result, no copy
    elif out.size:
        fill = 0 if meta["fill"] is None else meta["fill"]
        for idx in itertools.product(*[range(b // c, (e - 1) // c + 1) for b, e, c in zip(lo, hi, chunks)]):
            c0 = [i * c for i, c in zip(idx, chunks)]
            src = tuple(slice(max(b, s) - s, min(e, s + c, n) - s) for b, e, s, c, n in zip(lo, hi, c0, chunks, shape))
            dst = tuple(slice(max(b, s) - b, min(e, s + c, n) - b) for b, e, s, c, n in zip(lo, hi, c0, chunks, shape))
            block = _decoded(adir, meta, idx)
            if block is None:
                out[dst] = fill
            else:
                out[dst] = block[src]
    return out.reshape(tuple(m for ax, m in enumerate(out.shape) if ax not in drop)) if drop else out


def write_selection(adir: str, meta: dict, key, value) -> bool:
    """``a[key] = value`` by :func:`write_region` when ``key`` (ints and unit-step slices) covers
    whole chunks and ``value`` has the selection's shape; False, having written nothing, otherwise
    (the caller writes through zarr)."""
    reg = _region(meta, key)
    if reg is None or meta["sep"] != ".":
        return False
    lo, hi, drop = reg
    value = np.asarray(value)
    region = tuple(e - b for b, e in zip(lo, hi))
    if value.shape != tuple(m for ax, m in enumerate(region) if ax not in drop) or value.dtype.hasobject:
        return False
    if chunks_of(meta, tuple(lo), region) is None:
        return False
    write_region(adir, meta, tuple(lo), value.reshape(region))
    return True


class ChunkArray:
    """A local Zarr v2 array whose selections of ints and unit-step slices are read from its chunk
    files (:func:`read_region`) and whose writes of whole chunks go to them (:func:`write_selection`);
    anything else goes to the zarr array ``open_zarr()`` returns (opened on first need)."""

    def __init__(self, adir: str, meta: dict, open_zarr):
        self.adir, self.meta, self._open, self._z = adir, meta, open_zarr, None
        self.shape, self.chunks, self.dtype = meta["shape"], meta["chunks"], meta["dtype"]
        self.ndim = len(self.shape)

    def _zarr(self):
        if self._z is None:
            self._z = self._open()
        return self._z

    def __getitem__(self, key):
        out = read_region(self.adir, self.meta, key)
        return out if out is not None else self._zarr()[key]

    def __setitem__(self, key, value):
        if not write_selection(self.adir, self.meta, key, value):
            self._zarr()[key] = value


def _local_v2_group(path) -> str | None:
    from offnadir.store import is_url

    root = str(path)
    if is_url(root) or not os.path.isfile(os.path.join(root, ".zgroup")):
        return None
    return root


def direct_array(path, name: str, open_zarr):
    """The array ``name`` of the store at ``path`` as a :class:`ChunkArray` when it is a local v2
    array this module reads and writes (:func:`array_meta`), else ``open_zarr()`` (zarr's)."""
    root = _local_v2_group(path)
    meta = array_meta(os.path.join(root, name)) if root is not None else None
    if meta is None or meta["dtype"].kind not in "biuf":
        return open_zarr()
    return ChunkArray(os.path.join(root, name), meta, open_zarr)


def has_array(path, name: str) -> bool | None:
    """Whether the local v2 store at ``path`` holds an array ``name`` (its ``.zarray``), without
    listing and opening every array as zarr's ``array_keys`` does; None for any other store."""
    root = _local_v2_group(path)
    return None if root is None else os.path.isfile(os.path.join(root, name, ".zarray"))


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
