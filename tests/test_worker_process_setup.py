"""A local cluster's worker processes reuse freed tile memory as its threads do (offnadir.cluster):
glibc is told in the worker's environment, before the process starts, to use one arena and no
mmap, so a freed large buffer in the worker's task thread is reused by the next allocation
instead of being unmapped and faulted in again."""

import os

import pytest

from offnadir import malloc_reuse
from offnadir.cluster import dask_client

pytestmark = pytest.mark.skipif(malloc_reuse._glibc() is None, reason="glibc only")

SIZE = 48 * 2**20  # above glibc's largest mmap threshold (32 MiB): a fresh mapping with its defaults


def test_a_local_worker_process_reuses_a_freed_large_buffer():
    def faults_of_two_touched_buffers():  # in the worker's task thread, where tiles allocate
        import resource

        counts = []
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
            buf = bytearray(SIZE)
            buf[::4096] = b"\x01" * len(range(0, SIZE, 4096))  # touch every page
            del buf
            counts.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
        return os.getpid(), counts

    before = {k: os.environ.get(k) for k in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_MAX_")}
    with dask_client(None, 1, quiet=True, processes=True) as client:
        pid, (first, again) = client.submit(faults_of_two_touched_buffers, pure=False).result()
    # this process's environment is as it was (later subprocesses get glibc's defaults)
    assert {k: os.environ.get(k) for k in before} == before
    pages = SIZE // 4096
    assert pid != os.getpid()  # ran in a worker process, not this one
    assert first > pages // 2  # the first buffer is new memory
    assert again < pages // 10, (first, again)  # the second reuses it (with glibc's defaults: every page again)
