"""The tile plan: which DSM blocks are tiles, how much halo occlusion needs, what height range
bounds the work. Cheap: uses only DSM statistics (computed by the caller, possibly on a cluster)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offnadir.errors import DataError


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

    @property
    def grid_shape(self) -> tuple[int, int]:
        ny, nx = self.dsm.shape
        return math.ceil(ny / self.chunk), math.ceil(nx / self.chunk)

    def tiles(self) -> list[Tile]:
        ny, nx = self.dsm.shape
        c = self.chunk
        return [Tile(a, b, a * c, min((a + 1) * c, ny), b * c, min((b + 1) * c, nx))
                for a in range(self.grid_shape[0]) for b in range(self.grid_shape[1])]

    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        ny, nx = self.dsm.shape
        c = self.chunk
        return (tuple(min(c, ny - k) for k in range(0, ny, c)), tuple(min(c, nx - k) for k in range(0, nx, c)))


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
    return CubePlan(dsm, tuple(images), int(chunk), int(lattice_step), int(halo), float(h_min), float(h_max),
                    float(z_ref), float(z_tol), int(n_bands))
