"""Readers of camera models, one module per format, chosen by content.

Each reader module defines:

* ``FORMAT``: a short name shown by ``offnadir info`` (e.g. ``"dimap-v2"``);
* ``sniff(path: pathlib.Path, head: bytes) -> bool``: True when the file's first bytes
  (``head``, up to 64 KiB) look like this format (file names may only break ties);
* ``read(path: pathlib.Path) -> Camera``: the camera, pixel conventions converted to RPC00B native;
* optionally ``read_band(path, band)`` (multi-model files: EnMAP) and ``read_for_image(path, image)``
  (files holding the models of several images: orthority YAML).

Shared helpers (XML/text access, time stamps, attaching an image and its sensor-geometry crop) are
in ``_common.py``.

:func:`read_camera` tries them in :data:`READERS` order. Raster files (GeoTIFF, NITF, JP2, VRT) go
to the GDAL reader, which also looks for sidecar files next to the image.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from offnadir.errors import InputFileError, NoCameraModelError, UnsupportedFormatError

#: reader modules, most specific first; the GDAL raster reader comes last as it accepts any raster
READERS = (
    "dimap_v2",
    "dimap_v1",
    "dg_xml",
    "rpb",
    "rpc_txt",
    "ossim_geom",
    "alos",
    "rpcm_json",
    "enmap",
    "orthority_yaml",
    "gdal_raster",
)
HEAD_BYTES = 65536


def _modules():
    for name in READERS:
        yield importlib.import_module(f"{__name__}.{name}")


def read_camera(path, *, band: int | None = None, image=None):
    """Read the camera model of an image (with RPC metadata) or of a sidecar model file.

    ``band`` picks one band's model in multi-model files (EnMAP). ``image`` names the raster the
    model belongs to when the model is a separate file: the camera then gets that image's size, and
    for a crop in sensor geometry (no CRS, GeoTransform = crop position in the full scene, as CNES
    crops with a full-scene ``.geom``) a :attr:`Camera.crop` so that ``project`` returns the crop's
    own pixels."""
    from offnadir.camera.camera import Camera  # noqa: F401  (import cycle guard)

    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file. Check the path (relative paths are taken from {Path.cwd()}).")
    if p.is_dir():
        raise InputFileError(f"{p}: is a directory; name the image or the RPC file inside it.")
    try:
        with open(p, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as e:
        raise InputFileError(f"{p}: cannot be read ({e.strerror}). Check its permissions.") from None
    for mod in _modules():
        if mod.sniff(p, head):
            if band is not None and hasattr(mod, "read_band"):
                cam = mod.read_band(p, band)
            elif image is not None and hasattr(mod, "read_for_image"):
                cam = mod.read_for_image(p, image)
            else:
                cam = mod.read(p)
            if image is not None:
                from offnadir.camera.readers._common import attach_image

                cam = attach_image(cam, image)
            return cam
    if _looks_like_text(head):
        raise UnsupportedFormatError(
            f"{p}: not a camera model format offnadir reads. Supported: GeoTIFF/NITF/JP2/VRT RPC metadata, "
            "DigitalGlobe/Maxar .RPB and XML, Ikonos/GeoEye/Planet *_rpc.txt, Pleiades/SPOT DIMAP v2 and v1.4 XML, "
            "OSSIM .geom, ALOS RPC, rpcm JSON, EnMAP metadata XML, orthority RPC YAML. Convert the model to one of these "
            "(e.g. `gdal_translate` keeps RPC tags), or write it as GDAL RPC key: value text."
        )
    raise NoCameraModelError(
        f"{p}: holds no camera model offnadir can find (no RPC metadata, no sidecar _rpc.txt/.RPB/.geom/RPC XML). "
        "Put the vendor RPC file next to the image or pass it explicitly."
    )


def _looks_like_text(head: bytes) -> bool:
    if not head:
        return True
    sample = head[:4096]
    return b"\x00" not in sample
