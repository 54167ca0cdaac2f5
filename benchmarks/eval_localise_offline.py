"""Evaluation: two-scale (localised) evidence for ground cells, screened offline on stored runs (issue 7, H2).

The 41-cell census window carries a new building's evidence half a window onto the unchanged
ground beside it (docs/change_detection.md, "One image per date"). These variants keep the window's
ratio ``R`` as the witness of "something changed near here" and let a smaller window ``R_w`` (the
same codes, offsets and ground-pair rule, :func:`offnadir.change.cells.stratum_evidence`) decide
which cells of that neighbourhood changed. Only **ground** cells change; elevated cells keep the
current evidence. Each variant is calibrated and scored exactly as
``benchmarks/eval_evidence_offline.py`` does (its functions are reused):

* ``current``: the pipeline's wide-window evidence without the localisation (it reproduced the
  stored probability before ``localise.py``; ``lrgb11`` is the pipeline's rule since), calibrated
  as the pipeline does (:func:`offnadir.change.cells.calibration_model`: the ground stratum censored);
* ``acquitW`` (W = 7, 11, 15, 21): ``sqrt(R min(R, R_W))``: the small window may only *lower*
  the evidence (acquit a cell whose own neighbourhood agrees), never raise it: its wide null then
  cannot create a false alarm where the wide window agrees;
* ``gmW``: ``sqrt(R R_W)`` everywhere (the rejected two-scale mean, for reference);
* ``gateW``: ``sqrt(R R_W)`` only where the wide window's calibrated probability is above zero
  (above the null mean, where :func:`offnadir.change.calibrate.probability` starts), ``R`` elsewhere.

Prints, per variant, what ``eval_evidence_offline.py`` prints plus the hard simulator's misses of
new buildings and all misses, and the ground false alarms (cells) within and beyond 5 m of a change.

    python benchmarks/eval_localise_offline.py --hard /tmp/h2/hard --km /tmp/h2/km [--variants ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_decision_offline as DO  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402

from offnadir.change import calibrate as C  # noqa: E402
from offnadir.change import cells as P  # noqa: E402

WINDOWS = (7, 11, 15, 21)
VARIANTS = ("current",) + tuple(f"{k}{w}" for k in ("acquit", "gm", "gate", "lr", "lrg", "lrga", "lrm", "lrgl", "lrgb") for w in WINDOWS)


def small_window(d, inp, w, cache):
    if w not in cache:
        a, b = inp["inten"]
        cache[w] = P.stratum_evidence(a, b, *inp["ok"], d["elev"], w, inp["offsets"], inp["sigmas"],
                                      compare=inp["same_sun"])
    return cache[w]


def coarse_probability(e, d):
    p = np.full(e.shape, np.nan)
    for s, m in ((1, d["elev"]), (0, ~d["elev"])):
        model = P.calibration_model(("evidence", 1, s), C.histogram(P.ratio_evidence(e), m))
        p[m] = C.probability(P.ratio_evidence(e[m]), model)
    return p


def log_lr(model):
    """Per bin: log of the fine evidence's likelihood ratio changed / unchanged from a
    :func:`offnadir.change.calibrate.fit` mixture (the changed density held at its peak beyond its
    mean, as the calibration does; 0 below the null mean and made non-decreasing); None: no mixture."""
    if model.get("fallback"):
        return None
    z = C.centres()
    mu, sd = model["mean"], model["sd"]
    n0 = C._normal(z, mu[0], sd[0])
    n1 = np.where(z > mu[1], C._normal(mu[1], mu[1], sd[1]), C._normal(z, mu[1], sd[1]))
    llr = np.log(np.maximum(n1, 1e-300)) - np.log(np.maximum(n0, 1e-300))
    llr = np.clip(llr, -20.0, 20.0)
    return np.maximum.accumulate(llr)


def ground_shift(name, d, inp, cache, current):
    """Per-cell log-odds added to the ground cells' calibrated probability (None: no change)."""
    if not name.startswith("lr"):
        return None
    kind = name.rstrip("0123456789")
    w = int(name[len(kind):])
    small = small_window(d, inp, w, cache)
    g = ~d["elev"]
    fit_on = g
    if kind == "lrgl":  # the fine mixture fitted on the neighbourhoods the coarse evidence calls change-like
        m = P.calibration_model(("evidence", 1, 0), C.histogram(P.ratio_evidence(current), g))
        if m.get("fallback"):
            return np.zeros(small.shape)
        with np.errstate(invalid="ignore"):
            fit_on = g & (C.probability(P.ratio_evidence(current), m) > m["pi"][1])
        kind = "lrga"
    fm = C.fit(C.histogram(P.ratio_evidence(small), fit_on), anchor=P.ANCHOR["evidence"])
    if name.startswith("lrgl"):
        print(name, "fine model on the gated cells", {k: fm.get(k) for k in ("pi", "mean", "sd", "fallback", "n")})
    tab = log_lr(fm)
    if tab is None:
        return np.zeros(small.shape)
    out = np.interp(C.to_z(P.ratio_evidence(small)), C.centres(), tab)
    out[~np.isfinite(small) | d["elev"]] = 0.0
    if kind == "lrgb":  # and the fine evidence alone (its own prior) says change
        fine_says = out >= np.log(fm["pi"][0] / fm["pi"][1])
    if kind in ("lrg", "lrga", "lrgb"):  # the coarse evidence favours change: its posterior above its prior
        m = P.calibration_model(("evidence", 1, 0), C.histogram(P.ratio_evidence(current), g))
        pc = C.probability(P.ratio_evidence(current), m)
        prior = m["pi"][1] if not m.get("fallback") else 0.5
        with np.errstate(invalid="ignore"):
            like = pc > prior
        if kind == "lrgb":
            like = like & fine_says
        out = np.where(like, out, np.minimum(out, 0.0) if kind in ("lrga", "lrgb") else 0.0)
    if kind == "lrm":  # only above the coarse null's centre (the typical unchanged cell)
        m = P.calibration_model(("evidence", 1, 0), C.histogram(P.ratio_evidence(current), g))
        centre = m["null_median"] if m.get("fallback") else m["mean"][0]
        with np.errstate(invalid="ignore"):
            like = C.to_z(P.ratio_evidence(current)) > centre
        out = np.where(like, out, np.minimum(out, 0.0))
    return out


