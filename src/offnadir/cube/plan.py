"""The tile plan: which DSM blocks are tiles, how much halo occlusion needs, what height range
bounds the work. Cheap: uses only DSM statistics (computed by the caller, possibly on a cluster).

Tile sizes (:func:`tile_sizes`): the configured ``chunk`` is the largest tile. An axis of ``size``
cells needs ``n = ceil(size / chunk)`` tiles; cut regularly they are ``chunk, ..., chunk, rest``,
cut evenly ``ceil(size / n)`` each (the last up to ``n - 1`` cells less). The tiles are the Zarr
chunks of every array of the store (regular chunks: all equal but the last) and the change stage's
tasks, every pass of which waits for its slowest core. The even cut is taken when it never makes a
pass longer on any number of cores and makes it shorter on some: the pass's length on ``k`` cores
is estimated as the longest core's summed tile area when the tiles, largest first, go to the least
loaded core (tasks of a pass are independent). Why not always: 3 tiles on 2 cores finish later
even (two thirds of the axis on one core) than as 2 full tiles and a sliver (one chunk plus the
sliver). Why not for the run's own cores: the tiles would then depend on the machine, and the
change stage's sums (reduced across tiles, so not bit-exact across tilings) with them. The cube
itself does not depend on the tiles (``tests/test_cube.py``). Example: the Kahramanmaras DSM
(1012 x 1059 cells, chunk 1024) was 1012 x 1024 + 1012 x 35, so every change pass ran on one core
while the other finished the sliver; it is now 1012 x 530 (2 tiles).
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass

import numpy as np

from offnadir.errors import DataError

log = logging.getLogger("offnadir.cube.plan")

#: the core counts the even cut is compared on stop here (beyond, both cuts give every core at
#: most one tile for the grids this matters for; the comparison's cost grows with it)
_MAX_CORES = 64


@dataclass(frozen=True)
class Tile:
    ti: int
    tj: int
    i0: int
    i1: int
    j0: int
    j1: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.i1 - self.i0, self.j1 - self.j0


@dataclass(frozen=True)
class CubePlan:
    dsm: object  # DsmSource-like: shape, transform, crs_wkt, read_block(), geoid
    images: tuple  # ImageSource
    chunk: int
    lattice_step: int
    halo: int
    h_min: float
    h_max: float
    z_ref: float
    z_tol: float
    n_bands: int
    #: the tile (chunk) size (rows, columns): :func:`make_plan` sets :func:`tile_sizes` of the DSM's
    #: shape and ``chunk`` (append: the store's own chunks); () = that rule, computed on each use
    tile: tuple = ()

    @property
    def tile_shape(self) -> tuple[int, int]:
        if self.tile:
            return int(self.tile[0]), int(self.tile[1])
        return tile_sizes(self.dsm.shape, self.chunk)

    @property
    def grid_shape(self) -> tuple[int, int]:
        (ny, nx), (cy, cx) = self.dsm.shape, self.tile_shape
        return math.ceil(ny / cy), math.ceil(nx / cx)

    def tiles(self) -> list[Tile]:
        (ny, nx), (cy, cx) = self.dsm.shape, self.tile_shape
        return [Tile(a, b, a * cy, min((a + 1) * cy, ny), b * cx, min((b + 1) * cx, nx))
                for a in range(self.grid_shape[0]) for b in range(self.grid_shape[1])]

    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        (ny, nx), (cy, cx) = self.dsm.shape, self.tile_shape
        return (tuple(min(cy, ny - k) for k in range(0, ny, cy)), tuple(min(cx, nx - k) for k in range(0, nx, cx)))


def axis_tiles(size: int, tile: int) -> list[int]:
    """The tiles of an axis of ``size`` cells cut every ``tile`` cells (the last one the rest)."""
    return [min(tile, size - k) for k in range(0, size, tile)]


def even_tile(size: int, chunk: int) -> int:
    """The tile size that cuts ``size`` cells into as few tiles of at most ``chunk`` as the regular
    cut, as equal as regular chunks allow: ``ceil(size / ceil(size / chunk))``."""
    return math.ceil(size / math.ceil(size / chunk))


def pass_length(tiles_y, tiles_x, cores: int) -> int:
    """The estimated length (in cells) of a pass over the tiles ``tiles_y x tiles_x`` on ``cores``
    cores: the largest core load when each tile, largest first, goes to the least loaded core."""
    loads = [0] * max(1, min(int(cores), len(tiles_y) * len(tiles_x)))
    for area in sorted((a * b for a in tiles_y for b in tiles_x), reverse=True):
        heapq.heapreplace(loads, loads[0] + area)
    return max(loads)


def tile_sizes(shape, chunk: int) -> tuple[int, int]:
    """The tile (chunk) size per axis for a DSM of ``shape`` (rows, columns) and the configured
    ``chunk`` (the largest tile): per axis the regular or the even cut (see the module doc), the
    pair whose passes are never longer than the regular cut's on 1 to 64 cores and shorter on some
    (of two such pairs, the one shorter on more core counts; ties keep the regular cut)."""
    (ny, nx), chunk = (int(shape[0]), int(shape[1])), int(chunk)
    reg = (min(chunk, ny), min(chunk, nx))
    options = {(a, b) for a in (reg[0], even_tile(ny, chunk)) for b in (reg[1], even_tile(nx, chunk))}
    n_tiles = math.ceil(ny / reg[0]) * math.ceil(nx / reg[1])
    cores = range(2, min(n_tiles, _MAX_CORES) + 1)  # one core: the same total either way
    base = [pass_length(axis_tiles(ny, reg[0]), axis_tiles(nx, reg[1]), k) for k in cores]
    best, best_gain = reg, 0
    for opt in sorted(options - {reg}):
        lengths = [pass_length(axis_tiles(ny, opt[0]), axis_tiles(nx, opt[1]), k) for k in cores]
        if any(a > b for a, b in zip(lengths, base)):
            continue
        gain = sum(a < b for a, b in zip(lengths, base))
        if gain > best_gain:
            best, best_gain = opt, gain
    return best


def describe_tiles(shape, chunk: int, tile_shape) -> str:
    """'tiles: 1012 x 530 (2), chunk 1024 is the largest' (the log line and store attribute)."""
    (ny, nx), (cy, cx) = shape, tile_shape
    n = math.ceil(ny / cy) * math.ceil(nx / cx)
    how = "evened out" if (cy, cx) != (min(chunk, ny), min(chunk, nx)) else "regular"
    return f"tiles: {cy} x {cx} ({n}, {how}), chunk {chunk} is the largest"


def make_plan(dsm, images, *, stats, chunk: int = 1024, lattice_step: int = 16, z_tol: float = 0.05,
              halo: int | None = None) -> CubePlan:
    """Build the plan from DSM statistics ``stats = (h_min, h_max, n_valid)`` (stored heights).

    Raises DataError when the DSM is all nodata or an image does not see the DSM at all."""
    from offnadir.cube import geometry

    h_min, h_max, n_valid = stats
    if n_valid == 0 or not np.isfinite(h_min):
        raise DataError(f"{dsm.path}: the DSM holds no valid height (all cells are nodata). "
                        "Check its nodata value, or that the right band/file was given.")
    if chunk < 16:
        raise DataError(f"chunk {chunk} is too small; use at least 16 (default 1024).")
    # geoid heights vary over the area: widen the range by the undulation spread
    if dsm.geoid is not None:
        lon, lat = geometry.outline_lonlat(dsm, n=5)
        n_und = dsm.geoid.undulation(lon, lat)
        h_min, h_max = h_min + float(np.nanmin(n_und)), h_max + float(np.nanmax(n_und))
    z_ref = 0.5 * (h_min + h_max)
    los_max = 0.0
    for im in images:
        geometry.check_overlap(dsm, im, h_min, h_max)
        los_max = max(los_max, geometry.max_los_norm(dsm, im.camera, z_ref))
    if halo is None:
        from offnadir.cube.kernels import halo_cells

        halo = int(halo_cells(h_max - h_min, los_max * 1.05))
    n_bands = max(im.count for im in images)
    tile = tile_sizes(dsm.shape, int(chunk))  # once: the rule compares schedules (~0.05 s for 600 tiles)
    plan = CubePlan(dsm, tuple(images), int(chunk), int(lattice_step), int(halo), float(h_min), float(h_max),
                    float(z_ref), float(z_tol), int(n_bands), tile)
    log.info("%s", describe_tiles(dsm.shape, plan.chunk, plan.tile_shape))
    return plan
