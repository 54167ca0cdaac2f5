"""Cluster backends beyond the local one: SLURM (dask-jobqueue), Kubernetes (the dask-kubernetes
operator) and dask-gateway, each through its own library, imported only when chosen
(``cluster.kind``), with the extra to install named when it is missing.

Every backend starts single-threaded workers (one dask thread per worker process; numba, OpenMP
and GDAL told to use one thread through :data:`offnadir.cluster.WORKER_ENV`), so the parallelism
is the number of workers, as on the local cluster.

Memory per worker, when not given (``slurm.memory`` / ``kubernetes.memory``), follows
:func:`worker_memory_bytes`::

    768 MiB + 2 x chunk^2 x (64 + 64 x n_images) bytes, rounded up to 256 MiB

768 MiB: the worker process with numpy/numba/dask/GDAL loaded (~250 MB), GDAL's block cache
(``GDAL_CACHEMAX`` = 256 MB) and the 256 MiB of free heap glibc keeps (``WORKER_MALLOC_ENV``).
Per tile cell, 64 bytes of grid arrays (DSM and coordinates in float64, masks) and 64 bytes per
image (interpolated row/col, bands, visibility and float64 samples); twice, for one tile computed
while the previous one is encoded and written. At chunk 1024 with 2 images this gives 1.25 GiB,
above the 749 MiB peak measured per worker by ``benchmarks/bench_cube.py memory`` (20,000^2 plan).
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import sys
from contextlib import contextmanager

log = logging.getLogger("offnadir.backends")

KINDS = ("local", "scheduler", "slurm", "kubernetes", "gateway")
#: kind -> (module imported, pip extra that installs it)
EXTRAS = {"slurm": ("dask_jobqueue", "slurm"), "kubernetes": ("dask_kubernetes.operator", "kubernetes"),
          "gateway": ("dask_gateway", "gateway")}
#: the default worker image: the one deploy/kubernetes/Dockerfile builds (push it to your registry)
DEFAULT_IMAGE = "offnadir-worker:latest"

# option: (type, default, doc). Types: str, int, bool, list (of str), dict.
OPTIONS: dict[str, dict[str, tuple]] = {
    "slurm": {
        "queue": (str, None, "partition (sbatch -p); default: the site's default partition"),
        "account": (str, None, "account to charge (sbatch -A)"),
        "walltime": (str, "01:00:00", "time limit of each worker job, HH:MM:SS"),
        "processes": (int, 1, "single-threaded worker processes per job (cores per job = processes)"),
        "memory": (str, None, "memory per worker, e.g. 2GiB (default: from the tile size, see deploy/README.md)"),
        "min_jobs": (int, None, "jobs kept running (default: enough for cluster.n_workers, else 1)"),
        "max_jobs": (int, None, "above min_jobs: adaptive scaling between min_jobs and max_jobs"),
        "host": (str, None, "address the scheduler listens on, reachable from the compute nodes "
                            "(default: dask-jobqueue's interface setting, else all interfaces)"),
        "interface": (str, None, "network interface of scheduler and workers (e.g. ib0)"),
        "python": (str, None, "python of the workers (default: this one, sys.executable)"),
        "job_extra_directives": (list, None, "extra #SBATCH lines, e.g. ['--qos=normal']"),
        "job_script_prologue": (list, None, "shell lines run before the worker, e.g. ['module load gdal']"),
        "local_directory": (str, None, "worker scratch folder on the compute node (e.g. $TMPDIR)"),
        "log_directory": (str, None, "folder for the jobs' output files"),
    },
    "gateway": {
        "address": (str, None, "dask-gateway server address (default: dask config gateway.address)"),
        "proxy_address": (str, None, "gateway scheduler proxy address, when not the server's"),
        "public_address": (str, None, "address for dashboard links"),
        "auth": (str, None, "authentication: basic | kerberos | jupyterhub (default: dask config gateway.auth)"),
        "cluster_options": (dict, None, "options of the server's cluster form, e.g. {worker_memory: 4}"),
        "n_workers": (int, None, "workers to start (default: cluster.n_workers, else 1)"),
        "max_workers": (int, None, "above n_workers: adaptive scaling between n_workers and max_workers"),
    },
    "kubernetes": {
        "name": (str, "offnadir", "DaskCluster resource name"),
        "namespace": (str, None, "namespace (default: the current context's)"),
        "image": (str, DEFAULT_IMAGE, "worker and scheduler image (build deploy/kubernetes/Dockerfile)"),
        "n_workers": (int, None, "workers (pods) to start (default: cluster.n_workers, else 1)"),
        "max_workers": (int, None, "above n_workers: adaptive scaling between n_workers and max_workers"),
        "cpu": (str, "1", "CPU request and limit of each worker pod (one single-threaded worker)"),
        "memory": (str, None, "memory request and limit per pod (default: from the tile size)"),
    },
}
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list of strings",
               dict: "a mapping"}


def check_options(cluster: dict) -> list[str]:
    """Problems of the ``cluster`` section's backend options (one line each, naming the field)."""
    errors = []
    kind = cluster.get("kind") or "auto"
    for section, spec in OPTIONS.items():
        given = cluster.get(section)
        if given is None:
            continue
        if kind != section:
            errors.append(f"cluster.{section} is set but cluster.kind is {kind!r}; set cluster.kind: {section} "
                          f"(--cluster-kind {section}) or drop cluster.{section}.")
        for key, value in given.items():
            if key not in spec:
                errors.append(f"unknown key cluster.{section}.{key}; known: {', '.join(spec)}.")
                continue
            typ = spec[key][0]
            if value is None:
                continue
            if isinstance(value, bool) != (typ is bool) or not isinstance(value, typ) or \
                    (typ is list and not all(isinstance(v, str) for v in value)):
                errors.append(f"cluster.{section}.{key} must be {_TYPE_NAMES[typ]}, got {value!r:.60}.")
            elif typ is int and value < (0 if key == "min_jobs" else 1):
                errors.append(f"cluster.{section}.{key} is {value}; give at least {0 if key == 'min_jobs' else 1}.")
            elif key == "memory" and _parse_bytes(value) is None:
                errors.append(f"cluster.{section}.memory {value!r:.60} is not a size; write e.g. 2GiB or 1500MB.")
        lo = given.get("min_jobs", given.get("n_workers"))
        hi = given.get("max_jobs", given.get("max_workers"))
        if isinstance(lo, int) and isinstance(hi, int) and hi < lo:
            errors.append(f"cluster.{section}: the maximum ({hi}) is below the minimum ({lo}); raise it.")
    if kind == "local" and cluster.get("scheduler"):
        errors.append("cluster.kind is 'local' but cluster.scheduler is set; drop one of them.")
    if kind == "scheduler" and not cluster.get("scheduler"):
        errors.append("cluster.kind is 'scheduler' but cluster.scheduler is not set; give its address "
                      "(--scheduler tcp://HOST:8786).")
    if kind in EXTRAS and cluster.get("scheduler"):
        errors.append(f"cluster.scheduler is set but cluster.kind is {kind!r}, which starts its own scheduler; "
                      "drop one of them.")
    return errors


