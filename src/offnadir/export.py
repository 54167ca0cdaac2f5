"""Outputs every GIS opens, from a complete result store: Cloud-Optimized GeoTIFFs of the maps,
changed objects as polygons (GeoPackage, GeoJSON, GeoParquet; :mod:`offnadir.export_vectors`) and
a Zarr v2 copy of the maps.

The store itself is Zarr v2 by default (see :mod:`offnadir.store`), which GDAL 3.10 opens, so
``--to zarr2`` is only needed for a store written with ``--zarr-format 3`` (GDAL 3.10, the one
inside rasterio's wheels, refuses every array of a zarr-python 3 v3 store with "Unsupported codec:
bytes"), or to keep the maps alone; it copies them with the same chunks, Blosc compression, CF
``grid_mapping`` (CRS) and nodata as fill value.

Everything here is driven by the variables the store holds: :data:`RULES` says, per variable,
what its nodata is and how its overviews are resampled; a variable it does not name falls back on
its dtype (floats: NaN; integers: the ``nodata`` attribute, else the Zarr fill value).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, DataError, OutputExistsError

log = logging.getLogger("offnadir.export")

FORMATS = ("cog", "gpkg", "geojson", "geoparquet", "zarr2")
VECTOR_FORMATS = {"gpkg": ("GPKG", ".gpkg"), "geojson": ("GeoJSON", ".geojson"), "geoparquet": (None, ".parquet")}


@dataclass(frozen=True)
class Rule:
    nodata: float | None  # None: every value is data
    resampling: str  # overviews: "nearest" for classes and IDs, "average" for measurements
    description: str = ""


#: per-variable export rules (nodata as in the store's fill values and ``nodata`` attributes)
RULES = {
    "change": Rule(2, "nearest", "0 no change, 1 change, 2 unobservable (nodata)"),
    "change_ortho": Rule(2, "nearest", "ortho baseline: 0 no change, 1 change, 2 outside (nodata)"),
    "patch": Rule(0, "nearest", "patch ID, 0 no patch (nodata)"),
    "visible": Rule(2, "nearest", "0 hidden, 1 visible, 2 outside (nodata)"),
    "elevated": Rule(None, "nearest", "0 ground, 1 elevated"),
    "illumination": Rule(255, "nearest", "direct sun x 100, 255 unknown (nodata)"),
    "probability": Rule(float("nan"), "average", "change probability 0-1"),
    "score": Rule(float("nan"), "average", "change confidence 0-1"),
    "dh": Rule(float("nan"), "average", "height change target - base (m)"),
    "dh_sigma": Rule(float("nan"), "average", "standard deviation of dh (m)"),
}
#: rasters exported when no --variable is given (those the store holds)
DEFAULT_RASTERS = ("change", "probability", "dh", "dh_sigma", "score")


def rule(ds, name) -> Rule:
    """The export rule of variable ``name`` of ``ds`` (from :data:`RULES`, else from its dtype)."""
    if name in RULES:
        return RULES[name]
    var = ds[name]
    if np.issubdtype(var.dtype, np.floating):
        return Rule(float("nan"), "average")
    nd = var.attrs.get("_FillValue", var.attrs.get("nodata", var.encoding.get("_FillValue",
                                                                             var.encoding.get("fill_value"))))
    return Rule(None if nd is None else float(nd), "nearest")


@contextmanager
def _quiet():
    from offnadir.store import _quiet_zarr

    with _quiet_zarr():
        yield


def open_store(path, what: str = "export"):
    """The complete store at ``path`` as a lazy Dataset; a clear error when it is missing, not a
    Zarr store, or incomplete (``what``: the verb for the message)."""
    from offnadir.store import exists, location, open_dataset, require_complete

    p = location(path)  # a URL (s3://...) stays text
    if not exists(p):
        raise DataError(f"{p}: no such store. Give the path of a Zarr store written by offnadir detect/run.")
    require_complete(p, what)
    try:
        with _quiet():
            ds = open_dataset(p)  # the stored codes: change 2 stays 2 (nodata per RULES)
    except Exception as e:  # noqa: BLE001 - any reader failure means the same thing to the user
        raise DataError(f"{p}: cannot be read as a Zarr store ({e}). Check the path.") from e
    if "x" not in ds.dims or "y" not in ds.dims:
        raise DataError(f"{p}: has no y/x grid; not a result store of offnadir.")
    return ds


def grid(ds):
    """(affine transform, rasterio CRS) of the store's DSM grid (cell-centre coordinates)."""
    from affine import Affine
    from rasterio.crs import CRS

    x, y = ds["x"].values, ds["y"].values
    if x.size < 2 or y.size < 2:
        raise DataError("the store's grid has fewer than 2 cells along x or y; nothing to export.")
    dx, dy = (x[-1] - x[0]) / (x.size - 1), (y[-1] - y[0]) / (y.size - 1)
    wkt = ds.attrs.get("proj:wkt2") or (ds["spatial_ref"].attrs.get("crs_wkt") if "spatial_ref" in ds else None)
    if not wkt:
        raise DataError("the store has no CRS (neither proj:wkt2 nor spatial_ref.crs_wkt); cannot georeference.")
    return Affine(dx, 0.0, x[0] - dx / 2, 0.0, dy, y[0] - dy / 2), CRS.from_wkt(wkt)


