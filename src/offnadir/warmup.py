"""Compile the numba kernels once per environment, ahead of any run (``offnadir warmup``).

Every kernel is declared with ``cache=True``: numba writes the machine code it compiles to disk
and a later process loads it instead of compiling (a few ms a kernel against about a second).
What still made runs compile (measured, see ``benchmarks/bench_startup.py``):

* a fresh environment (new container, new virtualenv, edited kernel source): nothing cached yet,
  and every dask worker process then compiles the same kernels at the same time (the cold demo
  with two workers compiled each cube and change kernel twice);
* a cache in a place a worker cannot see or write: numba's default is ``__pycache__`` next to
  the source when writable, else a per-user directory, so a read-only install run by another
  user (a worker image, a shared software tree) compiles in every worker;
* signatures met for the first time: ``sample_bilinear`` is compiled per image dtype (uint8,
  uint16, int16, float32...), the RFM per read-only/writable combination of its inputs.

So :func:`warmup` (``offnadir warmup``) runs the whole pipeline on a tiny simulated scene in one
process (every kernel is compiled for the signatures the pipeline really uses, whatever the
kernels' authors change), then the image sampler for every pixel type, and stores them where
numba caches: ``NUMBA_CACHE_DIR`` when set, else beside the sources or in ``~/.cache/numba``.
Local workers inherit the parent's environment, hence its cache; remote workers need the same
directory (a worker image, a shared file system: ``deploy/README.md``). numba keys each entry by
the kernel source file's content, numba's version and the CPU model.

Layering: this module drives the pipeline and inspects numba dispatchers; kernels stay
numpy/numba only.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("offnadir.warmup")

#: the kernels of a run (the others are the simulator's): a run must find every one of them cached
PIPELINE_MODULES = (
    "offnadir.camera.kernels",
    "offnadir.cube.kernels",
    "offnadir.cube.visibility_kernels",
    "offnadir.cube.visibility_bound_kernels",
    "offnadir.cube.sweep_kernels",
    "offnadir.cube.window_sums_kernels",
    "offnadir.cube.sweep_level_kernels",
    "offnadir.cube.sweep_views_kernels",
    "offnadir.cube.tiepoint_kernels",
    "offnadir.change.kernels",
    "offnadir.change.group_kernels",
)
#: modules that declare numba kernels (the warm-up also finds those its run imports)
KERNEL_MODULES = PIPELINE_MODULES + (
    "offnadir.simulate.render",
    "offnadir.simulate.bounded",
    "offnadir.simulate.tiles",
)
#: pixel types of the images a cube samples (what GDAL/rasterio read VHR imagery as)
IMAGE_DTYPES = ("uint8", "uint16", "int16", "uint32", "int32", "float32", "float64")
#: kernel -> position of its image-window argument, compiled for every dtype of IMAGE_DTYPES
IMAGE_ARGUMENT = {"offnadir.cube.kernels.sample_bilinear": 0}
#: numba-threaded twins, compiled with their serial kernel's signatures (the RFM switches to them
#: for large point sets)
PARALLEL_TWINS = {"offnadir.camera.kernels.project_parallel": "offnadir.camera.kernels.project_serial",
                  "offnadir.camera.kernels.localize_parallel": "offnadir.camera.kernels.localize_serial"}
#: the warm-up scene: small, yet with several tiles, a same-date pair (the height sweep) and a
#: later date (change detection)
SCENE_SIZE, SCENE_CHUNK = 128, 64
#: options off by default whose stages call kernels of their own: the warm-up runs the scene a
#: second time with them on (the region test of the height sweep, widened cast shadows)
OPT_IN_OPTIONS = {"height_sweep": {"dsm_test": "region"}, "change": {"shadow_margin": True}}
#: opt-in choices that exclude those above (another value of the same option): one more run each
#: (the DSM prediction and on-level tests of the height sweep; the default off-level test runs the
#: window test's kernels too)
OPT_IN_ALTERNATIVES = ({"height_sweep": {"dsm_test": "prediction"}}, {"height_sweep": {"dsm_test": "on_level"}})


def cache_dir(disp: dict | None = None) -> str:
    """Where the numba cache is: ``NUMBA_CACHE_DIR`` when set; else numba's default, the
    ``__pycache__`` folders beside the kernel sources when writable, or a per-user folder
    (``~/.cache/numba``) for a read-only install (the folders the kernels in ``disp`` use)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    paths = sorted({getattr(d._cache, "_cache_path", "?") for d in (disp or {}).values()})
    if not paths:
        return "numba's default (__pycache__ beside the kernels, or ~/.cache/numba)"
    return os.path.commonpath(paths) if len(paths) > 1 else paths[0]


