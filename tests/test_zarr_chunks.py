"""Cube tiles written chunk by chunk to their files (offnadir.zarr_chunks) give the store zarr-python
writes itself (the reference): the same chunk files, byte for byte, and the same values read back,
edge tiles and all-fill chunks included; what it cannot write goes through zarr."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import zarr
from synthetic import affine_rpc, box_scene, write_dsm, write_image

from offnadir import store
from offnadir import zarr_chunks as zc
from offnadir.cube.layout import create_store
from offnadir.pipeline import plan_cube


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    d = tmp_path_factory.mktemp("chunks")
    # 100 x 100 cells in 64-cell tiles: edge tiles of 36 cells; the image covers part of the grid
    # only, so some chunks hold nothing but the fill value
    dsm = write_dsm(d / "dsm.tif", box_scene(n=100, boxes=((30, 60, 30, 70, 25.0),)))
    a = write_image(d / "a.tif", affine_rpc(10.0, 60.0), rows=200, cols=200)
    b = write_image(d / "b.tif", affine_rpc(25.0, 250.0))
    plan = plan_cube(dsm, [a, b], chunk=64)
    # the regular cut (64 + 36 per axis), whatever make_plan's even-tile rule picks for this grid:
    # these tests need edge chunks that end at the array's end
    return dataclasses.replace(plan, tile=(64, 64))


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def test_tiles_written_as_chunk_files_equal_zarrs_own_writes(plan, tmp_path, monkeypatch):
    ref, new = tmp_path / "ref.zarr", tmp_path / "new.zarr"
    for p in (ref, new):
        create_store(p, plan, {}, zarr_format=2)
    for t in plan.tiles():
        assert store.write_tile(str(new), plan, t) == (t.ti, t.tj)
    used = []
    monkeypatch.setattr(zc, "write_tile_chunks", lambda *a: used.append(1) and False)
    for t in plan.tiles():
        store.write_tile(str(ref), plan, t)
    assert len(used) == len(plan.tiles())
    a, b = _files(ref), _files(new)
    assert sorted(a) == sorted(b)
    assert "visible/1.1.1" in a and "visible/0.1.1" not in a  # an edge chunk, and a chunk left out as all fill
    for name in a:
        assert a[name] == b[name], name
    ga, gb = zarr.open_group(str(ref), mode="r"), zarr.open_group(str(new), mode="r")
    for name in ("row", "col", "visible", "value", "dsm", store.DONE):
        np.testing.assert_array_equal(ga[name][...], gb[name][...], err_msg=name)
    assert store.done_tiles(new) == {(t.ti, t.tj) for t in plan.tiles()}


def test_what_it_cannot_write_goes_through_zarr(plan, tmp_path):
    v3 = tmp_path / "v3.zarr"
    create_store(v3, plan, {}, zarr_format=3)
    t = plan.tiles()[0]
    assert zc.write_tile_chunks(str(v3), t, {"dsm": np.zeros((64, 64), np.float32)}) is False
    store.write_tile(str(v3), plan, t)  # through zarr
    assert store.done_tiles(v3) == {(0, 0)}
    v2 = tmp_path / "v2.zarr"
    create_store(v2, plan, {}, zarr_format=2)
    meta = zc.array_meta(str(v2 / "dsm"))
    assert meta["chunks"] == (64, 64) and np.isnan(meta["fill"])
    assert zc.chunks_of(meta, (0, 0), (64, 64)) == [(0, 0)]
    assert zc.chunks_of(meta, (64, 64), (36, 36)) == [(1, 1)]  # an edge chunk ends at the array's end
    assert zc.chunks_of(meta, (32, 0), (64, 64)) is None  # not on chunk boundaries
    assert zc.chunks_of(meta, (0, 0), (36, 64)) is None  # a partial chunk inside the array
    assert zc.array_meta(str(v2 / "image")) is None  # strings: a filter (vlen-utf8)
    assert zc.array_meta(str(v3 / "dsm")) is None


def test_a_write_cut_short_leaves_the_old_chunk_whole(plan, tmp_path, monkeypatch):
    # a run killed while writing a chunk must not leave a truncated file: the resume reads the tile
    # flags, and a torn flag chunk made it fail ("error during blosc decompression" after SIGKILL)
    p = tmp_path / "s.zarr"
    create_store(p, plan, {}, zarr_format=2)
    meta = zc.array_meta(str(p / "dsm"))
    old = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    zc.write_region(str(p / "dsm"), meta, (0, 0), old)

    def killed(src, dst):
        raise KeyboardInterrupt  # the process stops between writing the new bytes and the rename

    monkeypatch.setattr(zc.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        zc.write_region(str(p / "dsm"), meta, (0, 0), old + 1)
    monkeypatch.undo()
    np.testing.assert_array_equal(zarr.open_group(str(p), mode="r")["dsm"][:64, :64], old)
    assert not [q.name for q in (p / "dsm").iterdir() if q.name.endswith(".partial")]
    zc.write_region(str(p / "dsm"), meta, (0, 0), old + 1)  # and the next write replaces it
    np.testing.assert_array_equal(zarr.open_group(str(p), mode="r")["dsm"][:64, :64], old + 1)


def _v2_arrays(root):
    """A v2 group with arrays as the change stage makes them: float (NaN fill), uint8 (fill 2),
    int64 (no fill value), bool; chunks that do not divide the shape (edge chunks)."""
    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    codec = store.compressors(2)
    specs = {"f": ((2, 70, 50), (1, 32, 32), np.float32, np.nan), "u": ((3, 70, 50), (1, 32, 32), np.uint8, 2),
             "i": ((70, 50), (32, 32), np.int64, None), "b": ((70, 50), (32, 32), bool, False)}
    rng = np.random.default_rng(0)
    for name, (shape, chunks, dtype, fill) in specs.items():
        a = g.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, compressors=codec)
        data = (rng.random(shape) * 200).astype(dtype)
        if dtype == np.float32:
            data[..., :10, :] = np.nan
        a[..., :40, :] = data[..., :40, :]  # rows 40.. never written: chunks missing or partly filled
    return g


KEYS = [(slice(None),), (0,), (-1, slice(5, 69), slice(0, 50)), (slice(None), slice(30, 33), slice(31, 50)),
        (1, 45, slice(None)), (slice(None), slice(40, 70)), (slice(None), slice(10, 10)), (slice(60, 70), 49)]


def test_chunk_array_reads_what_zarr_reads(tmp_path):
    g = _v2_arrays(tmp_path / "s.zarr")
    for name in ("f", "u", "i", "b"):
        a = zc.direct_array(str(tmp_path / "s.zarr"), name, lambda name=name: g[name])
        assert isinstance(a, zc.ChunkArray) and a.shape == g[name].shape and a.chunks == g[name].chunks
        for key in KEYS:
            key = key[:a.ndim]
            ref, got = np.asarray(g[name][key]), a[key]
            assert got.dtype == ref.dtype and got.shape == ref.shape, (name, key)
            np.testing.assert_array_equal(got, ref, err_msg=f"{name} {key}")
        assert zc.read_region(a.adir, a.meta, (slice(0, 10, 2),)) is None  # a step: zarr's
    # whole chunks (a tile's core) are decoded straight into the result: one written, one never written
    m = g.create_array("m", shape=(64, 64), chunks=(32, 32), dtype=np.float32, fill_value=np.nan,
                       compressors=store.compressors(2))
    m[:32, :32] = np.arange(32 * 32, dtype=np.float32).reshape(32, 32)
    a = zc.direct_array(str(tmp_path / "s.zarr"), "m", lambda: g["m"])
    for key in ((slice(0, 32), slice(0, 32)), (slice(32, 64), slice(0, 32)), (slice(0, 32), slice(32, 64))):
        got = a[key]
        assert got.flags.writeable and got.dtype == np.float32
        np.testing.assert_array_equal(got, m[key])


def test_chunk_array_writes_what_zarr_writes(tmp_path):
    ref, new = _v2_arrays(tmp_path / "ref.zarr"), _v2_arrays(tmp_path / "new.zarr")
    rng = np.random.default_rng(1)
    direct = []
    for name, key in (("f", (1, slice(32, 64), slice(0, 32))), ("f", (slice(None), slice(64, 70), slice(32, 50))),
                      ("u", (slice(None), slice(0, 32), slice(0, 50))), ("i", (slice(32, 64), slice(0, 32))),
                      ("f", (0, slice(3, 40), slice(0, 32))),  # part of a chunk: zarr's
                      ("u", (slice(None), slice(0, 32), slice(32, 50)))):
        a = zc.direct_array(str(tmp_path / "new.zarr"), name, lambda name=name: new[name])
        shape = np.asarray(ref[name][key]).shape
        val = rng.random(shape) * 100  # float64: cast to the array's dtype as zarr casts it
        if name == "u":
            val = np.full(shape, 2.0)  # all fill value: no chunk file, as zarr leaves it
        direct.append(zc.write_selection(a.adir, a.meta, key, val))
        a[key] = val  # a second write of the same: through the file again, or zarr
        ref[name][key] = val
    assert direct == [True, True, True, True, False, True]
    for name in ("f", "u", "i", "b"):
        np.testing.assert_array_equal(new[name][...], ref[name][...], err_msg=name)
    files = {p.name for p in (tmp_path / "new.zarr" / "u").iterdir()}
    assert files == {p.name for p in (tmp_path / "ref.zarr" / "u").iterdir()} and "0.0.0" not in files


def test_has_array_and_stores_it_leaves_to_zarr(plan, tmp_path):
    g = _v2_arrays(tmp_path / "s.zarr")
    g.create_group("sub")
    for name in ("f", "b", "sub", "nothing"):
        assert zc.has_array(str(tmp_path / "s.zarr"), name) == (name in set(g.array_keys())), name
    v3 = tmp_path / "v3.zarr"
    create_store(v3, plan, {}, zarr_format=3)
    g3 = zarr.open_group(str(v3), mode="r")
    assert zc.has_array(str(v3), "dsm") is None
    assert zc.direct_array(str(v3), "dsm", lambda: g3["dsm"]) is not None
    assert not isinstance(zc.direct_array(str(v3), "dsm", lambda: g3["dsm"]), zc.ChunkArray)
    v2 = tmp_path / "v2.zarr"
    create_store(v2, plan, {}, zarr_format=2)
    g2 = zarr.open_group(str(v2), mode="r")
    assert not isinstance(zc.direct_array(str(v2), "image", lambda: g2["image"]), zc.ChunkArray)  # text
