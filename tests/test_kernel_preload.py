"""offnadir.kernel_preload: every signature the numba cache holds for a module's kernels is loaded
without compiling anything, and a kernel's first call then loads nothing more (fresh process)."""

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json
import numpy as np
from offnadir import kernel_preload as kp
from offnadir.cube import kernels as K
from numba.core.registry import CPUDispatcher

disp = {n: d for n, d in vars(K).items() if isinstance(d, CPUDispatcher) and d.py_func.__module__ == K.__name__}
cached = {n: len(kp._cached_here(d)) for n, d in disp.items()}
n, missing = kp.load_cached(("offnadir.cube.kernels", "offnadir.no_such_module"))
loaded = {n: len(d.overloads) for n, d in disp.items()}
misses = sum(sum(d.stats.cache_misses.values()) for d in disp.values())
hits = sum(sum(d.stats.cache_hits.values()) for d in disp.values())
# a first call with a cached signature (uint16 image, as the cube samples it) adds no overload
img = np.arange(2 * 8 * 8, dtype=np.uint16).reshape(2, 8, 8)
rr = np.full((3, 3), 2.5); cc = np.full((3, 3), 3.25); out = np.empty((2, 3, 3), np.float32)
before = len(K.sample_bilinear.overloads)
K.sample_bilinear(img, rr, cc, 0.0, 0.0, np.nan, out)
print(json.dumps({"n": n, "missing": missing, "cached": cached, "loaded": loaded, "misses": misses, "hits": hits,
                  "added_by_call": len(K.sample_bilinear.overloads) - before, "value": float(out[0, 0, 0])}))
"""


def test_load_cached_loads_what_the_cache_holds_and_compiles_nothing():
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout.strip().splitlines()[-1])
    if rep["n"] == 0:
        pytest.skip("no cube kernel in the numba cache here (run `offnadir warmup`)")
    assert rep["missing"] == 1  # the module that does not exist is skipped
    assert rep["loaded"] == rep["cached"] and rep["n"] == sum(rep["cached"].values()) == rep["hits"]
    assert rep["misses"] == 0  # nothing compiled
    if rep["cached"]["sample_bilinear"]:
        assert rep["added_by_call"] == 0
    assert rep["value"] == pytest.approx(2.5 * 8 + 3.25)  # the loaded kernel computes (bilinear on a ramp)


def test_inner_kernels_are_those_only_kernels_call():
    """A kernel named in another kernel's code and in no Python code of offnadir's modules is inner
    (its caller's cached machine code holds it); one a Python function calls is not."""
    import types

    import numba
    from numba.core.registry import CPUDispatcher

    from offnadir import kernel_preload as kp

    mod = types.ModuleType("offnadir._test_inner_kernels")
    src = (
        "import numba\n"
        "@numba.njit(cache=False)\n"
        "def _helper(x):\n    return x + 1\n"
        "@numba.njit(cache=False)\n"
        "def _used_both(x):\n    return x * 2\n"
        "@numba.njit(cache=False)\n"
        "def outer(x):\n    return _helper(x) + _used_both(x)\n"
        "def python_caller(x):\n    return outer(x) + _used_both(x)\n"
    )
    import sys

    sys.modules[mod.__name__] = mod
    try:
        exec(compile(src, mod.__name__, "exec"), mod.__dict__)
        ks = [o for o in vars(mod).values() if isinstance(o, CPUDispatcher)]
        for k in ks:  # exec'd functions take the module name from the globals
            assert k.py_func.__module__ == mod.__name__
        assert kp.inner_kernels(ks, CPUDispatcher) == {"_helper"}
        assert mod.python_caller(1) == 6
    finally:
        del sys.modules[mod.__name__]
    assert numba  # imported for the kernels above


def test_real_inner_kernels_and_the_sweep_modules():
    """On the run's own modules: the tie-point search's helpers are inner, its entry points are not;
    without a date of two images the height sweep's modules are left out."""
    from numba.core.registry import CPUDispatcher

    import offnadir.cube.tiepoints  # noqa: F401 - the Python callers of the tie-point kernels
    from offnadir import kernel_preload as kp
    from offnadir.cube import tiepoint_kernels as T

    ks = [o for o in vars(T).values() if isinstance(o, CPUDispatcher) and o.py_func.__module__ == T.__name__]
    inner = kp.inner_kernels(ks, CPUDispatcher)
    assert {"_bilinear", "_ncc_at"} <= inner
    assert not inner & {"ncc_search", "refine_shift", "sample", "gaussian_nearest"}
    assert kp.run_modules(None) == kp.run_modules(True) == kp.RUN_MODULES
    assert set(kp.run_modules(False)) == set(kp.RUN_MODULES) - set(kp.SWEEP_MODULES)
    assert set(kp.SWEEP_MODULES) <= set(kp.RUN_MODULES)
