"""glibc malloc settings while a local cluster runs its workers as threads of this process.

Why: a tile task allocates arrays of megabytes to tens of megabytes (1024² float64 is 8 MiB, the
change stage's per-cell tables more). With glibc's defaults each such array is a fresh ``mmap``
(the threshold starts at 128 KiB and only rises after a free), or lives in a per-thread arena whose
64 MiB heaps are unmapped once empty; either way the next task's arrays are new pages that the
kernel must fault in and zero. Profiled (``perf``) on ``benchmarks/bench_detect.py --size 2048``
(threads): ``clear_page_erms`` alone was 11 % of the run's CPU, the process's system time
2.0-2.7 s of 12-14 CPU-s, 240 000-350 000 minor page faults, and the first task of each pass on a
thread paid it most (the dynamic threshold had not risen yet).

:func:`reuse_freed_memory` sets, for the duration of the cluster: one arena for every thread
created from then on (``M_ARENA_MAX`` 1: the worker threads share the main heap, which has no
64 MiB heap size limit, instead of arenas of their own), no ``mmap`` for large blocks
(``M_MMAP_MAX`` 0: they come from that heap), and no trimming of the heap's free top
(``M_TRIM_THRESHOLD`` at its largest). Freed memory is then reused by the next task instead of
being given back and faulted in again. The heap holds at most the run's own peak (what is free
was in use before), so the peak RSS is not raised. Measured on ``benchmarks/bench_detect.py``'s
2048² scene (``offnadir detect`` defaults, threads; one tree with and without, alternated, 2 shared
cores at load 10-14, 5-6 runs each): minor faults 205 000-322 000 -> 105 000-133 000, system CPU
1.9-2.9 -> 1.2-1.9 s, the process's CPU 11.5-13.1 -> 10.8-12.0 s, peak RSS 1.36-1.39 ->
1.21-1.29 GB (one arena fragments less than one per thread); every store array identical. Arena lock
contention stays small: glibc's per-thread cache serves the small blocks, and Python's own
allocator the Python objects. Outputs are unchanged (allocation only).

On leaving, the mmap and trim settings are put back to glibc's defaults and the free memory is
returned to the system (``malloc_trim``), so that a notebook that ran a local cluster does not
keep the run's peak. The arena limit cannot be undone (glibc fixes it once it applied it): the
process keeps one arena. Not glibc (musl, macOS): nothing is changed, and the log says so.

Within the same block numpy stops advising transparent huge pages for its arrays
(:func:`numpy_hugepages`; numpy otherwise calls ``madvise(MADV_HUGEPAGE)`` on every array of 4 MiB
or more). Why: with the heap reused, huge pages save few faults, while each one is 2 MiB zeroed
(and, with the kernel's default ``defrag=madvise``, possibly compacted) at once, for arrays that
touch only part of it. Measured on ``benchmarks/bench_detect.py``'s 2048² scene (threads, one tree
with and without, alternated, load 11-14): minor faults ~100 000 -> ~255 000 (4 KiB pages instead);
its offnadir run alone, 4 pairs: system CPU 1.97-2.13 -> 1.07-1.31 s, the process's CPU 10.8-12.2 ->
9.8-10.3 s; the whole command, 5 pairs: system CPU 1.71-2.15 (median 1.86) -> 1.13-2.33 (1.30) s,
CPU median 11.0 -> 10.8 s (user CPU a little higher: more, smaller pages), the cube's tile writes
1.14-1.50 -> 1.02-1.12 s wall and 0.26-0.80 -> 0.33-0.42 system CPU-s, end-to-end wall within the
load's noise (median 7.56 -> 7.59 s). Outputs unchanged (allocation only). On this machine (a VM)
a huge-page fault is also the likeliest to need fresh memory from the host. numpy's previous
setting is put back on leaving.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
import sys
from contextlib import contextmanager

log = logging.getLogger("offnadir.malloc_reuse")

#: mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8
#: glibc's defaults, put back on leaving (DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX)
DEFAULT_TRIM, DEFAULT_MMAP_MAX = 128 * 1024, 65536
#: mallopt takes an int: the largest trim threshold it can set (no trimming during the run)
NO_TRIM = 2**31 - 1

_ACTIVE: list = []  # nesting depth: only the outermost block sets and restores


def _glibc():
    """The C library as a ctypes handle when it is glibc with ``mallopt`` and ``malloc_trim``, else None."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


@contextmanager
def reuse_freed_memory():
    """Within the block, freed heap memory is kept for reuse by the next task (see the module
    docstring); on leaving it is returned to the system. A no-op where the C library is not glibc."""
    libc = _glibc() if not _ACTIVE else None
    if _ACTIVE or libc is None:
        if not _ACTIVE:
            log.info("malloc: not glibc; the C library's defaults are kept (tile arrays may be faulted in anew)")
        _ACTIVE.append(None)
        try:
            yield
        finally:
            _ACTIVE.pop()
        return
    ok = all(libc.mallopt(p, v) == 1 for p, v in ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, NO_TRIM)))
    huge = numpy_hugepages(False)
    log.info("malloc: one arena, no mmap, no trimming while the cluster runs (freed tile arrays are reused, not "
             "faulted in again)%s%s", "" if ok else "; glibc refused a setting",
             "; numpy's huge-page advice off" if huge is not None else "")
    _ACTIVE.append(libc)
    try:
        yield
    finally:
        _ACTIVE.pop()
        if huge is not None:
            numpy_hugepages(huge)
        libc.mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        libc.mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM)
        libc.malloc_trim(0)


def numpy_hugepages(enabled: bool) -> bool | None:
    """Whether numpy advises transparent huge pages (``madvise(MADV_HUGEPAGE)``) for the arrays it
    allocates from now on, set to ``enabled``; returns the previous setting, or None where this numpy
    has no such switch (``_set_madvise_hugepage``, numpy >= 1.20; it only acts on Linux)."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    fn = getattr(multiarray, "_set_madvise_hugepage", None)
    return None if fn is None else bool(fn(bool(enabled)))
