"""What every change-detection task shares: tile I/O (the Zarr store or arrays in memory), the
window around a tile, the run's small context, and the parallax offsets. numpy only; picklable."""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np


# ----------------------------------------------------------------------------- I/O
#: arrays of the cube that the change stage only reads (written by earlier stages): their decoded
#: chunks are kept per process for the run (:class:`StoreIO` with a ``run`` token)
READ_ONLY = frozenset({"dsm", "visible", "value", "dh", "dh_sigma"})
#: bytes of decoded chunks a process keeps (least recently used dropped first): a 2048^2 cube of
#: two 4-band images is 160 MB; larger cubes keep the chunks of the tiles a worker is on
CACHE_BYTES = 512 * 2**20


class _Cache:
    """Least-recently-used store of decoded chunks and open array handles of one process."""

    def __init__(self, limit: int):
        self.limit, self.size = limit, 0
        self.chunks: OrderedDict = OrderedDict()
        self.arrays: dict = {}
        self.lock = threading.Lock()

    def chunk(self, key, load):
        with self.lock:
            v = self.chunks.get(key)
            if v is not None:
                self.chunks.move_to_end(key)
                return v
        v = load()
        with self.lock:
            if key not in self.chunks:
                self.chunks[key] = v
                self.size += v.nbytes
                while self.size > self.limit and len(self.chunks) > 1:
                    _, old = self.chunks.popitem(last=False)
                    self.size -= old.nbytes
        return v

    def put(self, key, v):
        """Keep ``v`` (an array) under ``key``, counted against the limit like a chunk."""
        with self.lock:
            old = self.chunks.pop(key, None)
            if old is not None:
                self.size -= old.nbytes
            self.chunks[key] = v
            self.size += v.nbytes
            while self.size > self.limit and len(self.chunks) > 1:
                _, gone = self.chunks.popitem(last=False)
                self.size -= gone.nbytes

    def pop(self, key):
        with self.lock:
            v = self.chunks.pop(key, None)
            if v is not None:
                self.size -= v.nbytes
        return v

    def array(self, key, open_):
        with self.lock:
            a = self.arrays.get(key)
        if a is None:
            a = open_()
            with self.lock:
                if len(self.arrays) > 256:  # handles of earlier runs
                    self.arrays.clear()
                self.arrays[key] = a
        return a


_CACHE = _Cache(CACHE_BYTES)


def forget(run: str) -> int:
    """Drop this process's cached chunks and array handles of the run ``run`` (at the end of a
    run, in the client and on every worker); returns how many chunks were dropped."""
    with _CACHE.lock:
        gone = [k for k in _CACHE.chunks if k[0] == run]
        for k in gone:
            _CACHE.size -= _CACHE.chunks.pop(k).nbytes
        for k in [k for k in _CACHE.arrays if k[0] == run]:
            del _CACHE.arrays[k]
    return len(gone)


def holds(run: str) -> bool:
    """Whether this process holds decoded chunks of the run ``run``: its tasks ran here (a local
    cluster of threads, or no cluster), so the client's reads of the cube can share them."""
    with _CACHE.lock:
        return any(k[0] == run for k in _CACHE.chunks)


class Region:
    """A store array read through :meth:`StoreIO.read` (the run's chunk cache for the cube's
    arrays), as the leaf of a dask array (``dask.array.from_array(..., asarray=False)``)."""

    def __init__(self, io, name, shape, dtype):
        self.io, self.name, self.shape, self.dtype = io, name, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        return self.io.read(self.name, key)


def read_through_cache(cube, io):
    """``cube`` for the client's reads (the sun's estimate and classifiers: windows of the DSM and
    of each image) with its ``dsm``, ``visible`` and ``value`` read through ``io``'s chunk cache when
    this process holds the run's decoded chunks (:func:`holds`: the context pass's tasks ran here),
    instead of decoded a second time on the client with both workers idle. The same values, dtypes
    and dask chunks, so the same operations on them; otherwise ``cube`` itself."""
    run = getattr(io, "run", None)
    names = ("dsm", "visible", "value")
    if run is None or not holds(run) or any(n not in cube or cube[n].chunks is None for n in names):
        return cube
    import dask.array as da

    out = cube.copy()
    for n in names:
        v = out[n]
        out[n] = v.copy(data=da.from_array(Region(io, n, v.shape, v.dtype), chunks=v.data.chunks, asarray=False,
                                           lock=False, name=f"cached-{n}-{run}"))
    return out


