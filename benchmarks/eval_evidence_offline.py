"""Evaluation: structural-evidence variants recomputed from existing stores, calibrated the pipeline's
way and scored, in seconds instead of a detect run per variant (issue 7, one image per date).

One image per date (stores without ``dh``; with a same-date pair the roofs' evidence also depends
on where ``dh`` was measured, :func:`offnadir.change.cells.evidence_tile`). Reads the stores that
``benchmarks/eval_hard_sim.py`` (``--work``: ``hardN/`` scenes and
``hardN.zarr``) and ``benchmarks/eval_change_real.py`` (``--workdir``: ``km_post1.zarr``,
``km_post2.zarr``) leave behind. For every store and variant it recomputes the per-cell evidence
``R`` from the store's cube (``value``, ``visible``, ``elevated``, ``dsm``, ``illumination``) with
the run's own recorded choices (noise sigmas, window, evidence height: attribute
``change_calibration``), then calibrates it as :mod:`offnadir.change.runner` does (one mixture per
stratum, :func:`offnadir.change.calibrate.fit` with the anchor ``R = 1``; the stored patch
criteria or-ed in with :func:`offnadir.change.cells.either`), and scores:

* hard simulator: elevated F1 (structural truth, ``truth_elevated``, decided cells), score AUC and
  F1 on all decided cells, ground false-alarm rate, and two diagnostics: the cell AUC of the raw
  evidence per stratum (store's ``elevated`` / not), and **the best elevated F1 any single
  threshold on the calibrated probability could give** (an upper bound for the calibration: when it
  is far below the target, the evidence, not the calibration, is the limit);
* Kahramanmaraş: F1, score AUC, flagged share, objects found, as ``offnadir evaluate`` does.

The variant ``current`` must reproduce the stored probability (the largest difference is
printed): that is the check that this harness is the pipeline.

Variants (what each changes for **elevated** cells; ground cells keep the current evidence):

* ``current``: :func:`offnadir.change.cells.stratum_evidence` as it is (window census ratio ``R``;
  on elevated cells its geometric mean with the sign-reversal ratio, :mod:`offnadir.change.reversal`);
* ``census_only``: elevated cells take the window census ratio ``R`` alone (the evidence before the
  sign-reversal ratio);
* ``reversal_everywhere``: ground cells too take the geometric mean with the sign-reversal ratio
  (what keeping it to roofs is measured against);
* ``radius2``: the census at neighbour distance 2 (coarser structure survives re-texturing);
* ``roof_codes``: the window's code pairs restricted to elevated cells (interior of roofs only);
* ``outline_pairs``: restricted to the code pairs that cross the elevated outline (one cell on a
  roof, the other not): the roof's edges at the DSM's predicted place;
* ``outline_cosine``: one value per roof (elevated patch): the cosine of the base and target
  contrasts ``x(outside) - x(inside)`` over the pixel pairs crossing the roof's *own* outline (no
  dead band, so a contrast of either sign that keeps its sign agrees), the largest over the
  evidence's parallax offsets; ``R_roof = 1 - cos`` (1: unrelated, 0: same outline), combined
  with the cell's ``current`` evidence as their geometric mean.

* ``ground_min21``, ``ground_gm21``, ``ground_gm11`` (**ground** cells; elevated cells keep the
  current evidence): the smaller of, or the geometric mean with, the same evidence over a window of
  21 (11) cells: a changed object's window evidence reaches half a window (20 cells) around it, so
  on the hard simulator half of the ground stratum's changed mode is unchanged ground beside a new
  building; a smaller window bleeds less far but is noisier.

The other roof variants replace the elevated cells' ``current`` evidence (with the sign-reversal
ratio) by theirs.

    python benchmarks/eval_evidence_offline.py [--hard /tmp/eval_hard_sim] [--seeds 0 1 2 3 4 5]
                                               [--km /tmp/eval_change_real] [--variants ...]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

from offnadir.change import calibrate as C
from offnadir.change import cells as P
from offnadir.change import sun_pairs as SP
from offnadir.change import census as K
from offnadir.change import census_codes as CW
from offnadir.change import evidence as EV
from offnadir.change import reference as REF

KM_REF = Path("/work/shared/data/real/picanteo/derived/cars_1.3.0/reference_change.tif")
VARIANTS = ("current", "census_only", "reversal_everywhere", "radius2", "roof_codes", "outline_pairs", "outline_cosine",
            "ground_min21", "ground_gm21", "ground_gm11")


def _read(path):
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def load_store(store, t: int = 1) -> dict:
    """The arrays of target ``t`` of a change store that the evidence and its calibration use."""
    import xarray as xr

    ds = xr.open_zarr(store, mask_and_scale=False)
    ps = ds["patch_score"]
    score = np.asarray(ps.values, np.float64)
    score = score[t] if ps.dims[0] == "image" else score[:, t]
    return dict(vis=np.asarray(ds["visible"].values), val=np.asarray(ds["value"].values, np.float64),
                elev=np.asarray(ds["elevated"].values) == 1, dsm=np.asarray(ds["dsm"].values, np.float64),
                ill=np.asarray(ds["illumination"].values) if "illumination" in ds else None,
                prob=np.asarray(ds["probability"].values[t], np.float64), patch=np.asarray(ds["patch"].values),
                patch_ids=np.asarray(ds["patch_id"].values), patch_score=np.nan_to_num(score),
                az=np.asarray(ds["azimuth"].values, np.float64), off=np.asarray(ds["off_nadir"].values, np.float64),
                cal=json.loads(ds.attrs["change_calibration"]), t=t,
                cell=float(abs(ds.attrs["spatial:transform"][0])))


def inputs(d) -> dict:
    """Intensities, observability, noise sigmas, same-sun mask, window and parallax offsets of the run."""
    t = d["t"]
    inten = [EV.intensity(d["val"][k]) for k in (0, t)]
    ok = [(d["vis"][k] == 1) & np.isfinite(inten[i]) for i, k in enumerate((0, t))]
    sig = d["cal"]["noise_sigma"]
    offs = EV.relative_offsets(d["az"][0], d["off"][0], d["az"][t], d["off"][t],
                               d["cal"]["evidence_height_m"][str(t)], d["cell"])
    return dict(inten=inten, ok=ok, sigmas=(sig[0], sig[t]), same_sun=SP.same_sun(d["ill"], t) if d["ill"] is not None
                else None, window=int(d["cal"]["window_cells"]), offsets=offs)


def _and(a, b):
    return b if a is None else (a & b)


def census_evidence(inp, compare=None, radius: int = 1, pairs=None):
    """Window census ratio (min over the offsets) with codes of ``compare`` cells only, at neighbour
    distance ``radius``; ``pairs``: (8, y, x) bool, the code pairs allowed (default all)."""
    a, b = inp["inten"]
    oa, ob = inp["ok"]
    cm = np.ones(a.shape, bool) if compare is None else compare
    ca, va = EV.census(a, oa & cm, inp["sigmas"][0], radius)
    cb, vb = EV.census(b, ob & cm, inp["sigmas"][1], radius)
    if pairs is not None:
        va, vb = va & pairs, vb & pairs
    e = K.min_census_ratio(CW.pack(ca, va), CW.pack(cb, vb), inp["offsets"], inp["window"], None)
    e[~(oa & ob)] = np.nan
    return e


def crossing_pairs(mask, radius: int = 1):
    """(8, y, x): the census pairs whose two cells lie on either side of ``mask``'s boundary."""
    codes, _ = EV.census(mask.astype(np.float64), np.ones(mask.shape, bool), 0.0, radius)
    return codes != 0


