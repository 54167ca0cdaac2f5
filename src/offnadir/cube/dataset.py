"""xarray glue of the cube: dims, coordinates, CRS and attributes around the arrays. Metadata only.

xarray and rioxarray are imported by :func:`cube_dataset` only: the rest (coordinates, attributes,
date groups) serves :mod:`offnadir.cube.layout`, which writes a run's store without them."""

from __future__ import annotations

import json
import logging
import math

from typing import TYPE_CHECKING

import numpy as np

from offnadir._version import __version__
from offnadir.errors import DataError

if TYPE_CHECKING:
    import xarray as xr

log = logging.getLogger("offnadir.cube.dataset")

VAR_ATTRS = {
    "row": {"long_name": "image row of the DSM cell", "units": "pixel",
            "pixel_convention": "RPC00B native: centre of the first pixel is row 0"},
    "col": {"long_name": "image column of the DSM cell", "units": "pixel",
            "pixel_convention": "RPC00B native: centre of the first pixel is column 0"},
    "visible": {"long_name": "visibility of the DSM cell in the image", "flag_values": [0, 1, 2],
                "flag_meanings": "hidden visible outside_image_or_dsm_nodata"},
    "value": {"long_name": "image value at the DSM cell (bilinear)", "resampling": "bilinear",
              "units": "1", "comment": "the image's digital numbers as stored in its file"},
    "dsm": {"long_name": "surface height", "units": "m", "standard_name": "height_above_reference_ellipsoid",
            "vertical_datum": "WGS84 ellipsoid (converted from the DSM's datum where needed)"},
}
#: each variable's CF _FillValue, also its Zarr fill value (GDAL's nodata) and the value of unwritten cells
FILL = {"row": np.nan, "col": np.nan, "visible": 2, "value": np.nan, "dsm": np.nan}


def grid_coords(transform, shape):
    a, b, c, d, e, f = transform[:6]
    if b != 0 or d != 0:
        raise DataError("the DSM grid is rotated (its geotransform has rotation terms); warp it to a north-up "
                        "grid first, e.g. `gdalwarp -r bilinear IN.tif OUT.tif`.")
    ny, nx = shape
    return c + a * (np.arange(nx) + 0.5), f + e * (np.arange(ny) + 0.5)


def _acquired(im) -> str | None:
    """The image's acquisition date/time: the date given for it, else its camera metadata's."""
    return getattr(im, "date", None) or im.camera.acquired


def date_groups(images, *, say: bool = True) -> np.ndarray:
    """(n_images,) int32 group per image: images of the same calendar date share a group
    (numbered 0, 1, ... in order of first appearance); an image without any date is a group of its
    own (said in the log)."""
    from offnadir.io.image import calendar_date

    groups, by_date = [], {}
    for im in images:
        d = calendar_date(_acquired(im))
        nxt = max(groups) + 1 if groups else 0
        if d is None and say:
            log.info("image %s has no acquisition date (none in its metadata, none given): it forms a date group "
                     "of its own; give one with `date:` in the config or --date", im.name)
        if d is None:
            groups.append(nxt)
            continue
        if say:  # where each date came from (also in the store's "images" attribute, date_source)
            log.info("image %s: date %s (%s)", im.name, d, getattr(im, "date_source", None) or "given or metadata")
        if d not in by_date:
            by_date[d] = nxt
        groups.append(by_date[d])
    out = np.asarray(groups, dtype=np.int32)
    for g in np.unique(out):
        members = [images[k].name for k in np.flatnonzero(out == g)]
        if len(members) > 1 and say:
            log.info("date group %d (%s): %s", g, calendar_date(_acquired(images[int(np.flatnonzero(out == g)[0])])),
                     ", ".join(members))
    return out


def image_coords(images) -> dict:
    """Per-image coordinates: name, acquisition time (the given date, else the metadata's), date
    group, sensor, view angles at the image centre."""
    names, times, sensors, off, az = [], [], [], [], []
    for im in images:
        cam = im.camera
        names.append(im.name)
        acq = _acquired(im)
        times.append(np.datetime64(_strip_tz(acq), "ns") if acq else np.datetime64("NaT", "ns"))
        sensors.append(cam.sensor or "")
        try:
            v = cam.view_angles()
            off.append(v["off_nadir_deg"])
            az.append(v["azimuth_deg"])
        except Exception:  # a view angle is informative only
            off.append(math.nan)
            az.append(math.nan)
    return {
        "image": ("image", np.array(names, dtype=object)),
        "time": ("image", np.array(times, dtype="datetime64[ns]")),
        "date_group": ("image", date_groups(images), {
            "long_name": "acquisition date group: images of the same calendar date share a group; an image "
                         "without a date is a group of its own"}),
        "sensor": ("image", np.array(sensors, dtype=object)),
        "off_nadir": ("image", np.array(off, dtype=np.float64), {"units": "degree",
                      "long_name": "line-of-sight angle from the vertical at the image centre"}),
        "azimuth": ("image", np.array(az, dtype=np.float64), {"units": "degree",
                    "long_name": "azimuth from the ground to the sensor, clockwise from north"}),
    }


