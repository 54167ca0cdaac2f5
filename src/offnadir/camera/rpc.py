"""The rational function model (RFM / RPC00B) as plain data.

Conventions (see ARCHITECTURE.md §3):

* pixels are RPC00B native: the centre of the first pixel is (row 0, col 0);
* heights are metres above the WGS84 ellipsoid, lon/lat in degrees;
* the 20 terms are in RPC00B order (as GDAL's ``gdal_rpc.cpp``)::

      1, L, P, H, LP, LH, PH, L², P², H², PLH, L³, LP², LH², L²P, P³, PH², L²H, P²H, H³

  with L, P, H the normalised longitude, latitude and height.

Readers build an :class:`RPC` and call :meth:`RPC.validated`; nothing else in offnadir parses text.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from offnadir.errors import InvalidModelError

#: Order of the normalisation constants in :attr:`RPC.norm` (the kernels read this layout).
NORM_FIELDS = (
    "line_off",
    "samp_off",
    "lat_off",
    "lon_off",
    "height_off",
    "line_scale",
    "samp_scale",
    "lat_scale",
    "lon_scale",
    "height_scale",
)
#: Order of the four coefficient rows in :attr:`RPC.coefs`.
COEF_FIELDS = ("line_num", "line_den", "samp_num", "samp_den")


@dataclass(frozen=True, eq=False)
class RPC:
    """An RPC00B model: normalisation constants and four 20-term cubic polynomials."""

    line_off: float
    samp_off: float
    lat_off: float
    lon_off: float
    height_off: float
    line_scale: float
    samp_scale: float
    lat_scale: float
    lon_scale: float
    height_scale: float
    line_num: tuple[float, ...]
    line_den: tuple[float, ...]
    samp_num: tuple[float, ...]
    samp_den: tuple[float, ...]
    #: optional explicit validity domain (lon_min, lon_max, lat_min, lat_max, h_min, h_max);
    #: when None the domain is offset ± scale for each axis.
    validity: tuple[float, ...] | None = None
    #: free text telling where the numbers came from (file and format), used in error messages.
    source: str = field(default="<memory>", compare=False)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: dict, source: str = "<memory>", labels: dict | None = None) -> "RPC":
        """Build from a dict with the GDAL ``RPC`` metadata domain keys (any case),
        e.g. ``LINE_OFF``, ``LONG_SCALE``, ``LINE_NUM_COEFF`` (20 numbers, list or
        space-separated string) — the form rasterio's ``RPC.to_gdal()`` produces.

        ``labels`` maps GDAL keys to the field names of the file the values came from (rpcm's
        ``row_offset``, the RPB's ``lineOffset``...), so that errors name the field as the file does."""
        up = {str(k).upper(): v for k, v in d.items()}
        labels = {str(k).upper(): v for k, v in (labels or {}).items()}
        alias = {
            "line_off": "LINE_OFF",
            "samp_off": "SAMP_OFF",
            "lat_off": "LAT_OFF",
            "lon_off": "LONG_OFF",
            "height_off": "HEIGHT_OFF",
            "line_scale": "LINE_SCALE",
            "samp_scale": "SAMP_SCALE",
            "lat_scale": "LAT_SCALE",
            "lon_scale": "LONG_SCALE",
            "height_scale": "HEIGHT_SCALE",
            "line_num": "LINE_NUM_COEFF",
            "line_den": "LINE_DEN_COEFF",
            "samp_num": "SAMP_NUM_COEFF",
            "samp_den": "SAMP_DEN_COEFF",
        }
        kw = {}
        shown = {}
        for name, key in alias.items():
            if key not in up and key.replace("LONG", "LON") in up:
                key = key.replace("LONG", "LON")
            if key not in up:
                raise InvalidModelError(
                    f"{source}: RPC field {key} is missing. A complete RPC00B model needs "
                    f"{', '.join(alias.values())}."
                )
            val = up[key]
            label = labels.get(key, key)
            if key in labels:
                shown[name] = label
            if name in COEF_FIELDS:
                if isinstance(val, str):
                    val = val.replace(",", " ").split()
                if not isinstance(val, (list, tuple)):
                    raise InvalidModelError(
                        f"{source}: RPC field {label} holds {short_repr(val)}; it must be a list of 20 numbers "
                        "(or one string of 20 numbers separated by spaces)."
                    )
                if len(val) != 20:
                    raise InvalidModelError(
                        f"{source}: RPC field {label} has {len(val)} coefficients; RPC00B needs exactly 20."
                    )
                kw[name] = tuple(to_number(v, source, f"{label}[{i + 1}]") for i, v in enumerate(val))
            else:
                if isinstance(val, str):
                    # values may carry a unit after the number ("+003754.00 pixels")
                    val = (val.split() or [""])[0]
                kw[name] = to_number(val, source, label)
        return cls(**kw, source=source).validated(shown)

    def validated(self, labels: dict | None = None) -> "RPC":
        """Return self after checking every number is usable; raise InvalidModelError naming the field
        (as ``labels`` maps attribute names to the file's field names, when given)."""
        src = self.source
        labels = labels or {}

        def f(n: str) -> str:  # "row_scale (line_scale)": the file's name, then offnadir's
            return f"{labels[n]} ({n})" if labels.get(n, n) != n else n

        for name in NORM_FIELDS:
            v = getattr(self, name)
            if not np.isfinite(v):
                raise InvalidModelError(
                    f"{src}: RPC field {f(name)} is {v!r}; every offset and scale must be a finite number. "
                    "The file is corrupt or was written by a broken tool: re-export the vendor RPC."
                )
        # physical bounds: an RPC's centre is a point on the Earth (|latitude| <= 90 degrees; longitude
        # within ±360 covers both the -180..180 and the 0..360 conventions)
        for name, bound in (("lat_off", 90.0), ("lon_off", 360.0)):
            if abs(getattr(self, name)) > bound:
                raise InvalidModelError(
                    f"{src}: RPC field {f(name)} is {getattr(self, name)!r} degrees, outside ±{bound:g}, so it "
                    "is not a place on the Earth. The file is corrupt or its fields are swapped: "
                    "re-export the vendor RPC."
                )
        for name in ("line_scale", "samp_scale", "lat_scale", "lon_scale", "height_scale"):
            if getattr(self, name) == 0:
                raise InvalidModelError(
                    f"{src}: RPC field {f(name)} is 0, which would divide by zero when normalising. "
                    "Use the vendor's original RPC file."
                )
        for name in COEF_FIELDS:
            c = getattr(self, name)
            if len(c) != 20:
                raise InvalidModelError(
                    f"{src}: RPC field {f(name)} has {len(c)} coefficients; RPC00B needs exactly 20."
                )
            if not all(np.isfinite(c)):
                bad = [i + 1 for i, v in enumerate(c) if not np.isfinite(v)]
                raise InvalidModelError(
                    f"{src}: RPC field {f(name)} has non-finite coefficients at positions {bad} (1-based). "
                    "Re-export the model from the vendor metadata."
                )
        for name in ("line_den", "samp_den"):
            if not any(v != 0 for v in getattr(self, name)):
                raise InvalidModelError(
                    f"{src}: RPC field {f(name)} is all zeros, so the rational function divides by zero "
                    "everywhere. The denominator's first coefficient is normally 1."
                )
        if self.validity is not None:
            v = tuple(self.validity)
            if (len(v) != 6 or not all(np.isfinite(v)) or v[0] > v[1] or v[2] > v[3] or v[4] > v[5]):
                raise InvalidModelError(
                    f"{src}: RPC validity domain {short_repr(v)} is not (lon_min, lon_max, lat_min, lat_max, "
                    "h_min, h_max) with finite, ordered bounds. Fix or drop the file's validity box."
                )
        return self

    # ------------------------------------------------------------------ arrays for kernels
    @property
    def norm(self) -> np.ndarray:
        """(10,) float64 in :data:`NORM_FIELDS` order."""
        return np.array([getattr(self, n) for n in NORM_FIELDS], dtype=np.float64)

    @property
    def coefs(self) -> np.ndarray:
        """(4, 20) float64 in :data:`COEF_FIELDS` order."""
        return np.array([getattr(self, n) for n in COEF_FIELDS], dtype=np.float64)

    # ------------------------------------------------------------------ domain
    @property
    def domain(self) -> tuple[float, float, float, float, float, float]:
        """(lon_min, lon_max, lat_min, lat_max, h_min, h_max) where the model is meant to be used."""
        if self.validity is not None:
            return tuple(float(v) for v in self.validity)  # type: ignore[return-value]
        lo, ls = self.lon_off, abs(self.lon_scale)
        la, las = self.lat_off, abs(self.lat_scale)
        h, hs = self.height_off, abs(self.height_scale)
        return (lo - ls, lo + ls, la - las, la + las, h - hs, h + hs)

    # ------------------------------------------------------------------ exports
    def to_gdal(self) -> dict[str, str]:
        """The GDAL ``RPC`` metadata domain (what rasterio / GDAL write as GeoTIFF RPC tags)."""
        out = {}
        names = dict(zip(NORM_FIELDS, ("LINE_OFF", "SAMP_OFF", "LAT_OFF", "LONG_OFF", "HEIGHT_OFF",
                                        "LINE_SCALE", "SAMP_SCALE", "LAT_SCALE", "LONG_SCALE",
                                        "HEIGHT_SCALE")))
        for n, k in names.items():
            out[k] = repr(float(getattr(self, n)))
        for n, k in zip(COEF_FIELDS, ("LINE_NUM_COEFF", "LINE_DEN_COEFF", "SAMP_NUM_COEFF", "SAMP_DEN_COEFF")):
            out[k] = " ".join(repr(float(v)) for v in getattr(self, n))
        lon0, lon1, lat0, lat1, _, _ = self.domain
        out.update(MIN_LONG=repr(lon0), MAX_LONG=repr(lon1), MIN_LAT=repr(lat0), MAX_LAT=repr(lat1))
        return out

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for n in COEF_FIELDS:
            d[n] = list(d[n])
        return d

    def key(self) -> tuple:
        """Hashable content (used for equality and dask tokens)."""
        return tuple(float(getattr(self, n)) for n in NORM_FIELDS) + tuple(
            float(v) for n in COEF_FIELDS for v in getattr(self, n)
        ) + (self.validity,)

    def __eq__(self, other) -> bool:
        return isinstance(other, RPC) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def replace(self, **kw) -> "RPC":
        return dataclasses.replace(self, **kw)


def short_repr(v, limit: int = 60) -> str:
    """``repr`` of a rejected value for an error message, bounded in size and cost.

    A malformed file can hold a huge value (a 100,000-digit number, a YAML alias bomb that expands
    to millions of list items): a plain ``repr`` would take minutes and memory, and flood the message."""
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict = 2, 4, 4, 4
    r.maxstring = r.maxother = r.maxlong = limit
    try:
        return r.repr(v)
    except (ValueError, RecursionError):  # int above Python's str-conversion digit limit
        return f"<{type(v).__name__} too large to show>"


def to_number(v, source: str, key: str, error: type = InvalidModelError) -> float:
    """``v`` (number, or text as found in vendor files: ``1.5E+03``, ``1.5D+03``, ``+003754.00``) as a
    float, or ``error`` naming ``source`` and ``key``. Rejects booleans, containers, empty text and
    numbers beyond the float range (``10**400``); ``inf``/``nan`` are returned and left to the caller's
    finiteness check, which can say which field must be finite."""
    if isinstance(v, bool) or v is None:
        raise error(f"{source}: field {key} holds {short_repr(v)}, which is not a number.")
    if isinstance(v, str) and not v.strip():
        raise error(f"{source}: field {key} is empty; it must hold a number.")
    try:
        if isinstance(v, str):
            return float(v.strip().replace("D", "E").replace("d", "e"))
        if isinstance(v, (int, float, np.integer, np.floating)):
            return float(v)
    except OverflowError:
        raise error(f"{source}: field {key} holds {short_repr(v)}, a number beyond the float64 range "
                    "(about ±1.8e308). The file is corrupt: use the vendor's original.") from None
    except (TypeError, ValueError):
        pass
    raise error(f"{source}: field {key} holds {short_repr(v)}, which is not a number.")