def roof_outline_cosine(d, inp, labels):
    """Per label (> 0): cosine of the base and target contrasts (outside - inside) over the pixel
    pairs from a cell of the label to a non-elevated neighbour, the largest over the parallax
    offsets (the target shifted as in the census evidence); NaN with fewer than 8 pairs."""
    a, b = inp["inten"]
    oa, ob = inp["ok"]
    el = d["elev"]
    cm = np.ones(el.shape, bool) if inp["same_sun"] is None else inp["same_sun"]
    xa = np.where(oa & cm, a, np.nan)
    xb = np.where(ob & cm, b, np.nan)
    nl = int(labels.max()) + 1
    best = np.full(nl, np.nan)
    for di, dj in inp["offsets"]:
        xbs = EV.shift(xb, di, dj, np.nan)
        s = np.zeros((4, nl))
        for ni, nj in EV._NEIGH:
            da = EV.shift(xa, ni, nj, np.nan) - xa
            db = EV.shift(xbs, ni, nj, np.nan) - xbs
            m = (labels > 0) & ~EV.shift(el, ni, nj, True) & np.isfinite(da) & np.isfinite(db)
            lab = labels[m]
            for k, w in enumerate((np.ones(lab.size), da[m] * db[m], da[m] ** 2, db[m] ** 2)):
                s[k] += np.bincount(lab, weights=w, minlength=nl)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(s[0] >= 8, s[1] / np.sqrt(s[2] * s[3]), np.nan)
        best = np.fmax(best, c)
    best[0] = np.nan
    return best


