"""Evaluation: a census of the false alarms on unchanged ground, one image per date (issue 7, t6
twelfth round): which stage of the maps pass put each over ½, where it lies against the shadows, and
what removing each group would buy the all-cells F1 (an upper bound, not a rule).

The stages are replayed on the *stored* evidence of a run (``eval_decision_offline``'s refits of the
pipeline's mixtures, ``localise.apply``); for a ground cell (the old DSM's ``elevated`` = 0) the maps
pass takes, in order, the wide window's calibrated probability, the shadow ray's log-LR, the fine
window's localisation, the patch criteria (``either``), dh and the roofs whose shadow went. A false
alarm (the truth unchanged, flagged in the store) is put in the first stage that holds it over ½:

* ``wide``: the wide window alone is ≥ ½ and the localisation keeps it;
* ``local``: the wide window is < ½, the localisation raises it;
* ``patch``: both < ½ and its patch's criteria score is ≥ ½;
* ``gone``: stored exactly ½ (``raise_gone``) without any of the above;
* ``other``: the rest (the shadow ray's log-LR before the localisation, the replay's differences);
* ``elevated``: the old DSM calls the cell elevated (its stratum decides; truth ground).

Hard simulator (``--hard W --seeds ...``, the stores and scenes of ``eval_hard_sim.py --work W``; the
eval's classes: truth structural unchanged, truth ground, scored cells): per stage by the truth's
shadow at each date (``truth_shadow.tif``), by the old DSM's predicted shadows
(``eval_hard_sim.shadow_classes``), by the distance (cells) to the nearest true shadow edge at either
date, to the nearest changed cell, and to the grid's edge. Kahramanmaraş (``--km K``, the stores of
``eval_change_real.py --workdir K``): per stage, by the predicted shadow at each date and the distance
to the predicted shadow's edge (no true shadows there).

    python benchmarks/eval_ground_false_alarms.py --hard W [--seeds 0 1 2] [--km K] [--targets 1 2]
    python benchmarks/eval_ground_false_alarms.py --variant llr_fix|lower_pinned --hard W [--km K]

``--variant`` scores the stored runs before and after an offline change of the localisation:
``llr_fix`` (stores made before t6's fix of ``localise.log_likelihood_ratio``: the fixed table's
difference added) and ``lower_pinned`` (a censored fine fit allowed to lower where the fit by shape is
pinned; not wired).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import distance_transform_edt

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as DO  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402
from eval_hard_sim import shadow_classes  # noqa: E402

STAGES = ("wide", "local", "patch", "gone", "other", "elevated")
DIST_BINS = (0, 1, 3, 10, 20, np.inf)  # cells: (lo, hi]; 0 is its own bin


def stages(d) -> dict:
    """Per cell of target ``d["t"]``: the wide window's probability, after the localisation, and the
    painted patch criteria score (the replay of ``eval_decision_offline.decide`` up to ``either``)."""
    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.change import localise as L

    e, el = d["ev"], d["elev"]
    g = ~el
    m0 = DO.refit(C.histogram(P.ratio_evidence(e), g), 0)
    wide = np.full(e.shape, np.nan)
    wide[g] = C.probability(P.ratio_evidence(e[g]), m0)
    loc = wide.copy()
    if d.get("fine") is not None:
        fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"])
        loc[g] = L.localise(wide[g], d["fine"][g], m0, fm)
        # the localisation that may only lower (no wide prior: localise.localise's may_raise is empty)
        lower = wide.copy()
        lower[g] = L.localise(wide[g], d["fine"][g], dict(fallback=True), fm)
    else:
        lower = loc
    score = P.paint(d["patch"], d["ids"], DO.criteria_score(d, DO.rim_kept(d)))
    return dict(wide=wide, local=loc, lower=lower, patch=np.nan_to_num(score), model=m0)


def without_raise(d, st, flag):
    """The stored decisions with the fine window's raising undone (offline estimate): a flagged ground
    cell whose replayed localisation raised it over ½ (wide < ½, localised >= ½), that only-lowering
    leaves below ½, and that no later stage holds (patch criteria < ½, not at ½ exactly) is unflagged.
    The replay leaves out the shadow ray's log-LR (added before the localisation)."""
    with np.errstate(invalid="ignore"):
        undo = (flag & ~d["elev"] & (st["wide"] < 0.5) & (st["local"] >= 0.5) & (st["lower"] < 0.5)
                & (st["patch"] < 0.5) & (d["prob"] != np.float32(0.5)))
    return flag & ~undo