def _strip_tz(t: str) -> str:
    t = t.strip().replace("Z", "")
    for sep in ("+",):
        if sep in t[10:]:
            t = t[:10] + t[10:].split(sep)[0]
    return t


def _sun_coords(plan, config) -> dict:
    """Per-image sun (config, metadata or almanac; see :mod:`offnadir.io.acquisition`)."""
    from offnadir.io.dsm import grid_centre_lonlat_and_north
    from offnadir.io.acquisition import image_suns, sun_coords

    lon, lat, _ = grid_centre_lonlat_and_north(plan.dsm.crs_wkt, plan.dsm.transform, plan.dsm.shape)
    return sun_coords(image_suns(plan.images, (config or {}).get("images"), (lon, lat)))


def cube_dataset(plan, arrays: dict, *, config: dict | None = None) -> xr.Dataset:
    """Wrap cube arrays (dask or numpy) in a Dataset on the DSM grid with CRS and provenance."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    import xarray as xr
    from pyproj import CRS

    xs, ys = grid_coords(plan.dsm.transform, plan.dsm.shape)
    dims = {"row": ("image", "y", "x"), "col": ("image", "y", "x"), "visible": ("image", "y", "x"),
            "value": ("image", "band", "y", "x"), "dsm": ("y", "x")}
    data_vars = {k: (dims[k], v, VAR_ATTRS[k]) for k, v in arrays.items()}
    coords = {"x": ("x", xs, {"units": "m"}), "y": ("y", ys, {"units": "m"}),
              "band": ("band", np.arange(1, plan.n_bands + 1))}
    coords.update(image_coords(plan.images))
    coords.update(_sun_coords(plan, config))
    ds = xr.Dataset(data_vars, coords=coords)
    crs = CRS.from_wkt(plan.dsm.crs_wkt)
    if crs.is_compound:
        crs = crs.sub_crs_list[0]  # heights are ellipsoidal in the cube; keep the horizontal CRS
    ds = ds.rio.write_crs(crs.to_wkt()).rio.write_transform(_affine(plan.dsm.transform))
    ds = ds.rio.write_coordinate_system()  # CF standard_name/units of x and y from the CRS
    for name in ds.data_vars:  # in the attributes: xarray does not write rioxarray's encoding entry to Zarr
        ds[name].attrs["grid_mapping"] = "spatial_ref"
    ds.attrs.update(geo_attrs(crs, plan.dsm.transform, plan.dsm.shape))
    ds.attrs.update(provenance(plan, config))
    return ds


def geo_attrs(crs, transform, shape) -> dict:
    """GeoZarr-style ``proj:`` and ``spatial:`` attributes."""
    a, b, c, d, e, f = transform[:6]
    ny, nx = shape
    xs = [c, c + a * nx]
    ys = [f, f + e * ny]
    out = {
        "proj:wkt2": crs.to_wkt(),
        "spatial:dimensions": ["y", "x"],
        "spatial:transform": [a, b, c, d, e, f],
        "spatial:shape": [ny, nx],
        "spatial:bbox": [min(xs), min(ys), max(xs), max(ys)],
        "spatial:registration": "pixel",
    }
    code = crs.to_epsg()
    if code:
        out["proj:code"] = f"EPSG:{code}"
    return out


def _affine(t):
    from affine import Affine

    return Affine(*t[:6])


def provenance(plan, config) -> dict:
    """The cube's root attributes that say what made it (inputs, options, software)."""
    out = {
        "title": "offnadir co-registered cube",
        "software": f"offnadir {__version__}",
        "coordinates": "spatial_ref",
        "dsm_source": str(plan.dsm.path),
        "dsm_vertical_datum": plan.dsm.vertical_datum,
        "images": json.dumps([{"name": im.name, "path": im.path, "model_format": im.camera.model_format,
                               "bias": list(im.camera.bias),
                               "date": getattr(im, "date", None), "date_source": getattr(im, "date_source", "")}
                              for im in plan.images]),
        "halo_cells": plan.halo,
        "lattice_step": plan.lattice_step,
        "occlusion_z_tol_m": plan.z_tol,
        "tile_size": plan.chunk,
        "tile_shape": list(plan.tile_shape),
    }
    if config is not None:
        out["config"] = json.dumps(config, default=str)
    return out