def variant(name, d, inp, current):
    el = d["elev"]
    if name == "current":
        return current
    if name == "census_only":
        roof = census_evidence(inp, inp["same_sun"])
    elif name == "reversal_everywhere":
        a, b = inp["inten"]
        _, rev = EV.structural_evidence(a, b, *inp["ok"], inp["window"], inp["offsets"], inp["sigmas"],
                                        compare=inp["same_sun"], reversal=True)
        return EV.roof_evidence(current, rev)
    elif name == "radius2":
        roof = census_evidence(inp, inp["same_sun"], 2)
    elif name == "roof_codes":
        roof = census_evidence(inp, _and(inp["same_sun"], el))
    elif name == "outline_pairs":
        roof = census_evidence(inp, inp["same_sun"], pairs=crossing_pairs(el))
    elif name.startswith("ground_"):  # a smaller window localises a change (its evidence bleeds less far)
        w = int(name[-2:])
        a, b = inp["inten"]
        small = P.stratum_evidence(a, b, *inp["ok"], el, w, inp["offsets"], inp["sigmas"], compare=inp["same_sun"])
        comb = np.fmin(current, small) if name.startswith("ground_min") else np.sqrt(current * small)
        return np.where(~el, comb, current)
    elif name == "outline_cosine":
        ids, lab = np.unique(np.where(el, d["patch"], 0), return_inverse=True)
        lab = lab.reshape(el.shape) + (0 if ids[0] == 0 else 1)
        r_roof = (1.0 - roof_outline_cosine(d, inp, lab))[lab]
        roof = np.sqrt(np.maximum(r_roof, 1e-3) * current)
    else:
        raise SystemExit(f"unknown variant {name!r}: choose from {', '.join(VARIANTS)}")
    return np.where(el & np.isfinite(roof), roof, current)


def calibrated(e, d):
    """Probability and change (0/1/2) of evidence ``e`` as the maps pass makes them (without dh)."""
    t, el, vis = d["t"], d["elev"], d["vis"]
    p = np.full(e.shape, np.nan)
    for s, m in ((1, el), (0, ~el)):
        model = C.fit(C.histogram(P.ratio_evidence(e), m), anchor=P.ANCHOR["evidence"])
        p[m] = C.probability(P.ratio_evidence(e[m]), model)
    p = P.either(p, P.paint(d["patch"], d["patch_ids"], d["patch_score"]))
    obs = (vis[0] == 1) & (vis[t] == 1) & np.isfinite(p)
    ch = np.full(e.shape, 2, np.uint8)
    ch[obs] = p[obs] >= P.DECISION_P
    p[~obs] = np.nan
    return p, ch


def best_threshold_f1(truth, score) -> float:
    """Largest F1 of ``score >= thr`` over every threshold (exact: cumulative counts over the
    scores sorted from high to low, ties kept together)."""
    truth = np.asarray(truth, bool)
    score = np.asarray(score, np.float64)
    if not truth.any():
        return math.nan
    order = np.argsort(-score, kind="stable")
    s, y = score[order], truth[order]
    tp = np.cumsum(y)
    k = np.nonzero(np.r_[s[1:] != s[:-1], True])[0]  # last index of each run of equal scores
    flagged = k + 1
    return float(np.max(2.0 * tp[k] / (flagged + truth.sum())))


def score_hard(d, p, ch, e, scene: Path) -> dict:
    from offnadir.change.evaluate import metrics

    ref = _read(scene / "truth_structural.tif")
    occ = _read(scene / "truth_occluded.tif")
    telev = _read(scene / "truth_elevated.tif") == 1
    t = d["t"]
    cells = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (ref != REF.IGNORE) & (occ == 0)
    dec = cells & (ch != 2)
    truth = np.isin(ref, (1, 2))  # 1 loss, 2 gain
    pred = ch == 1
    el, gr = metrics(truth[dec & telev], pred[dec & telev]), metrics(truth[dec & ~telev], pred[dec & ~telev])
    hs = REF.height_scores(ref, ch, p, cells, d["cell"] ** 2)
    raw = {}
    for name, m in (("elevated", d["elev"]), ("ground", ~d["elev"])):
        sel = cells & m & np.isfinite(e)
        raw[name] = REF.auc(truth[sel], e[sel]) if truth[sel].any() and (~truth[sel]).any() else math.nan
    fin = dec & telev & np.isfinite(p)
    return dict(elevated_f1=el["f1"], elevated_best_f1=best_threshold_f1(truth[fin], p[fin]), f1=hs["f1"],
                auc=hs["auc"], ground_fa=gr["false_alarm_rate"], raw_auc_elevated=raw["elevated"],
                raw_auc_ground=raw["ground"])


