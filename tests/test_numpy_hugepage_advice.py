"""offnadir.malloc_reuse: while a local threaded cluster's block runs, numpy no longer advises
transparent huge pages for its large arrays (their memory mapping lacks the kernel's ``hg`` flag,
``/proc/self/smaps`` VmFlags); numpy's own setting is back afterwards."""

import os

import numpy as np
import pytest

from offnadir import malloc_reuse

pytestmark = pytest.mark.skipif(malloc_reuse._glibc() is None or not os.path.exists("/proc/self/smaps"),
                                reason="glibc on Linux only")

SIZE = 16 * 2**20  # numpy advises huge pages for arrays of 4 MiB and more


def _advised(a: np.ndarray) -> bool:
    """Whether the mapping holding ``a``'s data carries MADV_HUGEPAGE (VmFlags ``hg``)."""
    addr = a.ctypes.data + a.nbytes // 2
    inside = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= addr < hi
            elif inside and head == "VmFlags:":
                return "hg" in line.split()[1:]
    raise AssertionError("array's mapping not found")


def test_no_huge_page_advice_inside_and_numpy_setting_back_after():
    before = malloc_reuse.numpy_hugepages(True)
    try:
        outside = np.ones(SIZE, np.uint8)
        if not _advised(outside):
            pytest.skip("this numpy/kernel does not advise huge pages")
        del outside
        with malloc_reuse.reuse_freed_memory():
            a = np.ones(SIZE, np.uint8)
            assert not _advised(a)
            assert malloc_reuse.numpy_hugepages(False) is False  # the switch is off inside
            with malloc_reuse.reuse_freed_memory():  # nested: nothing changes, nothing restored early
                pass
            b = np.ones(SIZE, np.uint8)
            assert not _advised(b)
            del a, b
        assert malloc_reuse.numpy_hugepages(True) is True  # numpy's setting put back on leaving
        after = np.ones(SIZE, np.uint8)
        assert _advised(after)
    finally:
        malloc_reuse.numpy_hugepages(before)


def test_previous_setting_is_what_comes_back():
    before = malloc_reuse.numpy_hugepages(False)
    try:
        with malloc_reuse.reuse_freed_memory():
            pass
        assert malloc_reuse.numpy_hugepages(False) is False  # it was off before: off again, not forced on
    finally:
        malloc_reuse.numpy_hugepages(before)


def _advice_was_on() -> bool:
    return malloc_reuse.numpy_hugepages(False)


@pytest.mark.parametrize("processes", [False, True])
def test_local_cluster_workers_run_without_it(processes):
    from offnadir.cluster import dask_client

    before = malloc_reuse.numpy_hugepages(True)
    try:
        with dask_client(None, 1, quiet=True, processes=processes) as client:
            # the switch reports its previous state: off in the worker (a thread here, or a process)
            assert client.submit(_advice_was_on, pure=False).result() is False
        if not processes:
            assert malloc_reuse.numpy_hugepages(True) is True  # this process's setting is back
    finally:
        malloc_reuse.numpy_hugepages(before)
