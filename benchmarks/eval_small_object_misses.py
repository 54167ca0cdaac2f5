"""Evaluation: why new buildings and tree changes are missed with one image per date (issue 7, H3
fifth round). Reads the stores and scenes that ``benchmarks/eval_hard_sim.py --work DIR`` leaves.

Per seed it prints, from the store (no rerun):

* the calibration state of every census mixture (wide elevated / ground, the fine window's
  ``local``): fitted, or fallen back, and why (``pinned``: EM held at the weight cap);
* the missed **new-building** cells (ground in the old DSM) by where the decision stopped them, in
  the order the maps pass applies it (:mod:`offnadir.change.localise`): the fine mixture fell back
  (localisation off), the wide posterior at or below its prior (the localisation may not raise),
  the fine posterior below one half, or both scales for change but the raised probability still
  below one half;
* the new buildings' recall by footprint size (cells of the truth's ``new`` class per object):
  a changed object smaller than the census window is diluted by the unchanged ground the window
  also holds;
* the **tree changes** (elevated in the old DSM): cut and grown crowns and the unchanged trees,
  their stored evidence against the unchanged roofs' (cell AUC), and which rule flags the tree cells
  that are flagged (the census probability, a patch criterion's stored score, or the shadow rules'
  stored one half where nothing else reaches it).

``--variants``: candidate rules replayed on the stored runs (stored evidence, or the evidence
recomputed from the store's cube where a variant needs another window), decided as the maps pass
does (calibration per stratum, the fine window's localisation, rim witness, patch criteria; roofs
decided gone or raised by the shadow rules kept as stored), scored like
``benchmarks/eval_decision_offline.py`` (``current`` reproduces it) with the misses of new
buildings, cut and grown trees and the false-alarm cells; with ``--km DIR`` (the stores of
``benchmarks/eval_change_real.py --workdir DIR``) Kahramanmaras too. See :data:`VARIANTS`.

``--windows``: the ground cells' census evidence recomputed at windows 11, 21, 31 and 41 (the
pipeline's rule, ``cells.stratum_evidence``), with the cell AUC of new buildings against unchanged
ground and the best F1 any single threshold gives (an upper bound for a calibration of that
window alone). ``--trees``: the elevated objects that fit in the fine window (4-connected
elevated components whose bounding box is at most the fine window's side), what they are (base
trees) and the AUC of cut against unchanged crowns there for the wide evidence and the fine
window's census ratio (all code pairs, and the elevated cells' pairs only).

    python benchmarks/eval_small_object_misses.py --hard DIR [--seeds 0 1 2] [--windows] [--trees]
                                                  [--variants current floor ...] [--km DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

#: footprint bins (cells of a new building) for the recall by size: the fine window's area (11^2),
#: a quarter and the whole of the wide window's (41^2 / 4, 41^2)
SIZE_BINS = (0, 121, 420, 1681, 10**9)


def _read(path):
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def _auc(pos, neg) -> float:
    from scipy.stats import mannwhitneyu

    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not pos.size or not neg.size:
        return float("nan")
    return float(mannwhitneyu(pos, neg).statistic / (pos.size * neg.size))


def _state(m) -> str:
    if m is None:
        return "none"
    if m.get("fallback"):
        why = "pinned at the weight cap" if m.get("pinned") else (m.get("reason") or "").split(":")[0]
        return f"fallback ({why})"
    return (f"fitted: pi1 {m['pi'][1]:.3f}, means {m['mean'][0]:.2f} / {m['mean'][1]:.2f}, "
            f"sds {m['sd'][0]:.2f} / {m['sd'][1]:.2f}")


def load(work: Path, seed: int) -> dict:
    import xarray as xr

    from offnadir.change import calibrate as C
    from offnadir.change import cells as P

    store, scene = work / f"hard{seed}.zarr", work / f"hard{seed}"
    if not store.exists():
        sys.exit(f"{store} not found: run `python benchmarks/eval_hard_sim.py --work {work} --seeds {seed}` first")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        t = 1
        d = dict(ev=np.asarray(ds["evidence"].values[t], np.float64),
                 fine=np.asarray(ds["evidence_local"].values[t], np.float64),
                 ch=np.asarray(ds["change"].values[t]), vis=np.asarray(ds["visible"].values),
                 elev=np.asarray(ds["elevated"].values) == 1, store=store, scene=scene)
    # the run's mixtures, refitted from the stored evidence as the runner fits them
    d["models"] = {}
    for key, e, m in ((("evidence", t, 1), d["ev"], d["elev"]), (("evidence", t, 0), d["ev"], ~d["elev"]),
                      (("local", t, 0), d["fine"], ~d["elev"])):
        d["models"][key] = P.calibration_model(key, C.histogram(P.ratio_evidence(e), m))
    d["cls"] = _read(scene / "truth_change_class.tif")
    d["sb"] = _read(scene / "truth_structural.tif")
    occ = _read(scene / "truth_occluded.tif")
    from offnadir.simulate import truth as T

    d["cells"] = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (occ == 0) & (d["ch"] != 2) & (d["sb"] != T.IGNORE)
    meta = json.loads((scene / "scene.json").read_text())
    from offnadir.simulate import scene as S

    model = S.generate(int(meta["seed"]), int(meta["size"]), float(meta["cell"]), float(meta["heights"]["base_height"]))
    d["tree"] = S.rasterize(model)[1].kind == S.TREE
    return d


def new_building_stops(d) -> dict:
    """Missed new-building cells (ground in the old DSM) by where the decision stopped them."""
    from scipy.special import expit, logit

    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.change import localise as L
    from offnadir.simulate import truth as T

    g = d["cells"] & ~d["elev"] & (d["cls"] == T.CODE["new"])
    miss = g & (d["ch"] == 0)
    wide, fine = d["models"][("evidence", 1, 0)], d["models"][("local", 1, 0)]
    out = {"scored": int(g.sum()), "missed": int(miss.sum())}
    if wide.get("fallback"):
        out["wide calibration fell back"] = int(miss.sum())
        return out
    p = C.probability(P.ratio_evidence(d["ev"]), wide)
    tab = L.log_likelihood_ratio(fine)
    if tab is None:
        out["fine mixture fell back: localisation off"] = int(miss.sum())
        return out
    llr = np.interp(C.to_z(P.ratio_evidence(d["fine"])), C.centres(), tab)
    says = llr >= np.log(fine["pi"][0] / fine["pi"][1])
    gate = p > wide["pi"][1]
    with np.errstate(divide="ignore", invalid="ignore"):
        raised = expit(logit(np.clip(p, 0, 1)) + llr)
    out["wide posterior <= its prior (may not raise)"] = int((miss & ~gate).sum())
    out["gate open, fine posterior < 1/2"] = int((miss & gate & ~says).sum())
    out["both scales for change, raised p < 1/2"] = int((miss & gate & says & (raised < 0.5)).sum())
    out["other (a later rule)"] = out["missed"] - sum(v for k, v in out.items() if k not in ("scored", "missed"))
    return out


def recall_by_size(d) -> list:
    from scipy import ndimage as ndi

    from offnadir.simulate import truth as T

    lab, n = ndi.label(d["cls"] == T.CODE["new"])
    size = np.bincount(lab.ravel())
    rows = []
    for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        objs = np.nonzero((size >= lo) & (size < hi))[0]
        objs = objs[objs > 0]
        m = np.isin(lab, objs) & d["cells"]
        if m.any():
            rows.append((lo, hi, len(objs), int(m.sum()), float((d["ch"][m] == 1).mean()),
                         float(np.median(np.log(d["ev"][m]))), float(np.nanmedian(np.log(d["fine"][m])))))
    return rows


def trees(d) -> dict:
    from offnadir.simulate import truth as T

    el = d["cells"] & d["elev"]
    z = np.log(d["ev"])
    roof_u = el & (d["sb"] == 0) & ~d["tree"]
    out = {}
    for name, m in (("tree_cut", el & (d["cls"] == T.CODE["tree_cut"])),
                    ("tree_grown", el & (d["cls"] == T.CODE["tree_grown"])),
                    ("unchanged trees", el & (d["sb"] == 0) & d["tree"])):
        out[name] = dict(n=int(m.sum()), flagged=float((d["ch"][m] == 1).mean()) if m.any() else float("nan"),
                         median_log=float(np.median(z[m])) if m.any() else float("nan"), auc_vs_roofs=_auc(z[m], z[roof_u]))
    out["unchanged roofs"] = dict(n=int(roof_u.sum()), flagged=float((d["ch"][roof_u] == 1).mean()),
                                  median_log=float(np.median(z[roof_u])), auc_vs_roofs=0.5)
    return out


def tree_sources(d) -> dict:
    """Flagged tree cells (cut, grown, unchanged) by the rule that flags them on its own: the census
    probability (stored evidence, the run's elevated mixture), a patch criterion (stored scores), or
    the shadow rules (the stored 1/2 where nothing else reaches it)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import eval_decision_offline as ED

    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.simulate import truth as T

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = ED.load(d["store"])
    pc = C.probability(P.ratio_evidence(d["ev"]), d["models"][("evidence", 1, 1)])
    crit = {k: P.paint(e["patch"], e["ids"], e[k]) >= 0.5 for k in ("spectral", "structural", "outline")}
    anyc = crit["spectral"] | crit["structural"] | crit["outline"]
    flag = (d["ch"] == 1) & d["cells"] & d["elev"]
    out = {}
    for name, m in (("tree_cut", d["cls"] == T.CODE["tree_cut"]), ("tree_grown", d["cls"] == T.CODE["tree_grown"]),
                    ("unchanged trees", (d["sb"] == 0) & d["tree"])):
        f = flag & m
        out[name] = dict(n=int((d["cells"] & d["elev"] & m).sum()), flagged=int(f.sum()),
                         census=int((f & (pc >= 0.5)).sum()), **{k: int((f & v).sum()) for k, v in crit.items()},
                         shadow_rules=int((f & (e["prob"] == np.float32(0.5)) & (pc < 0.5) & ~anyc).sum()))
    return out


def _inputs(d):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import eval_evidence_offline as EO

    from offnadir.change import sun_pairs as SP

    s = EO.load_store(d["store"])
    inp = EO.inputs(s)
    return s, inp, SP.sun_pair_word(s["ill"], 1)


def windows(d, sizes=(11, 21, 31, 41)) -> list:
    from offnadir.change import cells as P
    from offnadir.simulate import truth as T

    s, inp, pairs = _inputs(d)
    g = d["cells"] & ~d["elev"]
    new, un = g & (d["cls"] == T.CODE["new"]), g & (d["sb"] == 0)
    rows = []
    for w in sizes:
        e = P.stratum_evidence(inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], s["elev"], w,
                               inp["offsets"], inp["sigmas"], pairs=pairs)
        z = np.log(e)
        a, b = z[new & np.isfinite(z)], z[un & np.isfinite(z)]
        best = 0.0
        for th in np.quantile(np.r_[a, b], np.linspace(0.8, 0.999, 200)):
            tp, fp = float((a >= th).sum()), float((b >= th).sum())
            best = max(best, 2 * tp / (tp + a.size + fp))
        rows.append((w, _auc(a, b), best, float(np.median(a)), float(np.median(b)), float(np.quantile(b, 0.9))))
    return rows


