"""Census: new buildings standing in a taller neighbour's predicted shadow, one image per date (issue 7, u3
thirteenth round; measured offline).

A new building B standing inside the shadow the old DSM predicts for a taller neighbour A receives A's shadow
on its roof, which is higher than the ground: the shadow is cut short there, and B's roof beyond the cut (and
whatever of it rises out of the shadow) is seen lit where the old DSM predicts shadow. The question: are the
missed new-building cells in predicted shadow seen lit by the target's shadow classifier
(:mod:`offnadir.change.shadow_observed`, calibrated per image by the run; the one stored in ``change_sun``)
more often than unchanged ground in predicted shadow (the null, the run's own cells), and where?

Per stored hard run (``benchmarks/eval_hard_sim.py --work DIR [--size N]``, its scenes' truth):

* ``new``: cells of a new building (``truth_change_class`` 1) scored by the evaluation (visible in both, not
  occluded, not undecided), predicted shadow at the new date (illumination code 0), split into missed /
  found; also the footprint **shifted by the lean** (the roof's relief displacement ``h tan(off-nadir)``
  away from the target's sensor, h the object's median ``dsm_epoch2 - dtm``) - where the target shows the
  roof - restricted to predicted-shadow cells;
* ``null``: unchanged ground cells (class 0, not elevated in the old DSM), predicted shadow, farther than
  ``--far`` cells from any change; ``null_near``: the same within ``--far`` cells of a change but not on one;
* per group: the share seen lit (log-odds of shadow < 0), strongly lit (< -2), truly lit at the new date
  (``truth_shadow`` bit 2 clear), by depth inside the predicted shadow (distance to the nearest cell
  predicted lit: 1-2, 3-5, 6-10, > 10 cells); the AUC of ``-log-odds`` for the missed new cells against the
  null.

    python benchmarks/eval_shadow_cut.py --hard DIR --seeds 0 1 2 [--far 20]

``--variants`` (decisions offline, :mod:`_shadow_cut_decide`; ``--hard DIR`` and / or ``--km DIR``, the stores of
``benchmarks/eval_change_real.py --workdir DIR``): ``first`` is the pipeline (the maps pass replayed, its largest
difference to the stored probability printed); ``cut*`` a ray of K cells away from the target's sensor (K the old
DSM's typical height's relief displacement) reading the share of ground cells seen lit where the old DSM predicts
shadow; ``blob*`` the object form: 8-connected blobs of such cells as lit as the run's sure-lit ground on average
(log-odds of shadow at most the classifier's lit centre ``mean_llr_lit + prior``), at least ``(2 MARGIN + 1)^2``
cells, kept where most of their cells' first old-elevated cell up-sun (the caster) is not decided changed (a caster
decided changed explains the light: its shadow is missing); the blob and the K cells towards the sensor from it
(the roof's footprint) get S = 1. Both ratios are calibrated as the shadow ray's (ground cells split by the
localised decision, counts + 1/2, pool-adjacent-violators) and added with it before the localisation; controls
``_against`` / ``_perp`` (the ray or footprint reversed / across), ``blob_anycaster`` (no caster test); ``_raise``
the ratio relative to S = 0. Off where the shadow ray is off (the classifier is no witness: Kahramanmaras).
``veto``: the opposite decision, the roofs decided gone by the roof-wide shadow rules (p = 1/2) left out where
their predicted ground shadow is cut short rather than missing (its half nearer the caster mostly seen shadowed,
the farther half mostly seen lit), ``veto_new`` where most of their shadow seen lit lies on ground the run decided
changed (a new object found there explains the light); ``veto_all``: no roof decided gone (what the rule is worth).
Measured in ``docs/change_detection.md`` (u3 thirteenth round): not adopted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _shadow_ray_rays import shift  # noqa: E402
from _shadow_cut_decide import (CUT_VARIANTS, arrays, blob_footprint, cut_input, decide_cut,  # noqa: E402, F401
                                cut_short_gone, first_caster_changed, replay)


DEPTHS = ((1, 2), (3, 5), (6, 10), (11, 10**6))


def auc(pos, neg):
    """P(pos > neg) + 1/2 P(tie) by ranks."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if not len(pos) or not len(neg):
        return math.nan
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([pos, neg]))
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def lean_footprint(d, obj):
    """The footprint ``obj`` shifted by its relief displacement away from the target's sensor."""
    h = float(np.median(d["h_new"][obj]))
    az = math.radians(d["view_az"] + d["sun"]["grid_north_deg"])
    k = h * math.tan(math.radians(d["view_off"])) / d["cell"]
    # as the relief ray (``_shadow_ray_rays.lean_ray``): rows south, (cos az, -sin az) points away from the sensor
    di, dj = math.cos(az) * k, -math.sin(az) * k
    return shift(obj, -int(round(di)), -int(round(dj))), h