def variant(name, d, inp, current, cache):
    if name == "current" or name.startswith("lr"):
        return current
    kind, w = name.rstrip("0123456789"), int(name[len(name.rstrip("0123456789")):])
    small = small_window(d, inp, w, cache)
    with np.errstate(invalid="ignore"):
        if kind == "acquit":
            comb = np.sqrt(current * np.fmin(current, small))
        elif kind == "gm":
            comb = np.sqrt(current * small)
        elif kind == "gate":
            p0 = coarse_probability(current, d)
            comb = np.where(p0 > 0, np.sqrt(current * small), current)
        else:
            raise SystemExit(f"unknown variant {name!r}")
    return np.where(~d["elev"] & np.isfinite(comb), comb, current)


def miss_breakdown(d, ch, scene: Path) -> dict:
    from scipy.ndimage import distance_transform_edt

    cls = EO._read(scene / "truth_change_class.tif")
    ref = EO._read(scene / "truth_structural.tif")
    occ = EO._read(scene / "truth_occluded.tif")
    t = d["t"]
    cells = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (occ == 0)
    scored = cells & (ref != 255) & (ch != 2)
    changed = np.isin(ref, (1, 2))
    flag = ch == 1
    miss = scored & changed & ~flag
    near = distance_transform_edt(cls == 0) * d["cell"] <= 5.0
    telev = EO._read(scene / "truth_elevated.tif") == 1
    fa = scored & (ref == 0) & flag
    return dict(miss_new=int((miss & (cls == 1)).sum()), miss_all=int(miss.sum()),
                fa_ground_near=int((fa & ~telev & near).sum()), fa_ground_far=int((fa & ~telev & ~near).sum()),
                fa_elev=int((fa & telev).sum()))


