"""OSSIM keyword list ``.geom`` (``key:  value`` lines) holding an RPC: ``type: ossimRpcModel``,
``ossimPleiadesModel``, ``ossimQuickbirdRpcModel``, ``ossimIkonosRpcModel``...

Fields: ``line_off samp_off lat_off long_off height_off line_scale samp_scale lat_scale long_scale
height_scale`` and ``line_num_coeff_00..19`` (also ``line_den``, ``samp_num``, ``samp_den``).
``polynomial_format: B`` is RPC00B term order, ``A`` is RPC00A (reordered here). Offsets are
already RPC00B native: CNES's ``.geom`` files are the DIMAP XML with −1 applied (checked against
the XML in ``tests/test_readers.py``). Keys may carry an OSSIM prefix (``image0.line_off``).

A ``.geom`` of a full scene goes with crops whose GeoTIFF GeoTransform gives their position in
the scene; ``read_camera(geom, image=crop.tif)`` applies it (see ``_common.attach_image``).
"""

from __future__ import annotations

import re
from pathlib import Path

from offnadir.camera.readers._common import head_text, iso_time, make_camera, read_text, rpc00a_to_b
from offnadir.camera.rpc import RPC
from offnadir.errors import InvalidModelError, NoCameraModelError

FORMAT = "ossim-geom"

_KV = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*:[ \t]*(.*?)\s*$", re.M)
_NORM = ("line_off", "samp_off", "lat_off", "long_off", "height_off",
         "line_scale", "samp_scale", "lat_scale", "long_scale", "height_scale")
_POLYS = ("line_num_coeff", "line_den_coeff", "samp_num_coeff", "samp_den_coeff")


def sniff(path: Path, head: bytes) -> bool:
    t = head_text(head)
    return (re.search(r"^\s*(?:[\w.]+\.)?line_num_coeff_0?0\s*:", t, re.M) is not None
            or re.search(r"^\s*(?:[\w.]+\.)?type\s*:\s*ossim\w*Model\s*$", t, re.M) is not None)


def _kv(text: str) -> dict[str, str]:
    """Keys without OSSIM prefixes (``image0.``), lower case; unprefixed keys win."""
    out: dict[str, str] = {}
    prefixed: dict[str, str] = {}
    for k, v in _KV.findall(text):
        k = k.lower()
        if k.startswith("support_data."):
            out.setdefault(k, v)
            continue
        if "." in k and not k.startswith("adjustment_"):
            prefixed.setdefault(k.rsplit(".", 1)[1], v)
        else:
            out.setdefault(k, v)
    for k, v in prefixed.items():
        out.setdefault(k, v)
    return out


def read(path: Path):
    path = Path(path)
    kv = _kv(read_text(path))
    if "line_num_coeff_00" not in kv and "line_num_coeff_0" not in kv:
        typ = kv.get("type", "unknown")
        raise NoCameraModelError(
            f"{path}: OSSIM geometry of type {typ!r} without RPC coefficients (line_num_coeff_00..19). "
            "offnadir reads RPC models only; export an RPC .geom (ossimRpcModel) or the vendor RPC."
        )
    d = {}
    for k in _NORM:
        if k not in kv:
            raise InvalidModelError(f"{path}: field {k} is missing; an RPC .geom needs "
                                    f"{', '.join(_NORM)} and the 4×20 coefficients.")
        d[k.upper()] = kv[k]
    fmt = kv.get("polynomial_format", "B").strip().upper() or "B"
    if fmt not in ("A", "B"):
        raise InvalidModelError(f"{path}: polynomial_format is {fmt!r}; only A (RPC00A) and B (RPC00B) exist.")
    for poly in _POLYS:
        vals = []
        for i in range(20):
            key = f"{poly}_{i:02d}" if f"{poly}_{i:02d}" in kv else f"{poly}_{i}"
            if key not in kv:
                raise InvalidModelError(f"{path}: coefficient {poly}_{i:02d} is missing.")
            vals.append(kv[key])
        if fmt == "A":
            vals = rpc00a_to_b(vals)
        d[poly.upper()] = vals
    rpc = RPC.from_dict(d, source=f"{path} ({FORMAT})", labels={k.upper(): k for k in _NORM + _POLYS})
    sensor = (kv.get("sensor") or kv.get("support_data.sensorid") or "").strip() or None
    acquired = iso_time(kv.get("support_data.image_date") or kv.get("support_data.first_line_time")
                        or kv.get("support_data.time_range_start"))
    shape = None
    try:
        shape = (int(kv["number_lines"]), int(kv["number_samples"]))
    except (KeyError, ValueError):
        shape = None
    return make_camera(rpc, path, FORMAT, shape=shape, sensor=sensor, acquired=acquired)
