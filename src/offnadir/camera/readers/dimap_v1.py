"""Pleiades DIMAP v1.4 (``PHRDIMAP_*.XML``, root ``PHR_Dimap_Document``).

Layout (``Geoposition/Rational_Sensor_Model/Global_RFM``)::

    Direct_Model/F_LON, F_LAT      image -> ground: 40 numbers = 20 numerator + 20 denominator
    Inverse_Model/F_COL, F_ROW     ground -> image: same layout
    RFM_Validity/Lon|Lat|Alt|Col|Row/{A, B}   normalisation: normalised = (value - B) / A
    RFM_Validity/Inverse_Model_Validity_Domain/FIRST_LON..LAST_LAT

Term order is RPC00B with (x, y, z) = (lon, lat, h) for the inverse model and (col, row, h) for
the direct one (checked numerically: both models of each file agree to ~1e-3 px in this order,
and disagree by many pixels in RPC00A order — see ``tests/test_readers.py``).

Pixel base: ``Product_Frame`` declares ``RASTER_CS_TYPE = POINT`` and ``PIXEL_ORIGIN = 1`` (the
first pixel centre is 1), and ``Direct_Model_Validity_Domain`` runs from 1 to NROWS/NCOLS, so
RPC00B native = value − PIXEL_ORIGIN (like DIMAP v2's −1). A ``CELL`` raster would count from a
corner and needs another −0.5; none was available to test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from offnadir.camera.readers._common import (
    domain_validity, find_text, floats, iso_time, looks_like_xml_root, make_camera, need_text,
    parse_xml, rfm_eval, strip_namespaces, to_float,
)
from offnadir.camera.rpc import RPC
from offnadir.errors import InvalidModelError, NoCameraModelError

FORMAT = "dimap-v1"


def sniff(path: Path, head: bytes) -> bool:
    return looks_like_xml_root(head, "PHR_Dimap_Document")


def _parts(root, path: Path):
    g = root.find(".//Rational_Sensor_Model/Global_RFM")
    if g is None:
        g = root.find(".//Global_RFM")
    if g is None:
        raise NoCameraModelError(
            f"{path}: PHR DIMAP v1 document without a Global_RFM (rational model). "
            "Use the product's DIMAP file that carries Rational_Sensor_Model."
        )
    v = g.find("RFM_Validity")
    if v is None:
        raise InvalidModelError(f"{path}: Global_RFM has no RFM_Validity (normalisation constants).")
    return g, v


def _norm(v, path: Path) -> dict[str, tuple[float, float]]:
    out = {}
    for axis in ("Lon", "Lat", "Alt", "Col", "Row"):
        a = to_float(need_text(v, f"{axis}/A", path, "RFM_Validity"), path, f"RFM_Validity/{axis}/A")
        b = to_float(need_text(v, f"{axis}/B", path, "RFM_Validity"), path, f"RFM_Validity/{axis}/B")
        out[axis] = (a, b)  # (scale, offset)
    return out


def _pixel_shift(root) -> float:
    """Value to subtract from the file's pixel coordinates to get RPC00B native ones."""
    origin = find_text(root, ".//Product_Frame/PIXEL_ORIGIN")
    cs = (find_text(root, ".//Product_Frame/RASTER_CS_TYPE") or "POINT").upper()
    try:
        o = float(origin) if origin is not None else 1.0
    except ValueError:
        o = 1.0
    return o + (0.5 if cs == "CELL" else 0.0)


def _ratio(el, tag, path: Path) -> tuple[list[float], list[float]]:
    vals = floats(need_text(el, tag, path, el.tag), path, tag)
    if len(vals) == 40:
        return vals[:20], vals[20:]
    if len(vals) == 20:  # polynomial without denominator
        return vals, [1.0] + [0.0] * 19
    raise InvalidModelError(f"{path}: {el.tag}/{tag} has {len(vals)} numbers; expected 40 "
                            "(20 numerator + 20 denominator coefficients).")


