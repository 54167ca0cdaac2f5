"""STAC out: a STAC collection beside a result store (``STORE.stac/``), one item per change map.

Each target image (every image of the store but the base, i.e. every date compared with the base)
gets an item:

* ``geometry``/``bbox``: the DSM grid's outline in WGS84 (pyproj; 21 points per edge, so a UTM
  grid's outline stays exact to well under a cell);
* ``datetime``: the target's acquisition date, ``start_datetime``/``end_datetime``: the span from
  the base's date to the target's (the change map covers it);
* projection extension: ``proj:code`` (else ``proj:wkt2``), ``proj:shape``, ``proj:transform`` of
  the grid; datacube extension: ``cube:dimensions`` ``x``, ``y`` (spatial, cell-centre extents,
  step, CRS) and ``time`` (the target's date; in the store it is the ``image`` dimension, whose
  ``time`` coordinate holds the dates), ``cube:variables`` for ``change``, ``probability``, ``dh``
  (those the store holds); view extension: the target's ``off_nadir``/``azimuth`` and sun from the
  store's per-image coordinates (which came from the inputs: STAC, metadata or the camera);
* assets: the Zarr store (``application/vnd+zarr``, role ``data``) and, when
  ``offnadir export --to cog`` wrote them, the target's COGs (one asset per map).

Hrefs are relative (a self-contained catalogue): move the store and its ``.stac`` folder together.

For the append engineer: :func:`write_stac` rewrites the whole folder from the store as it is, so
call ``write_stac(store_path)`` after each appended date; the new date gets its item and the
earlier items come out the same (ids are ``<store name>-<image name>``). The folder is replaced
in one rename: a reader never sees half of it.

Validation: :func:`validate_catalog` runs pystac's JSON-schema validation. The core schemas ship
with pystac; the extension schemas are fetched by URL unless ``schemas`` (URI -> schema) fills the
validator's cache beforehand (the tests fill it from the recorded schemas inside pystac's
extension packages on PyPI; see tests/test_stac.py).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from offnadir.errors import DataError

log = logging.getLogger("offnadir.stac_out")

ZARR_MEDIA_TYPE = "application/vnd+zarr"
#: maps described in cube:variables (those the store holds), with their unit and meaning
CUBE_VARIABLES = {
    "change": (None, "0 no change, 1 change, 2 unobservable (nodata)"),
    "probability": (None, "calibrated probability of change, 0-1"),
    "dh": ("m", "height change target - base"),
    "dh_sigma": ("m", "standard deviation of dh"),
    "score": (None, "change confidence 0-1"),
}
EDGE_POINTS = 21


def default_dir(store) -> Path:
    s = Path(store)
    return s.with_name(s.name + ".stac")


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "item"


def _utc(t) -> _dt.datetime | None:
    if t is None or (isinstance(t, np.datetime64) and np.isnat(t)):
        return None
    s = str(np.datetime_as_string(np.datetime64(t, "us"), unit="us"))
    return _dt.datetime.fromisoformat(s).replace(tzinfo=_dt.timezone.utc)


def footprint(transform, crs, shape) -> tuple[dict, list]:
    """GeoJSON polygon and bbox (WGS84) of a grid: its outline, densified along each edge."""
    from pyproj import CRS, Transformer

    ny, nx = shape
    t = np.linspace(0.0, 1.0, EDGE_POINTS)
    cols = np.r_[t * nx, np.full_like(t, nx), (1 - t) * nx, np.zeros_like(t)]
    rows = np.r_[np.zeros_like(t), t * ny, np.full_like(t, ny), (1 - t) * ny]
    xs = transform.c + transform.a * cols + transform.b * rows
    ys = transform.f + transform.d * cols + transform.e * rows
    tr = Transformer.from_crs(CRS.from_wkt(crs.to_wkt()), "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(xs, ys)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise DataError("the store's grid cannot be placed in WGS84 (its CRS gives no longitude/latitude for its "
                        "corners); the STAC items need a footprint.")
    ring = [[float(a), float(b)] for a, b in zip(lon, lat)]
    ring = [p for k, p in enumerate(ring) if k == 0 or p != ring[k - 1]]
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    bbox = [float(np.min(lon)), float(np.min(lat)), float(np.max(lon)), float(np.max(lat))]
    return {"type": "Polygon", "coordinates": [ring]}, bbox


def _finite(v):
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _coord(ds, name, k):
    return _finite(ds[name].values[k]) if name in ds.coords else None


def _cogs(cog_dir) -> dict:
    """{image: {variable: path}} of the COGs ``offnadir export --to cog`` wrote into ``cog_dir``
    (read from each file's ``variable``/``image`` tags)."""
    import rasterio

    out: dict = {}
    if not cog_dir or not Path(cog_dir).is_dir():
        return out
    for p in sorted(Path(cog_dir).glob("*.tif")):
        try:
            with rasterio.open(p) as src:
                tags = src.tags()
        except Exception:  # noqa: BLE001 - not a readable GeoTIFF: not ours
            continue
        if tags.get("variable") and tags.get("image"):
            out.setdefault(tags["image"], {})[tags["variable"]] = p
    return out


def build_collection(store, *, cogs=None, collection_id: str | None = None):
    """The pystac Collection (with its items, hrefs still absolute) describing ``store``."""
    import pystac
    from pystac.extensions.datacube import DatacubeExtension, Dimension, Variable
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.view import ViewExtension

    from offnadir._version import __version__
    from offnadir.export import grid, open_store

    from offnadir.io.remote import is_url, url_name

    remote = is_url(str(store))
    store = str(store) if remote else Path(store).resolve()  # a URL store (s3://...) stays a URL
    name = url_name(store) if remote else store.name
    stem = name[:-5] if name.endswith(".zarr") else Path(name).stem
    ds = open_store(store, "describe in STAC")
    if "image" not in ds.dims or ds.sizes["image"] < 2:
        raise DataError(f"{store}: holds fewer than two images, so no change map; STAC out describes change maps "
                        "(run offnadir detect, or run with change detection).")
    maps = [v for v in CUBE_VARIABLES if v in ds.data_vars and {"image", "y", "x"} <= set(ds[v].dims)]
    if "change" not in maps:
        raise DataError(f"{store}: holds no change map; run offnadir detect (or run with change detection) first.")
    transform, crs = grid(ds)
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    geom, bbox = footprint(transform, crs, (ny, nx))
    code = ds.attrs.get("proj:code") or (f"EPSG:{crs.to_epsg()}" if crs.to_epsg() else None)
    wkt2 = ds.attrs.get("proj:wkt2") or crs.to_wkt()
    names = [str(n) for n in ds["image"].values]
    times = [_utc(t) for t in ds["time"].values] if "time" in ds.coords else [None] * len(names)
    base_t = times[0]
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    cid = _safe_id(collection_id or stem)
    cog_files = _cogs(cogs)
    xs, ys = ds["x"].values, ds["y"].values
    ref = crs.to_epsg() or wkt2
    items = []
    for k in range(1, len(names)):
        name, t = names[k], times[k]
        if t is None:
            log.warning("image %s has no acquisition date: its STAC item gets the processing time %s as datetime",
                        name, now.isoformat())
        when = t or now
        span = sorted(v for v in (base_t, when) if v is not None)
        props = {"offnadir:image": name, "offnadir:base_image": names[0], "offnadir:image_index": k,
                 "offnadir:software": f"offnadir {__version__}",
                 "start_datetime": pystac.utils.datetime_to_str(span[0]),
                 "end_datetime": pystac.utils.datetime_to_str(span[-1])}
        if t is None:
            props["offnadir:date_unknown"] = True
        item = pystac.Item(id=f"{cid}-{_safe_id(name)}", geometry=geom, bbox=bbox, datetime=when, properties=props)
        pe = ProjectionExtension.ext(item, add_if_missing=True)
        pe.apply(code=code, wkt2=None if code else wkt2, shape=[int(ny), int(nx)],
                 transform=[float(v) for v in tuple(transform)[:6]])
        dc = DatacubeExtension.ext(item, add_if_missing=True)
        dims = {
            "x": Dimension.from_dict({"type": "spatial", "axis": "x", "extent": [float(xs.min()), float(xs.max())],
                                      "step": float(transform.a), "reference_system": ref}),
            "y": Dimension.from_dict({"type": "spatial", "axis": "y", "extent": [float(ys.min()), float(ys.max())],
                                      "step": float(transform.e), "reference_system": ref}),
            "time": Dimension.from_dict({"type": "temporal", "extent": [pystac.utils.datetime_to_str(when)] * 2,
                                         "values": [pystac.utils.datetime_to_str(when)],
                                         "description": f"the store's image dimension at index {k} ({name})"}),
        }
        variables = {}
        for v in maps:
            unit, meaning = CUBE_VARIABLES[v]
            d = {"dimensions": ["time", "y", "x"], "type": "data",
                 "description": f"{meaning}; store variable {v}(image, y, x) at image {name}"}
            if unit:
                d["unit"] = unit
            variables[v] = Variable.from_dict(d)
        dc.apply(dimensions=dims, variables=variables)
        view = {"off_nadir": _coord(ds, "off_nadir", k), "azimuth": _coord(ds, "azimuth", k),
                "sun_azimuth": _coord(ds, "sun_azimuth", k), "sun_elevation": _coord(ds, "sun_elevation", k)}
        if view["off_nadir"] is not None and not 0 <= view["off_nadir"] <= 90:
            view["off_nadir"] = None
        if view["azimuth"] is not None:
            view["azimuth"] %= 360.0
        if view["sun_azimuth"] is not None:
            view["sun_azimuth"] %= 360.0
        if any(v is not None for v in view.values()):
            ViewExtension.ext(item, add_if_missing=True).apply(**view)
        item.add_asset("zarr", pystac.Asset(href=str(store), media_type=ZARR_MEDIA_TYPE, roles=["data"],
                                            title="offnadir result store (Zarr)",
                                            description=f"maps of image {name} are at index {k} of dimension "
                                                        "image"))
        for v, p in sorted(cog_files.get(name, {}).items()):
            item.add_asset(f"{v}_cog", pystac.Asset(href=str(Path(p).resolve()), media_type=pystac.MediaType.COG,
                                                    roles=["data"], title=f"{v} of {name} (COG)"))
        items.append(item)
    dates = [t for t in times if t is not None] or [now]
    col = pystac.Collection(
        id=cid, description=f"offnadir change maps of {name}: base {names[0]} against "
                            f"{', '.join(names[1:])}",
        extent=pystac.Extent(pystac.SpatialExtent([bbox]), pystac.TemporalExtent([[min(dates), max(dates)]])),
        license="other", title=f"offnadir changes: {stem}")
    col.add_items(items)
    return col


def write_stac(store_path, *, out_dir=None, cogs=None, collection_id: str | None = None) -> Path:
    """Write (or rewrite) the STAC collection of a complete store into ``out_dir`` (default
    ``STORE.stac`` beside it); returns the ``collection.json`` path.

    ``cogs``: the folder of ``offnadir export --to cog`` (default: the export's default folder
    beside the store, used when it exists). Safe to call again at any time, e.g. after each date
    appended to the store: the folder is rebuilt from the store and swapped in with one rename.
    A store named by URL (``s3://...``) needs ``out_dir``; its items point at the URL."""
    from offnadir.errors import ConfigError
    from offnadir.export import default_output
    from offnadir.io.remote import is_url

    if is_url(str(store_path)):
        if not out_dir:
            raise ConfigError(f"{store_path}: a store named by URL gets its STAC folder where you say: give -o DIR "
                              "(out_dir); its items point at the URL.")
        return _save(build_collection(str(store_path), cogs=cogs, collection_id=collection_id), Path(out_dir))
    store = Path(store_path)
    out = Path(out_dir) if out_dir else default_dir(store)
    if cogs is None:
        guess = default_output(store, "cog")
        cogs = guess if guess.is_dir() else None
    col = build_collection(store, cogs=cogs, collection_id=collection_id)
    return _save(col, out)


def _save(col, out: Path) -> Path:
    """Save ``col`` as the self-contained folder ``out``, swapped in with one rename."""
    import pystac

    out.parent.mkdir(parents=True, exist_ok=True)
    # a sibling folder (no dot in its name: pystac would take it for a file name): relative hrefs
    # computed here stay right after the rename
    tmp = Path(tempfile.mkdtemp(prefix="_offnadir_stac_", dir=out.parent))
    try:
        tmp.chmod(0o755)
        col.normalize_hrefs(str(tmp))
        col.make_all_asset_hrefs_relative()
        col.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix="_offnadir_stac_old_", dir=out.parent))
            os.replace(out, old / out.name)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n = len(list(col.get_items()))
    log.info("STAC: wrote %s (%d item%s)", out / "collection.json", n, "" if n == 1 else "s")
    return out / "collection.json"


