"""Evaluation: variants of the calibration and of the patch decisions applied to the evidence and the
patch table *stored* by existing runs (one image per date), scored in seconds (issue 7, H6).

Where ``benchmarks/eval_evidence_offline.py`` recomputes the evidence, this harness keeps the stored
``evidence`` and the stored per-patch table and changes what comes after them: the mixture
calibration of each stratum (:func:`offnadir.change.calibrate.fit`), the rim rules
(:func:`offnadir.change.criteria.rim_kept`, ``rim_contradicts``) and the ``outline`` test. The
``current`` variant must reproduce the stored probability (largest difference printed), missing
shadows included (a roof decided gone has its cells at ``max(p, 1/2)``: those cells are found as the
stored probability 1/2 over a recomputed one below it, and kept for every variant).

Reads the stores of ``benchmarks/eval_hard_sim.py --work DIR`` (``hardN.zarr``, scenes ``hardN/``)
and ``benchmarks/eval_change_real.py --workdir DIR`` (``km_post1.zarr``, ``km_post2.zarr``).

Variants:

* ``current``: as the maps pass does it;
* ``gaussian_tail_ground`` / ``gaussian_tail_all``: the changed component's Gaussian tail beyond its
  mean (before the calibration held it at its peak there), in the ground stratum / in both;
* ``sd_null_ground`` / ``sd_null_all``: the changed component no narrower than the null;
* ``no_rim_witness``: without the rim witness (what it buys; the parallax veto is in the stored
  structural scores and stays);
* ``rim_ratio``: the ``outline`` test also fires where the rim's contrast fell by a factor 4 between
  the dates (``log2(b1 / t1) / 2`` as its value, with ``b1 >= 1`` and ``t1 <= 1``).
* ``uncensored_ground``: the ground stratum fitted as before the censored calibration (every bin
  by its shape, the changed density held at its peak beyond its mean); ``plateau_ground``: censored,
  with that plateau;
* ``censor_all``: the elevated stratum censored below its median too; ``censor_ground_local`` /
  ``censor_all_local``: and the fine window's mixture (``localise``) censored as well.

    python benchmarks/eval_decision_offline.py [--hard /tmp/eval_hard_sim] [--km /tmp/eval_change_real]
                                               [--seeds 0 1 2 3 4 5] [--variants ...]
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from offnadir.change import calibrate as C
from offnadir.change import cells as P
from offnadir.change import criteria as CR
from offnadir.change import outline as OL

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_evidence_offline as EO  # noqa: E402

VARIANTS = ("current", "gaussian_tail_ground", "gaussian_tail_all", "sd_null_ground", "sd_null_all", "no_rim_witness",
            "rim_ratio", "uncensored_ground", "plateau_ground", "censor_all", "censor_ground_local", "censor_all_local")


def _col(ds, name, t):
    a = np.asarray(ds[name].values, np.float64)
    return a[t] if ds[name].dims[0] == "image" else a[:, t]


def load(store, t: int = 1) -> dict:
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        d = dict(ev=np.asarray(ds["evidence"].values[t], np.float64), vis=np.asarray(ds["visible"].values),
                 elev=np.asarray(ds["elevated"].values) == 1, prob=np.asarray(ds["probability"].values[t], np.float64),
                 patch=np.asarray(ds["patch"].values), ids=np.asarray(ds["patch_id"].values), t=t,
                 cell=float(abs(ds.attrs["spatial:transform"][0])))
        # the ground cells' fine-window evidence (offnadir.change.localise), in stores that have it
        d["fine"] = np.asarray(ds["evidence_local"].values[t], np.float64) if "evidence_local" in ds else None
        for k in ("spectral", "structural", "outline"):
            d[k] = np.nan_to_num(_col(ds, f"patch_{k}_score", t))
        d["score"] = np.nan_to_num(_col(ds, "patch_score", t))
        d["b1"], d["t1"] = _col(ds, "patch_rim_base", t), _col(ds, "patch_rim_target", t)
        d["shift"] = _col(ds, "patch_shift", t) / d["cell"]  # stored in metres
        d["pelev"] = np.asarray(ds["patch_elevated"].values).astype(bool)
    return d


def refit(counts, stratum, plateau=None, sd_null=False, censor="pipeline"):
    """:func:`offnadir.change.calibrate.fit` of the census evidence's ``stratum`` (1 elevated, 0
    ground) with the pipeline's options (:data:`offnadir.change.cells.FIT`) unless given: the
    changed density held at its peak beyond its mean (``plateau``) or not; ``censor``: the quantile
    below which the fit sees the cells by their number only (None: not censored); and the changed
    component's sigma at least the null's (``sd_null``; mixtures only, a fallback stays as it is)."""
    opts = dict(P.FIT.get(("evidence", stratum), {}))
    if plateau is not None:
        opts["plateau"] = plateau
    if censor != "pipeline":
        opts["censor"] = censor
    m = C.fit(counts, anchor=P.ANCHOR["evidence"], **opts)
    plateau = opts.get("plateau", True)
    if m.get("fallback") or not sd_null:
        return m
    z = C.centres()
    pi, mu, sd = np.array(m["pi"]), np.array(m["mean"]), np.array(m["sd"])
    if sd_null:
        sd[1] = max(sd[1], sd[0])
    d0 = pi[0] * C._normal(z, mu[0], sd[0])
    n1 = C._normal(z, mu[1], sd[1])
    if plateau:
        n1 = np.where(z > mu[1], C._normal(mu[1], mu[1], sd[1]), n1)
    p = pi[1] * n1 / np.maximum(d0 + pi[1] * n1, 1e-300)
    left = z < mu[0]
    p[left] = np.minimum(p[left], np.interp(mu[0], z, p))
    return dict(m, table=np.maximum.accumulate(np.clip(p, 0.0, 1.0)).tolist())


#: the censoring variants: per fit (elevated / ground stratum, the fine window's "local"), the
#: quantile below which the mixture sees the cells by their number only (calibrate.fit(censor=);
#: None: not censored); the others keep the pipeline's (cells.FIT: the ground stratum at 0.5)
CENSOR = {"uncensored_ground": {"ground": None}, "censor_all": {"elevated": 0.5},
          "censor_ground_local": {"local": 0.5}, "censor_all_local": {"elevated": 0.5, "local": 0.5}}


def rim_kept(d):
    """Elevated patches whose base and target rims both kept their contrast (``criteria.rim_kept``,
    read from the stored table)."""
    with np.errstate(invalid="ignore"):
        return d["pelev"] & (d["b1"] >= 2.0) & (d["t1"] >= 2.0)


def criteria_score(d, kept, structural=None, outline=None):
    """The patch criteria's score as the maps pass takes it: spectral, the parallax (structural) score
    vetoed where a kept rim moved, and the outline's."""
    structural = d["structural"] if structural is None else structural
    outline = d["outline"] if outline is None else outline
    with np.errstate(invalid="ignore"):
        vetoed = kept & (np.abs(d["shift"]) >= CR.RIM_MOVE_CELLS)
    return np.maximum(np.maximum(d["spectral"], np.where(vetoed, 0.0, structural)), outline)


