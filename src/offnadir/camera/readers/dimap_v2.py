"""Pleiades / SPOT 6-7 DIMAP v2 RPC XML (``RPC_*.XML``: ``Dimap_Document`` with
``Rational_Function_Model/Global_RFM``), and the product's ``DIM_*.XML`` that points to it.

* The ground -> image model is ``Inverse_Model`` (``GroundtoImage_Values`` for Pleiades Neo) with
  ``LINE_NUM_COEFF_1..20`` etc. in RPC00B order; ``Direct_Model`` is image -> ground.
* ``RFM_Validity`` holds the offsets/scales and the validity domain
  (``Inverse_Model_Validity_Domain/FIRST_LON..LAST_LAT``), used as :attr:`RPC.validity`.
* ``LINE_OFF``/``SAMP_OFF`` count pixels from 1 (first pixel centre = 1,1), so RPC00B native =
  XML − 1. CNES's OSSIM ``.geom`` and GDAL's GeoTIFF RPC tags for the same products carry the
  XML value − 1. Pleiades Neo (``PNEO`` profile) RPCs are not shifted, following rpcm; no Neo
  product was available to confirm it.
* Sensor: from the metadata profile (``PHR_SENSOR``, ``S6_SENSOR``...) refined by the CNES/Airbus
  product name (``RPC_PHR1B_P_201709281038393_...``: platform PHR1B, first line 2017-09-28
  10:38:39.3) or a sibling ``DIM_*.XML`` (``MISSION``, ``MISSION_INDEX``, ``IMAGING_DATE/TIME``).
"""

from __future__ import annotations

import re
from pathlib import Path

from offnadir.camera.readers._common import (
    domain_validity, find_text, iso_time, looks_like_xml_root, make_camera, need_text, parse_xml,
    strip_namespaces, to_float,
)
from offnadir.camera.rpc import RPC
from offnadir.errors import InvalidModelError, NoCameraModelError

FORMAT = "dimap-v2"

_NORM = ("LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF",
         "LINE_SCALE", "SAMP_SCALE", "LAT_SCALE", "LONG_SCALE", "HEIGHT_SCALE")
_POLYS = ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")
_PROFILE_SENSOR = {"PHR": "PHR", "S6": "SPOT 6", "S7": "SPOT 7", "PNEO": "PNEO", "SPOT": "SPOT"}


def sniff(path: Path, head: bytes) -> bool:
    return looks_like_xml_root(head, "Dimap_Document")


def _is_neo(root) -> bool:
    prof = (find_text(root, "Metadata_Identification/METADATA_PROFILE") or "").upper()
    mission = (find_text(root, ".//MISSION") or "").upper()
    return prof.startswith("PNEO") or mission.startswith("PNEO") or root.find(
        "Rational_Function_Model/Global_RFM/GroundtoImage_Values") is not None


def _rfm(root, path: Path):
    g = root.find("Rational_Function_Model/Global_RFM")
    if g is None:
        return None
    inv = g.find("Inverse_Model")
    if inv is None:
        inv = g.find("GroundtoImage_Values")
    v = g.find("RFM_Validity")
    if inv is None or v is None:
        raise InvalidModelError(
            f"{path}: DIMAP Global_RFM has no Inverse_Model (ground -> image) or RFM_Validity; "
            "offnadir needs the ground -> image rational functions."
        )
    return g, inv, v


def read(path: Path, _referrer: Path | None = None):
    path = Path(path)
    root = strip_namespaces(parse_xml(path))
    parts = _rfm(root, path)
    if parts is None:
        ref = _referenced_rpc(root, path) if _referrer is None else None
        if ref is None and _referrer is not None:
            raise InvalidModelError(
                f"{path}: referenced by {_referrer} as its RPC file, but holds no Rational_Function_Model "
                "either. Pass the product's RPC_*.XML file."
            )
        if ref is None:
            raise NoCameraModelError(
                f"{path}: DIMAP document without a Rational_Function_Model and no RPC_*.XML "
                "referenced next to it. Pass the product's RPC_*.XML file."
            )
        cam = read(ref, _referrer=path)
        info = _dim_info(root)
        if info["acquired"]:
            cam = cam.replace(acquired=info["acquired"], acquired_from=_dim_time_source(path))
        return cam.replace(shape=cam.shape or info["shape"], sensor=info["sensor"] or cam.sensor)
    _, inv, v = parts
    kw = {k: to_float(need_text(v, k, path, "RFM_Validity"), path, k) for k in _NORM}
    neo = _is_neo(root)
    if not neo:
        # DIMAP v2 counts pixels from 1: the first pixel centre is (1, 1). RPC00B native is 0-based.
        kw["LINE_OFF"] -= 1.0
        kw["SAMP_OFF"] -= 1.0
    # else: Pleiades Neo RPCs are already 0-based (rpcm does not shift them either).
    for poly in _POLYS:
        kw[poly] = [need_text(inv, f"{poly}_{i}", path, "Inverse_Model") for i in range(1, 21)]
    rpc = RPC.from_dict(kw, source=f"{path} ({FORMAT})")
    dom = v.find("Inverse_Model_Validity_Domain")
    if dom is not None:
        val = domain_validity(
            rpc,
            find_text(dom, "FIRST_LON"), find_text(dom, "LAST_LON"),
            find_text(dom, "FIRST_LAT"), find_text(dom, "LAST_LAT"))
        if val is not None:
            rpc = rpc.replace(validity=val).validated()
    sensor, acquired = _sensor_time(root, path)
    where = f"the product name in the camera model's file name {path.name} ({FORMAT})" if acquired else None
    shape = None
    sib = _sibling_dim(path)
    if sib is not None:
        info = _dim_info(strip_namespaces(parse_xml(sib)))
        sensor = info["sensor"] or sensor
        if info["acquired"]:
            acquired, where = info["acquired"], _dim_time_source(sib)
        shape = info["shape"]
    return make_camera(rpc, path, FORMAT, shape=shape, sensor=sensor, acquired=acquired, acquired_from=where)


