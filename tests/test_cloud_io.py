"""Cloud-style access on loopback (issue 9, build item 5): images as COGs read over HTTP range
requests from a local server, and the result store on an S3 API (moto's server) through fsspec/s3fs.
Both give the same store, cell for cell, as the same run on local files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from offnadir import store as st
from offnadir.cli import main

MAPS = ("visible", "row", "col", "value", "dsm", "change", "probability", "patch")


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as c, Client(c):
        yield c.scheduler_address


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A simulated scene whose images are COGs in a folder served over HTTP on 127.0.0.1, the
    target's RPC also as a sidecar text file."""
    import rasterio.shutil

    from offnadir.simulate import simulate

    d = tmp_path_factory.mktemp("cloud")
    sim = simulate(d / "sim", seed=5, size=64, base_view=(5.0, 270.0), target_view=(25.0, 90.0))
    www = d / "www"
    www.mkdir()
    for name in ("base", "target"):
        rasterio.shutil.copy(sim.paths[name], www / f"{name}.tif", driver="COG", BLOCKSIZE=256)
        with rasterio.open(www / f"{name}.tif") as src:
            assert src.tags(ns="RPC"), "the COG driver must keep the RPC metadata"
            rpc = src.tags(ns="RPC")
    lines = []
    for k, v in rpc.items():  # GDAL's RPC text: 20-term polynomials one coefficient per line
        parts = v.split()
        lines += [f"{k}_{i + 1}: {p}" for i, p in enumerate(parts)] if len(parts) == 20 else [f"{k}: {v}"]
    (www / "target_rpc.txt").write_text("\n".join(lines) + "\n")
    log = d / "requests.jsonl"
    log.touch()
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("range_server.py")), str(www), str(log)],
                              stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        yield {"sim": sim, "www": www, "url": f"http://127.0.0.1:{port}", "log": log}
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()


def _detect(dsm, base, target, out, cluster, target_model):
    argv = ["detect", "--dsm", str(dsm), "--base", str(base), "--target", str(target), "--model", "none",
            "--model", str(target_model), "-o", str(out), "--chunk", "64", "--scheduler", cluster, "--quiet"]
    assert main(argv) == 0


