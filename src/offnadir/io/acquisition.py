"""Sun angles of an image from what vendors and catalogues give, with where each came from.

Readers (each returns a :class:`SunInfo` or None):

* DIMAP v1/v2 XML (Pleiades, SPOT): every ``SUN_AZIMUTH``/``SUN_ELEVATION`` pair (one per located
  geometric header: start, centre, end of the strip, per scene). The circular mean of the
  azimuths and the mean of the elevations is used; their spread is stated.
* Maxar/DigitalGlobe XML (``IMD/IMAGE/MEANSUNAZ``, ``MEANSUNEL``) and ``.IMD`` text
  (``meanSunAz = ...;``), and the same keys in GDAL's IMD metadata domain (``IMAGE_1.sunAz``...).
* rpcm-style JSON (``sun_azimuth``, ``sun_elevation``) and STAC items (``properties``
  ``view:sun_azimuth``, ``view:sun_elevation``).
* GeoTIFF tags ``SUN_AZIMUTH``/``SUN_ELEVATION`` (DIMAP copied into tags) and
  ``SUN_AZIMUTH_DEG``/``SUN_ELEVATION_DEG`` (the simulator's images).
* Acquisition time and place: the almanac :func:`offnadir.sun.sun_position`; the time is the
  camera metadata's, else the Airbus dataset or product name the image carries
  (:mod:`offnadir.io.acquisition_time`), and the sun's detail says which.

Azimuths are degrees clockwise from true north, elevations degrees above the horizon.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

from offnadir.errors import ConfigError, InputFileError

log = logging.getLogger("offnadir.io.acquisition")


@dataclass(frozen=True)
class SunInfo:
    azimuth: float  #: degrees clockwise from true north
    elevation: float  #: degrees above the horizon
    source: str  #: "metadata" | "config" | "almanac" | "estimated"
    detail: str  #: file and field, time and place, or fit figures

    def describe(self) -> str:
        return f"sun azimuth {self.azimuth:.2f} deg, elevation {self.elevation:.2f} deg ({self.source}: {self.detail})"


def _check(az: float, el: float, where: str) -> tuple[float, float]:
    if not (math.isfinite(az) and math.isfinite(el)) or not (-90.0 <= el <= 90.0):
        raise InputFileError(f"{where}: sun azimuth {az!r} / elevation {el!r} are not angles in degrees "
                             "(elevation must be within -90..90). Fix the file or give the sun in the config "
                             "(images[].sun_azimuth / sun_elevation) or `--sun AZ,EL`.")
    return az % 360.0, el


def circular_mean_deg(values) -> float:
    s = sum(math.sin(math.radians(v)) for v in values)
    c = sum(math.cos(math.radians(v)) for v in values)
    return math.degrees(math.atan2(s, c)) % 360.0


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# ------------------------------------------------------------------------------------- XML
def sun_from_xml(path) -> SunInfo | None:
    """Sun angles in a DIMAP v1/v2, Maxar/DigitalGlobe or EnMAP XML file, or None."""
    import xml.etree.ElementTree as ET

    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (ET.ParseError, OSError):
        return None
    pairs, fields = [], None
    for parent in root.iter():
        kids = {_local(c.tag).upper(): c for c in parent}
        if "SUN_AZIMUTH" in kids and "SUN_ELEVATION" in kids:  # DIMAP
            pairs.append((float(kids["SUN_AZIMUTH"].text), float(kids["SUN_ELEVATION"].text)))
            fields = "SUN_AZIMUTH/SUN_ELEVATION"
        elif "MEANSUNAZ" in kids and "MEANSUNEL" in kids:  # Maxar IMD as XML
            pairs.append((float(kids["MEANSUNAZ"].text), float(kids["MEANSUNEL"].text)))
            fields = "MEANSUNAZ/MEANSUNEL"
        elif "SUNAZIMUTHANGLE" in kids and "SUNELEVATIONANGLE" in kids:  # EnMAP corner/centre values
            def centre(e):
                sub = {_local(c.tag).lower(): c for c in e}
                if "center" in sub:
                    return float(sub["center"].text)
                vals = [float(c.text) for c in e if c.text and c.text.strip()]
                return vals
            az, el = centre(kids["SUNAZIMUTHANGLE"]), centre(kids["SUNELEVATIONANGLE"])
            az = az if isinstance(az, float) else circular_mean_deg(az)
            el = el if isinstance(el, float) else sum(el) / len(el)
            pairs.append((az, el))
            fields = "sunAzimuthAngle/sunElevationAngle"
    if not pairs:
        return None
    az = circular_mean_deg([a for a, _ in pairs])
    el = sum(e for _, e in pairs) / len(pairs)
    spread = max(abs((a - az + 180.0) % 360.0 - 180.0) for a, _ in pairs)
    espread = max(abs(e - el) for _, e in pairs)
    az, el = _check(az, el, str(p))
    detail = f"{p.name} {fields}"
    if len(pairs) > 1:
        detail += f" (mean of {len(pairs)}, spread {spread:.2f}/{espread:.2f} deg)"
    return SunInfo(az, el, "metadata", detail)


# ------------------------------------------------------------------------------------- text
_IMD_RE = {k: re.compile(rf"\b{k}\s*=\s*([-+0-9.eE]+)\s*;", re.I) for k in ("meanSunAz", "meanSunEl", "sunAz", "sunEl")}


def sun_from_imd(path) -> SunInfo | None:
    """Sun angles in a Maxar/DigitalGlobe ``.IMD`` text file (``meanSunAz``/``meanSunEl``), or None."""
    p = Path(path)
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return None
    for a, e in (("meanSunAz", "meanSunEl"), ("sunAz", "sunEl")):
        ma, me = _IMD_RE[a].search(text), _IMD_RE[e].search(text)
        if ma and me:
            az, el = _check(float(ma.group(1)), float(me.group(1)), str(p))
            return SunInfo(az, el, "metadata", f"{p.name} {a}/{e}")
    return None


def sun_from_json(path) -> SunInfo | None:
    """Sun angles in an rpcm-style JSON (``sun_azimuth``/``sun_elevation``) or a STAC item
    (``properties`` ``view:sun_azimuth``/``view:sun_elevation``), or None."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict):
        return None
    for where, obj, ka, ke in (("", d, "sun_azimuth", "sun_elevation"),
                               ("properties.", d.get("properties") or {}, "view:sun_azimuth", "view:sun_elevation"),
                               ("", d, "view:sun_azimuth", "view:sun_elevation")):
        if isinstance(obj, dict) and obj.get(ka) is not None and obj.get(ke) is not None:
            try:
                az, el = float(str(obj[ka]).strip()), float(str(obj[ke]).strip())
            except ValueError:
                raise InputFileError(f"{p}: {where}{ka}={obj[ka]!r} / {where}{ke}={obj[ke]!r} are not numbers; "
                                     "fix the file or give the sun in the config (images[].sun_azimuth / "
                                     "sun_elevation).") from None
            az, el = _check(az, el, str(p))
            return SunInfo(az, el, "metadata", f"{p.name} {where}{ka}/{where}{ke}")
    return None