def stage_of(d, st, fa) -> np.ndarray:
    """Index into :data:`STAGES` of every cell (-1 where not ``fa``)."""
    with np.errstate(invalid="ignore"):
        w, lo, pa = st["wide"] >= 0.5, st["local"] >= 0.5, st["patch"] >= 0.5
        gone = d["prob"] == np.float32(0.5)
    out = np.full(fa.shape, -1, np.int8)
    rest = fa.copy()
    for i, m in enumerate((w & lo, ~w & lo, ~lo & pa, gone)):
        m = rest & m & ~d["elev"]
        out[m] = i
        rest &= ~m
    out[rest & ~d["elev"]] = 4
    out[rest & d["elev"]] = 5
    return out


def edge_distance(mask) -> np.ndarray:
    """Distance (cells) of every cell to the nearest cell of the other state of ``mask`` (0 next to
    the edge is 1: a cell adjacent to the other state)."""
    mask = np.asarray(mask, bool)
    if mask.all() or not mask.any():
        return np.full(mask.shape, np.inf)
    return np.where(mask, distance_transform_edt(mask), distance_transform_edt(~mask))


def dist_bin(d) -> np.ndarray:
    return np.digitize(d, DIST_BINS[1:-1], right=True)


def dist_labels():
    b = DIST_BINS
    return [f"<={b[1]:g}" if i == 0 else (f">{b[i]:g}" if not np.isfinite(b[i + 1]) else f"{b[i]:g}-{b[i + 1]:g}")
            for i in range(len(b) - 1)]


def f1(tp, fp, fn):
    return 2 * tp / max(2 * tp + fp + fn, 1)


def table(title, groups, stage, fa, denom):
    """Rows: group name -> bool mask; columns: FA cells per stage, total, unchanged-ground cells, rate."""
    print(f"  {title}")
    print("    " + f"{'':<22}" + "".join(f"{s:>9}" for s in STAGES) + f"{'all FA':>9}{'ground':>10}{'rate':>7}")
    for name, m in groups.items():
        row = [int((fa & m & (stage == i)).sum()) for i in range(len(STAGES))]
        n = int((denom & m).sum())
        print("    " + f"{name:<22}" + "".join(f"{v:>9}" for v in row)
              + f"{sum(row):>9}{n:>10}{sum(row) / max(n, 1):>7.3f}")