def write_stac_quietly(store, *, quiet: bool = False) -> Path | None:
    """After ``detect``/``run``: write the STAC folder; an input problem becomes a warning (the
    store itself is fine) that says how to retry."""
    from offnadir.errors import OffnadirError
    from offnadir.io.remote import is_url

    if is_url(str(store)):
        log.info("%s is a URL: no STAC folder beside it; `offnadir stac %s -o DIR` writes one", store, store)
        return None
    try:
        p = write_stac(store)
    except OffnadirError as e:
        print(f"offnadir: warning: STAC out not written: {e} (`offnadir stac {store}` retries)", file=sys.stderr)
        return None
    if not quiet:
        print(f"offnadir: STAC collection {p}", file=sys.stderr)
    return p


def add_cogs(store, cog_dir) -> Path | None:
    """Called by ``offnadir export --to cog``: when the store has a STAC folder, rewrite it so the
    items list the COGs as assets. Returns the collection path, or None without a STAC folder."""
    if not default_dir(store).is_dir():
        return None
    return write_stac(store, cogs=cog_dir)


def schemas_from_dir(folder) -> dict:
    """URI -> JSON schema from a folder: ``*.json`` schema files (keyed by their ``$id``) and the
    source distributions (``*.tar.gz``) of pystac's extension packages, whose tests carry the
    schemas as recorded HTTP answers (VCR cassettes). For validating without internet."""
    import json
    import tarfile

    import yaml

    out: dict = {}
    for f in sorted(Path(folder).glob("*.json")):
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        uri = isinstance(d, dict) and (d.get("$id") or d.get("id"))
        if isinstance(uri, str) and uri.startswith("http"):
            out[uri.rstrip("#")] = d
    for f in sorted(Path(folder).glob("*.tar.gz")):
        with tarfile.open(f) as tar:
            for m in tar.getmembers():
                if "/tests/cassettes/" not in m.name or not m.name.endswith(".yaml"):
                    continue
                for rec in (yaml.safe_load(tar.extractfile(m)) or {}).get("interactions", []):
                    try:
                        if rec["response"]["status"]["code"] == 200:
                            out.setdefault(rec["request"]["uri"], json.loads(rec["response"]["body"]["string"]))
                    except (KeyError, TypeError, ValueError):
                        continue
    return out


