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
                                         [--variants current raise both up perp ...]

``--hard``: ``benchmarks/eval_hard_sim.py --work DIR [--size N]``; ``--km``:
``benchmarks/eval_change_real.py --workdir DIR``. ``current`` reproduces the stored probability
(largest difference printed).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.special import expit, logit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as ED  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402

from offnadir.change import calibrate as C  # noqa: E402
from offnadir.change import cells as P  # noqa: E402
from offnadir.change import evidence as EV  # noqa: E402
from offnadir.change import localise as L  # noqa: E402
from offnadir.change import longer_shadow as LS  # noqa: E402
from offnadir.change import shadow_observed as SO  # noqa: E402

VARIANTS = {
    "current": "the maps pass as it is",
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
}
BINS = 10
MIN_CHANGED = 100


def load(store, t=1):
    import xarray as xr

    d = ED.load(store, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        val = np.asarray(ds["value"].values, np.float64)
        d["target"] = EV.intensity(val[t])
        d["ill"] = np.asarray(ds["illumination"].values[t])
        d["dsm"] = np.asarray(ds["dsm"].values, np.float64)
        d["sun"] = json.loads(ds.attrs["change_sun"])[t]
        d["cal"] = json.loads(ds.attrs["change_calibration"])
    d["ok_t"] = (d["vis"][t] == 1) & np.isfinite(d["target"])
    return d


def shift(a, di, dj):
    """out[i, j] = a[i + di, j + dj] (0 outside)."""
    out = np.zeros_like(a)
    ny, nx = a.shape
    i0, i1, j0, j1 = max(0, di), min(ny, ny + di), max(0, dj), min(nx, nx + dj)
    out[i0 - di:i1 - di, j0 - dj:j1 - dj] = a[i0:i1, j0:j1]
    return out


def ray_share(m, az, k_cells):
    """Share of ``m`` over the cells ``c + k (cos az, -sin az)``, k = 1..K (rows south, ``az`` the
    sun's grid azimuth: the ray points away from the sun)."""
    di, dj = math.cos(az), -math.sin(az)
    acc = np.zeros(m.shape)
    for k in range(1, k_cells + 1):
        acc += shift(m.astype(np.float64), int(math.floor(k * di + 0.5)), int(math.floor(k * dj + 0.5)))
    return acc / k_cells


def typical_height(d):
    """Median height of the old DSM's elevated cells above the minimum of the DSM over the census window."""
    win = int(d["cal"]["window_cells"])
    floor = ndi.minimum_filter(np.where(np.isfinite(d["dsm"]), d["dsm"], np.inf), size=win)
    rel = (d["dsm"] - floor)[d["elev"] & np.isfinite(d["dsm"])]
    return float(np.median(rel)) if rel.size else math.nan


def shadow_ray(d, name):
    """(S, info): the ray share of unexplained seen shadows, or (None, info) where the rule is off."""
    sun = d["sun"]
    rec = sun.get("shadow_classifier")
    clf = SO.ShadowClassifier.from_report(rec) if rec else None
    info = dict(accuracy_shadow=None if clf is None else round(clf.accuracy_shadow, 3))
    if clf is None or (clf.accuracy_shadow < LS.SHADOW_WITNESS and "nowitness" not in name):
        return None, dict(info, off="no witness")
    az = math.radians(sun["azimuth"] + sun["grid_north_deg"])
    el = math.radians(sun["elevation"])
    lo = SO.log_odds(d["target"], d["ok_t"], clf)
    lit = (d["ill"] > 0) & (d["ill"] < 255)
    U = (np.nan_to_num(lo, nan=-1.0) >= 0) & lit & ~d["elev"] & d["ok_t"]
    h = float(d["cal"]["evidence_height_m"][str(d["t"])]) if "evh" in name else typical_height(d)
    k = int(min(max(2, math.ceil(h / math.tan(max(el, 0.05)) / d["cell"])), 4 * int(d["cal"]["window_cells"])))
    if name.startswith("up"):
        az += math.pi
    elif name.startswith("perp"):
        az += math.pi / 2
    S = ray_share(U, az, k)
    if "elig" in name:
        n = ray_share(lit & ~d["elev"] & d["ok_t"], az, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            S = np.where(n > 0, S / np.where(n > 0, n, 1.0), 0.0)
    return S, dict(info, height_m=round(h, 2), K=k, U_cells=int(U.sum()))


def pav_up(y, w):
    """Weighted least-squares non-decreasing fit."""
    blocks = []
    for yi, wi in zip(map(float, y), map(float, w)):
        blocks.append([yi * wi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, wt, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += wt
            blocks[-1][2] += n
    return np.array([s / wt for s, wt, n in blocks for _ in range(n)])


def decide(d, name):
    """Probability and change (0/1/2) of one stored run under variant ``name``, and what the rule did."""
    e, el = d["ev"], d["elev"]
    p = np.full(e.shape, np.nan)
    models = {}
    for s, m in ((1, el), (0, ~el)):
        models[s] = ED.refit(C.histogram(P.ratio_evidence(e), m), s)
        p[m] = C.probability(P.ratio_evidence(e[m]), models[s])
    g = ~el
    if d.get("fine") is not None:
        fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"])
        p[g] = L.localise(p[g], d["fine"][g], models[0], fm)
    info = {}
    if name != "current":
        S, info = shadow_ray(d, name)
        if S is not None:
            obs = g & np.isfinite(p) & (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1)
            chg, unc = obs & (p >= 0.5), obs & (p < 0.5)
            info["ground_changed"] = int(chg.sum())
            if chg.sum() >= MIN_CHANGED:
                b = np.clip(np.searchsorted(np.linspace(0, 1, BINS + 1)[1:-1], S, side="right"), 0, BINS - 1)
                fc = np.bincount(b[chg], minlength=BINS) + 0.5
                fu = np.bincount(b[unc], minlength=BINS) + 0.5
                llr = pav_up(np.log(fc / fc.sum()) - np.log(fu / fu.sum()), fc + fu)
                if not name.startswith("both"):
                    llr = llr - llr[0]
                info["log_lr"] = np.round(llr, 2).tolist()
                add = np.where(g, llr[b], 0.0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    q = expit(logit(np.clip(p, 0, 1)) + add)
                p = np.where(g & np.isfinite(q) & (add != 0), q, p)
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
        if n == "current":
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
    ap.add_argument("--variants", nargs="+", default=["current", "raise", "both"], choices=list(VARIANTS))
    a = ap.parse_args(argv)
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