def hard_seed(store, scene, t=1) -> dict:
    import json

    from eval_hard_sim import _read
    from offnadir.simulate import truth as T

    d = DO.load(store, t)
    meta = json.loads((scene / "scene.json").read_text())
    st = stages(d)
    cls = _read(scene / "truth_change_class.tif")
    occ = _read(scene / "truth_occluded.tif")
    shadow = _read(scene / "truth_shadow.tif")
    telev = _read(scene / "truth_elevated.tif") == 1
    sb = _read(scene / "truth_structural.tif")
    import xarray as xr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        chm = np.asarray(ds["change"].values[t])
        ill = np.asarray(ds["illumination"].values)
    vis = d["vis"]
    cells = (vis[0] == 1) & (vis[t] == 1) & (occ == 0)
    scored = cells & (sb != T.IGNORE) & (chm != 2)
    flag = chm == 1
    changed = np.isin(sb, (T.LOSS, T.GAIN))
    ground0 = scored & (sb == 0) & ~telev  # the eval's unchanged ground
    fa = ground0 & flag
    stage = stage_of(d, st, fa)
    tp = int((scored & changed & flag).sum())
    fp_all = int((scored & (sb == 0) & flag).sum())
    fn = int((scored & changed & ~flag).sum())
    print(f"{store}: all-cells F1 {f1(tp, fp_all, fn):.4f} (TP {tp}, FP {fp_all}, FN {fn}); ground false alarms "
          f"{int(fa.sum())} of {int(ground0.sum())} ({fa.sum() / max(ground0.sum(), 1):.4f}); "
          f"replayed ground model: pi {np.round(st['model']['pi'], 3).tolist()} mean "
          f"{np.round(st['model']['mean'], 3).tolist()} sd {np.round(st['model']['sd'], 3).tolist()}")
    print("    all-cells F1 with a stage's ground false alarms removed (upper bound): "
          + ", ".join(f"{s} {f1(tp, fp_all - int((stage == i).sum()), fn):.4f}" for i, s in enumerate(STAGES)))
    nf = without_raise(d, st, flag)
    ntp, nfp, nfn = int((scored & changed & nf).sum()), int((scored & (sb == 0) & nf).sum()), \
        int((scored & changed & ~nf).sum())
    ev = scored & telev
    e_old = f1(int((ev & changed & flag).sum()), int((ev & (sb == 0) & flag).sum()), int((ev & changed & ~flag).sum()))
    e_new = f1(int((ev & changed & nf).sum()), int((ev & (sb == 0) & nf).sum()), int((ev & changed & ~nf).sum()))
    print(f"    the localisation only lowering (offline): all-cells F1 {f1(tp, fp_all, fn):.4f} -> {f1(ntp, nfp, nfn):.4f}, "
          f"elevated F1 {e_old:.4f} -> {e_new:.4f}, ground false alarms {int(fa.sum())} -> {int((ground0 & nf).sum())}, "
          f"changed cells unflagged {tp - ntp} (of them truth-elevated {int((ev & changed & flag & ~nf).sum())})")
    s0, s1 = (shadow & 1) != 0, (shadow & 2) != 0
    table("by the true shadow at each date", {"lit at both": ~s0 & ~s1, "shadow base only": s0 & ~s1,
                                              "shadow target only": ~s0 & s1, "shadow both": s0 & s1},
          stage, fa, ground0)
    table("by the old DSM's predicted shadows (eval_hard_sim.shadow_classes)",
          shadow_classes(ill[0] == 0, ill[t] == 0, shadow), stage, fa, ground0)
    de = np.minimum(edge_distance(s0), edge_distance(s1))
    table("by distance (cells) to the nearest true shadow edge at either date",
          {k: dist_bin(de) == i for i, k in enumerate(dist_labels())}, stage, fa, ground0)
    dc = distance_transform_edt(cls == 0)
    table("by distance (cells) to the nearest changed cell (truth_change_class)",
          {k: dist_bin(dc) == i for i, k in enumerate(dist_labels())}, stage, fa, ground0)
    ny, nx = fa.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    dg = np.minimum(np.minimum(yy, ny - 1 - yy), np.minimum(xx, nx - 1 - xx))
    table("by distance (cells) to the grid's edge", {"< 20": dg < 20, ">= 20": dg >= 20}, stage, fa, ground0)
    # the unexplained shadows' cells split by distance to the changed cells (a new caster beside them)
    un = shadow_classes(ill[0] == 0, ill[t] == 0, shadow)["unexplained"]
    table("unexplained shadows only, by distance (cells) to the nearest changed cell",
          {k: un & (dist_bin(dc) == i) for i, k in enumerate(dist_labels())}, stage, fa, ground0)
    return dict(stage=np.bincount(stage[fa], minlength=len(STAGES)).tolist(), f1=f1(tp, fp_all, fn),
                seed=meta.get("seed"))


def km_target(store, t) -> None:
    import xarray as xr

    from eval_hard_sim import _read
    from offnadir.change import reference as REF

    d = DO.load(store, 1)  # km_postN.zarr: one target each
    st = stages(d)
    ref = _read(EO.KM_REF)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        chm = np.asarray(ds["change"].values[1])
        ill = np.asarray(ds["illumination"].values)
    vis = d["vis"]
    decided = (vis[0] == 1) & (vis[1] == 1) & (ref != REF.IGNORE) & ((chm == 0) | (chm == 1))
    truth = (ref == 1) | (ref == 2)
    flag = chm == 1
    none = decided & ~truth
    fa = none & flag
    stage = stage_of(d, st, fa)
    tp, fp, fn = int((decided & truth & flag).sum()), int(fa.sum()), int((decided & truth & ~flag).sum())
    print(f"Kahramanmaras img{t} ({store}): F1 {f1(tp, fp, fn):.4f}; false alarms {fp} of {int(none.sum())} "
          f"unchanged ({fp / max(none.sum(), 1):.4f}); on the old DSM's ground {int((fa & ~d['elev']).sum())}")
    print("    F1 with a stage's false alarms removed (upper bound): "
          + ", ".join(f"{s} {f1(tp, fp - int((stage == i).sum()), fn):.4f}" for i, s in enumerate(STAGES)))
    p0, p1 = ill[0] == 0, ill[1] == 0
    table("by the old DSM's predicted shadow at each date", {"lit at both": ~p0 & ~p1, "shadow base only": p0 & ~p1,
                                                             "shadow target only": ~p0 & p1, "shadow both": p0 & p1},
          stage, fa, none)
    de = np.minimum(edge_distance(p0), edge_distance(p1))
    table("by distance (cells) to the nearest predicted shadow edge at either date",
          {k: dist_bin(de) == i for i, k in enumerate(dist_labels())}, stage, fa, none)
    dc = distance_transform_edt(~(truth & decided))
    table("by distance (cells) to the nearest reference change",
          {k: dist_bin(dc) == i for i, k in enumerate(dist_labels())}, stage, fa, none)



