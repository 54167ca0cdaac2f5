"""``offnadir stac STORE``: (re)write the STAC collection and items beside a result store; and the
``--stac`` options that ``coregister``/``detect`` take to read their images from STAC."""

from __future__ import annotations

NAME = "stac"


def add_stac_arguments(p) -> None:
    """``--stac`` and its filters (coregister, detect): the images from STAC instead of --image."""
    g = p.add_argument_group("images from STAC (instead of --image / --base --target; docs/stac.md)")
    g.add_argument("--stac", action="append", metavar="JSON", default=None,
                   help="STAC ItemCollection, catalog.json/collection.json or item JSON (repeat for several item "
                        "files); each item's image asset and RPC become an image, its datetime the date, "
                        "view:sun_* the sun")
    g.add_argument("--stac-start", metavar="DATE", help="keep items acquired on or after DATE (YYYY-MM-DD)")
    g.add_argument("--stac-end", metavar="DATE", help="keep items acquired on or before DATE (YYYY-MM-DD)")
    g.add_argument("--max-off-nadir", type=float, metavar="DEG",
                   help="keep items whose view:off_nadir (else the camera's) is at most DEG degrees")
    g.add_argument("--base-item", metavar="ID", help="item id of the base image (default: the earliest item)")
    g.add_argument("--stac-asset", metavar="KEY",
                   help="asset key of the image (default: role data, else image/visual/pan, else the first GeoTIFF)")


def stac_section(args) -> dict | None:
    """The config's ``stac`` section from the command line, None without ``--stac``. Per-image
    options make no sense then (the items give the images) and are refused."""
    from offnadir.errors import ConfigError

    paths = getattr(args, "stac", None)
    if not paths:
        given = [o for o, v in (("--stac-start", getattr(args, "stac_start", None)),
                                ("--stac-end", getattr(args, "stac_end", None)),
                                ("--max-off-nadir", getattr(args, "max_off_nadir", None)),
                                ("--base-item", getattr(args, "base_item", None)),
                                ("--stac-asset", getattr(args, "stac_asset", None))) if v is not None]
        if given:
            raise ConfigError(f"{given[0]} filters STAC items; give the items with --stac ITEMS.json.")
        return None
    clash = [o for o, v in (("--model", getattr(args, "models", None)), ("--gcps", getattr(args, "gcps", None)),
                            ("--date", getattr(args, "dates", None)), ("--sun", getattr(args, "suns", None)),
                            ("--image", getattr(args, "images", None)), ("--base", getattr(args, "base", None)),
                            ("--target", getattr(args, "targets", None))) if v]
    if clash:
        raise ConfigError(f"--stac gives the images (with their RPC, date and sun); drop {clash[0]}, or drop --stac "
                          "and give the images one by one.")
    return {"path": paths[0], "items": list(paths[1:]) or None, "start": args.stac_start, "end": args.stac_end,
            "max_off_nadir": args.max_off_nadir, "base_item": args.base_item, "asset": args.stac_asset}


def add_parser(sub):
    p = sub.add_parser(NAME, help="write the STAC collection and items of a result store (STORE.stac/)",
                       description="Write beside a complete store written by detect/run a STAC collection with one "
                                   "item per change map (per target image): footprint in WGS84, datetime of the "
                                   "target (start_datetime of the base), projection, datacube and view extensions, "
                                   "the Zarr store and any COGs exported with `offnadir export --to cog` as assets. "
                                   "detect and run write it already (unless --no-stac-out); this command rewrites it, "
                                   "e.g. after an export.")
    p.add_argument("store", metavar="STORE", help="complete Zarr store")
    p.add_argument("-o", "--output", metavar="DIR", help="folder of the catalogue (default STORE.stac beside the store)")
    p.add_argument("--cogs", metavar="DIR", help="folder of COGs from `offnadir export --to cog` (default: the "
                                                 "export's default folder beside the store, when it exists)")
    p.add_argument("--validate", action="store_true",
                   help="validate the collection and items against the STAC JSON schemas (core schemas ship with "
                        "pystac; extension schemas are fetched, or read from --schemas)")
    p.add_argument("--schemas", metavar="DIR", help="with --validate: folder of schema JSON files or of the sdists "
                                                    "of pystac-ext-projection/-datacube/-view (offline validation)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return p


def run(args) -> int:
    from offnadir.stac_out import schemas_from_dir, validate_catalog, write_stac

    col = write_stac(args.store, out_dir=args.output, cogs=args.cogs)
    if args.validate:
        n = validate_catalog(col, schemas_from_dir(args.schemas) if args.schemas else None)
        if not args.quiet:
            print(f"{n} STAC objects valid")
    if not args.quiet:
        print(f"wrote {col}")
    return 0
