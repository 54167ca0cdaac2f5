"""Helpers shared by the reader modules: text and XML access, time stamps, and attaching an image
(size, sensor-geometry crop position) to a camera read from a separate model file.

JSON and YAML documents are parsed through ``_safe_load`` (nesting and alias-expansion limits).
Nothing here knows a vendor format; each ``readers/<format>.py`` owns its own parsing rules.
"""

from __future__ import annotations

import contextlib
import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from offnadir.camera.camera import IDENTITY, Camera, compose_affine, invert_affine
from offnadir.camera.readers._safe_load import load_json, load_yaml  # noqa: F401  (re-exported)
from offnadir.camera.rpc import RPC, short_repr, to_number
from offnadir.errors import InputFileError, InvalidModelError

log = logging.getLogger("offnadir.camera.readers")

# ----------------------------------------------------------------------------------------- text


def head_text(head: bytes) -> str:
    """The first bytes of a file as text (undecodable bytes replaced); used by ``sniff``."""
    return head.decode("utf-8", errors="replace")


def read_text(path: Path) -> str:
    """Whole file as text: UTF-8, else Latin-1 (old vendor files are often ISO-8859-1)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise InputFileError(f"{path}: cannot be read ({e.strerror}).") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def looks_like_xml_root(head: bytes, *roots: str) -> bool:
    """True when the first element of the document (after the prolog/comments) is one of ``roots``."""
    txt = head_text(head[:8192])
    m = re.search(r"<\s*([A-Za-z_][\w.\-]*(?::[\w.\-]+)?)[\s>/]", _strip_prolog(txt))
    if not m:
        return False
    tag = m.group(1).split(":")[-1]
    return tag in roots


def _strip_prolog(txt: str) -> str:
    txt = txt.lstrip("\ufeff \t\r\n")
    txt = re.sub(r"<\?.*?\?>", "", txt, flags=re.S)
    txt = re.sub(r"<!--.*?-->", "", txt, flags=re.S)
    txt = re.sub(r"<!DOCTYPE[^>]*>", "", txt, flags=re.S)
    return txt


# ------------------------------------------------------------------------------------------ XML


def parse_xml(path: Path) -> ET.Element:
    """Root element of an XML file; a malformed file is an :class:`InvalidModelError` naming it."""
    try:
        return ET.parse(str(path)).getroot()
    except ET.ParseError as e:
        raise InvalidModelError(
            f"{path}: is not well-formed XML ({e}). The file is truncated or corrupt: "
            "fetch the original from the product delivery."
        ) from None
    except (LookupError, UnicodeError, ValueError) as e:  # unknown/invalid declared encoding
        raise InvalidModelError(
            f"{path}: XML declaration names an encoding Python cannot decode the file with "
            f"({short_repr(str(e), 120)}). Fix the encoding=\"...\" attribute of the <?xml ...?> line "
            "(vendor files are UTF-8 or ISO-8859-1) or use the original file."
        ) from None
    except RecursionError:
        raise InvalidModelError(f"{path}: XML nests elements too deeply to be a camera model file.") from None
    except OSError as e:
        raise InputFileError(f"{path}: cannot be read ({e.strerror}).") from None


def strip_namespaces(root: ET.Element) -> ET.Element:
    """Drop ``{namespace}`` prefixes from tags in place so paths can be written plainly."""
    for el in root.iter():
        if isinstance(el.tag, str) and el.tag.startswith("{"):
            el.tag = el.tag.split("}", 1)[1]
    return root


def find_text(el: ET.Element | None, path: str) -> str | None:
    """Stripped text at ``path`` below ``el`` (ElementTree path), or None when absent/empty."""
    if el is None:
        return None
    f = el.find(path)
    if f is None or f.text is None:
        return None
    t = f.text.strip()
    return t or None


def need_text(el: ET.Element | None, path: str, source: Path, what: str) -> str:
    """As :func:`find_text` but a missing field is an :class:`InvalidModelError` naming it."""
    t = find_text(el, path)
    if t is None:
        raise InvalidModelError(
            f"{source}: {what} field {path} is missing or empty. The model is incomplete; "
            "use the vendor's original file."
        )
    return t


def to_float(text, source: Path, field: str) -> float:
    """A number of the file (text or parsed value); anything else is an :class:`InvalidModelError`."""
    return to_number(text, str(source), field)


def floats(text: str, source: Path, field: str) -> list[float]:
    """Numbers of a whitespace/comma separated list."""
    return [to_float(t, source, field) for t in re.split(r"[\s,;()]+", text.strip()) if t]


# ------------------------------------------------------------------------------------------ time


_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})[T ]?(\d{2})(\d{2})(\d{2})(\d*)$")


def iso_time(text: str | None, date: str | None = None) -> str | None:
    """Normalise a time stamp to ISO 8601 text (``YYYY-MM-DDThh:mm:ss[.f][Z]``); None if unusable.

    Accepts ISO text, compact ``YYYYMMDDhhmmss`` (NITF, JSON) and a separate ``date`` + ``text``
    time of day (DIMAP ``IMAGING_DATE``/``IMAGING_TIME``)."""
    if text is None and date is None:
        return None
    if date is not None:
        date = date.strip().strip('"')
        text = f"{date}T{text.strip().strip(chr(34))}" if text else date
    t = str(text).strip().strip('"').strip()
    if not t:
        return None
    m = _COMPACT.match(t)
    if m:
        y, mo, d, h, mi, s, frac = m.groups()
        return f"{y}-{mo}-{d}T{h}:{mi}:{s}" + (f".{frac}" if frac else "")
    if re.match(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$", t):
        return t.replace(" ", "T", 1)
    return None


# ----------------------------------------------------------------------------------------- model


def image_shape(rows, cols, source, fields: str = "rows/cols") -> tuple[int, int] | None:
    """Image size (rows, cols) from a file's values, or None when the file gives none; a size that is
    not two positive whole numbers (``-5``, ``2.5``, ``1e400``, ``"a"``) is an :class:`InvalidModelError`
    naming ``fields``."""
    if rows is None and cols is None:
        return None
    out = []
    for v in (rows, cols):
        try:
            f = to_number(v, str(source), fields)
            ok = np.isfinite(f) and f == int(f) and 0 < f < 2 ** 31
        except (InvalidModelError, OverflowError, ValueError):
            ok = False
        if not ok:
            raise InvalidModelError(
                f"{source}: image size field {fields} holds {short_repr(rows)}, {short_repr(cols)}; an image "
                "size is two positive whole numbers (rows and columns). Fix the size or remove it."
            )
        out.append(int(f))
    return out[0], out[1]


def make_camera(rpc: RPC, path: Path, fmt: str, *, shape=None, sensor=None, acquired=None,
                acquired_from: str | None = None) -> Camera:
    """The camera of model file ``path``; ``acquired_from`` says where ``acquired`` was read when that
    was not the model file itself (default: "the camera model NAME (FORMAT)")."""
    if shape is not None:
        shape = image_shape(shape[0], shape[1], path, "image size")
    sensor = (sensor.strip() or None) if isinstance(sensor, str) else sensor
    where = (acquired_from or f"the camera model {Path(path).name} ({fmt})") if acquired else None
    return Camera(rpc=rpc, shape=shape, sensor=sensor, acquired=acquired, source=str(path), model_format=fmt,
                  acquired_from=where)


def domain_validity(rpc: RPC, lon0, lon1, lat0, lat1) -> tuple[float, ...] | None:
    """Explicit validity tuple from a lon/lat box given by the file (heights: offset ± scale),
    or None when the box is unusable.

    The box must contain the model's own centre (LONG_OFF, LAT_OFF). Some vendor files swap the
    axes (the SPOT 6 ``rpc_SPOT6.xml`` of rpcm's tests has ``FIRST_LON = 18.39`` and
    ``FIRST_LAT = -72.44`` for a scene at 72.27 W 18.58 N): a box that only fits once swapped is
    swapped back; one that fits neither way is ignored (offset ± scale is used instead)."""
    try:
        vals = [float(v) for v in (lon0, lon1, lat0, lat1)]
    except (TypeError, ValueError):
        return None
    if not all(np.isfinite(vals)) or vals[0] == vals[1] or vals[2] == vals[3]:
        return None
    lo = (min(vals[0], vals[1]), max(vals[0], vals[1]))
    la = (min(vals[2], vals[3]), max(vals[2], vals[3]))

    def inside(box_lon, box_lat):
        return box_lon[0] <= rpc.lon_off <= box_lon[1] and box_lat[0] <= rpc.lat_off <= box_lat[1]

    if not inside(lo, la):
        if inside(la, lo):
            lo, la = la, lo
        else:
            return None
    h, hs = float(rpc.height_off), abs(float(rpc.height_scale))
    return (lo[0], lo[1], la[0], la[1], h - hs, h + hs)


#: RPC00A term order expressed as indices into RPC00B order: ``b[i] = a[A_TO_B[i]]``.
#: RPC00A: 1 L P H LP LH PH LPH L² P² H² L³ LP² LH² L²P P³ PH² L²H P²H H³
#: RPC00B: 1 L P H LP LH PH L² P² H² PLH L³ LP² LH² L²P P³ PH² L²H P²H H³
A_TO_B = (0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 7, 11, 12, 13, 14, 15, 16, 17, 18, 19)


def rpc00a_to_b(coefs) -> list[float]:
    c = list(coefs)
    return [c[i] for i in A_TO_B]


# ---------------------------------------------------------------------------- image attachment


def sensor_crop(transform) -> tuple[float, ...]:
    """Camera.crop for an image whose GeoTransform places it inside the full scene in sensor
    geometry (CNES crops: no CRS, transform = crop position in the full-scene pixel grid).

    GDAL corner coordinates of the full scene are ``transform × (crop col, crop row)``; native
    (centre-of-first-pixel) coordinates are the corner ones minus 0.5 on both frames, so
    ``full_native = M·(crop_native + 0.5) − 0.5`` with ``M`` the transform written on (row, col).
    The camera wants the inverse map, full native -> crop native, as a 2×3 affine on (row, col)."""
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    # x(full col) = a*col + b*row + c ; y(full row) = d*col + e*row + f  (rasterio Affine order)
    m_rowcol = (e, d, f, b, a, c)  # (row, col) -> (row, col), corner frames
    shift_in = (1.0, 0.0, 0.5, 0.0, 1.0, 0.5)
    shift_out = (1.0, 0.0, -0.5, 0.0, 1.0, -0.5)
    crop_to_full = compose_affine(shift_out, compose_affine(m_rowcol, shift_in))
    return invert_affine(crop_to_full)


def _is_identity(transform) -> bool:
    return np.allclose(tuple(transform)[:6], (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), rtol=0, atol=1e-12)


@contextlib.contextmanager
def quiet_gdal_messages():
    """Swallow what rasterio prints when a GDAL message is not UTF-8.

    GDAL's errors quote the bytes of a corrupt file (an XML parse error in a GeoTIFF's GDAL_METADATA
    tag, a VRT); rasterio's error handler cannot decode them and, being unable to raise, prints the
    UnicodeDecodeError and a traceback to stderr. The open itself then fails or succeeds normally and
    offnadir reports the outcome, so this output is dropped (logged at debug level) instead of
    breaking the CLI's one-line error. Other stderr output is passed through unchanged."""
    import io
    import sys

    prev_hook = sys.unraisablehook
    buf = io.StringIO()

    def hook(u):
        if isinstance(u.exc_value, UnicodeDecodeError) and "rasterio" in str(u.object):
            log.debug("rasterio could not decode a GDAL message: %s", u.exc_value)
            return
        prev_hook(u)

    sys.unraisablehook = hook
    try:
        with contextlib.redirect_stderr(buf):
            yield
    finally:
        sys.unraisablehook = prev_hook
        rest = [ln for ln in buf.getvalue().splitlines(keepends=True)
                if not ln.startswith("UnicodeDecodeError: 'utf-8' codec can't decode")]
        if rest:
            sys.stderr.write("".join(rest))