def options_for(kind: str, cluster: dict) -> dict:
    """The backend's options: defaults, then the config's ``cluster.<kind>`` mapping."""
    given = cluster.get(kind) or {}
    return {k: (given[k] if given.get(k) is not None else default) for k, (_, default, _) in OPTIONS[kind].items()}


def worker_memory_bytes(chunk: int = 1024, n_images: int = 2) -> int:
    """Memory limit of one single-threaded worker for tiles of ``chunk``^2 cells and ``n_images``
    images (the formula and its reasons are in this module's docstring)."""
    need = 768 * 2**20 + 2 * chunk * chunk * (64 + 64 * max(1, n_images))
    step = 256 * 2**20
    return -(-need // step) * step


def _parse_bytes(text) -> int | None:
    from dask.utils import parse_bytes

    try:
        n = parse_bytes(str(text))
    except (ValueError, TypeError):
        return None
    return n if n > 0 else None


def _mem_text(n: int) -> str:
    return f"{n // 2**20}MiB"


def require(kind: str):
    """Import the backend's library, or raise a ConfigError naming the extra to install."""
    from offnadir.errors import ConfigError

    import signal
    import threading

    module, extra = EXTRAS[kind]
    main = threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGINT) if main else None
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"cluster.kind {kind!r} needs the Python package {module.split('.')[0]!r}, which is not "
                          f"installed ({e}); install it with `pip install \"offnadir[{extra}]\"`.") from None
    finally:
        # dask-jobqueue sets a SIGINT handler that calls sys.exit() when imported: keep Ctrl-C ours
        if main and old is not None:
            signal.signal(signal.SIGINT, old)


