"""Ikonos-style ``KEY: value`` RPC text: Ikonos/GeoEye/OrbView ``*_rpc.txt``, Planet (Dove, SkySat)
``*_RPC.TXT`` and GDAL's own RPC text dumps.

Example lines (units after the number are ignored, CRLF allowed)::

    LINE_OFF: +003754.00 pixels
    LONG_SCALE: +000.03220000 degrees
    LINE_NUM_COEFF_1: +1.332808717180063E-03

The 20 coefficients of each polynomial are numbered 1..20 in RPC00B order; offsets are already
RPC00B native (centre of the first pixel = 0), as GDAL reads them (``GDALReadRPCTXTFile``).
"""

from __future__ import annotations

import re
from pathlib import Path

from offnadir.camera.readers._common import head_text, make_camera, read_text
from offnadir.camera.rpc import RPC
from offnadir.errors import InvalidModelError

FORMAT = "rpc-txt"

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*:\s*(\S+)", re.M)
_SCALARS = ("LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF",
            "LINE_SCALE", "SAMP_SCALE", "LAT_SCALE", "LONG_SCALE", "HEIGHT_SCALE")
_POLYS = ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")


def sniff(path: Path, head: bytes) -> bool:
    t = head_text(head)
    return (re.search(r"^\s*LINE_OFF\s*:", t, re.M | re.I) is not None
            and re.search(r"^\s*LINE_NUM_COEFF_1\s*:", t, re.M | re.I) is not None)


def parse(text: str, source: Path) -> dict:
    """GDAL-style RPC dict (``LINE_NUM_COEFF`` as a 20-list) from the text."""
    kv = {k.upper(): v for k, v in _LINE.findall(text)}
    d = {}
    for k in _SCALARS:
        key = k if k in kv else k.replace("LONG", "LON")
        if key not in kv:
            raise InvalidModelError(f"{source}: field {k} is missing; an RPC text file needs "
                                    f"{', '.join(_SCALARS)} and the 4×20 coefficients.")
        d[k] = kv[key]
    for poly in _POLYS:
        vals = []
        for i in range(1, 21):
            key = f"{poly}_{i}"
            if key not in kv:
                raise InvalidModelError(f"{source}: coefficient {key} is missing (each polynomial "
                                        "needs _1 to _20).")
            vals.append(kv[key])
        d[poly] = vals
    return d


def read(path: Path):
    path = Path(path)
    rpc = RPC.from_dict(parse(read_text(path), path), source=f"{path} ({FORMAT})")
    return make_camera(rpc, path, FORMAT)
