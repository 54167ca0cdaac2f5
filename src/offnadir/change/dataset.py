"""xarray glue of change detection: variables, attributes, the per-patch table, CSV export.
Metadata only.

Each variable's ``fill`` is what its cells hold before a tile writes them, ``nodata`` (default: the
fill) its CF ``_FillValue``, which is also the Zarr fill value and so GDAL's nodata; ``None``: every
value is data (``elevated``: 0 is ground). ``change`` keeps its three codes (0 no change, 1 change,
2 unobservable) and declares 2 as ``_FillValue``: CF readers (``xr.open_zarr``) mask the cells that
could not be observed, GDAL and ``rio.to_raster`` write them as nodata, and offnadir's own readers
open the store with the codes (:func:`offnadir.store.open_dataset`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

CHANGE_VARS = {
    "elevated": {"dims": ("y", "x"), "dtype": np.uint8, "fill": 0, "nodata": None,
                 "attrs": {"long_name": "elevated cell (height above the local ground > elevated_height)",
                           "flag_values": [0, 1], "flag_meanings": "ground elevated"}},
    "patch": {"dims": ("y", "x"), "dtype": np.int64, "fill": 0,
              "attrs": {"long_name": "patch ID (base image over-segmentation; 1 + smallest global linear index "
                                     "of its cells)", "missing_meaning": "0: hidden/outside/nodata in the base",
                        "units": "1"}},
    "illumination": {"dims": ("image", "y", "x"), "dtype": np.uint8, "fill": 255,
                     "attrs": {"long_name": "direct sun on the cell top at the acquisition time, relative to flat "
                                            "ground x 100 (cos incidence / sin sun elevation); 0 also within the "
                                            "sun's uncertainty of a predicted shadow (offnadir.change.shadow)",
                               "flag_values": [0, 255], "flag_meanings": "no_direct_sun unknown",
                               "valid_range": [1, 254], "scale_factor_of_values": 0.01}},
    "change": {"dims": ("image", "y", "x"), "dtype": np.uint8, "fill": 2,
               "attrs": {"long_name": "change against the base image", "flag_values": [0, 1, 2],
                         "flag_meanings": "no_change change unobservable_hidden_or_outside_in_either_image"}},
    "score": {"dims": ("image", "y", "x"), "dtype": np.float32, "fill": np.nan,
              "attrs": {"long_name": "change confidence 0-1 (= probability; change where >= 0.5)", "units": "1"}},
    "evidence": {"dims": ("image", "y", "x"), "dtype": np.float32, "fill": np.nan,
                 "attrs": {"long_name": "cross-date structural evidence: census code disagreement over chance "
                                        "(1 - kappa), smallest over the parallax search; ~1 unrelated, lower agree",
                           "units": "1"}},
    "evidence_local": {"dims": ("image", "y", "x"), "dtype": np.float32, "fill": np.nan,
                       "attrs": {"long_name": "ground cells: the census evidence over the fine window (a quarter "
                                              "as wide), which localises a change inside the wide window "
                                              "(offnadir.change.localise)", "units": "1"}},
    "probability": {"dims": ("image", "y", "x"), "dtype": np.float32, "fill": np.nan,
                    "attrs": {"long_name": "change probability 0-1 (per-run calibration of the evidence, and dh "
                                           "where measured; change where >= 0.5)", "valid_range": [0.0, 1.0],
                              "units": "1"}},
    "change_ortho": {"dims": ("image", "y", "x"), "dtype": np.uint8, "fill": 2,
                     "attrs": {"long_name": "ortho baseline: per-cell change without occlusion handling",
                               "flag_values": [0, 1, 2],
                               "flag_meanings": "no_change change outside_either_image"}},
    "score_ortho": {"dims": ("image", "y", "x"), "dtype": np.float32, "fill": np.nan,
                    "attrs": {"long_name": "ortho baseline change confidence 0-1", "units": "1"}},
}

TABLE_VARS = {
    # name: (dims, dtype, long_name)
    "patch_n_cells": (("patch_id",), np.int32, "cells of the patch"),
    "patch_elevated": (("patch_id",), np.uint8, "1: elevated (roof/tree) patch, 0: ground patch"),
    "patch_n_used": (("image", "patch_id"), np.int32, "cells compared (visible in both, same illumination)"),
    "patch_n_illumination": (("image", "patch_id"), np.int32, "cells visible in both but not compared by the "
                                                                "patch criteria: no direct sun at either date"),
    "patch_spectral": (("image", "patch_id"), np.float32, "spectral criterion: RMS shift of the patch mean "
                                                           "MAD variates, in robust noise sigmas"),
    "patch_spectral_median": (("image", "patch_id"), np.float32, "spectral: patch median of the per-cell MAD "
                                                                  "magnitude, robust noise sigmas"),
    "patch_spectral_score": (("image", "patch_id"), np.float32, "spectral criterion score 0-1"),
    "patch_structural": (("image", "patch_id"), np.float32, "structural criterion: Fisher-z gain of the best "
                                                             "parallax-shifted correlation"),
    "patch_structural_score": (("image", "patch_id"), np.float32, "structural criterion score 0-1"),
    "patch_corr0": (("image", "patch_id"), np.float32, "correlation of the first canonical variates at the "
                                                        "DSM-predicted position"),
    "patch_corr_ref": (("image", "patch_id"), np.float32, "reference correlation of the structural criterion "
                                                           "(elevated: best along the parallax direction; ground: "
                                                           "expected from texture and noise)"),
    "patch_corr_expected": (("image", "patch_id"), np.float32, "ground patches: correlation an unchanged patch of "
                                                                "this texture would show (reported, not used)"),
    "patch_shift": (("image", "patch_id"), np.float32, "offset (metres along the target azimuth) of the best "
                                                        "correlation"),
    "patch_outline": (("image", "patch_id"), np.float32, "outline criterion: min(log2 rim_base, -log2 rim_target), "
                                                          "the near-sensor rim there in the base, gone in the target"),
    "patch_outline_score": (("image", "patch_id"), np.float32, "outline criterion score 0-1"),
    "patch_rim_base": (("image", "patch_id"), np.float32, "base: first step inside the roof's near-sensor outline "
                                                           "over the roof's mean step"),
    "patch_rim_target": (("image", "patch_id"), np.float32, "target: first step inside the roof's near-sensor "
                                                             "outline over the roof's mean step"),
    "patch_ndvi_base": (("image", "patch_id"), np.float32, "mean NDVI of the compared cells, base"),
    "patch_ndvi_target": (("image", "patch_id"), np.float32, "mean NDVI of the compared cells, target"),
    "patch_vegetation": (("image", "patch_id"), np.uint8, "1: vegetation at both dates (spectral silenced)"),
    "patch_probability": (("image", "patch_id"), np.float32, "change probability of the patch: mean of its "
                                                              "observable cells' calibrated probability"),
    "patch_change": (("image", "patch_id"), np.uint8, "decision of the patch criteria: 1 change"),
    "patch_score": (("image", "patch_id"), np.float32, "decision score 0-1"),
}


#: table variable -> key of decide()'s per-target output
TABLE_KEYS = {"patch_n_used": "used", "patch_n_illumination": "illum", "patch_spectral": "spectral",
              "patch_spectral_median": "spectral_median", "patch_spectral_score": "spectral_score",
              "patch_structural": "structural", "patch_structural_score": "structural_score",
              "patch_corr0": "corr0", "patch_corr_ref": "corr_ref", "patch_corr_expected": "corr_expected",
              "patch_shift": "shift_cells", "patch_outline": "outline", "patch_outline_score": "outline_score",
              "patch_rim_base": "rim_base", "patch_rim_target": "rim_target", "patch_ndvi_base": "ndvi_base", "patch_ndvi_target": "ndvi_target",
              "patch_vegetation": "vegetation", "patch_probability": "probability", "patch_change": "change", "patch_score": "score"}


def layout(cube: xr.Dataset, names, chunks_yx) -> xr.Dataset:
    """Lazy placeholders of the change variables with the cube's grid, chunks and CRS."""
    import dask.array as da

    n_img = cube.sizes["image"]
    cy, cx = chunks_yx
    data = {}
    for name in names:
        spec = CHANGE_VARS[name]
        if spec["dims"] == ("y", "x"):
            arr = da.full((sum(cy), sum(cx)), spec["fill"], chunks=(cy, cx), dtype=spec["dtype"])
        else:
            arr = da.full((n_img, sum(cy), sum(cx)), spec["fill"], chunks=((1,) * n_img, cy, cx), dtype=spec["dtype"])
        attrs = dict(spec["attrs"])
        if "spatial_ref" in cube.coords or "spatial_ref" in cube:
            attrs["grid_mapping"] = "spatial_ref"
        data[name] = (spec["dims"], arr, attrs)
    coords = {k: cube.coords[k] for k in ("x", "y", "image") if k in cube.coords}
    return xr.Dataset(data, coords=coords)


