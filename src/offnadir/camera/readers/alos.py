"""ALOS (PRISM/AVNIR-2) ``RPC-*.txt``: one line of fixed-width fields, no separators.

Field widths (characters), in order: LINE_OFF 6, SAMP_OFF 5, LAT_OFF 8, LONG_OFF 9, HEIGHT_OFF 5,
LINE_SCALE 6, SAMP_SCALE 5, LAT_SCALE 8, LONG_SCALE 9, HEIGHT_SCALE 5, then 4 × 20 coefficients
of 12 characters each (``+1.000000E+0``): line num, line den, samp num, samp den, RPC00B order.
Offsets are RPC00B native (GDAL's ALOS reader passes them through unchanged). A ``summary.txt``
next to it (ALOS product metadata) gives the sensor and the scene-centre time when present.
"""

from __future__ import annotations

import re
from pathlib import Path

from offnadir.camera.readers._common import head_text, iso_time, make_camera, read_text
from offnadir.camera.rpc import RPC
from offnadir.errors import InvalidModelError

FORMAT = "alos-rpc"

_WIDTHS = (("LINE_OFF", 6), ("SAMP_OFF", 5), ("LAT_OFF", 8), ("LONG_OFF", 9), ("HEIGHT_OFF", 5),
           ("LINE_SCALE", 6), ("SAMP_SCALE", 5), ("LAT_SCALE", 8), ("LONG_SCALE", 9),
           ("HEIGHT_SCALE", 5))
_HEAD = sum(w for _, w in _WIDTHS)  # 66
_COEF = 12
_NEED = _HEAD + 80 * _COEF  # 1026
_POLYS = ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")
_COEF_RE = re.compile(r"[+\-]\d\.\d{6}E[+\-]\d")


def sniff(path: Path, head: bytes) -> bool:
    lines = head_text(head).lstrip("\ufeff").splitlines()
    line = lines[0] if lines else ""
    # a truncated file still sniffs as ALOS (read() then says it is truncated)
    if len(line) < _HEAD + 4 * _COEF or not re.match(r"^[0-9+\-. ]{66}$", line[:_HEAD]):
        return False
    return all(_COEF_RE.fullmatch(line[_HEAD + i * _COEF:_HEAD + (i + 1) * _COEF]) for i in range(4))


def read(path: Path):
    path = Path(path)
    text = read_text(path).lstrip("\ufeff")
    line = text.splitlines()[0] if text else ""
    if len(line) < _NEED:
        raise InvalidModelError(f"{path}: ALOS RPC line has {len(line)} characters; {_NEED} are "
                                "needed (66 for offsets/scales + 80 coefficients × 12). The file is truncated.")
    d = {}
    pos = 0
    for name, w in _WIDTHS:
        d[name] = line[pos:pos + w]
        pos += w
    for poly in _POLYS:
        d[poly] = [line[pos + i * _COEF:pos + (i + 1) * _COEF] for i in range(20)]
        pos += 20 * _COEF
    rpc = RPC.from_dict(d, source=f"{path} ({FORMAT})")
    sensor = acquired = None
    summ = path.with_name("summary.txt")
    if summ.exists():
        kv = dict(re.findall(r'^\s*(\w+)\s*=\s*"?([^"\r\n]*)"?', read_text(summ), re.M))
        sensor = " ".join(x for x in (kv.get("Lbi_Satellite"), kv.get("Lbi_Sensor")) if x) or None
        t = kv.get("Img_SceneCenterDateTime")
        if t:
            m = re.match(r"(\d{4})(\d{2})(\d{2})\s+(\d{2}:\d{2}:\d{2}(?:\.\d+)?)", t.strip())
            acquired = f"{m.group(1)}-{m.group(2)}-{m.group(3)}T{m.group(4)}" if m else iso_time(t)
    return make_camera(rpc, path, FORMAT, sensor=sensor, acquired=acquired)
