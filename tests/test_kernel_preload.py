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