def target_images(ds, images=None) -> list[str]:
    """Image names to export: ``images`` (checked), else every image but the base (the first)."""
    names = [str(n) for n in ds["image"].values] if "image" in ds.dims else []
    if images:
        bad = [n for n in images if n not in names]
        if bad:
            raise ConfigError(f"--image {bad[0]}: not an image of the store; it holds {', '.join(names)}.")
        return list(images)
    return names[1:]


def raster_variables(ds, variables=None) -> list[str]:
    on_grid = [n for n in ds.data_vars if {"y", "x"} <= set(ds[n].dims)]
    if variables:
        bad = [v for v in variables if v not in on_grid]
        if bad:
            raise ConfigError(f"--variable {bad[0]}: not a map of the store; it has {', '.join(sorted(on_grid))}.")
        return list(variables)
    chosen = [v for v in DEFAULT_RASTERS if v in on_grid]
    log.info("maps exported (no --variable): %s", ", ".join(chosen))
    if not chosen:
        raise DataError(f"the store holds none of {', '.join(DEFAULT_RASTERS)}; name maps with --variable "
                        f"(it has {', '.join(sorted(on_grid))}).")
    return chosen


def _provenance(ds) -> dict:
    from offnadir._version import __version__

    return {"source_store": str(ds.encoding.get("source", "")), "exported_by": f"offnadir {__version__}",
            "store_software": str(ds.attrs.get("software", ""))}


def _date(ds, image) -> str:
    if "time" not in ds.coords:
        return ""
    t = ds["time"].sel(image=image).values
    return "" if np.isnat(t) else str(np.datetime_as_string(t, unit="s"))


# --------------------------------------------------------------------------- output safety

def _check_free(paths, overwrite: bool) -> None:
    taken = [p for p in paths if Path(p).exists()]
    if taken and not overwrite:
        more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
        raise OutputExistsError(f"{taken[0]}: already exists{more}. Pass --overwrite to replace it, or choose "
                                "another output with -o.")


@contextmanager
def _atomic(final):
    """A temporary path beside ``final``, moved onto it only when the block succeeds."""
    final = Path(final)
    if final.is_dir() and not (final / ".zgroup").exists():
        raise OutputExistsError(f"{final}: is a directory that is not a Zarr v2 store written here; not replaced. "
                                "Choose another output with -o.")
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix or ".tmp", dir=final.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        yield Path(tmp)
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)


# --------------------------------------------------------------------------- rasters

