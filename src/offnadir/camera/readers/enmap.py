"""EnMAP L1B/L1C/L2A ``*-METADATA.XML`` (root ``level_X``): one RPC per spectral band under
``product/navigation/RPC/bandID[@number]`` with ``ROW_OFF``, ``COL_OFF``, ``ROW_NUM_01..20``...

* Bands are numbered as in ``bandCharacterisation``: 1..N_VNIR are VNIR, the next N_SWIR are SWIR.
  L1B VNIR and SWIR cubes are not co-registered, so their RPCs differ (in the sample product all
  VNIR bands share one RPC; a ground point falls ~20 rows apart in VNIR and SWIR pixels, and SWIR
  bands differ slightly from each other).
* :func:`read` returns band 1 — the first VNIR band (the VNIR RPC is the one the VNIR cube's pixels
  follow). :func:`read_band` returns any band (``read_camera(path, band=N)``).
* Offsets are used as given (RPC00B native), as rpcm does. DLR's documentation was not available
  to confirm the pixel origin; the offsets (ROW_OFF 512 for 1024 rows) do not settle it either.
* Image size: ``product/image/vnir|swir/dimension``; time: ``base/temporalCoverage/startTime``.
"""

from __future__ import annotations

from pathlib import Path

from offnadir.camera.readers._common import (
    find_text, iso_time, looks_like_xml_root, make_camera, need_text, parse_xml, strip_namespaces,
)
from offnadir.camera.rpc import RPC
from offnadir.errors import ConfigError, NoCameraModelError

FORMAT = "enmap-xml"

_NORM = {"LINE_OFF": "ROW_OFF", "SAMP_OFF": "COL_OFF", "LAT_OFF": "LAT_OFF", "LONG_OFF": "LONG_OFF",
         "HEIGHT_OFF": "HEIGHT_OFF", "LINE_SCALE": "ROW_SCALE", "SAMP_SCALE": "COL_SCALE",
         "LAT_SCALE": "LAT_SCALE", "LONG_SCALE": "LONG_SCALE", "HEIGHT_SCALE": "HEIGHT_SCALE"}
_POLYS = {"LINE_NUM_COEFF": "ROW_NUM", "LINE_DEN_COEFF": "ROW_DEN",
          "SAMP_NUM_COEFF": "COL_NUM", "SAMP_DEN_COEFF": "COL_DEN"}


def sniff(path: Path, head: bytes) -> bool:
    return looks_like_xml_root(head, "level_X") and (b"EnMAP" in head or b"ENMAP" in head)


def _band_models(root, path: Path) -> dict[int, object]:
    rpc = root.find("product/navigation/RPC")
    if rpc is None:
        raise NoCameraModelError(f"{path}: EnMAP metadata without product/navigation/RPC; it holds "
                                 "no camera model (orthorectified products drop the RPCs).")
    out = {}
    for i, b in enumerate(rpc.findall("bandID"), start=1):
        try:
            num = int(b.get("number", i))
        except ValueError:
            num = i
        out[num] = b
    if not out:
        raise NoCameraModelError(f"{path}: product/navigation/RPC lists no bandID models.")
    return out


def band_count(path: Path) -> int:
    root = strip_namespaces(parse_xml(Path(path)))
    return len(_band_models(root, Path(path)))


def read(path: Path):
    """Camera of band 1, the first VNIR band."""
    return read_band(path, 1)


def read_band(path: Path, band: int):
    path = Path(path)
    root = strip_namespaces(parse_xml(path))
    models = _band_models(root, path)
    if band not in models:
        raise ConfigError(f"{path}: band {band} has no RPC; this file has RPCs for bands "
                          f"{min(models)}..{max(models)} (1..N_VNIR are VNIR, then SWIR).")
    b = models[band]
    src = f"{path} ({FORMAT}, band {band})"
    d = {k: need_text(b, tag, path, f"RPC band {band}") for k, tag in _NORM.items()}
    for k, tag in _POLYS.items():
        d[k] = [need_text(b, f"{tag}_{i:02d}", path, f"RPC band {band}") for i in range(1, 21)]
    rpc = RPC.from_dict(d, source=src, labels={**_NORM, **_POLYS})
    try:
        n_vnir = int(find_text(root, "specific/numberOfVNIRBands") or 0)
    except ValueError:
        n_vnir = 0
    det = "vnir" if (n_vnir == 0 or band <= n_vnir) else "swir"
    shape = None
    try:
        shape = (int(find_text(root, f"product/image/{det}/dimension/rows")),
                 int(find_text(root, f"product/image/{det}/dimension/columns")))
    except (TypeError, ValueError):
        shape = None
    mission = find_text(root, "specific/mission") or "EnMAP"
    acquired = iso_time(find_text(root, "base/temporalCoverage/startTime"))
    cam = make_camera(rpc, path, FORMAT, shape=shape, sensor=mission, acquired=acquired)
    return cam
