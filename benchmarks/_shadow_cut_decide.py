"""The decisions of ``eval_shadow_cut.py`` (issue 7, u3 thirteenth round): a stored run's arrays with the target's
shadow log-odds (:func:`arrays`), the "lit where predicted shadow" ray (``cut*``), the unexplained-light blobs with
their casters' decisions (``blob*``: :func:`first_caster_changed`, :func:`blob_footprint`) and the maps pass replayed
with them (:func:`decide_cut`, :func:`replay`; ``first`` is the pipeline). What they measure: that script's docstring.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_evidence_offline as EO  # noqa: E402
from _shadow_ray_rays import load, shift  # noqa: E402

from offnadir.change import shadow_observed as SO  # noqa: E402


def arrays(store, scene):
    """The run's arrays and the scene's truth on the grid."""
    import xarray as xr

    d = load(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        d["change"] = np.asarray(ds["change"].values[d["t"]])
    for k in ("truth_change_class", "truth_structural", "truth_occluded", "truth_shadow"):
        d[k] = EO._read(scene / f"{k}.tif")
    d["h_new"] = (EO._read(scene / "dsm_epoch2.tif").astype(np.float64)
                  - EO._read(scene / "dtm.tif").astype(np.float64))
    rec = d["sun"].get("shadow_classifier")
    clf = SO.ShadowClassifier.from_report(rec) if rec else None
    d["lo"] = SO.log_odds(d["target"], d["ok_t"], clf) if clf is not None else np.full(d["ev"].shape, np.nan)
    d["clf"] = clf
    return d


# ---------------------------------------------------------------------------------------------------------------
# decisions offline: the "lit where predicted shadow" ray, replayed with the pipeline's maps pass (`first`)

CUT_VARIANTS = {
    "first": "the pipeline (eval_shadow_ray's first)",
    "cut": "first, and the cut-shadow ray before the localisation: the share of ground cells seen lit (the target "
           "classifier's log-odds of shadow < 0) where the old DSM predicts shadow, at least MARGIN + 1 cells inside "
           "it, among the ray's cells in such predicted shadow, on the K cells away from the target's sensor (where "
           "a building standing on the cell shows its roof); no word where the ray holds no such cell",
    "cut_against": "control: cut with the ray towards the sensor",
    "cut_perp": "control: cut with the ray across the lean",
    "cut_raise": "cut, its ratio relative to its lowest bin (may only raise)",
    "blob": "first, and the unexplained light per object before the localisation: 8-connected blobs of ground cells "
            "in predicted shadow (>= MARGIN + 1 cells inside it) seen as lit as the run's sure-lit ground on average "
            "(log-odds of shadow <= the classifier's lit centre), at least (2 MARGIN + 1)^2 cells, whose casters (the "
            "first old-elevated cell up-sun of each blob cell) are mostly not decided changed; the blob and the cells "
            "K towards the sensor from it (the roof's footprint, K the typical height's relief displacement) get "
            "S = 1, "
            "its ratio calibrated as the rays' and added before the localisation",
    "blob_raise": "blob, its ratio relative to S = 0 (may only raise)",
    "blob_anycaster": "control: blob without the caster test (a missing shadow counted as unexplained light)",
    "blob_against": "control: blob with the footprint K away from the sensor",
    "blob_raise_anycaster": "control: blob_raise without the caster test",
    "blob_raise_against": "control: blob_raise with the footprint K away from the sensor",
    "veto": "first, with the roofs decided gone by the shadow rules (p = 1/2) left out where their predicted ground "
            "shadow is cut short, not missing: the half nearer the caster mostly seen shadowed, the farther half "
            "mostly seen lit",
    "veto_new": "first, with the roofs decided gone left out where most of their predicted ground shadow seen lit lies "
                "on ground the run decided changed (the stored change map): a new object found there explains the "
                "light",
    "veto_all": "context: first with no roof decided gone",
}


def cut_input(d, depth_min=3):
    """(lit, eligible): ground cells seen by the target in predicted shadow at least ``depth_min`` cells inside it
    (the classifier's own margin + 1: a predicted shadow edge may be off by MARGIN cells), and those seen lit."""
    psh = d["ill"] == 0
    depth = ndi.distance_transform_edt(psh)
    elig = psh & (depth >= depth_min) & ~d["elev"] & d["ok_t"] & np.isfinite(d["lo"])
    return elig & (d["lo"] < 0), elig


def cut_ray(d, name):
    from _shadow_ray_rays import lean_reach, ray_share

    lit, elig = cut_input(d)
    az, k = lean_reach(d, name)
    n = ray_share(elig, az, k)
    s = ray_share(lit, az, k)
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.where(n > 0, s / np.where(n > 0, n, 1.0), np.nan)
    return S, dict(cut_K=k, cut_lit=int(lit.sum()), cut_elig=int(elig.sum()))


def first_caster_changed(d):
    """Per cell: the stored decision (change 0/1/2) of the first old-elevated cell up-sun of it within the old
    DSM's longest shadow, -1 where none."""
    sun = d["sun"]
    az, el = math.radians(sun["azimuth"] + sun["grid_north_deg"]), math.radians(sun["elevation"])
    di, dj = math.cos(az), -math.sin(az)
    relief = float(np.nanmax(d["dsm"]) - np.nanmin(d["dsm"]))
    kmax = int(min(relief / math.tan(max(el, 0.05)) / d["cell"] + 2, max(d["elev"].shape)))
    dec = np.full(d["elev"].shape, -1, np.int16)
    found = np.zeros(d["elev"].shape, bool)
    chg = d["change"].astype(np.int16)
    for k in range(1, kmax + 1):
        a, b = -int(math.floor(k * di + 0.5)), -int(math.floor(k * dj + 0.5))
        e = shift(d["elev"], a, b)
        new = e & ~found
        dec[new] = shift(chg, a, b)[new]
        found |= e
        if found.all():
            break
    return dec


def first_caster(d):
    """Per cell: (patch id, steps) of the first old-elevated cell up-sun of it within the old DSM's longest
    shadow (-1, 0 where none)."""
    sun = d["sun"]
    az, el = math.radians(sun["azimuth"] + sun["grid_north_deg"]), math.radians(sun["elevation"])
    di, dj = math.cos(az), -math.sin(az)
    relief = float(np.nanmax(d["dsm"]) - np.nanmin(d["dsm"]))
    kmax = int(min(relief / math.tan(max(el, 0.05)) / d["cell"] + 2, max(d["elev"].shape)))
    pid = np.full(d["elev"].shape, -1, np.int64)
    dist = np.zeros(d["elev"].shape, np.int32)
    found = np.zeros(d["elev"].shape, bool)
    patch = d["patch"].astype(np.int64)
    for k in range(1, kmax + 1):
        a, b = -int(math.floor(k * di + 0.5)), -int(math.floor(k * dj + 0.5))
        e = shift(d["elev"], a, b)
        new = e & ~found
        pid[new] = shift(patch, a, b)[new]
        dist[new] = k
        found |= e
        if found.all():
            break
    return pid, dist


def cut_short_gone(d, name):
    """The roofs decided gone (``d["gone"]``) whose predicted ground shadow is cut short rather than missing: its
    cells nearer the caster than their median distance (and beyond the classifier's margin) mostly seen shadowed,
    the farther ones mostly seen lit (a surface higher than the ground receives the shadow farther out: a new
    building in it), as a bool mask of their cells; ``veto_all``: every roof decided gone (the rule's worth)."""
    gone = d["gone"]
    if "all" in name:
        return gone.copy(), dict(vetoed=int(np.unique(d["patch"][gone]).size))
    pid, dist = first_caster(d)
    lo = d["lo"]
    sh = (d["ill"] == 0) & ~d["elev"] & d["ok_t"] & np.isfinite(lo) & (dist > SO.MARGIN)
    out = np.zeros(gone.shape, bool)
    n = 0
    for p in np.unique(d["patch"][gone]):
        m = sh & (pid == p)
        if m.sum() < 2 * (2 * SO.MARGIN + 1) ** 2:
            continue
        if "new" in name:  # the light falls on ground the run decided changed (a new object found there)
            lit = m & (lo < 0)
            if lit.sum() >= (2 * SO.MARGIN + 1) ** 2 and (d["change"][lit] == 1).mean() >= 0.5:
                out |= gone & (d["patch"] == p)
                n += 1
            continue
        k = dist[m]
        near, far = k <= np.median(k), k > np.median(k)
        seen_sh = lo[m] >= 0
        if near.any() and far.any() and seen_sh[near].mean() >= 0.5 and seen_sh[far].mean() < 0.5:
            out |= gone & (d["patch"] == p)
            n += 1
    return out, dict(vetoed=n)


def blob_footprint(d, name):
    from _shadow_ray_rays import typical_height

    clf = d["clf"]
    _, elig = cut_input(d)
    thr = clf.mean_llr_lit + clf.prior
    lit = elig & (np.nan_to_num(d["lo"], nan=0.0) <= thr)
    lab, n = ndi.label(lit, structure=np.ones((3, 3)))
    size = np.bincount(lab.ravel(), minlength=n + 1)
    keep = size >= (2 * SO.MARGIN + 1) ** 2
    keep[0] = False
    if "anycaster" not in name:
        dec = first_caster_changed(d)
        on = lab > 0
        chg_n = np.bincount(lab[on], weights=(dec[on] == 1).astype(np.float64), minlength=n + 1)
        keep &= chg_n < 0.5 * size
    b = keep[lab]
    az = math.radians(d["view_az"] + d["sun"]["grid_north_deg"]) + (0.0 if name.endswith("against") else math.pi)
    h = typical_height(d)
    k = int(max(2, math.ceil(h * math.tan(math.radians(d["view_off"])) / d["cell"])))
    fp = b.copy()
    di, dj = math.cos(az), -math.sin(az)
    for s in range(1, k + 1):
        fp |= shift(b, -int(math.floor(s * di + 0.5)), -int(math.floor(s * dj + 0.5)))
    fp &= ~d["elev"]
    return fp.astype(np.float64), dict(blob_thr=round(thr, 2), blobs=int(keep.sum()), blob_cells=int(b.sum()),
                                       blob_fp=int(fp.sum()), blob_K=k)


def decide_cut(d, name):
    import eval_decision_offline as ED
    from scipy.special import expit, logit
    from _shadow_ray_rays import MIN_CHANGED, first_probabilities, ray_table, shadow_ray

    from offnadir.change import localise as L

    el = d["elev"]
    p, pw, fm, models = first_probabilities(d)
    g = ~el
    obs = g & np.isfinite(p) & (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1)
    chg, unc = obs & (p >= 0.5), obs & (p < 0.5)
    info, add = {}, None
    S, info0 = shadow_ray(d, "first")
    info.update(info0)
    if S is not None and chg.sum() >= MIN_CHANGED:
        llr, b = ray_table(S, chg, unc, "")
        add = np.where(g, llr[b], 0.0)
        if name.startswith("blob") and d["clf"] is not None:
            Sb, bi = blob_footprint(d, name)
            lt, lb = ray_table(Sb, chg, unc, "raise" if "raise" in name else "")
            if "truth_change_class" in d:  # where the footprint lies (hard runs: the scene's truth)
                fp = Sb > 0
                bi["fp_new"] = int((fp & (d["truth_change_class"] == 1)).sum())
                bi["fp_new_missed_before"] = int((fp & (d["truth_change_class"] == 1) & (d["change"] == 0)).sum())
                bi["fp_unchanged"] = int((fp & (d["truth_change_class"] == 0)).sum())
            bi["blob_log_lr"] = [round(float(lt[0]), 2), round(float(lt[-1]), 2)]
            info.update(bi)
            add = add + np.where(g, lt[lb], 0.0)
        if name.startswith("cut") and d["clf"] is not None:
            Sc, ci = cut_ray(d, name)
            known = np.isfinite(Sc)
            lt, lb = ray_table(np.nan_to_num(Sc), chg & known, unc & known, "raise" if "raise" in name else "")
            ci["cut_log_lr"] = np.round(lt, 2).tolist()
            info.update(ci)
            add = add + np.where(g & known, lt[lb], 0.0)
    if add is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            q = expit(logit(np.clip(pw, 0, 1)) + add)
        p = np.where(g & np.isfinite(q) & (add != 0), q, pw)
        if fm is not None:
            p[g] = L.localise(p[g], d["fine"][g], models[0], fm)
    gone = d.get("gone")
    if name.startswith("veto") and gone is not None and d["clf"] is not None:
        vet, vi = cut_short_gone(d, name)
        info.update(vi)
        gone = gone & ~vet
    kept = ED.rim_kept(d)
    p, ch = ED.finish(d, p, kept, ED.criteria_score(d, kept), gone)
    return p, ch, info


def replay(store, scene, names, km=False):
    import eval_decision_offline as ED
    import eval_shadow_ray as ER

    d = arrays(store, scene) if scene is not None else _km_arrays(store)
    p0, _ = ED.decide(d, "current")
    with np.errstate(invalid="ignore"):
        d["gone"] = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    out = {}
    for n in names:
        p, ch, info = decide_cut(d, n)
        r = EO.score_km(d, p, ch) if km else ER.score_hard(d, p, ch, scene)
        if not km:
            t, cls = d["t"], d["truth_change_class"]
            cells = ((d["vis"][0] == 1) & (d["vis"][t] == 1) & (d["truth_structural"] != 255)
                     & (d["truth_occluded"] == 0) & (ch != 2))
            r["roof_fa"] = int((cells & d["elev"] & (cls == 0) & (ch == 1)).sum())
            r["demolished_miss"] = int((cells & (cls == 2) & (ch == 0)).sum())
            r["raised_miss"] = int((cells & (cls == 3) & (ch == 0)).sum())
        both = np.isfinite(p) & np.isfinite(d["prob"])
        r["diff"] = float(np.max(np.abs(p[both] - d["prob"][both]), initial=0))
        r["info"] = info
        out[n] = r
    return out


def _km_arrays(store):
    import xarray as xr

    d = load(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d["change"] = np.asarray(xr.open_zarr(store, mask_and_scale=False)["change"].values[d["t"]])
    rec = d["sun"].get("shadow_classifier")
    clf = SO.ShadowClassifier.from_report(rec) if rec else None
    d["lo"] = SO.log_odds(d["target"], d["ok_t"], clf) if clf is not None else np.full(d["ev"].shape, np.nan)
    d["clf"] = clf
    return d
