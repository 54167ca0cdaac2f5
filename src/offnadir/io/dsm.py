"""The DSM: a picklable source of height blocks on its own grid, plus its lazy xarray view.

Heights inside offnadir are metres above the WGS84 ellipsoid. A DSM above a geoid (EGM96/EGM2008,
from its CRS, its tags or the user's word) is converted with a geoid grid the user names; the
conversion happens per tile (``h = H + N(lon, lat)``), where lon/lat are known. A DSM whose vertical
datum cannot be found is taken as ellipsoidal, with a warning that says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, DataError, InputFileError
from offnadir.io.geoid import Geoid

VERTICAL_DATUMS = ("auto", "ellipsoid", "egm96", "egm2008")
#: heights (m) a DSM cell can hold on Earth, above the ellipsoid or a geoid: the lowest dry land is
#: the Dead Sea shore (-430 m), geoid undulations span -107..+86 m, the highest summit is 8,849 m
#: and the tallest building 828 m; the bounds add margin. Values outside are not heights (undeclared
#: nodata such as -9999 or -32768, overflow spikes): they are read as nodata, with a warning, so
#: that they never widen the occlusion halo (a +1e6 m spike asked for a 105 TiB halo).
HEIGHT_RANGE_M = (-1000.0, 10000.0)
#: DSM cells read (at most) by the scan for out-of-range heights when a DSM is opened: exact up to
#: 2048 x 2048 cells; larger DSMs are sampled by whole blocks (measured: 2**24 cells of a deflate-tiled
#: GeoTIFF in 1.0 s, so this bound costs about 0.25 s per open whatever the DSM's size)
SCAN_CELLS = 2**22
#: largest relative difference between a change-detection grid's y and x cell sizes (and across the
#: grid, for geographic CRSs): metre->cell conversions of windows up to 100 cells stay within one cell
CELL_SQUARE_TOLERANCE = 0.01


class VerticalDatumWarning(UserWarning):
    """The DSM's vertical datum was assumed, not read."""


class DsmValueWarning(UserWarning):
    """Some DSM cells hold values that cannot be heights; they are read as nodata."""


