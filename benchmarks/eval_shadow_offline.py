"""Evaluation: the seen-shadow rule (:mod:`offnadir.change.shadow_observed`) recomputed from
existing stores, calibrated and scored the pipeline's way (``eval_evidence_offline.py``'s harness),
in seconds instead of a detect run per variant (issue 7, point 4; one image per date).

Variants (all with defaults; ``current`` must equal the stored run, see ``eval_evidence_offline.py``):

* ``current``: the store's own evidence recomputed (codes as predicted);
* ``seen``: both images' codes as seen (:func:`offnadir.change.shadow_observed.observed_codes`) in
  the structural comparison's same-sun mask; ``seen_unexplained``: only predicted-lit cells seen in
  shadow changed; ``seen_target``: only the target's codes as seen; ``seen_ground`` /
  ``seen_ground_unexplained``: the same on ground cells only; ``ground_pairs`` /
  ``ground_pairs_unexplained``: the seen codes only in the ground cells' ground-pair ratio;
* ``explained_nuisance``: ground cells in an unexplained shadow whose caster walk
  (:func:`~offnadir.change.shadow_observed.caster_walk`) ends on a cell decided changed are set
  unchanged (the shadow of a detected change);
* ``rev_moved_*`` / ``rev_seen_*``: ground cells whose predicted / seen sun state differs take the
  sign-reversal ratio of all their window's pairs (``_S``), its minimum with the current evidence
  (``_min``) or their geometric mean (``_gm``);
* ``missing_llr``: **missing shadows as loss evidence for their caster**: per elevated patch, the
  sum over its predicted cast-shadow cells at the target (sure cells, 2-cell margin) of
  ``log f_lit(x) / f_shadow(x)`` (:func:`~offnadir.change.shadow_observed.caster_log_lr_sums`),
  divided by 9 (neighbouring samples are not independent: resampling mixes a 3 x 3 neighbourhood),
  as log-odds; the patch's cells get ``max(p, P)`` where ``P >= 0.5`` (as the patch criteria);
  ``missing_paired``: the same, and the caster's predicted shadow at the *base* date (the DSM's
  epoch) must be seen there (log-odds the smaller of the target's and minus the base's).
On the hard simulator it also prints how well each image's classifier finds the truth's shadows
(``truth_shadow.tif``: bit 1 base, bit 2 target) and the unexplained ones (true shadow, predicted lit).

    python benchmarks/eval_shadow_offline.py [--hard /tmp/eval_hard_sim] [--seeds 0 1 2 3 4 5]
                                             [--km /tmp/eval_change_real] [--targets 1 2]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eval_evidence_offline as OFF  # noqa: E402

from offnadir.change import cells as P  # noqa: E402
from offnadir.change import missing_shadow as MS  # noqa: E402
from offnadir.change import shadow_observed as SO  # noqa: E402
from offnadir.change import sun_pairs as SP  # noqa: E402

VARIANTS = ("current", "seen", "seen_unexplained", "seen_target", "seen_ground", "seen_ground_unexplained", "ground_pairs", "ground_pairs_unexplained", "explained_nuisance",
            "rev_moved_S", "rev_moved_min", "rev_moved_gm", "rev_seen_S", "rev_seen_min", "rev_seen_gm", "missing_llr", "missing_paired", "missing_prior", "missing_paired_prior", "missing_paired_prior_half", "missing_ground")


def seen(d, inp, which):
    ill = d["ill"]
    out = []
    for i, k in enumerate((0, d["t"])):
        clf = SO.calibrate(inp["inten"][i], ill[k], inp["ok"][i])
        c = SO.observed_codes(ill[k], inp["inten"][i], inp["ok"][i], clf,
                              where=~d["elev"] if which.startswith(("seen_ground", "ground_pairs")) else None)
        if which.endswith("unexplained"):
            c = np.where((c == SO.SEEN_LIT) & (ill[k] == 0), ill[k], c)
        if which == "seen_target" and i == 0:
            c = ill[k]
        out.append((c, clf))
    return out


def ground_pairs_evidence(d, inp, seen_compare):
    """stratum_evidence with the seen codes only in the ground cells' ground-pair ratio."""
    from offnadir.change import evidence as EV

    a, b = inp["inten"]
    el = d["elev"]
    e = P.stratum_evidence(a, b, inp["ok"][0], inp["ok"][1], el, inp["window"], inp["offsets"], inp["sigmas"],
                           compare=inp["same_sun"])
    eg = EV.structural_evidence(a, b, inp["ok"][0], inp["ok"][1], inp["window"], inp["offsets"], inp["sigmas"],
                                compare=seen_compare & ~el)
    return np.where(el, e, np.fmin(e, eg))


