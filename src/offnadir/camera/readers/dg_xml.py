"""DigitalGlobe / Maxar product XML (``<isd>``: IMD + RPB + ... in one document), e.g. the
``*.XML`` next to WorldView/QuickBird/GeoEye tiles::

    <isd><IMD>... <IMAGE><SATID>WV02</SATID><FIRSTLINETIME>...</FIRSTLINETIME> ...</IMD>
         <RPB><SATID>WV02</SATID><IMAGE><LINEOFFSET>10108</LINEOFFSET> ...
              <LINENUMCOEFList><LINENUMCOEF>c1 ... c20</LINENUMCOEF></LINENUMCOEFList> ...

Offsets are RPC00B native, as in the ``.RPB``. The RPB section can sit deep in a large file (after
ephemeris and attitude lists), so sniffing only looks for the ``isd`` root.
"""

from __future__ import annotations

from pathlib import Path

from offnadir.camera.readers._common import (
    find_text, floats, iso_time, looks_like_xml_root, make_camera, need_text, parse_xml,
    strip_namespaces,
)
from offnadir.camera.rpc import RPC
from offnadir.errors import InvalidModelError, NoCameraModelError

FORMAT = "maxar-xml"

_SCALARS = {
    "LINE_OFF": "LINEOFFSET", "SAMP_OFF": "SAMPOFFSET", "LAT_OFF": "LATOFFSET",
    "LONG_OFF": "LONGOFFSET", "HEIGHT_OFF": "HEIGHTOFFSET", "LINE_SCALE": "LINESCALE",
    "SAMP_SCALE": "SAMPSCALE", "LAT_SCALE": "LATSCALE", "LONG_SCALE": "LONGSCALE",
    "HEIGHT_SCALE": "HEIGHTSCALE",
}
_POLYS = {"LINE_NUM_COEFF": "LINENUMCOEF", "LINE_DEN_COEFF": "LINEDENCOEF",
          "SAMP_NUM_COEFF": "SAMPNUMCOEF", "SAMP_DEN_COEFF": "SAMPDENCOEF"}


def sniff(path: Path, head: bytes) -> bool:
    return looks_like_xml_root(head, "isd")


def read(path: Path):
    path = Path(path)
    root = strip_namespaces(parse_xml(path))
    im = root.find("RPB/IMAGE")
    if im is None:
        raise NoCameraModelError(
            f"{path}: Maxar/DigitalGlobe XML without an <RPB><IMAGE> section, so it holds no RPC. "
            "Use the .RPB or _RPC.TXT delivered with the image, or the image's own RPC tags."
        )
    d = {k: need_text(im, tag, path, "RPB") for k, tag in _SCALARS.items()}
    for k, tag in _POLYS.items():
        lst = im.find(f"{tag}List")
        if lst is None:
            raise InvalidModelError(f"{path}: RPB field {tag}List is missing.")
        # one element with 20 numbers, or 20 elements with one number each
        text = " ".join((c.text or "") for c in lst.iter(tag))
        d[k] = floats(text, path, tag)
    rpc = RPC.from_dict(d, source=f"{path} ({FORMAT})", labels={**_SCALARS, **_POLYS})
    imd = root.find("IMD")
    sensor = find_text(root, "RPB/SATID") or find_text(imd, "IMAGE/SATID")
    acquired = iso_time(find_text(imd, "IMAGE/FIRSTLINETIME")
                        or find_text(imd, "MAP_PROJECTED_PRODUCT/EARLIESTACQTIME"))
    shape = None
    try:
        shape = (int(find_text(imd, "NUMROWS")), int(find_text(imd, "NUMCOLUMNS")))
    except (TypeError, ValueError):
        shape = None
    return make_camera(rpc, path, FORMAT, shape=shape, sensor=sensor, acquired=acquired)
