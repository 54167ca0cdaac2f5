"""What each notebook of ``notebooks/`` costs when executed as ``tests/test_notebooks.py`` does it
(nbclient, a fresh kernel of this interpreter, from a temporary folder):

    python benchmarks/bench_notebooks.py [NAME.ipynb ...] [--repeat 1]

Per notebook: wall seconds, and CPU seconds of the kernel and every process it started (the dask
nannies and workers of the notebook's own cluster or of offnadir's), summed from psutil polls every
0.2 s (a process that lives less than a poll is missed: a lower bound). The load average before and
after is printed beside them: on a shared machine the wall time follows the load, the CPU seconds
much less. Nothing is asserted; the test checks that the notebooks run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def kernel_manager(folder: Path):
    """A kernel manager whose ``python3`` kernel is this interpreter (as in tests/test_notebooks.py)."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    write_kernel_spec(str(folder / "kernels" / "python3"))
    return KernelManager(kernel_name="python3", kernel_spec_manager=KernelSpecManager(
        kernel_dirs=[str(folder / "kernels")]))


def measure(path: Path) -> dict:
    import nbformat
    import psutil
    from nbclient import NotebookClient

    me, cpu, stop = psutil.Process(), {}, threading.Event()

    def poll():
        while not stop.is_set():
            for p in me.children(recursive=True):
                try:
                    t = p.cpu_times()
                    cpu[p.pid] = max(cpu.get(p.pid, 0.0), t.user + t.system)
                except psutil.Error:
                    pass
            time.sleep(0.2)

    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="bench-notebooks-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        load0 = os.getloadavg()[0]
        th = threading.Thread(target=poll, daemon=True)
        th.start()
        t0 = time.perf_counter()
        NotebookClient(nb, km=kernel_manager(Path(tmp)), timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(work)}}).execute()
        wall = time.perf_counter() - t0
        stop.set()
        th.join()
    return {"wall": wall, "cpu": sum(cpu.values()), "processes": len(cpu), "load": (load0, os.getloadavg()[0])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="notebooks to run (default: all of notebooks/)")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    paths = [NOTEBOOKS / n for n in a.names] or sorted(NOTEBOOKS.glob("*.ipynb"))
    total_wall = total_cpu = 0.0
    print(f"{'notebook':<24} {'wall s':>7} {'CPU s':>7} {'procs':>5}  load before/after")
    for p in paths:
        for _ in range(a.repeat):
            r = measure(p)
            total_wall += r["wall"]
            total_cpu += r["cpu"]
            print(f"{p.name:<24} {r['wall']:7.1f} {r['cpu']:7.1f} {r['processes']:5d}  "
                  f"{r['load'][0]:.1f}/{r['load'][1]:.1f}", flush=True)
    print(f"{'total':<24} {total_wall:7.1f} {total_cpu:7.1f}   ({os.cpu_count()} CPUs, {sys.executable})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