def _planes(ds, name, image):
    """The 2-D (y, x) or 3-D (band, y, x) lazy array of ``name`` for ``image``."""
    var = ds[name]
    if "image" in var.dims:
        var = var.sel(image=image)
    extra = [d for d in var.dims if d not in ("y", "x")]
    if len(extra) > 1:
        raise ConfigError(f"--variable {name}: has dimensions {var.dims}; only one besides image, y and x can "
                          "become bands.")
    return var.transpose(*extra, "y", "x")


def write_cog(ds, name, image, path, transform, crs) -> Path:
    """One COG of variable ``name`` for ``image`` (``image`` None: a variable without image dim),
    written block by block from the store's chunks; nodata, CRS and overviews per :func:`rule`."""
    import rasterio
    import rasterio.shutil
    import rasterio.windows

    r = rule(ds, name)
    var = _planes(ds, name, image) if image is not None else ds[name].transpose(..., "y", "x")
    data = var.data
    count = 1 if var.ndim == 2 else var.shape[0]
    dtype = np.dtype(var.dtype)
    if dtype == np.int64 and int(var.max().compute()) < 2 ** 31:
        dtype = np.dtype(np.int32)  # GeoTIFF readers handle int32 everywhere; the IDs fit
    profile = dict(driver="GTiff", width=var.sizes["x"], height=var.sizes["y"], count=count, dtype=dtype.name,
                   crs=crs, transform=transform, tiled=True, blockxsize=512, blockysize=512, compress="deflate",
                   BIGTIFF="IF_SAFER")
    if r.nodata is not None:
        profile["nodata"] = r.nodata
    with _atomic(path) as tmp, tempfile.TemporaryDirectory(dir=Path(path).parent) as work:
        plain = Path(work) / "plain.tif"
        with rasterio.open(plain, "w", **profile) as dst:
            y0 = 0
            for cy in data.chunks[-2]:
                x0 = 0
                for cx in data.chunks[-1]:
                    block = np.asarray(data[..., y0:y0 + cy, x0:x0 + cx].compute(), dtype=dtype)
                    win = rasterio.windows.Window(x0, y0, cx, cy)
                    dst.write(block if block.ndim == 3 else block[None], window=win)
                    x0 += cx
                y0 += cy
            dst.update_tags(variable=name, image=str(image or ""), long_name=str(var.attrs.get("long_name", "")),
                            description=r.description, **_provenance(ds))
            for b in range(count):
                dst.set_band_description(b + 1, name if count == 1 else f"{name}[{b}]")
        rasterio.shutil.copy(plain, tmp, driver="COG", COMPRESS="DEFLATE", OVERVIEW_RESAMPLING=r.resampling.upper(),
                             BIGTIFF="IF_SAFER")
    return Path(path)


def export_cogs(ds, out_dir, *, variables=None, images=None, overwrite=False, stem="") -> list[Path]:
    transform, crs = grid(ds)
    names = raster_variables(ds, variables)
    jobs = []
    for name in names:
        if "image" in ds[name].dims:
            jobs += [(name, im, Path(out_dir) / f"{stem}{name}_{im}.tif") for im in target_images(ds, images)]
        else:
            jobs.append((name, None, Path(out_dir) / f"{stem}{name}.tif"))
    _check_free([p for *_, p in jobs], overwrite)
    out = []
    for name, im, p in jobs:
        log.info("COG %s (variable %s, image %s, nodata %s, overviews %s)", p, name, im, rule(ds, name).nodata,
                 rule(ds, name).resampling)
        out.append(write_cog(ds, name, im, p, transform, crs))
    return out


# --------------------------------------------------------------------------- Zarr v2 copy

