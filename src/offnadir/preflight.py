"""Checks of a validated config that need a look at the input files, run before any cluster starts
or any output is written, so that a run that cannot finish fails at once with a clear message."""

from __future__ import annotations

import logging
from pathlib import Path

from offnadir.errors import DataError

log = logging.getLogger("offnadir.preflight")


def check_change_inputs(cfg: dict) -> None:
    """Change detection will run on this config: the DSM grid must have square cells in metres
    (see :func:`offnadir.io.dsm.change_cell_size`) and every image the base image's band count
    (bands are compared one by one). Files that cannot be opened are left to the readers, whose
    errors name them."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from offnadir.io.dsm import change_cell_size

    dsm = Path(cfg["dsm"]["path"])
    try:
        with rasterio.open(dsm) as ds:
            crs, transform, shape = ds.crs, tuple(ds.transform)[:6], ds.shape
    except RasterioIOError:
        crs = None
    if crs is not None:
        size = change_cell_size(crs, transform, shape, where=f"{dsm}: the DSM grid")
        log.info("change detection cell size: %.4f m", size)
    counts = []
    for im in cfg["images"]:
        try:
            with rasterio.open(im["path"]) as ds:
                counts.append((im["path"], ds.count))
        except RasterioIOError:
            return
    if len(counts) < 2:
        return
    base_path, base_n = counts[0]
    for path, n in counts[1:]:
        if n != base_n:
            raise DataError(f"{path}: has {n} band{'s' * (n != 1)} but the base image {Path(base_path).name} has "
                            f"{base_n}; change detection compares the images band by band. Give images with the "
                            "same bands (e.g. both panchromatic or both multispectral).")
