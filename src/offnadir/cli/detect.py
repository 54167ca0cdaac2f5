"""``offnadir detect``: the co-registered cube and change detection in one command."""

from __future__ import annotations

import sys

NAME = "detect"
#: imported before the run with the garbage collector paused (see offnadir.cli.main)
IMPORTS = ("offnadir.pipeline",)


def add_parser(sub):
    from offnadir.cli.coregister import add_cube_arguments

    p = sub.add_parser(NAME, help="cube + change detection: base image against target image(s) (Zarr)",
                       description="Back-project the DSM into the base and target images (occlusion-aware cube), "
                                   "segment the base into roof-only and ground-only patches, compare the patches "
                                   "(IR-MAD spectral criterion, parallax correlation structural criterion) and "
                                   "write patch, change and score maps plus a per-patch table to the Zarr store. "
                                   "--model, --gcps and --date are given in image order: base first, then the targets.")
    p.add_argument("--base", help="base image (the earlier date; it is segmented); or --stac")
    p.add_argument("--target", action="append", dest="targets", help="target image; repeat for several")
    add_cube_arguments(p, images=False)
    p.add_argument("--method", choices=("patch", "ortho"), default="patch",
                   help="patch: the patch-wise method (default); ortho: per-cell baseline without occlusion "
                        "handling")
    p.add_argument("--no-baseline", action="store_true",
                   help="with --method patch, do not also write the ortho baseline (change_ortho)")
    p.add_argument("--table-csv", metavar="CSV", help="also write the per-patch table to this CSV file")
    p.add_argument("--no-stac-out", action="store_false", dest="stac_out",
                   help="do not write the STAC collection of the change maps beside the store (STORE.stac/)")
    return p


def run(args) -> int:
    from offnadir.cli.coregister import config_from_args
    from offnadir.config import validate
    from offnadir.pipeline import detect_config
    from offnadir.preflight import check_change_inputs

    if not getattr(args, "stac", None) and (not args.base or not args.targets):
        from offnadir.errors import ConfigError

        raise ConfigError("give --base and at least one --target, or --stac ITEMS.json (the earliest item, or "
                          "--base-item, is the base).")
    images = [args.base] + list(args.targets or []) if args.base else []
    cfg = config_from_args(args, images)
    cfg["change"] = validate({**_raw(cfg), "change": {"method": args.method, "baseline": not args.no_baseline,
                                                      "table_csv": args.table_csv, "enabled": True}},
                             base=".", source="command line")["change"]
    check_change_inputs(cfg)
    out = detect_config(cfg, quiet=args.quiet)
    if args.stac_out:
        from offnadir.stac_out import write_stac_quietly

        write_stac_quietly(out, quiet=args.quiet)
    print(f"wrote {out}", file=sys.stderr if args.quiet else sys.stdout)
    return 0


def _raw(cfg):
    """A validated config as raw input again (validate() is idempotent on it)."""
    return {k: v for k, v in cfg.items() if k != "change"}