def explained_nuisance(d, inp, store, p, ch):
    """Ground cells in an unexplained shadow whose caster walk ends on a cell decided changed: no change."""
    import json

    import xarray as xr

    t = d["t"]
    sun = json.loads(xr.open_zarr(store).attrs["change_sun"])[t]
    az, el = math.radians(sun["azimuth"] + sun["grid_north_deg"]), math.radians(sun["elevation"])
    clf = SO.calibrate(inp["inten"][1], d["ill"][t], inp["ok"][1])
    c = SO.observed_codes(d["ill"][t], inp["inten"][1], inp["ok"][1], clf)
    shadow = c == 0
    unexpl = shadow & (d["ill"][t] != 0) & ~d["elev"]
    si, sj, ei, ej, lacks = SO.caster_walk(shadow, unexpl, d["dsm"], d["cell"], az, el, 0.3, 400)
    hit = lacks & (ch[ei, ej] == 1)
    p = p.copy()
    ch = ch.copy()
    m = np.zeros(p.shape, bool)
    m[si[hit], sj[hit]] = True
    m &= ch != 2
    p[m] = np.minimum(p[m], 0.49)
    ch[m] = 0
    return p, ch


_CACHE = {}


def reversal_variant(d, inp, name):
    """Ground cells whose sun state differs between the dates (predicted: ``rev_moved``; seen: ``rev_seen``)
    take the sign-reversal ratio of all their window's code pairs: a shadow dims texture, it does not
    reverse its order."""
    from offnadir.change import evidence as EV

    key = id(d)
    if key not in _CACHE:
        a, b = inp["inten"]
        cur = P.stratum_evidence(a, b, inp["ok"][0], inp["ok"][1], d["elev"], inp["window"], inp["offsets"],
                                 inp["sigmas"], compare=inp["same_sun"])
        _, rev = EV.structural_evidence(a, b, inp["ok"][0], inp["ok"][1], inp["window"], inp["offsets"],
                                        inp["sigmas"], reversal=True)
        _CACHE.clear()
        _CACHE[key] = (cur, rev)
    cur, rev = _CACHE[key]
    if name.startswith("rev_moved"):
        moved = ~inp["same_sun"]
    else:
        sc = seen(d, inp, "seen")
        moved = ~SP.same_sun(np.stack([sc[0][0], sc[1][0]]), 1)
    m = moved & ~d["elev"] & np.isfinite(rev)
    if name.endswith("_S"):
        alt = rev
    elif name.endswith("_min"):
        alt = np.fmin(cur, rev)
    else:
        alt = EV.roof_evidence(cur, rev)
    return np.where(m, alt, cur)


