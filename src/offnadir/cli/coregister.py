"""``offnadir coregister``: the co-registered cube from a DSM and images, in one command."""

from __future__ import annotations

import sys

NAME = "coregister"
#: imported before the run with the garbage collector paused (see offnadir.cli.main)
IMPORTS = ("offnadir.pipeline",)


def add_cube_arguments(p, *, images: bool = True) -> None:
    """Options shared by the commands that build a cube (coregister, detect)."""
    p.add_argument("--dsm", required=True, help="DSM GeoTIFF (the output grid)")
    if images:
        p.add_argument("--image", action="append", dest="images",
                       help="image with RPC metadata; repeat for each image (the first is the base); or --stac")
    p.add_argument("--model", action="append", dest="models", default=None,
                   help="camera model file per image when not inside it (repeat in image order; 'none' to skip)")
    p.add_argument("--gcps", action="append", default=None,
                   help="GCP file per image (CSV lon,lat,h,row,col or GeoJSON) for bias compensation "
                        "(repeat in image order; 'none' to skip)")
    p.add_argument("--date", action="append", dest="dates", default=None,
                   help="acquisition date YYYY-MM-DD per image, overriding its metadata (repeat in image order; "
                        "'none' to skip); images of one date form a group")
    p.add_argument("-o", "--output", required=True, help="output Zarr store (a folder, or a URL such as "
                                                           "s3://bucket/out.zarr)")
    p.add_argument("--zarr-format", type=int, choices=(2, 3), default=2,
                   help="Zarr format of the store (default 2: opens in GDAL >= 3.10, rasterio, QGIS; 3 needs "
                        "GDAL >= 3.11)")
    p.add_argument("--chunk", type=int, default=1024,
                   help="largest tile size in DSM cells (default 1024; an axis just over it is cut into even tiles)")
    p.add_argument("--geoid", help="geoid grid when the DSM heights are above EGM96/EGM2008")
    p.add_argument("--vertical-datum", default="auto", choices=("auto", "ellipsoid", "egm96", "egm2008"))
    p.add_argument("--scheduler", help="address of an existing dask scheduler (default: local cluster)")
    p.add_argument("--workers", type=int, help="local cluster workers (default: one per core)")
    add_cluster_arguments(p)
    p.add_argument("--sun", action="append", dest="suns", default=None, metavar="AZ,EL",
                   help="sun azimuth,elevation in degrees per image (repeat in image order; 'none' to take it "
                        "from metadata / acquisition time, or estimate it from the image and the DSM)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--resume", action="store_true", help="finish an interrupted run (skip tiles already written)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--no-tie-bias", action="store_false", dest="tie_bias",
                   help="do not fit each image's bias to the base from tie points (on by default)")
    from offnadir.cli.stac import add_stac_arguments

    add_stac_arguments(p)


def add_cluster_arguments(p) -> None:
    """TLS and dashboard options (coregister, detect, run)."""
    p.add_argument("--tls-ca-file", metavar="PEM", help="tls:// scheduler: CA certificate (cluster.tls_ca_file)")
    p.add_argument("--tls-cert", metavar="PEM", help="tls:// scheduler: client certificate (cluster.tls_cert)")
    p.add_argument("--tls-key", metavar="PEM", help="tls:// scheduler: client private key (cluster.tls_key)")
    p.add_argument("--dashboard", metavar="HOST:PORT",
                   help="local cluster dashboard address (default 127.0.0.1:0; 'none' for no dashboard)")
    p.add_argument("--local-workers", choices=("auto", "processes", "threads"),
                   help="local cluster: single-threaded worker processes, or threads in this process (default auto: "
                        "threads when the plan is small enough that starting processes would cost more than they "
                        "save; cluster.local_workers)")
    p.add_argument("--cluster-kind", choices=("local", "scheduler", "slurm", "kubernetes", "gateway"),
                   help="where workers run (cluster.kind; backend options in the config's cluster section or "
                        "dask's jobqueue/gateway config; see deploy/README.md)")


def cluster_options(args) -> dict:
    """The cluster options given on the command line (None when not given)."""
    return {"tls_ca_file": getattr(args, "tls_ca_file", None), "tls_cert": getattr(args, "tls_cert", None),
            "tls_key": getattr(args, "tls_key", None), "dashboard": getattr(args, "dashboard", None),
            "kind": getattr(args, "cluster_kind", None), "local_workers": getattr(args, "local_workers", None)}


def _sun_arg(text):
    """'AZ,EL' (degrees) -> (az, el); None -> (None, None)."""
    from offnadir.errors import ConfigError

    if text is None:
        return None, None
    try:
        az, el = (float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"--sun {text!r} is not AZIMUTH,ELEVATION in degrees (e.g. --sun 150.3,50.8), "
                          "or 'none' for an image whose sun should come from metadata or be estimated.") from None
    return az, el


def config_from_args(args, images) -> dict:
    from offnadir.config import validate
    from offnadir.errors import ConfigError

    def per_image(values, what):
        if values is None:
            return [None] * len(images)
        if len(values) != len(images):
            raise ConfigError(f"{len(values)} --{what} given for {len(images)} images; give one per image in the "
                              f"same order ('none' for an image without).")
        return [None if v.lower() == "none" else v for v in values]

    from offnadir.cli.stac import stac_section

    stac = stac_section(args)  # the images from STAC (issue 9), None without --stac
    images = [] if stac is not None else list(images or [])
    if stac is None and not images:
        raise ConfigError("no images: give --image (repeat; the first is the base), or --stac ITEMS.json.")
    models = per_image(args.models, "model")
    gcps = per_image(args.gcps, "gcps")
    dates = per_image(getattr(args, "dates", None), "date")
    suns = [_sun_arg(v) for v in per_image(getattr(args, "suns", None), "sun")]
    raw = {
        "dsm": {"path": args.dsm, "geoid": args.geoid, "vertical_datum": args.vertical_datum},
        "images": [{"path": p, "model": m, "gcps": g, "date": d, "sun_azimuth": s[0], "sun_elevation": s[1]}
                   for p, m, g, d, s in zip(images, models, gcps, dates, suns)],
        "output": {"path": args.output, "overwrite": args.overwrite, "resume": args.resume,
                   "zarr_format": getattr(args, "zarr_format", 2)},
        "tiling": {"chunk": args.chunk},
        "cluster": {"scheduler": args.scheduler, "n_workers": args.workers, **cluster_options(args)},
        "tie_bias": {"enabled": getattr(args, "tie_bias", True)},
    }
    if stac is not None:
        raw["stac"] = stac
    return validate(raw, base=".", source="command line")


def add_parser(sub):
    p = sub.add_parser(NAME, help="back-project a DSM into every image: the co-registered cube (Zarr)",
                       description="Project every DSM cell into every image, find cells hidden by relief, sample "
                                   "the images, and write the cube to Zarr on a dask cluster.")
    add_cube_arguments(p)
    return p


def run(args) -> int:
    from offnadir.pipeline import run_config

    cfg = config_from_args(args, args.images)
    out = run_config(cfg, quiet=args.quiet)
    print(f"wrote {out}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