def hand_over(io, key, arr) -> bool:
    """Keep ``arr`` in this process for a later task of the same run (:func:`take_over`), under the
    chunk cache's limit (least recently used dropped first). Only for a :class:`StoreIO` with a run
    token (the run's :func:`forget` drops what no task took); False (nothing kept) otherwise. What
    a later task takes this way is what it would compute again: a task on another process, or one
    whose entry was dropped, computes it again, so the handoff saves CPU and never changes a value."""
    run = getattr(io, "run", None)
    if run is None or not isinstance(io, StoreIO):
        return False
    _CACHE.put((run, io.path, "handoff") + tuple(key), np.asarray(arr))
    return True


def take_over(io, key):
    """What :func:`hand_over` kept under ``key`` for this run in this process (removed), or None."""
    run = getattr(io, "run", None)
    if run is None or not isinstance(io, StoreIO):
        return None
    return _CACHE.pop((run, io.path, "handoff") + tuple(key))


class StoreIO:
    """Reads and writes regions of the Zarr store (picklable: the path and the run token).

    With a ``run`` token (one per run of the stage: :func:`offnadir.change.stage.detect_store`),
    a process keeps the arrays it opened and the decoded chunks of the :data:`READ_ONLY` arrays
    for that run: a tile read with a halo decodes up to four chunks of each image, and every pass
    reads them again; cached, a worker decodes each chunk once per run. Values are the store's,
    unchanged; a new run (new token) never sees an earlier run's chunks. ``frozen``: arrays of the
    stage itself that no task writes any more in this run (:meth:`cached`), cached the same way."""

    def __init__(self, path, run: str | None = None, frozen=()):
        self.path = str(path)
        self.run = run
        self.frozen = frozenset(frozen)

    def cached(self, names) -> StoreIO:
        """The same store with the arrays ``names`` also read through the run's chunk cache (and
        refusing writes): for the passes after the last one that writes them (``patch``,
        ``elevated`` and ``illumination`` once segmented and joined). Without a run token: itself."""
        return StoreIO(self.path, self.run, self.frozen | set(names)) if self.run is not None else self

    def _group(self):
        import zarr

        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            return zarr.open_group(self.path, mode="r+", use_consolidated=False)

    def _array(self, name):
        from offnadir.zarr_chunks import direct_array  # a local v2 array: its chunk files, not zarr's calls

        def open_():
            return direct_array(self.path, name, lambda: self._group()[name])
        return open_() if self.run is None else _CACHE.array((self.run, self.path, name), open_)

    def read(self, name, key):
        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            a = self._array(name)
            if self.run is not None and (name in READ_ONLY or name in self.frozen):
                out = _chunked_read(a, (self.run, self.path, name), key)
                if out is not None:
                    return out
            return np.asarray(a[key])

    def write(self, name, key, arr):
        from offnadir.store import _quiet_zarr

        if self.run is not None and (name in READ_ONLY or name in self.frozen):
            raise ValueError(f"StoreIO: {name} is read-only during a change run (its chunks are cached)")
        with _quiet_zarr():
            self._array(name)[key] = arr

    def has(self, name) -> bool:
        from offnadir.store import _quiet_zarr
        from offnadir.zarr_chunks import has_array

        known = has_array(self.path, name)
        if known is not None:
            return known
        with _quiet_zarr():
            return name in set(self._group().array_keys())