def missing_shadow(d, inp, store, p, ch, diag, how="missing_llr"):
    """Elevated patches whose predicted cast shadow at the target is seen lit: loss evidence."""
    import json

    import xarray as xr

    t = d["t"]
    sun = json.loads(xr.open_zarr(store).attrs["change_sun"])[t]
    az, el = math.radians(sun["azimuth"] + sun["grid_north_deg"]), math.radians(sun["elevation"])
    clf = SO.calibrate(inp["inten"][1], d["ill"][t], inp["ok"][1])
    sure, _ = SO.training_classes(d["ill"][t], inp["ok"][1])
    ci, cj = MS.shadow_casters(d["dsm"], d["ill"][t], d["cell"], az, el, 0.3, 2000)
    lab = np.where(d["elev"], d["patch"], 0)
    if how in ("missing_llr", "missing_prior"):
        ids, n, sm = MS.caster_log_lr_sums(lab, ci, cj, sure, inp["inten"][1], clf)
        llr = sm / 9.0
    else:
        ids, n, sm = MS.caster_log_lr_sums(lab, ci, cj, sure, inp["inten"][1], clf)
        sb = json.loads(xr.open_zarr(store).attrs["change_sun"])[0]
        azb, elb = math.radians(sb["azimuth"] + sb["grid_north_deg"]), math.radians(sb["elevation"])
        clf0 = SO.calibrate(inp["inten"][0], d["ill"][0], inp["ok"][0])
        sure0, _ = SO.training_classes(d["ill"][0], inp["ok"][0])
        if how == "missing_ground":
            sure0 = sure0 & ~d["elev"]
        ci0, cj0 = MS.shadow_casters(d["dsm"], d["ill"][0], d["cell"], azb, elb, 0.3, 2000)
        ids0, n0, sm0 = MS.caster_log_lr_sums(lab, ci0, cj0, sure0, inp["inten"][0], clf0)
        b = np.full(len(ids), np.inf)
        k0 = np.searchsorted(ids0, ids)
        k0 = np.minimum(k0, max(len(ids0) - 1, 0))
        has = (ids0[k0] == ids) if len(ids0) else np.zeros(len(ids), bool)
        b[has] = -sm0[k0[has]] / 9.0
        llr = np.minimum(sm / 9.0, b)
    if "_prior" in how or how == "missing_ground":
        pr = MS.prior_log_odds(llr)
        diag.setdefault("priors", []).append(round(1 / (1 + math.exp(-pr)), 4))
        llr = llr + pr
    pl = 1.0 / (1.0 + np.exp(-np.clip(llr, -50, 50)))
    q = P.paint(lab, ids, pl)
    q = np.where(np.isfinite(q), q, 0.0)
    hit = (q >= 0.5) & (ch != 2)
    ch0 = ch
    p = np.where(hit, np.fmax(p, 0.5 + 0.5 * p) if how.endswith(("_half", "_ground")) else np.fmax(p, q), p)
    ch = ch.copy()
    ch[hit] = 1
    diag[how] = dict(how=how, patches=int(len(ids)), flagged=int((pl >= 0.5).sum()), cells=int(hit.sum()))
    if "truth" in diag:
        tr = diag["truth"]
        diag[how].update(on_loss=int((hit & (tr == 1)).sum()), on_unchanged=int((hit & (tr == 0)).sum()),
                                      newly_on_loss=int((hit & (tr == 1) & (ch0 != 1)).sum()),
                                      newly_on_unchanged=int((hit & (tr == 0) & (ch0 != 1)).sum()))
    return p, ch


