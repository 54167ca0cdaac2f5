"""Local rasters kept open per thread while windows are read from them, so that GDAL's block cache
serves the next window of the same file.

Why: an image stored in compressed strips (one DEFLATE strip per image row, as the simulator and
many vendors write them) is decompressed strip by strip, the whole width of the image, whatever
window is asked for; closing the file drops the decompressed strips. Two cube tiles side by side
read the same rows, and the tie-point blocks read many small windows of the same rows: measured on
the 2048^2 simulated scene, a 1100-row window costs 50 ms of CPU on a freshly opened file and 2 ms
on one still open that had just read the neighbouring window. The cache holds the decompressed
blocks within ``GDAL_CACHEMAX`` (the local cluster sets it per worker): a worker may now keep up to
that much decompressed image data between reads, where closing each file used to drop it.

Rules that keep this exact and safe:

* one handle per thread (GDAL datasets are not thread-safe): threads of a worker never share one;
* a handle is reused only while the file is unchanged: its key is the path with the file's device,
  inode, size and modification time (a file replaced or rewritten is opened afresh; only a rewrite
  in place to the same size within the file system's timestamp granularity would go unseen, and
  offnadir never writes its inputs);
* only local files: a URL is opened and closed each time, as before (its reads are ranges);
* at most :data:`MAX_OPEN` files per thread, least recently used closed first; a process that
  forked drops its parent's handles.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager

#: open rasters kept per thread (a cube reads the DSM and a few images; more only in long sessions)
MAX_OPEN = 8

_local = threading.local()


def _cache() -> OrderedDict:
    c = getattr(_local, "cache", None)
    if c is None or getattr(_local, "pid", None) != os.getpid():
        c = _local.cache = OrderedDict()
        _local.pid = os.getpid()
    return c


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@contextmanager
def reading(path: str):
    """A rasterio dataset of ``path`` for reading: this thread's open one when the file has not
    changed since it was opened, else a new one (kept open for the next read). URLs and paths that
    are not plain files are opened and closed as usual."""
    import rasterio

    path = str(path)
    stamp = _stamp(path) if "://" not in path and not path.startswith("/vsi") else None
    if stamp is None:
        with rasterio.open(path) as ds:
            yield ds
        return
    cache = _cache()
    hit = cache.get(path)
    if hit is not None and hit[0] == stamp and not hit[1].closed:
        cache.move_to_end(path)
        ds = hit[1]
    else:
        if hit is not None:
            _close(cache.pop(path)[1])
        ds = rasterio.open(path)
        cache[path] = (stamp, ds)
        while len(cache) > MAX_OPEN:
            _close(cache.popitem(last=False)[1][1])
    try:
        yield ds
    except BaseException:
        # a failed read may leave the handle in a bad state: do not hand it out again
        if cache.get(path, (None, None))[1] is ds:
            del cache[path]
        _close(ds)
        raise


def _close(ds) -> None:
    try:
        ds.close()
    except Exception:  # noqa: BLE001 - closing a handle we drop; nothing to report
        pass


def close_all() -> None:
    """Close this thread's open rasters (tests; a caller about to delete or rewrite the files)."""
    cache = _cache()
    while cache:
        _close(cache.popitem()[1][1])
