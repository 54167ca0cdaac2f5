"""Benchmark: ``offnadir simulate`` as a user runs it — wall time, CPU time and peak RSS per size.

Each size runs the CLI (``python -m offnadir.cli simulate OUT --size S --seed N [--preset P]``)
in a fresh process, one after the other; the figures come from ``os.wait4`` on that process
(its own CPU time and peak resident set size, nothing else's). The first run of a fresh
environment also compiles the numba kernels (cached afterwards): ``--warm`` runs a 64² scene
first so the table shows the render, not the compilation. The load average before each run is
printed: the machine is shared, so wall time on a loaded machine is CPU time / cores available.

    python benchmarks/bench_simulate.py [--sizes 1024 2048 4096] [--seed 0] [--preset default|hard]
                                        [--work /tmp/bench_simulate] [--warm] [--keep] [--json out.json]

Targets (issue 11 item 5): 4096² in a few minutes, peak RSS <= 4 GB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

TARGET_RSS_GB = 4.0


def run_once(out: Path, size: int, seed: int, preset: str) -> dict:
    """One ``offnadir simulate`` process; wall, CPU (user + system) and peak RSS from wait4."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "offnadir.cli", "simulate", str(out), "--size", str(size), "--seed", str(seed),
           "--preset", preset]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return dict(size=size, preset=preset, wall_s=wall, cpu_s=ru.ru_utime + ru.ru_stime,
                peak_rss_gb=ru.ru_maxrss * 1024 / 1e9, load_before=load,
                image_mpx=_image_mpx(out), cmd=" ".join(cmd[1:]))


def _image_mpx(out: Path) -> float:
    import json

    meta = json.loads((out / "scene.json").read_text())
    return sum(v["shape"][0] * v["shape"][1] for v in meta["views"].values()) / 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="default", choices=("default", "hard"))
    ap.add_argument("--work", default="/tmp/bench_simulate")
    ap.add_argument("--warm", action="store_true", help="run a 64² scene first (numba cache filled)")
    ap.add_argument("--keep", action="store_true", help="keep the simulated scenes")
    ap.add_argument("--json", help="write every figure to this JSON file")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.warm:
        run_once(work / "warm", 64, args.seed, args.preset)
    rows = []
    for size in args.sizes:
        r = run_once(work / f"s{size}", size, args.seed, args.preset)
        r["rss_ok"] = r["peak_rss_gb"] <= TARGET_RSS_GB
        rows.append(r)
        print(f"size {size}: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, peak RSS {r['peak_rss_gb']:.2f} GB "
              f"(load before {r['load_before']:.2f})", flush=True)
        if not args.keep:
            shutil.rmtree(work / f"s{size}", ignore_errors=True)
    print()
    print(bc.table(rows, ["size", "preset", "image_mpx", "wall_s", "cpu_s", "peak_rss_gb", "rss_ok", "load_before"],
                   ["DSM cells/side", "preset", "image Mpx (2 views)", "wall s", "CPU s", "peak RSS GB",
                    f"<= {TARGET_RSS_GB:g} GB", "load avg before"]))
    print()
    bc.print_machine(bc.machine_facts())
    if args.json:
        bc.write_json(args.json, {"machine": bc.machine_facts(), "results": rows})
    return 0 if all(r["rss_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
