"""Cluster backends (issue 10): config and CLI choose them, each goes through its own library, and
real SLURM (dask-jobqueue on a single-node slurmctld/slurmd on loopback) and dask-gateway (its
server with the local backend on loopback) give the same store as a local run, cell for cell.
Kubernetes: no cluster here; the DaskCluster resource offnadir creates is validated against the
operator's CRD schema shipped in the dask-kubernetes package."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from offnadir import backends
from offnadir.config import validate
from offnadir.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def _cfg(cluster: dict, tmp_path: Path) -> dict:
    return {"dsm": {"path": str(tmp_path / "dsm.tif")}, "images": [str(tmp_path / "a.tif")],
            "output": {"path": str(tmp_path / "o.zarr")}, "cluster": cluster}


def test_backend_options_are_checked_with_the_field_named(tmp_path):
    ok = validate(_cfg({"kind": "slurm", "slurm": {"queue": "short", "max_jobs": 10, "memory": "3GiB"}}, tmp_path))
    assert ok["cluster"]["kind"] == "slurm"
    assert backends.options_for("slurm", ok["cluster"])["queue"] == "short"
    assert backends.options_for("slurm", ok["cluster"])["walltime"] == "01:00:00"  # default filled
    bad = {
        "cluster.slurm.queu": {"kind": "slurm", "slurm": {"queu": "short"}},
        "cluster.slurm.processes must be an integer": {"kind": "slurm", "slurm": {"processes": "4"}},
        "cluster.slurm.memory": {"kind": "slurm", "slurm": {"memory": "lots"}},
        "below the minimum": {"kind": "slurm", "slurm": {"min_jobs": 4, "max_jobs": 2}},
        "cluster.gateway is set but cluster.kind is 'auto'": {"gateway": {"address": "http://h:8000"}},
        "cluster.kind must be one of": {"kind": "pbs"},
        "starts its own scheduler": {"kind": "slurm", "scheduler": "tcp://10.0.0.1:8786"},
        "cluster.scheduler is not set": {"kind": "scheduler"},
        "cluster.kubernetes.n_workers is 0": {"kind": "kubernetes", "kubernetes": {"n_workers": 0}},
    }
    for needle, cluster in bad.items():
        with pytest.raises(ConfigError, match=needle.replace(".", r"\.").replace("(", r"\(")):
            validate(_cfg(cluster, tmp_path))


def test_cli_cluster_kind_reaches_the_config():
    import argparse

    from offnadir.cli.coregister import add_cluster_arguments, cluster_options

    p = argparse.ArgumentParser()
    add_cluster_arguments(p)
    assert cluster_options(p.parse_args(["--cluster-kind", "gateway"]))["kind"] == "gateway"
    with pytest.raises(SystemExit):
        p.parse_args(["--cluster-kind", "pbs"])


def test_missing_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_jobqueue", None)  # import now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "offnadir\[slurm\]"'):
        backends.require("slurm")


def test_slurm_without_sbatch_is_a_clean_error(tmp_path, monkeypatch, capsys):
    """kind slurm where SLURM's commands are missing: the CLI exits 2 with one line, nothing written."""
    pytest.importorskip("dask_jobqueue")
    from synthetic import affine_rpc, box_scene, write_dsm, write_image

    from offnadir.cli import main

    dsm = write_dsm(tmp_path / "dsm.tif", box_scene(n=40, boxes=()))
    a = write_image(tmp_path / "a.tif", affine_rpc(10.0, 60.0, rows=100, cols=100))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no sbatch on PATH
    rc = main(["coregister", "--dsm", str(dsm), "--image", str(a), "-o", str(tmp_path / "o.zarr"), "--quiet",
               "--cluster-kind", "slurm"])
    assert rc == 2 and not (tmp_path / "o.zarr").exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sbatch, which is not on PATH" in err.strip().splitlines()[-1], err


def test_worker_memory_formula():
    # 768 MiB + 2 x 1024^2 cells x (64 + 64 x 2) B = 768 + 384 = 1152 MiB -> rounded up to 1280 MiB
    assert backends.worker_memory_bytes(1024, 2) == 1280 * 2**20
    # above the 749 MiB peak per worker measured on the 20,000^2 plan at chunk 1024 (benchmarks/README.md)
    assert backends.worker_memory_bytes(1024, 2) > 749 * 2**20
    assert backends.worker_memory_bytes(2048, 4) > backends.worker_memory_bytes(1024, 4)
    assert backends.worker_memory_bytes(16, 1) == 1024 * 2**20  # the process floor, rounded to 256 MiB


