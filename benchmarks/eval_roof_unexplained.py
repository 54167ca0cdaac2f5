"""Evaluation: a roof's census window without the ground cells seen in an unexplained shadow (issue 7, R3 eighth
round; measured offline, not adopted).

The two largest unchanged-roof false alarms of the hard simulator at 256² (one image per date) are roofs whose
evidence a *neighbour's* change makes: seed 5's 1378-cell roof (the census evidence: a new building's facade and
shadow turn the ground strip along its rim dark, every code pair across the rim reverses) and seed 2's 704-cell
roof (the spectral criterion: a new 19 m building's shadow covers 82 % of it at the target). In both the disturbing
cells are **ground cells seen shadowed at the target (its shadow classifier, 3 x 3 log-odds >= 0) where the old
DSM predicts them lit** — an unexplained shadow. An elevated cell's evidence (``sqrt(R S)`` over its whole window,
:func:`offnadir.change.cells.stratum_evidence`) counts their codes; the variants leave them out of the **roof
cells'** windows only (ground cells keep their evidence: a new building on ground looks like such a shadow):

* ``either`` / ``target``: the codes of the ground cells in an unexplained shadow of either image / the target
  (``compare`` of the census) left out of both ``R`` and ``S`` of the roof cells;
* ``s_either``: only out of the sign-reversal ratio ``S`` (the inverted rim is a reversal), ``R`` as it is;
* ``target_witness``: ``target`` only where the target's classifier is a shadow witness (it calls at least
  :data:`offnadir.change.longer_shadow.SHADOW_WITNESS` of its own training shadows shadow; else nothing left out);
* ``target_all``: ``target_witness`` applied to every cell's evidence, ground cells too;
* ``walk_ground``: only the unexplained-shadow cells whose caster walk
  (:func:`offnadir.change.shadow_observed.caster_walk`, towards the target's sun over its seen shadow) ends on a
  cell the old DSM has as ground and lacks the height to cast it: a caster standing on old ground, no old roof's.

Harness: ``eval_decision_offline`` (the stored evidence, patch table and shadow-rule decisions; the roof cells'
evidence recomputed with the run's own window, offsets, noise sigmas and sun code pairs — checked equal to the
stored evidence, printed as ``check``), scored with ``eval_evidence_offline``'s scorers.

    python benchmarks/eval_roof_unexplained.py [--hard W] [--seeds 0 1 2 3 4 5] [--km K] [--variants ...]
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as DO  # noqa: E402
import eval_evidence_offline as OFF  # noqa: E402

from offnadir.change import cells as P  # noqa: E402
from offnadir.change import evidence as EV  # noqa: E402

VARIANTS = ("current", "either", "target", "s_either", "walk_ground", "target_witness", "target_all")


def unexplained(x, usable, codes, clf):
    """Cells seen shadowed by ``clf`` (3 x 3 log-odds >= 0) that the illumination ``codes`` predict lit."""
    from offnadir.change import shadow_observed as SO

    if clf is None:
        return np.zeros(np.shape(codes), bool)
    lo = SO.log_odds(x, usable, clf)
    with np.errstate(invalid="ignore"):
        return (lo >= 0) & (codes != 0) & (codes != 255)


def roof_evidence_without(base, target, ok_base, ok_target, elevated, window, offsets, sigmas, drop, pairs=None,
                          s_only=False):
    """The evidence of every cell as :func:`offnadir.change.cells.stratum_evidence` gives it, with the codes of the
    ``drop`` cells left out (of ``R`` and ``S``, or of ``S`` only): read it on the elevated cells."""
    if not s_only:
        return P.stratum_evidence(base, target, ok_base, ok_target, elevated, window, offsets, sigmas,
                                  compare=~np.asarray(drop, bool), pairs=pairs)
    r, _ = EV.structural_evidence(base, target, ok_base, ok_target, window, offsets, sigmas, pairs=pairs,
                                  reversal=True)
    _, s = EV.structural_evidence(base, target, ok_base, ok_target, window, offsets, sigmas,
                                  compare=~np.asarray(drop, bool), pairs=pairs, reversal=True)
    return EV.roof_evidence(r, s)


def seen(store, t: int = 1):
    """(per image 0 and ``t``: unexplained-shadow cells, the seen-shadow map of ``t``, the run's suns, arrays)."""

    import eval_missing_shadow as EMS
    from offnadir.change import missing_shadow as MS
    from offnadir.change import shadow_observed as SO

    run = EMS.load(Path(store))
    a = run["arr"]
    suns = EMS.fitted_suns(run)
    clfs = MS.classifiers(suns)
    un, seen_t = [], None
    for k in (0, t):
        x = a["value"][k].astype(np.float64).mean(axis=0)
        un.append(unexplained(x, a["visible"][k] == 1, a["illumination"][k], clfs[k]))
        if k == t and clfs[k] is not None:
            with np.errstate(invalid="ignore"):
                seen_t = SO.log_odds(x, a["visible"][k] == 1, clfs[k]) >= 0
    return un, seen_t, suns, run


def walk_ground(un_t, seen_t, suns, run, t: int = 1):
    """The ground cells of ``un_t`` whose caster walk ends on old ground lacking the caster's height."""
    from offnadir.change import shadow_observed as SO
    from offnadir.change.options import ChangeOptions

    a = run["arr"]
    el = a["elevated"] == 1
    h = a["dsm"].astype(np.float64)
    s = suns[t]
    az, e = math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])
    reach = int(math.ceil((np.nanmax(h) - np.nanmin(h)) / math.tan(e) / run["cell"])) + 1
    si, sj, ei, ej, lacks = SO.caster_walk(seen_t, un_t & ~el, h, run["cell"], az, e, ChangeOptions().sun_tolerance,
                                           reach)
    out = np.zeros(el.shape, bool)
    sel = lacks & ~el[ei, ej]
    out[si[sel], sj[sel]] = True
    return out


