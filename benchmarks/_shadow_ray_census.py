"""The census of the new buildings of ``eval_shadow_ray.py --objects`` (issue 7, n3 ninth round): per object
of a stored hard run its footprint, height, observed and missed cells, its true cast shadow and whether the
target's shadow classifier saw it, the medians of the ray's stages and where each missed cell stopped
(:data:`STOPS`), and their printing.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.special import expit, logit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as ED  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402
from _shadow_ray_rays import MIN_CHANGED, load, ray_table, shadow_ray, shift  # noqa: E402

from offnadir.change import calibrate as C  # noqa: E402
from offnadir.change import cells as P  # noqa: E402
from offnadir.change import localise as L  # noqa: E402
from offnadir.change import shadow_observed as SO  # noqa: E402


#: footprint bins (cells of a new building), as ``eval_small_object_misses.SIZE_BINS``: the fine
#: window's area (11^2), a quarter and the whole of the wide window's (41^2 / 4, 41^2)
SIZE_BINS = (0, 121, 420, 1681, 10**9)
#: where a missed new-building cell's decision stopped, in the order the maps pass applies the rules
STOPS = ("wide fallback", "wide p <= prior (fine may only lower), ray too weak",
         "wide p > prior, fine does not say change, ray too weak",
         "wide p > prior, fine says change, raised p < 1/2, ray too weak", "localised p >= 1/2, lowered by the ray",
         "ray p >= 1/2, a later rule")


def _stages(d):
    """Per cell: the wide ground probability, the localised one, S, the ray's log LR and its probability
    (the ``both`` variant: what the pipeline does), with the wide model and the rule's info."""
    e, el = d["ev"], d["elev"]
    g = ~el
    wide = ED.refit(C.histogram(P.ratio_evidence(e), g), 0)
    pw = np.full(e.shape, np.nan)
    pw[g] = C.probability(P.ratio_evidence(e[g]), wide)
    fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"])
    pl = pw.copy()
    pl[g] = L.localise(pw[g], d["fine"][g], wide, fm)
    tab = L.log_likelihood_ratio(fm)
    says = np.zeros(e.shape, bool)
    if tab is not None:
        r = d["fine"]
        fin = np.isfinite(r)
        llr = np.full(e.shape, -np.inf)
        llr[fin] = C.interp(C.to_z(r[fin] / (1.0 + r[fin])), C.centres(), tab)
        says = llr >= np.log(fm["pi"][0] / fm["pi"][1])
    S, info = shadow_ray(d, "both")
    add = np.zeros(e.shape)
    if S is not None:
        obs = g & np.isfinite(pl) & (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1)
        chg, unc = obs & (pl >= 0.5), obs & (pl < 0.5)
        info["ground_changed"] = int(chg.sum())
        if chg.sum() >= MIN_CHANGED:
            lr, b = ray_table(S, chg, unc, "")
            info["log_lr"] = np.round(lr, 2).tolist()
            add = np.where(g, lr[b], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = np.where(g & (add != 0), expit(logit(np.clip(pl, 0, 1)) + add), pl)
    pr = np.where(np.isfinite(pr), pr, pl)
    return dict(pw=pw, pl=pl, says=says, S=S, add=add, pr=pr, wide=wide, fm=fm, info=info)


def objects(store, scene):
    """Census of the new buildings of one stored hard run: per object its footprint, height, observed
    cells, missed cells, the stages' medians, whether its cast shadow was seen (the target classifier's
    unexplained shadows ``U`` on the cells truly shadowed at the new date but predicted lit, down-sun
    of it within its true shadow length) and where its missed cells stopped (:data:`STOPS`)."""
    d = load(store)
    p0, _ = ED.decide(d, "current")
    with np.errstate(invalid="ignore"):
        d["gone"] = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    st = _stages(d)
    p, ch = ED.finish(d, np.where(d["elev"], _elev_p(d), st["pr"]), ED.rim_kept(d),
                      ED.criteria_score(d, ED.rim_kept(d)), d["gone"])
    cls = EO._read(scene / "truth_change_class.tif")
    ref = EO._read(scene / "truth_structural.tif")
    occ = EO._read(scene / "truth_occluded.tif")
    tsh = EO._read(scene / "truth_shadow.tif")
    dsm2, dtm = EO._read(scene / "dsm_epoch2.tif").astype(np.float64), EO._read(scene / "dtm.tif").astype(np.float64)
    meta = json.loads((scene / "scene.json").read_text())
    t = d["t"]
    cells = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (ref != 255) & (occ == 0) & (ch != 2)
    sun = d["sun"]
    az = math.radians(sun["azimuth"] + sun["grid_north_deg"])
    el = math.radians(sun["elevation"])
    rec = sun.get("shadow_classifier")
    clf = SO.ShadowClassifier.from_report(rec) if rec else None
    lit = (d["ill"] > 0) & (d["ill"] < 255)
    U = np.zeros(cls.shape, bool)
    if clf is not None:
        U = (np.nan_to_num(SO.log_odds(d["target"], d["ok_t"], clf), nan=-1.0) >= 0) & lit & ~d["elev"] & d["ok_t"]
    newsh = ((tsh & 2) > 0) & lit & ~d["elev"] & d["ok_t"]  # truly shadowed at the new date, predicted lit, seen
    lab, n = ndi.label(cls == 1)
    rows = []
    for k, sl in enumerate(ndi.find_objects(lab), 1):
        if sl is None:
            continue
        pad = 4 * int(d["cal"]["window_cells"])
        sl2 = tuple(slice(max(0, s.start - pad), s.stop + pad) for s in sl)
        obj = lab[sl2] == k
        h = float(np.median((dsm2[sl2] - dtm[sl2])[obj]))
        kt = int(math.ceil(h / math.tan(max(el, 0.05)) / d["cell"]))
        sw = np.zeros_like(obj)
        di, dj = math.cos(az), -math.sin(az)
        for s in range(1, kt + 1):
            sw |= shift(obj, -int(math.floor(s * di + 0.5)), -int(math.floor(s * dj + 0.5)))
        shd = sw & ~obj & newsh[sl2]
        cast = sw & ~obj & ((tsh[sl2] & 2) > 0)  # its true shadow at the new date, wherever it falls
        c = obj & cells[sl2]
        m = c & (ch[sl2] == 0)
        stop = np.zeros(len(STOPS), int)
        if m.any():
            pw, pl, pr, sy = (st[x][sl2][m] for x in ("pw", "pl", "pr", "says"))
            prior = st["wide"]["pi"][1] if not st["wide"].get("fallback") else None
            loc = np.where(pw <= (prior or 0), 1, np.where(~sy, 2, 3))
            code = np.where(pr >= 0.5, 5, np.where(pl >= 0.5, 4, loc))
            code = np.where(prior is None, 0, code)
            stop = np.bincount(code, minlength=len(STOPS))
        rows.append(dict(id=k, size=int(obj.sum()), h=round(h, 1), ground=int((obj & ~d["elev"][sl2]).sum()),
                         scored=int(c.sum()), missed=int(m.sum()), kt=kt, shadow_cells=int(shd.sum()),
                         on_lit=float(shd.sum() / cast.sum()) if cast.any() else math.nan,
                         shadow_seen=float(U[sl2][shd].mean()) if shd.any() else math.nan,
                         S=float(np.nanmedian(st["S"][sl2][c])) if (st["S"] is not None and c.any()) else math.nan,
                         add=float(np.median(st["add"][sl2][c])) if c.any() else math.nan,
                         pw=float(np.nanmedian(st["pw"][sl2][c])) if c.any() else math.nan,
                         pl=float(np.nanmedian(st["pl"][sl2][c])) if c.any() else math.nan,
                         ev=float(np.nanmedian(np.log(d["ev"][sl2][c]))) if c.any() else math.nan,
                         fine=float(np.nanmedian(np.log(d["fine"][sl2][c]))) if c.any() else math.nan,
                         stops=stop.tolist()))
    w = st["wide"]
    summary = dict(size=int(meta["size"]), cell=d["cell"], sun_el=round(sun["elevation"], 1), info=st["info"],
                   wide=None if w.get("fallback") else dict(pi1=round(w["pi"][1], 4), mean=np.round(w["mean"], 3).tolist(),
                                                             sd=np.round(w["sd"], 3).tolist()),
                   fine=None if st["fm"].get("fallback") else dict(pi1=round(st["fm"]["pi"][1], 4),
                                                                   mean=np.round(st["fm"]["mean"], 3).tolist()),
                   stored_diff=float(np.nanmax(np.abs(p - d["prob"]))))
    return rows, summary


def _elev_p(d):
    e, el = d["ev"], d["elev"]
    p = np.full(e.shape, np.nan)
    p[el] = C.probability(P.ratio_evidence(e[el]), ED.refit(C.histogram(P.ratio_evidence(e), el), 1))
    return p


def print_objects(seed, rows, summary):
    print(f"== seed {seed}: {summary}")
    tot = np.sum([r["stops"] for r in rows], axis=0) if rows else np.zeros(len(STOPS), int)
    print("  missed new-building cells by where they stopped: " + "; ".join(f"{s} {int(v)}" for s, v in zip(STOPS, tot)))
    kinds = {"its shadow mostly (> 2/3) on predicted shadow or roofs": lambda r: not r["on_lit"] >= 1 / 3,
             "its shadow on predicted-lit ground, seen (U) on < 1/2": lambda r: r["on_lit"] >= 1 / 3 and not r["shadow_seen"] >= 0.5,
             "its shadow on predicted-lit ground and seen": lambda r: r["on_lit"] >= 1 / 3 and r["shadow_seen"] >= 0.5}
    print("  missed cells by the object's shadow: " + "; ".join(
        f"{k} {sum(r['missed'] for r in rows if f(r))}" for k, f in kinds.items()))
    for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        rr = [r for r in rows if lo <= r["size"] < hi]
        if not rr:
            continue
        sc, mi = sum(r["scored"] for r in rr), sum(r["missed"] for r in rr)
        print(f"  footprint {lo}-{hi}: {len(rr)} objects, scored {sc}, missed {mi} ({mi / max(sc, 1):.2f}); "
              f"objects half missed {sum(r['missed'] > r['scored'] / 2 for r in rr)}")
    print("  id size h ground scored missed K_true shadow_cells on_lit seen S add pw pl log_ev log_fine stops")
    for r in sorted(rows, key=lambda r: -r["missed"]):
        if r["missed"] < 20:
            continue
        print(f"  {r['id']} {r['size']} {r['h']} {r['ground']} {r['scored']} {r['missed']} {r['kt']} {r['shadow_cells']} "
              f"{r['on_lit']:.2f} "
              f"{r['shadow_seen']:.2f} {r['S']:.2f} {r['add']:.2f} {r['pw']:.3f} {r['pl']:.3f} {r['ev']:.2f} "
              f"{r['fine']:.2f} {r['stops']}")
