"""``offnadir simulate OUT_DIR``: write the synthetic bi-temporal off-nadir scene (demo data with truth)."""

from __future__ import annotations

import argparse

from offnadir.errors import ConfigError


def _view(text: str) -> tuple[float, float]:
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return float(parts[0]), float(parts[1])
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not OFFNADIR,AZIMUTH in degrees (e.g. 25,270)") from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "simulate",
        help="write a synthetic off-nadir image pair of a city with its truth (demo data)",
        description="Simulate a synthetic city at two epochs seen by two off-nadir pushbroom cameras, "
                    "rendered by ray tracing into the DSM: writes dsm.tif, dsm_epoch2.tif, dtm.tif, "
                    "base.tif and target.tif (4-band, RPC tags), truth_change/elevated/occluded/shadow.tif, "
                    "gcps_base.csv, gcps_target.csv and scene.json.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output directory (created if missing)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default 0)")
    p.add_argument("--size", type=int, default=256, help="DSM cells per side (default 256)")
    p.add_argument("--cell", type=float, default=0.5, help="DSM cell size in metres (default 0.5)")
    p.add_argument("--base-view", type=_view, default=(5.0, 90.0), metavar="OFFNADIR,AZIMUTH",
                   help="base (epoch 1) view: off-nadir angle at the scene centre and azimuth from the "
                        "ground to the satellite, degrees (default 5,90)")
    p.add_argument("--target-view", type=_view, default=(25.0, 270.0), metavar="OFFNADIR,AZIMUTH",
                   help="target (epoch 2) view (default 25,270)")
    p.add_argument("--bias-px", type=float, default=0.0,
                   help="inject a known image shift of this many pixels into the RPCs written to the "
                        "images (the GCP files keep the true pixels; default 0)")
    p.add_argument("--supersample", type=int, default=3, help="rays per pixel side (default 3)")
    p.add_argument("--noise", type=float, default=6.0, help="image noise standard deviation in DN (default 6)")
    p.add_argument("--no-shadows", action="store_true", help="do not trace cast shadows")
    p.add_argument("--preset", choices=("default", "hard"), default="default",
                   help="hard: one band, strong radiometric decorrelation between the dates, no time or sun "
                        "in the image files, 20%% of the trees changed, dates drawn from the seed (the options "
                        "below override single settings)")
    p.add_argument("--bands", type=int, choices=(1, 4), default=None,
                   help="1: panchromatic image; 4: B, G, R, NIR (default: the preset's)")
    p.add_argument("--decorrelation", type=float, default=None, metavar="0..1",
                   help="epoch-2 texture re-rendering, season, gain/offset/gamma strength (default: the preset's)")
    p.add_argument("--no-metadata", action="store_const", const=False, default=None, dest="metadata",
                   help="write the images without acquisition time and sun angles (truth keeps them)")
    p.add_argument("--tree-changes", type=float, default=None, metavar="0..1",
                   help="fraction of trees cut or grown at epoch 2 (default: the preset's)")
    p.add_argument("--new-views", type=int, choices=(1, 2), default=1,
                   help="images of the second date: 1 (target.tif) or 2, a same-date stereo pair (target.tif and "
                        "target2.tif: same time, sun and radiometry; truth_occluded_target2.tif; every other file "
                        "as with 1) (default 1)")
    p.add_argument("--target2-view", type=_view, default=None, metavar="OFFNADIR,AZIMUTH",
                   help="the pair's second view (default: the target view moved along the orbit to B/H 0.3)")
    p.add_argument("--quicklook", metavar="PNG", help="also write a quicklook PNG of the images and truth")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def run(args) -> int:
    from offnadir.simulate import simulate

    if args.size < 32:
        raise ConfigError(f"--size {args.size} is too small; give at least 32 cells per side.")
    s = simulate(args.out_dir, seed=args.seed, size=args.size, cell=args.cell, base_view=args.base_view,
                 target_view=args.target_view, bias_px=args.bias_px, supersample=args.supersample,
                 noise_dn=args.noise, shadows=not args.no_shadows, overwrite=args.overwrite, preset=args.preset,
                 bands=args.bands, decorrelation=args.decorrelation, metadata=args.metadata,
                 tree_changes=args.tree_changes, new_views=args.new_views, target2_view=args.target2_view)
    m = s.meta
    print(f"simulated seed {m['seed']}: {m['size']}x{m['size']} cells of {m['cell']} m "
          f"({m['grid']['crs']}), {len(s.buildings)} buildings, {m['trees']} trees, "
          f"in {m['elapsed_s']:.1f} s")
    for name, v in m["views"].items():
        print(f"  {name:6s} {v['acquired']}  off-nadir {v['off_nadir_deg_at_centre']:.2f} deg  azimuth "
              f"{v['azimuth_deg_at_centre']:.2f} deg  {v['shape'][0]}x{v['shape'][1]} px  RPC fit max error "
              f"{v['rpc_fit']['max_err_px']:.1e} px  {v['n_gcps']} GCPs")
    for name, v in m["views"].items():
        print(f"  {name:6s} sun azimuth {v['sun_azimuth_deg']:.2f} deg elevation {v['sun_elevation_deg']:.2f} deg"
              + ("" if v.get("metadata_in_file", True) else " (truth only: not in the image file)"))
    if "stereo" in m:
        print(f"  same-date pair target + target2: B/H {m['stereo']['base_to_height']:.3f}")
    ch = m["changes"]
    print("  changes: " + ", ".join(f"{k} {v}" for k, v in ch.items()) + f" ({m['truth']['changed_cells']} cells)")
    if "harder" in m:
        hd = m["harder"]
        print(f"  preset {hd['preset']}: {hd['bands']} band(s), decorrelation {hd['decorrelation']:g}, trees cut "
              f"{len(hd['trees_removed'])}, grown {len(hd['trees_grown'])}")
    if m["bias_px"]:
        print(f"  injected bias: {m['bias_px']:g} px (affines in scene.json views.*.bias_affine)")
    print("wrote:")
    for key, path in s.paths.items():
        print(f"  {path}")
    if args.quicklook:
        from offnadir.simulate.quicklook import quicklook

        print(f"  {quicklook(s, args.quicklook)}")
    return 0