@dataclass(frozen=True)
class DsmSource:
    """A DSM GeoTIFF (or anything GDAL reads) as blocks of float64 heights, NaN for nodata."""

    path: str
    shape: tuple[int, int]
    transform: tuple[float, ...]  # GDAL-order affine coefficients a, b, c, d, e, f
    crs_wkt: str
    vertical_datum: str  # "ellipsoid" | "egm96" | "egm2008"
    geoid: Geoid | None = None
    band: int = 1
    nodata: float | None = None
    notes: tuple[str, ...] = field(default=(), compare=False)
    valid_range: tuple[float, float] = HEIGHT_RANGE_M

    def read_block(self, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
        """Heights of rows i0..i1-1, columns j0..j1-1 (may reach outside the DSM: NaN there)."""
        from rasterio.windows import Window

        from offnadir.io.open_files import reading

        out = np.full((i1 - i0, j1 - j0), np.nan, dtype=np.float64)
        ny, nx = self.shape
        a0, a1 = max(i0, 0), min(i1, ny)
        b0, b1 = max(j0, 0), min(j1, nx)
        if a0 >= a1 or b0 >= b1:
            return out
        with reading(self.path) as ds:  # kept open per thread: neighbouring blocks share tiles
            block = ds.read(self.band, window=Window(b0, a0, b1 - b0, a1 - a0)).astype(np.float64)
        if self.nodata is not None and not math.isnan(self.nodata):
            block[block == self.nodata] = np.nan
        lo, hi = self.valid_range
        with np.errstate(invalid="ignore"):
            block[(block < lo) | (block > hi)] = np.nan
        out[a0 - i0:a1 - i0, b0 - j0:b1 - j0] = block
        return out

    @property
    def needs_geoid(self) -> bool:
        return self.vertical_datum in ("egm96", "egm2008")


def open_dsm_source(path, *, geoid=None, vertical_datum: str = "auto", band: int = 1) -> DsmSource:
    """Inspect a DSM file and return its :class:`DsmSource` (no pixels read)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: DSM file not found. Check the path given as the DSM.")
    if vertical_datum not in VERTICAL_DATUMS:
        raise ConfigError(f"vertical_datum {vertical_datum!r} is not one of {', '.join(VERTICAL_DATUMS)}.")
    try:
        with rasterio.open(p) as ds:
            crs = ds.crs
            shape = ds.shape
            transform = tuple(ds.transform)[:6]
            nodata = ds.nodata
            tags = {k.upper(): v for k, v in ds.tags().items()}
            count = ds.count
    except RasterioIOError as e:
        raise InputFileError(f"{p}: cannot be opened as a raster DSM ({e}). Give a GeoTIFF (or any GDAL raster).") from None
    if crs is None:
        raise DataError(
            f"{p}: the DSM has no coordinate reference system, so its cells cannot be placed on the ground. "
            f"Assign one, e.g. `gdal_edit.py -a_srs EPSG:32631 {p}` (use the DSM's real CRS)."
        )
    if transform[0] == 1.0 and transform[4] == 1.0 and transform[2] == 0.0 and transform[5] == 0.0:
        raise DataError(f"{p}: the DSM has no geotransform (identity); it cannot be placed on the ground.")
    if band < 1 or band > count:
        raise ConfigError(f"{p}: DSM band {band} does not exist (the file has {count}).")
    datum, notes = _vertical_datum(p, crs, tags, vertical_datum)
    notes = notes + _scan_heights(p, band, nodata, shape)
    g = None
    if datum in ("egm96", "egm2008"):
        if geoid is None:
            raise DataError(
                f"{p}: DSM heights are above the {datum.upper()} geoid ({notes[-1]}), but offnadir needs "
                "ellipsoidal heights for RPC projection. Name a geoid grid: `--geoid egm96_15.gtx` "
                "(config: dsm.geoid), e.g. ../shared/data/real/shareloc/tests/data/dtm/geoid/egm96_15.gtx."
            )
        gp = Path(geoid)
        if not gp.exists():
            raise InputFileError(f"{gp}: geoid grid not found. Check dsm.geoid / --geoid.")
        g = Geoid(str(gp))
    elif geoid is not None:
        notes = notes + (f"geoid grid {geoid} ignored: heights are already ellipsoidal",)
    return DsmSource(str(p), tuple(shape), transform, crs.to_wkt(), datum, g, band, nodata, notes)


def _vertical_datum(p: Path, crs, tags: dict, requested: str) -> tuple[str, tuple[str, ...]]:
    if requested != "auto":
        return requested, (f"vertical datum {requested} as configured",)
    wkt = crs.to_wkt().upper()
    for key in ("VERTICAL_DATUM", "OFFNADIR_VERTICAL_DATUM", "HEIGHTS"):
        v = tags.get(key, "").lower()
        if v:
            if "ellipso" in v or v in ("wgs84", "wgs 84"):
                return "ellipsoid", (f"tag {key}={tags[key]}",)
            if "2008" in v:
                return "egm2008", (f"tag {key}={tags[key]}",)
            if "96" in v:
                return "egm96", (f"tag {key}={tags[key]}",)
    if "VERT_CS" in wkt or "VERTCRS" in wkt or "VERT_DATUM" in wkt:
        if "EGM2008" in wkt or "EGM08" in wkt:
            return "egm2008", ("vertical CRS in the DSM's CRS says EGM2008",)
        if "EGM96" in wkt:
            return "egm96", ("vertical CRS in the DSM's CRS says EGM96",)
        if "ELLIPSOID" in wkt:
            return "ellipsoid", ("vertical CRS in the DSM's CRS says ellipsoidal",)
    if p.suffix.lower() == ".hgt":
        return "egm96", ("SRTM .hgt tiles hold heights above EGM96",)
    if "4979" in wkt or "4978" in wkt:
        return "ellipsoid", ("3-D geographic CRS (ellipsoidal heights)",)
    msg = (f"{p}: the DSM declares no vertical datum; assuming its heights are above the WGS84 ellipsoid. "
           "If they are above a geoid, set vertical_datum: egm96 or egm2008 and name the geoid grid.")
    warnings.warn(msg, VerticalDatumWarning, stacklevel=3)
    return "ellipsoid", ("assumed ellipsoidal (no vertical datum declared)",)


def open_dsm(path, *, chunks: int = 1024, **kw):
    """The DSM as a lazy, chunked ``xarray.DataArray`` (dims y, x; CRS; nodata as NaN) — the
    heights as stored (before any geoid conversion)."""
    import rioxarray  # noqa: F401  (registers .rio)

    src = open_dsm_source(path, **kw)
    da = rioxarray.open_rasterio(src.path, chunks={"x": chunks, "y": chunks}, masked=True)
    da = da.sel(band=src.band, drop=True).rename("dsm")
    da.attrs["vertical_datum"] = src.vertical_datum
    return da


def _scan_heights(p: Path, band: int, nodata, shape) -> tuple[str, ...]:
    """Warn about cells outside :data:`HEIGHT_RANGE_M` (read as nodata anyway). Exact for DSMs of up
    to :data:`SCAN_CELLS` cells; larger ones are sampled: whole storage blocks (so each is decoded
    once) spread evenly over the grid, :data:`SCAN_CELLS` cells in all, so an isolated bad cell may go
    unmentioned there (it is still read as nodata)."""
    import logging

    import rasterio
    from rasterio.windows import Window

    ny, nx = shape
    with rasterio.open(p) as ds:
        if ny * nx <= SCAN_CELLS:
            h = ds.read(band).ravel()  # stored type: a float64 copy of a 2048^2 DSM cost 0.14 CPU-s
            sampled = ""
        else:
            bh, bw = ds.block_shapes[band - 1]
            gy, gx = -(-ny // bh), -(-nx // bw)
            k = max(1, min(gy * gx, SCAN_CELLS // (bh * bw)))
            picks = np.unique(np.linspace(0, gy * gx - 1, k).round().astype(np.int64))
            parts = []
            for b in picks:
                i, j = divmod(int(b), gx)
                win = Window(j * bw, i * bh, min(bw, nx - j * bw), min(bh, ny - i * bh))
                parts.append(ds.read(band, window=win).ravel())
            h = np.concatenate(parts)
            sampled = f" of {h.size} sampled"
    lo, hi = HEIGHT_RANGE_M  # whole numbers: compared exactly in the stored type (NaN is never outside)
    with np.errstate(invalid="ignore"):
        bad = (h < lo) | (h > hi)
    if nodata is not None and not math.isnan(nodata):
        bad &= h != nodata
    n_bad = int(bad.sum())
    logging.getLogger("offnadir.io.dsm").info("DSM %s: %d%s cells outside %g..%g m", p, n_bad, sampled, lo, hi)
    if not n_bad:
        return ()
    vals, counts = np.unique(h[bad], return_counts=True)
    common = float(vals[np.argmax(counts)])
    hint = (f" If {common:g} marks missing data, declare it: `gdal_edit.py -a_nodata {common:g} {p}`."
            if counts.max() > 1 else "")
    msg = (f"{p}: {n_bad}{sampled} DSM cells hold values outside the heights found on Earth ({lo:g}..{hi:g} m; "
           f"e.g. {common:g}); they are read as nodata.{hint}")
    warnings.warn(msg, DsmValueWarning, stacklevel=3)
    return (f"{n_bad}{sampled} cells outside {lo:g}..{hi:g} m read as nodata",)


def cell_size_m(crs, transform, shape) -> tuple[float, float]:
    """Ground size (dy_m, dx_m) of one grid cell at the grid's centre, in metres: from the CRS's
    linear unit for projected grids, geodesic distances on the CRS's ellipsoid for geographic ones.
    ``crs``: anything pyproj accepts (WKT, EPSG code, rasterio CRS); ``transform``: GDAL-order
    (a, b, c, d, e, f) or an ``affine.Affine``; ``shape``: (ny, nx)."""
    from pyproj import CRS, Geod

    c = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
    a, b, x0, d, e, y0 = tuple(transform)[:6]
    if not c.is_geographic:
        unit = c.axis_info[0].unit_conversion_factor if c.axis_info else 1.0
        return float(math.hypot(b, e) * unit), float(math.hypot(a, d) * unit)
    ny, nx = shape
    ci, cj = ny / 2.0, nx / 2.0
    lon = x0 + a * cj + b * ci
    lat = y0 + d * cj + e * ci
    geod = c.get_geod() or Geod(ellps="WGS84")
    lat = max(-89.999, min(89.999, lat))
    dx = geod.inv(lon, lat, lon + a, min(89.9999, max(-89.9999, lat + d)))[2]
    dy = geod.inv(lon, lat, lon + b, min(89.9999, max(-89.9999, lat + e)))[2]
    return float(dy), float(dx)


def change_cell_size(crs, transform, shape, *, where: str = "the DSM grid") -> float:
    """The one cell size (metres) change detection works with, or a DataError when the grid's cells
    are not square in metres (within :data:`CELL_SQUARE_TOLERANCE`), are rotated, or (geographic
    CRSs) change size across the grid."""
    from pyproj import CRS

    a, b, _, d, e, _ = tuple(transform)[:6]
    fix = ("Resample the DSM to a projected grid with square cells, e.g. `gdalwarp -t_srs EPSG:326NN "
           "-tr 0.5 0.5 -r bilinear dsm.tif dsm_utm.tif` (your UTM zone and cell size), and run again.")
    if b != 0 or d != 0:
        raise DataError(f"{where} is rotated (geotransform terms {b:g}, {d:g}); change detection needs a north-up "
                        f"grid. {fix}")
    dy, dx = cell_size_m(crs, transform, shape)
    if not (dx > 0 and dy > 0):
        raise DataError(f"{where}: its cell size could not be found in metres ({dy!r} x {dx!r}). {fix}")
    if abs(dy - dx) > CELL_SQUARE_TOLERANCE * max(dx, dy):
        c = CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)
        kind = "geographic (degrees)" if c.is_geographic else "projected"
        raise DataError(f"{where} has cells of {dx:.3f} m (x) by {dy:.3f} m (y) on its {kind} CRS; change detection "
                        f"needs square cells (within {CELL_SQUARE_TOLERANCE:.0%}). {fix}")
    size = 0.5 * (dx + dy)
    if CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs).is_geographic:
        ny, nx = shape
        sizes = []
        for i in (0, ny):
            tr = (a, b, transform[2], d, e, transform[5] + e * (i - ny / 2.0))
            sizes.append(cell_size_m(crs, tr, (0, nx))[1])
        if max(sizes) - min(sizes) > CELL_SQUARE_TOLERANCE * size:
            raise DataError(f"{where} is geographic and its cells shrink from {max(sizes):.3f} m to {min(sizes):.3f} m "
                            f"across the grid (more than {CELL_SQUARE_TOLERANCE:.0%}). {fix}")
    return float(size)


def grid_centre_lonlat_and_north(crs_wkt: str, transform, shape) -> tuple[float, float, float]:
    """(lon, lat) of the grid centre and the grid azimuth of true north there (degrees,
    clockwise from grid north: add it to a true azimuth to get a grid azimuth)."""
    from pyproj import CRS, Transformer

    a, _, c, _, e, f = transform[:6]
    ny, nx = shape
    x, y = c + a * nx / 2.0, f + e * ny / 2.0
    crs = CRS.from_wkt(crs_wkt)
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    to_xy = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    lon, lat = to_ll.transform(x, y)
    x2, y2 = to_xy.transform(lon, lat + 1e-4)
    north = math.degrees(math.atan2(x2 - x, y2 - y))
    return float(lon), float(lat), float(north)
