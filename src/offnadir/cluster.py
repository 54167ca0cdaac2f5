"""Where dask work runs: a local cluster by default (one single-threaded worker process per core),
or an existing scheduler. One level of parallelism: workers run serial numba kernels, and numba,
OpenMP and GDAL are told to use one thread inside each worker (set in the worker environment,
never at import).

Safety: the local cluster's dashboard listens on 127.0.0.1 unless configured otherwise; a
``tls://`` scheduler is reached with the CA, certificate and key named in the config (whoever
reaches a plain ``tcp://`` scheduler can run code on its workers: see ``deploy/README.md``).
A run waits at most ``cluster.worker_timeout`` seconds for a worker, at start or after every
worker was lost, then stops with an error. Local worker processes ignore SIGINT, so Ctrl-C in a
terminal (sent to the whole process group) stops the run once, from the main process, without a
traceback from every worker."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext

from offnadir.taskrun import DEFAULT_WORKER_TIMEOUT, _n_workers, run_tasks  # noqa: F401  (run_tasks: re-exported)

log = logging.getLogger("offnadir.cluster")

WORKER_ENV = {"NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "GDAL_NUM_THREADS": "1",
              # zarr-python 3 encodes the chunks of one write on a thread pool of its own (default:
              # cores + 4 threads): a single-threaded worker then used ~1.25 cores and two workers
              # oversubscribed two cores (1 -> 2 workers 1.47x with the machine idle)
              "ZARR_THREADING__MAX_WORKERS": "1",
              # GDAL block cache per worker (MB): its default, 5 % of RAM, would blow the memory budget
              "GDAL_CACHEMAX": "256"}
#: glibc malloc settings of local workers (read at process start, so set before spawning). dask's
#: default (MALLOC_TRIM_THRESHOLD_=65536) also pins the mmap threshold at 128 KiB, so every tile
#: array is a fresh mmap that page-faults in and is unmapped on free: about a third of a cube
#: tile's wall time. Tile buffers up to 32 MiB come from the heap instead and are reused by the
#: next tile; the heap keeps up to 256 MiB of free memory (measured: tiles 1.4-1.7x faster, worker
#: RSS about +300 MB at chunk 1024).
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": 32 * 2**20, "MALLOC_TRIM_THRESHOLD_": 256 * 2**20}
#: defaults of the ``cluster`` config options this module reads (see offnadir.config)
DEFAULTS = {"dashboard": "127.0.0.1:0", "worker_timeout": DEFAULT_WORKER_TIMEOUT, "tls_ca_file": None, "tls_cert": None,
            "tls_key": None, "local_workers": "auto"}
#: ``cluster.local_workers``: how a local cluster runs its workers
LOCAL_WORKERS = ("auto", "processes", "threads")
#: Up to this much tile work per worker (DSM cells x images), ``local_workers: auto`` runs the local
#: cluster's workers as threads of this process instead of worker processes. Why: a worker process
#: costs about 1.0-1.3 CPU-s to start (interpreter, imports, numba cache loads; and it is closed
#: again at the end), what its tiles cost for ~10 Mi cells x images (0.11 CPU-s per Mi: 1024^2-cell
#: tiles of two images, 0.22 CPU-s each), both measured with benchmarks/bench_cube.py e2e on the
#: same machine, so the ratio holds on faster or slower CPUs alike. Below 32 Mi per worker the
#: start-up would be a quarter or more of each worker's run, while threads lose only the part of a
#: tile that holds the GIL: every cube kernel is ``nogil``, and rasterio reads, pyproj and Zarr's
#: compression release it too (a profiled tile spends under 5 % in Python code). Above it, worker
#: processes keep their advantages on long runs: a memory limit per worker that the nanny enforces,
#: and Python-heavy stages that do not share one interpreter.
THREADS_MAX_WORK_PER_WORKER = 32 * 2**20


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask (``taskset``, SLURM's cgroup cpuset) and the
    cgroup v2 CPU quota (``cpu.max``, what Kubernetes' CPU limit sets), not the machine's count."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(float(quota) / float(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def security(options: dict | None):
    """``distributed.security.Security`` for the tls_* options, or None when none is set."""
    o = {**DEFAULTS, **(options or {})}
    if not (o["tls_ca_file"] or o["tls_cert"]):
        return None
    from distributed.security import Security

    return Security(tls_ca_file=o["tls_ca_file"], tls_client_cert=o["tls_cert"], tls_client_key=o["tls_key"],
                    require_encryption=True)


def local_workers(mode: str | None, n_workers: int | None, cells: int, n_images: int) -> tuple[bool, str]:
    """Whether a local cluster runs worker processes (True) or threads in this process (False), and
    why (for the log and the store). ``mode``: the ``cluster.local_workers`` option; ``cells``: the
    DSM's cells; ``n_images``: images in the cube. See :data:`THREADS_MAX_WORK_PER_WORKER`."""
    from offnadir.errors import ConfigError

    mode = (mode or "auto").strip().lower()
    if mode not in LOCAL_WORKERS:
        raise ConfigError(f"cluster.local_workers is {mode!r}; give one of {', '.join(LOCAL_WORKERS)} "
                          "(--local-workers).")
    n = n_workers or usable_cpus()
    if mode != "auto":
        if mode == "threads" and not numba_threads_safe():
            raise ConfigError("cluster.local_workers is 'threads' but numba has no thread-safe threading layer here "
                              "(install tbb or an OpenMP runtime), and its workqueue layer aborts the process when "
                              "two threads run parallel kernels at once; use local_workers: processes.")
        return mode == "processes", f"cluster.local_workers: {mode}"
    work = int(cells) * max(1, int(n_images)) / n
    limit = THREADS_MAX_WORK_PER_WORKER
    if work > limit:
        return True, (f"{work / 2**20:.0f} Mi cells x images per worker > {limit / 2**20:.0f} Mi: worker processes "
                      "(their start-up is small against the work)")
    if not numba_threads_safe():
        return True, "numba's only threading layer (workqueue) is not thread-safe: worker processes"
    return False, (f"{work / 2**20:.1f} Mi cells x images per worker <= {limit / 2**20:.0f} Mi: threads in this "
                   "process (a worker process would spend a quarter or more of its run starting up)")