def small_trees(d) -> dict:
    from offnadir.change import evidence as EV
    from offnadir.change import localise as L
    from offnadir.simulate import truth as T

    s, inp, pairs = _inputs(d)
    fw = L.fine_window(inp["window"])
    small = _small_objects(d["elev"], fw)
    a, b = inp["inten"]
    oa, ob = inp["ok"]
    _, ef = EV.structural_evidence(a, b, oa, ob, inp["window"], inp["offsets"], inp["sigmas"], fine=fw, pairs=pairs)
    _, efel = EV.structural_evidence(a, b, oa, ob, inp["window"], inp["offsets"], inp["sigmas"], compare=d["elev"],
                                     fine=fw, pairs=pairs)
    c = d["cells"] & small
    cut, unch = c & (d["cls"] == T.CODE["tree_cut"]), c & (d["sb"] == 0)
    allcut = d["cells"] & d["elev"] & (d["cls"] == T.CODE["tree_cut"])
    out = dict(fine_window=fw, cells=int(small.sum()), trees=int((small & d["tree"]).sum()),
               cut_in_small=int(cut.sum()), cut_all=int(allcut.sum()))
    for name, e in (("wide (stored)", d["ev"]), ("fine, all pairs", ef), ("fine, elevated pairs", efel)):
        out[name] = dict(auc=_auc(np.log(e[cut]), np.log(e[unch])), cut=float(np.nanmedian(np.log(e[cut]))),
                         unchanged=float(np.nanmedian(np.log(e[unch]))))
    return out