def _chunked_read(a, prefix, key):
    """``a[key]`` assembled from cached decoded chunks; None for keys other than ints and
    unit-step slices."""
    from offnadir.zarr_chunks import key_region

    reg = key_region(a.shape, key)
    if reg is None:
        return None
    lo, hi, drop = reg
    ch = a.chunks
    out = np.empty(tuple(e - b for b, e in zip(lo, hi)), a.dtype)
    if out.size:
        ranges = [range(b // c, (e - 1) // c + 1) for b, e, c in zip(lo, hi, ch)]
        for idx in itertools.product(*ranges):
            c0 = [i * c for i, c in zip(idx, ch)]
            sl = tuple(slice(s0, min(s0 + c, n)) for s0, c, n in zip(c0, ch, a.shape))
            chunk = _CACHE.chunk(prefix + idx, lambda sl=sl: np.asarray(a[sl]))
            src = tuple(slice(max(b, s.start) - s.start, min(e, s.stop) - s.start) for b, e, s in zip(lo, hi, sl))
            dst = tuple(slice(max(b, s.start) - b, min(e, s.stop) - b) for b, e, s in zip(lo, hi, sl))
            out[dst] = chunk[src]
    return out.reshape(tuple(m for ax, m in enumerate(out.shape) if ax not in drop)) if drop else out


class MemoryIO:
    """The same over numpy arrays in memory (threaded scheduler only)."""

    def __init__(self, arrays: dict):
        self.arrays = arrays

    def __dask_tokenize__(self):
        # the arrays are written to in place: identity is the token (hashing them costs seconds per task)
        return ("MemoryIO", id(self))

    def read(self, name, key):
        return np.asarray(self.arrays[name][key])

    def write(self, name, key, arr):
        self.arrays[name][key] = arr

    def has(self, name) -> bool:
        return name in self.arrays

    def cached(self, names) -> MemoryIO:
        return self


# ----------------------------------------------------------------------------- context
@dataclass(frozen=True)
class Window:
    i0: int  # window (global)
    i1: int
    j0: int
    j1: int
    core: tuple  # (ci0, ci1, cj0, cj1) relative to the window

    @classmethod
    def around(cls, tile, halo, shape):
        ny, nx = shape
        i0, i1 = max(tile.i0 - halo, 0), min(tile.i1 + halo, ny)
        j0, j1 = max(tile.j0 - halo, 0), min(tile.j1 + halo, nx)
        return cls(i0, i1, j0, j1, (tile.i0 - i0, tile.i1 - i0, tile.j0 - j0, tile.j1 - j0))

    @property
    def yx(self):
        return (slice(self.i0, self.i1), slice(self.j0, self.j1))


@dataclass(frozen=True)
class Context:
    """What every task needs to know (small, picklable)."""

    shape: tuple  # (ny, nx)
    n_images: int
    n_bands: int
    cell: float
    opts: object  # ChangeOptions
    targets: tuple  # image indices compared with the base (0)
    band_mean: np.ndarray = field(default=None, repr=False)  # (n_images, bands) reference for IR-MAD sums
    band_std: np.ndarray = field(default=None, repr=False)  # (bands,) of the base: SLIC scaling
    h_range: tuple = (np.nan, np.nan)
    sun: tuple = ()  # per image (grid azimuth rad, elevation rad) or None
    red: int | None = None  # 0-based band indices
    nir: int | None = None
    shifts: tuple = ()  # per target: (di (k,), dj (k,), s_cells (k,)) parallax offsets
    shadow_errors: tuple = ()  # per image: relative error eps of its predicted shadows (change.shadow)
    shadow_classes: tuple = ()  # per image: its shadow/lit classifier or None (change.shadow_observed)
    sun_range: tuple = ()  # per image: (d_az, d_el) radians, the roof-wide shadow rules' range (change.sun_range)

    @property
    def p(self) -> int:
        return self.n_bands

    @property
    def use_sun(self) -> bool:
        return bool(self.opts.shadows) and len(self.sun) == self.n_images and all(s is not None for s in self.sun)

    def sun_halo(self) -> int:
        if not self.use_sun:
            return 0
        relief = float(self.h_range[1] - self.h_range[0]) if np.all(np.isfinite(self.h_range)) else 0.0
        el = min(s[1] - (self.sun_range[k][1] if k < len(self.sun_range) else 0.0) for k, s in enumerate(self.sun))
        if el <= math.radians(1.0):
            return SUN_HALO_CAP
        widen = SHADOW_MARGIN_CAP if self.shadow_errors else 0  # change.shadow.widen reads that far
        return int(min(SUN_HALO_CAP, math.ceil(relief / (math.tan(el) * self.cell)) + 2 + widen))

    def shadow_error(self, t: int):
        """``eps`` of image ``t``'s predicted shadows (None: not widened)."""
        return float(self.shadow_errors[t]) if t < len(self.shadow_errors) else None

    def max_shift(self) -> int:
        return max((int(np.max(np.abs(np.r_[s[0], s[1]]))) for s in self.shifts if len(s[0])), default=0)


#: largest halo (cells) read for cast shadows; relief casting longer shadows is cut there
SUN_HALO_CAP = 512
#: :data:`offnadir.change.shadow.MARGIN_CAP` (tileio imports nothing of change)
SHADOW_MARGIN_CAP = 8


def parallax_offsets(azimuth_deg, off_nadir_deg, max_dh, cell):
    """Integer cell offsets along the target's parallax direction (towards its sensor) for height
    changes up to ``max_dh`` metres either way: (di, dj, signed length in cells), sorted, unique."""
    if not (np.isfinite(azimuth_deg) and np.isfinite(off_nadir_deg)):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    kmax = int(math.ceil(max_dh * math.tan(math.radians(off_nadir_deg)) / cell))
    ui, uj = -math.cos(math.radians(azimuth_deg)), math.sin(math.radians(azimuth_deg))
    seen, out = set(), []
    for k in range(-kmax, kmax + 1):
        d = (int(round(k * ui)), int(round(k * uj)))
        if d in seen:
            continue
        seen.add(d)
        out.append((d[0], d[1], math.copysign(math.hypot(*d), k) if k else 0.0))
    out.sort(key=lambda t: t[2])
    a = np.array(out, dtype=np.float64).reshape(-1, 3)
    return a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2]