def export_zarr2(ds, path, *, variables=None, overwrite=False) -> Path:
    """A Zarr v2 copy of the maps (all of them, or ``variables``) that GDAL 3.10 opens, with the
    same chunks, CF CRS and the nodata of :data:`RULES` as each array's fill value."""
    _check_free([path], overwrite)
    if ds.encoding.get("zarr_format") == 2 or _source_format(ds) == 2:
        log.info("the store is Zarr v2 already (GDAL >= 3.10 opens it as it is); writing a copy of its maps anyway")
    names = [n for n in ds.data_vars if {"y", "x"} <= set(ds[n].dims)] if not variables else \
        raster_variables(ds, variables)
    sub = ds[names].copy()
    sub.attrs.update({"offnadir:" + k: v for k, v in _provenance(ds).items()})
    enc = {}
    for n in sub.variables:
        chunks = sub[n].encoding.get("chunks")
        sub[n].encoding = {}
        if sub[n].dtype.kind in "OUT":  # variable-length strings: fixed width in Zarr v2
            v = sub[n].values
            fixed = np.array([str(a) for a in v.ravel()] or [""], dtype=str)[:v.size].reshape(v.shape)
            sub = sub.assign_coords({n: (sub[n].dims, fixed, sub[n].attrs)}) if n in sub.coords else \
                sub.assign({n: (sub[n].dims, fixed, sub[n].attrs)})
        if n in names:
            if "spatial_ref" in sub.coords:  # cube maps do not all name it; GDAL needs it for the CRS
                sub[n].attrs["grid_mapping"] = "spatial_ref"
            nd = rule(ds, n).nodata
            enc[n] = {"chunks": chunks, "_FillValue": nd}
    with _atomic(path) as tmp, _quiet():
        sub.to_zarr(str(tmp), zarr_format=2, consolidated=True, mode="w", encoding=enc)
    log.info("Zarr v2 copy %s: %s", path, ", ".join(names))
    return Path(path)


def _source_format(ds):
    from offnadir.store import zarr_format

    src = ds.encoding.get("source")
    return zarr_format(src) if src else None


def default_output(store, fmt) -> Path:
    s = Path(store)
    if fmt == "cog":
        return s.with_name(s.stem + "_cog")
    if fmt == "zarr2":
        return s.with_name(s.stem + "_v2.zarr")
    return s.with_name(s.stem + "_changes" + VECTOR_FORMATS[fmt][1])


def export(store, fmt, out=None, *, variables=None, images=None, overwrite=False) -> list[Path]:
    """Export a complete store as ``fmt`` (one of :data:`FORMATS`) to ``out``; the files written."""
    if fmt not in FORMATS:
        raise ConfigError(f"--to {fmt}: unknown format; choose one of {', '.join(FORMATS)}.")
    from offnadir.io.remote import is_url, url_name

    remote = is_url(str(store))
    ds = open_store(store)
    ds.encoding["source"] = str(store) if remote else str(Path(store).resolve())
    if not out:  # beside the store; a remote store's exports go to the current folder
        out = default_output(url_name(str(store)) if remote else store, fmt)
        log.info("no -o: writing %s", out)
    out = Path(out)
    if not remote and out.resolve() == Path(store).resolve():
        raise ConfigError(f"{out}: is the store itself; choose another output with -o.")
    if fmt == "cog":
        if out.exists() and not out.is_dir():
            raise OutputExistsError(f"{out}: exists and is not a directory; --to cog writes one file per map "
                                    "and image into a directory. Choose another -o.")
        paths = export_cogs(ds, out, variables=variables, images=images, overwrite=overwrite)
        from offnadir.stac_out import add_cogs

        add_cogs(store, out)  # a store with a STAC folder: its items list the COGs (issue 9)
        return paths
    if fmt == "zarr2":
        return [export_zarr2(ds, out, variables=variables, overwrite=overwrite)]
    _check_free([out], overwrite)
    from offnadir.export_vectors import changed_objects, write_vectors

    objects = changed_objects(ds, images, variable=(variables or ["change"])[0])
    return [write_vectors(objects, out, fmt)]
