"""Images in sensor geometry: a picklable window reader carrying the image's camera and date."""

from __future__ import annotations

import datetime as _dt
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, DataError, InputFileError

log = logging.getLogger("offnadir.io.image")


@dataclass(frozen=True)
class ImageSource:
    """One image: its file, its (possibly bias-compensated) camera, and what is needed to read
    windows of it on any worker. Pickles as these fields; the file is reopened on each read."""

    path: str
    camera: object  # offnadir.camera.Camera
    shape: tuple[int, int]
    count: int
    dtype: str
    nodata: float | None
    name: str
    #: acquisition date given by the user (ISO ``YYYY-MM-DD``); overrides the camera metadata's
    date: str | None = None

    @property
    def acquired(self) -> str | None:
        """Acquisition date/time as ISO text: the given date, else the camera metadata's, else None."""
        return self.date or self.camera.acquired

    @property
    def date_source(self) -> str:
        """Where the date came from: ``given`` (config ``date:`` / ``--date``), ``from <file and
        field>`` (the camera's time, see :func:`offnadir.io.acquisition_time.with_acquisition_time`;
        ``metadata`` when the camera does not say where), or ``none``."""
        if self.date:
            return "given"
        if self.camera.acquired:
            where = getattr(self.camera, "acquired_from", None)
            return f"from {where}" if where else "metadata"
        return "none"

    def read_window(self, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
        """Pixels rows r0..r1-1, cols c0..c1-1 (inside the image) of every band, file dtype."""
        from rasterio.windows import Window

        from offnadir.io.open_files import reading
        from offnadir.io.remote import gdal_path

        # a local file stays open per thread (GDAL's block cache serves the next window); a URL: only
        # the byte ranges of the window
        with reading(gdal_path(self.path)) as ds:
            return ds.read(window=Window(c0, r0, c1 - c0, r1 - r0))

    @property
    def nodata_value(self) -> float:
        return float("nan") if self.nodata is None or math.isnan(self.nodata) else float(self.nodata)


_DATE = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")


def parse_date(value, where: str = "date") -> str | None:
    """A user-given acquisition date as ISO ``YYYY-MM-DD`` text (None/'none' for no date).

    Accepts a ``datetime.date``/``datetime`` (YAML reads ``2023-04-15`` as one) or text starting
    with ``YYYY-MM-DD`` (a time part after it is allowed and dropped)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.strftime("%Y-%m-%d")
    m = _DATE.match(str(value))
    if m:
        try:
            return _dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        except ValueError:
            pass
    raise ConfigError(f"{where}: {value!r} is not a date; give it as YYYY-MM-DD (e.g. 2023-04-15), or 'none'.")


def calendar_date(text: str | None) -> str | None:
    """The ``YYYY-MM-DD`` part of an ISO date/time text (None when absent or unreadable)."""
    if not text:
        return None
    m = _DATE.match(str(text))
    return f"{m[1]}-{m[2]}-{m[3]}" if m else None


def open_image_source(path, *, model=None, gcps=None, name: str | None = None, bias_model: str = "auto",
                      date=None):
    """Image + camera (read from the image or from ``model``), bias-compensated from ``gcps`` if given.
    ``date`` (YYYY-MM-DD) overrides the acquisition date of the camera metadata; both are logged
    when they disagree."""
    import rasterio
    from rasterio.errors import RasterioIOError

    from offnadir.camera.readers import read_camera
    from offnadir.io.remote import gdal_path, is_url, url_stem

    remote = is_url(str(path))
    p = str(path) if remote else Path(path)
    if not remote and not p.exists():
        raise InputFileError(f"{p}: image file not found. Check the image path.")
    try:
        with rasterio.open(gdal_path(p)) as ds:
            shape, count, dtype, nodata = ds.shape, ds.count, ds.dtypes[0], ds.nodata
            # a local file's tags are read where needed; a URL's now, from the header already fetched
            tags = _url_tags(ds) if remote else None
    except RasterioIOError as e:
        where = " (over the network: check the URL and that the server answers range requests)" if remote else ""
        raise InputFileError(f"{p}: cannot be opened as an image{where} ({e}).") from None
    stem = url_stem(p) if remote else p.stem
    if remote:
        camera = _remote_camera(p, model)
    elif model is not None and is_url(str(model)):
        camera = _fetched_camera(str(model), image=p)
    elif model is not None:
        camera = read_camera(model, image=p)
    else:
        camera = read_camera(p)
    if camera.shape is None:
        camera = camera.replace(shape=tuple(shape))
    from offnadir.io.acquisition_time import with_acquisition_time

    camera = with_acquisition_time(camera, p, tags=tags)  # an Airbus dataset/product name's time, if no other
    if gcps is not None:
        from offnadir.camera.bias import fit_bias, read_gcps

        camera = fit_bias(camera, read_gcps(gcps), model=bias_model)
    if count < 1:
        raise DataError(f"{p}: the image has no bands.")
    date = parse_date(date, where=f"{p}: date")
    meta = calendar_date(camera.acquired)
    if date and meta and date != meta:
        log.warning("%s: the given date %s overrides the metadata's acquisition date %s", stem, date, camera.acquired)
    return ImageSource(str(p), camera, tuple(shape), int(count), str(dtype), nodata, name or stem, date)


def _url_tags(ds) -> dict:
    """The GDAL metadata of an image opened by URL, as the camera readers see it (so that an
    Airbus dataset name in its tags dates it as it dates a local file)."""
    from offnadir.camera.readers._common import tags_all

    return tags_all(ds)


def _fetched_camera(model_url: str, image=None):
    """The camera read from a model file named by URL (fetched whole into a temporary folder,
    under its own name, and removed once read)."""
    import tempfile

    from offnadir.camera.readers import read_camera
    from offnadir.io.remote import fetch_sidecar

    with tempfile.TemporaryDirectory(prefix="offnadir-model-") as folder:
        return read_camera(fetch_sidecar(model_url, folder), image=image)


def _remote_camera(url: str, model):
    """The camera of an image named by URL: its RPC metadata read through GDAL's virtual file
    system (header bytes only), or the ``model`` file (local or URL, fetched whole: it is small)
    with the image's size and acquisition tags. The CNES sensor-crop convention (a crop with a
    full-scene model, see ``camera.readers._common.attach_image``) is not applied to URLs."""
    import rasterio

    from offnadir.camera.readers import gdal_raster, read_camera
    from offnadir.camera.readers._common import quiet_gdal_messages, sensor_time_from_tags, tags_all
    from offnadir.io.remote import gdal_path, is_url

    vsi = gdal_path(url)
    if model is None:
        return gdal_raster.read(vsi)
    camera = _fetched_camera(str(model)) if is_url(str(model)) else read_camera(model)
    with quiet_gdal_messages(), rasterio.open(vsi) as ds:
        shape, tags = (ds.height, ds.width), tags_all(ds)
    sensor, acquired = sensor_time_from_tags(tags)
    return camera.replace(shape=tuple(shape), sensor=camera.sensor or sensor, acquired=camera.acquired or acquired)


def open_image(path, *, model=None, gcps=None, chunks: int = 1024):
    """An image as a lazy, chunked ``xarray.DataArray`` (dims band, y, x in sensor geometry) that
    keeps its camera: ``attrs["camera"]`` is the :class:`~offnadir.camera.Camera` (bias-compensated
    if ``gcps`` are given) and ``attrs["rpc"]`` the model as GDAL RPC metadata, so the model
    survives where xarray drops unknown objects."""
    import rioxarray

    src = open_image_source(path, model=model, gcps=gcps)
    from offnadir.io.remote import gdal_path

    da = rioxarray.open_rasterio(gdal_path(src.path), chunks={"band": -1, "y": chunks, "x": chunks}, masked=True)
    da = da.assign_coords(y=np.arange(src.shape[0]), x=np.arange(src.shape[1]))  # sensor pixels, native
    da.attrs.update(camera=src.camera, rpc=src.camera.rpc.to_gdal(), name=src.name,
                    acquired=src.acquired or "", sensor=src.camera.sensor or "")
    return da.rename(src.name)