def _dim_time_source(dim: Path) -> str:
    return f"the product document {dim.name} (IMAGING_DATE/IMAGING_TIME, {FORMAT})"


_NAME = re.compile(r"(PHR1[AB]|PNEO\d|SPOT\d|S[67])_[A-Z0-9]+_(\d{14})(\d?)", re.I)


def _sensor_time(root, path: Path):
    prof = (find_text(root, "Metadata_Identification/METADATA_PROFILE") or "").upper()
    sensor = None
    for key, name in _PROFILE_SENSOR.items():
        if prof.startswith(key):
            sensor = name
            break
    acquired = None
    m = _NAME.search(path.name)
    if m:
        plat = m.group(1).upper()
        if plat.startswith("PHR"):
            sensor = f"PHR {plat[3:]}"
        elif plat.startswith("PNEO"):
            sensor = f"PNEO {plat[4:]}"
        elif plat.startswith("SPOT"):
            sensor = f"SPOT {plat[4:]}"
        else:
            sensor = f"SPOT {plat[1:]}"
        t = iso_time(m.group(2) + m.group(3))
        acquired = t + "Z" if t else None  # product names carry UTC
    return sensor, acquired


def _dim_info(root) -> dict:
    mission = find_text(root, ".//Source_Identification//MISSION") or find_text(root, ".//MISSION")
    index = find_text(root, ".//Source_Identification//MISSION_INDEX") or find_text(root, ".//MISSION_INDEX")
    sensor = " ".join(x for x in (mission, index) if x) or None
    acquired = iso_time(find_text(root, ".//IMAGING_TIME"), date=find_text(root, ".//IMAGING_DATE")) \
        if find_text(root, ".//IMAGING_DATE") else None
    shape = None
    try:
        shape = (int(find_text(root, ".//Raster_Dimensions/NROWS")),
                 int(find_text(root, ".//Raster_Dimensions/NCOLS")))
    except (TypeError, ValueError):
        shape = None
    return {"sensor": sensor, "acquired": acquired, "shape": shape}


def _referenced_rpc(root, path: Path) -> Path | None:
    for el in root.iter():
        href = el.get("href") or el.get("{http://www.w3.org/1999/xlink}href")
        if href and re.search(r"(^|/)RPC_[^/]*\.XML$", href, re.I):
            try:
                cand = (path.parent / href).resolve()
                if cand.exists() and cand != path.resolve():
                    return cand
            except (OSError, ValueError):  # a name too long for the file system, a NUL byte...
                continue
    return None


def _sibling_dim(path: Path) -> Path | None:
    if not path.name.upper().startswith("RPC_"):
        return None
    cand = path.with_name("DIM_" + path.name[4:])
    return cand if cand.exists() else None


def direct_model(path: Path):
    """The file's own image -> ground model (``Direct_Model``) as ``f(row, col, h) -> (lon, lat)``
    in RPC00B native pixels; offnadir localises by inverting the ground -> image model, this is
    only used to cross-check the two models of one file."""
    import numpy as np

    from offnadir.camera.readers._common import rfm_eval

    path = Path(path)
    root = strip_namespaces(parse_xml(path))
    parts = _rfm(root, path)
    if parts is None:
        raise NoCameraModelError(f"{path}: no Rational_Function_Model")
    g, _, v = parts
    d = g.find("Direct_Model")
    if d is None:
        d = g.find("ImagetoGround_Values")
    if d is None:
        raise NoCameraModelError(f"{path}: no Direct_Model")
    n = {k: to_float(need_text(v, k, path, "RFM_Validity"), path, k) for k in _NORM}
    base = 0.0 if _is_neo(root) else 1.0
    neo = d.tag == "ImagetoGround_Values"
    names = (("LON_NUM_COEFF", "LON_DEN_COEFF", "LAT_NUM_COEFF", "LAT_DEN_COEFF") if neo else
             ("SAMP_NUM_COEFF", "SAMP_DEN_COEFF", "LINE_NUM_COEFF", "LINE_DEN_COEFF"))
    c = [np.array([to_float(need_text(d, f"{p}_{i}", path, "Direct_Model"), path, p)
                   for i in range(1, 21)]) for p in names]

    def f(row, col, h):
        x = (np.asarray(col, float) + base - n["SAMP_OFF"]) / n["SAMP_SCALE"]
        y = (np.asarray(row, float) + base - n["LINE_OFF"]) / n["LINE_SCALE"]
        z = (np.asarray(h, float) - n["HEIGHT_OFF"]) / n["HEIGHT_SCALE"]
        lon = rfm_eval(c[0], c[1], x, y, z) * n["LONG_SCALE"] + n["LONG_OFF"]
        lat = rfm_eval(c[2], c[3], x, y, z) * n["LAT_SCALE"] + n["LAT_OFF"]
        return lon, lat

    return f
