"""Procedural inputs for the cube benchmarks: a city DSM and 4-band images in sensor geometry,
generated block by block from global indices, so a 20,000² DSM or a 40,000² image never has to
exist anywhere (any block is a pure function of its position; the sources pickle as a few numbers).

* :class:`CityDsm` follows offnadir's DSM-source protocol (``path``, ``shape``, ``transform``,
  ``crs_wkt``, ``vertical_datum``, ``geoid``, ``needs_geoid``, ``read_block``): smooth terrain
  plus flat-roofed buildings on a hashed parcel grid, heights above the WGS84 ellipsoid, on a
  local transverse-Mercator grid centred on (LON0, LAT0).
* :func:`view_camera` builds an exact affine RPC00B camera for a given off-nadir angle, azimuth,
  image GSD and image-axis rotation, sized so that the image covers the whole DSM at every height.
* :class:`ProceduralImage` is an :class:`offnadir.io.image.ImageSource` whose pixels are
  generated (smooth, separable, band-dependent pattern), so ``read_window`` needs no file.
  :func:`write_image` writes the same pixels (and RPC tags) to a GeoTIFF for tools that need a
  file (gdalwarp); :func:`write_dsm` does the same for the DSM.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from offnadir.camera.camera import Camera
from offnadir.camera.rpc import RPC
from offnadir.io.image import ImageSource

LON0, LAT0 = 5.44, 43.26
_A = 6378137.0
_E2 = 6.69437999014e-3


def metres_per_degree(lat0: float = LAT0) -> tuple[float, float]:
    """(east, north) metres per degree of longitude / latitude at ``lat0`` (WGS84)."""
    phi = math.radians(lat0)
    w = math.sqrt(1.0 - _E2 * math.sin(phi) ** 2)
    return math.radians(1.0) * _A / w * math.cos(phi), math.radians(1.0) * _A * (1.0 - _E2) / w**3


def local_crs_proj4(lon0: float = LON0, lat0: float = LAT0) -> str:
    return (f"+proj=tmerc +lat_0={lat0} +lon_0={lon0} +k=1 +x_0=0 +y_0=0 +datum=WGS84 +units=m "
            "+no_defs +type=crs")


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def hash01(a: np.ndarray, b: np.ndarray, seed: int, k: int) -> np.ndarray:
    """Uniform [0, 1) numbers, a deterministic function of integer arrays ``a``, ``b`` and (seed, k)."""
    with np.errstate(over="ignore"):
        x = (np.asarray(a, dtype=np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
             + np.asarray(b, dtype=np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
             + np.uint64((seed * 1_000_003 + k * 7919) & 0xFFFFFFFFFFFF))
        x = _mix64(x)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


# --------------------------------------------------------------------------------------- DSM


@dataclass(frozen=True)
class CityDsm:
    """A procedural city DSM of ``shape`` cells of ``cell`` metres (see the module doc).

    Terrain: ``base`` m plus two gentle waves (about ±``relief`` m). Buildings: parcels of
    ``parcel`` cells; every ``street_every``-th parcel row/column is a street; other parcels hold,
    with probability ``density``, a flat-roofed building inset 2..9 cells from the parcel edges,
    ``4 + (max_height - 4) * u**3`` m tall (mostly low, a few towers)."""

    shape: tuple[int, int] = (4096, 4096)
    cell: float = 0.5
    seed: int = 0
    base: float = 150.0
    relief: float = 8.0
    parcel: int = 48
    street_every: int = 5
    density: float = 0.8
    max_height: float = 60.0
    lon0: float = LON0
    lat0: float = LAT0

    # --- the DSM-source protocol
    @property
    def path(self) -> str:
        ny, nx = self.shape
        return f"procedural:city(seed={self.seed}, {ny}x{nx} cells of {self.cell} m)"

    @property
    def transform(self) -> tuple[float, ...]:
        ny, nx = self.shape
        return (self.cell, 0.0, -nx * self.cell / 2.0, 0.0, -self.cell, ny * self.cell / 2.0)

    @cached_property
    def crs_wkt(self) -> str:
        from pyproj import CRS

        return CRS.from_proj4(local_crs_proj4(self.lon0, self.lat0)).to_wkt()

    vertical_datum = "ellipsoid"
    geoid = None
    needs_geoid = False
    notes = ("procedural DSM: heights above the WGS84 ellipsoid",)

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("crs_wkt", None)  # a cached property: recomputed on the worker, keeps pickles tiny
        return d

    def __setstate__(self, d):
        self.__dict__.update(d)

    @property
    def height_range(self) -> tuple[float, float]:
        """Bounds of the heights (for sizing images before any statistics)."""
        return self.base - 1.25 * self.relief, self.base + 1.25 * self.relief + self.max_height

    def read_block(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """Heights (float64, NaN outside the DSM) of rows i0..i1-1, columns j0..j1-1."""
        ny, nx = self.shape
        i = np.arange(i0, i1)
        j = np.arange(j0, j1)
        if i.size == 0 or j.size == 0:
            return np.full((i.size, j.size), np.nan)
        h = self._terrain_block(i, j)
        P = self.parcel
        pi, pj = i // P, j // P
        ua, ub = pi[0], pj[0]
        gi = np.arange(ua, pi[-1] + 1)
        gj = np.arange(ub, pj[-1] + 1)
        GI, GJ = np.meshgrid(gi, gj, indexing="ij")
        u = [hash01(GI, GJ, self.seed, k) for k in range(6)]
        street = (GI % self.street_every == 0) | (GJ % self.street_every == 0)
        has = (u[0] < self.density) & ~street
        bh = np.where(has, 4.0 + (self.max_height - 4.0) * u[1] ** 3, 0.0)
        top = 2 + np.floor(u[2] * 8).astype(np.int64)
        bot = P - 2 - np.floor(u[3] * 8).astype(np.int64)
        left = 2 + np.floor(u[4] * 8).astype(np.int64)
        right = P - 2 - np.floor(u[5] * 8).astype(np.int64)
        ri = pi - ua
        rj = pj - ub
        li = (i % P)[:, None]
        lj = (j % P)[None, :]
        Bh = bh[ri[:, None], rj[None, :]]
        inside = ((li >= top[ri[:, None], rj[None, :]]) & (li < bot[ri[:, None], rj[None, :]])
                  & (lj >= left[ri[:, None], rj[None, :]]) & (lj < right[ri[:, None], rj[None, :]]))
        # flat roofs: terrain height at the parcel centre plus the building height
        ci = gi * P + P // 2
        cj = gj * P + P // 2
        roof = self._terrain_block(ci, cj) + bh
        h = np.where(inside & (Bh > 0), roof[ri[:, None], rj[None, :]], h)
        out = np.where(((i >= 0) & (i < ny))[:, None] & ((j >= 0) & (j < nx))[None, :], h, np.nan)
        return out

    def _terrain_block(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        ny, nx = self.shape
        wi = self.relief * 0.7 * np.sin(2 * np.pi * 1.3 * (i + 0.5) / max(ny, 2000) + 0.4 + self.seed)
        wj = self.relief * 0.55 * np.cos(2 * np.pi * 0.9 * (j + 0.5) / max(nx, 2000) + 1.1 * self.seed)
        return self.base + wi[:, None] + wj[None, :]


def write_dsm(path, dsm: CityDsm, *, block: int = 2048) -> str:
    """Write ``dsm`` as a tiled float32 GeoTIFF (block by block), tagged ellipsoidal."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    ny, nx = dsm.shape
    profile = dict(driver="GTiff", width=nx, height=ny, count=1, dtype="float32", crs=dsm.crs_wkt,
                   transform=Affine(*dsm.transform), tiled=True, blockxsize=256, blockysize=256,
                   BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **profile) as dst:
        for i in range(0, ny, block):
            for j in range(0, nx, block):
                i1, j1 = min(i + block, ny), min(j + block, nx)
                dst.write(dsm.read_block(i, i1, j, j1).astype(np.float32), 1, window=Window(j, i, j1 - j, i1 - i))
        dst.update_tags(VERTICAL_DATUM="ellipsoid")
    return str(path)


