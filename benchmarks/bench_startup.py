"""What a command costs before and around its work: imports, the local cluster, the store, and
numba compilation in a fresh environment against one that ``offnadir warmup`` prepared.

    python benchmarks/bench_startup.py [--size 512] [--workers 2] [--repeat 3] [--no-demo] [--no-fixed]
                                       [--workdir DIR] [--json out.json]

Every figure comes from fresh processes, as a user meets it (wall seconds, and CPU seconds of the
process and all its waited-for children: the dask nannies and workers):

1. **fixed costs**: the bare interpreter; ``import offnadir.cli``; ``offnadir --help``; the imports of
   a run (``offnadir.pipeline``, then all that ``offnadir coregister`` imports: ``distributed`` and
   ``zarr`` too; not xarray, pandas, rioxarray or dask.array, which only readers of the store pay:
   their import is timed apart); a local cluster (``offnadir.cluster.dask_client``) started, one
   task round trip, closed, with 1 and ``--workers`` workers: worker processes with the dashboard
   on and off, and threads in the command's process (what a small plan gets by default,
   ``cluster.local_workers: auto``); the cube store opened (``xarray.open_zarr``) and closed. Best
   of ``--repeat``.
2. **compilation**: ``offnadir warmup`` into an empty cache directory (cold: compile seconds per
   kernel module, the CPU of the compiling thread) and again (warm: nothing compiled); loading every
   cached kernel into one process (what each worker pays).
3. **cold-environment penalty**: ``offnadir coregister`` on a simulated ``--size``² scene with
   ``--workers`` workers: (a) an empty cache, (b) the first run on the cache the cold
   ``offnadir warmup`` of step 2 filled, (c) the same command again; penalty = a - c and b - c
   (target b - c <= 5 s), and the signatures numba compiled during each run (new entries in the
   cache: a count that the machine's load does not blur). ``offnadir demo`` the same way (after
   coregister) unless ``--no-demo``.

Nothing is asserted: tests/test_startup.py checks the machinery (the cache is filled and used).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

SRC = bc.ROOT / "src"


def _env(cache: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_")}
    env["PYTHONPATH"] = str(SRC) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    return env


def run(args, env, *, check=True) -> dict:
    """Run ``python args`` in a fresh process: wall and CPU seconds (with children), stdout."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if check and p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, args))}\n{p.stderr[-3000:]}")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "stdout": p.stdout, "stderr": p.stderr}


def best(args, env, repeat) -> dict:
    runs = [run(args, env) for _ in range(repeat)]
    return {"wall_s": min(r["wall_s"] for r in runs), "cpu_s": min(r["cpu_s"] for r in runs),
            "stdout": runs[-1]["stdout"]}


CLUSTER_CODE = """
import json, sys, time
t0 = time.perf_counter()
from offnadir.cluster import dask_client
t1 = time.perf_counter()
cm = dask_client(n_workers=int(sys.argv[1]), quiet=True, options={"dashboard": sys.argv[2]},
                 processes=sys.argv[3] == "processes")
client = cm.__enter__()
t2 = time.perf_counter()
client.submit(lambda: 1, pure=False).result()
t3 = time.perf_counter()
cm.__exit__(None, None, None)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "start_s": t2 - t1, "first_task_s": t3 - t2, "close_s": t4 - t3}))
"""

STORE_CODE = """
import json, sys, time
import xarray as xr
import zarr
from xarray.backends import zarr as _backend
t0 = time.perf_counter()
ds = xr.open_zarr(sys.argv[1], consolidated=None)
n = len(ds.variables)
t1 = time.perf_counter()
ds.close()
t2 = time.perf_counter()
print(json.dumps({"open_s": t1 - t0, "close_s": t2 - t1, "variables": n}))
"""

LOAD_CODE = """
import json, time
from offnadir.warmup import kernels
t0 = time.perf_counter()
disp = kernels()
t1 = time.perf_counter()
n = 0
for d in disp.values():
    for key in d._cache._cache_file._load_index():
        d.compile(key[0])
        n += 1
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "signatures": n,
                  "compiled": sum(sum(d.stats.cache_misses.values()) for d in disp.values())}))
"""


