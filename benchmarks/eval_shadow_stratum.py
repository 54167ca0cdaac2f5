"""Evaluation: ground cells in shadow calibrated against their own null (a third calibration stratum),
applied to the evidence stored by existing runs (one image per date), scored in seconds (issue 7, H6).

The census evidence of every target is calibrated per stratum (elevated / ground cells) by a
two-component mixture (:mod:`offnadir.change.calibrate`). Shadowed ground has fewer photons and
less contrast, so its census codes may agree less than lit ground's: judged against the lit
ground's null it would be flagged more often. Here ground cells in a shadow class get a mixture of
their own (``("evidence", t, 2)``); everything after the calibration (the fine window, the rim
witness, the patch criteria, the roofs decided gone or raised) is as in
``benchmarks/eval_decision_offline.py`` (whose ``current`` reproduces the stored probability).

Variants (the ground cells put in the shadow stratum):

* ``current``: none (two strata, as the pipeline);
* ``pred_either``: predicted without direct sun at either date (``illumination == 0`` in the base
  or the target); ``pred_both``: at both dates;
* ``seen_target``: the target's shadow classifier (:mod:`offnadir.change.shadow_observed`,
  calibrated here on the whole scene) calls the cell shadow (3 x 3 log-odds >= 0);
  ``unexplained``: that, and predicted lit in the target (a shadow the old DSM does not cast);
* ``any_shadow``: ``pred_either`` or ``seen_target`` or seen in the base;
* ``few_pairs_half`` / ``few_pairs_quarter``: ground cells whose window holds fewer than half / a
  quarter of the ground cells' median number of compared code pairs (at offset 0; a moved shadow's
  cells are not compared, so the windows in and beside large moved shadows are judged on few pairs,
  whose ratio is noisier and dominated by the predicted shadow edges);
* ``moved_margin`` (no third stratum: every cell's evidence recomputed, wide and fine window): the
  cells within :data:`offnadir.change.shadow_observed.MARGIN` (2) cells of a cell whose predicted
  direct-sun state differs between the dates are left out of the code comparison too (a predicted
  shadow edge may be off by a cell of discretisation and one of resampling blur);
* ``dim_seen`` / ``dim_all`` (no third stratum: the ground cells' evidence recomputed, wide and
  fine window): **a shadow dims**: it can turn a code to 0 at the darker date, it cannot create one
  (except at its own edge) nor reverse one. Where an image's shadow classifier sees a cell shadowed
  and the other date's lit, the darker date's zero codes are left out of the comparison, and so are
  each image's code pairs across the edge of the shadows it sees; ``dim_seen`` keeps the predicted
  moved shadows left out as now, ``dim_all`` compares them too (by the rule);
* ``shrink`` (no third stratum): each ground cell's ``log R`` (wide and fine window) shrunk towards
  the ground cells' median by ``w = tau^2 / (tau^2 + c / n)``, ``n`` its window's compared pairs:
  ``var(log R | n) = tau^2 + c / n`` fitted on the run's ground cells (robust variance per decile of
  ``n``) -- empirical Bayes: a ratio of few pairs is mostly sampling noise;
* ``explained_nuisance`` (after the decision): ``eval_shadow_offline.py``'s rule on today's runs --
  ground cells in an unexplained seen shadow whose caster walk ends on a cell decided changed, where
  the old surface lacks the caster, set unchanged (the shadow of a detected change);
* ``edge_pairs`` (no third stratum: the ground cells' evidence recomputed, wide and fine window): the
  target's census pairs that cross the edge of a shadow it sees where the old DSM predicts direct
  sun (an unexplained shadow's edge: illumination, not structure) are left out of the comparison.

It also prints, per store, the unchanged ground's flag rate and median ``log R`` per class (from the
simulator's truth: ``truth_shadow.tif`` bit 2, the target's true shadow, against the prediction).
The figures, and why no variant is adopted: ``docs/change_detection.md``, "Ground false alarms in
shadows, and the hard simulator at 1024²".

    python benchmarks/eval_shadow_stratum.py [--hard /tmp/eval_hard_sim] [--km /tmp/eval_change_real]
                                             [--seeds 0 1 2 3 4 5] [--variants ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from offnadir.change import calibrate as C
from offnadir.change import cells as P
from offnadir.change import evidence as EV
from offnadir.change import shadow_observed as SO
from offnadir.change import sun_pairs as SP

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as DO  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402

VARIANTS = ("current", "pred_either", "pred_both", "seen_target", "unexplained", "any_shadow", "edge_pairs",
            "few_pairs_half", "few_pairs_quarter", "moved_margin", "dim_seen", "dim_all", "shrink",
            "explained_nuisance")


def load(store, t: int = 1) -> dict:
    import warnings

    import xarray as xr

    d = DO.load(store, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        d["ill"] = np.asarray(ds["illumination"].values) if "illumination" in ds else None
        val = np.asarray(ds["value"].values, np.float64)
    d["inten"] = [EV.intensity(val[k]) for k in (0, t)]
    import json

    d["window"] = int(json.loads(ds.attrs["change_calibration"])["window_cells"])
    return d


def seen_shadow(d, i):
    """Image ``i`` (0 base, 1 target)'s seen shadow (classifier on the whole scene), or None."""
    k = (0, d["t"])[i]
    x = d["inten"][i]
    ok = (d["vis"][k] == 1) & np.isfinite(x)
    clf = SO.calibrate(x, d["ill"][k], ok)
    if clf is None:
        return None
    lo = SO.log_odds(x, ok, clf)
    with np.errstate(invalid="ignore"):
        return ok & (lo >= 0)


