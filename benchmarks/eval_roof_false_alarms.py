"""Evaluation: which rule flags the hard simulator's UNCHANGED roofs (issue 7, H7), on stored runs.

For every scored unchanged elevated cell (no truth change, not a tree) that the stored run flags,
the sources that would flag it on their own, recomputed from the store as the maps pass does
(``eval_decision_offline.decide``'s steps, kept apart):

* ``census``: the calibrated census evidence after the rim witness (p >= 1/2 before the patch
  criteria are or-ed in), split by whether the target's predicted illumination (the store's
  ``illumination``) has the cell in shadow;
* ``structural``, ``spectral``, ``outline``: the stored patch criterion score >= 1/2 (the structural
  score after the rim veto, as stored);
* ``shadow rules``: a roof decided gone (missing shadow) or raised (longer shadow): the stored
  probability 1/2 over a recomputed one below it.

Each flagged cell is counted under every source that fires and, once, under its *sole* source
(``several`` when more than one fires). Per roof patch the structural criterion's figures
(``r_ref``, ``r(0)``, shift) are listed for the patches it flags, unchanged and changed, so that a
chance-correlation bound can be checked against both.

``--ground``: the unchanged ground's false alarms too, split by the old DSM's predicted sun
transition (lit at both dates, shadowed at both, lit -> shadow, shadow -> lit), with the truth's
shadow class (as predicted / unexplained / missing / lit) and the sources that fire on them.

``--roofs``: every unchanged roof with at least 20 flagged cells: its flagged cells by source, the share of its
cells truly without direct sun at the base / the target date (``truth_shadow.tif``) against the share the old DSM
predicts (the store's illumination codes; a target share well above the predicted one is an *unexplained* shadow,
a neighbour's change laid on the roof) and the distance to the nearest cell of a new building (R3, eighth round).

``--regions``: every connected region (8-neighbours) of flagged unchanged-roof cells (q1, tenth round): its size,
its roof patch (the majority of its cells) and the share of that roof's scored unchanged cells it covers (*whole*:
at least :data:`WHOLE_SHARE`, else a *fragment*), and its sole source (majority of its cells); summed per source
and shape. Beside them, per source, the *changed* roofs the same source finds (patches whose scored cells are
mostly changed and at least half flagged by it): count, cells and the patch-level figures that could separate the
two (the criterion's score, the rim contrasts ``b1`` / ``t1``, the patch size), as medians and ranges.

    python benchmarks/eval_roof_false_alarms.py --hard /tmp/h7/w1024 --seeds 0 1 2 [--patches] [--ground] [--roofs]
                                                [--regions]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as DO  # noqa: E402
import eval_hard_sim as HS  # noqa: E402


def sources(store, t: int = 1) -> dict:
    """Per cell: each source's flag (bool arrays) and the stored flag, for target ``t``."""
    import xarray as xr

    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.change import outline as OL

    d = DO.load(store, t)
    e, el = d["ev"], d["elev"]
    p = np.full(e.shape, np.nan)
    models = {}
    for s, m in ((1, el), (0, ~el)):
        models[s] = DO.refit(C.histogram(P.ratio_evidence(e), m), s)
        p[m] = C.probability(P.ratio_evidence(e[m]), models[s])
    if d.get("fine") is not None:
        from offnadir.change import localise as L

        fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), ~el), anchor=P.ANCHOR["local"])
        p[~el] = L.localise(p[~el], d["fine"][~el], models[0], fm)
    with np.errstate(invalid="ignore"):
        kept = d["pelev"] & (d["b1"] >= 2.0) & (d["t1"] >= 2.0)
    p = OL.rim_witness(p, P.paint(d["patch"], d["ids"], kept.astype(np.float64)), P.DECISION_P)
    out = {"census": p >= 0.5}
    for k in ("structural", "spectral", "outline"):
        out[k] = P.paint(d["patch"], d["ids"], d[k]) >= 0.5
    full = P.either(p, P.paint(d["patch"], d["ids"], np.maximum.reduce([d["structural"], d["spectral"],
                                                                          d["outline"]])))
    with np.errstate(invalid="ignore"):
        out["shadow rules"] = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (full < 0.5)
        out["stored"] = np.nan_to_num(d["prob"]) >= 0.5
    out["full"] = full  # the probability before the shadow rules, as the maps pass computes it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        out["shadow_t"] = np.asarray(ds["illumination"].values[t]) == 0
        tab = {k: np.asarray(ds[k].values[t], np.float64) for k in ("patch_corr_ref", "patch_corr0", "patch_shift",
                                                                    "patch_structural_score", "patch_rim_base",
                                                                    "patch_rim_target")}
        tab["n_cells"] = np.asarray(ds["patch_n_cells"].values)
    out["d"], out["tab"] = d, tab
    return out