@pytest.fixture(scope="module")
def local(served, cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "local.zarr"
    www = served["www"]
    _detect(served["sim"].paths["dsm"], www / "base.tif", www / "target.tif", out, cluster, www / "target_rpc.txt")
    return out


def _same_maps(got, want):
    g, w = st.open_dataset(got).load(), st.open_dataset(want).load()
    for name in MAPS:
        np.testing.assert_array_equal(g[name].values, w[name].values, err_msg=name)
    assert list(g["image"].values) == list(w["image"].values)
    np.testing.assert_array_equal(g["time"].values, w["time"].values)


def test_images_over_http_range_requests_give_the_local_store(served, local, cluster, tmp_path):
    url = served["url"]
    served["log"].write_text("")
    out = tmp_path / "http.zarr"
    _detect(served["sim"].paths["dsm"], f"{url}/base.tif", f"{url}/target.tif", out, cluster,
            f"{url}/target_rpc.txt")
    _same_maps(out, local)
    log = [json.loads(line) for line in served["log"].read_text().splitlines()]
    tif_gets = [(p, r) for m, p, r in log if m == "GET" and p.endswith(".tif")]
    assert tif_gets, "the images were not read from the server"
    assert all(r is not None for _, r in tif_gets), f"whole-file downloads: {[p for p, r in tif_gets if r is None]}"
    for name in ("base", "target"):
        assert any(p == f"/{name}.tif" for p, _ in tif_gets), name
    # the sidecar model was fetched; the image names are the URL's file stems
    assert any(p == "/target_rpc.txt" and m == "GET" for m, p, _ in log)
    assert list(st.open_dataset(out)["image"].values) == ["base", "target"]
    # the sun of the images' own tags, read over HTTP as from the local files (not estimated)
    suns = json.loads(st.open_dataset(out).attrs["change_sun"])
    assert [s["source"] for s in suns] == ["metadata", "metadata"], suns
    assert suns[0]["detail"] == "base.tif tag SUN_AZIMUTH_DEG/SUN_ELEVATION_DEG"


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server, a process of its own on 127.0.0.1, with a bucket; fsspec/s3fs and zarr reach it
    through the usual AWS environment variables. Not moto's in-process threaded server: the run's worker
    threads hold the GIL in long kernels, and one CI run hung with that server's request thread never
    started (the same reason the HTTP range server runs in its own process)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    import socket
    import time
    import urllib.error
    import urllib.request

    import fsspec

    with socket.socket() as sock:  # a free port on loopback for the server to bind
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):  # up to 30 s for the server to answer
            if server.poll() is not None:
                pytest.fail(f"moto's server exited with code {server.returncode} before answering on {url}")
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except urllib.error.HTTPError:  # an HTTP answer, whatever its status: the server is up
                break
            except OSError:
                time.sleep(0.1)
        else:
            pytest.fail(f"moto's server did not answer on {url} within 30 s")
        with pytest.MonkeyPatch.context() as mp:
            for k, v in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test",
                         "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
                mp.setenv(k, v)
            fs = fsspec.filesystem("s3", skip_instance_cache=True)
            fs.mkdir("bucket")
            try:
                yield fs
            finally:
                fsspec.filesystem("s3").clear_instance_cache()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_store_on_s3_equals_local_and_evaluate_export_read_it(served, local, cluster, s3, tmp_path, capsys):
    www, sim = served["www"], served["sim"]
    url = "s3://bucket/runs/out.zarr"
    _detect(sim.paths["dsm"], www / "base.tif", www / "target.tif", url, cluster, www / "target_rpc.txt")
    assert s3.exists("bucket/runs/out.zarr/.zgroup") and st.zarr_format(url) == 2
    assert st.status(url) == st.COMPLETE
    assert not s3.exists("bucket/runs/.out.zarr.offnadir-lock"), "the lock object must go with the run"
    _same_maps(url, local)
    # evaluate reads the S3 store: the same figures as for the local one
    truth = str(sim.paths["truth_change"])
    capsys.readouterr()
    assert main(["evaluate", url, truth, "--json"]) == 0
    remote_rep = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(local), truth, "--json"]) == 0
    local_rep = json.loads(capsys.readouterr().out)
    for k in ("store", "path", "source"):
        remote_rep.pop(k, None), local_rep.pop(k, None)
    assert remote_rep == local_rep
    # export reads it too: COGs with the local store's values
    assert main(["export", url, "--to", "cog", "-o", str(tmp_path / "cog"), "--variable", "change"]) == 0
    with rasterio.open(tmp_path / "cog" / "change_target.tif") as src:
        assert src.nodata == 2
        np.testing.assert_array_equal(src.read(1), st.open_dataset(local)["change"].isel(image=1).values)
    # a second run on the same output is refused, then --overwrite replaces the store
    capsys.readouterr()
    assert main(["detect", "--dsm", str(sim.paths["dsm"]), "--base", str(www / "base.tif"), "--target",
                 str(www / "target.tif"), "-o", url, "--scheduler", cluster, "--quiet"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_s3_lock_is_exclusive_and_names_its_holder(s3):
    from offnadir.errors import OutputExistsError
    from offnadir.outputs import OutputLock, is_locked

    url = "s3://bucket/locked.zarr"
    lock = OutputLock(url).acquire()
    try:
        assert is_locked(url)
        info = json.loads(s3.cat_file("bucket/.locked.zarr.offnadir-lock"))
        assert info["pid"] == os.getpid()
        # another process's attempt (simulated: this process's re-entrant count cleared)
        from offnadir import outputs

        held = outputs._HELD.pop(str(lock.path))
        try:
            with pytest.raises(OutputExistsError, match=f"pid {os.getpid()}.*delete s3://bucket/.locked.zarr"):
                OutputLock(url).acquire()
        finally:
            outputs._HELD[str(lock.path)] = held
    finally:
        lock.release()
    assert not is_locked(url)


def test_a_missing_image_url_is_a_one_line_error(served, cluster, tmp_path, capsys):
    url = served["url"]
    out = tmp_path / "never.zarr"
    capsys.readouterr()
    assert main(["detect", "--dsm", str(served["sim"].paths["dsm"]), "--base", f"{url}/missing.tif", "--target",
                 f"{url}/target.tif", "-o", str(out), "--scheduler", cluster, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{url}/missing.tif" in err and "URL" in err, err
    assert not out.exists()


def test_url_names_for_gdal():
    from offnadir.io.remote import gdal_path, is_url, url_stem

    assert is_url("s3://b/k.zarr") and is_url("https://h/a.tif") and not is_url("C:\\data\\a.tif")
    assert not is_url("/data/a.tif") and not is_url("relative/a.tif")
    assert gdal_path("/data/a.tif") == "/data/a.tif"
    assert gdal_path("http://127.0.0.1:8000/a b.tif") == "/vsicurl?url=http%3A%2F%2F127.0.0.1%3A8000%2Fa%20b.tif"
    assert gdal_path("s3://bucket/x/a.tif") == "/vsis3/bucket/x/a.tif"
    assert url_stem("https://h/x/scene_01.tif?token=1") == "scene_01"