def _memory(opts: dict, sizing: dict) -> int:
    if opts.get("memory"):
        return _parse_bytes(opts["memory"])
    m = worker_memory_bytes(int(sizing.get("chunk") or 1024), int(sizing.get("n_images") or 2))
    log.info("memory per worker %s, from tiles of %s^2 cells and %s images (768 MiB + 2 x chunk^2 x "
             "(64 + 64 x images) bytes)", _mem_text(m), sizing.get("chunk") or 1024, sizing.get("n_images") or 2)
    return m


def _worker_env_lines() -> list[str]:
    from offnadir.cluster import WORKER_ENV, WORKER_MALLOC_ENV

    return [f"export {k}={v}" for k, v in {**WORKER_ENV, **WORKER_MALLOC_ENV}.items()]


def slurm_kwargs(opts: dict, sizing: dict, dashboard: str | None = None) -> dict:
    """Arguments of dask-jobqueue's ``SLURMCluster``: single-threaded workers (cores = processes),
    memory per job = processes x memory per worker, offnadir's worker environment exported."""
    procs = int(opts["processes"])
    mem = _memory(opts, sizing)
    kwargs = dict(cores=procs, processes=procs, memory=_mem_text(mem * procs), walltime=opts["walltime"],
                  python=opts["python"] or sys.executable,
                  job_script_prologue=_worker_env_lines() + list(opts["job_script_prologue"] or []))
    for k in ("queue", "account", "interface", "local_directory", "log_directory", "job_extra_directives"):
        if opts[k] is not None:
            kwargs[k] = opts[k]
    import dask

    # the site's dask-jobqueue scheduler options (~/.config/dask/jobqueue.yaml), then offnadir's
    sched = dict(dask.config.get("jobqueue.slurm.scheduler-options", None) or {})
    if opts["host"]:
        sched["host"] = opts["host"]
    # the dashboard follows cluster.dashboard (default 127.0.0.1:0), not dask's all-interfaces :8787
    dash = str(dashboard or "127.0.0.1:0").strip()
    sched["dashboard_address"] = None if dash.lower() in ("none", "off", "") else dash
    kwargs["scheduler_options"] = sched
    return kwargs


def slurm_cluster(opts: dict, n_workers: int | None, sizing: dict, dashboard: str | None = None):
    """A dask-jobqueue ``SLURMCluster`` of single-threaded workers, scaled (or adaptive) as configured."""
    import shutil

    from offnadir.errors import ConfigError

    jobqueue = require("slurm")
    if shutil.which("sbatch") is None:
        raise ConfigError("cluster.kind 'slurm' submits worker jobs with sbatch, which is not on PATH here; run "
                          "offnadir on a SLURM login node (or load the site's slurm module), or choose another "
                          "cluster.kind.")
    kwargs = slurm_kwargs(opts, sizing, dashboard)
    procs, mem = kwargs["processes"], _parse_bytes(kwargs["memory"]) // kwargs["processes"]
    cluster = jobqueue.SLURMCluster(**kwargs)
    lo = opts["min_jobs"] if opts["min_jobs"] is not None else max(1, math.ceil((n_workers or procs) / procs))
    hi = opts["max_jobs"]
    if hi is not None and hi > lo:
        cluster.adapt(minimum_jobs=lo, maximum_jobs=hi)
        log.info("SLURM: adaptive, %d to %d jobs of %d worker(s), %s each", lo, hi, procs, _mem_text(mem))
    else:
        cluster.scale(jobs=lo)
        log.info("SLURM: %d job(s) of %d worker(s), %s each", lo, procs, _mem_text(mem))
    log.debug("SLURM job script:\n%s", cluster.job_script())
    return cluster


def gateway_cluster(opts: dict, n_workers: int | None):
    """A dask-gateway cluster (the server decides where workers run; its cluster options may set
    their cores, memory and environment)."""
    gw_mod = require("gateway")
    kw = {k: opts[k] for k in ("address", "proxy_address", "public_address", "auth") if opts[k] is not None}
    gateway = gw_mod.Gateway(**kw)
    try:
        cluster = gateway.new_cluster(**(opts["cluster_options"] or {}))
    except Exception:
        gateway.close()
        raise
    cluster._offnadir_gateway = gateway
    lo = opts["n_workers"] or n_workers or 1
    hi = opts["max_workers"]
    if hi is not None and hi > lo:
        cluster.adapt(minimum=lo, maximum=hi)
    else:
        cluster.scale(lo)
    log.info("dask-gateway cluster %s at %s: %s workers", cluster.name, gateway.address,
             f"{lo} to {hi}" if hi and hi > lo else lo)
    return cluster