def shrunk(e, n, mask):
    """``e`` (census ratios) with ``log e`` on ``mask`` shrunk towards its median (see ``shrink``)."""
    z = np.log(np.maximum(e, 1e-4))
    m = mask & np.isfinite(z) & (n > 0)
    if m.sum() < 1000:
        return e
    zm, nm = z[m], n[m]
    med = float(np.median(zm))
    edges = np.quantile(nm, np.linspace(0, 1, 11))
    k = np.clip(np.searchsorted(edges, nm, side="right") - 1, 0, 9)
    xs, ys, ws = [], [], []
    for b in range(10):
        sel = k == b
        if sel.sum() < 50:
            continue
        zb = zm[sel]
        xs.append(1.0 / float(np.mean(nm[sel])))
        ys.append((1.4826 * float(np.median(np.abs(zb - np.median(zb))))) ** 2)
        ws.append(float(sel.sum()))
    if len(xs) < 3:
        return e
    A = np.stack([np.ones(len(xs)), xs], 1) * np.sqrt(ws)[:, None]
    tau2, c = np.linalg.lstsq(A, np.asarray(ys) * np.sqrt(ws), rcond=None)[0]
    tau2, c = max(float(tau2), 1e-6), max(float(c), 0.0)
    w = np.where(m, tau2 / (tau2 + c / np.maximum(n, 1.0)), 1.0)
    out = np.array(e, np.float64, copy=True)
    out[m] = np.exp(med + w[m] * (z[m] - med))
    print(f"      shrink: median {med:+.3f}, tau^2 {tau2:.4g}, c {c:.4g}; weight quartiles "
          f"{np.round(np.quantile(w[m], [0.05, 0.25, 0.5, 0.75]), 3)}")
    return out


def pair_counts(d, window=None):
    """Compared code pairs (valid in both images, same direct-sun state) in each cell's window at
    offset 0."""
    from scipy import ndimage as ndi

    t = d["t"]
    oa = (d["vis"][0] == 1) & np.isfinite(d["inten"][0])
    ob = (d["vis"][t] == 1) & np.isfinite(d["inten"][1])
    cm = np.ones(oa.shape, bool) if d["ill"] is None else SP.same_sun(d["ill"], t)
    _, va = EV.census(d["inten"][0], oa & cm, 1.0)
    _, vb = EV.census(d["inten"][1], ob & cm, 1.0)
    w = d["window"] if window is None else window
    return ndi.uniform_filter((va & vb).sum(0).astype(np.float64), w, mode="constant") * w * w