def test_slurm_job_script_is_single_threaded_with_the_options():
    jobqueue = pytest.importorskip("dask_jobqueue")
    opts = backends.options_for("slurm", {"slurm": {"queue": "short", "account": "geo", "walltime": "02:30:00",
                                                     "processes": 2, "host": "127.0.0.1",
                                                     "job_extra_directives": ["--qos=low"]}})
    kwargs = backends.slurm_kwargs(opts, {"chunk": 1024, "n_images": 2})
    cluster = jobqueue.SLURMCluster(**kwargs)
    try:
        script = cluster.job_script()
        link = cluster.dashboard_link
    finally:
        cluster.close()
    for line in ("#SBATCH -p short", "#SBATCH -A geo", "#SBATCH -t 02:30:00", "#SBATCH --cpus-per-task=2",
                 "#SBATCH --qos=low", "export NUMBA_NUM_THREADS=1", "export GDAL_NUM_THREADS=1",
                 "--nthreads 1", "--nworkers 2"):
        assert line in script, (line, script)
    # each worker's limit is the formula's 1280 MiB; the job asks for both (dask-jobqueue rounds up to 3G)
    assert "--memory-limit 1.25GiB" in script and "#SBATCH --mem=3G" in script, script
    assert link.startswith("http://127.0.0.1:")  # loopback, not dask's 0.0.0.0:8787


# --- Kubernetes: rendered resource and Helm values checked against what the package ships --------------

def _crd_schema(name: str) -> dict:
    ops = pytest.importorskip("dask_kubernetes.operator")
    # the generated CRD of the operator's Helm chart (customresources/ holds templates with $refs)
    crd = Path(ops.__file__).parent / "deployment" / "helm" / "dask-kubernetes-operator" / "crds" / f"{name}.yaml"
    if not crd.exists():
        pytest.skip(f"the dask-kubernetes package ships no generated CRD ({crd})")
    doc = yaml.safe_load(crd.read_text())
    return doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def test_kubernetes_daskcluster_validates_against_the_operator_crd():
    import jsonschema

    schema = _crd_schema("daskcluster")
    sys.path.insert(0, str(DEPLOY / "kubernetes"))
    try:
        from render import render
    finally:
        sys.path.pop(0)
    spec = render({"cluster": {"kubernetes": {"image": "registry.example/offnadir:1", "n_workers": 3}},
                   "tiling": {"chunk": 2048}, "images": ["a", "b", "c"]})
    jsonschema.validate(spec, schema)
    worker = spec["spec"]["worker"]["spec"]["containers"][0]
    assert spec["spec"]["worker"]["replicas"] == 3 and worker["image"] == "registry.example/offnadir:1"
    assert worker["args"][:4] == ["dask", "worker", "--nthreads", "1"]
    env = {e["name"]: e["value"] for e in worker["env"]}
    assert env["NUMBA_NUM_THREADS"] == env["GDAL_NUM_THREADS"] == "1"
    mem = backends.worker_memory_bytes(2048, 3) // 2**20
    assert worker["resources"]["limits"] == {"cpu": "1", "memory": f"{mem}Mi"} == worker["resources"]["requests"]
    sched = spec["spec"]["scheduler"]["spec"]["containers"][0]
    assert sched["args"][:2] == ["dask", "scheduler"]  # distributed has no dask-scheduler script any more
    # a broken resource is caught by the same schema (the check can fail)
    spec["spec"]["worker"]["replicas"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(spec, schema)
    # the committed manifest is the rendering of the defaults
    committed = yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())
    assert committed == render(None)
    jsonschema.validate(committed, schema)


