"""DigitalGlobe / Maxar ``.RPB`` (ODL-like ``key = value;`` with ``( a, b, ... );`` lists)::

    satId = "WV03";
    BEGIN_GROUP = IMAGE
        lineOffset = 812;
        lineNumCoef = (
                -6.181087E-03,
                ...);

Offsets are RPC00B native. The sensor comes from ``satId``; a sibling ``.IMD`` (same stem), when
present, adds the acquisition time (``firstLineTime`` / ``earliestAcqTime``) and the image size.
"""

from __future__ import annotations

import re
from pathlib import Path

from offnadir.camera.readers._common import floats, head_text, iso_time, make_camera, read_text
from offnadir.camera.rpc import RPC
from offnadir.errors import InvalidModelError

FORMAT = "rpb"

_KV = re.compile(r"([A-Za-z][A-Za-z0-9_.]*)\s*=\s*(\([^)]*\)|[^;\n]*)\s*;?", re.S)
_FIELDS = {
    "LINE_OFF": "lineoffset", "SAMP_OFF": "sampoffset", "LAT_OFF": "latoffset",
    "LONG_OFF": "longoffset", "HEIGHT_OFF": "heightoffset", "LINE_SCALE": "linescale",
    "SAMP_SCALE": "sampscale", "LAT_SCALE": "latscale", "LONG_SCALE": "longscale",
    "HEIGHT_SCALE": "heightscale", "LINE_NUM_COEFF": "linenumcoef", "LINE_DEN_COEFF": "linedencoef",
    "SAMP_NUM_COEFF": "sampnumcoef", "SAMP_DEN_COEFF": "sampdencoef",
}

#: field names as the RPB writes them, for error messages
_LABELS = {k: v.replace("offset", "Offset").replace("scale", "Scale").replace("num", "Num")
           .replace("den", "Den").replace("coef", "Coef") for k, v in _FIELDS.items()}


def sniff(path: Path, head: bytes) -> bool:
    t = head_text(head)
    return (re.search(r"\blineOffset\s*=", t, re.I) is not None
            and re.search(r"\blineNumCoef\s*=\s*\(", t, re.I) is not None)


def _kv(text: str) -> dict[str, str]:
    """Lower-cased keys (group prefixes dropped) -> raw values, first occurrence wins."""
    out: dict[str, str] = {}
    for k, v in _KV.findall(text):
        k = k.lower()
        if k in ("begin_group", "end_group", "end"):
            continue
        out.setdefault(k, v.strip())
    return out


def read(path: Path):
    path = Path(path)
    kv = _kv(read_text(path))
    d = {}
    for key, name in _FIELDS.items():
        if name not in kv:
            raise InvalidModelError(f"{path}: field {name} is missing from the RPB file; it needs "
                                    f"{', '.join(_FIELDS.values())}.")
        v = kv[name]
        d[key] = floats(v, path, _LABELS[key]) if key.endswith("COEFF") else v
    rpc = RPC.from_dict(d, source=f"{path} ({FORMAT})", labels=_LABELS)
    sensor = kv.get("satid", "").strip().strip('"') or None
    shape = acquired = None
    imd = _sibling(path, ".IMD")
    if imd is not None:
        ikv = _kv(read_text(imd))
        sensor = sensor or (ikv.get("satid", "").strip('"') or None)
        acquired = iso_time(ikv.get("firstlinetime") or ikv.get("earliestacqtime"))
        try:
            shape = (int(ikv["numrows"]), int(ikv["numcolumns"]))
        except (KeyError, ValueError):
            shape = None
    return make_camera(rpc, path, FORMAT, shape=shape, sensor=sensor, acquired=acquired)


def _sibling(path: Path, ext: str) -> Path | None:
    for cand in (path.with_suffix(ext), path.with_suffix(ext.lower())):
        if cand.exists() and cand != path:
            return cand
    return None
