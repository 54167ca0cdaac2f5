"""Ground control points: the :class:`GCPs` container and :func:`read_gcps` for three sources.

A GCP ties a surveyed ground point (lon, lat in degrees; ``h`` in metres above the WGS84
ellipsoid) to the pixel where it was measured on one image. Inside offnadir, ``row``/``col`` are
**RPC00B native** pixel coordinates: 0-based, the centre of the first pixel is (row 0, col 0).

Sources and their pixel conventions (converted here, once):

* **CSV** — a header line naming the columns ``lon,lat,h,row,col`` (any order, case-insensitive;
  ``id`` optional; ``longitude``/``latitude``/``height`` accepted), then one GCP per line.
  Comma, semicolon or tab separated; blank lines and lines starting with ``#`` are skipped.
  ``row``/``col`` are native pixel centres (0-based).
* **GeoJSON** — a FeatureCollection of Point features whose coordinates are
  ``[lon, lat, h]`` (RFC 7946: WGS84, height above the ellipsoid), with the pixel either as
  ``properties.ji = [col, row]`` (Orthority's GCP format, centre-of-pixel convention, i.e.
  native) or as ``properties.row`` / ``properties.col``. If the features carry
  ``properties.filename`` for several images, pass ``image=`` to pick this image's GCPs.
* **Raster GCP tags** (GeoTIFF, NITF, VRT ... read with GDAL) — GDAL does not say where
  its GCP pixel/line origin is. GDAL's own tools (``gdal_translate -gcp``, the GCP transformer of
  ``gdalwarp``) and GeoTIFF tie points of a PixelIsArea raster put (0, 0) at the top-left *corner*
  of the first pixel, so by default native = tag − 0.5. Files written by Orthority use the
  centre convention instead (their tags hold the same numbers as their GeoJSON): read those with
  ``pixel_origin="center"``. Ground coordinates are transformed to EPSG:4979 if the tags use
  another CRS.

``pixel_origin`` (``"center"``: (0, 0) is the centre of the first pixel; ``"corner"``: its
top-left corner) overrides the default of any source.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from offnadir.camera.rpc import short_repr, to_number
from offnadir.errors import GCPError

#: accepted CSV/GeoJSON column names -> canonical name
_ALIASES = {
    "id": "id", "name": "id", "gcp": "id", "gcp_id": "id",
    "lon": "lon", "long": "lon", "longitude": "lon",
    "lat": "lat", "latitude": "lat",
    "h": "h", "height": "h", "hae": "h",
    "row": "row", "line": "row",
    "col": "col", "column": "col", "sample": "col", "samp": "col",
}
_REQUIRED = ("lon", "lat", "h", "row", "col")
_RASTER_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+", b"NITF", b"NSIF",
                 b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51")
_ORIGINS = ("center", "corner")


@dataclass(frozen=True, eq=False)
class GCPs:
    """Ground control points for one image: parallel float64 arrays plus string ids.

    ``row``/``col`` are RPC00B native pixels (centre of the first pixel = (0, 0)); ``h`` is
    metres above the WGS84 ellipsoid. Index with an int, slice, boolean mask or index array
    to get a subset (``gcps[mask]``)."""

    id: tuple[str, ...]
    lon: np.ndarray
    lat: np.ndarray
    h: np.ndarray
    row: np.ndarray
    col: np.ndarray
    #: where the GCPs were read from (used in error messages)
    source: str = field(default="<memory>")

    def __post_init__(self):
        n = len(self.id)
        for name in ("lon", "lat", "h", "row", "col"):
            a = np.array(getattr(self, name), dtype=np.float64, copy=True).reshape(-1)
            if a.size != n:
                raise GCPError(f"{self.source}: GCP field {name!r} has {a.size} values for {n} ids; "
                               "every GCP needs an id, lon, lat, h, row and col.")
            bad = ~np.isfinite(a)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise GCPError(f"{self.source}: GCP {self.id[i]!r} has {name} = {a[i]!r}; every GCP "
                               "coordinate must be a finite number. Fix or drop that GCP.")
            a.setflags(write=False)
            object.__setattr__(self, name, a)
        object.__setattr__(self, "id", tuple(str(i) for i in self.id))
        seen = set()
        dup = sorted({i for i in self.id if i in seen or seen.add(i)})
        if dup:
            raise GCPError(f"{self.source}: GCP ids {dup} appear more than once; give each GCP a "
                           "unique id (residuals are reported per id).")

    @classmethod
    def from_records(cls, records, source: str = "<memory>") -> "GCPs":
        """From an iterable of mappings with keys lon, lat, h, row, col (and optional id)."""
        rows = list(records)
        ids = [str(r.get("id", f"gcp{k + 1}")) for k, r in enumerate(rows)]
        try:
            cols = {n: [float(r[n]) for r in rows] for n in _REQUIRED}
        except KeyError as e:
            raise GCPError(f"{source}: a GCP record lacks {e.args[0]!r}; each needs {', '.join(_REQUIRED)}.") from None
        return cls(tuple(ids), source=source, **cols)

    def __len__(self) -> int:
        return len(self.id)

    def __getitem__(self, idx) -> "GCPs":
        if isinstance(idx, (int, np.integer)):
            idx = [int(idx)]
        sel = np.arange(len(self))[idx]
        return GCPs(tuple(self.id[i] for i in np.atleast_1d(sel)), self.lon[sel], self.lat[sel],
                    self.h[sel], self.row[sel], self.col[sel], source=self.source)

    def to_records(self) -> list[dict]:
        return [dict(id=self.id[k], lon=float(self.lon[k]), lat=float(self.lat[k]), h=float(self.h[k]),
                     row=float(self.row[k]), col=float(self.col[k])) for k in range(len(self))]

    def __repr__(self) -> str:
        return f"GCPs(n={len(self)}, source={self.source!r})"


# ---------------------------------------------------------------------------------------------
def read_gcps(path_or_image, *, image=None, pixel_origin: str | None = None) -> GCPs:
    """Read GCPs from a CSV file, a GeoJSON file, or the GCP tags of a raster (see module doc).

    ``image``: the image (path) the GCPs are for; used to pick its GCPs out of a GeoJSON file
    holding GCPs of several images (``properties.filename``). ``pixel_origin``: ``"center"`` or
    ``"corner"`` to override the source's pixel convention. A :class:`GCPs` is returned as is."""
    if isinstance(path_or_image, GCPs):
        return path_or_image
    if pixel_origin is not None and pixel_origin not in _ORIGINS:
        raise GCPError(f"pixel_origin must be 'center' or 'corner', not {pixel_origin!r}.")
    p = Path(path_or_image)
    if not p.exists():
        raise GCPError(f"{p}: no such GCP file. Check the path (relative paths are taken from {Path.cwd()}).")
    if p.is_dir():
        raise GCPError(f"{p}: is a directory; name the GCP file (CSV, GeoJSON or an image with GCP tags).")
    try:
        with open(p, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise GCPError(f"{p}: cannot be read ({e.strerror}). Check its permissions.") from None
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(_RASTER_MAGIC) or stripped.startswith(b"<VRTDataset") or b"\x00" in head:
        gcps = _read_raster(p, pixel_origin or "corner")
    elif stripped.startswith(b"{"):
        gcps = _read_geojson(p, image, pixel_origin or "center")
    else:
        gcps = _read_csv(p, pixel_origin or "center")
    if len(gcps) == 0:
        raise GCPError(f"{p}: holds no GCPs. Bias compensation needs at least 1 GCP (3 or more for the "
                       "affine model); add GCPs or leave the GCP option out.")
    return gcps


def _shift(origin: str) -> float:
    return -0.5 if origin == "corner" else 0.0


def _num(text, where: str, what: str) -> float:
    v = to_number(text, where, what, error=GCPError)
    if not math.isfinite(v):
        raise GCPError(f"{where}: {what} is {short_repr(text)}; GCP coordinates must be finite numbers.")
    return v


def _read_csv(p: Path, origin: str) -> GCPs:
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise GCPError(f"{p}: is neither UTF-8 text (CSV/GeoJSON) nor a raster with GCP tags. "
                       "Give a CSV with header lon,lat,h,row,col, a GeoJSON FeatureCollection, "
                       "or an image with GCP tags.") from None
    lines = [(k + 1, ln) for k, ln in enumerate(text.splitlines())
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise GCPError(f"{p}: holds no GCPs (the file is empty). Bias compensation needs at least 1 GCP; "
                       "write a header line `id,lon,lat,h,row,col` and one line per GCP.")
    header_line = lines[0][1]
    delim = next((d for d in (",", ";", "\t") if d in header_line), None)

    def split(line, lineno):
        if delim is None:
            return line.split()
        try:
            return [c.strip() for c in next(csv.reader(io.StringIO(line), delimiter=delim))]
        except csv.Error as e:  # e.g. a field beyond the csv module's size limit
            raise GCPError(f"{p}: line {lineno}: not a valid CSV line ({e}). Fix or remove that line.") from None

    names = [c.strip().lower() for c in split(header_line, lines[0][0])]
    canon = [_ALIASES.get(n) for n in names]
    missing = [r for r in _REQUIRED if r not in canon]
    if missing:
        raise GCPError(
            f"{p}: read as a CSV GCP file (it is neither GeoJSON nor a raster with GCP tags), but its header "
            f"(line {lines[0][0]}: {header_line.strip()!r}) lacks column(s) "
            f"{', '.join(missing)}. The first line must name the columns, e.g. `id,lon,lat,h,row,col` "
            "(lon/lat in degrees, h in metres above the WGS84 ellipsoid, row/col 0-based pixel centres)."
        )
    idx = {c: canon.index(c) for c in set(canon) if c is not None}
    recs = []
    for lineno, line in lines[1:]:
        cells = split(line, lineno)
        if len(cells) != len(names):
            raise GCPError(f"{p}: line {lineno}: expected {len(names)} fields ({', '.join(names)}), "
                           f"found {len(cells)}: {line.strip()!r}. Fix or remove that line.")
        where = f"{p}: line {lineno}"
        rec = {c: _num(cells[idx[c]], where, f"column {names[idx[c]]!r}") for c in _REQUIRED}
        rec["id"] = cells[idx["id"]] if "id" in idx else f"gcp{len(recs) + 1}"
        recs.append(rec)
    gcps = GCPs.from_records(recs, source=str(p))
    return _apply_origin(gcps, origin)


def _apply_origin(gcps: GCPs, origin: str) -> GCPs:
    s = _shift(origin)
    if s == 0.0:
        return gcps
    return GCPs(gcps.id, gcps.lon, gcps.lat, gcps.h, gcps.row + s, gcps.col + s, source=gcps.source)


def _read_geojson(p: Path, image, origin: str) -> GCPs:
    from offnadir.camera.readers._safe_load import load_json

    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise GCPError(f"{p}: is not UTF-8 text; a GeoJSON GCP file must be.") from None
    doc = load_json(p, text, error=GCPError)
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        feats = [doc]
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        feats = doc["features"]
    else:
        raise GCPError(f"{p}: is JSON but not a GeoJSON FeatureCollection of GCP points "
                       '({"type": "FeatureCollection", "features": [...]}).')
    crs = doc.get("crs") if isinstance(doc, dict) else None
    if crs:
        name = json.dumps(crs)
        if not any(k in name for k in ("4979", "4326", "CRS84", "CRS:84", "CRS84h")):
            raise GCPError(f"{p}: declares CRS {name}; GeoJSON GCPs must be WGS84 lon, lat and ellipsoidal "
                           "height (EPSG:4979). Reproject the GCPs.")
    def properties(f) -> dict:
        props = f.get("properties") if isinstance(f, dict) else None
        return props if isinstance(props, dict) else {}

    filenames = {str(properties(f).get("filename")) for f in feats
                 if properties(f).get("filename") is not None}
    want = None
    if len(filenames) > 1:
        if image is None:
            raise GCPError(f"{p}: holds GCPs for several images ({', '.join(sorted(filenames))}); say which "
                           "image they are for (read_gcps(..., image=PATH); the CLI passes the image).")
        want = Path(str(image)).name.lower()
        if want not in {Path(f).name.lower() for f in filenames}:
            raise GCPError(f"{p}: holds no GCPs for image {Path(str(image)).name!r} (it has GCPs for "
                           f"{', '.join(sorted(filenames))}). Use that image's GCP file.")
    recs = []
    for k, f in enumerate(feats):
        props = properties(f)
        fid = props.get("id", f.get("id") if isinstance(f, dict) else None)
        where = f"{p}: feature {k}" + (f" (id {short_repr(fid)})" if fid is not None else "")
        if want is not None and Path(str(props.get("filename"))).name.lower() != want:
            continue
        geom = f.get("geometry") if isinstance(f, dict) else None
        if not isinstance(geom, dict) or geom.get("type") != "Point":
            raise GCPError(f"{where}: geometry must be a Point [lon, lat, h]; found "
                           f"{(geom or {}).get('type') if isinstance(geom, dict) else geom!r}.")
        coords = geom.get("coordinates")
        if not isinstance(coords, (list, tuple)) or len(coords) != 3:
            raise GCPError(f"{where}: coordinates must be [lon, lat, h] with h the height above the WGS84 "
                           f"ellipsoid in metres; found {coords!r}. Add the surveyed height.")
        if "ji" in props:
            ji = props["ji"]
            if not isinstance(ji, (list, tuple)) or len(ji) != 2:
                raise GCPError(f"{where}: properties.ji must be [col, row]; found {ji!r}.")
            col, row = ji
        elif "row" in props and "col" in props:
            row, col = props["row"], props["col"]
        else:
            raise GCPError(f"{where}: has no pixel position; give properties.ji = [col, row] or "
                           "properties.row and properties.col (0-based pixel centres).")
        recs.append(dict(
            id=str(fid) if fid is not None else f"gcp{k + 1}",
            lon=_num(coords[0], where, "longitude"), lat=_num(coords[1], where, "latitude"),
            h=_num(coords[2], where, "height"), row=_num(row, where, "row"), col=_num(col, where, "col")))
    gcps = GCPs.from_records(recs, source=str(p))
    return _apply_origin(gcps, origin)


def _read_raster(p: Path, origin: str) -> GCPs:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    from offnadir.camera.readers._common import quiet_gdal_messages

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with quiet_gdal_messages(), rasterio.open(p) as ds:
                gcps, crs = ds.gcps
    except (RasterioIOError, UnicodeError) as e:
        raise GCPError(f"{p}: is not a GCP file offnadir reads (GDAL says: {short_repr(str(e), 200)}). Give a CSV with header "
                       "lon,lat,h,row,col, a GeoJSON FeatureCollection, or an image with GCP tags.") from None
    if not gcps:
        raise GCPError(f"{p}: is a raster without GCP tags, so it holds no GCPs. Give the GCPs as a CSV "
                       "(header lon,lat,h,row,col) or GeoJSON file instead.")
    if crs is None:
        raise GCPError(f"{p}: its GCP tags have no coordinate reference system, so their heights and "
                       "coordinates cannot be interpreted. Export them as CSV/GeoJSON in EPSG:4979.")
    x = np.array([g.x for g in gcps], dtype=np.float64)
    y = np.array([g.y for g in gcps], dtype=np.float64)
    z = np.array([g.z if g.z is not None else np.nan for g in gcps], dtype=np.float64)
    if crs.to_epsg() != 4979:
        from pyproj import CRS, Transformer

        src = CRS.from_user_input(crs.to_wkt())
        x, y, z = Transformer.from_crs(src, CRS.from_epsg(4979), always_xy=True).transform(x, y, z)
        x, y, z = (np.asarray(a, dtype=np.float64) for a in (x, y, z))
        if len(src.axis_info) < 3:
            warnings.warn(f"{p}: GCP tags are in the 2-D CRS {src.name!r}; their z values are taken as "
                          "heights above the WGS84 ellipsoid.", stacklevel=3)
    ids = [g.id or f"gcp{k + 1}" for k, g in enumerate(gcps)]
    recs = []
    for k, g in enumerate(gcps):
        where = f"{p}: GCP tag {k} (id {ids[k]!r})"
        recs.append(dict(id=ids[k], lon=_num(x[k], where, "x/longitude"), lat=_num(y[k], where, "y/latitude"),
                         h=_num(z[k], where, "z/height"), row=_num(g.row, where, "line"),
                         col=_num(g.col, where, "pixel")))
    return _apply_origin(GCPs.from_records(recs, source=str(p)), origin)
