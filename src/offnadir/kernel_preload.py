"""Load the run's numba kernels from the cache in a background thread when a local cluster's
workers are threads of this process.

Why: a cached kernel is loaded on its first call (index and object file read, LLVM linking),
~0.3 CPU-s for the ~35 kernels of a detect run, but under numba's one global compiler lock: the
first task of each pass on each worker thread waited for the other thread's loads of that pass's
kernels (measured on bench_detect's 2048² run, threads, 2 shared cores: 0.30 thread CPU-s of
loading took 1.55-1.77 s of the threads' wall time, most of it waiting for the lock). Loaded at
the cluster's start, while the client opens the inputs and plans and the workers mostly wait,
the passes find them ready. Only what the cache holds for this CPU and the current sources is
loaded (nothing is compiled here: a kernel that is not cached is compiled on first use as
before, and ``offnadir warmup`` fills the cache); the loaded machine code is the same code the
first call would load, so outputs are unchanged.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("offnadir.kernel_preload")

#: kernel modules of a detect run, in the order the run first needs them (the cube's, then the
#: change stage's); those of ``offnadir.warmup.PIPELINE_MODULES`` plus the change stage's own
RUN_MODULES = ("offnadir.camera.kernels", "offnadir.cube.kernels", "offnadir.cube.tiepoint_kernels",
               "offnadir.cube.visibility_bound_kernels", "offnadir.cube.visibility_kernels",
               "offnadir.cube.sweep_kernels", "offnadir.cube.window_sums_kernels", "offnadir.cube.sweep_level_kernels",
               "offnadir.cube.sweep_views_kernels",
               "offnadir.change.sun_kernels", "offnadir.change.sun_block_sums", "offnadir.change.slic_kernels",
               "offnadir.change.segment_kernels", "offnadir.change.parallax_kernels", "offnadir.change.kernels",
               "offnadir.change.group_kernels",
               "offnadir.change.census_codes",
               "offnadir.change.census", "offnadir.change.irmad", "offnadir.change.shadow",
               "offnadir.change.outline", "offnadir.change.rim_profile", "offnadir.change.longer_shadow",
               "offnadir.change.crown", "offnadir.change.crown_shadow_kernels", "offnadir.change.reversal",
               "offnadir.change.shadow_ray_kernels",
               "offnadir.change.calibrate")
#: the height sweep's kernel modules: a run calls them only when a date has two images or more (the sweep
#: stage and the change stage's height evidence); without such a group the preload leaves them alone
SWEEP_MODULES = ("offnadir.cube.sweep_kernels", "offnadir.cube.window_sums_kernels",
                 "offnadir.cube.sweep_level_kernels", "offnadir.cube.sweep_views_kernels")


def run_modules(multi_view: bool | None = None) -> tuple[str, ...]:
    """:data:`RUN_MODULES`, without :data:`SWEEP_MODULES` when the run is known to have no date with
    two images or more (``multi_view`` False; None: not known, all of them)."""
    return RUN_MODULES if multi_view is None or multi_view else tuple(m for m in RUN_MODULES
                                                                      if m not in SWEEP_MODULES)


def _names_in(code, out: set) -> None:
    """Every name code object ``code`` and the code nested in it load (globals, attributes)."""
    out.update(code.co_names)
    for c in code.co_consts:
        if hasattr(c, "co_names"):
            _names_in(c, out)


def _python_names(dispatcher_type) -> set:
    """Names the Python code (not the kernels) of the imported offnadir modules refers to: the
    module's functions and its classes' methods (a conservative superset of the kernels it calls)."""
    import sys

    names: set = set()
    for modname, mod in list(sys.modules.items()):
        if mod is None or not (modname == "offnadir" or modname.startswith("offnadir.")):
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, dispatcher_type):
                continue
            members = list(vars(obj).values()) if isinstance(obj, type) and obj.__module__ == modname else [obj]
            for f in members:
                f = getattr(f, "__func__", f)
                code = getattr(f, "__code__", None)
                if code is not None and getattr(f, "__module__", None) == modname:
                    _names_in(code, names)
    return names


def inner_kernels(dispatchers, dispatcher_type) -> set:
    """Names of the kernels among ``dispatchers`` that only other kernels call: named in another
    kernel's code and in no Python code of the imported offnadir modules. A cached caller's machine
    code holds what it calls (measured: after bench_detect's run without the preload, 30 such kernels
    had no signature loaded), so loading them is work no run needs; a name also used in Python (or
    one the scan cannot see: a caller module not imported yet) is kept."""
    in_kernels: set = set()
    for d in dispatchers:
        own: set = set()
        _names_in(d.py_func.__code__, own)
        in_kernels |= own - {d.py_func.__name__}
    return {d.py_func.__name__ for d in dispatchers} & in_kernels - _python_names(dispatcher_type)


def _cached_here(d) -> list:
    """Signatures of dispatcher ``d`` that its cache holds for this CPU and its current source."""
    try:
        magic = d.targetctx.codegen().magic_tuple()
        return [key[0] for key in d._cache._cache_file._load_index() if key[1] == magic]
    except Exception:  # noqa: BLE001 - no cache or an unreadable index: nothing to load
        return []


def load_cached(modules=RUN_MODULES, *, inner: bool = True) -> tuple[int, int]:
    """Load every signature the numba cache holds for the kernels of ``modules`` (in order);
    returns (signatures loaded, modules that could not be imported). A module that is gone or
    fails to import is skipped (the run imports it again and raises what it must). ``inner=False``:
    not the kernels that only other kernels call (:func:`inner_kernels`)."""
    import importlib

    from numba.core.registry import CPUDispatcher

    n, missing = 0, 0
    kernels = []
    for modname in modules:
        try:
            mod = importlib.import_module(modname)
        except Exception as e:  # noqa: BLE001 - see the docstring
            log.debug("kernel preload: %s not imported (%s)", modname, e)
            missing += 1
            continue
        kernels += [obj for obj in list(vars(mod).values())
                    if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ == modname]
    skip = set()
    if not inner:
        try:
            skip = inner_kernels(kernels, CPUDispatcher)
        except Exception as e:  # noqa: BLE001 - an object the scan cannot read: load every kernel as before
            log.debug("kernel preload: inner kernels not found (%s); loading all", e)
    for obj in kernels:
        if obj.py_func.__name__ not in skip:
            for sig in _cached_here(obj):
                if tuple(sig) in obj.overloads:
                    continue
                try:
                    obj.compile(sig)
                    n += 1
                except Exception as e:  # noqa: BLE001 - the first call loads or compiles it as before
                    log.debug("kernel preload: %s%s not loaded (%s)", obj.py_func.__name__, sig, e)
    return n, missing


def _run(modules) -> None:
    t0, c0 = time.perf_counter(), time.thread_time()
    n, missing = load_cached(modules, inner=False)
    log.info("numba kernels: %d cached signatures of %d modules loaded in the background (%.2f s, %.2f CPU-s; "
             "not the kernels only other kernels call%s)%s", n, len(modules), time.perf_counter() - t0,
             time.thread_time() - c0, "" if len(modules) == len(RUN_MODULES) else
             ", nor the height sweep's: no date has two images", f"; {missing} modules not found" if missing else "")


def start(modules=RUN_MODULES) -> threading.Thread:
    """:func:`load_cached` in a daemon thread; returns the thread."""
    t = threading.Thread(target=_run, args=(tuple(modules),), name="offnadir-kernel-preload", daemon=True)
    t.start()
    return t