def test_operator_helm_values_use_only_keys_of_the_chart():
    ops = pytest.importorskip("dask_kubernetes.operator")
    chart = Path(ops.__file__).parent / "deployment" / "helm" / "dask-kubernetes-operator" / "values.yaml"
    if not chart.exists():
        pytest.skip("the dask-kubernetes package ships no Helm chart values")
    known = yaml.safe_load(chart.read_text())
    ours = yaml.safe_load((DEPLOY / "kubernetes" / "operator-values.yaml").read_text())

    def check(a, b, path):
        for k, v in a.items():
            assert k in b, f"{path}{k} is not a value of the dask-kubernetes-operator chart"
            if isinstance(v, dict) and isinstance(b[k], dict) and b[k]:
                check(v, b[k], f"{path}{k}.")

    check(ours, known, "")
    text = (DEPLOY / "kubernetes" / "Dockerfile").read_text()
    assert "COPY src ./src" in text and 'pip install --no-cache-dir ".[kubernetes]"' in text


# --- real processes: a local reference run, then SLURM and dask-gateway ---------------------------------

@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A small scene and the store of `offnadir detect` on the local cluster (one worker)."""
    from synthetic import affine_rpc, box_scene, write_dsm, write_image

    from offnadir.cli import main

    tmp = tmp_path_factory.mktemp("backends")
    heights = box_scene(n=150, boxes=((30, 60, 30, 70, 25.0), (90, 130, 80, 110, 12.0)))
    dsm = write_dsm(tmp / "dsm.tif", heights)
    a = write_image(tmp / "a.tif", affine_rpc(10.0, 60.0), acquired="2021-06-01T10:00:00")
    b = write_image(tmp / "b.tif", affine_rpc(25.0, 250.0), acquired="2023-06-01T10:00:00")
    args = ["--dsm", str(dsm), "--base", str(a), "--target", str(b), "--chunk", "75", "--quiet"]
    assert main(["detect", *args, "-o", str(tmp / "local.zarr"), "--workers", "1"]) == 0
    return tmp, args


def _assert_same_store(got: Path, want: Path) -> None:
    import xarray as xr

    g, w = xr.open_zarr(got).load(), xr.open_zarr(want).load()
    assert set(g.data_vars) == set(w.data_vars)
    for v in w.data_vars:
        np.testing.assert_array_equal(g[v].values, w[v].values, err_msg=v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_binaries_missing() -> list[str]:
    return [b for b in ("slurmctld", "slurmd", "sbatch", "munged") if shutil.which(b) is None]


def _install_slurm_in_ci() -> None:
    """In CI (CI=true, as root, Debian's apt), install SLURM with the project's own script so a
    fresh machine runs the SLURM test instead of skipping it. Never on a developer's machine."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes") or os.geteuid() != 0:
        return
    if not _slurm_binaries_missing() or shutil.which("apt-get") is None:
        return
    subprocess.run(["bash", str(DEPLOY / "slurm" / "install.sh")], capture_output=True, text=True, timeout=900)


def _slurm_missing() -> str | None:
    """Why the SLURM test cannot run here, or None."""
    import importlib.util

    _install_slurm_in_ci()
    missing = _slurm_binaries_missing()
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): run deploy/slurm/install.sh as root"
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd needs root"
    if importlib.util.find_spec("dask_jobqueue") is None:
        return 'dask-jobqueue is not installed (pip install "offnadir[slurm]")'
    return None


def _gateway_missing() -> str | None:
    import importlib.util

    for mod, pkg in (("dask_gateway", "dask-gateway"), ("dask_gateway_server", "dask-gateway-server[local]"),
                     ("sqlalchemy", "dask-gateway-server[local]")):
        if importlib.util.find_spec(mod) is None:
            return f"{pkg} is not installed (pip install \"offnadir[cluster-test]\")"
    return None