#: the replayed rules (``--variants``)
VARIANTS = {
    "current": "the maps pass as it is",
    "no_local": "without the fine window's localisation (what it is worth)",
    "floor": "where the fine window's own posterior calls change, the wide posterior may not lower it (the "
             "localisation starts from max(p, pi1)): a small object's wide window is mostly unchanged ground",
    "censor_local": "the fine window's mixture fitted censored below its median, as the wide ground stratum",
    "ground21": "ground cells' wide evidence over 21 cells instead of 41 (a 100 m^2 object's side)",
    "ground31": "the same over 31 cells",
    "gm1": "ground cells' evidence the geometric mean of the wide and the fine ratio",
    "gm0.5": "the same with the fine ratio at half weight: R_w^(2/3) R_f^(1/3)",
    "fine15": "the localisation's fine window 15 cells instead of 11",
    "fine21": "the localisation's fine window 21 cells",
    "small_fine": "elevated objects within the fine window (bounding box; 99 % trees) in a stratum of their own, "
                  "with the fine window's ratio over elevated code pairs",
}


def _small_objects(elev, fw):
    from scipy import ndimage as ndi

    lab, n = ndi.label(elev)
    keep = np.zeros(n + 1, bool)
    for k, sl in enumerate(ndi.find_objects(lab), 1):
        keep[k] = sl is not None and sl[0].stop - sl[0].start <= fw and sl[1].stop - sl[1].start <= fw
    return keep[lab] & elev