def _replay(store, fn):
    """``(d, out, stored change of the first target)`` of a stored run under the replay ``fn`` (``out`` None:
    the replay leaves the run as it is, and the stored map is not read)."""
    import xarray as xr

    d = DO.load(store)
    out = fn(d)
    if out is None:
        return d, None, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chm = np.asarray(xr.open_zarr(store, mask_and_scale=False)["change"].values[1])
    return d, out, chm

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path, help="eval_hard_sim.py --work")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path, help="eval_change_real.py --workdir")
    ap.add_argument("--targets", type=int, nargs="*", default=[1, 2])
    a = ap.parse_args(argv)
    tot = np.zeros(len(STAGES), int)
    if a.hard:
        for s in a.seeds:
            r = hard_seed(a.hard / f"hard{s}.zarr", a.hard / f"hard{s}")
            tot += r["stage"]
            print()
        print("ground false alarms per stage over the seeds: " + ", ".join(f"{k} {v}" for k, v in zip(STAGES, tot)))
    for t in a.targets if a.km else ():
        km_target(a.km / f"km_post{t}.zarr", t)
        print()
    return 0




def lower_when_pinned(d):
    """Variant ``lower_pinned`` (offline, exact on a store whose fine mixture falls back): where the
    fine window's mixture fitted by shape falls back (pinned at the weight cap: one skewed population,
    the localisation off), fit it censored below its median (as the wide ground stratum,
    ``cells.FIT``) and let it only *lower* the ground cells (``localise.localise`` with no wide prior):
    ``logit p' = logit p + min(log LR_f, 0)`` on the stored probability before the patch criteria
    (recovered: ``max(.., q)`` where the patch score ``q`` >= ½; roofs decided gone stay at ½).
    Returns (probability, change 0/1/2, the censored fine model) or None where the fit is not pinned."""
    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.change import localise as L

    if d.get("fine") is None:
        return None
    g = ~d["elev"]
    h = C.histogram(P.ratio_evidence(d["fine"]), g)
    if not C.fit(h, anchor=P.ANCHOR["local"]).get("fallback"):
        return None
    fm = C.fit(h, anchor=P.ANCHOR["local"], censor=0.5)
    tab = L.log_likelihood_ratio(fm)
    if tab is None:
        return None
    r = d["fine"]
    fin = np.isfinite(r) & g
    llr = np.zeros(r.shape)
    llr[fin] = np.minimum(C.interp(C.to_z(r[fin] / (1.0 + r[fin])), C.centres(), tab), 0.0)
    p, ch = lowered(d, llr)
    return p, ch, fm


def lowered(d, llr):
    """The stored probability with ``llr`` (<= 0, per cell) added to the logit of the ground cells
    before the patch criteria (recovered: ``max(.., q)`` where the patch score ``q`` >= ½; roofs
    decided gone stay at ½) -> (probability, change 0/1/2)."""
    from scipy.special import expit, logit

    from offnadir.change import cells as P

    fin = np.isfinite(llr) & (llr < 0) & ~d["elev"]
    prob = d["prob"]
    q = P.paint(d["patch"], d["ids"], DO.criteria_score(d, DO.rim_kept(d)))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(fin, expit(logit(np.clip(prob, 0.0, 1.0)) + np.where(fin, llr, 0.0)), prob)
        p = np.where(fin & np.isfinite(q) & (q >= 0.5), np.fmax(p, q), p)
        p = np.where(fin & (prob == np.float32(0.5)), np.fmax(p, 0.5), p)  # (gone: max(p, 1/2))
    ch = np.full(p.shape, 2, np.uint8)
    ok = np.isfinite(p)
    ch[ok] = p[ok] >= 0.5
    return p, ch


def _floored_llr(model):
    """``localise.log_likelihood_ratio`` before t6's fix (floored densities: 0 where both underflow,
    lifted by the running maximum)."""
    from offnadir.change import calibrate as C

    z = C.centres()
    mu, sd = model["mean"], model["sd"]
    n0 = C._normal(z, mu[0], sd[0])
    n1 = np.where(z > mu[1], C._normal(mu[1], mu[1], sd[1]), C._normal(z, mu[1], sd[1]))
    llr = np.log(np.maximum(n1, 1e-300)) - np.log(np.maximum(n0, 1e-300))
    return np.maximum.accumulate(np.clip(llr, -20.0, 20.0))