def image_info(image_path: Path) -> dict:
    """Size, georeferencing and acquisition tags of a raster (through rasterio/GDAL)."""
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    p = Path(image_path)
    if not p.exists():
        raise InputFileError(f"{p}: no such image file. Check the path given as image=.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with quiet_gdal_messages(), rasterio.open(p) as ds:
                return {
                    "shape": (ds.height, ds.width),
                    "crs": ds.crs,
                    "transform": ds.transform,
                    "has_rpc": bool(ds.tags(ns="RPC")),
                    "tags": tags_all(ds),
                    "driver": ds.driver,
                }
    except (RasterioIOError, UnicodeError) as e:
        raise InputFileError(f"{p}: GDAL cannot open it as a raster ({short_repr(str(e), 200)}).") from None


def tags_all(ds) -> dict:
    """All metadata domains of interest, keys prefixed ``domain:`` except the default domain."""
    out = dict(ds.tags())
    for ns in ("IMD", "IMAGERY", "DIMAP"):
        try:
            for k, v in ds.tags(ns=ns).items():
                out[f"{ns}:{k}"] = v
        except Exception:  # noqa: BLE001 - a missing domain is not an error
            pass
    return out


def sensor_time_from_tags(tags: dict) -> tuple[str | None, str | None]:
    """Sensor name and acquisition time from GDAL metadata of the common vendor families."""
    def g(*keys):
        for k in keys:
            v = tags.get(k)
            if v not in (None, ""):
                return str(v).strip().strip('"').strip()
        return None

    sensor = None
    acquired = None
    # GDAL's normalised IMAGERY domain (from its vendor metadata readers)
    sensor = g("IMAGERY:SATELLITEID")
    acquired = iso_time(g("IMAGERY:ACQUISITIONDATETIME"))
    # DIMAP tags copied into GeoTIFFs (Pleiades / SPOT)
    if sensor is None and g("MISSION"):
        sensor = " ".join(x for x in (g("MISSION"), g("MISSION_INDEX")) if x)
    if acquired is None and g("IMAGING_DATE"):
        acquired = iso_time(g("IMAGING_TIME"), date=g("IMAGING_DATE"))
    # DigitalGlobe IMD domain (VRT / GTiff with .IMD)
    if sensor is None:
        sensor = g("IMD:IMAGE_1.satId", "IMD:IMAGE_1.SATID")
    if acquired is None:
        acquired = iso_time(g("IMD:IMAGE_1.firstLineTime", "IMD:MAP_PROJECTED_PRODUCT.earliestAcqTime"))
    # NITF image subheader
    if sensor is None:
        src = g("NITF_ISORCE")
        if src and src.lower() not in ("unknown", "missing", "none"):
            sensor = src
    if acquired is None:
        idatim = g("NITF_IDATIM")
        # GDAL's NITF writer fills FDT/IDATIM with the constant 20021216151629 when the creator gave
        # none, so that value says nothing about the acquisition.
        if idatim and idatim != "20021216151629" and idatim.strip("0 -"):
            acquired = iso_time(idatim)
    # Not read: the TIFF DateTime tag (TIFFTAG_DATETIME). TIFF 6.0 defines it as the date and time of
    # image *creation*, and where a real product here carries one it is the production time:
    # picanteo's post_event_img1.tif holds "20230511 10:46:49", the DATASET_PRODUCTION_DATE of its
    # stereo mate post_event_img2.tif (2023-05-11T10:46:35), 26 days after both were imaged
    # (IMAGING_DATE 2023-04-15). Read as an acquisition time it would give a wrong sun and a wrong
    # date group (benchmarks/eval_sun_sources.py surveys every real image's time fields).
    return sensor, acquired


def attach_image(camera: Camera, image_path) -> Camera:
    """The camera of ``image_path`` when its model came from a separate file.

    Sets the image size; fills sensor/acquisition time from the image tags when the model file had
    none; and, when the image carries no RPC of its own, no CRS and a non-identity GeoTransform,
    reads that transform as the crop position in the full scene (CNES crop convention) and sets
    :attr:`Camera.crop` so that :meth:`Camera.project` returns the crop's pixels."""
    info = image_info(Path(image_path))
    sensor, acquired = sensor_time_from_tags(info["tags"])
    crop = camera.crop
    if not info["has_rpc"] and info["crs"] is None and not _is_identity(info["transform"]):
        crop = sensor_crop(info["transform"])
    from_tags = not camera.acquired and acquired
    return camera.replace(
        shape=tuple(int(v) for v in info["shape"]),
        crop=tuple(crop) if crop is not None else IDENTITY,
        sensor=camera.sensor or sensor,
        acquired=camera.acquired or acquired,
        acquired_from=f"{Path(image_path).name}'s metadata tags" if from_tags else camera.acquired_from,
    )


def rfm_eval(num, den, x, y, z):
    """Plain numpy ratio of two 20-term cubics in RPC00B order of (x, y, z) — used only to evaluate
    a file's secondary (image -> ground) model for cross-checks; the camera uses the numba kernels."""
    def poly(c):
        return (c[0] + c[1] * x + c[2] * y + c[3] * z + c[4] * x * y + c[5] * x * z + c[6] * y * z
                + c[7] * x * x + c[8] * y * y + c[9] * z * z + c[10] * x * y * z + c[11] * x ** 3
                + c[12] * x * y * y + c[13] * x * z * z + c[14] * x * x * y + c[15] * y ** 3
                + c[16] * y * z * z + c[17] * x * x * z + c[18] * y * y * z + c[19] * z ** 3)
    return poly(num) / poly(den)
