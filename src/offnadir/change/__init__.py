"""Change detection on the co-registered cube (stage 2): patch-wise comparison of the base image
with each target image, and the ortho baseline. See docs/change_detection.md.

* :func:`detect` — on a cube Dataset (in memory, current dask scheduler) or a cube Zarr store;
* :func:`offnadir.change.evaluate.evaluate` — accuracy against a truth raster on the DSM grid.

Modules: ``kernels`` (numba/numpy), ``segment`` (patches), ``irmad`` (IR-MAD sums and model),
``criteria`` (pluggable patch criteria), ``decide`` (their combination), ``evidence`` (cross-date
census evidence), ``calibrate`` (per-run mixture calibration), ``cells`` (probability passes, one
tile), ``tileio`` (tile I/O and context), ``tile`` (one tile's other work), ``stage`` (dask
passes), ``dataset`` (xarray glue), ``ortho`` (baseline), ``evaluate`` and ``reference`` (scores).
"""

from __future__ import annotations

from pathlib import Path


def detect(cube, *, chunk: int | None = None, client=None, resume: bool = False, quiet: bool = True, **options):
    """Detect change between the base (first) image of a cube and every other image.

    ``cube``: an ``xarray.Dataset`` from :func:`offnadir.pipeline.coregister` (computed into memory
    if lazy; work runs on the current dask scheduler, tiles of ``chunk`` cells) -> the Dataset
    with ``patch``, ``change``, ``score`` (and ``change_ortho``/``score_ortho``, ``elevated``,
    ``illumination``) and the per-patch table (``patch_*`` on dims ``image``/``patch_id``) added;
    or the path of a cube Zarr store -> the store, with the same variables written into it.
    ``options``: the ``change`` config section (:mod:`offnadir.change.options`)."""
    from offnadir.change.options import ChangeOptions
    from offnadir.change.stage import detect_dataset, detect_store

    opts = ChangeOptions.from_config(None, **options)
    if isinstance(cube, (str, Path)):
        return detect_store(cube, opts, client=client, resume=resume, quiet=quiet)
    return detect_dataset(cube, opts, chunk=chunk)


def __getattr__(name):
    if name == "evaluate":
        from offnadir.change.evaluate import evaluate

        return evaluate
    raise AttributeError(name)
