"""StoreIO's per-run chunk cache returns exactly what zarr returns, and never an earlier run's data."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from offnadir.change.tileio import StoreIO


@pytest.fixture()
def store(tmp_path):
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    rng = np.random.default_rng(0)
    v = rng.normal(size=(2, 3, 37, 29)).astype(np.float32)
    g.create_array("value", shape=v.shape, chunks=(1, 3, 10, 8), dtype="float32")[...] = v
    g.create_array("patch", shape=(37, 29), chunks=(10, 8), dtype="int64")[...] = 0
    return tmp_path / "s.zarr", v


@pytest.mark.parametrize("key", [(slice(None), slice(None), slice(3, 25), slice(0, 29)),
                                 (0, slice(None), slice(9, 10), slice(7, 17)),
                                 (1, 2, slice(30, 37), slice(28, 29)),
                                 (slice(None), slice(1, 2), slice(0, 0), slice(None)),
                                 (-1, slice(None)),
                                 (slice(None), slice(None), slice(20, 80), slice(-5, None))])
def test_cached_reads_equal_zarr_reads(store, key):
    path, v = store
    io = StoreIO(path, run="a")
    for _ in range(2):  # the second read comes from the cache
        got = io.read("value", key)
        assert got.dtype == v.dtype
        np.testing.assert_array_equal(got, v[key])


def test_a_new_run_reads_the_store_again_and_cached_arrays_refuse_writes(store):
    path, v = store
    a = StoreIO(path, run="run1")
    np.testing.assert_array_equal(a.read("value", (0, 0)), v[0, 0])
    zarr.open_group(str(path))["value"][0, 0] = 7.0  # another stage rewrites the cube
    np.testing.assert_array_equal(StoreIO(path, run="run2").read("value", (0, 0)), 7.0)
    np.testing.assert_array_equal(StoreIO(path).read("value", (0, 0)), 7.0)  # no token: no cache
    with pytest.raises(ValueError, match="read-only"):
        a.write("value", (0, 0), v[0, 0])
    a.write("patch", (slice(0, 2), slice(0, 2)), np.ones((2, 2), np.int64))  # the stage's own arrays
    assert a.read("patch", (slice(0, 3), slice(0, 3))).sum() == 4


def test_forget_drops_a_runs_chunks_only(store):
    from offnadir.change import tileio

    path, v = store
    StoreIO(path, run="keep").read("value", (0, 0))
    StoreIO(path, run="drop").read("value", (slice(None), 1))
    assert tileio.forget("drop") == 2 * 4 * 4  # both images' chunks of band-row 1 (4 x 4 chunks each)
    assert tileio.forget("drop") == 0
    assert tileio.forget("keep") == 4 * 4


def test_cached_stage_arrays_read_the_same_and_refuse_writes(store):
    """``StoreIO.cached``: the stage's own arrays, once final, read through the chunk cache (the same
    values as zarr's), and writes to them are refused; without a run token nothing is cached."""
    from offnadir.change.tileio import MemoryIO

    path, v = store
    lab = np.arange(37 * 29, dtype=np.int64).reshape(37, 29)
    StoreIO(path, run="r").write("patch", (slice(None), slice(None)), lab)
    io = StoreIO(path, run="r").cached(("patch",))
    for key in [(slice(3, 25), slice(0, 29)), (slice(9, 10), slice(7, 17)), (slice(None), slice(None))]:
        np.testing.assert_array_equal(io.read("patch", key), lab[key])
        np.testing.assert_array_equal(io.read("patch", key), lab[key])  # from the cache
    with pytest.raises(ValueError, match="read-only"):
        io.write("patch", (slice(0, 2), slice(0, 2)), np.zeros((2, 2), np.int64))
    assert StoreIO(path).cached(("patch",)).frozen == frozenset()  # no run token: no cache, writes allowed
    mem = MemoryIO({"patch": lab})
    assert mem.cached(("patch",)) is mem