def table_dataset(ids, image_names, per_target: dict, static: dict, cell: float) -> xr.Dataset:
    """The per-patch table: ``static`` name -> (n,) arrays; ``per_target`` t -> decide() output dict
    plus "used" and "illum"."""
    n_img = len(image_names)
    n = len(ids)
    data = {}
    for name, (dims, dtype, long_name) in TABLE_VARS.items():
        if dims == ("patch_id",):
            v = static.get(name)
            if v is None:
                continue
            data[name] = (dims, np.asarray(v).astype(dtype), {"long_name": long_name})
            continue
        fill = 0 if np.issubdtype(dtype, np.integer) else np.nan
        arr = np.full((n_img, n), fill, dtype=dtype)
        have = False
        for t, d in per_target.items():
            key = TABLE_KEYS[name]
            if key not in d or d[key] is None:
                continue
            v = np.asarray(d[key], np.float64)
            if key == "shift_cells":
                v = v * cell
            arr[t] = np.where(np.isfinite(v), v, fill).astype(dtype) if fill == 0 else v.astype(dtype)
            have = True
        if have:
            data[name] = (dims, arr, {"long_name": long_name})
    ds = xr.Dataset(data, coords={"patch_id": ("patch_id", np.asarray(ids, np.int64)),
                                  "image": ("image", np.asarray(image_names, dtype=object))})
    ds["patch_id"].attrs["long_name"] = "patch ID (as in the patch map)"
    for name in ds.data_vars:  # one chunk per image: `offnadir append` adds a row without touching earlier ones
        if ds[name].dims == ("image", "patch_id"):
            ds[name].encoding["chunks"] = (1, max(n, 1))
    return ds


def table_to_csv(table: xr.Dataset, path, base_index: int = 0) -> None:
    """One row per (patch, target image)."""
    import csv

    names = [str(v) for v in table["image"].values]
    cols = [k for k in TABLE_VARS if k in table]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patch_id", "image"] + [c.removeprefix("patch_") for c in cols])
        ids = table["patch_id"].values
        arrays = {c: table[c].values for c in cols}
        for t, name in enumerate(names):
            if t == base_index:
                continue
            for k in range(len(ids)):
                row = [int(ids[k]), name]
                for c in cols:
                    a = arrays[c]
                    v = a[k] if a.ndim == 1 else a[t, k]
                    row.append(_fmt(v))
                w.writerow(row)


def _fmt(v):
    if isinstance(v, (np.floating, float)):
        return "" if not np.isfinite(v) else f"{float(v):.6g}"
    return str(int(v))
