"""What every change-detection task shares: tile I/O (the Zarr store or arrays in memory), the
window around a tile, the run's small context, and the parallax offsets. numpy only; picklable."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


# ----------------------------------------------------------------------------- I/O
class StoreIO:
    """Reads and writes regions of the Zarr store (picklable: just the path)."""

    def __init__(self, path):
        self.path = str(path)

    def _group(self):
        import zarr

        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            return zarr.open_group(self.path, mode="r+", use_consolidated=False)

    def read(self, name, key):
        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            return np.asarray(self._group()[name][key])

    def write(self, name, key, arr):
        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            self._group()[name][key] = arr

    def has(self, name) -> bool:
        from offnadir.store import _quiet_zarr

        with _quiet_zarr():
            return name in set(self._group().array_keys())


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
        el = min(s[1] for s in self.sun)
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
