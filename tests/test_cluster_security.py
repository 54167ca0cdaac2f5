"""The cluster on real processes (loopback only): a tls:// scheduler with temporary certificates,
no worker / every worker lost gives a timeout with a message, the local dashboard listens on
127.0.0.1, and Ctrl-C to the whole process group prints no worker tracebacks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from synthetic import affine_rpc, box_scene, write_dsm, write_image

from offnadir.cli import main

pytestmark = pytest.mark.cluster
ENV = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scene(d: Path, n: int = 64):
    d.mkdir(parents=True, exist_ok=True)
    dsm = write_dsm(d / "dsm.tif", box_scene(n=n, boxes=((n // 3, n // 2, n // 3, n // 2, 15.0),)))
    img = write_image(d / "a.tif", affine_rpc(10.0, 60.0))
    return dsm, img


class Procs:
    """Scheduler/worker processes started by a test, stopped by it (by their own ids)."""

    def __init__(self, cwd):
        self.cwd, self.procs = cwd, []

    def start(self, module, *args):
        p = subprocess.Popen([sys.executable, "-m", f"distributed.cli.{module}", *args], env=ENV, cwd=self.cwd,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.fixture
def procs(tmp_path):
    ps = Procs(tmp_path)
    yield ps
    ps.stop()


def _connect(addr, security=None, timeout=60):
    from distributed import Client

    deadline = time.time() + timeout
    while True:
        try:
            return Client(addr, timeout="2s", security=security)
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


@pytest.fixture
def certs(tmp_path):
    """Temporary CA, certificate and key (distributed's Security.temporary) written as PEM files."""
    from distributed.security import Security

    sec = Security.temporary()
    d = tmp_path / "tls"
    d.mkdir()
    (d / "ca.pem").write_text(sec.tls_ca_file)
    (d / "cert.pem").write_text(sec.tls_client_cert)
    (d / "key.pem").write_text(sec.tls_client_key)
    os.chmod(d / "key.pem", 0o600)
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


def test_tls_scheduler_with_certificates(tmp_path, procs, certs, capsys):
    from distributed.security import Security

    ca, cert, key = certs
    tls = ["--tls-ca-file", str(ca), "--tls-cert", str(cert), "--tls-key", str(key)]
    port = _free_port()
    addr = f"tls://127.0.0.1:{port}"
    procs.start("dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--protocol", "tls", "--no-dashboard",
                *tls)
    client = _connect(addr, Security(tls_ca_file=str(ca), tls_client_cert=str(cert), tls_client_key=str(key),
                                     require_encryption=True))
    procs.start("dask_worker", addr, "--nthreads", "1", "--no-dashboard", "--memory-limit", "2GiB", *tls)
    client.wait_for_workers(1, timeout=120)
    client.close()
    dsm, img = _scene(tmp_path / "s")
    common = ["coregister", "--dsm", str(dsm), "--image", str(img), "--chunk", "32", "--quiet"]
    # without certificates: refused before anything is written
    assert main(common + ["-o", str(tmp_path / "no.zarr"), "--scheduler", addr]) == 2
    err = capsys.readouterr().err
    assert "tls_ca_file" in err and "Traceback" not in err and not (tmp_path / "no.zarr").exists()
    # with them: the cube is computed on the TLS cluster
    assert main(common + ["-o", str(tmp_path / "tls.zarr"), "--scheduler", addr, *tls]) == 0, capsys.readouterr().err
    import xarray as xr

    ds = xr.open_zarr(tmp_path / "tls.zarr")
    assert int((ds["visible"].values == 1).sum()) > 0.5 * 64 * 64


def test_external_scheduler_without_workers_times_out(tmp_path, procs, capsys):
    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs.start("dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    _connect(addr).close()
    dsm, img = _scene(tmp_path)
    (tmp_path / "job.yaml").write_text(f"dsm: {{path: dsm.tif}}\nimages: [a.tif]\noutput: {{path: o.zarr}}\n"
                                       f"cluster: {{scheduler: '{addr}', worker_timeout: 2}}\n")
    assert main(["run", str(tmp_path / "job.yaml"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no dask worker joined the scheduler" in err and "worker_timeout" in err and "dask worker" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "o.zarr").exists()


def test_all_workers_lost_stops_with_a_message(tmp_path, procs):
    """A worker without nanny is killed mid-task: run_tasks gives up after the worker timeout."""
    import dask

    from offnadir.cluster import run_tasks
    from offnadir.errors import ClusterError

    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs.start("dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    client = _connect(addr)
    worker = procs.start("dask_worker", addr, "--nthreads", "1", "--no-dashboard", "--no-nanny")
    try:
        client.wait_for_workers(1, timeout=120)
        client.offnadir_worker_timeout = 2.0
        killer = threading.Timer(1.0, worker.kill)
        killer.start()
        with pytest.raises(ClusterError, match=r"every dask worker .* is gone .*--resume"):
            run_tasks(client, [dask.delayed(time.sleep)(120)], quiet=True, poll=0.2)
        killer.join()
    finally:
        client.close()


def test_all_workers_lost_stops_any_wait_with_a_message(tmp_path, procs):
    """The same through dask_client around a plain future's result (as dask.compute and the change
    stage's reductions wait): the watchdog turns the endless wait into ClusterError."""
    import dask

    from offnadir.cluster import dask_client
    from offnadir.errors import ClusterError

    port = _free_port()
    addr = f"tcp://127.0.0.1:{port}"
    procs.start("dask_scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
    _connect(addr).close()
    worker = procs.start("dask_worker", addr, "--nthreads", "1", "--no-dashboard", "--no-nanny")
    with pytest.raises(ClusterError, match=r"every dask worker .* is gone"):
        with dask_client(addr, quiet=True, options={"worker_timeout": 2}) as client:
            fut = client.compute(dask.delayed(time.sleep)(120))
            threading.Timer(1.0, worker.kill).start()
            fut.result()


def test_local_dashboard_listens_on_loopback_only():
    import psutil

    from offnadir.cluster import dask_client

    with dask_client(n_workers=1, quiet=True) as client:
        port = int(client.dashboard_link.split(":")[2].split("/")[0])
        listening = [c.laddr.ip for c in psutil.Process().net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    assert listening and set(listening) <= {"127.0.0.1"}, listening


@pytest.mark.parametrize("workers", ["processes", "threads"])  # a small plan runs on threads by default
def test_ctrl_c_to_the_process_group_prints_no_worker_tracebacks(tmp_path, workers):
    dsm, img = _scene(tmp_path, n=400)
    cmd = [sys.executable, "-m", "offnadir.cli", "coregister", "--dsm", str(dsm), "--image", str(img), "-o",
           str(tmp_path / "o.zarr"), "--workers", "2", "--chunk", "25", "--local-workers", workers]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env=ENV, cwd=tmp_path)
    seen = []
    try:
        for line in p.stderr:  # wait until tiles are being computed
            seen.append(line)
            if "tiles to compute" in line:
                break
        time.sleep(0.3)  # 256 tiles: far from done
        os.killpg(p.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    err = "".join(seen) + err
    assert p.returncode == 130, err
    assert "offnadir: interrupted" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
