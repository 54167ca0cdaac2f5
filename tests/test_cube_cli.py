"""The cube from the command line: a real dask cluster on loopback, configs, and bad input."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import rasterio
import rioxarray  # noqa: F401  (.rio on the stores read here: a run no longer imports it)
import xarray as xr
from synthetic import affine_rpc, box_scene, write_dsm, write_image

from offnadir.cli import main


@pytest.fixture
def scene(tmp_path):
    heights = box_scene(n=150, boxes=((30, 60, 30, 70, 25.0), (90, 130, 80, 110, 12.0)))
    dsm = write_dsm(tmp_path / "dsm.tif", heights)
    a = write_image(tmp_path / "a.tif", affine_rpc(10.0, 60.0), acquired="2021-06-01T10:00:00")
    b = write_image(tmp_path / "b.tif", affine_rpc(25.0, 250.0), acquired="2023-06-01T10:00:00")
    return tmp_path, dsm, a, b


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def loopback_cluster(tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    dask_bin = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask_bin + ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)]
    try:
        from distributed import Client

        deadline = time.time() + 60
        client = None
        while client is None:
            try:
                client = Client(addr, timeout="2s")
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        for k in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1", "--no-dashboard",
                 "--memory-limit", "2GiB", "--name", f"w{k}"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path))
        client.wait_for_workers(2, timeout=120)
        assert len(client.scheduler_info()["workers"]) == 2
        client.close()
        yield addr
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.cluster
def test_existing_cluster_gives_the_same_store_as_the_local_default(scene, loopback_cluster):
    tmp, dsm, a, b = scene
    common = ["coregister", "--dsm", str(dsm), "--image", str(a), "--image", str(b), "--chunk", "64", "--quiet"]
    assert main(common + ["-o", str(tmp / "local.zarr")]) == 0
    assert main(common + ["-o", str(tmp / "remote.zarr"), "--scheduler", loopback_cluster]) == 0
    loc = xr.open_zarr(tmp / "local.zarr").load()
    rem = xr.open_zarr(tmp / "remote.zarr").load()
    for name in ("row", "col", "visible", "value", "dsm"):
        np.testing.assert_array_equal(loc[name].values, rem[name].values, err_msg=name)
    assert (loc["visible"].values == 0).sum() > 100  # occlusion happened
    assert loc.rio.crs is not None and rem.rio.crs == loc.rio.crs
    assert (rem["tile_done"].values == 1).all()


def test_run_from_config_and_template(scene, capsys):
    tmp, dsm, a, b = scene
    assert main(["template-config"]) == 0
    template = capsys.readouterr().out
    assert "dsm:" in template and "images:" in template and "chunk: 1024" in template
    cfg = tmp / "job.yaml"
    cfg.write_text(f"dsm:\n  path: {dsm.name}\nimages:\n  - path: {a.name}\n  - path: {b.name}\n"
                   f"output:\n  path: out.zarr\ntiling:\n  chunk: 75\ncluster:\n  n_workers: 1\n")
    assert main(["run", str(cfg), "--quiet"]) == 0
    ds = xr.open_zarr(tmp / "out.zarr")
    assert ds["visible"].shape == (2, 150, 150)
    assert ds["visible"].encoding["chunks"] == (1, 75, 75)
    assert "config" in ds.attrs and "offnadir" in ds.attrs["software"]
    assert ds.attrs["proj:wkt2"] and ds.attrs["spatial:transform"][0] == 0.5
    assert ds.rio.crs is not None


# ----------------------------------------------------------------------------- bad input
def _fails(argv, capsys, *needles, out=None):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    if out is not None:
        assert not out.exists(), "a failed run left an output behind"
    return err


def test_dsm_without_crs(scene, capsys):
    tmp, dsm, a, b = scene
    bad = tmp / "nocrs.tif"
    with rasterio.open(dsm) as src:
        prof = src.profile
        data = src.read()
    prof.pop("crs")
    with rasterio.open(bad, "w", **prof) as dst:
        dst.write(data)
    _fails(["coregister", "--dsm", str(bad), "--image", str(a), "-o", str(tmp / "o.zarr"), "--quiet"], capsys,
           "nocrs.tif", "no coordinate reference system", "gdal_edit", out=tmp / "o.zarr")


def test_dsm_all_nodata(scene, capsys):
    tmp, dsm, a, b = scene
    bad = write_dsm(tmp / "empty.tif", np.full((40, 40), np.nan))
    _fails(["coregister", "--dsm", str(bad), "--image", str(a), "-o", str(tmp / "o.zarr"), "--quiet",
            "--workers", "1"], capsys, "empty.tif", "no valid height", out=tmp / "o.zarr")


def test_image_not_overlapping_the_dsm(scene, capsys):
    tmp, dsm, a, b = scene
    far = tmp / "far.tif"
    with rasterio.open(dsm) as src:
        prof = src.profile
        data = src.read()
    prof["transform"] = prof["transform"] * rasterio.Affine.translation(40000, 0)
    with rasterio.open(far, "w", **prof) as dst:
        dst.write(data)
        dst.update_tags(VERTICAL_DATUM="ellipsoid")
    _fails(["coregister", "--dsm", str(far), "--image", str(a), "-o", str(tmp / "o.zarr"), "--quiet",
            "--workers", "1"], capsys, "a.tif", "does not overlap the DSM", out=tmp / "o.zarr")


def test_unknown_config_key_suggests_the_right_one(scene, capsys):
    tmp, dsm, a, b = scene
    cfg = tmp / "job.yaml"
    cfg.write_text(f"dsm:\n  path: {dsm}\nimages:\n  - path: {a}\noutput:\n  path: {tmp / 'o.zarr'}\n"
                   "tiling:\n  chunck: 256\n")
    _fails(["run", str(cfg)], capsys, "tiling.chunck", "Did you mean 'chunk'", out=tmp / "o.zarr")
    cfg.write_text(f"dsm:\n  path: {dsm}\nimage:\n  - path: {a}\n")
    _fails(["run", str(cfg)], capsys, "unknown section 'image'", "Did you mean 'images'")


def test_existing_output_needs_overwrite(scene, capsys):
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    _fails(["coregister", "--dsm", str(dsm), "--image", str(a), "-o", str(out), "--quiet"], capsys,
           "already exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "precious"
    # --overwrite replaces only what offnadir wrote (tests/test_output_safety.py has the rest)
    _fails(["coregister", "--dsm", str(dsm), "--image", str(a), "-o", str(out), "--quiet", "--overwrite"], capsys,
           "offnadir did not write")
    assert (out / "keep.txt").read_text() == "precious"
    out = tmp / "o2.zarr"
    assert main(["coregister", "--dsm", str(dsm), "--image", str(a), "-o", str(out), "--quiet", "--workers", "1"]) == 0
    assert main(["coregister", "--dsm", str(dsm), "--image", str(a), "-o", str(out), "--quiet", "--overwrite",
                 "--workers", "1"]) == 0
    assert xr.open_zarr(out)["visible"].shape == (1, 150, 150)


def test_missing_image_file(scene, capsys):
    tmp, dsm, a, b = scene
    _fails(["coregister", "--dsm", str(dsm), "--image", str(tmp / "nope.tif"), "-o", str(tmp / "o.zarr")],
           capsys, "nope.tif", "not found", out=tmp / "o.zarr")


def test_resume_skips_written_tiles(scene):
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    args = ["coregister", "--dsm", str(dsm), "--image", str(a), "-o", str(out), "--quiet", "--chunk", "50",
            "--workers", "1"]
    assert main(args) == 0
    full = xr.open_zarr(out).load()
    # simulate an interruption: forget two tiles and blank their data
    import zarr

    g = zarr.open_group(str(out), mode="r+")
    g["tile_done"][0, 1] = 0
    g["tile_done"][2, 2] = 0
    g["visible"][:, 0:50, 50:100] = 2
    g["visible"][:, 100:150, 100:150] = 2
    g.attrs["offnadir:status"] = "incomplete"
    assert main(args + ["--resume"]) == 0
    again = xr.open_zarr(out).load()
    np.testing.assert_array_equal(again["visible"].values, full["visible"].values)
    assert (again["tile_done"].values == 1).all()
    shutil.rmtree(out)