def run_store(store, scorer, scene=None):
    d = OFF.load_store(store)
    inp = OFF.inputs(d)
    res, diag = {}, {}
    for name in VARIANTS:
        if name in ("missing_llr", "missing_paired", "missing_prior", "missing_paired_prior", "missing_paired_prior_half", "missing_ground"):
            e = P.stratum_evidence(inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], d["elev"],
                                   inp["window"], inp["offsets"], inp["sigmas"], compare=inp["same_sun"])
            p, ch = OFF.calibrated(e, d)
            if scene is not None:
                diag["truth"] = OFF._read(scene / "truth_structural.tif")
            p, ch = missing_shadow(d, inp, store, p, ch, diag, name)
            res[name] = scorer(d, p, ch, e)
            continue
        if name == "explained_nuisance":
            e = P.stratum_evidence(inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], d["elev"],
                                   inp["window"], inp["offsets"], inp["sigmas"], compare=inp["same_sun"])
            p, ch = OFF.calibrated(e, d)
            p, ch = explained_nuisance(d, inp, store, p, ch)
            res[name] = scorer(d, p, ch, e)
            continue
        if name.startswith("rev_"):
            res[name] = scorer(d, *OFF.calibrated(e_rev := reversal_variant(d, inp, name), d), e_rev)
            continue
        if name == "current":
            compare = inp["same_sun"]
        else:
            sc = seen(d, inp, name)
            compare = SP.same_sun(np.stack([sc[0][0], sc[1][0]]), 1)
            if name == "seen" and scene is not None:
                truth = OFF._read(scene / "truth_shadow.tif")
                for i, (bit, k) in enumerate(((1, 0), (2, d["t"]))):
                    c, clf = sc[i]
                    ts = (truth & bit) != 0
                    pred = d["ill"][k] == 0
                    okc = inp["ok"][i]
                    obs = c == 0
                    unexpl = ts & ~pred & okc
                    diag[k] = dict(thr=clf.threshold if clf else math.nan,
                                   acc=(clf.accuracy_shadow, clf.accuracy_lit) if clf else None,
                                   shadow_recall=float(obs[ts & okc].mean()),
                                   lit_false=float(obs[~ts & okc].mean()),
                                   unexpl_n=int(unexpl.sum()),
                                   unexpl_recall=float(obs[unexpl].mean()) if unexpl.any() else math.nan,
                                   override_precision=float(ts[obs & ~pred & okc].mean()) if (obs & ~pred & okc).any()
                                   else math.nan, override_n=int((obs & ~pred & okc).sum()))
        if name.startswith("ground_pairs"):
            e = ground_pairs_evidence(d, inp, compare)
        else:
            e = P.stratum_evidence(inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], d["elev"],
                                   inp["window"], inp["offsets"], inp["sigmas"], compare=compare)
        p, ch = OFF.calibrated(e, d)
        res[name] = scorer(d, p, ch, e)
    return res, diag


def main(argv=None) -> int:
    global VARIANTS
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path, default=Path("/tmp/eval_hard_sim"))
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path, default=Path("/tmp/eval_change_real"))
    ap.add_argument("--targets", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    a = ap.parse_args(argv)
    VARIANTS = tuple(v for v in VARIANTS if v in a.variants)
    hard, km = {}, {}
    for s in a.seeds:
        scene = a.hard / f"hard{s}"
        hard[s], diag = run_store(a.hard / f"hard{s}.zarr", lambda d, p, ch, e, sc=scene: OFF.score_hard(d, p, ch, e, sc),
                                  scene)
        diag.pop("truth", None)
        print(f"seed {s}: missing shadow priors {diag.pop('priors', None)}", *[diag.pop(k, None) for k in VARIANTS if k.startswith("missing")])
        for k, r in diag.items():
            print(f"seed {s} image {k}: threshold {r['thr']:.1f}, training accuracy {r['acc']}, true shadows seen "
                  f"{r['shadow_recall']:.3f}, lit seen as shadow {r['lit_false']:.3f}; unexplained shadows "
                  f"{r['unexpl_n']} cells, seen {r['unexpl_recall']:.3f}; overrides lit->shadow {r['override_n']}, "
                  f"truly shadowed {r['override_precision']:.3f}")
    for t in a.targets:
        store = a.km / f"km_post{t}.zarr"
        if store.exists():
            km[t], dg = run_store(store, lambda d, p, ch, e: OFF.score_km(d, p, ch))
            print(f"km img{t}: missing shadow priors {dg.get('priors')}", *[dg.get(k) for k in VARIANTS if k.startswith("missing")])
    for v in VARIANTS:
        print(f"== {v}")
        if hard:
            rows = [hard[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            print(f"  hard elevated F1 {', '.join(OFF._f(x) for x in f1)} (mean {OFF._f(float(np.mean(f1)))}); "
                  f"AUC {', '.join(OFF._f(r['auc']) for r in rows)}; F1 all {', '.join(OFF._f(r['f1']) for r in rows)}; "
                  f"ground FA {', '.join(OFF._f(r['ground_fa']) for r in rows)}")
        for t, r in km.items():
            r = r[v]
            print(f"  Kahramanmaras img{t}: F1 {OFF._f(r['f1'])}, AUC {OFF._f(r['auc'])}, flagged "
                  f"{OFF._f(r['flagged'])}, objects {r['objects']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