# --------------------------------------------------------------------------------------- cameras


def view_camera(dsm: CityDsm, off_nadir_deg: float, azimuth_deg: float, *, gsd: float = 0.5,
                kappa_deg: float = 0.0, margin: int = 16, name: str = "view",
                acquired: str = "2022-05-01T10:00:00") -> Camera:
    """An exact affine RPC00B camera looking at the DSM centre from ``off_nadir_deg`` with the
    sensor at ``azimuth_deg`` (from the ground, clockwise from north); image pixels of ``gsd``
    metres on the ground, image axes rotated by ``kappa_deg`` from the grid. A point ``dh`` above
    the reference height is seen ``dh·tan(off_nadir)`` metres further from the sensor. The image
    size covers the DSM at every height of ``dsm.height_range`` plus ``margin`` pixels."""
    k_e, k_n = metres_per_degree(dsm.lat0)
    ny, nx = dsm.shape
    half_e, half_n = nx * dsm.cell / 2.0, ny * dsm.cell / 2.0
    lon_s, lat_s = half_e / k_e, half_n / k_n
    h_lo, h_hi = dsm.height_range
    h_off, h_s = 0.5 * (h_lo + h_hi), max(0.5 * (h_hi - h_lo), 1.0)
    t = math.tan(math.radians(off_nadir_deg))
    sa, ca = math.sin(math.radians(azimuth_deg)), math.cos(math.radians(azimuth_deg))
    sk, ck = math.sin(math.radians(kappa_deg)), math.cos(math.radians(kappa_deg))
    # ground metres (E', N') at the reference height of the pixel that sees normalised (L, P, H)
    G = np.array([[lon_s * k_e, 0.0, -h_s * t * sa],
                  [0.0, lat_s * k_n, -h_s * t * ca]])
    R = np.array([[ck, -sk], [sk, ck]])  # image axes (u right, v up) from (E', N')
    U = R @ G
    # size: project the DSM corners at both height bounds
    LPH = np.array([[L, P, H] for L in (-1, 1) for P in (-1, 1) for H in (-1, 1)]).T
    uv = U @ LPH
    cols_m = uv[0] / gsd
    rows_m = -uv[1] / gsd
    rows = int(math.ceil(rows_m.max() - rows_m.min())) + 2 * margin
    cols = int(math.ceil(cols_m.max() - cols_m.min())) + 2 * margin
    line_off = -rows_m.min() + margin
    samp_off = -cols_m.min() + margin
    line_s, samp_s = rows / 2.0, cols / 2.0
    z = [0.0] * 20
    line_num, samp_num = list(z), list(z)
    for k, term in ((0, 1), (1, 2), (2, 3)):  # RPC00B terms 1, 2, 3 = L, P, H
        samp_num[term] = U[0, k] / (gsd * samp_s)
        line_num[term] = -U[1, k] / (gsd * line_s)
    den = tuple([1.0] + [0.0] * 19)
    rpc = RPC(line_off=line_off, samp_off=samp_off, lat_off=dsm.lat0, lon_off=dsm.lon0, height_off=h_off,
              line_scale=line_s, samp_scale=samp_s, lat_scale=lat_s, lon_scale=lon_s, height_scale=h_s,
              line_num=tuple(line_num), line_den=den, samp_num=tuple(samp_num), samp_den=den,
              source=f"synthetic:{name}")
    return Camera(rpc, shape=(rows, cols), sensor="synthetic", acquired=acquired, source=f"synthetic:{name}",
                  model_format="synthetic")