def _decide(d, gone, small=None, floor=False):
    """The maps pass on stored runs (``eval_decision_offline.decide``'s ``current``), with an optional
    third stratum ``small`` (elevated cells calibrated on their own) and the localisation's ``floor``."""
    from scipy.special import expit, logit

    import eval_decision_offline as ED

    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.change import localise as L

    e, el = d["ev"], d["elev"]
    p = np.full(e.shape, np.nan)
    big = el if small is None else (el & ~small)
    models = {}
    for s, m in ((1, big), (0, ~el), (2, small)):
        if m is None:
            continue
        models[s] = ED.refit(C.histogram(P.ratio_evidence(e), m), min(s, 1), censor=d.get("censor", "pipeline")
                             if s == 0 else "pipeline")
        p[m] = C.probability(P.ratio_evidence(e[m]), models[s])
    if d.get("fine") is not None:
        g = ~el
        fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"], censor=d.get("censor_local"))
        pg = p[g]
        if floor and not models[0].get("fallback") and L.log_likelihood_ratio(fm) is not None:
            llr = np.interp(C.to_z(P.ratio_evidence(d["fine"][g])), C.centres(), L.log_likelihood_ratio(fm))
            says = llr >= np.log(fm["pi"][0] / fm["pi"][1])
            prior = models[0]["pi"][1]
            with np.errstate(invalid="ignore"):
                lift = says & (pg <= prior)
            q = expit(logit(prior) + llr)
            pg = np.where(lift & np.isfinite(q), q, pg)
            rest = ~lift
            pg[rest] = L.localise(pg[rest], d["fine"][g][rest], models[0], fm)
        else:
            pg = L.localise(pg, d["fine"][g], models[0], fm)
        p[g] = pg
    kept = ED.rim_kept(d)
    return ED.finish(d, p, kept, ED.criteria_score(d, kept), gone)


