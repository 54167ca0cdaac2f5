"""Rasters kept open per thread (offnadir.io.open_files) and the cube tile's geometry-only mode."""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_origin

from offnadir.io import open_files
from offnadir.io.open_files import reading, session


def _write(path, value, shape=(40, 50), count=2, compress="deflate"):
    data = (np.arange(count * shape[0] * shape[1]).reshape(count, *shape) % 1000 + value).astype(np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no georeferencing: not needed here
        with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=count, dtype="uint16",
                           compress=compress, blockysize=1) as ds:
            ds.write(data)
    return data


@pytest.fixture(autouse=True)
def _fresh_cache():
    open_files.close_all()
    yield
    open_files.close_all()


def test_a_file_stays_open_in_a_session_and_serves_the_same_pixels(tmp_path):
    p = str(tmp_path / "a.tif")
    data = _write(p, 0)
    with session():
        with reading(p) as ds1:
            a = ds1.read()
        with session():   # nested: only the outermost closes
            with reading(p) as ds2:
                b = ds2.read(window=((5, 9), (3, 20)))
        assert ds1 is ds2 and not ds2.closed
    assert ds2.closed and not open_files._cache()
    np.testing.assert_array_equal(a, data)
    np.testing.assert_array_equal(b, data[:, 5:9, 3:20])


def test_outside_a_session_every_read_opens_and_closes(tmp_path):
    p = str(tmp_path / "a.tif")
    data = _write(p, 1)
    with reading(p) as ds1:
        np.testing.assert_array_equal(ds1.read(), data)
    with reading(p) as ds2:
        pass
    assert ds1.closed and ds2.closed and ds1 is not ds2 and not open_files._cache()


def test_a_rewritten_file_is_opened_afresh(tmp_path):
    p = str(tmp_path / "a.tif")
    _write(p, 0)
    with session():
        with reading(p) as ds1:
            ds1.read()
        # same path, same size, other pixels: the stamp (inode, size, mtime) tells them apart
        tmp = str(tmp_path / "b.tif")
        new = _write(tmp, 7)
        os.replace(tmp, p)
        with reading(p) as ds2:
            got = ds2.read()
        assert ds2 is not ds1 and ds1.closed and not ds2.closed
    np.testing.assert_array_equal(got, new)


def test_threads_never_share_a_handle(tmp_path):
    p = str(tmp_path / "a.tif")
    data = _write(p, 3)
    seen, errors = [], []

    def work():
        try:
            with session(), reading(p) as ds:
                seen.append(id(ds))
                np.testing.assert_array_equal(ds.read(), data)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(2)]
    with session(), reading(p) as mine:
        mine_id = id(mine)
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not mine.closed   # the other threads' sessions closed their own handles only
    assert not errors and mine_id not in seen


def test_at_most_max_open_files_per_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(open_files, "MAX_OPEN", 2)
    handles = []
    with session():
        for k in range(3):
            p = str(tmp_path / f"{k}.tif")
            _write(p, k)
            with reading(p) as ds:
                handles.append(ds)
        assert handles[0].closed and not handles[1].closed and not handles[2].closed


def test_a_failed_read_drops_the_handle(tmp_path):
    p = str(tmp_path / "a.tif")
    _write(p, 0)
    with session():
        with pytest.raises(ValueError), reading(p) as ds1:
            raise ValueError("read failed")
        assert ds1.closed
        with reading(p) as ds2:
            assert ds2 is not ds1 and ds2.read().shape == (2, 40, 50)


def test_gdal_virtual_paths_are_not_kept(tmp_path):
    data = np.ones((1, 8, 8), np.uint8)
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                      transform=from_origin(0, 8, 1, 1)) as w:
            w.write(data)
        with session(), reading(mem.name) as ds:
            np.testing.assert_array_equal(ds.read(), data)
            assert not open_files._cache()
        assert ds.closed


def test_geometry_only_tile_equals_the_full_tile(tmp_path):
    """compute_tile(values=False, ground=True): the same geometry fields as the full tile, no
    values, and the ground coordinates of lonlat_block (what the tie-point blocks use)."""
    from synthetic import affine_rpc, box_scene, write_dsm, write_image

    from offnadir.cube.plan import Tile
    from offnadir.cube.tile import compute_tile, lonlat_block
    from offnadir.pipeline import plan_cube

    dsm = write_dsm(tmp_path / "dsm.tif", box_scene(n=110, boxes=((30, 60, 70, 95, 25.0),)))
    images = [write_image(tmp_path / f"img{k}.tif", affine_rpc(th, ph, rows=300, cols=300), 300, 300)
              for k, (th, ph) in enumerate(((10.0, 30.0), (28.0, 250.0)))]
    plan = plan_cube(dsm, images, chunk=64)
    t = Tile(0, 1, 0, 64, 64, 110)
    full = compute_tile(plan, t)
    geo = compute_tile(plan, t, values=False, ground=True)
    assert "value" not in geo and np.isfinite(full["value"]).any()
    for name in ("row", "col", "visible", "dsm"):
        np.testing.assert_array_equal(geo[name], full[name], err_msg=name)
    lon, lat = lonlat_block(plan, t.i0, t.i1, t.j0, t.j1)
    np.testing.assert_array_equal(geo["lon"], lon)
    np.testing.assert_array_equal(geo["lat"], lat)