def numba_threads_safe() -> bool:
    """True when numba's parallel kernels may run from several threads of one process at once:
    its threading layer is (or will be, numba picks tbb, then omp) tbb or OpenMP, not workqueue."""
    try:
        import numba

        return numba.threading_layer() != "workqueue"
    except ValueError:  # no parallel kernel launched yet: which layer numba would pick
        pass
    except ImportError:
        return False
    import importlib

    for mod in ("numba.np.ufunc.tbbpool", "numba.np.ufunc.omppool"):
        try:
            importlib.import_module(mod)
            return True
        except Exception:  # noqa: BLE001 - ImportError or a broken runtime: not usable
            continue
    return False


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None, *, memory_limit="auto",
                quiet: bool = False, options: dict | None = None, processes: bool | None = None):
    """Yield a ``distributed.Client``: connected to ``scheduler`` if given, else to a new LocalCluster.
    ``options``: the config's ``cluster`` section (dashboard, worker_timeout, tls_*). ``processes``
    (local cluster only): single-threaded worker processes (default), or False: one worker in this
    process with ``n_workers`` threads (see :func:`local_workers`); None: as ``cluster.local_workers``
    says ('threads', else processes: without the plan's size, 'auto' keeps processes)."""
    from distributed import Client, LocalCluster

    from offnadir.errors import ConfigError

    o = {**DEFAULTS, **{k: v for k, v in (options or {}).items() if v is not None}}
    timeout = float(o["worker_timeout"])
    if n_workers is not None and n_workers < 1:
        raise ConfigError(f"cluster.n_workers / --workers is {n_workers}; give at least 1 (default: one per core).")
    if o.get("kind") in ("slurm", "kubernetes", "gateway"):  # issue 10: offnadir.backends
        from offnadir.backends import backend_client

        with backend_client(o["kind"], o, n_workers, timeout=timeout, quiet=quiet) as client:
            yield client
        return
    if scheduler:
        sec = security(o)
        if scheduler.strip().lower().startswith("tls://") and sec is None:
            raise ConfigError(f"the scheduler {scheduler} uses TLS but no certificate is configured; set "
                              "cluster.tls_ca_file and cluster.tls_cert (--tls-ca-file/--tls-cert/--tls-key). "
                              "See deploy/README.md.")
        try:
            client = Client(scheduler, timeout="20s", security=sec)
        except (OSError, TimeoutError, ValueError, TypeError) as e:
            raise ConfigError(f"cannot reach the dask scheduler at {scheduler} ({_one_line(e)}). Start one with "
                              "`dask scheduler` and `dask worker ADDRESS`, check the address (and for tls:// the "
                              "certificates), or drop --scheduler to use a local cluster.") from None
        try:
            _wait_for_a_worker(client, scheduler, timeout)
            client.offnadir_worker_timeout = timeout
            if not quiet:
                print(f"offnadir: using dask scheduler {scheduler}; dashboard: {client.dashboard_link}",
                      file=sys.stderr)
            with _worker_watchdog(client, scheduler, timeout):
                yield client
        finally:
            client.close()
        return
    import dask

    n = n_workers or usable_cpus()
    if processes is None:
        processes = local_workers(o["local_workers"] if o["local_workers"] != "auto" else "processes", n, 0, 1)[0]
    dash = None if str(o["dashboard"]).strip().lower() in ("none", "off", "") else str(o["dashboard"]).strip()
    log.info("local cluster: %d %s, dashboard %s", n, "worker processes" if processes else "threads in this process",
             dash or "off")
    malloc = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()}
    env = dict(WORKER_ENV)
    if os.environ.get("NUMBA_CACHE_DIR"):  # the numba cache the parent uses (offnadir.warmup)
        env["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    # dashboard off: distributed still serves its bare HTTP routes (health, metrics, cluster info),
    # on all interfaces at :8787 when given no address, so keep them on a loopback port
    web = {"dashboard_address": dash} if dash else {"dashboard_address": "127.0.0.1:0",
                                                    "scheduler_kwargs": {"dashboard": False}}
    if not quiet:
        _say_if_cache_is_cold()
    from offnadir.malloc_reuse import reuse_freed_memory

    # worker threads allocate in this process: keep freed tile arrays for reuse while the cluster runs
    heap = reuse_freed_memory() if not processes else nullcontext()
    with heap, _gc_frozen():
        with dask.config.set(malloc), _workers_ignore_sigint():
            # worker logs at CRITICAL only: a task's error reaches the client (and the user) anyway, and a
            # shutdown (Ctrl-C, a failed run) must not print a heartbeat traceback from every worker
            if processes:
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                                       env=env, silence_logs=logging.CRITICAL, **web)
            else:  # no process to start, import into or close: the kernels release the GIL
                # the worker's own HTTP routes would listen on all interfaces: keep them on loopback
                cluster = LocalCluster(n_workers=1, threads_per_worker=n, processes=False, memory_limit=memory_limit,
                                       silence_logs=logging.CRITICAL, worker_dashboard_address="127.0.0.1:0", **web)
        client = Client(cluster)
        client.offnadir_worker_timeout = timeout
        if processes:
            _no_hugepage_advice(client)
        preload = None
        if not processes:  # the worker threads' kernels, loaded while the client opens the inputs and plans
            from offnadir.kernel_preload import run_modules, start

            preload = start(run_modules(o.get("multi_view")))
        try:
            if not quiet:
                link = _dashboard_link(client, cluster, dash, processes) if dash else "off"
                shape = f"{n} workers x 1 thread" if processes else f"{n} thread{'s' if n > 1 else ''} in this process"
                print(f"offnadir: local dask cluster, {shape}; dashboard: {link}", file=sys.stderr)
            yield client
        finally:
            client.close()
            cluster.close()
            if preload is not None:  # not left loading under numba's lock while the process exits
                preload.join(60)


