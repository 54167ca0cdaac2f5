"""The change stage's empty arrays in a detect store (the change maps, the per-cell history and the
progress flags) created with zarr directly, all at once on zarr's event loop.

It is what ``xarray``'s ``to_zarr(mode="a", compute=False)`` wrote for
:func:`offnadir.change.dataset.layout` and :func:`offnadir.change.history.create_arrays`' template
(the same metadata files, Zarr v2 and v3; ``tests/test_change_store_layout.py`` compares the two
stores file by file, chunk files included). xarray's path was ~0.3-0.5 CPU-s of the client between
the cube's tile writes and the change stage's first pass, with both workers idle: encoding each
variable, building a dask graph of the deferred store, and ~50 sequential round trips to zarr's I/O
thread (it also rewrote the existing coordinates, x, y, image and the per-image ones, with the same
bytes, and the group attributes with the snapshot it had read). Metadata only: the arrays' cells
are written by the passes.

The CF encodings reproduced (xarray's ``conventions`` and ``backends.zarr``):

* every variable lists in ``coordinates`` (sorted) the non-dimension coordinates of the template
  whose dimensions are among its own: the cube's ``x``, ``y`` and ``image`` coordinates carry with
  them the per-image coordinates and the scalar grid mapping ``spatial_ref``; the history template
  has no coordinates;
* ``_FillValue`` (the variable's ``nodata``) is the array's fill value in v2 and nothing else; v3
  stores it as an attribute (floats as base64 little-endian float64) and the encoding's
  ``fill_value`` as the array's (zarr's 0 where the encoding gives none: the history's day maps).
"""

from __future__ import annotations

import numpy as np

from offnadir.cube.layout import DIMS_ATTR, _fill_attr, create_arrays


def template_coords(cube) -> dict[str, tuple]:
    """Non-dimension coordinate -> its dimensions, of the coordinates ``dataset.layout`` puts in its
    template (the cube's ``x``, ``y`` and ``image`` with what they carry)."""
    out = {}
    for k in ("x", "y", "image"):
        if k in cube.coords:
            for name, c in cube.coords[k].coords.items():
                if name not in cube.dims:
                    out[name] = tuple(c.dims)
    return out


def coordinates_attr(dims, coords: dict[str, tuple]) -> str | None:
    """xarray's ``coordinates`` attribute of a variable on ``dims``: None when it lists nothing."""
    names = sorted(k for k, d in coords.items() if set(d) <= set(dims))
    return " ".join(names) if names else None


def spec(name, dims, shape, chunks, dtype, attrs, nodata, v3_fill, compressors, v3: bool):
    """One ``(name, attrs, kwargs, None)`` entry of :func:`offnadir.cube.layout.create_arrays`:
    what ``to_zarr`` creates for a variable with this ``_FillValue`` (``nodata``); v3 only, the
    array's fill value is ``v3_fill`` (the encoding's ``fill_value``: the change variables give it,
    the history's do not, so xarray leaves zarr's 0 there)."""
    attrs = dict(attrs)
    kwargs = {"shape": tuple(shape), "chunks": chunks if isinstance(chunks, str) else tuple(chunks),
              "dtype": np.dtype(dtype), "compressors": compressors}
    if v3:
        kwargs["dimension_names"] = tuple(dims)
        if nodata is not None:
            attrs["_FillValue"] = _fill_attr(nodata)
        kwargs["fill_value"] = v3_fill
    else:
        attrs[DIMS_ATTR] = list(dims)
        kwargs["fill_value"] = nodata
    return name, attrs, kwargs, None


def change_specs(cube, names, chunks_yx, fmt: int) -> list:
    """The change variables ``names`` as ``dataset.layout`` and ``stage.detect_store``'s encodings
    made them."""
    from offnadir import store
    from offnadir.change.dataset import CHANGE_VARS

    coords = template_coords(cube)
    n_img = cube.sizes["image"]
    ny, nx = sum(chunks_yx[0]), sum(chunks_yx[1])
    cy, cx = chunks_yx[0][0], chunks_yx[1][0]
    gm = "spatial_ref" in cube.coords or "spatial_ref" in cube
    comp = store.compressors(fmt)
    out = []
    for name in names:
        sp = CHANGE_VARS[name]
        dims = sp["dims"]
        shape, chunks = ((ny, nx), (cy, cx)) if dims == ("y", "x") else ((n_img, ny, nx), (1, cy, cx))
        attrs = dict(sp["attrs"])
        if gm:
            attrs["grid_mapping"] = "spatial_ref"
        c = coordinates_attr(dims, coords)
        if c is not None:
            attrs["coordinates"] = c
        nodata = sp.get("nodata", sp["fill"])  # store.encoding's v3 fill_value
        v3_fill = nodata if nodata is not None else (sp["fill"] if sp["fill"] is not None else 0)
        out.append(spec(name, dims, shape, chunks, sp["dtype"], attrs, nodata, v3_fill, comp, fmt == 3))
    return out


def history_specs(shape_yx, chunks_yx, grid_mapping, fmt: int) -> list:
    """The history variables as ``history.create_arrays``' template and encodings made them (zarr's
    default codecs; int32 day maps with ``DAY_FILL`` as ``_FillValue``, the uint16 count without;
    v3 fill value 0)."""
    from offnadir.change import history as H

    out = []
    for k in H.NAMES:
        dtype = np.uint16 if k == "n_changes" else np.int32
        nodata = None if k == "n_changes" else H.DAY_FILL
        out.append(spec(k, ("y", "x"), shape_yx, chunks_yx, dtype, H.variable_attrs(k, grid_mapping), nodata, 0,
                        "auto", fmt == 3))
    return out


def flag_spec(name, shape, long_name, fmt: int):
    """``store.create_flag_array``'s array as a :func:`create_arrays` entry."""
    dims = ("tile_y", "tile_x")
    kwargs = {"shape": tuple(shape), "chunks": (1, 1), "dtype": "uint8", "fill_value": 0}
    attrs = {"long_name": long_name}
    if fmt == 3:
        kwargs["dimension_names"] = dims
    else:
        attrs[DIMS_ATTR] = list(dims)
    return name, attrs, kwargs, None


def create(group, specs) -> None:
    """Every entry of ``specs`` created in ``group`` at once (:func:`offnadir.cube.layout.create_arrays`)."""
    create_arrays(group, specs)


def table_specs(tab, fmt: int) -> list:
    """The per-patch table (:func:`offnadir.change.dataset.table_dataset` without its ``image``
    coordinate; numpy data) as ``to_zarr(mode="a")`` wrote it, cells included: zarr's default codecs
    and chunking but where the table sets ``chunks`` (one chunk per image row); floats with NaN as
    ``_FillValue`` (xarray's default for floats), integers without one."""
    out = []
    for name, var in tab.variables.items():
        data = np.asarray(var.values)
        if data.dtype.kind not in "iuf" or len(var.dims) != data.ndim or \
                any(d not in ("image", "patch_id") for d in var.dims):  # never in a table: not reproduced here
            raise ValueError(f"table variable {name!r} ({data.dtype}, dims {var.dims}) has no direct layout")
        chunks = var.encoding.get("chunks")
        nodata = np.nan if data.dtype.kind == "f" else None
        v3_fill = nodata if nodata is not None else 0
        name, attrs, kwargs, _ = spec(name, var.dims, data.shape, "auto" if chunks is None else chunks, data.dtype,
                                      var.attrs, nodata, v3_fill, "auto", fmt == 3)
        out.append((name, attrs, kwargs, data))
    return out
