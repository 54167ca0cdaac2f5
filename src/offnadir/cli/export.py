"""``offnadir export``: a result store as files every GIS opens (COG, GeoPackage, GeoJSON,
GeoParquet, Zarr v2)."""

from __future__ import annotations


NAME = "export"


def add_parser(sub):
    from offnadir.export import FORMATS

    p = sub.add_parser(NAME, help="export a result store as COGs, change polygons or a GDAL-readable Zarr v2 copy",
                       description="cog: one Cloud-Optimized GeoTIFF per map and target image (default maps: change, "
                                   "probability, dh, dh_sigma, score, those the store holds) with nodata and CRS, into "
                                   "the directory -o. gpkg/geojson/geoparquet: the changed objects (connected cells "
                                   "with change == 1) of every target image as polygons with area (m2), cell count, "
                                   "mean probability/score/dh and the dates (GeoJSON in WGS84 lon/lat, RFC 7946). "
                                   "zarr2: a Zarr v2 copy of the maps that GDAL 3.10 opens (it cannot read the "
                                   "store's Zarr v3 codecs). Nothing existing is replaced without --overwrite.")
    p.add_argument("store", metavar="STORE", help="complete Zarr store written by offnadir detect/run")
    p.add_argument("--to", required=True, choices=FORMATS, help="output format")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="output file (vectors, zarr2) or directory (cog); default: beside the store")
    p.add_argument("--variable", action="append", metavar="NAME",
                   help="map to export (repeat); polygons: the change map to outline (default change)")
    p.add_argument("--image", action="append", metavar="NAME",
                   help="target image to export (repeat; default: every image but the base)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def run(args) -> int:
    from offnadir.export import export

    if args.to not in ("cog", "zarr2") and args.variable and len(args.variable) > 1:
        from offnadir.errors import ConfigError

        raise ConfigError(f"--to {args.to}: give at most one --variable (the change map to outline).")
    paths = export(args.store, args.to, args.output, variables=args.variable, images=args.image,
                   overwrite=args.overwrite)
    if not args.quiet:
        for p in paths:
            print(f"wrote {p}")
    return 0