def run_store(store, names, scorer):
    from offnadir.change import sun_pairs as SP

    d = DO.load(store)
    p0, _ = DO.decide(d, "current")
    with np.errstate(invalid="ignore"):
        gone = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    dd = OFF.load_store(store)
    inp = OFF.inputs(dd)
    el = d["elev"]
    pairs = SP.sun_pair_word(dd["ill"], dd["t"]) if dd["ill"] is not None else None
    un, seen_t, suns, run = seen(store, dd["t"])
    from offnadir.change import longer_shadow as LS
    from offnadir.change import missing_shadow as MS

    witness = [c is not None and c.accuracy_shadow >= LS.SHADOW_WITNESS for c in
               (MS.classifiers(suns)[k] for k in (0, dd["t"]))]
    args = (inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], el, inp["window"], inp["offsets"],
            inp["sigmas"])
    same = roof_evidence_without(*args, np.zeros(el.shape, bool), pairs)
    fin = el & np.isfinite(same) & np.isfinite(d["ev"])
    out = {"check": float(np.max(np.abs(same[fin] - d["ev"][fin]), initial=0.0)),
           "unexplained ground cells": [int((u & ~el).sum()) for u in un]}
    for name in names:
        dv = dict(d)
        if name != "current":
            if name == "walk_ground":
                drop = walk_ground(un[1], seen_t, suns, run, dd["t"])
            else:
                drop = ~el & ((un[0] | un[1]) if name in ("either", "s_either") else un[1])
                if name in ("target_witness", "target_all") and not witness[1]:
                    drop[:] = False
            roof = roof_evidence_without(*args, drop, pairs, s_only=name.startswith("s_"))
            if name.endswith("_all"):  # every cell's evidence with those codes left out (ground cells too)
                dv["ev"] = np.where(np.isfinite(roof), roof, d["ev"])
            else:
                dv["ev"] = np.where(el & np.isfinite(roof), roof, d["ev"])
        p, ch = DO.decide(dv, "current", gone)
        out[name] = scorer(dd, dv, p, ch)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    a = ap.parse_args(argv)
    import eval_missing_shadow as EMS

    jobs = EMS.stored_jobs(a.hard, a.seeds, a.km)
    for name, store, scene in jobs:
        if scene is not None:
            def scorer(dd, dv, p, ch, sc=scene):
                r = OFF.score_hard(dd, p, ch, dv["ev"], sc)
                return {k: r[k] for k in ("elevated_f1", "auc", "f1", "ground_fa")}
        else:
            def scorer(dd, dv, p, ch):
                return OFF.score_km(dd, p, ch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_store(store, a.variants, scorer)
        print(f"{name}: roof evidence recomputed vs stored, largest difference {res['check']:.2g}; unexplained-shadow "
              f"ground cells base / target {res['unexplained ground cells'][0]} / {res['unexplained ground cells'][1]}")
        for v in a.variants:
            print(f"  {v:12s} " + ", ".join(f"{k} {x:.4f}" if isinstance(x, float) else f"{k} {x}"
                                             for k, x in res[v].items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
