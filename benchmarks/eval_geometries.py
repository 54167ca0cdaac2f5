"""Evaluation: the hard simulated scenes over view geometries a user meets, one table.

Every other evaluation uses the simulator's one geometry (base 5° off-nadir from azimuth 90°,
target 25° from 270°: the target leans away from a sun in the south-east, about 30° between the
view directions). Real pairs come with any geometry, so this runs :mod:`eval_hard_sim` (defaults
only, the same seeds, scenes, detect job and scores) for each of a list of ``base / target``
views and prints, per geometry: the mean elevated F1 (structural truth) and its per-seed values,
the mean F1 and score AUC on all decided cells, the mean ground false-alarm rate, the worst sun
error of any image, and the misses and false alarms per truth class summed over the seeds.

The default list (``NAME=BASE_OFFNADIR,BASE_AZ/TARGET_OFFNADIR,TARGET_AZ``):

* ``default``  5,90 / 25,270  (the simulator's; the reference row)
* ``t_az0``    5,90 / 25,0    (the target leans north: across the sun's south-east azimuth)
* ``t_az90``   5,90 / 25,90   (the target leans east, the base's side: the small relative angle)
* ``t_az180``  5,90 / 25,180  (the target leans south, towards the sun)
* ``both20``   20,0 / 20,180  (both images off-nadir, facing each other)
* ``steep``    5,90 / 40,270  (a steep target)
* ``nadir``    5,90 / 10,270  (a near-nadir pair: small parallax)

Scenes and stores go to ``WORK/NAME`` (``--reuse`` reuses them). ``--stereo`` adds a same-date
pair at the second date (as ``eval_hard_sim.py --stereo``) to every geometry; its rows score both
targets.

    python benchmarks/eval_geometries.py [--geometries default t_az0 ... | NAME=5,90/25,0 ...]
                                         [--seeds 0 1 2 3 4 5] [--size 256] [--work /tmp/eval_geometries]
                                         [--reuse] [--stereo] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_hard_sim as H  # noqa: E402

GEOMETRIES = {"default": ("5,90", "25,270"), "t_az0": ("5,90", "25,0"), "t_az90": ("5,90", "25,90"),
              "t_az180": ("5,90", "25,180"), "both20": ("20,0", "20,180"), "steep": ("5,90", "40,270"),
              "nadir": ("5,90", "10,270")}


def parse_geometry(text: str) -> tuple[str, str, str]:
    """``NAME`` of the default list, or ``NAME=B_OFF,B_AZ/T_OFF,T_AZ``."""
    if "=" not in text:
        if text not in GEOMETRIES:
            raise SystemExit(f"unknown geometry {text!r}: one of {', '.join(GEOMETRIES)} or NAME=5,90/25,0")
        return (text, *GEOMETRIES[text])
    name, views = text.split("=", 1)
    base, target = views.split("/")
    for v in (base, target):
        off, az = (float(x) for x in v.split(","))
        if not (0 <= off < 60):
            raise SystemExit(f"{text}: off-nadir {off} out of [0, 60)")
    return name, base, target


def summarise(rows: list, stereo: bool) -> dict:
    """One geometry's figures over its seeds (both targets with ``stereo``)."""
    targets = list(rows) + ([r["target2"] for r in rows] if stereo else [])
    ref = [t["reference"] for t in targets if t.get("reference")]
    return dict(
        f1=[t["elevated"]["f1"] for t in targets],
        all_f1=[r["f1"] for r in ref], auc=[r["auc"] for r in ref],
        ground_fa=[t["ground"]["false_alarm_rate"] for t in targets],
        sun_err=max((s["error_deg"] for r in rows for s in r["sun"]), default=math.nan),
        misses={k: sum(t["misses"][k] for t in targets) for k in targets[0]["misses"]},
        false_alarms={k: sum(t["false_alarms"][k] for t in targets) for k in targets[0]["false_alarms"]})


def _m(v):
    v = [x for x in v if x is not None and math.isfinite(x)]
    return float(np.mean(v)) if v else math.nan


def print_table(table: dict) -> None:
    f = H._f
    print(f"{'geometry':<9} {'base':>7} {'target':>8} {'elev F1':>8} {'all F1':>7} {'AUC':>6} {'gFA':>6} "
          f"{'sun':>6}  per-seed elevated F1")
    for name, s in table.items():
        print(f"{name:<9} {s['base']:>7} {s['target']:>8} {f(_m(s['f1'])):>8} {f(_m(s['all_f1'])):>7} "
              f"{f(_m(s['auc'])):>6} {f(_m(s['ground_fa'])):>6} {f(s['sun_err'], 1):>6}  "
              + " ".join(f(x) for x in s["f1"]))
    print()
    short = {"new": "new", "demolished": "demol", "raised": "raised", "tree_cut": "cut", "tree_grown": "grown"}
    first = next(iter(table.values()))
    mk = list(first["misses"])
    fk = list(first["false_alarms"])
    fshort = ["el.near", "roofs", "trees", "gr.near", "gr.shad", "gr.lit"]
    print(f"{'geometry':<9} misses: " + " ".join(f"{short.get(k, k):>7}" for k in mk)
          + " | false alarms: " + " ".join(f"{k:>7}" for k in fshort))
    for name, s in table.items():
        print(f"{name:<9}         " + " ".join(f"{s['misses'][k]:>7}" for k in mk)
              + " |               " + " ".join(f"{s['false_alarms'][k]:>7}" for k in fk))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--geometries", nargs="+", default=list(GEOMETRIES),
                    help=f"names of the default list ({', '.join(GEOMETRIES)}) or NAME=B_OFF,B_AZ/T_OFF,T_AZ")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--work", default="/tmp/eval_geometries")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--reuse", action="store_true", help="reuse scenes and stores already in WORK/NAME")
    ap.add_argument("--stereo", action="store_true", help="a same-date pair at the second date, as eval_hard_sim")
    ap.add_argument("--json", help="write the table to this JSON file")
    a = ap.parse_args(argv)
    geoms = [parse_geometry(g) for g in a.geometries]
    table = {}
    for name, base, target in geoms:
        work = Path(a.work) / name
        work.mkdir(parents=True, exist_ok=True)
        rows = [H.one_seed(seed, a.size, work, a.workers, a.reuse, stereo=a.stereo,
                           sim_views=("--base-view", base, "--target-view", target)) for seed in a.seeds]
        table[name] = dict(base=base, target=target, seeds=a.seeds, **summarise(rows, a.stereo))
        print(f"{name}: base {base} target {target}: elevated F1 "
              + " ".join(H._f(x) for x in table[name]["f1"]) + f" (mean {H._f(_m(table[name]['f1']))})",
              flush=True)
    print()
    print_table(table)
    if a.json:
        Path(a.json).write_text(json.dumps(table, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