def fixed_costs(work: Path, workers: int, repeat: int, store: Path) -> list[dict]:
    env = _env(work / "cache-warm")
    rows = []
    for label, args in [("python -c pass (interpreter)", ["-c", "pass"]),
                        ("import offnadir.cli", ["-c", "import offnadir.cli"]),
                        ("offnadir --help", ["-m", "offnadir.cli", "--help"]),
                        ("import offnadir.pipeline", ["-c", "import offnadir.pipeline"]),
                        ("import offnadir.pipeline, distributed, zarr (a coregister run's imports)",
                         ["-c", "import offnadir.pipeline, distributed, zarr"]),
                        ("import distributed", ["-c", "import distributed"]),
                        ("import xarray, rioxarray, dask.array (readers of the store; not a run)",
                         ["-c", "import xarray, rioxarray, dask.array"])]:
        r = best(args, env, repeat)
        rows.append({"what": label, "wall_s": r["wall_s"], "cpu_s": r["cpu_s"]})
    for n in sorted({1, workers}):
        for kind, dash in (("processes", "127.0.0.1:0"), ("processes", "none"), ("threads", "127.0.0.1:0")):
            runs = [json.loads(run(["-c", CLUSTER_CODE, str(n), dash, kind], env)["stdout"].splitlines()[-1])
                    for _ in range(repeat)]
            b = {k: min(r[k] for r in runs) for k in runs[0]}
            shape = f"{n} worker process(es)" if kind == "processes" else f"{n} thread(s) in this process"
            rows.append({"what": f"local cluster, {shape}, dashboard {'on' if dash != 'none' else 'off'}: "
                                 f"start / first task / close",
                         "wall_s": b["start_s"] + b["first_task_s"] + b["close_s"],
                         "detail": f"{b['start_s']:.2f} / {b['first_task_s']:.2f} / {b['close_s']:.2f} s"})
    runs = [json.loads(run(["-c", STORE_CODE, str(store)], env)["stdout"].splitlines()[-1]) for _ in range(repeat)]
    rows.append({"what": f"cube store open / close ({runs[0]['variables']} variables)",
                 "wall_s": min(r["open_s"] for r in runs) + min(r["close_s"] for r in runs),
                 "detail": f"{min(r['open_s'] for r in runs):.3f} / {min(r['close_s'] for r in runs):.3f} s"})
    return rows


def compilation(work: Path) -> tuple[list[dict], dict]:
    cache = work / "cache-compile"
    shutil.rmtree(cache, ignore_errors=True)
    cold = run(["-m", "offnadir.cli", "warmup", "--json"], _env(cache))
    warm = run(["-m", "offnadir.cli", "warmup", "--json"], _env(cache))
    rc, rw = json.loads(cold["stdout"]), json.loads(warm["stdout"])
    load = json.loads(run(["-c", LOAD_CODE], _env(cache))["stdout"].splitlines()[-1])
    rows = [{"what": "offnadir warmup, empty cache (cold)", "wall_s": cold["wall_s"], "cpu_s": cold["cpu_s"],
             "detail": f"{rc['compiled']} signatures compiled in {sum(rc['compile_seconds'].values()):.1f} s CPU"},
            {"what": "offnadir warmup again (warm)", "wall_s": warm["wall_s"], "cpu_s": warm["cpu_s"],
             "detail": f"{rw['compiled']} compiled, {rw['loaded']} loaded"},
            {"what": "one process loads every cached kernel", "wall_s": load["load_s"],
             "detail": f"{load['signatures']} signatures, {load['compiled']} compiled; kernel module imports "
                       f"{load['import_s']:.2f} s"}]
    per_module = [{"module": m, "signatures": rc["compiles"][m], "compile_cpu_s": s}
                  for m, s in sorted(rc["compile_seconds"].items(), key=lambda kv: -kv[1])]
    return rows, {"cold": rc, "warm": rw, "load": load, "per_module": per_module}


def _entries(cache: Path) -> int:
    """Compiled signatures stored in a numba cache directory (its .nbc data files)."""
    return sum(1 for _ in cache.rglob("*.nbc")) if cache.is_dir() else 0


