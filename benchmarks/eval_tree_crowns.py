"""Evaluation: cut crowns from their missing cast shadow summed per crown, not per roof-step fragment
(issue 7, H1 sixth round), replayed on finished runs through the pipeline's own functions.

Per run and target 1: each image's shadow classifier (the run's suns, as the pipeline calibrates it),
the missing-shadow caster sums per elevated patch (:func:`offnadir.change.missing_shadow.tile_sums`
over the whole grid as one tile: exact whatever the tiling), the patches' DSM plane-fit rms and the
parallax criterion's bound (:func:`offnadir.change.crown.plane_rms`, as ``criteria.rigid``), and the
crowns (:func:`offnadir.change.crown_shadow.crowns`: 4-connected groups of elevated patches none of
which is a plane within the DSM's noise, together bent beyond the parallax bound). Per crown the sums of
its patches are decided as the missing-shadow rule decides
a roof (:func:`offnadir.change.crown_shadow.decide_crowns`) over the shadow cells no other object
would still shade (:func:`offnadir.change.crown_shadow.tile_sums`; ``--all-cells``: every cell the
crown casts first, the missing-shadow rule's cells), where the target's classifier is a witness
(``--no-witness``: everywhere), painted ``p -> max(p, 1/2)`` on the
crown's cells (not where a same-date pair measured ``dh``), and scored before and after:

* hard simulator (``--hard W``: ``eval_hard_sim.py --work W`` leaves ``hardN/`` and ``hardN.zarr``):
  elevated F1 on the structural truth and score AUC; the crowns decided with their truth class;
* Kahramanmaras (``--km K``: ``eval_change_real.py --workdir K``): F1 and score AUC.

``--grown``: the longer-shadow rule's fringe sums added per crown, and what that rule would decide
(grown crowns, hard simulator).

    python benchmarks/eval_tree_crowns.py [--hard W] [--km K] [--prior crowns|patches] [--all-cells] [--no-witness]
                                        [--grown] [--verbose]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eval_evidence_offline as OFF  # noqa: E402
import eval_missing_shadow as EMS  # noqa: E402

from offnadir.change import cells as P  # noqa: E402
from offnadir.change import crown as CR  # noqa: E402
from offnadir.change import crown_shadow as CS  # noqa: E402
from offnadir.change import missing_shadow as MS  # noqa: E402

NAMES = {0: "none", 1: "new", 2: "demolished", 3: "raised", 4: "reroofed", 5: "tree_cut", 6: "tree_grown",
         7: "below_parallax"}


def replay(path: Path, prior: str = "crowns", sole: bool = True, need_witness: bool = True):
    """(run, probability of target 1 after the crown rule, crown labels per cell, per-crown records)."""
    import xarray as xr

    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    run = EMS.load(path)
    off = np.asarray(xr.open_zarr(path)["off_nadir"].values, np.float64)
    a = run["arr"]
    n_img = a["visible"].shape[0]
    suns = EMS.fitted_suns(run)
    h = a["dsm"].astype(np.float64)
    grid = tuple((math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])) for s in suns)
    ctx = Context(shape=h.shape, n_images=n_img, n_bands=a["value"].shape[1], cell=run["cell"], opts=ChangeOptions(),
                  targets=tuple(range(1, n_img)), h_range=(float(np.nanmin(h)), float(np.nanmax(h))), sun=grid,
                  shadow_classes=MS.classifiers(suns))
    arrays = {k: a[k] for k in ("dsm", "visible", "value", "illumination", "patch", "elevated")}
    sums = MS.tile_sums(MemoryIO(arrays), ctx, Tile(0, 0, 0, h.shape[0], 0, h.shape[1]))
    pid = a["patch"]
    ids = np.unique(pid[pid > 0])
    plane = CR.plane_sums(h, pid, ids)
    elev = np.zeros(len(ids), bool)
    k = np.searchsorted(ids, pid[(pid > 0) & (a["elevated"] == 1)])
    elev[k] = True
    pairs = CS.adjacent_pairs(np.where(a["elevated"] == 1, pid, 0))
    crowns = CS.crowns(ids, elev, plane, pairs, run["cell"], float(np.tan(np.radians(off[1]))))
    p = a["probability"][1].astype(np.float64)
    if prior == "patches":  # the patch rule's own prior (EM over the run's roofs)
        n, s = sums["rows"]["msh_n"], sums["rows"]["msh_llr"]
        lt = s[:, 1] / MS.CORRELATED
        lb = np.where(n[:, 0] > 0, -s[:, 0] / MS.CORRELATED, np.inf)
        tested = n[:, 1] > 0
        fixed = MS.prior_log_odds(np.minimum(lt, lb)[tested])
    else:
        fixed = None
    if sole:  # the rule's cells: the crown's shadow cells no other object would still shade
        sums = MS.add_sums(sums, CS.tile_sums(MemoryIO(arrays), ctx, Tile(0, 0, 0, h.shape[0], 0, h.shape[1])))
    dec = CS.decide_crowns(crowns, sums, (1,), suns, prior_log_odds=fixed, need_witness=need_witness)
    lab_c = np.zeros(pid.shape, np.int64)
    m = pid > 0
    kk = np.searchsorted(crowns["ids"], pid[m])
    kk = np.minimum(kk, max(len(crowns["ids"]) - 1, 0))
    hit = (crowns["ids"][kk] == pid[m]) if len(crowns["ids"]) else np.zeros(kk.shape, bool)
    lab_c[m] = np.where(hit, crowns["crown"][kk] + 1, 0)
    if 1 in dec and len(dec[1]["ids"]):
        g = P.paint(pid, dec[1]["ids"], dec[1]["post"])
        if "dh" in a:
            g[np.isfinite(a["dh"][1])] = np.nan
        p = MS.raise_gone(p, g)
    return run, p, lab_c, dec.get(1, {})


def grown(path: Path, scene: Path) -> str:
    """``--grown``: the longer-shadow fringe sums (:func:`offnadir.change.longer_shadow.tile_sums`,
    band :data:`~offnadir.change.longer_shadow.BAND_CELLS`) summed per crown and decided as that rule
    decides a roof (:func:`offnadir.change.longer_shadow.decide`), with each crown's truth class:
    whether a grown crown's longer shadow is a witness once summed over the crown."""
    import xarray as xr

    from offnadir.change import longer_shadow as LS
    from offnadir.change.illumination import shadow_classifiers
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    run = EMS.load(path)
    a = run["arr"]
    off = np.asarray(xr.open_zarr(path)["off_nadir"].values, np.float64)
    cube = xr.Dataset({"dsm": (("y", "x"), a["dsm"]), "visible": (("image", "y", "x"), a["visible"]),
                       "value": (("image", "band", "y", "x"), a["value"])})
    suns = [dict(s) for s in run["suns"][:2]]
    shadow_classifiers(cube, suns, run["cell"])
    h = a["dsm"].astype(np.float64)
    grid = tuple((math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])) for s in suns)
    ctx = Context(shape=h.shape, n_images=2, n_bands=1, cell=run["cell"], opts=ChangeOptions(), targets=(1,),
                  h_range=(float(np.nanmin(h)), float(np.nanmax(h))), sun=grid, shadow_classes=MS.classifiers(suns))
    io = MemoryIO({k: a[k] for k in ("dsm", "visible", "value", "illumination", "patch", "elevated")})
    ls = LS.tile_sums(io, ctx, Tile(0, 0, 0, h.shape[0], 0, h.shape[1]))
    pid = a["patch"]
    ids = np.unique(pid[pid > 0])
    elev = np.zeros(len(ids), bool)
    elev[np.searchsorted(ids, pid[(pid > 0) & (a["elevated"] == 1)])] = True
    cr = CS.crowns(ids, elev, CR.plane_sums(h, pid, ids), CS.adjacent_pairs(np.where(a["elevated"] == 1, pid, 0)),
                   run["cell"], float(np.tan(np.radians(off[1]))))
    if not cr["count"] or not len(ls["ids"]):
        return "no crowns or no fringe"
    sid = ls["ids"]
    k = np.minimum(np.searchsorted(sid, cr["ids"]), len(sid) - 1)
    f = sid[k] == cr["ids"]

    def per_crown(col):
        return np.bincount(cr["crown"], np.where(f, col[k], 0.0), minlength=cr["count"])

    n1, s1 = per_crown(ls["rows"]["lsh_n"][:, 1]), per_crown(ls["rows"]["lsh_s"][:, 1])
    n0, s0 = per_crown(ls["rows"]["lsh_n"][:, 0]), per_crown(ls["rows"]["lsh_s"][:, 0])
    tested = n1 > 0
    post = np.zeros(cr["count"])
    post[tested] = LS.decide(n1[tested], s1[tested], MS.classifiers(suns)[1], n0[tested], s0[tested])
    cls = OFF._read(scene / "truth_change_class.tif")
    lab_c = np.zeros(pid.shape, np.int64)
    m = pid > 0
    kk = np.minimum(np.searchsorted(cr["ids"], pid[m]), len(cr["ids"]) - 1)
    lab_c[m] = np.where(cr["ids"][kk] == pid[m], cr["crown"][kk] + 1, 0)
    out = []
    for c in range(cr["count"]):
        mm = lab_c == c + 1
        kl = NAMES[int(np.bincount(cls[mm], minlength=8).argmax())]
        if kl == "tree_grown" or post[c] >= 0.5:
            out.append(f"[{kl} {int(mm.sum())} cells, fringe {int(n1[c])} cells, S/9 {s1[c] / 9:.2f}, P {post[c]:.2f}]")
    return " ".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--km", type=Path)
    ap.add_argument("--prior", choices=("crowns", "patches"), default="crowns")
    ap.add_argument("--all-cells", action="store_true",
                    help="variant: every shadow cell the crown casts first, also those another object still shades")
    ap.add_argument("--no-witness", action="store_true",
                    help="variant: also where the target's classifier is no witness (crown_shadow.SHADOW_WITNESS)")
    ap.add_argument("--grown", action="store_true",
                    help="the longer-shadow fringe summed per crown: grown crowns (hard simulator)")
    ap.add_argument("--verbose", action="store_true", help="every tested crown with its truth class")
    a = ap.parse_args(argv)
    jobs = []
    if a.hard:
        jobs += [(f"hard{s}", a.hard / f"hard{s}.zarr", a.hard / f"hard{s}") for s in range(6)
                 if (a.hard / f"hard{s}.zarr").exists()]
    if a.km:
        jobs += [(f"km img{t}", a.km / f"km_post{t}.zarr", None) for t in (1, 2)
                 if (a.km / f"km_post{t}.zarr").exists()]
    if a.grown:
        for name, path, scene in jobs:
            if scene is not None:
                print(f"{name:9s} " + grown(path, scene), flush=True)
        return 0
    for name, path, scene in jobs:
        run, p, lab_c, d = replay(path, a.prior, not a.all_cells, not a.no_witness)
        p0 = run["arr"]["probability"][1].astype(np.float64)
        if scene is not None:
            before, after = EMS.score_hard(run, p0, scene), EMS.score_hard(run, p, scene)
            cls = OFF._read(scene / "truth_change_class.tif")
        else:
            before, after = EMS.score_km(run, p0), EMS.score_km(run, p)
            cls = None
        recs = d.get("crowns", [])
        decided = [r for r in recs if r["post"] >= 0.5]

        def klass(r):
            if cls is None:
                return "?"
            cm = lab_c == r["crown"] + 1
            return NAMES[int(np.bincount(cls[cm], minlength=8).argmax())] if cm.any() else "?"

        tally = {}
        for r in decided:
            c = klass(r)
            tally[c] = tally.get(c, 0) + int(r["cells"])
        print(f"{name:9s} " + ", ".join(f"{k} {v:.4f}" for k, v in before.items()) + " -> "
              + ", ".join(f"{k} {v:.4f}" for k, v in after.items())
              + f"; crowns {d.get('crowns_total', 0)}, tested {len(recs)}, "
              f"prior log odds {d.get('prior', float('nan')):.2f}"
              f", decided {len(decided)} (cells by class {tally})", flush=True)
        if a.verbose:
            for r in sorted(recs, key=lambda r: -r["L"]):
                print(f"    crown {r['crown']:4d} {klass(r):10s} cells {r['cells']:4d} patches {r['patches']:2d} "
                      f"n_t {r['n_t']:4d} n_0 {r['n_0']:4d} S_t/9 {r['s_t'] / 9:7.2f} -S_0/9 {-r['s_0'] / 9:7.2f} "
                      f"mean {r['s_t'] / max(r['n_t'], 1):6.2f} (mid {d.get('midpoint', float('nan')):.2f}) "
                      f"L {r['L']:6.2f} "
                      f"P {r['post']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
