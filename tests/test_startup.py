"""Start-up costs: ``offnadir warmup`` fills the numba cache for every kernel, a second process
loads them all without compiling, local workers share the cache directory, and ``offnadir
--help`` imports none of the heavy libraries.

The warm-up runs twice in fresh processes on an empty cache directory (the first compiles about
50 signatures: most of this file's ~60 s)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from offnadir import warmup as W


def _env(**kw) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    src = str(Path(W.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update({k: str(v) for k, v in kw.items()})
    return env


def _run(args, env, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def warmed(tmp_path_factory):
    """An empty cache directory, ``offnadir warmup`` run into it once, and its JSON report."""
    cache = tmp_path_factory.mktemp("numba-cache")
    p = _run(["-m", "offnadir.cli", "warmup", "--json"], _env(NUMBA_CACHE_DIR=cache))
    assert p.returncode == 0, p.stderr[-3000:]
    return cache, json.loads(p.stdout)


def test_warmup_fills_the_cache_for_every_kernel(warmed):
    cache, rep = warmed
    assert Path(rep["cache_dir"]) == cache
    assert rep["compiled"] > 0 and rep["uncached"] == []
    names = W.kernels(W.PIPELINE_MODULES)  # a run's kernels: every one is cached
    assert set(names) <= set(rep["kernels"]) and len(names) >= 25
    assert not set(rep["missing"]) & set(names)
    for full in names:
        mod, name = full.rsplit(".", 1)
        stem = Path(sys.modules[mod].__file__).stem
        index = list(cache.rglob(f"{stem}.{name}-*.nbi"))
        data = list(cache.rglob(f"{stem}.{name}-*.nbc"))
        assert index and data, f"no cache files for {full} in {cache}"
        assert rep["kernels"][full][1] >= 1, full
    # the image-window sampler is compiled for every pixel type the readers give
    assert rep["kernels"]["offnadir.cube.kernels.sample_bilinear"][1] >= len(W.IMAGE_DTYPES)


def test_a_second_process_loads_every_kernel_without_compiling(warmed):
    cache, _ = warmed
    p = _run(["-m", "offnadir.cli", "warmup", "--json"], _env(NUMBA_CACHE_DIR=cache, NUMBA_DEBUG_CACHE=1))
    assert p.returncode == 0, p.stderr[-3000:]
    debug = p.stdout[:p.stdout.index("{\n")]  # numba's cache log, then the report
    rep = json.loads(p.stdout[len(debug):])
    assert rep["compiled"] == 0 and rep["compile_seconds"] == {}  # dispatcher stats: no cache miss
    assert rep["loaded"] >= 20
    assert "data loaded" in debug and "saved" not in debug  # numba's own log: loads only


def test_local_workers_use_the_parents_cache_dir(tmp_path):
    """The local cluster's workers get the parent's NUMBA_CACHE_DIR; with the dashboard off, the
    scheduler's remaining HTTP routes listen on loopback only."""
    given = tmp_path / "given"
    code = ("import os; os.environ['NUMBA_CACHE_DIR'] = os.sys.argv[1]\n"
            "from offnadir.cluster import dask_client\n"
            "with dask_client(n_workers=1, quiet=True, options={'dashboard': 'none'}) as c:\n"
            "    print(list(c.run(lambda: os.environ.get('NUMBA_CACHE_DIR')).values()))\n"
            "    print([s.getsockname()[0] for s in c.cluster.scheduler.http_server._sockets.values()])\n")
    p = _run(["-c", code, str(given)], _env(), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert lines[0] == str([str(given)])
    addresses = eval(lines[1])  # noqa: S307 - our own print
    assert addresses and all(a.startswith("127.") for a in addresses), lines[1]


HEAVY = ("numba", "distributed", "dask", "xarray", "matplotlib", "zarr", "rasterio", "scipy")


@pytest.mark.parametrize("argv", [["--help"], ["info", "--help"], ["warmup", "--help"]])
def test_help_imports_no_heavy_library(argv):
    code = ("import contextlib, io, json, sys\nfrom offnadir.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    rc = main(sys.argv[1:])\n"
            f"print(json.dumps([rc, sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    p = _run(["-c", code, *argv], _env())
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.splitlines()[-1]) == [0, []]


def test_a_run_says_when_the_workers_kernels_are_not_cached(warmed, tmp_path):
    code = "from offnadir.cluster import _say_if_cache_is_cold as f; f()"
    cold = _run(["-c", code], _env(NUMBA_CACHE_DIR=tmp_path / "empty"))
    assert cold.returncode == 0 and "offnadir warmup" in cold.stderr and str(tmp_path / "empty") in cold.stderr
    warm = _run(["-c", code], _env(NUMBA_CACHE_DIR=warmed[0]))
    assert warm.returncode == 0 and warm.stderr == ""


def test_warmup_with_a_missing_workdir_is_a_clear_error(tmp_path):
    missing = tmp_path / "not-there"
    p = _run(["-m", "offnadir.cli", "warmup", "--workdir", str(missing)], _env())
    assert p.returncode == 2, p.stderr[-2000:]
    assert str(missing) in p.stderr and "Traceback" not in p.stderr
    assert not missing.exists()