def _no_hugepage_advice(client) -> None:
    """Local worker processes stop numpy's transparent-huge-page advice for their arrays, as the
    threads of a local threaded cluster do (:func:`offnadir.malloc_reuse.numpy_hugepages`, where the
    reason and the figures are). Set once on the workers that started; a worker the nanny restarts
    keeps numpy's default (only its speed differs)."""
    from offnadir.malloc_reuse import numpy_hugepages

    try:
        client.run(numpy_hugepages, False)
    except Exception as e:  # noqa: BLE001 - a speed setting: never a reason to fail the run
        log.debug("numpy huge-page advice left on in the workers (%s)", e)


@contextmanager
def _gc_frozen():
    """Python's cyclic garbage collector leaves the objects that exist when the cluster starts (the
    imported modules, ~250 000 objects) out of its collections until the cluster closes
    (``gc.freeze``/``gc.unfreeze``). Why: a full collection scanned them all every time, 65 ms each
    (5 in bench_detect's 2048² run, holding the GIL the worker threads and the scheduler need); the
    objects a run creates are still collected. Nothing is leaked: on leaving they are collected
    as before."""
    import gc

    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _dashboard_link(client, cluster, dash: str, processes: bool) -> str:
    """The dashboard's URL. An in-process scheduler has no network address of its own, so dask
    names the machine's address in the link while the dashboard listens where ``dash`` says."""
    host = dash.rsplit(":", 1)[0]
    if processes or host in ("", "0.0.0.0", "::", "[::]"):
        return client.dashboard_link
    try:
        return f"http://{host}:{cluster.scheduler.services['dashboard'].port}/status"
    except (AttributeError, KeyError):
        return client.dashboard_link


