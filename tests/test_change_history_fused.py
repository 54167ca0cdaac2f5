"""The per-cell history written by the change stage's maps pass, tile by tile, equals what
:func:`offnadir.change.history.write_history` recomputes from the finished store: the same values
and the same array metadata (dtype, fill value, chunks, codecs, attributes), so a detect store and
an appended one hold the same history. Dates missing (the base's or a target's) go through the
same choice of images on both paths."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from offnadir.change import history as H
from offnadir.store import _quiet_zarr

CHUNK = 40  # 80^2 scene: four tiles


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """A cube store of a small two-date scene (no change stage), written once."""
    from distributed import Client

    from offnadir.config import validate
    from offnadir.pipeline import run_config
    from offnadir.simulate import simulate

    tmp = tmp_path_factory.mktemp("hist")
    s = simulate(tmp / "sim", seed=2, size=80)
    cfg = validate({"dsm": {"path": str(s.paths["dsm"])},
                    "images": [{"path": str(s.paths["base"]), "date": "2020-05-01"},
                               {"path": str(s.paths["target"]), "date": "2023-07-02"}],
                    "output": {"path": str(tmp / "cube.zarr")}, "tiling": {"chunk": CHUNK},
                    "change": {"enabled": False}}, base=".", source="test")
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        out = run_config(cfg, quiet=True, client=client)
    return tmp, out


def _arrays(path):
    import zarr

    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r", use_consolidated=False)
        return {k: (g[k][...], g[k].metadata.to_dict(), dict(g[k].attrs)) for k in H.NAMES if k in g}


def test_detect_writes_the_history_write_history_would(cube, tmp_path):
    from offnadir.change.stage import detect_store

    _, src = cube
    out = shutil.copytree(src, tmp_path / "d.zarr")
    detect_store(out, quiet=True)  # threaded scheduler, four tiles
    fused = _arrays(out)
    assert set(fused) == set(H.NAMES)
    H.write_history(out)  # recomputed whole from the change maps, replacing the arrays
    again = _arrays(out)
    for k in H.NAMES:
        np.testing.assert_array_equal(fused[k][0], again[k][0], err_msg=k)
        assert fused[k][1] == again[k][1], k  # dtype, shape, chunks, fill value, codecs
        assert fused[k][2] == again[k][2], k  # attributes (units, epoch, grid_mapping, dimensions)
    n = fused["n_changes"][0]
    assert n.dtype == np.uint16 and n.max() >= 1  # the scene has changes: the test can see a wrong map
    first = fused["first_change"][0]
    assert set(np.unique(first)) <= {H.DAY_FILL, int(np.datetime64("2023-07-02", "D").astype(np.int64))}


@pytest.mark.parametrize("dated", [(True, True, False, True), (False, True, True), (True, False)])
def test_tiles_equal_the_whole_map_with_undated_images(dated, caplog):
    """history_tile over tiles of a MemoryIO equals history_dataset on the whole map, with the
    same images left out (and the same warnings) when some have no date."""
    import xarray as xr

    from offnadir.change.tileio import MemoryIO, Window

    rng = np.random.default_rng(len(dated))
    n, ny, nx = len(dated), 30, 50
    change = rng.choice(np.array([0, 1, 2], np.uint8), size=(n, ny, nx), p=[0.5, 0.3, 0.2])
    times = np.array([np.datetime64(f"202{k}-0{k + 1}-1{k}", "ns") if d else np.datetime64("NaT", "ns")
                      for k, d in enumerate(dated)])
    names = [f"im{k}" for k in range(n)]
    ds = xr.Dataset({"change": (("image", "y", "x"), change)}, coords={"time": ("image", times), "image": names})
    caplog.clear()
    want = H.history_dataset(ds)
    warned = [r.getMessage() for r in caplog.records]
    caplog.clear()
    keep, days = H.dated_images(times, names)
    assert [r.getMessage() for r in caplog.records] == warned and (len(warned) > 0) == (not all(dated))
    arrays = {"change": change, **{k: np.zeros((ny, nx), want[k].dtype) for k in H.NAMES}}
    io = MemoryIO(arrays)
    for i0 in range(0, ny, 16):
        for j0 in range(0, nx, 16):
            H.history_tile(io, Window(i0, min(i0 + 16, ny), j0, min(j0 + 16, nx), ()), keep, days)
    for k in H.NAMES:
        np.testing.assert_array_equal(arrays[k], want[k].values, err_msg=k)
    if not dated[0]:  # no base date: nothing changes, nothing observed
        assert (arrays["n_changes"] == 0).all() and (arrays["last_observed"] == H.DAY_FILL).all()
    elif any(dated[1:]):  # a dated target: the random maps have steps
        assert (arrays["n_changes"] > 0).any()
    else:  # the base alone: observed, never changed
        assert (arrays["n_changes"] == 0).all() and (arrays["last_observed"] != H.DAY_FILL).any()
