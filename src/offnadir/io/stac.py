"""STAC in: the images of a STAC ItemCollection, a static catalog/collection or item files, as the
image entries offnadir's pipeline takes (``path``, ``model``, ``name``, ``date``, sun angles).

What is read (see docs/stac.md):

* the source: an ItemCollection (``FeatureCollection``; pystac-client search results saved with
  ``ItemCollection.save_object``), a ``Catalog``/``Collection`` JSON (walked with pystac, children
  and all), one item, a JSON list of items or of item file names, or several item files;
* per item: the image asset (``asset`` if given; else the first asset with role ``data`` that is
  a raster; else key ``image``/``visual``/``pan``/``panchromatic``; else the first GeoTIFF, COG,
  NITF or JPEG 2000), its RPC (the image's own tags, else a sidecar asset offnadir's camera readers
  take: role ``metadata``, XML/text media types, ``.geom``/``.RPB``/``_rpc.txt``/``.XML``),
  ``datetime`` (else ``start_datetime``) -> the image date, ``view:off_nadir``/``view:azimuth``,
  ``view:sun_azimuth``/``view:sun_elevation`` -> the image's sun (stored with the source
  "STAC view:sun_*"), ``eo:bands`` (or STAC 1.1 ``bands``) -> band names;
* filters: ``start``/``end`` (calendar dates, inclusive), ``max_off_nadir`` (degrees; the item's
  ``view:off_nadir``, else the camera's line of sight at the image centre), items whose ``bbox``
  misses the DSM are dropped (said in the log);
* order: the base (``base_item``, else the earliest item) first, the others by date.

Asset hrefs relative to an item resolve against the item's own file (its ``self`` link), else the
file that listed it.

Why not stackstac or odc-stac: both build one dask array by *reprojecting* every asset onto a
common georeferenced grid (they need ``proj:*`` or a geotransform and resample to it). offnadir's
images are raw sensor-geometry products (level 1B / "basic") with RPCs: their pixels are rows and
columns of the sensor, and the method back-projects the DSM into exactly those pixels (relief
displacement, occlusion, patch-wise co-registration). Warping them to a map grid first would
destroy the sensor geometry the method needs and resample twice. So the assets are opened as
they are, lazily, through :class:`offnadir.io.image.ImageSource` (rasterio windows read tile by
tile on the workers), and pystac is used for the metadata only.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from offnadir.errors import OffnadirError
from offnadir.io.stac_read import StacError, is_remote, local_path, read_items  # noqa: F401 (re-exported)

log = logging.getLogger("offnadir.io.stac")

RASTER_SUFFIXES = (".tif", ".tiff", ".ntf", ".nitf", ".jp2", ".vrt")
RASTER_MEDIA = ("image/tiff", "image/jp2", "application/vnd.nitf", "image/vnd.nitf", "application/x-nitf")
IMAGE_KEYS = ("image", "visual", "pan", "panchromatic")
RPC_MEDIA = ("xml", "text/plain", "application/json")
RPC_SUFFIXES = (".xml", ".geom", ".rpb", ".txt", ".rpc", ".json")
SUN_SOURCE = "STAC view:sun_azimuth/view:sun_elevation"
#: URL schemes of assets read remotely (GDAL virtual file systems, see offnadir.io.remote)
REMOTE_SCHEMES = ("http", "https", "s3", "gs", "az")


@dataclass
class StacImage:
    """One item's image as offnadir uses it."""

    item_id: str
    path: str  #: local image file
    asset: str  #: key of the image asset
    model: str | None  #: sidecar camera model file, None when the image's tags hold the RPC
    datetime: _dt.datetime
    off_nadir: float | None  #: degrees (STAC view:off_nadir, else the camera's)
    off_nadir_source: str
    azimuth: float | None  #: degrees (STAC view:azimuth)
    sun: tuple[float, float] | None  #: (azimuth, elevation) degrees from view:sun_*
    bands: list[str] = field(default_factory=list)
    source: str = ""  #: the JSON file the item came from
    bbox: list | None = None
    platform: str | None = None

    @property
    def date(self) -> str:
        return self.datetime.date().isoformat()

    def entry(self) -> dict:
        """The config ``images`` entry of this image (the sun recorded as coming from STAC)."""
        e = {"path": self.path, "model": self.model, "name": self.item_id, "date": self.date,
             "stac_item": self.item_id}
        if self.sun is not None:
            e["sun_azimuth"], e["sun_elevation"] = self.sun
        if self.bands:
            e["bands"] = list(self.bands)
        return e