def shadow_stratum(d, name):
    """Bool mask of the ground cells of the third stratum under variant ``name`` (None: none)."""
    if name in ("current", "edge_pairs", "moved_margin", "dim_seen", "dim_all", "shrink",
                "explained_nuisance") or d["ill"] is None:
        return None
    ill, t, g = d["ill"], d["t"], ~d["elev"]
    s0, st = ill[0] == 0, ill[t] == 0
    if name == "pred_either":
        return g & (s0 | st)
    if name == "pred_both":
        return g & s0 & st
    if name.startswith("few_pairs"):
        n = pair_counts(d)
        med = float(np.median(n[g & np.isfinite(d["ev"])]))
        return g & (n < med * (0.5 if name.endswith("half") else 0.25))
    seen_t = seen_shadow(d, 1)
    seen_t = np.zeros(g.shape, bool) if seen_t is None else seen_t
    if name == "seen_target":
        return g & seen_t
    if name == "unexplained":
        return g & seen_t & ~st & (ill[t] != 255)
    if name == "any_shadow":
        seen_b = seen_shadow(d, 0)
        return g & (s0 | st | seen_t | (False if seen_b is None else seen_b))
    raise SystemExit(f"unknown variant {name!r}")


def edge_pairs_evidence(d, store):
    """Ground cells' wide and fine evidence with the target's code pairs across an unexplained
    seen shadow's edge left out (see the module docstring); elevated cells keep the stored ones."""
    from offnadir.change import census as K
    from offnadir.change import census_codes as CW
    from offnadir.change import localise as L

    full = EO.load_store(store)
    inp = EO.inputs(full)
    t = d["t"]
    seen = seen_shadow(d, 1)
    if seen is None:
        return d["ev"], d.get("fine")
    lit_t = (d["ill"][t] != 0) & (d["ill"][t] != 255)
    cross = EO.crossing_pairs(seen) & lit_t[None] & EV.shift(lit_t, 0, 0, False)[None]
    for k, (di, dj) in enumerate(EV._NEIGH):  # the neighbour predicted lit too
        cross[k] &= EV.shift(lit_t, di, dj, False)
    a, b = inp["inten"]
    oa, ob = inp["ok"]
    el = d["elev"]

    def ratio(compare, window):
        ca, va = EV.census(a, oa & compare, inp["sigmas"][0])
        cb, vb = EV.census(b, ob & compare, inp["sigmas"][1])
        e = K.min_census_ratio(CW.pack(ca, va), CW.pack(cb, vb & ~cross), inp["offsets"], window, None)
        e[~(oa & ob)] = np.nan
        return e

    same = np.ones(el.shape, bool) if inp["same_sun"] is None else inp["same_sun"]
    out = []
    for w in (inp["window"], L.fine_window(inp["window"])):
        out.append(np.where(el, np.nan, np.fmin(ratio(same, w), ratio(same & ~el, w))))
    ev = np.where(el, d["ev"], out[0])
    fine = None if d.get("fine") is None else out[1]
    return ev, fine


def moved_margin_evidence(d, store):
    """Every cell's wide and fine evidence with the moved shadows' compare mask shrunk by
    ``SO.MARGIN`` cells (see the module docstring)."""
    from scipy import ndimage as ndi

    from offnadir.change import localise as L

    inp = EO.inputs(EO.load_store(store))
    if inp["same_sun"] is None:
        return d["ev"], d.get("fine")
    r = SO.MARGIN
    near = ndi.binary_dilation(~inp["same_sun"], structure=np.ones((2 * r + 1, 2 * r + 1), bool))
    a, b = inp["inten"]
    e, ef = P.stratum_evidence(a, b, *inp["ok"], d["elev"], inp["window"], inp["offsets"], inp["sigmas"],
                               compare=inp["same_sun"] & ~near, fine=L.fine_window(inp["window"]))
    return e, (None if d.get("fine") is None else ef)


