"""The cube store's layout (root attributes, coordinates, empty arrays) written with zarr directly.

It is what ``xarray``'s ``to_zarr`` writes for :func:`offnadir.cube.dataset.cube_dataset` of
:func:`offnadir.cube.graph.empty_arrays` (the same attributes, codecs, fill values and CF
encodings, Zarr v2 and v3; ``tests/test_cube_layout.py`` compares the two stores file by file),
without importing xarray, pandas, rioxarray or dask.array. Those imports and the lazy dataset
cost ~0.7 CPU-s of a 2048² ``offnadir coregister`` that takes ~3.5 (measured with
``benchmarks/bench_cube.py e2e``). Metadata only: the arrays' cells are written by the tiles.

The CF encodings reproduced here (the references: xarray's ``coding.times`` and ``conventions``,
rioxarray's ``write_crs``/``write_transform``/``write_coordinate_system``):

* datetimes: int64 counts of the coarsest of days ... nanoseconds that divides every difference
  between consecutive known times, since the first known time; NaT is the int64 minimum;
* the grid mapping ``spatial_ref``: pyproj's CF attributes of the CRS, its GDAL WKT as
  ``spatial_ref`` and ``crs_wkt``, the GDAL ``GeoTransform``; ``x``/``y`` carry the CF axis names;
* data variables list the non-dimension coordinates on their dimensions in ``coordinates``;
* Zarr v3 float fill values are repeated as base64 little-endian float64 ``_FillValue`` attributes.
"""

from __future__ import annotations

import base64
import json
import logging
import struct
from dataclasses import dataclass, field

import numpy as np

from offnadir.cube import dataset as cube_ds

log = logging.getLogger("offnadir.cube.layout")

#: v2 variables carry their dimensions in this attribute (xarray's convention)
DIMS_ATTR = "_ARRAY_DIMENSIONS"
_TIME_UNITS = (("days", 86400 * 10**9), ("hours", 3600 * 10**9), ("minutes", 60 * 10**9), ("seconds", 10**9),
               ("milliseconds", 10**6), ("microseconds", 10**3), ("nanoseconds", 1))
_NAT = np.iinfo(np.int64).min


@dataclass
class Var:
    """One array of the layout: ``data`` is written now (coordinates); None leaves it to the tiles,
    with ``fill`` as the value of unwritten cells (the data variables)."""

    dims: tuple
    dtype: np.dtype
    shape: tuple
    chunks: tuple
    attrs: dict = field(default_factory=dict)
    data: np.ndarray | None = None
    fill: object = None
    coordinate: bool = True


def cube_layout(plan, *, config: dict | None = None) -> tuple[dict[str, Var], dict]:
    """(variables, root attributes) of the cube store of ``plan``; see the module doc."""
    from pyproj import CRS

    n_img, (ny, nx) = len(plan.images), plan.dsm.shape
    cy, cx = plan.chunks()
    xs, ys = cube_ds.grid_coords(plan.dsm.transform, plan.dsm.shape)
    crs = CRS.from_wkt(plan.dsm.crs_wkt)
    if crs.is_compound:
        crs = crs.sub_crs_list[0]  # heights are ellipsoidal in the cube; keep the horizontal CRS
    grid_mapping, (x_attrs, y_attrs) = _grid_mapping(crs, plan.dsm.transform)
    coords = {"x": ("x", xs, {"units": "m", **x_attrs}), "y": ("y", ys, {"units": "m", **y_attrs}),
              "band": ("band", np.arange(1, plan.n_bands + 1))}
    coords.update(cube_ds.image_coords(plan.images))
    coords.update(cube_ds._sun_coords(plan, config))
    variables: dict[str, Var] = {}
    for name, (dim, data, *attrs) in coords.items():
        data = np.asarray(data)
        variables[name] = Var((dim,), data.dtype, data.shape, data.shape, dict(attrs[0]) if attrs else {}, data)
    variables["spatial_ref"] = Var((), np.dtype(np.int64), (), (), grid_mapping, np.asarray(0, np.int64))
    # on the image dimension, beside the dimension coordinate: listed in every image variable's "coordinates"
    on_image = " ".join(sorted(k for k, v in variables.items() if v.dims == ("image",) and k != "image"))
    shapes = {"row": ((n_img, ny, nx), (1, cy[0], cx[0]), np.float32),
              "col": ((n_img, ny, nx), (1, cy[0], cx[0]), np.float32),
              "visible": ((n_img, ny, nx), (1, cy[0], cx[0]), np.uint8),
              "value": ((n_img, plan.n_bands, ny, nx), (1, plan.n_bands, cy[0], cx[0]), np.float32),
              "dsm": ((ny, nx), (cy[0], cx[0]), np.float32)}
    dims = {"row": ("image", "y", "x"), "col": ("image", "y", "x"), "visible": ("image", "y", "x"),
            "value": ("image", "band", "y", "x"), "dsm": ("y", "x")}
    for name, (shape, chunks, dtype) in shapes.items():
        attrs = {**cube_ds.VAR_ATTRS[name], "grid_mapping": "spatial_ref"}
        if "image" in dims[name] and on_image:
            attrs["coordinates"] = on_image
        variables[name] = Var(dims[name], np.dtype(dtype), shape, chunks, attrs, None, cube_ds.FILL[name],
                              coordinate=False)
    root = {**cube_ds.geo_attrs(crs, plan.dsm.transform, plan.dsm.shape), **cube_ds.provenance(plan, config)}
    return variables, root