_TAG_PAIRS = (("SUN_AZIMUTH", "SUN_ELEVATION"), ("SUN_AZIMUTH_DEG", "SUN_ELEVATION_DEG"),
              ("IMD:IMAGE_1.meanSunAz", "IMD:IMAGE_1.meanSunEl"), ("IMD:IMAGE_1.sunAz", "IMD:IMAGE_1.sunEl"),
              ("IMAGE_1.meanSunAz", "IMAGE_1.meanSunEl"), ("IMAGE_1.sunAz", "IMAGE_1.sunEl"))


def sun_from_tags(tags: dict, where: str) -> SunInfo | None:
    """Sun angles in GDAL metadata (default and ``IMD:``-prefixed domain keys), or None."""
    for ka, ke in _TAG_PAIRS:
        if tags.get(ka) not in (None, "") and tags.get(ke) not in (None, ""):
            try:
                az, el = float(str(tags[ka]).strip('" ')), float(str(tags[ke]).strip('" '))
            except ValueError:
                continue
            az, el = _check(az, el, where)
            return SunInfo(az, el, "metadata", f"{Path(where).name} tag {ka}/{ke}")
    return None


def _raster_tags(path) -> dict:
    import rasterio

    try:
        with rasterio.open(path) as ds:
            tags = dict(ds.tags())
            for dom in ("IMD", "IMAGERY"):
                try:
                    tags.update({f"{dom}:{k}": v for k, v in ds.tags(ns=dom).items()})
                except Exception:  # a missing domain is normal
                    pass
            return tags
    except Exception:  # not a raster GDAL can read: no tags
        return {}


