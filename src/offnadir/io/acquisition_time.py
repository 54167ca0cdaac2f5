"""The acquisition time of an image, with where it was read, for the almanac's sun.

In order of trust:

1. the camera metadata's (``Camera.acquired``: what the camera readers take from the model file or
   the image's tags: DIMAP ``IMAGING_DATE``/``IMAGING_TIME``, OSSIM ``support_data.image_date``,
   Maxar ``firstLineTime``, NITF ``IDATIM``, ...);
2. the **Airbus dataset name** an image keeps in its GeoTIFF metadata: Pleiades/SPOT crops made
   by GDAL from a JPEG2000 product carry the product's GML coverage description (tag
   ``gml.root-instance``) whose ``gml:name`` is the DIMAP ``Dataset_Identification/DATASET_NAME``,
   ``DS_<mission>_<YYYYMMDDhhmmss><tenth>_<station>_...``, e.g.
   ``DS_PHR1B_201306290637144_FR1_PX_E055S22_0919_01724`` (s2p's Réunion crop); a ``DATASET_NAME``
   tag (DIMAP copied into tags) is read the same way;
3. the **Airbus product name** in the image's file name,
   ``<mission>_<spectral code>_<YYYYMMDDhhmmss><tenth>_<level>_...``, e.g.
   ``PHR1B_P_201709281038393_SEN_PRG_FC_178609-001.tif`` (the naming the DIMAP v2 camera reader
   already reads on ``RPC_*.XML`` file names).

Both Airbus names give the time in UTC to a tenth of a second (missions PHR1A/B, SPOT6/7,
PNEO3/4). The dataset name is the start of the *datastrip*, which can begin before the image:
checked on files we did not make, the shareloc Ventoux crops' dataset names are 35.0 s before the
image start of their OSSIM ``.geom`` (10:41:44.4 against 10:42:19.4, 10:42:17.3 against
10:42:52.3), the two DIMAP v1.4 files' ``DATASET_NAME`` 37 s before the first line time
(06:54:57.3 / 06:55:34.3, 10:48:18.4 / 10:48:55.4), and the 178609 product name equals its
``.geom`` image date (10:38:39.3). The sun moves about 0.004 deg/s: tens of seconds are ~0.15 deg,
far inside what the shadow prediction resolves.

:func:`with_acquisition_time` puts the time of 2. or 3. into the camera of an image whose
metadata has none (``offnadir.io.image.open_image_source`` calls it), so that the image's date,
its date group and its almanac sun all come from it; a date given per image (config ``date:``,
``--date``) still wins for the date. The TIFF ``DateTime`` tag is not an acquisition time (see
``camera.readers._common.sensor_time_from_tags``).

A name whose digits are not a calendar time (month 13, hour 25, ...) or lie before the first of
these missions flew (Pleiades 1A, launched 2011-12-17) or in the future is ignored, with a log
line; it never stops a run.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger("offnadir.io.acquisition_time")

#: the first launch among the missions named below (Pleiades 1A, 2011-12-17): an earlier time in
#: one of their names cannot be an acquisition
FIRST_LAUNCH = datetime(2011, 12, 17, tzinfo=timezone.utc)
_MISSION = r"(PHR1[AB]|SPOT[67]|PNEO[34])"
#: dataset (datastrip) name: DS_<mission>_<14 digits><tenth>_
DATASET_NAME = re.compile(rf"(?<![A-Za-z0-9])DS_{_MISSION}_(\d{{14}})(\d)_")
#: product name: <mission>_<spectral code>_<14 digits><tenth>_
PRODUCT_NAME = re.compile(rf"(?<![A-Za-z0-9]){_MISSION}_([A-Z0-9]{{1,4}})_(\d{{14}})(\d)_", re.I)


@dataclass(frozen=True)
class AcquisitionTime:
    time: str  #: ISO 8601 UTC, ``YYYY-MM-DDThh:mm:ss[.f]Z``
    source: str  #: where it was read (file and field)


def _parse(digits: str, tenth: str, where: str) -> str | None:
    """``YYYYMMDDhhmmss`` + tenth of a second as ISO UTC text; None (logged) when it is not a
    plausible acquisition time."""
    try:
        t = datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        log.info("%s: %s%s is not a date and time (YYYYMMDDhhmmss + tenth); ignored", where, digits, tenth)
        return None
    if not FIRST_LAUNCH <= t <= datetime.now(timezone.utc):
        log.info("%s: time %s is before the first Pleiades launch (2011-12-17) or in the future; ignored",
                 where, t.isoformat())
        return None
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{tenth}Z"


def time_from_dataset_name(text: str, where: str) -> str | None:
    """The acquisition start in the first Airbus dataset name ``DS_<mission>_<time>_...`` of
    ``text`` whose time parses (others are logged and skipped), or None."""
    for m in DATASET_NAME.finditer(text or ""):
        t = _parse(m.group(2), m.group(3), f"{where} ({m.group(0).rstrip('_')})")
        if t is not None:
            return t
    return None


def time_from_product_name(name: str, where: str) -> str | None:
    """The acquisition time in an Airbus product name ``<mission>_<code>_<time>_...``, or None."""
    m = PRODUCT_NAME.search(name or "")
    return _parse(m.group(3), m.group(4), where) if m else None


def _tags(path) -> dict:
    """The image's GDAL metadata as the camera readers see it (default domain, and the vendor
    domains prefixed ``IMD:``, ``IMAGERY:``, ``DIMAP:``)."""
    import rasterio

    from offnadir.camera.readers._common import tags_all

    try:
        with rasterio.open(path) as ds:
            return tags_all(ds)
    except Exception:  # noqa: BLE001 - not a raster GDAL reads: no tags
        return {}


def acquisition_time(image_path, camera=None, *, tags: dict | None = None) -> AcquisitionTime | None:
    """The image's acquisition time and where it came from (module doc), or None.

    ``camera``: its :class:`offnadir.camera.Camera` (``acquired``, ``source``, ``model_format``);
    ``tags``: the image's default-domain GDAL metadata when already read (else read here, local
    files only)."""
    p = Path(str(image_path))
    if tags is None:
        tags = _tags(p) if p.exists() else {}
    acquired = getattr(camera, "acquired", None)
    if acquired:
        return AcquisitionTime(str(acquired), getattr(camera, "acquired_from", None)
                               or _camera_time_source(p, camera, tags))
    for key in ("DATASET_NAME", "gml.root-instance"):
        text = str(tags.get(key) or "")
        t = time_from_dataset_name(text, f"{p.name} tag {key}")
        if t is not None:
            name = DATASET_NAME.search(text).group(0).rstrip("_")
            return AcquisitionTime(t, f"the Airbus dataset name {name}... in {p.name}'s tag {key} (datastrip "
                                      "start, UTC)")
    t = time_from_product_name(p.name, f"{p.name} file name")
    if t is not None:
        return AcquisitionTime(t, f"the Airbus product name of the file {p.name} (UTC)")
    return None


def with_acquisition_time(camera, image_path, *, tags: dict | None = None):
    """``camera`` with the acquisition time of its image: unchanged when its metadata has one, else
    with the time of the Airbus dataset or product name (module doc) in :attr:`Camera.acquired`
    and where it was read in :attr:`Camera.acquired_from`, so that the image's date (its date
    group) and its almanac sun come from the same time. Logged; None found is logged too.
    ``tags``: the image's GDAL metadata when already read (else read here, local files only)."""
    if camera is None or getattr(camera, "acquired", None):
        return camera
    p = Path(str(image_path))
    if tags is None:
        tags = _tags(p) if p.exists() else {}
    at = acquisition_time(p, None, tags=tags)
    if at is None:
        created = str(tags.get("TIFFTAG_DATETIME") or "").strip()
        log.info("%s: no acquisition time in its metadata or an Airbus dataset/product name%s", p.name,
                 f" (its TIFFTAG_DATETIME {created!r} is the file's creation time, TIFF 6.0, not read as one)"
                 if created else "")
        return camera
    log.info("%s: acquisition time %s (date %s) from %s", p.name, at.time, at.time[:10], at.source)
    return camera.replace(acquired=at.time, acquired_from=at.source)


def _camera_time_source(p: Path, camera, tags: dict) -> str:
    """Where the camera's time came from: the image's own tags when they hold the same time (the
    camera readers fill it from them when the model file has none), else the model file."""
    from offnadir.camera.readers._common import sensor_time_from_tags

    src = getattr(camera, "source", None)
    fmt = getattr(camera, "model_format", None) or "camera model"
    try:
        own = sensor_time_from_tags(tags)[1] if tags else None
    except Exception:  # noqa: BLE001 - a tag the readers cannot parse: the model file it is
        own = None
    if own and own == camera.acquired:
        return f"{p.name}'s metadata tags"
    return f"the camera model {Path(src).name if src else '?'} ({fmt})"