# ------------------------------------------------------------------------------------- one item
def _suffix(href: str) -> str:
    return Path(urlparse(href).path).name.lower()


def _is_raster(asset) -> bool:
    mt = (asset.media_type or "").lower()
    return any(m in mt for m in RASTER_MEDIA) or _suffix(asset.href).endswith(RASTER_SUFFIXES)


def image_asset(item, key: str | None = None):
    """``(key, asset)`` of the item's image."""
    assets = item.assets
    if key:
        if key not in assets:
            raise StacError(f"item {item.id}: no asset {key!r} (it has {', '.join(assets) or 'none'}); give "
                            "stac.asset / --stac-asset one of those.")
        return key, assets[key]
    rasters = [(k, a) for k, a in assets.items() if _is_raster(a)]
    for k, a in rasters:
        if "data" in (a.roles or []):
            return k, a
    for want in IMAGE_KEYS:
        if want in assets and _is_raster(assets[want]):
            return want, assets[want]
    if rasters:
        return rasters[0]
    raise StacError(f"item {item.id}: no image asset (a GeoTIFF/COG/NITF/JPEG 2000 with role 'data' or key "
                    f"image/visual/pan) among its assets ({', '.join(assets) or 'none'}); add one, or name it "
                    "with stac.asset / --stac-asset KEY.")


def _rpc_candidates(item, image_key: str):
    out = []
    for k, a in item.assets.items():
        if k == image_key:
            continue
        mt, name, roles = (a.media_type or "").lower(), _suffix(a.href), a.roles or []
        if "metadata" in roles or any(m in mt for m in RPC_MEDIA) or name.endswith(RPC_SUFFIXES):
            out.append((k, a))
    # role metadata first, then by how RPC-like the file name is
    out.sort(key=lambda ka: (0 if "metadata" in (ka[1].roles or []) else 1,
                             0 if any(t in _suffix(ka[1].href) for t in ("rpc", "rpb", ".geom")) else 1))
    return out


def _camera(item, image: str, image_key: str, base: Path):
    """``(camera, model or None)``: the image's own RPC, else the first sidecar asset that a camera
    reader takes (local files, or URLs fetched whole: :mod:`offnadir.io.remote`)."""
    from offnadir.errors import NoCameraModelError, UnsupportedFormatError
    from offnadir.io.image import open_image_source

    def opened(model=None):
        import warnings

        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():  # sensor-geometry images have no geotransform by nature
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return open_image_source(image, model=model).camera

    tried = []
    try:
        return opened(), None
    except (NoCameraModelError, UnsupportedFormatError) as e:
        tried.append(f"the image's tags ({_first_sentence(e)})")
    except OffnadirError as e:
        raise StacError(f"item {item.id}: {e}") from None
    for k, a in _rpc_candidates(item, image_key):
        model = a.href if is_remote(a.href) else str(local_path(a.href, base))
        if not is_remote(model) and not Path(model).exists():
            tried.append(f"asset {k} ({model}: not found)")
            continue
        try:
            return opened(model), model
        except OffnadirError as e:
            tried.append(f"asset {k} ({_first_sentence(e)})")
    raise StacError(f"item {item.id}: no RPC camera model: tried {'; '.join(tried)}. Give the image RPC tags, or "
                    "add the RPC file (.RPB, _rpc.txt, DIMAP XML, .geom) to the item as an asset with role "
                    "'metadata'.")


def _first_sentence(e) -> str:
    text = str(e).splitlines()[0]
    return text.split(". ")[0].rstrip(".")