def sun_from_file(path) -> SunInfo | None:
    """Sun angles in one metadata file of any supported kind, or None."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf == ".xml":
        return sun_from_xml(p)
    if suf == ".imd":
        return sun_from_imd(p)
    if suf == ".json":
        return sun_from_json(p)
    if suf in (".tif", ".tiff", ".vrt", ".ntf", ".nitf", ".jp2"):
        return sun_from_tags(_raster_tags(p), str(p))
    return None


def sidecars(image_path) -> list[Path]:
    """Metadata files next to an image that may hold its sun angles (same stem)."""
    p = Path(image_path)
    out = []
    for ext in (".XML", ".xml", ".IMD", ".imd", ".json", "_metadata.json"):
        q = p.with_name(p.stem + ext)
        if q.exists() and q not in out:
            out.append(q)
    return out


def dimap_companion(model_path) -> Path | None:
    """The DIMAP v2 product file ``DIM_<id>.XML`` next to an ``RPC_<id>.XML`` camera model."""
    p = Path(model_path)
    if p.name.upper().startswith("RPC_"):
        for name in ("DIM_" + p.name[4:], "DIM_" + p.name[4:].upper()):
            q = p.with_name(name)
            if q.exists():
                return q
    return None


def sun_from_metadata(image_path, model_path=None) -> SunInfo | None:
    """The first sun found in: the camera model file, metadata files next to the image, the
    image's own tags (of an image given by URL too; its neighbours are not looked for). None when
    none of them has one."""
    files = []
    if model_path:
        files.append(Path(model_path))
        dim = dimap_companion(model_path)
        if dim is not None:
            files.append(dim)
    from offnadir.io.remote import gdal_path, is_url

    remote = is_url(image_path)
    files += [] if remote else sidecars(image_path)
    files += [] if remote else [Path(image_path)]
    for f in files:
        if f.exists():
            s = sun_from_file(f)
            if s is not None:
                return s
    if remote:  # an image given by URL: its own tags, read through GDAL (range requests for a COG)
        return sun_from_tags(_raster_tags(gdal_path(image_path)), str(image_path))
    return None


def sun_from_time(acquired, lon: float, lat: float, source: str | None = None) -> SunInfo | None:
    """The almanac's sun at an acquisition time (UTC) and place, or None without a time.
    ``source``: where the time was read (stated in the detail)."""
    text = str(acquired).strip() if acquired is not None else ""
    if text in ("", "NaT"):
        return None
    if not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text) or re.search(r"[T ]00:00(:00(\.0*)?)?Z?$", text):
        # a date without a time of day (or exactly midnight, what a date-only value becomes):
        # the almanac would place the sun anywhere; leave it to the estimate
        log.info("acquisition time %r has no time of day: not used for the sun", text)
        return None
    from offnadir.sun import sun_position

    try:
        el, az = sun_position(acquired, lon, lat)
    except ValueError:  # e.g. 2013-02-30T10:00:00: a time that is no time places no sun
        log.info("acquisition time %r%s is not a valid date and time: not used for the sun", text,
                 f" (from {source})" if source else "")
        return None
    where = f" from {source}" if source else ""
    return SunInfo(az, el, "almanac", f"acquisition time {str(acquired)[:19]}Z{where} at lon {lon:.4f} lat {lat:.4f}")


def sun_from_config(azimuth, elevation, where: str) -> SunInfo | None:
    """The sun given in the config / on the command line (both angles or neither)."""
    if azimuth is None and elevation is None:
        return None
    if azimuth is None or elevation is None:
        raise ConfigError(f"{where}: give both sun_azimuth and sun_elevation (degrees), or neither.")
    az, el = float(azimuth), float(elevation)
    if not (math.isfinite(az) and 0.0 < el <= 90.0):
        raise ConfigError(f"{where}: sun elevation {el} must be in (0, 90] degrees and the azimuth a number "
                          "(degrees clockwise from north).")
    return SunInfo(az % 360.0, el, "config", where)


def image_sun(image_path, model_path=None, acquired=None, lonlat=None, given=None,
              time_source: str | None = None) -> SunInfo | None:
    """The sun of one image, in order of trust: ``given`` (config/CLI), vendor metadata, the
    almanac at the acquisition time (read at ``time_source``), else None (to be estimated from the
    image and the DSM)."""
    if given is not None:
        return given
    s = sun_from_metadata(image_path, model_path)
    if s is None and lonlat is not None:
        s = sun_from_time(acquired, *lonlat, source=time_source)
    return s


def image_suns(images, configs=None, lonlat=None) -> list[SunInfo | None]:
    """The sun of each image (``images``: ImageSource-like objects with ``path``, ``name`` and
    ``camera.source``/``camera.acquired``; ``configs``: the config's ``images`` entries, aligned, or
    None). Logs each choice."""
    out = []
    for k, im in enumerate(images):
        c = (configs[k] if configs is not None and k < len(configs) else None) or {}
        given = sun_from_config(c.get("sun_azimuth"), c.get("sun_elevation"), f"images[{k}] ({im.name})")
        if given is not None and c.get("stac_item"):  # filled from the item's view:sun_* (offnadir.io.stac)
            given = SunInfo(given.azimuth, given.elevation, "metadata",
                            f"STAC view:sun_azimuth/view:sun_elevation of item {c['stac_item']}")
        cam = getattr(im, "camera", None)
        model = getattr(cam, "source", None)
        model = model if model and Path(model).exists() and Path(model) != Path(im.path) else None
        at = None
        if given is None and lonlat is not None:
            from offnadir.io.acquisition_time import acquisition_time

            at = acquisition_time(im.path, cam)
        s = image_sun(im.path, model, at.time if at else None, lonlat, given, at.source if at else None)
        if s is None:
            log.info("%s: no sun in the config, the metadata or an acquisition time; the change stage estimates "
                     "it from the image and the DSM", im.name)
        else:
            log.info("%s: %s", im.name, s.describe())
        out.append(s)
    return out


def sun_coords(suns) -> dict:
    """Per-image cube coordinates ``sun_azimuth``, ``sun_elevation`` (NaN when unknown) and
    ``sun_source`` (``"<source>: <detail>"`` or ``"none"``)."""
    import numpy as np

    return {
        "sun_azimuth": ("image", np.array([s.azimuth if s else np.nan for s in suns], np.float64),
                        {"units": "degree", "long_name": "sun azimuth, clockwise from true north"}),
        "sun_elevation": ("image", np.array([s.elevation if s else np.nan for s in suns], np.float64),
                          {"units": "degree", "long_name": "sun elevation above the horizon"}),
        "sun_source": ("image", np.array([f"{s.source}: {s.detail}" if s else "none" for s in suns], dtype=object)),
    }