def kubernetes_spec(opts: dict, n_workers: int | None, sizing: dict) -> dict:
    """The ``DaskCluster`` resource for the dask-kubernetes operator: single-threaded workers with
    offnadir's worker environment and a CPU/memory request equal to the limit."""
    from dask_kubernetes.operator import make_cluster_spec

    from offnadir.cluster import WORKER_ENV, WORKER_MALLOC_ENV

    mem = _memory(opts, sizing)
    res = {"cpu": str(opts["cpu"]), "memory": f"{mem // 2**20}Mi"}
    env = {k: str(v) for k, v in {**WORKER_ENV, **WORKER_MALLOC_ENV}.items()}
    spec = make_cluster_spec(name=opts["name"], image=opts["image"], n_workers=opts["n_workers"] or n_workers or 1,
                             resources={"requests": res, "limits": dict(res)}, env=env,
                             worker_command="dask worker --nthreads 1")
    # distributed >= 2024 has no `dask-scheduler` script any more: the `dask scheduler` command
    sched = spec["spec"]["scheduler"]["spec"]["containers"][0]
    if sched["args"][:1] == ["dask-scheduler"]:
        sched["args"] = ["dask", "scheduler"] + sched["args"][1:]
    return json.loads(json.dumps(spec))  # plain, unshared dicts (YAML without anchors)


def kubernetes_cluster(opts: dict, n_workers: int | None, sizing: dict):
    ops = require("kubernetes")
    spec = kubernetes_spec(opts, n_workers, sizing)
    cluster = ops.KubeCluster(custom_cluster_spec=spec, namespace=opts["namespace"], shutdown_on_close=True)
    lo, hi = spec["spec"]["worker"]["replicas"], opts["max_workers"]
    if hi is not None and hi > lo:
        cluster.adapt(minimum=lo, maximum=hi)
    log.info("Kubernetes DaskCluster %s (image %s): %s workers", opts["name"], opts["image"],
             f"{lo} to {hi}" if hi and hi > lo else lo)
    return cluster


@contextmanager
def backend_client(kind: str, cluster_options: dict, n_workers: int | None = None, *, timeout: float = 120.0,
                   quiet: bool = False):
    """Start the ``kind`` cluster, yield a Client on it once a worker has joined, close both after."""
    from offnadir.cluster import _wait_for_a_worker
    from offnadir.errors import ClusterError, OffnadirError

    opts = options_for(kind, cluster_options)
    sizing = {"chunk": cluster_options.get("chunk"), "n_images": cluster_options.get("n_images")}
    try:
        if kind == "slurm":
            cluster = slurm_cluster(opts, n_workers, sizing, cluster_options.get("dashboard"))
        elif kind == "gateway":
            cluster = gateway_cluster(opts, n_workers)
        elif kind == "kubernetes":
            cluster = kubernetes_cluster(opts, n_workers, sizing)
        else:
            raise ValueError(kind)
    except OffnadirError:
        raise
    except (OSError, ValueError, RuntimeError, TimeoutError) as e:
        from offnadir.cluster import _one_line

        raise ClusterError(f"cannot start the {kind} cluster ({_one_line(e)}); check the cluster.{kind} options "
                           "in the config (see deploy/README.md).") from None
    client = None
    try:
        client = cluster.get_client() if hasattr(cluster, "get_client") and kind == "gateway" else None
        if client is None:
            from distributed import Client

            client = Client(cluster)
        _wait_for_a_worker(client, f"the {kind} cluster", timeout)
        client.offnadir_worker_timeout = timeout
        _warn_threads(client)
        if not quiet:
            print(f"offnadir: {kind} dask cluster; dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client
    finally:
        if client is not None:
            client.close()
        if kind == "gateway":
            cluster.shutdown()
            cluster._offnadir_gateway.close()
        else:
            cluster.close()


def _warn_threads(client) -> None:
    try:
        info = client.scheduler_info()["workers"]
    except Exception:  # noqa: BLE001 (only a check)
        return
    multi = [w["nthreads"] for w in info.values() if w.get("nthreads", 1) > 1]
    if multi:
        log.warning("%d worker(s) run %d threads: offnadir's kernels are single-threaded and hold the GIL only "
                    "briefly, but memory per worker grows with threads; start workers with one thread "
                    "(e.g. the gateway's worker_threads/worker_cores = 1)", len(multi), max(multi))
