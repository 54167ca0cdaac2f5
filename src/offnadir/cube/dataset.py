"""xarray glue of the cube: dims, coordinates, CRS and attributes around the arrays. Metadata only."""

from __future__ import annotations

import json
import math

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from offnadir._version import __version__
from offnadir.errors import DataError

VAR_ATTRS = {
    "row": {"long_name": "image row of the DSM cell", "units": "pixel",
            "pixel_convention": "RPC00B native: centre of the first pixel is row 0"},
    "col": {"long_name": "image column of the DSM cell", "units": "pixel",
            "pixel_convention": "RPC00B native: centre of the first pixel is column 0"},
    "visible": {"long_name": "visibility of the DSM cell in the image", "flag_values": [0, 1, 2],
                "flag_meanings": "hidden visible outside_image_or_dsm_nodata"},
    "value": {"long_name": "image value at the DSM cell (bilinear)", "resampling": "bilinear"},
    "dsm": {"long_name": "surface height", "units": "m",
            "vertical_datum": "WGS84 ellipsoid (converted from the DSM's datum where needed)"},
}
FILL = {"row": np.nan, "col": np.nan, "visible": 2, "value": np.nan, "dsm": np.nan}


def grid_coords(transform, shape):
    a, b, c, d, e, f = transform[:6]
    if b != 0 or d != 0:
        raise DataError("the DSM grid is rotated (its geotransform has rotation terms); warp it to a north-up "
                        "grid first, e.g. `gdalwarp -r bilinear IN.tif OUT.tif`.")
    ny, nx = shape
    return c + a * (np.arange(nx) + 0.5), f + e * (np.arange(ny) + 0.5)


def image_coords(images) -> dict:
    """Per-image coordinates: name, acquisition time, sensor, view angles at the image centre."""
    names, times, sensors, off, az = [], [], [], [], []
    for im in images:
        cam = im.camera
        names.append(im.name)
        times.append(np.datetime64(_strip_tz(cam.acquired), "ns") if cam.acquired else np.datetime64("NaT", "ns"))
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


def cube_dataset(plan, arrays: dict, *, config: dict | None = None) -> xr.Dataset:
    """Wrap cube arrays (dask or numpy) in a Dataset on the DSM grid with CRS and provenance."""
    from pyproj import CRS

    xs, ys = grid_coords(plan.dsm.transform, plan.dsm.shape)
    dims = {"row": ("image", "y", "x"), "col": ("image", "y", "x"), "visible": ("image", "y", "x"),
            "value": ("image", "band", "y", "x"), "dsm": ("y", "x")}
    data_vars = {k: (dims[k], v, VAR_ATTRS[k]) for k, v in arrays.items()}
    coords = {"x": ("x", xs, {"units": "m"}), "y": ("y", ys, {"units": "m"}),
              "band": ("band", np.arange(1, plan.n_bands + 1))}
    coords.update(image_coords(plan.images))
    ds = xr.Dataset(data_vars, coords=coords)
    crs = CRS.from_wkt(plan.dsm.crs_wkt)
    if crs.is_compound:
        crs = crs.sub_crs_list[0]  # heights are ellipsoidal in the cube; keep the horizontal CRS
    ds = ds.rio.write_crs(crs.to_wkt()).rio.write_transform(_affine(plan.dsm.transform))
    ds.attrs.update(geo_attrs(crs, plan.dsm.transform, plan.dsm.shape))
    ds.attrs.update({
        "title": "offnadir co-registered cube",
        "software": f"offnadir {__version__}",
        "coordinates": "spatial_ref",
        "dsm_source": str(plan.dsm.path),
        "dsm_vertical_datum": plan.dsm.vertical_datum,
        "images": json.dumps([{"name": im.name, "path": im.path, "model_format": im.camera.model_format,
                               "bias": list(im.camera.bias)} for im in plan.images]),
        "halo_cells": plan.halo,
        "lattice_step": plan.lattice_step,
        "occlusion_z_tol_m": plan.z_tol,
        "tile_size": plan.chunk,
    })
    if config is not None:
        ds.attrs["config"] = json.dumps(config, default=str)
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