def validate_catalog(collection_path, schemas: dict | None = None) -> int:
    """Validate the collection and every item against the STAC JSON schemas (pystac); the number
    of objects validated. ``schemas``: URI -> schema dicts put in the validator's cache first (for
    machines without internet); other schemas are fetched by URL."""
    import pystac
    import pystac.validation
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    from offnadir.errors import OffnadirError

    validator = JsonSchemaSTACValidator()
    for uri, s in (schemas or {}).items():
        validator.schema_cache[uri] = s
    col = pystac.read_file(str(collection_path))
    n = 0
    quiet = logging.getLogger("pystac.validation.stac_validator")  # it logs a traceback before raising
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        for obj in [col, *col.get_items(recursive=True)]:
            pystac.validation.validate(obj, validator=validator)
            n += 1
    except pystac.STACValidationError as e:
        raise OffnadirError(f"{collection_path}: STAC validation failed: {str(e).splitlines()[0]}") from e
    except Exception as e:  # noqa: BLE001 - a schema that cannot be fetched (no internet)
        if "GetSchemaError" in type(e).__name__ or "fetching schema" in str(e):
            uri = (re.findall(r"https?://[^\s:]+", str(e)) or ["?"])[0]
            raise OffnadirError(f"{collection_path}: a STAC schema cannot be fetched ({uri}); "
                                "validate where the schemas can be reached, or give --schemas DIR (schema files, or "
                                "the sdists of pystac-ext-projection/-datacube/-view: pip download --no-deps "
                                "--no-binary :all: -d DIR ...).") from None
        raise
    finally:
        quiet.setLevel(level)
    return n