def dim_evidence(d, store, name):
    """Ground cells' wide and fine evidence under the dimming rule (see the module docstring)."""
    from offnadir.change import census as K
    from offnadir.change import census_codes as CW
    from offnadir.change import localise as L

    inp = EO.inputs(EO.load_store(store))
    sb, st = seen_shadow(d, 0), seen_shadow(d, 1)
    if sb is None or st is None:
        return d["ev"], d.get("fine")
    a, b = inp["inten"]
    oa, ob = inp["ok"]
    el = d["elev"]
    same = np.ones(el.shape, bool) if (inp["same_sun"] is None or name == "dim_all") else inp["same_sun"]
    darker_b, darker_t = sb & ~st, st & ~sb
    edge_b, edge_t = EO.crossing_pairs(sb), EO.crossing_pairs(st)

    def ratio(compare, window):
        ca, va = EV.census(a, oa & compare, inp["sigmas"][0])
        cb, vb = EV.census(b, ob & compare, inp["sigmas"][1])
        va = va & ~edge_b & ~((ca == 0) & darker_b[None])
        vb = vb & ~edge_t & ~((cb == 0) & darker_t[None])
        e = K.min_census_ratio(CW.pack(ca, va), CW.pack(cb, vb), inp["offsets"], window, None)
        e[~(oa & ob)] = np.nan
        return e

    out = [np.where(el, np.nan, np.fmin(ratio(same, w), ratio(same & ~el, w)))
           for w in (inp["window"], L.fine_window(inp["window"]))]
    return np.where(el, d["ev"], out[0]), (None if d.get("fine") is None else out[1])


def decide(d, name, gone=None):
    """Probability and change of one stored run with the shadow stratum of ``name`` (after the
    calibration: as ``eval_decision_offline.decide`` ``current``)."""
    e, el = d["ev"], d["elev"]
    sh = shadow_stratum(d, name)
    sh = np.zeros(el.shape, bool) if sh is None else sh
    ground = ~el & ~sh
    z = P.ratio_evidence(e)
    p = np.full(e.shape, np.nan)
    models = {}
    for s, m in ((1, el), (0, ground), (2, sh)):
        if not m.any():
            continue
        models[s] = C.fit(C.histogram(z, m), anchor=P.ANCHOR["evidence"])
        p[m] = C.probability(z[m], models[s])
    if d.get("fine") is not None:
        from offnadir.change import localise as L

        g = ~el
        fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"])
        for s, m in ((0, ground), (2, sh)):
            if m.any():
                p[m] = L.localise(p[m], d["fine"][m], models[s], fm)
    kept = DO.rim_kept(d)
    p, ch = DO.finish(d, p, kept, DO.criteria_score(d, kept), gone)
    return p, ch, models, sh


def truth_classes(d, scene, ch):
    """Unchanged ground's flag rate and median log R per (prediction, truth) class."""
    ref = EO._read(scene / "truth_structural.tif")
    cls = EO._read(scene / "truth_change_class.tif")
    occ = EO._read(scene / "truth_occluded.tif")
    tsh = EO._read(scene / "truth_shadow.tif")
    tel = EO._read(scene / "truth_elevated.tif") == 1
    t, vis = d["t"], d["vis"]
    cells = (vis[0] == 1) & (vis[t] == 1) & (occ == 0) & (ch != 2) & (ref != 255)
    g0 = cells & ~tel & (cls == 0)
    ill = d["ill"]
    pl = (ill[0] != 0) & (ill[t] != 0)
    out = {}
    for name, m in (("pred lit, truly lit", pl & (tsh == 0)),
                    ("pred lit, true shadow at target only (unexplained)", pl & (tsh == 2)),
                    ("pred shadow at either date", ~pl)):
        sel = g0 & m
        if sel.sum() >= 20:
            out[name] = (int(sel.sum()), float((ch[sel] == 1).mean()),
                         float(np.nanmedian(np.log(np.maximum(d["ev"][sel], 1e-4)))))
    gc = cells & np.isin(ref, (1, 2)) & ~d["elev"]
    if gc.any():
        out["changed ground (store)"] = (int(gc.sum()), float((ch[gc] == 1).mean()),
                                         float(np.nanmedian(np.log(np.maximum(d["ev"][gc], 1e-4)))))
    return out