def read(path: Path):
    path = Path(path)
    root = strip_namespaces(parse_xml(path))
    g, v = _parts(root, path)
    inv = g.find("Inverse_Model")
    if inv is None:
        raise NoCameraModelError(
            f"{path}: this DIMAP v1 file has only the image -> ground model (Direct_Model); "
            "offnadir needs the ground -> image Inverse_Model (F_COL/F_ROW)."
        )
    n = _norm(v, path)
    shift = _pixel_shift(root)
    col_num, col_den = _ratio(inv, "F_COL", path)
    row_num, row_den = _ratio(inv, "F_ROW", path)
    kw = {
        "LINE_OFF": n["Row"][1] - shift, "SAMP_OFF": n["Col"][1] - shift,
        "LAT_OFF": n["Lat"][1], "LONG_OFF": n["Lon"][1], "HEIGHT_OFF": n["Alt"][1],
        "LINE_SCALE": n["Row"][0], "SAMP_SCALE": n["Col"][0], "LAT_SCALE": n["Lat"][0],
        "LONG_SCALE": n["Lon"][0], "HEIGHT_SCALE": n["Alt"][0],
        "LINE_NUM_COEFF": row_num, "LINE_DEN_COEFF": row_den,
        "SAMP_NUM_COEFF": col_num, "SAMP_DEN_COEFF": col_den,
    }
    rpc = RPC.from_dict(kw, source=f"{path} ({FORMAT})")
    dom = v.find("Inverse_Model_Validity_Domain")
    if dom is not None:
        val = domain_validity(rpc,
                              find_text(dom, "FIRST_LON"), find_text(dom, "LAST_LON"),
                              find_text(dom, "FIRST_LAT"), find_text(dom, "LAST_LAT"))
        if val is not None:
            rpc = rpc.replace(validity=val).validated()
    plat = find_text(root, ".//Data_Strip_Identification/PLATFORM_NAME")
    serial = find_text(root, ".//Data_Strip_Identification/PLATFORM_SERIAL_NUMBER")
    sensor = " ".join(x for x in (plat, serial) if x) or None
    times = [t.text.strip() for t in root.iter("ORIGIN_TIME") if t.text and t.text.strip()]
    acquired = iso_time(min(times)) if times else None
    shape = None
    try:
        shape = (int(find_text(root, ".//Raster_Dimensions/NROWS")),
                 int(find_text(root, ".//Raster_Dimensions/NCOLS")))
    except (TypeError, ValueError):
        shape = None
    return make_camera(rpc, path, FORMAT, shape=shape, sensor=sensor, acquired=acquired)


def direct_model(path: Path, order: str = "B"):
    """The file's own image -> ground model as ``f(row, col, h) -> (lon, lat)`` in native pixels
    (``order="A"`` evaluates the coefficients as RPC00A, for tests that the order is right)."""
    from offnadir.camera.readers._common import rpc00a_to_b

    path = Path(path)
    root = strip_namespaces(parse_xml(path))
    g, v = _parts(root, path)
    d = g.find("Direct_Model")
    if d is None:
        raise NoCameraModelError(f"{path}: no Direct_Model")
    n = _norm(v, path)
    shift = _pixel_shift(root)
    cs = [_ratio(d, "F_LON", path), _ratio(d, "F_LAT", path)]
    conv = (lambda c: np.asarray(rpc00a_to_b(c))) if order == "A" else np.asarray
    (lon_n, lon_d), (lat_n, lat_d) = [(conv(a), conv(b)) for a, b in cs]

    def f(row, col, h):
        x = (np.asarray(col, float) + shift - n["Col"][1]) / n["Col"][0]
        y = (np.asarray(row, float) + shift - n["Row"][1]) / n["Row"][0]
        z = (np.asarray(h, float) - n["Alt"][1]) / n["Alt"][0]
        return (rfm_eval(lon_n, lon_d, x, y, z) * n["Lon"][0] + n["Lon"][1],
                rfm_eval(lat_n, lat_d, x, y, z) * n["Lat"][0] + n["Lat"][1])

    return f
