"""RPC metadata of a raster, through rasterio/GDAL: GeoTIFF RPC tags, NITF RPC00B/RPC00A TREs,
JPEG2000 (GMLJP2/ GeoJP2 boxes), VRT ``<Metadata domain="RPC">``, and whatever sidecars GDAL itself
loads (``.RPB``, ``_rpc.txt`` next to a GeoTIFF).

GDAL's ``RPC`` metadata domain is RPC00B native (GDAL adds its own +0.5 only inside its
transformer). Also filled: the raster size, the sensor and acquisition time from the metadata
GDAL exposes (normalised ``IMAGERY`` domain, DigitalGlobe ``IMD``, DIMAP tags, NITF subheader).

When GDAL finds no RPC, sidecar model files next to the raster are tried, by content:
``<stem>_rpc.txt``, ``<stem>.RPB``, ``<stem>.geom``, ``<stem>.xml``, ALOS ``RPC-<id>.txt`` for
``IMG-<id>.tif``, and the DIMAP ``RPC_<id>.XML`` for ``IMG_<id>[_R1C1].JP2/TIF``. The image is then
attached to that camera (size; sensor-geometry crop position for CNES crops, see
``_common.attach_image``).
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

from offnadir.camera.readers._common import (
    attach_image, domain_validity, looks_like_xml_root, make_camera, quiet_gdal_messages, sensor_time_from_tags,
    tags_all,
)
from offnadir.camera.rpc import RPC, short_repr
from offnadir.errors import NoCameraModelError, OffnadirError, UnsupportedFormatError

FORMAT = "gdal-raster"

_MAGIC = (
    b"II*\x00", b"MM\x00*",  # TIFF
    b"II+\x00", b"MM\x00+",  # BigTIFF
    b"NITF", b"NSIF",  # NITF 2.x / NSIF
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",  # JP2 signature box
    b"\xff\x4f\xff\x51",  # JPEG 2000 codestream
)


def sniff(path: Path, head: bytes) -> bool:
    if head.startswith(_MAGIC):
        return True
    if looks_like_xml_root(head, "VRTDataset"):
        return True
    # other binary rasters GDAL may open (ERDAS IMG, ENVI, PCIDSK...): let GDAL decide
    return b"\x00" in head[:4096]


def read(path: Path):
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path = Path(path)
    _check_vrt_text(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with quiet_gdal_messages(), rasterio.open(path) as ds:
                rpc_tags = dict(ds.tags(ns="RPC"))
                shape = (ds.height, ds.width)
                tags = tags_all(ds)
                driver = ds.driver
    except (RasterioIOError, UnicodeError) as e:  # a VRT that is not UTF-8 fails in rasterio's decoding
        raise UnsupportedFormatError(
            f"{path}: neither a camera model file offnadir reads nor a raster GDAL can open "
            f"({short_repr(str(e), 200)})."
        ) from None
    if rpc_tags:
        rpc = RPC.from_dict(rpc_tags, source=f"{path} ({driver} RPC metadata)")
        if all(k in rpc_tags for k in ("MIN_LONG", "MAX_LONG", "MIN_LAT", "MAX_LAT")):
            val = domain_validity(rpc,
                                  rpc_tags["MIN_LONG"], rpc_tags["MAX_LONG"],
                                  rpc_tags["MIN_LAT"], rpc_tags["MAX_LAT"])
            if val is not None:
                rpc = rpc.replace(validity=val).validated()
        sensor, acquired = sensor_time_from_tags(tags)
        return make_camera(rpc, path, f"{FORMAT}:{driver}", shape=shape, sensor=sensor, acquired=acquired)
    tried = []
    for cand in sidecar_candidates(path):
        tried.append(cand.name)
        cam = _read_model_file(cand)
        if cam is not None:
            return attach_image(cam, path)
    hint = (f" Sidecars looked for and not usable: {', '.join(tried)}." if tried else
            " No sidecar (<stem>_rpc.txt, <stem>.RPB, <stem>.geom, RPC_*.XML) was found next to it.")
    raise NoCameraModelError(
        f"{path}: the raster has no RPC metadata.{hint} If its model is in a separate file, pass that "
        "file, and for a crop in sensor geometry give the image too: "
        "read_camera('<model file>', image='<this image>')."
    )


def _check_vrt_text(path: Path) -> None:
    """A VRT is XML text that GDAL reads as UTF-8; GDAL's parse errors quote the offending bytes and
    rasterio fails to decode them (a UnicodeDecodeError, plus a traceback printed from its logging
    hook), so a VRT that is not UTF-8 is refused here, before GDAL sees it."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
        if not looks_like_xml_root(head, "VRTDataset"):
            return
        raw = path.read_bytes()
    except OSError:
        return  # rasterio reports unreadable files itself
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnsupportedFormatError(
            f"{path}: VRT (XML) file is not valid UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}). "
            "The file is corrupt; write it again with gdalbuildvrt/gdal_translate, or pass the image itself."
        ) from None


def sidecar_candidates(path: Path) -> list[Path]:
    """Existing files next to ``path`` that may hold its camera model, most specific first."""
    d = path.parent
    try:
        entries = {p.name.lower(): p for p in d.iterdir() if p.is_file()}
    except OSError:
        return []
    stem = path.stem
    wanted = [f"{stem}_rpc.txt", f"{stem}.rpb", f"{stem}.geom", f"{stem}.xml"]
    m = re.match(r"^IMG-(?:0\d-)?(.+)$", stem, re.I)  # ALOS
    if m:
        wanted.append(f"RPC-{m.group(1)}.txt")
    base = re.sub(r"^IMG_", "", stem, flags=re.I)
    base = re.sub(r"_R\d+C\d+$", "", base, flags=re.I)  # DIMAP tiles share the scene RPC
    wanted.append(f"RPC_{base}.xml")
    out = []
    for w in wanted:
        p = entries.get(w.lower())
        if p is not None and p != path and p not in out:
            out.append(p)
    if not any(p.name.lower().startswith("rpc_") for p in out):
        rpcs = [p for n, p in sorted(entries.items()) if n.startswith("rpc_") and n.endswith(".xml")]
        if len(rpcs) == 1:  # one DIMAP RPC in the folder: the product's
            out.append(rpcs[0])
    return out


def _read_model_file(path: Path):
    """Camera from a sidecar through the non-raster readers (by content), or None if none fits."""
    from offnadir.camera import readers

    try:
        with open(path, "rb") as f:
            head = f.read(readers.HEAD_BYTES)
    except OSError:
        return None
    for name in readers.READERS:
        if name == "gdal_raster":
            continue
        mod = importlib.import_module(f"{readers.__name__}.{name}")
        if mod.sniff(path, head):
            try:
                return mod.read(path)
            except OffnadirError:
                return None
    return None