# ----------------------------------------------------------------------------- the kernels
def kernels(modules=KERNEL_MODULES, *, loaded: bool = False) -> dict:
    """``{"module.name": dispatcher}`` of every numba kernel callable from Python in ``modules``
    (and, with ``loaded``, in every offnadir module imported so far: kernel modules added later
    are found once the pipeline uses them). Kernels marked ``inline="always"`` are compiled into
    their callers and have no cache entry of their own."""
    from numba.core.registry import CPUDispatcher

    out = {}
    names = list(modules)
    if loaded:
        names += sorted(m for m in list(sys.modules) if m.startswith("offnadir.") and m not in names)
    for modname in names:
        mod = importlib.import_module(modname)
        for name, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == modname \
                    and obj.targetoptions.get("inline", "never") != "always":
                out[f"{modname}.{name}"] = obj
    return out


def uncached(disp: dict) -> list[str]:
    """Kernels declared without ``cache=True`` (they compile in every process)."""
    from numba.core.caching import NullCache

    return sorted(k for k, d in disp.items() if d._cache is None or isinstance(d._cache, NullCache))


def cache_counts(disp: dict) -> tuple[int, int]:
    """(signatures loaded from the cache, signatures compiled) over ``disp`` in this process."""
    hits = sum(sum(d.stats.cache_hits.values()) for d in disp.values())
    misses = sum(sum(d.stats.cache_misses.values()) for d in disp.values())
    return hits, misses


