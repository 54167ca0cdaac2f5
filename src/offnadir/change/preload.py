"""The change stage's client-side imports, started in the background while the cube is computed.

The cube stage no longer imports xarray (its store layout is written with zarr directly), so the
change stage's client paid for xarray, pandas (with pyarrow), rioxarray and dask.array when it
opened the store: ~1.5 s of a profiled ``detect_store`` in bench_detect's 2048² run, on the
stage's critical path (its workers idle until the first pass). :func:`start` imports them in a
daemon thread as soon as a run knows it will detect change (``offnadir.pipeline``'s change stage
hook, before the cube), when the client mostly waits on its workers. Python's import lock makes
this safe: a module the main thread needs first is imported once, by whichever thread gets there
first. stdlib only here, so that importing this module costs nothing.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger("offnadir.change.preload")

#: what the stage's client imports before its first pass (the heavy libraries first); pyproj first of
#: all: the plan (offnadir.cube.geometry) imports it on the client right after the DSM statistics, with
#: the workers idle, and the thread starts with the cluster, before the plan; then zarr: the cube's
#: store layout (offnadir.cube.layout) imports it on the client between the tie points and the tiles
CLIENT_MODULES = ("pyproj", "zarr", "xarray", "rioxarray", "dask.array", "offnadir.store", "offnadir.change.dataset",
                  "offnadir.change.stage", "offnadir.change.illumination", "offnadir.change.decide",
                  "offnadir.change.calibrate")

_STARTED: list = []


def _run(names) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - the stage imports it again and raises what it must
            log.debug("preload of %s failed: %s", name, e)
            return


def start(names=CLIENT_MODULES) -> threading.Thread | None:
    """Import ``names`` in a daemon thread (once per process); returns the thread, or None when
    one was started before."""
    if _STARTED:
        return None
    t = threading.Thread(target=_run, args=(tuple(names),), name="offnadir-change-preload", daemon=True)
    _STARTED.append(t)
    t.start()
    return t