def _grid_mapping(crs, transform) -> tuple[dict, tuple[dict, dict]]:
    """The ``spatial_ref`` attributes and the x/y axis attributes, as rioxarray writes them."""
    import pyproj
    import rasterio.crs

    rcrs = rasterio.crs.CRS.from_user_input(crs.to_wkt())
    try:
        attrs = pyproj.CRS.from_user_input(rcrs).to_cf()
    except KeyError:
        attrs = {}
    wkt = rcrs.to_wkt()
    attrs["spatial_ref"] = wkt
    attrs["crs_wkt"] = wkt
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    attrs["GeoTransform"] = " ".join(str(v) for v in (c, a, b, f, d, e))
    x, y = {"axis": "X"}, {"axis": "Y"}
    if rcrs.is_projected:
        factor = rcrs.linear_units_factor[-1]
        units = "metre" if factor == 1 else f"{factor} metre"
        x.update(long_name="x coordinate of projection", standard_name="projection_x_coordinate", units=units)
        y.update(long_name="y coordinate of projection", standard_name="projection_y_coordinate", units=units)
    elif rcrs.is_geographic:
        x.update(long_name="longitude", standard_name="longitude", units="degrees_east")
        y.update(long_name="latitude", standard_name="latitude", units="degrees_north")
    return attrs, (x, y)


