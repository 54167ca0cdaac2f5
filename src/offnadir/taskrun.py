"""Running a batch of dask tasks for a run: :func:`run_tasks` submits them, shows progress (a bar on
a terminal, a line every ``OFFNADIR_PROGRESS_SECONDS`` in a log), re-raises the first failure once
no cancelled task still runs, and stops with an error when the cluster has had no worker for too
long. Split from :mod:`offnadir.cluster` (which starts clusters and re-exports ``run_tasks``)."""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("offnadir.taskrun")

#: seconds a run waits for a worker when the client does not say (``cluster.worker_timeout``)
DEFAULT_WORKER_TIMEOUT = 120.0


def _n_workers(client) -> int:
    try:
        return len(client.scheduler_info(n_workers=-1)["workers"])
    except TypeError:  # older distributed: no n_workers argument
        return len(client.scheduler_info()["workers"])


#: polling of the futures (s): from NAP_MIN after a result, doubling to NAP_MAX while none comes.
#: A fixed 50 ms nap added up to 50 ms to each of the change stage's many small computes.
NAP_MIN, NAP_MAX = 0.002, 0.05


def run_tasks(client, tasks, *, desc: str = "tiles", quiet: bool = False, poll: float = 1.0,
              weights=None) -> list:
    """Compute delayed tasks on the client with a progress bar; re-raise the first failure.
    ``weights``: how many units (tiles) each task does, when a task does several (the progress
    counts units; default one each).
    Stops with an error when the cluster has had no worker for ``client.offnadir_worker_timeout``
    seconds (set by :func:`offnadir.cluster.dask_client`; default 120) while tasks remain."""
    from distributed import as_completed
    from tqdm import tqdm

    if not tasks:
        return []
    timeout = float(getattr(client, "offnadir_worker_timeout", DEFAULT_WORKER_TIMEOUT))
    futures = client.compute(tasks)
    units = [1] * len(futures) if weights is None else [int(w) for w in weights]
    unit_of = {f.key: w for f, w in zip(futures, units)}
    total = sum(units)
    done = 0
    results = []
    ready = as_completed(futures)
    no_worker_since = None
    last_check = time.monotonic()
    nap = NAP_MIN
    lines = _BatchProgress(desc, total) if not quiet and not _is_terminal(sys.stderr) else None
    with tqdm(total=total, desc=desc, unit="tile", disable=quiet or None, file=sys.stderr) as bar:
        try:
            while not ready.is_empty():
                if ready.has_ready():
                    for fut in ready.next_batch(block=False):
                        results.append(fut.result())
                        done += unit_of.get(fut.key, 1)
                        bar.update(unit_of.get(fut.key, 1))
                    if lines is not None:
                        lines.update(done)
                    no_worker_since = None
                    nap = NAP_MIN
                    continue
                _nap(ready, nap)  # short naps first: a stage's small computes return in milliseconds
                nap = min(2 * nap, NAP_MAX)
                now = time.monotonic()
                if now - last_check < poll:
                    continue
                last_check = now
                if lines is not None:
                    lines.update(done)
                if _n_workers(client) > 0:
                    no_worker_since = None
                elif no_worker_since is None:
                    no_worker_since = now
                    log.warning("no dask worker left; waiting up to %g s for one", timeout)
                elif now - no_worker_since > timeout:
                    _raise_no_workers(client, timeout, ready.count())
        except BaseException:
            client.cancel(futures)
            _wait_until_idle(client)
            raise
    if lines is not None:
        lines.update(done, final=True)
    return results


def _nap(ready, seconds: float) -> None:
    """Wait up to ``seconds`` for a result of ``ready`` (``distributed.as_completed``), waking as one
    comes: a plain sleep noticed the last result of a pass up to :data:`NAP_MAX` late, with every
    worker idle meanwhile. (``thread_condition`` is what ``as_completed``'s own blocking iteration
    waits on; a version without it sleeps.)"""
    cond = getattr(ready, "thread_condition", None)
    if cond is None:
        time.sleep(seconds)
        return
    with cond:
        cond.wait_for(ready.has_ready, timeout=seconds)


def _running(dask_worker) -> int:
    st = dask_worker.state
    return st.executing_count + len(st.long_running)


def _wait_until_idle(client, limit: float = 30.0) -> None:
    """After a failure or Ctrl-C: wait (at most ``limit`` s) until no worker still runs a cancelled
    task, so the caller can remove what the tasks wrote without a late write racing the removal
    (cancelling a future does not stop a task that already runs)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            if sum(client.run(_running, on_error="ignore").values()) == 0:
                return
        except Exception:  # noqa: BLE001 - no cluster left to ask: nothing runs
            return
        time.sleep(0.05)
    log.warning("dask workers still run cancelled tasks after %g s; not waiting longer", limit)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _BatchProgress:
    """Progress for logs that are not a terminal (a SLURM job's output, a CI log): one line every
    ``OFFNADIR_PROGRESS_SECONDS`` (default 30) with tasks done, rate and time left."""

    def __init__(self, desc: str, total: int):
        self.desc, self.total = desc, total
        self.t0 = self.last = time.monotonic()
        self.every = float(os.environ.get("OFFNADIR_PROGRESS_SECONDS", "30") or 30)

    def update(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        dt = max(now - self.t0, 1e-9)
        rate = done / dt
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        left = "done" if done >= self.total else (f"about {_hms(eta)} left" if eta != float("inf") else "")
        print(f"offnadir: {self.desc}: {done}/{self.total} ({100 * done / max(self.total, 1):.0f} %), "
              f"{rate:.2f}/s, {_hms(dt)} elapsed, {left}", file=sys.stderr, flush=True)


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _raise_no_workers(client, timeout: float, n_left: int):
    from offnadir.errors import ClusterError

    where = getattr(client.scheduler, "address", "the scheduler")
    raise ClusterError(f"every dask worker of {where} is gone and none came back within {timeout:g} s "
                       f"({n_left} tasks left). Restart workers (`dask worker {where} --nthreads 1`) and run again "
                       "with --resume; cluster.worker_timeout sets the wait.")
