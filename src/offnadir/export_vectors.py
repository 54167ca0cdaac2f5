"""Changed objects as polygons: connected cells of a change map (4-connected, as GDAL's
polygonizer traces them) with their area, cell count, mean probability/score/dh and dates, written
to GeoPackage or GeoJSON (pyogrio) or GeoParquet (pyarrow, WKB geometry and GeoParquet 1.1 ``geo``
metadata)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from offnadir.errors import ConfigError, DataError
from offnadir.export import VECTOR_FORMATS, _atomic, _date, _provenance, grid, target_images

log = logging.getLogger("offnadir.export_vectors")

#: change map value of a changed cell
CHANGED = 1
#: per-object means reported with the polygons (those the store holds)
OBJECT_MEANS = ("probability", "score", "dh")


def changed_objects(ds, images=None, *, variable="change") -> dict:
    """Connected changed regions (``variable`` == 1, 4-connected) of every target image as polygons
    with their attributes: columns of equal length, ``geometry`` as WKB, plus ``crs`` (WKT)."""
    from rasterio.features import shapes
    from scipy import ndimage

    from offnadir.wkb import polygon_wkb

    if variable not in ds:
        raise DataError(f"the store has no '{variable}' map; polygons need it.")
    transform, crs = grid(ds)
    cell_area = abs(transform.a * transform.e)
    unit = crs.linear_units_factor[1] if crs.is_projected else None
    cols = {k: [] for k in ("image", "date_base", "date_target", "object_id", "n_cells", "area_m2")}
    means = [m for m in OBJECT_MEANS if m in ds and "image" in ds[m].dims]
    cols.update({f"mean_{m}": [] for m in means})
    geoms = []
    names = target_images(ds, images)
    base = str(ds["image"].values[0])
    geod = None if crs.is_projected else _geod(crs)
    for im in names:
        change = np.asarray(ds[variable].sel(image=im).values)
        labels, n = ndimage.label(change == CHANGED)  # 4-connected, as shapes() below
        if n == 0:
            continue
        counts = np.bincount(labels.ravel(), minlength=n + 1)
        vals = {}
        for m in means:
            v = np.asarray(ds[m].sel(image=im).values, dtype=np.float64)
            ok = (labels > 0) & np.isfinite(v)
            s = np.bincount(labels[ok], weights=v[ok], minlength=n + 1)
            c = np.bincount(labels[ok], minlength=n + 1)
            with np.errstate(invalid="ignore", divide="ignore"):
                vals[m] = np.where(c > 0, s / np.maximum(c, 1), np.nan)
        for geom, lab in shapes(labels.astype(np.int32), mask=labels > 0, connectivity=4, transform=transform):
            lab = int(lab)
            rings = [np.asarray(r, dtype=np.float64) for r in geom["coordinates"]]
            geoms.append(polygon_wkb(rings))
            cols["image"].append(im)
            cols["date_base"].append(_date(ds, base))
            cols["date_target"].append(_date(ds, im))
            cols["object_id"].append(lab)
            cols["n_cells"].append(int(counts[lab]))
            area = counts[lab] * cell_area * unit ** 2 if unit else _geodesic_area(geod, rings)
            cols["area_m2"].append(float(area))
            for m in means:
                cols[f"mean_{m}"].append(float(vals[m][lab]))
        log.info("%s: %d changed objects", im, n)
    arrays = {k: np.asarray(v, dtype=object if k.startswith(("image", "date")) else None) for k, v in cols.items()}
    arrays["n_cells"] = arrays["n_cells"].astype(np.int64)
    arrays["object_id"] = arrays["object_id"].astype(np.int64)
    for k in ("area_m2", *[f"mean_{m}" for m in means]):
        arrays[k] = arrays[k].astype(np.float64)
    return {"fields": arrays, "geometry": np.asarray(geoms, dtype=object), "crs": crs.to_wkt(),
            "provenance": {**_provenance(ds), "change_variable": variable, "connectivity": "4"},
            "crs_json": crs.to_dict(projjson=True) if hasattr(crs, "to_dict") else None}


def _geod(crs):
    from pyproj import CRS

    return CRS.from_wkt(crs.to_wkt()).get_geod()


def _geodesic_area(geod, rings) -> float:
    """Area (m²) of a polygon in geographic coordinates: exterior minus holes, on the ellipsoid."""
    areas = [abs(geod.polygon_area_perimeter(r[:, 0], r[:, 1])[0]) for r in rings]
    return areas[0] - sum(areas[1:])


def write_vectors(objects, path, fmt) -> Path:
    """Write :func:`changed_objects` to ``path`` as ``fmt`` (gpkg, geojson, geoparquet)."""
    fields = objects["fields"]
    with _atomic(path) as tmp:
        if fmt == "geoparquet":
            _write_geoparquet(objects, tmp)
        else:
            try:
                import pyogrio.raw
            except ImportError as e:
                raise ConfigError(f"--to {fmt} needs pyogrio: pip install 'offnadir[export]'.") from e
            driver = VECTOR_FORMATS[fmt][0]
            opts = {"RFC7946": "YES"} if fmt == "geojson" else None  # GeoJSON is WGS84 lon/lat by its RFC
            if fmt == "geojson":
                log.info("GeoJSON: written in WGS84 lon/lat (RFC 7946); GeoPackage/GeoParquet keep the grid's CRS")
            meta = objects["provenance"] if fmt == "gpkg" else None
            pyogrio.raw.write(str(tmp), objects["geometry"], list(fields.values()), list(fields), layer="changes",
                              driver=driver, geometry_type="Polygon", crs=objects["crs"], layer_options=opts,
                              layer_metadata=meta)
    return Path(path)


def _write_geoparquet(objects, path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ConfigError("--to geoparquet needs pyarrow: pip install 'offnadir[export]'.") from e
    from offnadir.wkb import bbox_of_wkb

    cols = {k: pa.array(list(v)) if v.dtype == object else pa.array(v) for k, v in objects["fields"].items()}
    cols["geometry"] = pa.array(list(objects["geometry"]), type=pa.binary())
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"],
                                    "crs": objects["crs_json"], "bbox": bbox_of_wkb(objects["geometry"])}}}
    table = pa.table(cols).replace_schema_metadata({b"geo": json.dumps(geo).encode(),
                                                    b"offnadir": json.dumps(objects["provenance"]).encode()})
    pq.write_table(table, str(path))