def _number(props, key, item_id):
    v = props.get(key)
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise StacError(f"item {item_id}: properties.{key} = {v!r} is not a number of degrees; fix the item.") from None
    if not math.isfinite(v):
        raise StacError(f"item {item_id}: properties.{key} = {v!r} is not a finite number of degrees; fix the item.")
    return v


def _bands(item, asset) -> list[str]:
    for owner in (asset.extra_fields, item.properties):
        bands = owner.get("eo:bands") or owner.get("bands")
        if isinstance(bands, list) and bands:
            return [str(b.get("name") or b.get("common_name") or f"b{k + 1}") if isinstance(b, dict) else str(b)
                    for k, b in enumerate(bands)]
    return []


def _when(item) -> _dt.datetime:
    t = item.datetime
    if t is None:
        s = item.properties.get("start_datetime")
        if s:
            from pystac.utils import str_to_datetime

            t = str_to_datetime(s)
    if t is None:
        raise StacError(f"item {item.id}: neither datetime nor start_datetime is set; every STAC item needs its "
                        "acquisition time.")
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def stac_image(item, base: Path, source: Path, asset: str | None = None) -> StacImage:
    """What offnadir needs of one item (reads the image header and its RPC)."""
    key, a = image_asset(item, asset)
    if is_remote(a.href):  # http(s)://, s3://...: read by GDAL's range requests (offnadir.io.remote)
        if urlparse(a.href).scheme.lower() not in REMOTE_SCHEMES:
            raise StacError(f"item {item.id}: asset {key} href {a.href} has a scheme offnadir cannot read "
                            f"({', '.join(REMOTE_SCHEMES)} or local files); give a copy of the asset.")
        path = a.href
    else:
        path = local_path(a.href, base)
        if not path.exists():
            raise StacError(f"item {item.id}: image asset {key} -> {path}: file not found. Relative hrefs resolve "
                            f"against the item's file ({base}); fix the href or put the file there.")
    cam, model = _camera(item, str(path), key, base)
    props = item.properties
    off, az = _number(props, "view:off_nadir", item.id), _number(props, "view:azimuth", item.id)
    off_src = "STAC view:off_nadir"
    if off is None:
        try:
            off, off_src = float(cam.view_angles()["off_nadir_deg"]), "camera line of sight at the image centre"
        except Exception:  # noqa: BLE001 - only a filter needs it
            off, off_src = None, "unknown"
    saz, sel = _number(props, "view:sun_azimuth", item.id), _number(props, "view:sun_elevation", item.id)
    sun = None
    if saz is not None and sel is not None:
        if 0.0 < sel <= 90.0:
            sun = (saz % 360.0, sel)
        else:
            log.warning("item %s: view:sun_elevation %s is not above the horizon; the sun is left to the image "
                        "metadata or the estimate", item.id, sel)
    elif (saz is None) != (sel is None):
        log.warning("item %s: only one of view:sun_azimuth/view:sun_elevation is set; not used", item.id)
    return StacImage(item.id, str(path), key, model, _when(item), off, off_src, az, sun, _bands(item, a),
                     str(source), item.bbox, props.get("platform"))


# ------------------------------------------------------------------------------------- selection
def _day(v, where: str, end: bool = False) -> _dt.datetime | None:
    from offnadir.io.image import parse_date

    d = parse_date(v, where=where)
    if d is None:
        return None
    t = _dt.datetime.fromisoformat(d).replace(tzinfo=_dt.timezone.utc)
    return t + _dt.timedelta(days=1) - _dt.timedelta(microseconds=1) if end else t


def _intersects(a, b) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def dsm_lonlat_bounds(dsm_path) -> tuple | None:
    """(west, south, east, north) of the DSM in WGS84 degrees, or None when it cannot be read."""
    try:
        import rasterio
        from rasterio.warp import transform_bounds

        with rasterio.open(dsm_path) as ds:
            if ds.crs is None:
                return None
            return tuple(transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21))
    except Exception as e:  # noqa: BLE001 - the DSM's own errors are reported where it is opened
        log.info("DSM %s: footprint not read (%s); items are not filtered by bbox", dsm_path, e)
        return None


