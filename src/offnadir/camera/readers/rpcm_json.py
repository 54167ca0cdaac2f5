"""RPC as JSON: rpcm's ``RPCModel.__dict__`` style (``row_offset``, ``col_offset``, ``lat_offset``,
``lon_offset``, ``alt_offset``, ``*_scale``, ``row_num``/``row_den``/``col_num``/``col_den``), as in
the DFC2019/US3D and Sat-NeRF ``*.json`` metadata, or GDAL's RPC keys (``LINE_OFF``... with 20-lists).

The model may be the whole document or sit under an ``"rpc"`` key. rpcm works in RPC00B native
pixels, so nothing is shifted. The image size comes from ``height``/``width`` (Sat-NeRF) or
``raster_size`` = [width, height]; ``acquisition_date`` (``YYYYMMDDhhmmss``) gives the time, and
``sensor``/``satellite`` the sensor when present.
"""

from __future__ import annotations

import re
from pathlib import Path

from offnadir.camera.readers._common import head_text, image_shape, iso_time, load_json, make_camera, read_text
from offnadir.camera.rpc import RPC, short_repr
from offnadir.errors import InvalidModelError, NoCameraModelError

FORMAT = "rpc-json"

_RPCM = {
    "LINE_OFF": "row_offset", "SAMP_OFF": "col_offset", "LAT_OFF": "lat_offset",
    "LONG_OFF": "lon_offset", "HEIGHT_OFF": "alt_offset", "LINE_SCALE": "row_scale",
    "SAMP_SCALE": "col_scale", "LAT_SCALE": "lat_scale", "LONG_SCALE": "lon_scale",
    "HEIGHT_SCALE": "alt_scale", "LINE_NUM_COEFF": "row_num", "LINE_DEN_COEFF": "row_den",
    "SAMP_NUM_COEFF": "col_num", "SAMP_DEN_COEFF": "col_den",
}


def sniff(path: Path, head: bytes) -> bool:
    t = head_text(head).lstrip("\ufeff \t\r\n")
    # any JSON object: the RPC may sit after a large block (keypoints, footprints), beyond the
    # sniffed head; a JSON document without an RPC is then reported as holding no model
    return t.startswith("{") and re.match(r'\{\s*"', t) is not None


def _model_dict(doc):
    if isinstance(doc, dict):
        for key in ("rpc", "RPC", "rpcs"):
            if isinstance(doc.get(key), dict):
                return doc[key]
        return doc
    return None


def read(path: Path):
    path = Path(path)
    doc = load_json(path, read_text(path))
    m = _model_dict(doc)
    if not isinstance(m, dict):
        raise NoCameraModelError(f"{path}: JSON without an RPC object (expected an 'rpc' dict or rpcm keys).")
    if "row_offset" in m or "row_num" in m:
        missing = [v for v in _RPCM.values() if v not in m]
        if missing:
            raise InvalidModelError(f"{path}: rpcm-style RPC lacks {', '.join(missing)}.")
        d = {k: m[v] for k, v in _RPCM.items()}
    elif any(str(k).upper() == "LINE_OFF" for k in m):
        d = m
    else:
        raise NoCameraModelError(
            f"{path}: JSON holds no RPC (neither rpcm keys row_offset/row_num/... nor GDAL keys "
            "LINE_OFF/LINE_NUM_COEFF/...)."
        )
    rpcm_keys = "row_offset" in m or "row_num" in m
    rpc = RPC.from_dict(d, source=f"{path} ({FORMAT})", labels=_RPCM if rpcm_keys else None)
    shape = None
    if isinstance(doc, dict):
        if "height" in doc and "width" in doc:
            shape = image_shape(doc["height"], doc["width"], path, "height/width")
        elif "raster_size" in doc:
            size = doc["raster_size"]
            if not isinstance(size, (list, tuple)) or len(size) != 2:
                raise InvalidModelError(f"{path}: raster_size holds {short_repr(size)}; it must be "
                                        "[width, height] (two positive whole numbers).")
            shape = image_shape(size[1], size[0], path, "raster_size")
    sensor = None
    acquired = None
    if isinstance(doc, dict):
        s = doc.get("sensor") or doc.get("satellite") or doc.get("sensor_id")
        sensor = (s.strip() or None) if isinstance(s, str) else None
        date = doc.get("acquisition_date")
        acquired = iso_time(str(date)) if isinstance(date, (str, int)) and not isinstance(date, bool) else None
    return make_camera(rpc, path, FORMAT, shape=shape, sensor=sensor, acquired=acquired)
