"""Local rasters kept open by a thread for the length of one piece of work (a :func:`session`), so
that GDAL's block cache serves the next window of the same file.

Why: an image stored in compressed strips (one DEFLATE strip per image row, as the simulator and
many vendors write them) is decompressed strip by strip, the whole width of the image, whatever
window is asked for; closing the file drops the decompressed strips. Two cube tiles side by side
read the same rows, and the tie-point blocks of one block row read many small windows of the same
rows: measured on the 2048^2 simulated scene, a 1100-row window costs 50 ms of CPU on a freshly
opened file and 2 ms on one still open that had just read the neighbouring window.

Why only in a session: an open file keeps its decompressed blocks (up to ``GDAL_CACHEMAX``, which
for a process that did not set it is 5 % of the machine's memory) until it is closed. Kept open
for good, every thread of a threaded local cluster would end up holding the images it read, a
few hundred MB each on a 4096^2 plan. A session closes this thread's files when it ends: the
extra memory is held only while the task that reads those windows runs. Outside a session each
read opens and closes its file, as before.

Rules that keep this exact and safe:

* one handle per thread (GDAL datasets are not thread-safe): threads never share one;
* a handle is reused only while the file is unchanged: its key is the path with the file's device,
  inode, size and modification time (a file replaced or rewritten is opened afresh; only a rewrite
  in place to the same size within the file system's timestamp granularity would go unseen, and
  offnadir never writes its inputs);
* only local files: a URL is opened and closed each time (its reads are ranges);
* at most :data:`MAX_OPEN` files per thread, least recently used closed first; a process that
  forked drops its parent's handles.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager

#: open rasters kept per thread in a session (a cube reads the DSM and a few images)
MAX_OPEN = 8

_local = threading.local()


def _state():
    if getattr(_local, "pid", None) != os.getpid():
        _local.cache, _local.depth, _local.pid = OrderedDict(), 0, os.getpid()
    return _local


def _cache() -> OrderedDict:
    return _state().cache


def _stamp(path: str):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


@contextmanager
def session():
    """Keep the local rasters this thread reads open until the block ends (nested sessions: the
    outermost), then close them."""
    st = _state()
    st.depth += 1
    try:
        yield
    finally:
        st.depth -= 1
        if st.depth == 0:
            close_all()


@contextmanager
def reading(path: str):
    """A rasterio dataset of ``path`` for reading. In a :func:`session`: this thread's open one
    when the file has not changed since it was opened, else a new one, kept open until the session
    ends. Outside a session, and for URLs and GDAL virtual paths: opened and closed here."""
    import rasterio

    path = str(path)
    st = _state()
    stamp = _stamp(path) if st.depth > 0 and "://" not in path and not path.startswith("/vsi") else None
    if stamp is None:
        with rasterio.open(path) as ds:
            yield ds
        return
    cache = st.cache
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
    """Close this thread's open rasters."""
    cache = _cache()
    while cache:
        _close(cache.popitem()[1][1])