def run_store(store, names, scorer, scene=None):
    d = load(store)
    p0, _ = DO.decide(d, "current")
    with np.errstate(invalid="ignore"):
        gone = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    out = {}
    for name in names:
        dv = d
        if name == "shrink":
            from offnadir.change import localise as L

            g = ~d["elev"]
            ev = np.where(g, shrunk(d["ev"], pair_counts(d), g), d["ev"])
            fine = d.get("fine")
            if fine is not None:
                fine = np.where(g, shrunk(fine, pair_counts(d, L.fine_window(d["window"])), g), fine)
            dv = dict(d, ev=ev, fine=fine)
        if name in ("edge_pairs", "moved_margin", "dim_seen", "dim_all"):
            if name.startswith("dim"):
                ev, fine = dim_evidence(d, store, name)
            else:
                ev, fine = (edge_pairs_evidence if name == "edge_pairs" else moved_margin_evidence)(d, store)
            dv = dict(d, ev=ev, fine=fine)
        p, ch, models, sh = decide(dv, name, gone)
        if name == "explained_nuisance":
            import eval_shadow_offline as SOFF

            full = EO.load_store(store)
            p, ch = SOFF.explained_nuisance(full, EO.inputs(full), store, p, ch)
        r = scorer(dv, p, ch, dv["ev"])
        r["stratum_cells"] = int(sh.sum())
        m2 = models.get(2)
        if m2 is None or m2.get("fallback"):
            r["stratum_model"] = None if m2 is None else "fallback"
        else:
            r["stratum_model"] = (f"pi1 {m2['pi'][1]:.3f} mu {m2['mean'][0]:+.2f}/{m2['mean'][1]:+.2f} "
                                  f"sd {m2['sd'][0]:.2f}/{m2['sd'][1]:.2f}")
        if name == "current":
            both = np.isfinite(p) & np.isfinite(d["prob"])
            r["max_diff_vs_store"] = float(np.max(np.abs(p[both] - d["prob"][both]), initial=0.0))
        if scene is not None:
            r["classes"] = truth_classes(dv, scene, ch)
        out[name] = r
    return out


def main(argv=None) -> int:
    a = EO.stored_runs_args(__doc__, VARIANTS, argv)
    f = EO._f
    hard = {}
    for s in a.seeds:
        store, scene = EO.hard_store(a, s)
        hard[s] = run_store(store, a.variants, lambda d, p, ch, e, sc=scene: EO.score_hard(d, p, ch, e, sc), scene)
        for v in a.variants:
            r = hard[s][v]
            extra = f", current vs stored {r['max_diff_vs_store']:.2g}" if v == "current" else ""
            print(f"hard seed {s} {v}: elevated F1 {f(r['elevated_f1'])}, ground FA {f(r['ground_fa'])}, stratum "
                  f"{r['stratum_cells']} cells ({r['stratum_model']}){extra}")
            for k, (n, fl, med) in r["classes"].items():
                what = k if k.startswith("changed") else f"unchanged ground {k}"
                print(f"    {what}: {n} cells, flagged {fl:.3f}, median log R {med:+.2f}")
    km = {}
    for t in a.targets:
        store = a.km / f"km_post{t}.zarr"
        if store.exists():
            km[t] = run_store(store, a.variants, lambda d, p, ch, e: EO.score_km(d, p, ch))
    print()
    for v in a.variants:
        print(f"== {v}")
        if hard:
            rows = [hard[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            print(f"  hard elevated F1 per seed {', '.join(f(x) for x in f1)} (mean {f(float(np.mean(f1)))}); "
                  f"score AUC {', '.join(f(r['auc']) for r in rows)}; ground false alarms "
                  f"{', '.join(f(r['ground_fa']) for r in rows)}")
        for t, r in km.items():
            r = r[v]
            print(f"  Kahramanmaras img{t}: F1 {f(r['f1'], 4)}, AUC {f(r['auc'], 4)}, flagged {f(r['flagged'])}, "
                  f"objects {r['objects']}, stratum {r['stratum_cells']} cells ({r['stratum_model']})"
                  + (f" (current vs stored {r['max_diff_vs_store']:.2g})" if v == "current" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
