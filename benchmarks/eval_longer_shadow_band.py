"""Evaluation: the longer-shadow rule's fringe under the sun's range, replayed on stored runs (issue 7, R6
eighth round; measured, not wired).

:func:`offnadir.change.longer_shadow.tile_sums` keeps the fringe cells lit at every end of the sun's
credible range (:mod:`offnadir.change.sun_range`), with the band measured from the centre sun's edge.
Under a high, uncertain sun the range takes the band's inner cells (t_az0 seed 5: a +9 m roof's 18
cells -> 9, its verdict lost). This replays the rule on one store (the whole grid as one window, the
stored DSM, elevated patches, illumination codes, visibility, values, the stored suns, their ranges
and shadow classifiers) for three fringes:

* ``centre``: no range (the rule before ``a4aec46``);
* ``range``: the band from the centre's edge, the range's filter (today's rule);
* ``lowsun``: the band from the range's lowest sun (the longest shadow the range casts), the filter.

and prints, per variant, the casters tested and decided raised (with each decided patch's truth
classes), and the truly raised roofs' fringe sums (``n``, ``S``, the base's ``n0``, ``S0``, ``P``).

    python benchmarks/eval_longer_shadow_band.py STORE.zarr [STORE.zarr ...]   # scene dir = store without .zarr
"""

from __future__ import annotations

import json
import math
import sys
import warnings

import numpy as np

VARIANTS = ("centre", "range", "lowsun")


def replay(store: str) -> dict:
    import rasterio
    import xarray as xr

    from offnadir.change import longer_shadow as LS
    from offnadir.change import missing_shadow as MS
    from offnadir.change import shadow_observed as SO
    from offnadir.change import sun_range as SR

    warnings.simplefilter("ignore")
    ds = xr.open_zarr(store)
    sun = ds.attrs["change_sun"]
    sun = json.loads(sun) if isinstance(sun, str) else sun
    h = np.asarray(ds.dsm.values, np.float64)
    el = np.asarray(ds.elevated.values) == 1
    patch = np.asarray(ds.patch.values)
    lab = np.where(el, patch, 0)
    ill, vis = np.asarray(ds.illumination.values), np.asarray(ds.visible.values)
    val = np.asarray(ds.value.values, np.float64)
    cell = abs(ds.attrs["spatial:transform"][0])
    cls = rasterio.open(store[:-5] + "/truth_change_class.tif").read(1)
    relief = float(np.nanmax(h) - np.nanmin(h))
    if any(not r.get("shadow_classifier") for r in sun[:2]):
        return {"store": store, "skipped": "an image has no shadow classifier: the rule does not run"}
    sums = {}
    for t in (0, 1):
        rec = sun[t]
        clf = SO.ShadowClassifier.from_report(rec["shadow_classifier"])
        az, e = math.radians(rec["azimuth"] + rec["grid_north_deg"]), math.radians(rec["elevation"])
        rng = tuple(math.radians(v) for v in (rec.get("rules_sun_range_deg") or (0.0, 0.0)))
        usable = (vis[0] == 1) & (vis[t] == 1)
        maxd = min(relief / (math.tan(max(e - rng[1], 1e-3)) * cell) + 2 + LS.BAND_CELLS + 2, float(max(h.shape)))
        for v in VARIANTS:
            ii, jj, lc = LS.fringe(h, lab, ill[t], usable, cell, az, e - rng[1] if v == "lowsun" else e, 0.3, maxd)
            if v != "centre" and len(ii):
                lit = ~SR.shadowed_at_ends(h, ii, jj, (az, e), rng, cell, 0.3, maxd).any(axis=0)
                ii, jj, lc = ii[lit], jj[lit], lc[lit]
            llr = clf.cell_log_odds(val[t][:, ii, jj].mean(axis=0)) - clf.prior
            ids, inv = np.unique(lc, return_inverse=True)
            sums[(t, v)] = (ids, np.bincount(inv, minlength=len(ids)), np.bincount(inv, llr, minlength=len(ids)), clf)
    raised_truth = set(np.unique(patch[(cls == 3) & el]).tolist())
    out = {"store": store, "variants": {}}
    for v in VARIANTS:
        ids, n, s, clf = sums[(1, v)]
        ids0, n0, s0, _ = sums[(0, v)]
        k = np.minimum(np.searchsorted(ids0, ids), max(len(ids0) - 1, 0))
        hit = (len(ids0) > 0) & (ids0[k] == ids) if len(ids0) else np.zeros(len(ids), bool)
        N0, S0 = np.where(hit, n0[k] if len(ids0) else 0, 0.0), np.where(hit, s0[k] if len(ids0) else 0, 0.0)
        post = LS.decide(n, s, clf, N0, S0)
        llr = np.where(N0 > 0, np.minimum(s / MS.CORRELATED, -S0 / MS.CORRELATED), s / MS.CORRELATED)
        rec = {"tested": int(len(ids)), "raised": [], "prior_log_odds": float(MS.prior_log_odds(llr)),
               "truth_raised": {}}
        for i in np.nonzero(post >= 0.5)[0]:
            c, m = np.unique(cls[(patch == ids[i]) & el], return_counts=True)
            rec["raised"].append({"patch": float(ids[i]), "n": int(n[i]), "S": float(s[i]), "P": float(post[i]),
                                  "truth": dict(zip(c.tolist(), m.tolist()))})
        for r in sorted(raised_truth):
            i = int(np.searchsorted(ids, r))
            rec["truth_raised"][r] = (None if i >= len(ids) or ids[i] != r else
                                      {"n": int(n[i]), "S": float(s[i]), "n0": float(N0[i]), "S0": float(S0[i]),
                                       "P": float(post[i])})
        out["variants"][v] = rec
    return out