# --------------------------------------------------------------------------------------- images


def pattern(r0: int, r1: int, c0: int, c1: int, count: int = 4, seed: int = 0) -> np.ndarray:
    """uint16 pixels (count, r1-r0, c1-c0): a smooth separable pattern per band (periods of
    23-41 px, amplitude ±1200 DN around 2500), so bilinear samples of two tools at the same
    position agree to rounding and a 0.01 px geometric disagreement shows (~2 DN)."""
    r = np.arange(r0, r1, dtype=np.float64)
    c = np.arange(c0, c1, dtype=np.float64)
    out = np.empty((count, r.size, c.size), np.uint16)
    for b in range(count):
        pr, pc = 23.0 + 6 * b, 29.0 + 4 * b
        fr = 600.0 * np.sin(2 * np.pi * r / pr + 0.7 * b + seed)
        fc = 600.0 * np.sin(2 * np.pi * c / pc + 1.3 * b + 0.5 * seed)
        out[b] = np.rint(2500.0 + 150.0 * b + fr[:, None] + fc[None, :])
    return out


@dataclass(frozen=True)
class ProceduralImage(ImageSource):
    """An :class:`~offnadir.io.image.ImageSource` whose pixels are :func:`pattern` (no file)."""

    seed: int = 0

    def read_window(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        return pattern(r0, r1, c0, c1, self.count, self.seed)


def procedural_image(camera: Camera, name: str, *, count: int = 4, seed: int = 0) -> ProceduralImage:
    return ProceduralImage(f"procedural:{name}", camera, tuple(camera.shape), count, "uint16", None, name, seed=seed)


def write_image(path, camera: Camera, *, count: int = 4, seed: int = 0, block: int = 1024) -> str:
    """Write the image of ``camera`` (pixels :func:`pattern`) as a tiled, pixel-interleaved,
    uncompressed uint16 GeoTIFF with RPC tags."""
    import rasterio
    from rasterio.rpc import RPC as RioRPC
    from rasterio.windows import Window

    rows, cols = camera.shape
    profile = dict(driver="GTiff", width=cols, height=rows, count=count, dtype="uint16", tiled=True,
                   blockxsize=256, blockysize=256, interleave="pixel", BIGTIFF="IF_SAFER")
    with warnings.catch_warnings():
        # no geotransform on purpose: the image is in sensor geometry (its georeferencing is the RPC)
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        dst = rasterio.open(path, "w", **profile)
    with dst:
        for i in range(0, rows, block):
            for j in range(0, cols, block):
                i1, j1 = min(i + block, rows), min(j + block, cols)
                dst.write(pattern(i, i1, j, j1, count, seed), window=Window(j, i, j1 - j, i1 - i))
        dst.rpcs = RioRPC.from_gdal(camera.rpc.to_gdal())
        if camera.acquired:
            # GDAL's acquisition field; offnadir does not read the TIFF DateTime tag (creation time)
            dst.update_tags(ns="IMAGERY", ACQUISITIONDATETIME=camera.acquired)
    return str(path)