def replay(store, names, scene=None):
    """Scores of each variant on one stored run (hard scene or Kahramanmaras)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import eval_decision_offline as ED
    import eval_evidence_offline as EO

    from offnadir.change import cells as P
    from offnadir.change import evidence as EV
    from offnadir.change import localise as L
    from offnadir.change import sun_pairs as SP
    from offnadir.simulate import truth as T

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ED.load(store)
        st = EO.load_store(store)
    inp = EO.inputs(st)
    pairs = SP.sun_pair_word(st["ill"], 1)
    args = (inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1])
    ev0, fine0 = d["ev"].copy(), d["fine"].copy()
    p0, _ = _decide(d, None)
    with np.errstate(invalid="ignore"):
        gone = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    fw = L.fine_window(inp["window"])
    out = {}
    for name in names:
        v = dict(d, ev=ev0.copy(), fine=fine0.copy())
        small, floor = None, False
        g = ~d["elev"]
        if name == "floor":
            floor = True
        elif name == "no_local":
            v["fine"] = None
        elif name == "censor_local":
            v["censor_local"] = 0.5
        elif name in ("ground21", "ground31"):
            w = int(name[6:])
            e = P.stratum_evidence(*args, st["elev"], w, inp["offsets"], inp["sigmas"], pairs=pairs)
            v["ev"] = np.where(g, e, ev0)
        elif name in ("gm1", "gm0.5"):
            k = float(name[2:])
            with np.errstate(divide="ignore", invalid="ignore"):
                v["ev"][g] = np.exp((np.log(ev0[g]) + k * np.log(fine0[g])) / (1.0 + k))
        elif name in ("fine15", "fine21"):
            _, v["fine"] = P.stratum_evidence(*args, st["elev"], inp["window"], inp["offsets"], inp["sigmas"],
                                              pairs=pairs, fine=int(name[4:]))
        elif name == "small_fine":
            small = _small_objects(d["elev"], fw)
            _, ef = EV.structural_evidence(*args, inp["window"], inp["offsets"], inp["sigmas"], compare=d["elev"],
                                           fine=fw, pairs=pairs)
            v["ev"][small] = ef[small]
        elif name != "current":
            raise SystemExit(f"unknown variant {name}: one of {', '.join(VARIANTS)}")
        v["ev"][~np.isfinite(ev0)] = np.nan
        p, ch = _decide(v, gone, small, floor)
        if scene is None:
            out[name] = EO.score_km(d, p, ch)
            continue
        r = EO.score_hard(d, p, ch, v["ev"], scene)
        cls, sb = _read(scene / "truth_change_class.tif"), _read(scene / "truth_structural.tif")
        occ = _read(scene / "truth_occluded.tif")
        cells = (d["vis"][0] == 1) & (d["vis"][1] == 1) & (occ == 0) & (ch != 2) & (sb != T.IGNORE)
        miss = cells & np.isin(sb, (T.LOSS, T.GAIN)) & (ch == 0)
        fa = cells & (sb == 0) & (ch == 1)
        r["misses"] = {k: int((miss & (cls == T.CODE[k])).sum()) for k in ("new", "tree_cut", "tree_grown")}
        r["fa_ground"], r["fa_elevated"] = int((fa & g).sum()), int((fa & d["elev"]).sum())
        out[name] = r
    return out


def print_variants(a):
    hard = {s: replay(a.hard / f"hard{s}.zarr", a.variants, a.hard / f"hard{s}") for s in a.seeds}
    km = {t: replay(a.km / f"km_post{t}.zarr", a.variants) for t in (1, 2)} if a.km else {}
    for v in a.variants:
        print(f"== {v}: {VARIANTS[v]}")
        if hard:
            rows = [hard[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            auc = " ".join(f"{r['auc']:.3f}" for r in rows)
            gfa = " ".join(f"{r['ground_fa']:.3f}" for r in rows)
            print(f"  hard elevated F1 per seed {' '.join(f'{x:.3f}' for x in f1)} (mean {np.mean(f1):.3f}); "
                  f"score AUC {auc}; ground FA rate {gfa}")
            tot = {k: sum(r["misses"][k] for r in rows) for k in rows[0]["misses"]}
            print(f"  misses (cells, all seeds): {tot}; false alarms ground / elevated "
                  f"{sum(r['fa_ground'] for r in rows)} / {sum(r['fa_elevated'] for r in rows)}")
        for t in km:
            r = km[t][v]
            print(f"  Kahramanmaras img{t}: F1 {r['f1']:.4f}, AUC {r['auc']:.4f}, flagged {r['flagged']:.3f}, "
                  f"objects {r['objects']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path, required=True, help="eval_hard_sim.py --work")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--windows", action="store_true", help="recompute the ground evidence at windows 11-41")
    ap.add_argument("--trees", action="store_true", help="small elevated objects: fine-window evidence")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="replay these rules on the stored runs")
    ap.add_argument("--km", type=Path, help="eval_change_real.py --workdir (with --variants)")
    a = ap.parse_args(argv)
    if a.variants:
        print_variants(a)
        return 0
    for s in a.seeds:
        d = load(a.hard, s)
        print(f"== seed {s} ({d['store']})")
        for key, m in d["models"].items():
            print(f"  mixture {'/'.join(map(str, key)):14s} {_state(m)}")
        print("  new buildings, missed cells by where the decision stopped them:")
        for k, v in new_building_stops(d).items():
            print(f"    {k}: {v}")
        print("  new buildings by footprint (cells): objects, scored cells, recall, median log R wide / fine")
        for lo, hi, n, m, r, zw, zf in recall_by_size(d):
            print(f"    [{lo}, {hi if hi < 10**9 else 'inf'}): {n:3d} objects, {m:6d} cells, recall {r:.2f}, "
                  f"{zw:.2f} / {zf:.2f}")
        print("  elevated cells: n, flagged, median log evidence (stored), cell AUC against unchanged roofs")
        for k, v in trees(d).items():
            print(f"    {k:16s} {v['n']:7d} {v['flagged']:.3f} {v['median_log']:.2f} {v['auc_vs_roofs']:.3f}")
        print("  flagged tree cells by the rule that flags them: n, flagged, census, spectral, structural, "
              "outline, shadow rules")
        for k, v in tree_sources(d).items():
            print(f"    {k:16s} {v['n']:6d} {v['flagged']:6d} {v['census']:5d} {v['spectral']:5d} {v['structural']:5d} "
                  f"{v['outline']:5d} {v['shadow_rules']:5d}")
        if a.windows:
            print("  ground evidence by window: AUC new / unchanged, best single-threshold F1, medians new / "
                  "unchanged, unchanged 90th percentile")
            for w, auc, f1, mn, mu, q9 in windows(d):
                print(f"    {w:2d}: {auc:.3f} {f1:.3f} {mn:.2f} / {mu:.2f} {q9:.2f}")
        if a.trees:
            r = small_trees(d)
            print(f"  elevated objects within the fine window ({r['fine_window']} cells): {r['cells']} cells, "
                  f"{r['trees']} of them trees; cut-tree cells there {r['cut_in_small']} of {r['cut_all']}")
            for k in ("wide (stored)", "fine, all pairs", "fine, elevated pairs"):
                v = r[k]
                print(f"    {k:22s} AUC cut / unchanged {v['auc']:.3f}, medians {v['cut']:.2f} / {v['unchanged']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