def truth(scene: Path, meta: dict, d: dict):
    """(unchanged roof cells, changed cells) scored as ``eval_hard_sim`` scores them."""
    from scipy.ndimage import distance_transform_edt

    from offnadir.simulate import scene as S
    from offnadir.simulate import truth as T

    sb = HS._read(scene / "truth_structural.tif")
    cls = HS._read(scene / "truth_change_class.tif")
    occ = HS._read(scene / "truth_occluded.tif")
    elev = HS._read(scene / "truth_elevated.tif") == 1
    cells = (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1) & (occ == 0) & (sb != T.IGNORE)
    model = S.generate(int(meta["seed"]), int(meta["size"]), float(meta["cell"]), float(meta["heights"]["base_height"]))
    tree = S.rasterize(model)[1].kind == S.TREE
    near = distance_transform_edt(cls == 0) * float(meta["cell"]) <= HS.NEAR_M
    roof = cells & (sb == 0) & elev & ~tree
    changed = cells & np.isin(sb, (T.LOSS, T.GAIN)) & elev
    return roof, near, changed


NAMES = ("census", "structural", "spectral", "outline", "shadow rules")
#: least flagged cells of an unchanged roof for ``--roofs`` to list it
ROOF_MIN_FLAGGED = 20


def roofs(store, scene) -> list:
    """Per unchanged roof patch with >= :data:`ROOF_MIN_FLAGGED` flagged cells (most flagged first): flagged
    cells, flagged cells per source, the truth's and the old DSM's share of its cells without direct sun at
    each date, and the distance (m) from the patch to the nearest cell of class ``new``."""
    import json

    import xarray as xr
    from scipy.ndimage import distance_transform_edt

    src = sources(store)
    d = src["d"]
    meta = json.loads((scene / "scene.json").read_text())
    roof, _, _ = truth(scene, meta, d)
    fa = roof & src["stored"]
    shadow = HS._read(scene / "truth_shadow.tif")
    dist_new = distance_transform_edt(HS._read(scene / "truth_change_class.tif") != 1) * float(meta["cell"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ill = np.asarray(xr.open_zarr(store, mask_and_scale=False)["illumination"].values)
    rows = []
    for pid in np.unique(d["patch"][fa]):
        m = d["patch"] == pid
        f = fa & m
        if f.sum() < ROOF_MIN_FLAGGED:
            continue
        rows.append(dict(id=int(pid), cells=int(m.sum()), flagged=int(f.sum()),
                         sources={k: int((f & src[k]).sum()) for k in NAMES if (f & src[k]).any()},
                         true_b=float(((shadow[m] & 1) > 0).mean()), true_t=float(((shadow[m] & 2) > 0).mean()),
                         pred_b=float((ill[0][m] == 0).mean()), pred_t=float((ill[1][m] == 0).mean()),
                         dist_new=float(dist_new[m].min())))
    return sorted(rows, key=lambda r: -r["flagged"])


#: share of its roof's scored unchanged cells a flagged region must cover to count as the *whole* roof
WHOLE_SHARE = 0.8
#: least cells of a region for ``--regions`` to list it one by one
REGION_LIST_MIN = 100


def _sole(src, m) -> str:
    """The sole source of the majority of the cells ``m`` (``several`` where more than one fires on most)."""
    fires = np.stack([src[k][m] for k in NAMES])
    nf = fires.sum(axis=0)
    counts = {k: int((fires[i] & (nf == 1)).sum()) for i, k in enumerate(NAMES)}
    counts["several"] = int((nf > 1).sum())
    counts["none"] = int((nf == 0).sum())
    return max(counts, key=counts.get)


def flagged_regions(fa, roof, idx, flags: dict) -> list:
    """The connected regions (8-neighbours) of the flagged unchanged-roof cells ``fa``: per region its cells, its
    patch (index ``idx`` of the majority of its cells), the share of that patch's unchanged-roof cells (``roof``) it
    covers, *whole* (>= :data:`WHOLE_SHARE`) or *fragment*, and its sole source (:func:`_sole` over ``flags``,
    one boolean array per name of :data:`NAMES`)."""
    from scipy import ndimage as ndi

    lab, _ = ndi.label(fa, structure=np.ones((3, 3), bool))
    rows = []
    for r, sl in enumerate(ndi.find_objects(lab), start=1):
        m = lab[sl] == r
        i = int(np.bincount(idx[sl][m]).argmax())
        share = float(m.sum() / max(int((roof & (idx == i)).sum()), 1))
        rows.append(dict(index=i, cells=int(m.sum()), roof=int((roof & (idx == i)).sum()), share=share,
                         shape="whole" if share >= WHOLE_SHARE else "fragment",
                         source=_sole({k: flags[k][sl] for k in NAMES}, m)))
    return rows


def regions(store, scene) -> dict:
    """The ``--regions`` census of one stored run (see the module docstring): ``rows`` one per region of
    flagged unchanged-roof cells, ``changed`` per source the changed patches it finds with their figures."""
    import json

    src = sources(store)
    d = src["d"]
    meta = json.loads((scene / "scene.json").read_text())
    roof, _, changed = truth(scene, meta, d)
    idx = np.clip(np.searchsorted(d["ids"], d["patch"]), 0, len(d["ids"]) - 1)
    score = {"structural": d["structural"], "spectral": d["spectral"], "outline": d["outline"]}
    rows = flagged_regions(roof & src["stored"], roof, idx, src)
    for r in rows:
        i, k = r["index"], r["source"]
        r.update(id=int(d["ids"][i]), b1=float(d["b1"][i]), t1=float(d["t1"][i]),
                 score=float(score[k][i]) if k in score else float("nan"))
    # the changed roofs each source finds: patches mostly changed, at least half of their changed cells flagged by it
    found = {}
    for k in NAMES:
        for i in np.unique(idx[changed & src[k]]):
            m = idx == i
            n_ch, n_un = int((changed & m).sum()), int((roof & m).sum())
            if n_ch <= n_un or (changed & m & src[k]).sum() * 2 < n_ch:
                continue
            found.setdefault(k, []).append(dict(id=int(d["ids"][i]), cells=n_ch, b1=float(d["b1"][i]),
                                                t1=float(d["t1"][i]),
                                                score=float(score[k][i]) if k in score else float("nan")))
    return {"rows": sorted(rows, key=lambda q: -q["cells"]), "changed": found}


def _spread(v) -> str:
    v = np.asarray([x for x in v if np.isfinite(x)], np.float64)
    if not len(v):
        return "-"
    return f"{np.median(v):.2f} [{v.min():.2f}, {v.max():.2f}]"


def print_regions(s: int, q: dict) -> dict:
    """Prints one seed's ``--regions`` census; returns its per (source, shape) totals (regions, cells)."""
    tot = {}
    for r in q["rows"]:
        n, c = tot.get((r["source"], r["shape"]), (0, 0))
        tot[(r["source"], r["shape"])] = (n + 1, c + r["cells"])
    sizes = np.asarray([r["cells"] for r in q["rows"]])
    print(f"seed {s}: {len(sizes)} regions of flagged unchanged-roof cells, {int(sizes.sum())} cells; sizes: "
          f"< 20 {int((sizes < 20).sum())} ({int(sizes[sizes < 20].sum())} cells), 20-99 "
          f"{int(((sizes >= 20) & (sizes < 100)).sum())} ({int(sizes[(sizes >= 20) & (sizes < 100)].sum())}), >= 100 "
          f"{int((sizes >= 100).sum())} ({int(sizes[sizes >= 100].sum())})")
    for (k, shape), (n, c) in sorted(tot.items(), key=lambda x: -x[1][1]):
        rs = [r for r in q["rows"] if r["source"] == k and r["shape"] == shape]
        print(f"  {k:12s} {shape:8s}: {n:4d} regions, {c:6d} cells; b1 {_spread([r['b1'] for r in rs])}, t1 "
              f"{_spread([r['t1'] for r in rs])}, score {_spread([r['score'] for r in rs])}")
    for k, rows in q["changed"].items():
        print(f"  changed roofs {k} finds: {len(rows)} patches, {sum(r['cells'] for r in rows)} cells; b1 "
              f"{_spread([r['b1'] for r in rows])}, t1 {_spread([r['t1'] for r in rows])}, score "
              f"{_spread([r['score'] for r in rows])}, size {_spread([r['cells'] for r in rows])}")
    for r in q["rows"]:
        if r["cells"] >= REGION_LIST_MIN:
            print("    region on roof {id}: {cells} cells of {roof} ({shape}, {share:.2f}); {source}; b1 {b1:.2f} t1 "
                  "{t1:.2f} score {score:.2f}".format(**r))
    return tot


def one(store, scene) -> dict:
    import json

    src = sources(store)
    d, tab = src["d"], src["tab"]
    meta = json.loads((scene / "scene.json").read_text())
    roof, near, changed = truth(scene, meta, d)
    fa = roof & src["stored"]
    res = {"flagged": int(fa.sum()), "roof_cells": int(roof.sum()), "near": int((fa & near).sum())}
    fires = np.stack([src[k] for k in NAMES])
    nf = fires.sum(axis=0)
    res["any"] = {k: int((fa & src[k]).sum()) for k in NAMES}
    res["sole"] = {k: int((fa & src[k] & (nf == 1)).sum()) for k in NAMES}
    res["sole"]["several"] = int((fa & (nf > 1)).sum())
    res["sole"]["none (unexplained)"] = int((fa & (nf == 0)).sum())
    res["census_in_target_shadow"] = int((fa & src["census"] & src["shadow_t"]).sum())
    tp = changed & src["stored"]
    res["true_any"] = {k: int((tp & src[k]).sum()) for k in NAMES}
    res["true_sole"] = {k: int((tp & src[k] & (nf == 1)).sum()) for k in NAMES}
    # per patch: the structural criterion's flagged roofs, unchanged (majority of cells) or changed
    rows = []
    idx = np.searchsorted(d["ids"], d["patch"])
    idx = np.clip(idx, 0, len(d["ids"]) - 1)
    struct = np.nan_to_num(tab["patch_structural_score"]) >= 0.5
    for i in np.flatnonzero(struct & d["pelev"]):
        m = idx == i
        n_roof, n_ch = int((roof & m).sum()), int((changed & m).sum())
        rows.append(dict(id=int(d["ids"][i]), cells=int(tab["n_cells"][i]), unchanged=n_roof, changed=n_ch,
                         r_ref=tab["patch_corr_ref"][i], r0=tab["patch_corr0"][i], shift_m=tab["patch_shift"][i],
                         b1=tab["patch_rim_base"][i], t1=tab["patch_rim_target"][i]))
    res["structural_patches"] = rows
    return res


def ground(store, scene) -> list:
    """The unchanged ground cells the stored run flags (target 1, scored as ``eval_hard_sim``), split
    by the old DSM's predicted sun transition (:func:`offnadir.change.sun_pairs.sun_labels`; label 0
    split into lit and shadowed at both dates): per part the count, the rate among its unchanged ground
    cells, those farther than ``NEAR_M`` from a change, the truth's shadow class
    (``eval_hard_sim.shadow_classes``) and the sources that fire on them (as :func:`sources`)."""
    import json

    import xarray as xr
    from scipy.ndimage import distance_transform_edt

    from offnadir.change import sun_pairs as SP
    from offnadir.simulate import truth as T

    src = sources(store)
    d = src["d"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        ill = np.asarray(ds["illumination"].values)
        chm = np.asarray(ds["change"].values[1])
    meta = json.loads((scene / "scene.json").read_text())
    sb, cls = HS._read(scene / "truth_structural.tif"), HS._read(scene / "truth_change_class.tif")
    occ, elev = HS._read(scene / "truth_occluded.tif"), HS._read(scene / "truth_elevated.tif") == 1
    shadow = HS._read(scene / "truth_shadow.tif")
    cells = (d["vis"][0] == 1) & (d["vis"][1] == 1) & (occ == 0) & (sb != T.IGNORE) & (chm != 2)
    near = distance_transform_edt(cls == 0) * float(meta["cell"]) <= HS.NEAR_M
    gr = cells & (sb == 0) & ~elev
    fa = gr & (chm == 1)
    lab = SP.sun_labels(ill, 1)
    sc = HS.shadow_classes(ill[0] == 0, ill[1] == 0, shadow)
    rows = []
    for name, m in (("lit at both", (lab == 0) & (ill[0] != 0) & (ill[1] != 0)),
                    ("shadow at both", (lab == 0) & (ill[0] == 0)), ("lit -> shadow", lab == 1),
                    ("shadow -> lit", lab == 2)):
        f = fa & m
        rows.append(dict(part=name, flagged=int(f.sum()), rate=float(f.sum() / max((gr & m).sum(), 1)),
                         far=int((f & ~near).sum()), truth={k: int((f & v).sum()) for k, v in sc.items()},
                         sources={k: int((f & src[k]).sum()) for k in ("census", "spectral", "structural", "outline")}))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hard", type=Path, default=Path("/tmp/eval_hard_sim"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--patches", action="store_true", help="list the structural criterion's flagged roofs")
    ap.add_argument("--roofs", action="store_true", help="list every unchanged roof flagged (>= 20 cells): sources, "
                                                          "true and predicted shadow shares, nearest new building")
    ap.add_argument("--regions", action="store_true", help="the connected regions of flagged unchanged-roof cells: "
                                                            "size, whole roof or fragment, sole source; and the "
                                                            "changed roofs each source finds")
    ap.add_argument("--ground", action="store_true", help="also split the unchanged ground's false alarms by the "
                                                          "predicted sun transition, with their sources")
    a = ap.parse_args(argv)
    tot = {}
    for s in a.seeds:
        store, scene = a.hard / f"hard{s}.zarr", a.hard / f"hard{s}"
        if not store.exists():
            sys.exit(f"{store} not found: run `python benchmarks/eval_hard_sim.py --work {a.hard} --seeds {s}` first")
        if a.ground:
            for g in ground(store, scene):
                print(f"seed {s} ground, {g['part']:15s}: flagged {g['flagged']:6d} (rate {g['rate']:.3f}; "
                      f"{g['far']} far from a change) | truth: " + ", ".join(f"{k} {v}" for k, v in g["truth"].items())
                      + " | sources: " + ", ".join(f"{k} {v}" for k, v in g["sources"].items()))
        if a.regions:
            for key, (n, c) in print_regions(s, regions(store, scene)).items():
                rt = tot.setdefault("regions", {})
                rn, rc = rt.get(key, (0, 0))
                rt[key] = (rn + n, rc + c)
            continue
        r = one(store, scene)
        print(f"seed {s}: unchanged roof cells flagged {r['flagged']} of {r['roof_cells']} ({r['near']} near a change)")
        print("  fires on them: " + ", ".join(f"{k} {v}" for k, v in r["any"].items())
              + f"; census in the target's predicted shadow {r['census_in_target_shadow']}")
        print("  sole source:   " + ", ".join(f"{k} {v}" for k, v in r["sole"].items()))
        print("  changed elevated cells found, by source: " + ", ".join(f"{k} {v}" for k, v in r["true_any"].items())
              + "; sole: " + ", ".join(f"{k} {v}" for k, v in r["true_sole"].items()))
        if a.patches:
            for p in r["structural_patches"]:
                print("    structural patch {id}: {cells} cells, unchanged {unchanged}, changed {changed}, r_ref "
                      "{r_ref:.3f} r0 {r0:.3f} shift {shift_m:.1f} m, rim b1 {b1:.2f} t1 {t1:.2f}".format(**p))
        if a.roofs:
            for q in roofs(store, scene):
                print("    roof {id}: {flagged} of {cells} cells flagged ({src}); no direct sun base / target: truth "
                      "{true_b:.2f} / {true_t:.2f}, old DSM {pred_b:.2f} / {pred_t:.2f}; nearest new building "
                      "{dist_new:.1f} m".format(src=", ".join(f"{k} {v}" for k, v in q["sources"].items()), **q))
        for k, v in r["sole"].items():
            tot[k] = tot.get(k, 0) + v
    if a.regions:
        print("over the seeds, regions by sole source and shape: " + ", ".join(
            f"{k} {sh} {n}/{c}" for (k, sh), (n, c) in sorted(tot.get("regions", {}).items(), key=lambda x: -x[1][1])))
        return 0
    n = max(sum(tot.values()), 1)
    print("over the seeds, sole source of the unchanged-roof false alarms: "
          + ", ".join(f"{k} {v} ({100 * v / n:.0f} %)" for k, v in tot.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
