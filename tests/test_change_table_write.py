"""The patch table written in two parts (the columns that do not need the maps pass while its tasks
run, then ``patch_probability``: offnadir.change.stage._write_table) gives the store one write gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

from offnadir.change.stage import _write_table


def _table(n=7):
    rng = np.random.default_rng(0)
    ds = xr.Dataset({"patch_n_cells": ("patch_id", rng.integers(1, 99, n).astype(np.int32), {"long_name": "cells"}),
                     "patch_score": (("image", "patch_id"), rng.random((2, n)).astype(np.float32), {"long_name": "s"}),
                     "patch_probability": (("image", "patch_id"), rng.random((2, n)).astype(np.float32),
                                           {"long_name": "p"})},
                    coords={"patch_id": ("patch_id", np.arange(1, n + 1, dtype=np.int64)),
                            "image": ("image", np.array(["a", "b"], dtype=object))})
    for name in ("patch_score", "patch_probability"):
        ds[name].encoding["chunks"] = (1, n)
    return ds


def _store(path, fmt):
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt, attributes={"kept": 1})
    g.create_array("patch_old", shape=(3,), dtype=np.int32)  # an earlier run's table: removed
    return path


def _files(root):
    return {str(f.relative_to(root)): (json.loads(f.read_text()) if f.name in (".zarray", ".zattrs", ".zgroup",
                                                                                 "zarr.json") else f.read_bytes())
            for f in sorted(root.rglob("*")) if f.is_file()}


@pytest.mark.parametrize("fmt", [2, 3])
def test_table_in_two_parts_is_the_table_in_one(tmp_path, fmt):
    tab = _table()
    one, two = _store(tmp_path / "one.zarr", fmt), _store(tmp_path / "two.zarr", fmt)
    assert set(_write_table(one, fmt, tab)) == {"patch_n_cells", "patch_score", "patch_probability"}
    first = _write_table(two, fmt, tab.drop_vars("patch_probability"))
    assert set(first) == {"patch_n_cells", "patch_score"}
    assert _write_table(two, fmt, tab, written=first) == ("patch_probability",)
    a, b = _files(one), _files(two)
    assert a.keys() == b.keys() and not any("patch_old" in k for k in a)
    for k in a:
        assert a[k] == b[k], k
    back = xr.open_zarr(str(two), consolidated=False)
    np.testing.assert_array_equal(back["patch_probability"].values, tab["patch_probability"].values)
    assert back.attrs["kept"] == 1
