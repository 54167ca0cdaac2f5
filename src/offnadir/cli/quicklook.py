"""``offnadir quicklook``: a PNG of any result store (change over the base, legend, scale bar,
coordinates)."""

from __future__ import annotations

from pathlib import Path

NAME = "quicklook"


def add_parser(sub):
    p = sub.add_parser(NAME, help="PNG of a result store: change over the base, legend, scale bar, coordinates",
                       description="Draw the base image on the DSM grid in grey with each target's change map over "
                                   "it (gain / loss by the sign of dh when the store has it, else 'changed'; "
                                   "unobservable cells dark and hatched), one panel per target image.")
    p.add_argument("store", metavar="STORE", help="complete Zarr store written by offnadir")
    p.add_argument("-o", "--output", metavar="PNG", help="output PNG (default: STORE's name + _quicklook.png beside "
                                                         "it)")
    p.add_argument("--image", action="append", metavar="NAME", help="target image to draw (repeat; default all)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--overwrite", action="store_true", help="replace an existing PNG")
    return p


def run(args) -> int:
    from offnadir.errors import ConfigError, OutputExistsError
    from offnadir.export import _atomic
    from offnadir.quicklook import write_store_quicklook

    store = Path(args.store)
    out = Path(args.output) if args.output else store.with_name(store.stem + "_quicklook.png")
    if out.suffix.lower() != ".png":
        raise ConfigError(f"-o {out}: the quicklook is a PNG; give a path ending in .png.")
    if out.exists() and not args.overwrite:
        raise OutputExistsError(f"{out}: already exists. Pass --overwrite to replace it, or choose another -o.")
    with _atomic(out) as tmp:
        write_store_quicklook(store, tmp, images=args.image, title=args.title)
    print(f"wrote {out}")
    return 0
