"""``offnadir demo``: simulate a small off-nadir city, detect its changes on a local dask cluster,
score them against the simulator's truth, and draw a picture."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

NAME = "demo"


def add_parser(sub):
    p = sub.add_parser(NAME, help="run the whole pipeline on a simulated scene (Zarr change map + PNG)",
                       description="Simulate a small city seen from two off-nadir views two years apart (known "
                                   "buildings, changes and occlusions), run cube + change detection on a local dask "
                                   "cluster, write OUT_DIR/result.zarr and OUT_DIR/quicklook.png, and print the "
                                   "accuracy against the truth next to the ortho baseline.")
    p.add_argument("out_dir", nargs="?", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument("--size", type=int, default=256, help="DSM cells per side (default 256: 128 m at 0.5 m)")
    p.add_argument("--workers", type=int, help="local cluster workers (default: one per core)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT_DIR's previous demo outputs")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def run(args) -> int:
    from offnadir.change.evaluate import evaluate, format_report
    from offnadir.config import validate
    from offnadir.demo_truth import format_summary, summarize
    from offnadir.errors import OutputExistsError
    from offnadir.pipeline import detect_config
    from offnadir.quicklook import write_quicklook
    from offnadir.simulate import simulate

    out = Path(args.out_dir)
    scene_dir, store, png = out / "scene", out / "result.zarr", out / "quicklook.png"
    if any(p.exists() for p in (scene_dir, store, png)):
        if not args.overwrite:
            raise OutputExistsError(f"{out}: holds a previous demo (scene/, result.zarr or quicklook.png). "
                                    "Pass --overwrite to replace it, or name another folder.")
        # remove only what a demo wrote: a store of offnadir's, a simulated scene (it has scene.json)
        from offnadir.store import remove

        if scene_dir.exists() and not (scene_dir / "scene.json").is_file():
            raise OutputExistsError(f"{scene_dir}: exists but is not a simulated scene (no scene.json); not "
                                    "replacing it. Name another demo folder.")
        remove(store)
        if scene_dir.exists():
            shutil.rmtree(scene_dir)
        if png.is_file():
            png.unlink()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr))
    say(f"offnadir demo: simulating a {args.size}x{args.size}-cell scene (seed {args.seed}) in {scene_dir}")
    scene = simulate(scene_dir, seed=args.seed, size=args.size)
    raw = {
        "dsm": {"path": str(scene_dir / "dsm.tif")},
        "images": [{"path": str(scene_dir / "base.tif"), "name": "base"},
                   {"path": str(scene_dir / "target.tif"), "name": "target"}],
        "output": {"path": str(store)},
        "tiling": {"chunk": 128},
        "cluster": {"n_workers": args.workers},
        "change": {"enabled": True},
    }
    cfg = validate(raw, base=".", source="demo")
    detect_config(cfg, quiet=args.quiet)
    report = evaluate(store, scene_dir / "truth_change.tif")
    objects = summarize(store, scene_dir)  # per object: found / missed / not observable (and why)
    write_quicklook(store, png, base_image=scene_dir / "base.tif", target_image=scene_dir / "target.tif",
                    truth=scene_dir / "truth_change.tif", truth_unobservable=objects["not_observable_mask"],
                    title=f"offnadir demo, seed {args.seed}: {_views(scene)}")
    print(format_report(report))
    print(format_summary(objects))
    print(f"wrote {store} and {png} in {time.perf_counter() - t0:.1f} s")
    return 0


def _views(scene) -> str:
    try:
        meta = scene.meta
        b, t = meta["views"]["base"], meta["views"]["target"]
        return (f"base {b['off_nadir_deg_at_centre']:.0f}° off-nadir, azimuth {b['azimuth_deg_at_centre']:.0f}° "
                f"({b['acquired'][:10]}); target {t['off_nadir_deg_at_centre']:.0f}°, azimuth "
                f"{t['azimuth_deg_at_centre']:.0f}° ({t['acquired'][:10]})")
    except Exception:  # the title is decoration only
        return "two off-nadir views"