def encode_times(t: np.ndarray) -> tuple[np.ndarray, dict]:
    """datetime64 values as CF int64 counts and their ``units``/``calendar`` (see the module doc)."""
    ns = np.asarray(t, dtype="datetime64[ns]").astype(np.int64)
    known = ns[ns != _NAT]
    ref = int(known[0]) if known.size else 0
    steps = np.unique(np.diff(known))
    unit, size = next(((u, s) for u, s in _TIME_UNITS if np.all(steps % s == 0)), ("nanoseconds", 1))
    out = np.where(ns == _NAT, _NAT, (ns - ref) // size).astype(np.int64)
    return out, {"units": f"{unit} since {_timestamp_text(ref)}", "calendar": "proleptic_gregorian"}


def _timestamp_text(ns: int) -> str:
    """A nanosecond timestamp as pandas prints it: 'YYYY-MM-DD HH:MM:SS[.ffffff[fff]]'."""
    sec, frac = divmod(ns, 10**9)
    text = str(np.datetime64(sec, "s")).replace("T", " ")
    if frac == 0:
        return text
    return f"{text}.{frac // 1000:06d}" if frac % 1000 == 0 else f"{text}.{frac:09d}"


def _fill_attr(fill):
    """A fill value as xarray writes a v3 ``_FillValue`` attribute (floats: base64 of '<f8')."""
    if isinstance(fill, (float, np.floating)):
        return base64.standard_b64encode(struct.pack("<d", float(fill))).decode("ascii")
    return int(fill) if isinstance(fill, (int, np.integer)) else fill


def write_layout(group, variables: dict[str, Var], compressors) -> None:
    """Create every array of ``variables`` in the zarr ``group`` (a new, empty group) and write the
    coordinates' values. ``compressors``: the codecs of the data variables (coordinates keep
    zarr's default, as xarray leaves them)."""
    v3 = group.metadata.zarr_format == 3
    specs = []
    for name, v in variables.items():
        data, attrs, dtype = v.data, dict(v.attrs), v.dtype
        if data is not None and np.issubdtype(dtype, np.datetime64):
            data, time_attrs = encode_times(data)
            attrs.update(time_attrs)
            dtype = data.dtype
        is_text = dtype.kind in "OU"
        if v.coordinate:
            # xarray: no fill for text, ints and times; NaN for float coordinates
            fill = np.nan if dtype.kind == "f" else None
        else:
            fill = v.fill
        kwargs = {"shape": v.shape, "chunks": v.chunks, "dtype": str if is_text else dtype,
                  "compressors": "auto" if v.coordinate else compressors}
        if v3:
            kwargs["dimension_names"] = v.dims
            if fill is not None:
                attrs["_FillValue"] = _fill_attr(fill)
            kwargs["fill_value"] = fill if fill is not None else ("" if is_text else 0)
        else:
            attrs[DIMS_ATTR] = list(v.dims)
            kwargs["fill_value"] = fill
        specs.append((name, attrs, kwargs, None if data is None else data.astype(object) if is_text else data))
    create_arrays(group, specs)


def create_arrays(group, specs) -> None:
    """``group.create_array(name, attributes=attrs, **kwargs)`` and ``array[...] = data`` (unless
    None) of every ``(name, attrs, kwargs, data)`` in ``specs``, all at once on zarr's event loop:
    one at a time, each is a few round trips to zarr's I/O thread (~30 for a cube's layout, 0.1-0.5 s
    on the run's critical path with the workers idle). The same calls, so the same arrays and
    metadata; one at a time where this zarr's asynchronous API is not the one known here."""
    try:
        import asyncio

        from zarr.core.array import _parse_deprecated_compressor
        from zarr.core.sync import sync

        agroup, fmt = group._async_group, group.metadata.zarr_format
    except (ImportError, AttributeError):
        for name, attrs, kwargs, data in specs:
            arr = group.create_array(name, attributes=attrs, **kwargs)
            if data is not None:
                arr[...] = data
        return

    async def one(name, attrs, kwargs, data):
        kw = dict(kwargs)
        kw["compressors"] = _parse_deprecated_compressor("auto", kw.get("compressors", "auto"), zarr_format=fmt)
        arr = await agroup.create_array(name, attributes=attrs, **kw)
        if data is not None:
            await arr.setitem(Ellipsis, data)

    async def all_of():
        await asyncio.gather(*(one(*spec) for spec in specs))

    sync(all_of())


def create_store(path, plan, fingerprint: dict | None = None, *, config: dict | None = None,
                 zarr_format: int | None = None) -> None:
    """The cube store's layout for ``plan`` at ``path`` (what :func:`offnadir.store.create` writes
    from ``cube_dataset``), marked incomplete and carrying ``fingerprint`` (see
    :func:`offnadir.outputs.fingerprint`), with its ``tile_done`` bookkeeping array."""
    import zarr

    from offnadir import store

    zarr_format = store.check_zarr_format(zarr_format)
    variables, attrs = cube_layout(plan, config=config)
    attrs.update({store.STATUS_ATTR: store.INCOMPLETE, store.PLAN_ATTR: json.dumps(fingerprint or {}, sort_keys=True)})
    log.info("%s: Zarr v%d store (%s)", path, zarr_format,
             "opens in GDAL >= 3.10" if zarr_format == 2 else "GDAL 3.10 cannot open v3; GDAL >= 3.11 can")
    with store._quiet_zarr():
        g = zarr.open_group(str(store.location(path)), mode="w", zarr_format=zarr_format, attributes=attrs)
        write_layout(g, variables, store.compressors(zarr_format))
        store.create_flag_array(g, store.DONE, plan.grid_shape, "1 where the tile has been written")