def main(argv=None) -> int:
    stores = (argv if argv is not None else sys.argv[1:])
    if not stores:
        print(__doc__)
        return 2
    flips = {v: {"changed": 0, "unchanged": 0, "patches": 0} for v in ("lowsun_only", "range_only")}
    for st in stores:
        r = replay(st.rstrip("/"))
        if "variants" in r:  # roofs decided raised by one of today's fringe and the lowest sun's only
            a = {d["patch"]: d for d in r["variants"]["range"]["raised"]}
            b = {d["patch"]: d for d in r["variants"]["lowsun"]["raised"]}
            for key, only in (("lowsun_only", [b[k] for k in b if k not in a]),
                              ("range_only", [a[k] for k in a if k not in b])):
                for d in only:
                    flips[key]["patches"] += 1
                    flips[key]["unchanged"] += d["truth"].get(0, 0)
                    flips[key]["changed"] += sum(m for c, m in d["truth"].items() if c != 0)
        print(r["store"])
        if "skipped" in r:
            print("  " + r["skipped"])
            continue
        for v, rec in r["variants"].items():
            print(f"  {v:7s} tested {rec['tested']:3d}, raised {len(rec['raised'])}, prior log-odds "
                  f"{rec['prior_log_odds']:.2f}")
            for d in rec["raised"]:
                print(f"      decided raised: patch {d['patch']:.0f} n {d['n']} S {d['S']:.1f} P {d['P']:.3f} "
                      f"truth classes {d['truth']}")
            for p, d in rec["truth_raised"].items():
                print(f"      truly raised patch {p:.0f}: " + ("no fringe" if d is None else
                      f"n {d['n']} S {d['S']:.1f} base n0 {d['n0']:.0f} S0 {d['S0']:.1f} P {d['P']:.3f}"))
    for k, f in flips.items():
        print(f"roofs decided raised by {k.replace('_only', '')} only: {f['patches']} ({f['changed']} changed cells, "
              f"{f['unchanged']} unchanged cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