def cached_signatures(d) -> int:
    """Signatures of kernel ``d`` in its cache index that are valid for its current source file
    (0: nothing cached, or cached for an older version of the file)."""
    try:
        return len(d._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - no cache, or an index numba cannot read: nothing usable
        return 0


class CompileTimes:
    """CPU seconds numba spent compiling (the compiling thread's), per kernel module, while installed (``with CompileTimes() as
    t:``); a kernel compiled inside another's compilation counts once, for the outer one. Loads
    from the cache are not compilations."""

    def __init__(self):
        from numba.core import event

        outer = self

        class _Listener(event.Listener):
            def on_start(self, ev):
                outer._stack.append(time.thread_time())

            def on_end(self, ev):
                t0 = outer._stack.pop()
                if not outer._stack:
                    mod = ev.data["dispatcher"].py_func.__module__
                    outer.seconds[mod] = outer.seconds.get(mod, 0.0) + time.thread_time() - t0
                    outer.count[mod] = outer.count.get(mod, 0) + 1

        self._listener, self._stack = _Listener(), []
        self.seconds: dict[str, float] = {}
        self.count: dict[str, int] = {}

    def __enter__(self):
        from numba.core import event

        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        from numba.core import event

        event.unregister("numba:compile", self._listener)
        return False


# ----------------------------------------------------------------------------- warm-up
def warmup(workdir=None, *, quiet: bool = True) -> dict:
    """Compile (or load from the cache) every kernel for the pipeline's signatures, in this
    process. Returns a report: cache directory, wall and CPU seconds per step, compile seconds per
    kernel module, signatures loaded/compiled, and per kernel its signatures in this process and
    in the cache (``missing``: kernels with neither)."""
    if workdir is not None and not Path(workdir).is_dir():
        from offnadir.errors import ConfigError

        raise ConfigError(f"warm-up folder {workdir} does not exist or is not a folder: create it first or leave "
                          f"--workdir out to use the system's temp folder.")
    t_start, c_start = time.perf_counter(), time.process_time()
    import numba

    disp = kernels()
    where = cache_dir(disp)
    bad = uncached(disp)
    if bad:
        log.warning("kernels without cache=True compile in every process: %s", ", ".join(bad))
    steps = {}
    with CompileTimes() as ct:
        with tempfile.TemporaryDirectory(prefix="offnadir-warmup-", dir=workdir) as tmp:
            t, c = time.perf_counter(), time.process_time()
            _run_pipeline(Path(tmp), quiet=quiet)
            steps["pipeline on a simulated scene"] = (time.perf_counter() - t, time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        n_variants = _compile_variants(disp) + _beyond_the_scene()
        steps[f"image dtypes and threaded twins ({n_variants} signatures)"] = \
            (time.perf_counter() - t, time.process_time() - c)
    disp = {**disp, **kernels(loaded=True)}  # with kernel modules only the pipeline's run imported
    bad = uncached(disp)
    hits, misses = cache_counts(disp)
    table = {k: (len(d.signatures), cached_signatures(d)) for k, d in disp.items()}
    missing = sorted(k for k, (here, cached) in table.items() if here == 0 and cached == 0)
    if missing:
        log.warning("kernels the warm-up did not reach (they compile when first used): %s", ", ".join(missing))
    log.info("numba cache %s: %d signatures compiled (%.1f s), %d loaded", where, misses, sum(ct.seconds.values()),
             hits)
    return {"cache_dir": where,
            "numba": numba.__version__, "cpu": _cpu_name(), "seconds": time.perf_counter() - t_start,
            "cpu_seconds": time.process_time() - c_start, "steps": steps,
            "compile_seconds": ct.seconds, "compiles": ct.count, "loaded": hits, "compiled": misses,
            "kernels": table, "missing": missing, "uncached": bad}


def _run_pipeline(tmp: Path, *, quiet: bool) -> None:
    """Simulate a tiny scene and run cube, tie points, height sweep and change detection on it in
    this process (a one-thread in-process dask cluster): every kernel meets its real arguments."""
    from offnadir.config import validate
    from offnadir.simulate import simulate

    sim = simulate(tmp / "scene", seed=0, size=SCENE_SIZE)
    dates = (sim.meta["views"]["base"]["acquired"][:10], sim.meta["views"]["target"]["acquired"][:10])
    raw = {"dsm": {"path": str(sim.out_dir / "dsm.tif")},
           # base and target on the base's date form a same-date pair (the height sweep runs);
           # the target again on its own date is the later image change detection compares
           "images": [{"path": str(sim.out_dir / "base.tif"), "name": "base", "date": dates[0]},
                      {"path": str(sim.out_dir / "target.tif"), "name": "mate", "date": dates[0]},
                      {"path": str(sim.out_dir / "target.tif"), "name": "later", "date": dates[1]}],
           "output": {"path": str(tmp / "warmup.zarr")}, "tiling": {"chunk": SCENE_CHUNK},
           "change": {"enabled": True}}
    # then again with the options whose stages have kernels of their own (OPT_IN_OPTIONS)
    configs = [validate(raw, base=".", source="warm-up")]
    for section, options in OPT_IN_OPTIONS.items():
        raw = {**raw, section: {**(raw.get(section) or {}), **options}}
    raw["output"] = {"path": str(tmp / "warmup-options.zarr")}
    configs.append(validate(raw, base=".", source="warm-up"))
    for k, alt in enumerate(OPT_IN_ALTERNATIVES):
        one = {**raw, "output": {"path": str(tmp / f"warmup-alternative{k}.zarr")}}
        for section, options in alt.items():
            one[section] = {**(raw.get(section) or {}), **options}
        configs.append(validate(one, base=".", source="warm-up"))
    # the scene's warnings (weak tie points, dates overriding metadata) are not the user's business
    quiet_logs = logging.getLogger("offnadir")
    level = quiet_logs.level
    quiet_logs.setLevel(logging.ERROR)
    try:
        _run(configs, quiet)
    finally:
        quiet_logs.setLevel(level)


def _run(configs, quiet):
    """detect_config of each config on one one-thread in-process cluster without a dashboard (the
    scheduler's bare HTTP routes on a loopback port)."""
    import logging as _logging
    import warnings

    from distributed import Client, LocalCluster

    from offnadir.pipeline import detect_config

    with warnings.catch_warnings(), \
            LocalCluster(processes=False, n_workers=1, threads_per_worker=1, dashboard_address="127.0.0.1:0",
                         scheduler_kwargs={"dashboard": False}, silence_logs=_logging.CRITICAL) as cluster, \
            Client(cluster) as client:
        warnings.simplefilter("ignore")
        for cfg in configs:
            detect_config(cfg, quiet=quiet, client=client)


def _compile_variants(disp: dict) -> int:
    """Image-dtype variants of the kernels that read image windows, and the threaded twins."""
    import numpy as np
    from numba import types
    from numba.np.numpy_support import from_dtype

    n = 0
    for name, pos in IMAGE_ARGUMENT.items():
        d = disp.get(name)
        for sig in list(d.signatures) if d is not None else ():
            arr = sig[pos]
            if not isinstance(arr, types.Array):
                continue
            for dt in IMAGE_DTYPES:
                new = list(sig)
                new[pos] = arr.copy(dtype=from_dtype(np.dtype(dt)))
                if tuple(new) not in d.overloads:
                    d.compile(tuple(new))
                    n += 1
    for twin, serial in PARALLEL_TWINS.items():
        if twin in disp and serial in disp:
            for sig in disp[serial].signatures:
                if sig not in disp[twin].overloads:
                    disp[twin].compile(sig)
                    n += 1
    return n


def _beyond_the_scene() -> int:
    """Kernels the tiny scene does not reach: the hashed grouping that only tables of 4096 ids or
    more take (:func:`offnadir.change.kernels.group_index`), and the census packer of
    :func:`offnadir.change.census_codes.pack` (checks and tools; a run packs with ``census_words``), and
    the census and reversal ratios of windows too wide for packed sums (fine cells: the sign-reversal
    ratio then comes from :mod:`offnadir.change.reversal`'s own kernel), and the sun estimate's block
    sums (:mod:`offnadir.change.sun_block_sums`: the scene's files carry their sun, so the run never
    estimates one; here one is fitted to a box and its shadow, with the arguments' types the change
    stage passes, float64 heights and samples), the new-building shadow ray
    (:mod:`offnadir.change.shadow_ray_kernels`: the tiny scene's classifier need not be a witness) and
    the shadow classifiers' look-up (:func:`offnadir.change.kernels.bin_values`) and the IR-MAD
    sample's hash (:func:`offnadir.change.kernels.sampled_cells`: a scene that small samples every cell)."""
    import numpy as np

    from offnadir.change import census, census_codes, fit, kernels, shadow_ray, sun_estimate
    from offnadir.change.shadow_ray_kernels import ray_counts

    kernels.group_index(np.arange(8192, dtype=np.int64) % 97)
    w = census_codes.pack(np.zeros((8, 4, 4), np.int8), np.ones((8, 4, 4), bool))
    census.min_census_ratio(w, w, [(0, 0)], 3, packed=False, reversal=True)
    h = np.zeros((48, 48))
    h[16:28, 16:28] = 8.0
    samples = np.where(h > 0, 0.8, 0.6)
    samples[28:36, 16:28] = 0.1  # the box's shadow, the sun to the north
    sun_estimate.fit_sun(h, samples, np.ones(h.shape, bool), 1.0, max_side=48)
    ray_counts(np.zeros((8, 8), np.uint8), *shadow_ray.offsets(1.0, 3), 1, 7, 1, 7)
    kernels.bin_values(np.zeros(4), (-np.inf, 0.5, np.inf), (1.0, 2.0), 0.0)  # shadow classifiers' log-odds
    fit.sampled(0, 0, (4, 4), 0.5)  # the IR-MAD sample's hash (the tiny scene samples every cell)
    return 7


def _cpu_name() -> str:
    try:
        import llvmlite.binding as ll

        return ll.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - a label only
        return "unknown"


def format_report(rep: dict) -> str:
    mods: dict[str, list[int]] = {}
    for k, (here, cached) in rep["kernels"].items():
        m = mods.setdefault(k.rsplit(".", 1)[0], [0, 0])
        m[0] += 1
        m[1] += cached
    lines = [f"numba cache: {rep['cache_dir']} (numba {rep['numba']}, CPU {rep['cpu']})"]
    for m, (a, b) in mods.items():
        comp = rep["compile_seconds"].get(m)
        lines.append(f"  {m}: {a} kernels, {b} signatures cached" +
                     (f"; compiled now: {rep['compiles'][m]} in {comp:.1f} s CPU" if comp else ""))
    lines += [f"  {s}: {w:.1f} s ({c:.1f} s CPU)" for s, (w, c) in rep["steps"].items()]
    lines.append(f"{rep['compiled']} signatures compiled, {rep['loaded']} loaded from the cache; "
                 f"{rep['seconds']:.1f} s ({rep['cpu_seconds']:.1f} s CPU) in all")
    if rep["missing"]:
        lines.append("not reached (compiled when first used): " + ", ".join(rep["missing"]))
    if rep["uncached"]:
        lines.append("declared without cache=True (compiled in every process): " + ", ".join(rep["uncached"]))
    return "\n".join(lines)