def score_km(d, p, ch) -> dict:
    ref = _read(KM_REF)
    cells = (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1) & (ref != REF.IGNORE)
    hs = REF.height_scores(ref, ch, p, cells, d["cell"] ** 2)
    return dict(f1=hs["f1"], auc=hs["auc"], flagged=hs["flagged"], objects=hs["objects"].get("found"))


def run_store(store, names, scorer):
    d = load_store(store)
    inp = inputs(d)
    current = P.stratum_evidence(inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], d["elev"],
                                 inp["window"], inp["offsets"], inp["sigmas"], compare=inp["same_sun"])
    out = {}
    for name in names:
        e = variant(name, d, inp, current)
        p, ch = calibrated(e, d)
        r = scorer(d, p, ch, e)
        if name == "current":
            both = np.isfinite(p) & np.isfinite(d["prob"])
            r["max_diff_vs_store"] = float(np.max(np.abs(p[both] - d["prob"][both]), initial=0.0))
        out[name] = r
    return out


def _f(v, n=3):
    return "nan" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{n}f}"


def stored_runs_args(doc: str, variants, argv=None):
    """The command line of the offline evaluations (this one and eval_decision_offline.py): where
    the stored runs of eval_hard_sim.py / eval_change_real.py are, which seeds, targets, variants."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--hard", type=Path, default=Path("/tmp/eval_hard_sim"), help="eval_hard_sim.py --work")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path, default=Path("/tmp/eval_change_real"), help="eval_change_real.py --workdir")
    ap.add_argument("--targets", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--variants", nargs="+", default=list(variants), choices=variants)
    return ap.parse_args(argv)


def hard_store(a, s):
    """(store, scene) of hard seed ``s`` under ``a.hard``; exits with the command that makes it."""
    store, scene = a.hard / f"hard{s}.zarr", a.hard / f"hard{s}"
    if not store.exists():
        sys.exit(f"{store} not found: run `python benchmarks/eval_hard_sim.py --work {a.hard} --seeds {s}` first")
    return store, scene


def main(argv=None) -> int:
    a = stored_runs_args(__doc__, VARIANTS, argv)
    hard = {}
    for s in a.seeds:
        store, scene = hard_store(a, s)
        hard[s] = run_store(store, a.variants, lambda d, p, ch, e, sc=scene: score_hard(d, p, ch, e, sc))
        print(f"hard seed {s}: current vs stored probability, largest difference "
              f"{hard[s]['current']['max_diff_vs_store']:.2g}")
    km = {}
    for t in a.targets:
        store = a.km / f"km_post{t}.zarr"
        if not store.exists():
            sys.exit(f"{store} not found: run `python benchmarks/eval_change_real.py --workdir {a.km}` first")
        km[t] = run_store(store, a.variants, lambda d, p, ch, e: score_km(d, p, ch))
        print(f"Kahramanmaras post_event_img{t}: current vs stored probability, largest difference "
              f"{km[t]['current']['max_diff_vs_store']:.2g}")
    print()
    for v in a.variants:
        print(f"== {v}")
        if hard:
            rows = [hard[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            print(f"  hard elevated F1 per seed {', '.join(_f(x) for x in f1)} (mean {_f(float(np.mean(f1)))}); "
                  f"best single threshold {', '.join(_f(r['elevated_best_f1']) for r in rows)}")
            print(f"  hard score AUC {', '.join(_f(r['auc']) for r in rows)}; ground false alarms "
                  f"{', '.join(_f(r['ground_fa']) for r in rows)}")
            print(f"  hard raw evidence cell AUC, elevated {', '.join(_f(r['raw_auc_elevated']) for r in rows)}; "
                  f"ground {', '.join(_f(r['raw_auc_ground']) for r in rows)}")
        for t in a.targets:
            r = km[t][v]
            print(f"  Kahramanmaras img{t}: F1 {_f(r['f1'])}, AUC {_f(r['auc'])}, flagged {_f(r['flagged'])}, "
                  f"objects {r['objects']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