def finish(d, p, kept, score, gone=None):
    """The maps pass's end on a calibrated probability ``p``: the rim witness, the patch criteria's
    ``score``, the roofs whose shadow went (``gone``), then probability and change (0/1/2)."""
    vis, t = d["vis"], d["t"]
    p = OL.rim_witness(p, P.paint(d["patch"], d["ids"], kept.astype(np.float64)), P.DECISION_P)
    p = P.either(p, P.paint(d["patch"], d["ids"], score))
    if gone is not None:
        p = np.where(gone, np.fmax(p, 0.5), p)
    obs = (vis[0] == 1) & (vis[t] == 1) & np.isfinite(p)
    ch = np.full(p.shape, 2, np.uint8)
    ch[obs] = p[obs] >= P.DECISION_P
    p[~obs] = np.nan
    return p, ch


def decide(d, name, gone=None):
    """Probability and change (0/1/2) of one stored run under variant ``name``."""
    e, el = d["ev"], d["elev"]
    p = np.full(e.shape, np.nan)
    cens = CENSOR.get(name, {})
    models = {}
    for s, m in ((1, el), (0, ~el)):
        ground = s == 0
        opt = dict(sd_null=name == "sd_null_all" or (name == "sd_null_ground" and ground))
        if name == "gaussian_tail_all" or (name == "gaussian_tail_ground" and ground):
            opt["plateau"] = False
        if name in ("plateau_ground", "uncensored_ground") and ground:
            opt["plateau"] = True
        stratum = "ground" if ground else "elevated"
        if stratum in cens:
            opt["censor"] = cens[stratum]
        models[s] = refit(C.histogram(P.ratio_evidence(e), m), s, **opt)
        p[m] = C.probability(P.ratio_evidence(e[m]), models[s])
    if d.get("fine") is not None:  # as the maps pass: which ground cells of a changed neighbourhood
        from offnadir.change import localise as L

        g = ~el
        fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"], censor=cens.get("local"))
        p[g] = L.localise(p[g], d["fine"][g], models[0], fm)
    kept = rim_kept(d)
    score_kept = kept
    outline = d["outline"]
    if name == "no_rim_witness":  # (the stored structural score has the veto applied: it cannot be undone here)
        kept = np.zeros_like(kept)
    if name == "rim_ratio":
        with np.errstate(invalid="ignore", divide="ignore"):
            v = np.where((d["b1"] >= 1.0) & (d["t1"] <= 1.0) & d["pelev"], np.log2(d["b1"] / d["t1"]) / 2.0, 0.0)
        outline = np.maximum(outline, np.nan_to_num(1.0 - 2.0 ** -(np.maximum(v, 0.0) ** 2)))
    return finish(d, p, kept, criteria_score(d, score_kept, outline=outline), gone)


