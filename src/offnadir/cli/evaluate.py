"""``offnadir evaluate``: accuracy of a store's change maps against a truth raster."""

from __future__ import annotations

NAME = "evaluate"


def add_parser(sub):
    p = sub.add_parser(NAME, help="precision/recall/F1/accuracy/kappa/false alarms of change maps vs a truth raster",
                       description="Score the change maps of a store made by `offnadir detect` (and its ortho "
                                   "baseline) against a 0/1 truth raster on the DSM grid, on the cells visible in "
                                   "both images, split into elevated and ground cells. truth_elevated.tif and "
                                   "truth_occluded.tif next to TRUTH are used when present (as `offnadir simulate` "
                                   "writes them).")
    p.add_argument("store", metavar="OUT.zarr", help="store written by offnadir detect / run")
    p.add_argument("truth", metavar="TRUTH.tif", help="truth change raster (1 change, 0 no change) on the DSM grid")
    p.add_argument("--elevated", metavar="TIF", help="truth elevated raster (default: truth_elevated.tif beside "
                                                     "TRUTH, else the store's elevated mask)")
    p.add_argument("--occluded", metavar="TIF", help="truth occlusion raster, 0 = visible in both views (default: "
                                                     "truth_occluded.tif beside TRUTH, if any)")
    p.add_argument("--no-siblings", action="store_true", help="do not look for truth_*.tif beside TRUTH")
    p.add_argument("--image", help="target image name or index (default: every target)")
    p.add_argument("--reference", choices=("auto", "binary", "height"), default="auto",
                   help="truth kind: binary 0/1, or height change 0 none/1 loss/2 gain/255 ignore (adds score AUC "
                        "and object recall); default auto: height when the raster holds only 0/1/2/255")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def run(args) -> int:
    from offnadir.change.evaluate import evaluate, format_report, to_json
    from offnadir.store import require_complete

    require_complete(args.store, "evaluate")
    rep = evaluate(args.store, args.truth, elevated=args.elevated, occluded=args.occluded, image=args.image,
                   siblings=not args.no_siblings, reference=args.reference)
    print(to_json(rep) if args.json else format_report(rep))
    return 0