def groups(d, far):
    t = d["t"]
    cls, occ = d["truth_change_class"], d["truth_occluded"]
    scored = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (d["truth_structural"] != 255) & (occ == 0) & (d["change"] != 2)
    psh = d["ill"] == 0
    new = cls == 1
    out = {}
    out["new_missed"] = new & scored & psh & (d["change"] == 0)
    out["new_found"] = new & scored & psh & (d["change"] == 1)
    lab, n = ndi.label(new)
    lean = np.zeros_like(new)
    for k, sl in enumerate(ndi.find_objects(lab), 1):
        if sl is None:
            continue
        obj = lab == k
        if obj.sum() < 20:
            continue
        fp, _ = lean_footprint(d, obj)
        lean |= fp
    seen = (d["vis"][t] == 1) & d["ok_t"]
    out["lean_roof_psh"] = lean & psh & seen & ~d["elev"]
    dist = ndi.distance_transform_edt(cls == 0)
    ground0 = scored & (cls == 0) & ~d["elev"] & psh
    out["null"] = ground0 & (dist > far)
    out["null_near"] = ground0 & (dist <= far)
    depth = ndi.distance_transform_edt(psh)  # distance to the nearest cell not predicted shadow
    return out, depth


def census(d, far):
    out, depth = groups(d, far)
    lo, tsh = d["lo"], d["truth_shadow"]
    rows = {}
    for name, m in out.items():
        m = m & np.isfinite(lo)
        r = dict(n=int(m.sum()), seen_lit=float((lo[m] < 0).mean()) if m.any() else math.nan,
                 strongly_lit=float((lo[m] < -2).mean()) if m.any() else math.nan,
                 truly_lit=float(((tsh[m] & 2) == 0).mean()) if m.any() else math.nan)
        for a, b in DEPTHS:
            mm = m & (depth >= a) & (depth <= b)
            r[f"d{a}"] = (int(mm.sum()), round(float((lo[mm] < 0).mean()), 3) if mm.any() else None,
                          round(float(((tsh[mm] & 2) == 0).mean()), 3) if mm.any() else None)
        rows[name] = r
    nm = out["null"] & np.isfinite(lo)
    mm = out["new_missed"] & np.isfinite(lo)
    rows["auc_missed_vs_null"] = auc(-lo[mm], -lo[nm])
    deep = depth >= 3
    rows["auc_missed_vs_null_deep3"] = auc(-lo[mm & deep], -lo[nm & deep])
    return rows




