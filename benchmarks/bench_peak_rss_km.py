"""Peak resident memory of the README's Kahramanmaras stereo ``offnadir detect``, per source tree,
with the numba cache warm (and, with ``--cold``, empty).

Why this exists: a peak RSS read from one ``/usr/bin/time -v offnadir detect ...`` depends on
whether numba had to compile kernels in that run. Every kernel is ``cache=True``; a kernel whose
source file changed since it was cached (or a new kernel) is compiled again by LLVM in the run
process, and that compilation sets the peak: an empty ``NUMBA_CACHE_DIR`` gave 1.14-1.21 GB at
82ea6fc, a2bbb42 and e682f38, the first run of a fresh worktree 1.17 GB. Warm, the peak is a
transient of the change stage's maps pass (both tiles' tasks at once on the 2 threads; RSS sampled
every 0.04 s: ~0.7 GB before it) and its height depends on how the two tasks overlap: warm runs on
2 shared cores (2026-12-06, fixed worktrees) 82ea6fc 0.865-1.01 GB (10 runs, median ~0.91),
a2bbb42 0.88-1.05 GB (7 runs, median ~0.94). One run per tree tells nothing; take the median of
several, after a warm-up.

What it does: for each tree (``--tree SRC``: a ``src`` directory put first on ``PYTHONPATH``;
default the installed package), one warm-up run (numba fills its cache; its figures are printed
and marked), then ``--repeat`` runs per tree, the trees alternated so that load drifts hit both
alike. The peak is ``ru_maxrss`` of the run's process from ``os.wait4`` (the largest single
process: a threaded local cluster is all in it; with worker processes it is the largest one).
``--cold`` adds one run per tree with an empty numba cache directory of its own.

    python benchmarks/bench_peak_rss_km.py                      # HEAD, installed
    git worktree add -f /tmp/wt 82ea6fc --detach
    python benchmarks/bench_peak_rss_km.py --tree src --tree /tmp/wt/src --cold
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

DATA = bc.REAL / "picanteo" / "docs" / "tutorials" / "data"
CARS = bc.REAL / "picanteo" / "derived" / "cars_1.3.0"


def detect_args(out: Path) -> list:
    """The README's Kahramanmaras stereo command (base 2016, the 2023 same-date pair)."""
    return ["detect", "--dsm", str(CARS / "pre" / "dsm.tif"), "--base", str(DATA / "pre_event_img1.tif"),
            "--target", str(DATA / "post_event_img1.tif"), "--target", str(DATA / "post_event_img2.tif"),
            "--date", "2016-04-23", "--date", "2023-04-15", "--date", "2023-04-15", "-o", str(out), "-q"]


def run_once(tree: str | None, work: Path, numba_dir: str | None = None) -> dict:
    """One detect in a fresh process; its peak RSS (GB), wall and CPU seconds."""
    out = work / "km.zarr"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(str(out) + ".stac", ignore_errors=True)
    env = dict(os.environ)
    if tree:
        env["PYTHONPATH"] = os.pathsep.join([str(Path(tree).resolve())] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if numba_dir:
        env["NUMBA_CACHE_DIR"] = numba_dir
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "offnadir.cli", *detect_args(out)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"detect failed (tree {tree or 'installed'}, exit {p.returncode}):\n{err.decode()[-2000:]}")
    return {"peak_gb": ru.ru_maxrss / 1e6, "wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", default=[], help="src directory to put first on PYTHONPATH (repeat to compare)")
    ap.add_argument("--repeat", type=int, default=2, help="warm runs per tree (default 2)")
    ap.add_argument("--cold", action="store_true", help="also one run per tree with an empty numba cache")
    ap.add_argument("--no-warmup", action="store_true", help="count the first run too (cache as it is)")
    a = ap.parse_args(argv)
    trees = a.tree or [None]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_peak_rss_") as tmp:
        work = Path(tmp)
        if a.cold:
            for tree in trees:
                nb = tempfile.mkdtemp(dir=tmp, prefix="numba_")
                rows.append({"tree": tree or "installed", "run": "cold (empty numba cache)", **run_once(tree, work, nb)})
        if not a.no_warmup:
            for tree in trees:
                rows.append({"tree": tree or "installed", "run": "warm-up (not counted)", **run_once(tree, work)})
        for r in range(a.repeat):
            for tree in trees:
                rows.append({"tree": tree or "installed", "run": f"warm {r + 1}", **run_once(tree, work)})
    for r in rows:
        r.update(peak_gb=round(r["peak_gb"], 3), wall_s=round(r["wall_s"], 1), cpu_s=round(r["cpu_s"], 1))
    print(bc.table(rows, ["tree", "run", "peak_gb", "wall_s", "cpu_s"]))
    for tree in trees:
        warm = [r["peak_gb"] for r in rows if r["tree"] == (tree or "installed") and r["run"].startswith("warm ")]
        if warm:
            print(f"{tree or 'installed'}: warm peak RSS median {statistics.median(warm):.3f} GB "
                  f"(min {min(warm):.3f}, max {max(warm):.3f}, {len(warm)} runs)")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