def llr_fix(d):
    """Variant ``llr_fix`` (offline): on a store made before the fix, the fitted fine mixture's
    closed-form log LR in place of the floored one: the difference (<= 0) added where the old table
    was lifted (the shadow ray's own calibration, which reads the localised probability, is kept as
    stored). Returns (probability, change, fine model) or None (no fitted fine mixture)."""
    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.change import localise as L

    if d.get("fine") is None:
        return None
    g = ~d["elev"]
    fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"])
    if fm.get("fallback"):
        return None
    delta = L.log_likelihood_ratio(fm) - _floored_llr(fm)
    r = d["fine"]
    fin = np.isfinite(r) & g
    llr = np.zeros(r.shape)
    llr[fin] = np.minimum(C.interp(C.to_z(r[fin] / (1.0 + r[fin])), C.centres(), delta), 0.0)
    p, ch = lowered(d, llr)
    return p, ch, fm


def variant_main(argv=None, fn=None) -> int:
    """``--variant lower_pinned``: the stored runs scored before and after (hard: elevated and
    all-cells F1, AUC on all decided cells, ground false alarms; Kahramanmaraş: F1, AUC)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path)
    ap.add_argument("--targets", type=int, nargs="*", default=[1, 2])
    a = ap.parse_args(argv)
    for s in a.seeds if a.hard else ():
        store, scene = a.hard / f"hard{s}.zarr", a.hard / f"hard{s}"
        d, out, chm = _replay(store, fn)
        if out is None:
            print(f"hard seed {s}: fine mixture fitted (or none): unchanged")
            continue
        p, ch, fm = out
        r0 = EO.score_hard(d, d["prob"], chm, d["ev"], scene)
        r1 = EO.score_hard(d, p, ch, d["ev"], scene)
        print(f"hard seed {s}: fine fit pi {np.round(fm['pi'], 3).tolist()} mean "
              f"{np.round(fm['mean'], 3).tolist()}; " + "; ".join(
                  f"{k} {r0[k]:.4f} -> {r1[k]:.4f}" for k in ("elevated_f1", "auc", "ground_fa") if k in r0))
        print("    " + _all_cells(scene, d, chm, ch))
    for t in a.targets if a.km else ():
        store = a.km / f"km_post{t}.zarr"
        d, out, chm = _replay(store, fn)
        if out is None:
            print(f"Kahramanmaras img{t}: unchanged")
            continue
        p, ch, fm = out
        r0, r1 = EO.score_km(d, d["prob"], chm), EO.score_km(d, p, ch)
        print(f"Kahramanmaras img{t}: fine fit pi {np.round(fm['pi'], 3).tolist()}; F1 {r0['f1']:.4f} -> "
              f"{r1['f1']:.4f}, AUC {r0['auc']:.4f} -> {r1['auc']:.4f}, flagged {r0['flagged']:.4f} -> "
              f"{r1['flagged']:.4f}, objects {r0['objects']} -> {r1['objects']}")
    return 0


def _all_cells(scene, d, chm, ch) -> str:
    from eval_hard_sim import _read
    from offnadir.simulate import truth as T

    sb = _read(scene / "truth_structural.tif")
    occ = _read(scene / "truth_occluded.tif")
    telev = _read(scene / "truth_elevated.tif") == 1
    vis = d["vis"]
    changed = np.isin(sb, (T.LOSS, T.GAIN))
    out = []
    for name, c in (("stored", chm), ("variant", ch)):
        sc = (vis[0] == 1) & (vis[1] == 1) & (occ == 0) & (sb != T.IGNORE) & (c != 2)
        fl = c == 1
        tp, fp, fn = (sc & changed & fl).sum(), (sc & (sb == 0) & fl).sum(), (sc & changed & ~fl).sum()
        gfa = (sc & (sb == 0) & ~telev & fl).sum()
        out.append(f"{name}: all-cells F1 {f1(tp, fp, fn):.4f}, ground false alarms {gfa}, "
                   f"misses new {int((sc & ~fl & (_read(scene / 'truth_change_class.tif') == T.CODE['new'])).sum())}")
    return " | ".join(out)


if __name__ == "__main__":
    if "--variant" in sys.argv:
        i = sys.argv.index("--variant")
        fns = {"lower_pinned": lower_when_pinned, "llr_fix": llr_fix}
        if sys.argv[i + 1] not in fns:
            sys.exit(f"--variant: one of {', '.join(fns)}")
        sys.exit(variant_main(sys.argv[1:i] + sys.argv[i + 2:], fns[sys.argv[i + 1]]))
    sys.exit(main())