def _say_if_cache_is_cold() -> None:
    """Tell the user when the workers' kernels are not in the numba cache: every worker process
    then compiles them itself (tens of CPU seconds each), which ``offnadir warmup`` does once."""
    try:
        from offnadir.warmup import cached_signatures, kernels

        mods = ("offnadir.cube.kernels", "offnadir.cube.visibility_kernels", "offnadir.change.kernels")
        cold = [k for k, d in kernels(mods).items() if cached_signatures(d) == 0]
    except Exception as e:  # noqa: BLE001 - a hint only, never a reason to fail a run
        log.debug("numba cache check failed: %s", e)
        return
    if cold:
        where = os.environ.get("NUMBA_CACHE_DIR") or "numba's default cache location"
        log.info("kernels not in the numba cache: %s", ", ".join(cold))
        print(f"offnadir: the numba kernels are not compiled in this environment yet ({where}): each worker "
              "compiles them on first use; `offnadir warmup` does it once ahead of time.", file=sys.stderr)


@contextmanager
def _workers_ignore_sigint():
    """Worker processes started in this block ignore SIGINT (an ignored signal stays ignored across
    exec, and Python then installs no KeyboardInterrupt handler): Ctrl-C reaches the main process,
    which closes the cluster."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def _worker_watchdog(client, where: str, timeout: float, poll: float = 1.0):
    """Stop the main thread with ClusterError when the scheduler has had no worker for ``timeout``
    seconds while the client holds work (any wait: run_tasks, dask.compute, a future's result).
    A watcher thread sends SIGINT to the main thread (which interrupts a blocking wait); the
    KeyboardInterrupt that comes back through the ``with`` block is turned into the error."""
    from offnadir.errors import ClusterError

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stop, fired = threading.Event(), []
    main_id = threading.main_thread().ident

    def watch():
        since = None
        while not stop.wait(poll):
            try:
                idle = _n_workers(client) > 0 or not client.futures
            except Exception:  # the client is closing
                continue
            if idle:
                since = None
            elif since is None:
                since = time.monotonic()
                log.warning("no dask worker left at %s; waiting up to %g s for one", where, timeout)
            elif time.monotonic() - since > timeout and not stop.is_set():
                fired.append(True)
                signal.pthread_kill(main_id, signal.SIGINT)
                return

    watcher = threading.Thread(target=watch, name="offnadir-worker-watchdog", daemon=True)
    # the watcher's SIGINT must arrive as KeyboardInterrupt, whatever handler a library installed
    old_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher.start()
    try:
        yield
    except KeyboardInterrupt:
        if fired:
            raise ClusterError(f"every dask worker of {where} is gone and none came back within {timeout:g} s. "
                               f"Restart workers (`dask worker {where} --nthreads 1`) and run again with --resume; "
                               "cluster.worker_timeout sets the wait.") from None
        raise
    finally:
        stop.set()
        watcher.join(timeout=5)
        signal.signal(signal.SIGINT, old_handler)


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _wait_for_a_worker(client, where: str, timeout: float) -> None:
    from offnadir.errors import ClusterError

    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        raise ClusterError(f"no dask worker joined the scheduler at {where} within {timeout:g} s. Start workers "
                           f"with `dask worker {where} --nthreads 1`, or raise cluster.worker_timeout.") from None
