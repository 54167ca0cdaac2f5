"""offnadir.malloc_reuse: inside the block a freed large buffer is reused without new page faults;
after it glibc's behaviour is back (a large buffer is a fresh mapping again). A local threaded
cluster runs within it (and with the start-up objects frozen out of the garbage collector)."""

import gc
import resource

import pytest

from offnadir import malloc_reuse

pytestmark = pytest.mark.skipif(malloc_reuse._glibc() is None, reason="glibc only")

SIZE = 48 * 2**20  # above glibc's largest mmap threshold (32 MiB): mmapped with its defaults


def _faults_of_a_touched_buffer() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buf = bytearray(SIZE)
    buf[::4096] = b"\x01" * len(range(0, SIZE, 4096))  # touch every page
    del buf
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_freed_buffer_is_reused_inside_and_given_back_after():
    pages = SIZE // 4096
    with malloc_reuse.reuse_freed_memory():
        _faults_of_a_touched_buffer()  # the heap grows once
        again = _faults_of_a_touched_buffer()
        with malloc_reuse.reuse_freed_memory():  # nested: no change
            nested = _faults_of_a_touched_buffer()
    assert again < pages // 10 and nested < pages // 10
    after = _faults_of_a_touched_buffer()  # defaults back: a fresh mapping, every page faulted in
    assert after > pages // 2


def test_local_threaded_cluster_uses_it(monkeypatch):
    from offnadir.cluster import dask_client

    seen = []
    real = malloc_reuse.reuse_freed_memory

    def spy():
        seen.append("entered")
        return real()

    monkeypatch.setattr(malloc_reuse, "reuse_freed_memory", spy)
    frozen_before = gc.get_freeze_count()
    with dask_client(None, 1, quiet=True, processes=False) as client:
        assert client.submit(lambda: malloc_reuse._ACTIVE[-1] is not None).result()
        # the objects that existed at the start are left out of the collections while it runs
        assert gc.get_freeze_count() > frozen_before
    assert seen == ["entered"] and not malloc_reuse._ACTIVE
    assert gc.get_freeze_count() == 0  # given back to the collector
