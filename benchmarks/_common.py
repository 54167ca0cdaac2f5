"""Shared helpers of the offnadir benchmarks: machine facts, timing, peak memory, tables, JSON.

Every benchmark measures all contenders in the same run, on the same inputs, on this machine, and
prints the machine facts next to the figures. Use from a benchmark script::

    import _common as bc                     # benchmarks/ is the script's directory

    t = bc.time_call(lambda: work(), repeat=5, warmup=1, n_items=len(points))
    with bc.PeakMemory() as mem:
        work()
    print(bc.table(rows, ["contender", "best_s", "Mpts_s"]))
    bc.print_machine(bc.machine_facts())
    bc.write_json(path, {"machine": ..., "results": rows})

Nothing here imports offnadir or a peer: benchmarks import what they compare.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: public real data, read in place (see ../shared/data/real/PROVENANCE.md)
REAL = Path(os.environ.get("OFFNADIR_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


# ---------------------------------------------------------------------------- machine facts
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(mod: str) -> str | None:
    try:
        m = __import__(mod)
    except Exception:  # noqa: BLE001 - a missing peer is reported as None
        return None
    return getattr(m, "__version__", "?")


def machine_facts(extra: dict | None = None) -> dict:
    """What the figures depend on: CPUs, load, numba threads and layer, library versions."""
    facts: dict = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_gib": _mem_total_gib(),
        "loadavg_1_5_15": tuple(round(v, 2) for v in os.getloadavg()),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
    }
    if "numba" in sys.modules:
        import numba

        facts["numba"] = numba.__version__
        facts["numba_threads"] = numba.get_num_threads()
        try:
            facts["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel region has run yet
            facts["numba_threading_layer"] = "(not initialised)"
    if "rasterio" in sys.modules:
        import rasterio

        facts["rasterio"] = rasterio.__version__
        facts["gdal"] = rasterio.__gdal_version__
    for env in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "GDAL_NUM_THREADS"):
        if env in os.environ:
            facts[env] = os.environ[env]
    facts.update(extra or {})
    return facts


def print_machine(facts: dict, file=None) -> None:
    print("machine: " + ", ".join(f"{k}={v}" for k, v in facts.items()), file=file or sys.stdout)


# ---------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Wall-clock seconds of ``repeat`` timed calls (after ``warmup`` untimed ones)."""

    times_s: list[float]
    n_items: int | None = None
    #: process CPU seconds over the timed calls (all threads): > wall time means parallel work
    cpu_s: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def best_s(self) -> float:
        return min(self.times_s)

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    def rate(self, which: str = "best") -> float | None:
        """Items per second for the best (or median) call."""
        if not self.n_items:
            return None
        return self.n_items / (self.best_s if which == "best" else self.median_s)

    def as_dict(self) -> dict:
        d = asdict(self)
        d.update(best_s=self.best_s, median_s=self.median_s, rate_best=self.rate("best"),
                 rate_median=self.rate("median"))
        return d


def time_call(fn, *, repeat: int = 5, warmup: int = 1, n_items: int | None = None) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls (JIT compilation, caches, GDAL driver set-up), then
    ``repeat`` timed calls. Returns every time, so callers can report best-of-N and the median."""
    for _ in range(warmup):
        fn()
    times = []
    cpu0 = time.process_time()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(times, n_items, time.process_time() - cpu0)


def interleaved(fns: dict, *, repeat: int = 5, warmup: int = 1, n_items: int | None = None) -> dict:
    """Like :func:`time_call` for several contenders, interleaving their timed calls (round-robin)
    so that a burst of load from elsewhere on the machine hits every contender alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict = {k: [] for k in fns}
    cpu: dict = {k: 0.0 for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
            cpu[k] += time.process_time() - c0
    return {k: Timing(times[k], n_items, cpu[k]) for k in fns}


# ---------------------------------------------------------------------------- memory
def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak resident memory of this process while the block runs, sampled every ``interval_s``
    (sees numpy, numba, GDAL and thread allocations alike), and the children's peak RSS
    (``ru_maxrss`` of waited-for subprocesses such as gdalwarp; a lifetime maximum).

    ``peak_mib`` is the highest RSS seen, ``delta_mib`` its rise over the RSS at entry."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s = interval_s
        self.start_b = 0
        self.peak_b = 0
        self.children_peak_mib = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self):
        while not self._stop.is_set():
            self.peak_b = max(self.peak_b, _rss_bytes())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakMemory":
        self.start_b = self.peak_b = _rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_b = max(self.peak_b, _rss_bytes())
        self.children_peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return False

    @property
    def peak_mib(self) -> float:
        return self.peak_b / 2**20

    @property
    def delta_mib(self) -> float:
        return (self.peak_b - self.start_b) / 2**20


# ---------------------------------------------------------------------------- output
def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        if v == 0:
            return "0"
        if 1e-3 <= abs(v) < 1:
            return f"{v:.{digits}g}"
        if 1 <= abs(v) < 1e6:  # 3 significant digits, at least one decimal below 100
            return f"{v:,.{2 if abs(v) < 10 else 1}f}"
        return f"{v:.2e}"
    return str(v)


def table(rows: list[dict], columns: list[str], headers: list[str] | None = None,
          markdown: bool = True) -> str:
    """A text table (GitHub markdown by default) of ``rows`` restricted to ``columns``."""
    headers = headers or columns
    cells = [[fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(vals):
        parts = [v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths))]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts)

    out = [line(headers)]
    if markdown:  # first column left-aligned, the others (numbers) right-aligned
        out.append("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":"
                                  for i, w in enumerate(widths)) + "|")
    out += [line(r) for r in cells]
    return "\n".join(out)


def write_json(path, payload: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w") as f:
        json.dump(payload, f, indent=2, default=_json_default)
        f.write("\n")


def _json_default(o):
    if hasattr(o, "as_dict"):
        return o.as_dict()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