def select(paths, *, start=None, end=None, max_off_nadir=None, base_item=None, asset=None,
           dsm=None) -> list[StacImage]:
    """The images of the items in ``paths`` that pass the filters, the base first, then by date."""
    found = read_items(paths)
    if not found:
        raise StacError(f"{_names(paths)}: holds no STAC items.")
    t0, t1 = _day(start, "stac.start"), _day(end, "stac.end", end=True)
    if t0 and t1 and t1 < t0:
        raise StacError(f"stac.start {start} is after stac.end {end}; swap them.")
    bounds = dsm_lonlat_bounds(dsm) if dsm else None
    kept, dropped = [], []
    ids = set()
    for it, base, src in found:
        if it.id in ids:
            raise StacError(f"{src}: item id {it.id!r} appears twice; item ids name the images and must be unique.")
        ids.add(it.id)
        when = _when(it)
        if (t0 and when < t0) or (t1 and when > t1):
            dropped.append(f"{it.id} ({when.date()}: outside the dates)")
            continue
        if bounds and it.bbox and len(it.bbox) >= 4:
            bb = it.bbox if len(it.bbox) == 4 else [it.bbox[0], it.bbox[1], it.bbox[3], it.bbox[4]]
            if not _intersects(bb, bounds):
                dropped.append(f"{it.id} (bbox misses the DSM)")
                continue
        given = _number(it.properties, "view:off_nadir", it.id)
        if max_off_nadir is not None and given is not None and given > float(max_off_nadir):
            dropped.append(f"{it.id} (off-nadir {given:.1f} deg > {float(max_off_nadir):g})")  # its files unread
            continue
        im = stac_image(it, base, src, asset)
        if max_off_nadir is not None and im.off_nadir is not None and im.off_nadir > float(max_off_nadir):
            dropped.append(f"{it.id} (off-nadir {im.off_nadir:.1f} deg > {float(max_off_nadir):g})")
            continue
        kept.append(im)
    for d in dropped:
        log.info("STAC item left out: %s", d)
    if not kept:
        raise StacError(f"{_names(paths)}: none of its {len(found)} items passes the filters (start={start}, "
                        f"end={end}, max_off_nadir={max_off_nadir}): {'; '.join(dropped[:8])}. Widen the filters.")
    kept.sort(key=lambda im: (im.datetime, im.item_id))
    if base_item is not None:
        chosen = [im for im in kept if im.item_id == base_item]
        if not chosen:
            raise StacError(f"stac.base_item {base_item!r} is not among the selected items "
                            f"({', '.join(im.item_id for im in kept)}); give one of them, or widen the filters.")
        kept = chosen + [im for im in kept if im.item_id != base_item]
    for k, im in enumerate(kept):
        log.info("STAC %s %s: %s (asset %s, %s), off-nadir %s (%s), sun %s", "base" if k == 0 else "target",
                 im.item_id, im.datetime.isoformat(), im.asset, "RPC " + (im.model or "in the image tags"),
                 "?" if im.off_nadir is None else f"{im.off_nadir:.2f} deg", im.off_nadir_source,
                 "from " + SUN_SOURCE if im.sun else "not in the item")
    return kept


def _names(paths) -> str:
    return str(paths) if isinstance(paths, (str, Path)) else ", ".join(map(str, paths))


def config_images(section: dict, dsm=None) -> list[dict]:
    """The config ``images`` entries of a validated ``stac`` config section (see
    :mod:`offnadir.config`): the base first."""
    paths = list(section.get("items") or [])
    if section.get("path"):
        paths.insert(0, section["path"])
    ims = select(paths, start=section.get("start"), end=section.get("end"),
                 max_off_nadir=section.get("max_off_nadir"), base_item=section.get("base_item"),
                 asset=section.get("asset"), dsm=dsm)
    return [im.entry() for im in ims]