def penalty(work: Path, label: str, argv_for, warmed_cache: Path) -> list[dict]:
    """argv_for(out) -> the command; (a) an empty cache, (b) the first run with ``warmed_cache``
    (filled by ``offnadir warmup``), (c) the same again."""
    rows = []
    cold_cache = work / f"cache-{label}-cold"
    shutil.rmtree(cold_cache, ignore_errors=True)
    for case, cache in [("a: empty numba cache", cold_cache), ("b: first run after offnadir warmup", warmed_cache),
                        ("c: the same again (warm)", warmed_cache)]:
        out = work / f"{label}-{case[0]}"
        before = _entries(cache)
        r = run(argv_for(out), _env(cache))
        # machine code numba wrote during the run: compilations, whatever the machine's load
        rows.append({"what": f"{label}, {case}", "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                     "new_entries": _entries(cache) - before})
    c = rows[2]
    for r, tag in ((rows[0], "a - c"), (rows[1], "b - c")):
        r["penalty_s"] = r["wall_s"] - c["wall_s"]
        r["penalty_cpu_s"] = r["cpu_s"] - c["cpu_s"]
        r["detail"] = tag
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512, help="simulated scene for coregister (default 512)")
    ap.add_argument("--workers", type=int, default=2, help="local workers of the timed commands (default 2)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N for the fixed costs (default 3)")
    ap.add_argument("--no-demo", action="store_true", help="skip offnadir demo cold/warm")
    ap.add_argument("--no-fixed", action="store_true", help="skip the fixed costs")
    ap.add_argument("--workdir", help="keep the scene, stores and caches here (default: a temporary folder)")
    ap.add_argument("--json", help="write every figure to this JSON file")
    a = ap.parse_args(argv)
    tmp = None if a.workdir else tempfile.TemporaryDirectory(prefix="bench-startup-")
    work = Path(a.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    facts = bc.machine_facts({"workers": a.workers, "size": a.size})
    bc.print_machine(facts)

    scene = work / "scene"
    if not (scene / "scene.json").is_file():
        run(["-m", "offnadir.cli", "simulate", str(scene), "--size", str(a.size)], _env(work / "cache-warm"))

    def coregister(out):
        return ["-m", "offnadir.cli", "coregister", "--dsm", str(scene / "dsm.tif"), "--image", str(scene / "base.tif"),
                "--image", str(scene / "target.tif"), "-o", str(out), "--overwrite", "--quiet",
                "--workers", str(a.workers), "--chunk", "256"]

    comp_rows, comp = compilation(work)  # its cold warm-up fills the cache the (b) runs use
    warmed = work / "cache-compile"
    pen = penalty(work, "offnadir coregister", coregister, warmed)
    if not a.no_demo:
        pen += penalty(work, "offnadir demo", lambda out: ["-m", "offnadir.cli", "demo", str(out), "--overwrite",
                                                           "--quiet", "--workers", str(a.workers)], warmed)
    fixed = [] if a.no_fixed else fixed_costs(work, a.workers, a.repeat, work / "offnadir coregister-c")

    cols, heads = ["what", "wall_s", "cpu_s", "detail"], ["", "wall s", "CPU s (with children)", ""]
    if fixed:
        print("\n## Fixed costs (fresh processes, best of %d)\n" % a.repeat)
        print(bc.table(fixed, cols, heads))
    print("\n## numba compilation\n")
    print(bc.table(comp_rows, cols, heads))
    print()
    print(bc.table(comp["per_module"], ["module", "signatures", "compile_cpu_s"],
                   ["kernel module (cold warm-up)", "signatures compiled", "compile CPU s"]))
    print(f"\n## Cold-environment penalty ({a.size}² scene, {a.workers} workers, chunk 256)\n")
    print(bc.table(pen, ["what", "wall_s", "cpu_s", "new_entries", "penalty_s", "penalty_cpu_s", "detail"],
                   ["", "wall s", "CPU s", "signatures compiled", "penalty wall s", "penalty CPU s", ""]))
    print("\nmachine load after the run: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    if a.json:
        bc.write_json(a.json, {"machine": facts, "fixed": fixed, "compilation": comp_rows, "per_module":
                               comp["per_module"], "penalty": pen})
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