def decide(d, gone, shift=None):
    """:func:`eval_decision_offline.decide` (variant ``current``) with ``shift`` (log-odds per cell)
    added to the calibrated census probability before the rim witness, the patch criteria and the
    roofs whose shadow went."""
    from scipy.special import expit, logit

    e, el = d["ev"], d["elev"]
    p = np.full(e.shape, np.nan)
    for s, m in ((1, el), (0, ~el)):
        p[m] = C.probability(P.ratio_evidence(e[m]),
                             P.calibration_model(("evidence", 1, s), C.histogram(P.ratio_evidence(e), m)))
    if shift is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            q = expit(logit(p) + shift)
        p = np.where(np.isfinite(q), q, p)
    return DO.finish(d, p, DO.rim_kept(d), d["score"], gone)


def run_store(store, names, scorer):
    """Every variant's evidence decided as the maps pass does (:func:`eval_decision_offline.decide`:
    calibration, rim witness, patch criteria, roofs whose shadow went)."""
    d = EO.load_store(store)
    inp = EO.inputs(d)
    dd = DO.load(store)
    current = P.stratum_evidence(inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], d["elev"],
                                 inp["window"], inp["offsets"], inp["sigmas"], compare=inp["same_sun"])
    p0, _ = DO.decide(dd, "current")
    with np.errstate(invalid="ignore"):
        gone = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    cache, out = {}, {}
    for name in names:
        e = variant(name, d, inp, current, cache)
        shift = ground_shift(name, d, inp, cache, current)
        p, ch = decide(dict(dd, ev=e), gone, shift)
        r = scorer(d, p, ch, e)
        if name == "current":
            both = np.isfinite(p) & np.isfinite(d["prob"])
            r["max_diff_vs_store"] = float(np.max(np.abs(p[both] - d["prob"][both]), initial=0.0))
        out[name] = r
    return out


def main(argv=None) -> int:
    a = EO.stored_runs_args(__doc__, VARIANTS, argv)
    f = EO._f
    hard = {}
    for s in a.seeds:
        store, scene = EO.hard_store(a, s)

        def scorer(d, p, ch, e, sc=scene):
            r = EO.score_hard(d, p, ch, e, sc)
            r.update(miss_breakdown(d, ch, sc))
            return r

        hard[s] = run_store(store, a.variants, scorer)
        if "current" in hard[s]:
            print(f"hard seed {s}: current vs stored probability, largest difference "
                  f"{hard[s]['current']['max_diff_vs_store']:.2g}", flush=True)
    km = {}
    for t in a.targets:
        store = a.km / f"km_post{t}.zarr"
        if not store.exists():
            continue
        km[t] = run_store(store, a.variants, lambda d, p, ch, e: EO.score_km(d, p, ch))
        if "current" in km[t]:
            print(f"Kahramanmaras img{t}: current vs stored, largest difference "
                  f"{km[t]['current']['max_diff_vs_store']:.2g}", flush=True)
    print()
    for v in a.variants:
        print(f"== {v}")
        if hard:
            rows = [hard[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            print(f"  hard elevated F1 {', '.join(f(x) for x in f1)} (mean {f(float(np.mean(f1)))}); AUC "
                  f"{', '.join(f(r['auc']) for r in rows)} (mean {f(float(np.mean([r['auc'] for r in rows])))})")
            print(f"  hard all-cells F1 {', '.join(f(r['f1']) for r in rows)} (mean {f(float(np.mean([r['f1'] for r in rows])))})")
            print(f"  hard ground FA rate {', '.join(f(r['ground_fa']) for r in rows)}; misses new "
                  f"{sum(r['miss_new'] for r in rows)}, all {sum(r['miss_all'] for r in rows)}; FA cells ground "
                  f"near {sum(r['fa_ground_near'] for r in rows)}, far {sum(r['fa_ground_far'] for r in rows)}, "
                  f"elevated {sum(r['fa_elev'] for r in rows)}")
        for t, r in ((t, km[t][v]) for t in km):
            print(f"  Kahramanmaras img{t}: F1 {f(r['f1'], 4)}, AUC {f(r['auc'], 4)}, flagged {f(r['flagged'])}, "
                  f"objects {r['objects']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
