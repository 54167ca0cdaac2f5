"""The tie-point blocks' measurements as dask tasks (graph layer: which task measures which blocks;
the measurements themselves are :func:`offnadir.cube.tiepoints.block_data`'s).

A gather runs one task per scheduler thread, each a run of consecutive blocks (:func:`task_groups`);
which task measures a block does not change its data."""

from __future__ import annotations

import dask

from offnadir.cube.tiepoints import TieOptions, block_data


def block_data_row(plan, tiles, half: int, pad: int, dh_step, suns=None) -> list[dict]:
    """:func:`block_data` of several blocks (a dask task), their input files kept open in between
    (:func:`offnadir.io.open_files.session`): neighbouring blocks of one block row read the same
    image rows."""
    from offnadir.io.open_files import session

    with session():
        return [block_data(plan, t, half, pad, dh_step, suns) for t in tiles]


def task_groups(n_blocks: int, n_threads: int) -> list[range]:
    """The blocks of one gather split into tasks: ``min(n_blocks, n_threads)`` runs of consecutive
    blocks (tile order, so mostly whole block rows, whose image rows each task decodes once), their
    lengths differing by at most one. One task per block row left a thread idle while the other
    measured the last row (a stage of three rows on two threads: two rows' time for one and a half
    rows' work); one task per block decodes the shared image rows once per block."""
    n = max(1, min(n_blocks, n_threads))
    q, r = divmod(n_blocks, n)
    bounds = [0]
    for g in range(n):
        bounds.append(bounds[-1] + q + (1 if g < r else 0))
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def scheduler_threads() -> int:
    """Threads the current dask scheduler runs tasks on: a ``distributed`` client's workers'
    threads, else the cores this process may use."""
    import os

    client = getattr(dask.base.get_scheduler(), "__self__", None)
    nthreads = getattr(client, "nthreads", None)
    if callable(nthreads):
        try:
            return max(1, int(sum(nthreads().values())))
        except Exception:  # noqa: BLE001 - a client that cannot say: the local count below
            pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gather(plan, tiles, opts: TieOptions, dh_step, suns=None, threads: int | None = None) -> list[dict]:
    """Block data of every tie block (in the order of ``tiles``), computed with the current dask
    scheduler: one task per thread of it (``threads``, else :func:`scheduler_threads`, a round trip
    to a distributed scheduler), each a run of consecutive blocks (:func:`task_groups`). Which task
    computes a block does not change its data."""
    plan_node = dask.delayed(plan, pure=True, traverse=False)
    pad = int(opts.search_px) + 3
    groups = task_groups(len(tiles), threads or scheduler_threads())
    parts = dask.compute(*[dask.delayed(block_data_row, pure=True)(plan_node, [tiles[n] for n in idx], opts.half, pad,
                                                                 dh_step, suns) for idx in groups])
    out: list = [None] * len(tiles)
    for idx, part in zip(groups, parts):
        for n, d in zip(idx, part):
            out[n] = d
    return out
