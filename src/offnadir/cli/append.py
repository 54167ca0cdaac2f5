"""``offnadir append``: add new dates to a finished ``detect`` store."""

from __future__ import annotations

import sys

NAME = "append"


def add_parser(sub):
    from offnadir.cli.coregister import add_cluster_arguments

    p = sub.add_parser(NAME, help="add new image(s) (dates) to a finished detect store: cube and change of the new "
                                  "dates only, then the per-cell history",
                       description="Append new images to a store written by `offnadir detect`. The store's recorded "
                                   "DSM, base image and options are used; only the new images' cube tiles and their "
                                   "change against the base are computed (the earlier dates' arrays are not "
                                   "touched), then first_change/last_change/n_changes/last_observed are recomputed. "
                                   "--model, --gcps, --date, --sun and --name are given in --image order.")
    p.add_argument("store", metavar="STORE", help="Zarr store written by `offnadir detect`")
    p.add_argument("--image", action="append", dest="images", default=None,
                   help="new image with RPC metadata; repeat for several (appended in the order given)")
    p.add_argument("--stac", action="append", default=None, metavar="ITEMS",
                   help="STAC ItemCollection / catalog / item file(s): every item not yet in the store is appended, "
                        "in date order (with --start/--end/--max-off-nadir)")
    p.add_argument("--start", help="with --stac: first date YYYY-MM-DD")
    p.add_argument("--end", help="with --stac: last date YYYY-MM-DD")
    p.add_argument("--max-off-nadir", type=float, help="with --stac: largest off-nadir angle, degrees")
    p.add_argument("--model", action="append", dest="models", default=None,
                   help="camera model file per new image when not inside it ('none' to skip)")
    p.add_argument("--gcps", action="append", default=None, help="GCP file per new image ('none' to skip)")
    p.add_argument("--date", action="append", dest="dates", default=None,
                   help="acquisition date YYYY-MM-DD per new image, overriding its metadata ('none' to skip)")
    p.add_argument("--sun", action="append", dest="suns", default=None, metavar="AZ,EL",
                   help="sun azimuth,elevation in degrees per new image ('none': metadata, time or estimate)")
    p.add_argument("--name", action="append", dest="names", default=None,
                   help="label per new image (default: file stem; must differ from the store's images)")
    p.add_argument("--against-previous", action="store_true",
                   help="also compare each new image with the image of the previous date: change_prev, "
                        "probability_prev... (on the base's patches)")
    p.add_argument("--dsm", help="check that the store was made with this DSM (the store's own DSM is used)")
    p.add_argument("--resume", action="store_true", help="finish an interrupted append (tiles written are kept)")
    p.add_argument("--scheduler", help="address of an existing dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, help="local cluster workers (default: one per core)")
    add_cluster_arguments(p)
    p.add_argument("--no-stac-out", action="store_false", dest="stac_out",
                   help="do not rewrite the STAC collection beside the store (STORE.stac, one item per date)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _entries(args) -> list[dict]:
    from offnadir.cli.coregister import _sun_arg
    from offnadir.errors import ConfigError

    images = list(args.images or [])
    if args.stac:
        images_stac = _stac_entries(args)
        if images:
            raise ConfigError("give new images either with --image or with --stac, not both.")
        return images_stac
    if not images:
        if args.resume:
            return []
        raise ConfigError("nothing to append: give --image NEW.tif (repeat for several) or --stac ITEMS.")

    def per_image(values, what):
        if values is None:
            return [None] * len(images)
        if len(values) != len(images):
            raise ConfigError(f"{len(values)} --{what} given for {len(images)} --image; give one per new image in "
                              "the same order ('none' for an image without).")
        return [None if v.lower() == "none" else v for v in values]

    out = []
    for p, m, g, d, s, n in zip(images, per_image(args.models, "model"), per_image(args.gcps, "gcps"),
                                per_image(args.dates, "date"), per_image(args.suns, "sun"),
                                per_image(args.names, "name")):
        az, el = _sun_arg(s)
        e = {"path": p, "model": m, "gcps": g, "date": d, "sun_azimuth": az, "sun_elevation": el, "name": n}
        out.append({k: v for k, v in e.items() if v is not None})
    return out


def _stac_entries(args) -> list[dict]:
    import json

    from offnadir import outputs
    from offnadir.errors import ConfigError
    from offnadir.store import root_attrs

    try:
        from offnadir.io import stac
    except ImportError:  # pragma: no cover - STAC input ships with offnadir
        raise ConfigError("--stac needs offnadir's STAC reader (offnadir.io.stac), which is not installed.") from None
    attrs = root_attrs(args.store) or {}
    cfg = json.loads(attrs.get("config", "{}"))
    have = {str(outputs._real(e["path"])) for e in cfg.get("images", [])}
    picked = stac.select(args.stac, start=args.start, end=args.end, max_off_nadir=args.max_off_nadir,
                         dsm=(cfg.get("dsm") or {}).get("path"))
    return [im.entry() for im in picked if str(outputs._real(im.path)) not in have]


def _local_workers(args, opts: dict, n_new: int) -> bool | None:
    """A local cluster's workers for this append: processes, or threads for a small one (as
    :func:`offnadir.cluster.local_workers` decides for the store's grid and the new images)."""
    import logging

    import zarr

    from offnadir.cluster import local_workers

    if args.scheduler or (opts.get("kind") or "local") != "local":
        return None
    try:
        ny, nx = zarr.open_group(str(args.store), mode="r")["dsm"].shape
    except Exception:  # noqa: BLE001 - no grid to size by: worker processes, the safe default
        return True
    processes, why = local_workers(opts.get("local_workers"), args.workers, ny * nx, max(1, n_new))
    logging.getLogger("offnadir.cli.append").info("local cluster workers: %s", why)
    return processes


def run(args) -> int:
    from offnadir.append import append_images, check_store, prepare
    from offnadir.cli.coregister import cluster_options
    from offnadir.cluster import dask_client

    check_store(args.store, resume=args.resume)  # a store append cannot extend: say so before any cluster
    entries = _entries(args)
    prepare(args.store, entries, dsm=args.dsm, resume=args.resume)
    opts = cluster_options(args)
    ctx = dask_client(args.scheduler, args.workers, quiet=args.quiet, options=opts,
                      processes=_local_workers(args, opts, len(entries)))
    with ctx as client:
        summary = append_images(args.store, entries, dsm=args.dsm, resume=args.resume, client=client,
                                quiet=args.quiet, against_previous=args.against_previous)
    if args.stac_out:  # as detect: the collection beside the store, now with an item for each new date
        from offnadir.stac_out import write_stac_quietly

        write_stac_quietly(args.store, quiet=args.quiet)
    out = sys.stderr if args.quiet else sys.stdout
    print(f"appended {len(summary['images'])} image(s) to {args.store}: {summary['cube_tiles']} cube tiles, "
          f"{summary['change_tiles']} change tiles computed", file=out)
    # the exceptions were logged as warnings by offnadir.append (and are stored in offnadir:appends)
    return 0
