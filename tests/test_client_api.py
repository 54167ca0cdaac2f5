"""A notebook's own dask Client runs the whole job (``offnadir.run(config, client=...)``) and gives
the same store as the command line's local cluster; the client is left open."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr
from test_cube_cli import scene  # noqa: F401  (fixture)

import offnadir
from offnadir.cli import main


@pytest.mark.cluster
def test_existing_client_runs_detect_with_the_same_result(scene):  # noqa: F811
    from distributed import Client, LocalCluster

    tmp, dsm, a, b = scene
    cli_out, api_out = tmp / "cli.zarr", tmp / "api.zarr"
    assert main(["detect", "--dsm", str(dsm), "--base", str(a), "--target", str(b), "-o", str(cli_out),
                 "--quiet", "--workers", "1", "--chunk", "75"]) == 0
    cfg = {"dsm": {"path": str(dsm)}, "images": [str(a), str(b)], "output": {"path": str(api_out)},
           "tiling": {"chunk": 75}, "change": {"enabled": True}}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        assert offnadir.run(cfg, client=client) == api_out
        assert client.status == "running"  # left open for the notebook
        assert client.submit(sum, [1, 2]).result() == 3
    got, want = xr.open_zarr(api_out).load(), xr.open_zarr(cli_out).load()
    for v in want.data_vars:
        np.testing.assert_array_equal(got[v].values, want[v].values, err_msg=v)


@pytest.mark.cluster
def test_local_cluster_fits_the_cpus_the_process_may_use(scene):  # noqa: F811
    """Under `taskset -c 0` (as SLURM's cpuset or a container limit would) the default local
    cluster starts one worker, not one per core of the machine."""
    import shutil
    import subprocess
    import sys

    if shutil.which("taskset") is None:
        pytest.skip("taskset (util-linux) is not installed")
    tmp, dsm, a, b = scene
    r = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "offnadir.cli", "coregister", "--dsm", str(dsm),
                        "--image", str(a), "-o", str(tmp / "o.zarr")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    # one worker process, or (a small plan) one thread in the command's process
    assert re.search(r"local dask cluster, (1 workers x 1 thread|1 thread in this process);", r.stderr), r.stderr


def test_batch_jobs_get_progress_lines(scene):  # noqa: F811
    """stderr is not a terminal (a SLURM log): periodic one-line progress with count, rate and time left."""
    import os
    import subprocess
    import sys

    tmp, dsm, a, b = scene
    env = dict(os.environ, OFFNADIR_PROGRESS_SECONDS="0")
    r = subprocess.run([sys.executable, "-m", "offnadir.cli", "coregister", "--dsm", str(dsm), "--image", str(a),
                        "-o", str(tmp / "o.zarr"), "--workers", "1", "--chunk", "50"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("offnadir: cube tiles:")]
    assert lines and lines[-1].startswith("offnadir: cube tiles: 9/9 (100 %)") and "done" in lines[-1], r.stderr
    assert "/s" in lines[-1] and "elapsed" in lines[-1]
