"""Wall and CPU seconds of a run's steps, for the log (``-v``) and the benchmarks
(:class:`Stopwatch`, used by :func:`offnadir.pipeline.run_config`)."""

from __future__ import annotations

import time


class Stopwatch:
    """Wall seconds of a run's steps, for the log (``-v``) and the benchmarks: ``lap(name)`` closes
    the step that ran since the previous lap; :meth:`summary` adds the time from the process's
    start to the first step (interpreter start-up and imports). Each lap also records the CPU
    seconds of this process (every thread: a local cluster's threads work in it), for
    :meth:`cpu_summary`: on a shared machine, CPU says where the work went when wall times wait."""

    def __init__(self):
        self.t0 = self.last = time.perf_counter()
        self.c0 = self.last_cpu = time.process_time()
        self.laps: list[tuple[str, float]] = []
        self.cpu_laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> float:
        t, c = time.perf_counter(), time.process_time()
        took, self.last = t - self.last, t
        self.laps.append((name, took))
        self.cpu_laps.append((name, c - self.last_cpu))
        self.last_cpu = c
        return took

    def summary(self) -> str:
        before = _seconds_since_process_start(self.t0)
        head = "timings (s): " + (f"before the run (interpreter and imports) {before:.2f}, " if before is not None else "")
        return head + ", ".join(f"{n} {s:.2f}" for n, s in self.laps) + f"; run {self.last - self.t0:.2f}"

    def cpu_summary(self) -> str:
        """The same steps in CPU seconds of this process (worker processes not included)."""
        return ("process CPU by step (s): before the run (interpreter and imports) "
                f"{self.c0:.2f}, " + ", ".join(f"{n} {s:.2f}" for n, s in self.cpu_laps)
                + f"; run {self.last_cpu - self.c0:.2f}")


def _seconds_since_process_start(t_perf: float) -> float | None:
    """Seconds between this process's start and the ``time.perf_counter()`` instant ``t_perf``."""
    try:
        import psutil

        started = psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - only a figure for the log
        return None
    return max(0.0, time.time() - (time.perf_counter() - t_perf) - started)