@pytest.fixture
def slurm(tmp_path):
    """A single-node SLURM on loopback (deploy/slurm/start-single-node.sh); skips with the reason
    when it cannot start here."""
    why = _slurm_missing()
    if why:
        pytest.skip(why)
    state = tmp_path / "slurm"
    r = subprocess.run(["bash", str(DEPLOY / "slurm" / "start-single-node.sh"), str(state), "2"],
                       capture_output=True, text=True, timeout=120)
    try:
        if r.returncode != 0:
            pytest.skip(f"SLURM did not start here: {r.stderr.strip()[-300:]}")
        yield Path(r.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run(["bash", str(DEPLOY / "slurm" / "stop-single-node.sh"), str(state)], timeout=60)


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.skipif(_slurm_missing() is not None, reason=str(_slurm_missing()))
def test_detect_through_slurm_equals_a_local_run(reference, slurm, tmp_path):
    tmp, args = reference
    out = tmp_path / "slurm.zarr"
    env = dict(os.environ, SLURM_CONF=str(slurm),
               # the site's dask-jobqueue config: scheduler on loopback, job logs kept for the check
               DASK_JOBQUEUE__SLURM__SCHEDULER_OPTIONS='{"host": "127.0.0.1"}',
               DASK_JOBQUEUE__SLURM__LOG_DIRECTORY=str(tmp_path / "jobs"))
    r = subprocess.run([sys.executable, "-m", "offnadir.cli", "detect", *args, "-o", str(out),
                        "--cluster-kind", "slurm"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    _assert_same_store(out, tmp / "local.zarr")
    # the work ran in a SLURM job, in a single-threaded worker with the memory from the formula
    logs = "".join(p.read_text() for p in (tmp_path / "jobs").glob("*.err"))
    assert re.search(r"Threads:\s+1\n", logs), logs[-2000:]
    assert "1.00 GiB" in logs  # worker_memory_bytes(75, 2): the 768 MiB floor rounded up to 1 GiB
    ctld = (slurm.parent / "log" / "slurmctld.log").read_text()
    assert "sched: Allocate JobId=" in ctld
    left = subprocess.run(["squeue", "-h"], capture_output=True, text=True, env=env, timeout=30).stdout
    for _ in range(40):  # the job is cancelled when the run ends
        if not left.strip():
            break
        time.sleep(0.25)
        left = subprocess.run(["squeue", "-h", "-t", "R,PD"], capture_output=True, text=True, env=env).stdout
    assert not left.strip(), left


@pytest.fixture
def gateway_server(tmp_path):
    """dask-gateway-server with its UnsafeLocalBackend (workers are local processes of this user)
    on 127.0.0.1; single-threaded workers with offnadir's worker environment."""
    from offnadir.cluster import WORKER_ENV

    api, proxy = _free_port(), _free_port()
    # the workers' environment is the server's to set, not the client's: give them offnadir's
    # worker settings and this machine's BLAS choice (OPENBLAS_CORETYPE selects other kernels, and
    # IR-MAD's eigenvectors then differ in the last bits, which moves the change scores)
    env = {**{k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}, **WORKER_ENV}
    conf = tmp_path / "gateway_config.py"
    conf.write_text(f"""
import sys
c.DaskGateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{proxy}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_threads = 1
c.ClusterConfig.worker_memory = "1 G"
c.ClusterConfig.scheduler_memory = "1 G"
c.ClusterConfig.environment = {env!r}
c.ClusterConfig.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
c.LocalBackend.clusters_directory = "{tmp_path / 'clusters'}"
""")
    log = open(tmp_path / "gateway.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "dask_gateway_server", "-f", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.time() + 60
        while True:  # ready when the proxy routes the API (the port opens before the route exists)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{proxy}/api/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.skip("dask-gateway-server did not start: "
                            + (tmp_path / "gateway.log").read_text()[-300:])
            time.sleep(0.2)
        yield f"http://127.0.0.1:{proxy}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.skipif(_gateway_missing() is not None, reason=str(_gateway_missing()))
def test_run_through_dask_gateway_equals_a_local_run(reference, gateway_server, tmp_path):
    from offnadir.cli import main

    tmp, _ = reference
    out = tmp_path / "gateway.zarr"
    cfg = {"dsm": {"path": str(tmp / "dsm.tif")}, "images": [str(tmp / "a.tif"), str(tmp / "b.tif")],
           "output": {"path": str(out)}, "tiling": {"chunk": 75}, "change": {"enabled": True},
           "cluster": {"kind": "gateway", "gateway": {"address": gateway_server, "auth": "basic"}}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["run", str(path), "--quiet"]) == 0
    _assert_same_store(out, tmp / "local.zarr")
    # dask-gateway's Gateway.__del__ closes an already-closed client and complains; collect it here,
    # inside the test, rather than at interpreter exit after pytest's summary line
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