def run_store(store, names, scorer):
    d = load(store)
    p0, _ = decide(d, "current")
    with np.errstate(invalid="ignore"):
        gone = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    out = {}
    for name in names:
        p, ch = decide(d, name, gone)
        r = scorer(d, p, ch)
        if name == "current":
            both = np.isfinite(p) & np.isfinite(d["prob"])
            r["max_diff_vs_store"] = float(np.max(np.abs(p[both] - d["prob"][both]), initial=0.0))
        out[name] = r
    return out


def main(argv=None) -> int:
    a = EO.stored_runs_args(__doc__, VARIANTS, argv)
    hard = {}
    for s in a.seeds:
        store, scene = EO.hard_store(a, s)
        hard[s] = run_store(store, a.variants, lambda d, p, ch, sc=scene: EO.score_hard(d, p, ch, d["ev"], sc))
        print(f"hard seed {s}: current vs stored probability, largest difference "
              f"{hard[s]['current']['max_diff_vs_store']:.2g}" if "current" in a.variants else f"hard seed {s}")
    km = {}
    for t in a.targets:
        store = a.km / f"km_post{t}.zarr"
        if not store.exists():
            sys.exit(f"{store} not found: run `python benchmarks/eval_change_real.py --workdir {a.km}` first")
        km[t] = run_store(store, a.variants, lambda d, p, ch: EO.score_km(d, p, ch))
    print()
    f = EO._f
    for v in a.variants:
        print(f"== {v}")
        if hard:
            rows = [hard[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            print(f"  hard elevated F1 per seed {', '.join(f(x) for x in f1)} (mean {f(float(np.mean(f1)))}); "
                  f"score AUC {', '.join(f(r['auc']) for r in rows)}; ground false alarms "
                  f"{', '.join(f(r['ground_fa']) for r in rows)}")
        for t in a.targets:
            r = km[t][v]
            print(f"  Kahramanmaras img{t}: F1 {f(r['f1'], 4)}, AUC {f(r['auc'], 4)}, flagged {f(r['flagged'])}"
                  + (f" (current vs stored: {r['max_diff_vs_store']:.2g})" if v == "current" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
