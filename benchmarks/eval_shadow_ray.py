"""Evaluation: a new building's cast shadow as evidence on the ground cells, one image per date,
screened offline on stored runs (issue 7, H6 seventh round; measured, not wired).

A new building stands on what the old DSM calls ground. Whatever its texture, it casts a shadow the
old DSM does not predict, down-sun of its footprint, about ``H / tan(e)`` long. The target's shadow
classifier (:mod:`offnadir.change.shadow_observed`, calibrated by the run on the shadows the old
DSM predicts; the one stored in ``change_sun``) marks the ground cells seen shadowed that the old DSM
predicts lit (``U``: unexplained shadows, dark new roofs and unlit walls included). Per ground cell:

* ``S`` = the share of ``U`` cells on the ray of ``K`` cells from the cell **down-sun** (away from
  the run's estimated sun), ``K = h / tan(e) / cell`` with ``h`` the typical height of the old
  DSM's elevated objects above their surroundings (median over elevated cells of the DSM minus its
  minimum over the census window): the shadow a building like the scene's others would cast
  (``--height evidence``: the run's evidence height instead);
* its likelihood ratio is calibrated on the run's own ground cells split by the maps pass's decision
  (``p >= 1/2`` against ``p < 1/2``; 10 equal bins of ``S``, counts + 1/2, made non-decreasing by
  pool-adjacent-violators: more unexplained shadow down-sun never makes change less likely); fewer
  than 100 ground cells decided changed: no calibration, nothing changes;
* ``logit p' = logit p + log LR(S)`` on ground cells after the localisation (before the rim
  witness, patch criteria and missing shadows), in two forms: ``raise`` (LR relative to ``S = 0``:
  may only raise) and ``both`` (the ratio itself: cells without unexplained shadow down-sun are
  lowered);
* off where the target's classifier is no witness of shadows (its accuracy on its own training
  shadows below 1/2, ``longer_shadow.SHADOW_WITNESS``, as the longer- and crown-shadow rules).

Controls: the same ray **up-sun** (``up``) and across the sun (``perp``): if the direction carried
nothing, they would do as well.

    python benchmarks/eval_shadow_ray.py [--hard DIR --seeds 0 1 2] [--km DIR]
                                         [--variants first no_ray raise both up perp ...]

``--objects`` (hard only; issue 7, n3 ninth round): a census of the new buildings instead, per object:
footprint, height (``dsm_epoch2 - dtm``), scored and missed cells, its true cast shadow (``on_lit``: the
share on predicted-lit, seen ground; ``seen``: the share of that the classifier marks ``U``), the
medians of ``S``, the ray's log LR and the wide / localised ground probability, and where each missed
cell stopped (:data:`STOPS`, in the maps pass's order before the ray moved ahead of the localisation:
the stores replayed with the ``both`` variant); ``--json`` keeps the rows.

``lean*`` (issue 7, q3 tenth round; measured, not adopted): the **relief ray**, the new building's other
witness. A building of height h standing where the old DSM is flat leans h tan(off-nadir) away from the
target's sensor in the target's ortho (its roof displaced, its facade on the sensor side), so the ground
cells down the lean of a new footprint show change in the target. Per ground cell: the share of ground
cells whose fine window (:mod:`offnadir.change.localise`) says change on the ray of ``K = ceil(h tan(off-nadir)
/ cell)`` cells away from the sensor (h the old DSM's typical height, as the shadow ray's), its ratio
calibrated as the shadow ray's and added with it before the localisation; controls ``lean_against`` /
``lean_perp`` (the ray towards the sensor / across), ``lean_diff`` (the share less the share towards the
sensor), ``lean_lit`` (input on ground predicted lit at the new date only).

``facade*`` (issue 7, s3 eleventh round; measured, not adopted): the **facade test**. A new building's wall on
the sensor side, turned from the sun, shows in the target's ortho on the old (flat) DSM as a dark strip
``H tan(off-nadir)`` wide between its ground line and its displaced roof: a run of ``U`` (the shadow ray's
unexplained seen shadows) along the lean, of ``K/2 .. 2K`` cells (half to twice the typical height's
displacement), ending in a step to a lit, seen, not-shadow cell (:func:`_shadow_ray_rays.facade_strips`).
Per ground cell ``S`` = the share of strip cells on the cell and the ``2K`` cells towards the sensor (the
footprint lies on and down the lean of its wall), calibrated and added as the relief ray is. Forms: ``_wall``
(a strip's end must have a neighbour across the lean ending a strip of the same width), ``_deep`` (4K),
``_any`` (any strip on the ray), ``_across`` (also K cells either side across the lean), ``_elig``, ``_roof``
(the roof side must differ from the base radiometrically), ``_seg`` (per target SLIC segment: the share of its
sensor-side outline a strip starts or ends at), ``facade_raise``; controls ``_against`` / ``_perp``.

``fobj*`` (issue 7, t1 twelfth round; measured, not adopted): the facade test as an **object-level decision**
(:mod:`_facade_object`), its null read across the lean, not calibrated on the decisions. ``fobj`` / ``fobj_share``:
per target segment the wall rows seen at its sensor-side outline; ``fobj_comp``: per wall (same-width strips
joined across the lean) the rows it spans; ``_ctr``: a wall counted only where the fine window's log ratio past
its strips (the roof side) exceeds that before them (the ground line's side); ``_rows``: the footprint per wall
row (the roof run in its target segment, shifted back by the strip) instead of the roof segment and its shift.
Per run, the tail false-discovery share of the test against the two across-the-lean draws gives each object
``pi = 1 - q``; where ``pi >= 1/2`` its footprint gets ``p = max(p, pi)``. Controls ``_perp`` / ``_against``.

``--hard``: ``benchmarks/eval_hard_sim.py --work DIR [--size N]``; ``--km``:
``benchmarks/eval_change_real.py --workdir DIR``. ``first`` is the pipeline as it is and reproduces the stored
probability (largest difference printed); ``no_ray`` is the maps pass without the shadow ray (the pipeline before h9
wired it; it was called ``current`` until then).

The rays and the store reader live in ``_shadow_ray_rays.py``, the ``--objects`` census in
``_shadow_ray_census.py``; this script holds the variants, their decisions and the printed tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.special import expit, logit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as ED  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402
from _shadow_ray_census import SIZE_BINS, STOPS, objects, print_objects  # noqa: E402, F401
from _shadow_ray_rays import (BINS, MIN_CHANGED, facade_ray, facade_segments, facade_strips,  # noqa: E402, F401
                              first_probabilities, lean_ray, load, pav_up, ray_share, ray_table, shadow_ray, shift, typical_height,
                              unexplained_shadows)

from _facade_object import object_probability, wall_object_probability  # noqa: E402

from offnadir.change import calibrate as C  # noqa: E402
from offnadir.change import cells as P  # noqa: E402
from offnadir.change import localise as L  # noqa: E402

VARIANTS = {
    "no_ray": "the maps pass without the shadow ray (before h9 wired it)",
    "raise": "down-sun ray, K from the DSM's typical height, LR relative to S = 0 (may only raise)",
    "both": "the same, the likelihood ratio itself (cells without unexplained shadow down-sun lowered)",
    "raise_evh": "raise, K from the run's evidence height (evidence_height_m) instead",
    "both_evh": "both, K from the run's evidence height",
    "up": "control: raise with the ray up-sun",
    "perp": "control: raise with the ray across the sun",
    "both_nowitness": "both, also where the classifier is no witness",
    "raise_elig": "raise, the ray's share over the cells where an unexplained shadow can be seen (ground, predicted lit, "
                  "visible) only: predicted shadows and roofs on the ray do not dilute it",
    "both_elig": "both, with that share",
    "first": "both's table (fitted on the localised decisions), added to the wide probability before the "
             "localisation: the ray's evidence may open the fine window's gate (p > prior)",
    "first_open": "first, with only the ratio's positive part before the localisation (it may open the gate, "
                  "never close it) and its negative part after",
    "lean": "first, and the relief ray before the localisation: the share of ground cells whose fine window says "
            "change on the K cells from the cell away from the target's sensor (K: the typical height's relief "
            "displacement, h tan(off-nadir) / cell), its likelihood ratio calibrated as the shadow ray's",
    "lean_raise": "lean, the relief ray's ratio relative to S = 0 (may only raise)",
    "lean_against": "control: lean with the ray towards the sensor",
    "lean_perp": "control: lean with the ray across the lean",
    "lean_diff": "lean, the ray's share less the same share towards the sensor (clipped at 0): the relief's asymmetry",
    "lean_lit": "lean, the ray's input on ground predicted lit at the new date only (not the sun's shadow changes)",
    "lean_gate": "lean, the relief ray's ratio counted for the localisation's gate only (p itself not moved by it)",
    "lean_only": "the relief ray alone before the localisation (no shadow ray)",
    "facade": "first, and the facade ray before the localisation: the share of dark facade strips (runs of U along the "
              "lean of K/2 .. 2K cells ending in a step to a lit roof) on the cell and the 2K cells towards the "
              "sensor, its likelihood ratio calibrated as the shadow ray's",
    "facade_against": "control: facade with the lean reversed (strips whose roof step lies towards the sensor)",
    "facade_perp": "control: facade across the lean",
    "facade_seg": "first, and the facade test per target segment before the localisation: the share of a target "
                  "segment's sensor-side outline where a facade strip ends, on the segment and on the cells a strip "
                  "width towards the sensor (its footprint), calibrated as the shadow ray's",
    "facade_seg_against": "control: facade_seg with the lean reversed",
    "facade_seg_perp": "control: facade_seg across the lean",
    "facade_wall": "facade, strips whose end has a neighbour across the lean (or one cell along it) ending a strip "
                   "of the same width (within a cell): a wall, not a dark blob",
    "facade_wall_against": "control: facade_wall with the lean reversed",
    "facade_wall_perp": "control: facade_wall across the lean",
    "facade_wall_elig": "facade_wall, no word (ratio 0) on cells with no strip whose 2K cells towards the sensor are "
                        "mostly where no facade could be seen (predicted shadow, roofs, unseen); the table fitted on "
                        "the others",
    "facade_wall_elig_against": "control: facade_wall_elig with the lean reversed",
    "facade_wall_elig_perp": "control: facade_wall_elig across the lean",
    "facade_wall_any": "facade_wall, S = 1 where a strip lies on the cell or its 2K cells towards the sensor (not the "
                       "share)",
    "facade_wall_deep": "facade_wall, the share over 4K cells towards the sensor",
    "facade_wall_deep_any": "facade_wall, S = 1 where a strip lies on the cell or its 4K cells towards the sensor",
    "facade_wall_deep_any_against": "control: facade_wall_deep_any with the lean reversed",
    "facade_wall_deep_any_perp": "control: facade_wall_deep_any across the lean",
    "facade_wall_deep_any_across": "facade_wall_deep_any, also on the K cells either side across the lean",
    "facade_wall_deep_any_across_against": "control: facade_wall_deep_any_across with the lean reversed",
    "facade_wall_deep_any_across_perp": "control: facade_wall_deep_any_across across the lean",
    "facade_wall_across": "facade_wall, and S = 1/2 on the K cells either side across the lean of where it is > 0",
    "facade_raise": "facade, its ratio relative to S = 0 (may only raise)",
    "facade_roof": "facade, the roof step onto cells whose K-cell mean down the lean differs from the base (target "
                   "residual on a line of the base) more than 90 % of the run's ground cells do",
    "facade_roof_against": "control: facade_roof with the lean reversed",
    "facade_roof_perp": "control: facade_roof across the lean",
    "fobj": "first, and the object-level facade test (_facade_object): per target segment the wall rows seen at its "
            "sensor-side outline, tested against the same count read across the lean (tail false-discovery share); "
            "passing footprints get p = max(p, 1 - fdr)",
    "fobj_perp": "control: fobj with the test direction across the lean (its null across that)",
    "fobj_against": "control: fobj with the lean reversed",
    "fobj_share": "fobj, the count only where at least half the sensor-side outline is hit",
    "fobj_share_perp": "control: fobj_share across the lean",
    "fobj_share_against": "control: fobj_share with the lean reversed",
    "fobj_comp": "first, and the object-level facade test on wall components (_facade_object.wall_object_probability): "
                 "the rows of a connected wall of same-width strips, tested against the walls read across the lean; "
                 "a passing wall's strips, roof segment and footprint get p = max(p, 1 - fdr)",
    "fobj_comp_perp": "control: fobj_comp with the test direction across the lean",
    "fobj_comp_against": "control: fobj_comp with the lean reversed",
    "fobj_comp_ctr": "fobj_comp, a wall counted only where the fine window's log ratio past its strips (the roof side) "
                     "exceeds that before them (the ground line's side), in the test and in the null alike",
    "fobj_comp_ctr_perp": "control: fobj_comp_ctr across the lean",
    "fobj_comp_ctr_against": "control: fobj_comp_ctr with the lean reversed",
    "fobj_comp_ctr_rows": "fobj_comp_ctr, the footprint per wall row only: the roof run in its target segment past the "
                          "strip's end, shifted back by the strip's length, and the strip",
    "fobj_comp_ctr_rows_perp": "control: fobj_comp_ctr_rows across the lean",
    "fobj_comp_ctr_rows_against": "control: fobj_comp_ctr_rows with the lean reversed",
    "fobj_comp_ctr_rows_half": "fobj_comp_ctr_rows, half a null wall added to every null tail count (the ray tables' "
                               "counts + 1/2): no object is certain from a finite null",
    "fobj_comp_ctr_rows_half_add": "fobj_comp_ctr_rows_half, the object's log odds added to the cell's instead of "
                                   "p = max(p, pi)",
    "fobj_comp_ctr_rows_half_add_perp": "control: fobj_comp_ctr_rows_half_add across the lean",
    "fobj_comp_ctr_rows_half_add_against": "control: fobj_comp_ctr_rows_half_add with the lean reversed",
}
FIRST = ("first", "lean", "facade", "fobj")


def localise_gated(p, gate_llr, fine, coarse_model, fine_model):
    """``localise.localise`` with the gate ``p > prior`` read on ``logit p + gate_llr`` (the relief ray's
    ratio: a standing object's roof down the lean calls for the closer look) while the fine window raises or
    lowers ``p`` itself."""
    from offnadir.change import localise as LL

    tab = LL.log_likelihood_ratio(fine_model)
    if tab is None:
        return p.copy()
    r = np.asarray(fine, np.float64)
    fin = np.isfinite(r) & np.isfinite(p)
    llr = np.zeros(p.shape)
    llr[fin] = C.interp(C.to_z(r[fin] / (1.0 + r[fin])), C.centres(), tab)
    prior = None if coarse_model is None or coarse_model.get("fallback") else coarse_model["pi"][1]
    says = llr >= np.log(fine_model["pi"][0] / fine_model["pi"][1])
    with np.errstate(divide="ignore", invalid="ignore"):
        pg = expit(logit(np.clip(p, 0, 1)) + gate_llr)
        may = ((pg > prior) & says) if prior is not None else np.zeros(p.shape, bool)
        llr = np.where(may, llr, np.minimum(llr, 0.0))
        q = expit(logit(np.clip(p, 0, 1)) + llr)
    return np.where(fin & np.isfinite(q) & (llr != 0), q, p)


def decide(d, name):
    """Probability and change (0/1/2) of one stored run under variant ``name``, and what the rule did."""
    el = d["elev"]
    p, pw, fm, models = first_probabilities(d)
    g = ~el
    info = {}
    lean_add = None
    if name.startswith("lean") and fm is not None and L.log_likelihood_ratio(fm) is not None:
        tab = L.log_likelihood_ratio(fm)
        fin = np.isfinite(d["fine"])
        llr_f = np.full(el.shape, -np.inf)
        llr_f[fin] = C.interp(C.to_z(d["fine"][fin] / (1.0 + d["fine"][fin])), C.centres(), tab)
        says = llr_f >= np.log(fm["pi"][0] / fm["pi"][1])
        Sl, li = lean_ray(d, name, says)
        obs = g & np.isfinite(p) & (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1)
        chg, unc = obs & (p >= 0.5), obs & (p < 0.5)
        if chg.sum() >= MIN_CHANGED:
            lt, lb = ray_table(Sl, chg, unc, name)
            li["lean_log_lr"] = np.round(lt, 2).tolist()
            lean_add = np.where(g, lt[lb], 0.0)
        info.update(li)
    if name.startswith("facade"):
        U = unexplained_shadows(d)
        if U is not None:
            Sf, li = (facade_segments if "seg" in name else facade_ray)(d, name, U)
            obs = g & np.isfinite(p) & (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1)
            chg, unc = obs & (p >= 0.5), obs & (p < 0.5)
            known = np.isfinite(Sf)  # facade_*_elig: NaN where no facade could be seen (no word there)
            chg, unc = chg & known, unc & known
            if chg.sum() >= MIN_CHANGED:
                lt, lb = ray_table(np.nan_to_num(Sf), chg, unc, name)
                li["facade_log_lr"] = np.round(lt, 2).tolist()
                lean_add = np.where(g & known, lt[lb], 0.0)
            info.update(li)
    if name != "no_ray":
        S, info0 = (None, {}) if name == "lean_only" else shadow_ray(d, name)
        info.update(info0)
        add = None
        if S is not None:
            obs = g & np.isfinite(p) & (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1)
            chg, unc = obs & (p >= 0.5), obs & (p < 0.5)
            info["ground_changed"] = int(chg.sum())
            if chg.sum() >= MIN_CHANGED:
                llr, b = ray_table(S, chg, unc, "")
                if not name.startswith(("both",) + FIRST):
                    llr = llr - llr[0]
                info["log_lr"] = np.round(llr, 2).tolist()
                add = np.where(g, llr[b], 0.0)
        gate_add = None
        if lean_add is not None and name == "lean_gate":  # the relief ray opens the fine window's gate only
            gate_add = lean_add
        elif lean_add is not None:  # the relief ray's ratio, with or without the shadow ray's
            add = lean_add if add is None else add + lean_add
        if add is not None:
            base = pw if name.startswith(FIRST) else p
            before = np.maximum(add, 0.0) if name == "first_open" else add
            with np.errstate(divide="ignore", invalid="ignore"):
                q = expit(logit(np.clip(base, 0, 1)) + before)
            p = np.where(g & np.isfinite(q) & (before != 0), q, base)
            if gate_add is not None and fm is not None:
                p[g] = localise_gated(p[g], gate_add[g], d["fine"][g], models[0], fm)
            elif name.startswith(FIRST) and fm is not None:  # the rays' ratios before the localisation
                p[g] = L.localise(p[g], d["fine"][g], models[0], fm)
            if name == "first_open":  # the rest of the ratio (its negative part) after it
                after = np.minimum(add, 0.0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    q = expit(logit(np.clip(p, 0, 1)) + after)
                p = np.where(g & np.isfinite(q) & (after != 0), q, p)
    if name.startswith("fobj"):  # the object-level facade test after the localisation (t1, twelfth round)
        U = unexplained_shadows(d)
        if U is not None:
            pc, li = (wall_object_probability if "comp" in name else object_probability)(d, name, U)
            info.update(li)
            on = g & (pc > 0) & np.isfinite(p)
            if name.endswith("_add"):  # the object's odds added to the cell's (pi = 1/2: no word)
                with np.errstate(divide="ignore", invalid="ignore"):
                    q = expit(logit(np.clip(p, 0, 1)) + logit(np.clip(pc, 0, 1)))
                p = np.where(on & np.isfinite(q), q, p)
            else:
                p = np.where(on, np.maximum(p, pc), p)
    kept = ED.rim_kept(d)
    p, ch = ED.finish(d, p, kept, ED.criteria_score(d, kept), d.get("gone"))
    return p, ch, info


def run(store, names, scorer):
    d = load(store)
    p0, _ = ED.decide(d, "current")
    with np.errstate(invalid="ignore"):  # roofs decided gone by the missing-shadow rules (kept for every variant)
        d["gone"] = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    out = {}
    for n in names:
        p, ch, info = decide(d, n)
        r = scorer(d, p, ch)
        r["info"] = info
        if n == "first":
            both = np.isfinite(p) & np.isfinite(d["prob"])
            r["diff"] = float(np.max(np.abs(p[both] - d["prob"][both]), initial=0))
        out[n] = r
    return out


def score_hard(d, p, ch, scene):
    r = EO.score_hard(d, p, ch, d["ev"], scene)
    cls = EO._read(scene / "truth_change_class.tif")
    ref = EO._read(scene / "truth_structural.tif")
    occ = EO._read(scene / "truth_occluded.tif")
    t = d["t"]
    cells = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (ref != 255) & (occ == 0) & (ch != 2)
    r["new_miss"] = int((cells & (cls == 1) & (ch == 0)).sum())
    r["ground_fa_cells"] = int((cells & ~d["elev"] & ~np.isin(ref, (1, 2)) & (ch == 1)).sum())
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path)
    ap.add_argument("--variants", nargs="+", default=["first", "no_ray"], choices=list(VARIANTS))
    ap.add_argument("--objects", action="store_true", help="census of the new buildings, per object (hard only)")
    ap.add_argument("--json", type=Path, help="with --objects: the rows and summaries to this JSON file")
    a = ap.parse_args(argv)
    if a.objects:
        allr = {}
        for s in a.seeds:
            store, scene = EO.hard_store(a, s)
            rows, summary = objects(store, scene)
            print_objects(s, rows, summary)
            allr[s] = dict(rows=rows, summary=summary)
        if a.json:
            a.json.write_text(json.dumps(allr, default=float))
        return 0
    res = {}
    if a.hard:
        for s in a.seeds:
            store, scene = EO.hard_store(a, s)
            res[s] = run(store, a.variants, lambda d, p, ch, sc=scene: score_hard(d, p, ch, sc))
    km = {}
    if a.km:
        for t in (1, 2):
            km[t] = run(a.km / f"km_post{t}.zarr", a.variants, lambda d, p, ch: EO.score_km(d, p, ch))
    for v in a.variants:
        print(f"== {v}: {VARIANTS[v]}")
        if res:
            rows = [res[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            auc = [r["auc"] for r in rows]
            fa = " ".join(f"{r['ground_fa']:.3f}" for r in rows)
            print(f"  hard elevated F1 {' '.join(f'{x:.3f}' for x in f1)} (mean {np.mean(f1):.3f}); AUC "
                  f"{' '.join(f'{x:.3f}' for x in auc)} (mean {np.mean(auc):.3f}); all-cells F1 mean "
                  f"{np.mean([r['f1'] for r in rows]):.3f}; ground FA rate {fa}"
                  f" ({sum(r['ground_fa_cells'] for r in rows)} cells); new-building misses "
                  f"{sum(r['new_miss'] for r in rows)} ({' '.join(str(r['new_miss']) for r in rows)})")
            for s, r in zip(a.seeds, rows):
                print(f"    seed {s}: {r['info']}" + (f" (vs stored {r['diff']:.2g})" if "diff" in r else ""))
        for t, rr in km.items():
            r = rr[v]
            print(f"  Kahramanmaras img{t}: F1 {r['f1']:.4f}, AUC {r['auc']:.4f}, objects {r['objects']}, flagged "
                  f"{r['flagged']:.3f}; {r['info']}" + (f" (vs stored {r['diff']:.2g})" if "diff" in r else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