def per_object(d, far, strong=-2.0, min_scored=50):
    """Per new building: its scored and missed cells, its displaced roof (the footprint shifted by the lean) in
    predicted shadow and the share of that seen lit / strongly lit; and the blobs (8-connected) of strongly lit
    predicted-shadow ground cells, split by whether they touch a new building's displaced roof or lie farther
    than ``far`` cells from any change (the null)."""
    t = d["t"]
    cls, occ = d["truth_change_class"], d["truth_occluded"]
    scored = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (d["truth_structural"] != 255) & (occ == 0) & (d["change"] != 2)
    psh = d["ill"] == 0
    seen = d["ok_t"] & np.isfinite(d["lo"])
    lo = np.nan_to_num(d["lo"], nan=0.0)
    lit_s = psh & seen & ~d["elev"] & (lo < strong)
    lab, n = ndi.label(cls == 1)
    rows = []
    allroof = np.zeros(cls.shape, bool)
    for k, sl in enumerate(ndi.find_objects(lab), 1):
        obj = lab == k
        sc = obj & scored
        if sc.sum() < min_scored:
            continue
        fp, h = lean_footprint(d, obj)
        roof = fp & psh & seen & ~d["elev"]
        allroof |= fp
        rows.append(dict(id=k, scored=int(sc.sum()), missed=int((sc & (d["change"] == 0)).sum()), h=round(h, 1),
                         fp_psh=float((obj & psh)[sc].mean()), roof_psh=int(roof.sum()),
                         roof_lit=float((lo[roof] < 0).mean()) if roof.any() else math.nan,
                         roof_strong=int((roof & (lo < strong)).sum())))
    blab, nb = ndi.label(lit_s, structure=np.ones((3, 3)))
    sizes = np.bincount(blab.ravel())[1:]
    dist = ndi.distance_transform_edt(cls == 0)
    on_new = np.bincount(blab[allroof & lit_s], minlength=nb + 1)[1:] > 0
    far_ = np.array([True] * nb)
    if nb:
        near = np.bincount(blab[lit_s & (dist <= far)], minlength=nb + 1)[1:] > 0
        far_ = ~near
    return rows, dict(sizes_new=np.sort(sizes[on_new])[::-1].tolist(), sizes_null=np.sort(sizes[far_])[::-1].tolist(),
                      null_area=int((scored & (cls == 0) & ~d["elev"] & psh & (dist > far)).sum()))



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--km", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--far", type=int, default=20)
    ap.add_argument("--variants", nargs="*", choices=list(CUT_VARIANTS),
                    help="decisions offline instead of the census")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    res = {}
    if a.variants:
        for s in (a.seeds if a.hard else []):
            res[s] = replay(a.hard / f"hard{s}.zarr", a.hard / f"hard{s}", a.variants)
        for t in ((1, 2) if a.km else ()):
            res[f"km{t}"] = replay(a.km / f"km_post{t}.zarr", None, a.variants, km=True)
        for v in a.variants:
            print(f"== {v}: {CUT_VARIANTS[v]}")
            rows = [res[s][v] for s in (a.seeds if a.hard else [])]
            if rows:
                f1 = [r["elevated_f1"] for r in rows]
                tot = {k: sum(r[k] for r in rows) for k in ("ground_fa_cells", "new_miss", "roof_fa", "demolished_miss",
                                                             "raised_miss")}
                print(f"  hard elevated F1 {' '.join(f'{x:.3f}' for x in f1)} (mean {np.mean(f1):.4f}); AUC mean "
                      f"{np.mean([r['auc'] for r in rows]):.4f}; all-cells F1 mean "
                      f"{np.mean([r['f1'] for r in rows]):.4f}; ground FA cells {tot['ground_fa_cells']}; "
                      f"new-building misses {tot['new_miss']} ({' '.join(str(r['new_miss']) for r in rows)}); "
                      f"unchanged-roof FA {tot['roof_fa']}; misses demolished {tot['demolished_miss']}, "
                      f"raised {tot['raised_miss']}")
                for s, r in zip(a.seeds, rows):
                    print(f"    seed {s}: {r['info']} (vs stored {r['diff']:.2g})")
            for t in ((1, 2) if a.km else ()):
                r = res[f"km{t}"][v]
                print(f"  Kahramanmaras img{t}: F1 {r['f1']:.4f}, AUC {r['auc']:.4f}, objects {r['objects']}; "
                      f"{r['info']} (vs stored {r['diff']:.2g})")
        if a.json:
            a.json.write_text(json.dumps(res, indent=1, default=str))
        return 0
    for s in a.seeds:
        d = arrays(a.hard / f"hard{s}.zarr", a.hard / f"hard{s}")
        clf = d["clf"]
        rows = census(d, a.far)
        rows["classifier"] = None if clf is None else dict(acc_shadow=round(clf.accuracy_shadow, 3),
                                                           acc_lit=round(clf.accuracy_lit, 3))
        res[s] = rows
        print(f"== seed {s} sun el {d['sun']['elevation']:.1f} classifier {rows['classifier']}")
        for k, r in rows.items():
            if isinstance(r, dict) and "n" in r:
                print(f"  {k:14s} n {r['n']:7d} seen lit {r['seen_lit']:.3f} strongly {r['strongly_lit']:.3f} "
                      f"truly lit {r['truly_lit']:.3f} | by depth (n, seen lit, truly lit) "
                      + " ".join(f"{a_}-{b if b < 10**6 else '':}: {r[f'd{a_}']}" for a_, b in DEPTHS))
        print(f"  AUC(-lo) missed new vs null {rows['auc_missed_vs_null']:.3f}; depth >= 3 "
              f"{rows['auc_missed_vs_null_deep3']:.3f}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
