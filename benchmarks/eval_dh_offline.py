"""Evaluation: how the same-date height change ``dh`` enters the change decision, replayed offline on
the stores of ``benchmarks/eval_hard_sim.py --stereo`` against the truth (issue 7, H4).

The change stage combines, per cell, the structural probability ``p_struct`` with the dh test's
``p_dh`` (:func:`offnadir.change.dh_evidence.combine`). This harness reruns the change stage once on
a copy of each store with that combination switched off (so the copy's ``probability`` is
``p_struct`` wherever a coherent ``dh`` exists, and the final probability elsewhere), then replays
the combination with the current rule (``current``: it must reproduce the stored ``change``, the
largest difference is printed) and with variants of the dh test, scoring each as
``offnadir evaluate`` does (elevated cells: decided, visible in both images by the cube and by the
truth, the structural truth's loss/gain against no change).

It also prints (``--diagnose``), per truth class of the missed, falsely flagged, found and rightly
unflagged elevated cells, how ``dh`` stood: not measured, incoherent, kept by the small-object rule
only (``object``), within the bound, beyond it (by the window rule) (with the median
structural probability ``ps`` and the median ``|dh - truth|``); and the combination's ties (cells
at probability 0.5: the structural probability and ``p_dh`` at their opposite clips).

Variants (``--variants``; docs/change_detection.md, "Unresolved zeros", has the figures):

* ``current``: the change stage's rule (the check: it must match the stored maps of a store made
  with the same code);
* ``window``: the window rule alone (the change stage before the small-object rule; it matches
  stores made before it);
* ``object:dsm[:S[:lower]]``, ``object:patch``, ``object:dsmpatch``: the window rule and a small
  object's (a DSM-elevated component, a base patch, or the DSM-elevated cells' patches, whose
  bounding box fits in the window) answer shared by ``S`` of its cells (default 0.5; ``lower``:
  only "lower" answers; ``ground``: "lower" answers within the bound of the object's height above
  the median DSM of its outer ring); ``object:dsm:0.5:lower`` is the change stage's rule;
* ``bound:B``: another bound ``B`` (m) for the dh test and its coherence (the default is the
  change option ``elevated_height``, 2.5 m);
* ``share:S``: another minimum window share for the coherence rule (default ``(r+1)²/(2r+1)²``);
* ``patch:S``: on DSM-elevated cells, a "lower"/"higher" answer shared by less than ``S`` of the
  cell's patch (its measured cells) is no evidence.
* ``edge[:S]``: a coherent "within" answer whose window holds at least ``S`` (default the coherence
  quadrant) of coherent beyond-bound answers is no evidence (a zero beside a change; n6 ninth round,
  measured and not adopted: +0.004 on the hard stereo mean, Kahramanmaraş F1 -0.007).

``--km STORE REFERENCE``: the same replay on a real stereo store (the README's Kahramanmaraş
``offnadir detect``), scored on all decided cells as ``offnadir evaluate`` does (F1, P, R, score
AUC, changed objects found). The copies (``--off``, default ``WORK/offline``) are made once; the
change stage runs there with the ``offnadir`` on the path.

    python benchmarks/eval_dh_offline.py --work /tmp/eval_hard_sim [--seeds 0 1 2 3 4 5] [--prepare]
                                         [--variants current bound:2.0 ...] [--diagnose] [--all-cells]
    python benchmarks/eval_dh_offline.py --work /tmp/x --km km.zarr reference_change.tif --variants current bound:3.0
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _read(path):
    import warnings

    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def prepare(store: Path, copy: Path) -> None:
    """The change stage rerun on a copy of ``store`` with ``combine`` returning ``p_struct``."""
    from offnadir.change import cells
    from offnadir.change.options import ChangeOptions
    from offnadir.change.stage import detect_store

    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(store, copy)
    saved = cells.combine
    cells.combine = lambda p, p_dh, removal=None: p
    try:
        detect_store(copy, ChangeOptions(), quiet=True)
    finally:
        cells.combine = saved


def load(work: Path, off: Path, seed: int) -> dict:
    import xarray as xr

    d = work / f"hard_stereo{seed}"
    ds = xr.open_zarr(work / f"hard_stereo{seed}.zarr", mask_and_scale=False)
    dc = xr.open_zarr(off / f"hard_stereo{seed}.zarr", mask_and_scale=False)
    out = {k: np.asarray(ds[k].values) for k in ("visible", "change", "probability", "dh", "dh_sigma", "dh_score")}
    out["p_struct"] = np.asarray(dc["probability"].values, np.float64)
    out["change_struct"] = np.asarray(dc["change"].values)
    out["elevated_dsm"] = np.asarray(ds["elevated"].values) == 1
    out["patch"] = np.asarray(ds["patch"].values)
    out["dsm"] = np.asarray(ds["dsm"].values)
    out["truth"] = _read(d / "truth_structural.tif")
    out["cls"] = _read(d / "truth_change_class.tif")
    out["elev"] = _read(d / "truth_elevated.tif") == 1
    out["occ"] = {1: _read(d / "truth_occluded.tif"), 2: _read(d / "truth_occluded_target2.tif")}
    out["true_dh"] = _read(d / "dsm_epoch2.tif").astype(np.float64) - _read(d / "dsm.tif")
    out["bound"] = 2.5
    out["cell_area"] = float(abs((ds.x[1] - ds.x[0]) * (ds.y[1] - ds.y[0])))
    return out


def all_cells(d, t, p):
    """F1, score AUC and changed objects found on all decided cells, as ``offnadir evaluate``."""
    from offnadir.change.cells import DECISION_P
    from offnadir.change.reference import height_scores

    ch = np.where(np.isfinite(p), (np.nan_to_num(p) >= DECISION_P).astype(np.uint8), 2)
    cells = (d["visible"][0] == 1) & (d["visible"][t] == 1) & (d["occ"][t] == 0)  # as eval_hard_sim
    r = height_scores(d["truth"], ch, np.nan_to_num(p), cells, d["cell_area"])
    return r["f1"], r["auc"], r["objects"]["found"], r["objects"]["objects"]


def coherent(dh, bound, min_share=None, objects=None):
    """``dh`` where the coherence rule keeps it (``min_share``: another minimum share of the window;
    ``objects``: the DSM-elevated mask, for the change stage's small-object rule when it is on)."""
    from offnadir.change import dh_evidence as DE
    from offnadir.change.dh_evidence import coherent_mask, dh_answer

    if min_share is None:
        keep = coherent_mask(dh_answer(dh, bound), None, 0.5)
    else:
        from offnadir.cube.sweep import WINDOW_RADIUS
        from offnadir.cube.sweep_kernels import coherent_share

        share = np.empty(dh.shape)
        coherent_share(np.ascontiguousarray(dh_answer(dh, bound)), WINDOW_RADIUS, 0.5, share)
        with np.errstate(invalid="ignore"):
            keep = share >= min_share
    if objects is not None and DE.OBJECT_RULE:
        keep = keep | DE.small_object_removal(dh_answer(dh, bound), objects)
    return np.where(keep, dh, np.nan)


def removal(d, t):
    """The change stage's removals down to the local ground (:func:`dh_evidence.removal_to_ground`)
    of image t on the whole grid (the rule does not depend on the tiling), or None without a DSM."""
    from offnadir.change import dh_evidence as DE
    from offnadir.change.options import ChangeOptions
    from offnadir.change.segment import opening_radius
    from offnadir.change.tileio import MemoryIO
    from offnadir.cube.plan import Tile

    if "dsm" not in d or not DE.REMOVAL_TIE:
        return None
    h = np.asarray(d["dsm"], np.float64)
    cell = float(np.sqrt(d["cell_area"])) if "cell_area" in d else d.get("cell", 0.5)
    dhc = coherent(d["dh"][t].astype(np.float64), d["bound"])  # the window rule's (not the small objects')
    r = DE.removal_to_ground(MemoryIO({"dsm": h}), Tile(0, 0, 0, h.shape[0], 0, h.shape[1]), h.shape, dhc[None],
                             d["elevated_dsm"], d["bound"], opening_radius(ChangeOptions(), cell))
    return None if r is None else r[0]


def p_final(d, t, p_dh):
    """The combination replayed: where a coherent ``p_dh`` exists, combined with ``p_struct`` (the
    ties decided by :func:`removal`, as the change stage does)."""
    from offnadir.change.dh_evidence import combine

    ps = d["p_struct"][t]
    return np.where(np.isfinite(p_dh), combine(ps, p_dh, removal(d, t)), ps)


def variant(d, t, name):
    """p_dh of image t under the named rule (NaN: no evidence)."""
    from offnadir.change.dh_evidence import dh_answer, dh_probability

    dh, sig = d["dh"][t].astype(np.float64), d["dh_sigma"][t].astype(np.float64)
    b = d["bound"]
    el = d["elevated_dsm"]
    if name == "current":
        return dh_probability(coherent(dh, b, objects=el), sig, b)
    if name == "window":  # the window rule alone (the change stage before the small-object rule)
        return dh_probability(coherent(dh, b), sig, b)
    if name.startswith("bound:"):  # another bound B (m) for the dh test and its coherence
        nb = float(name.split(":")[1])
        return dh_probability(coherent(dh, nb, objects=el), sig, nb)
    if name.startswith("patch:"):  # on DSM-elevated cells, a "lower"/"higher" answer shared by less
        # than this share of the cell's patch (its measured cells) is no evidence
        x = float(name.split(":")[1])
        dhc = coherent(dh, b, objects=el)
        ans = dh_answer(dhc, b)
        share = patch_share(d["patch"], ans)
        weak = d["elevated_dsm"] & np.isfinite(ans) & (ans != 0) & (share < x)
        return np.where(weak, np.nan, dh_probability(dhc, sig, b))
    if name.startswith("object:"):  # object:dsm[:S[:lower]] / object:patch / object:dsmpatch: the
        # window rule, and also coherent where the cell's small object (DSM-elevated component /
        # base patch fitting in the window) answers as the cell on at least S of its cells (0.5)
        from offnadir.change.dh_evidence import coherent_mask, object_coherent

        parts = name.split(":")
        x = float(parts[2]) if len(parts) > 2 else 0.5
        ans = dh_answer(dh, b)
        objects = d["elevated_dsm"] if parts[1] == "dsm" else np.asarray(d["patch"])
        if parts[1] == "dsmpatch":  # the base patches of DSM-elevated cells
            objects = np.where(d["elevated_dsm"], np.asarray(d["patch"]), 0)
        obj = object_coherent(ans, objects, None, x)
        if "lower" in parts[3:]:  # only a small object's "lower" answer (its removal)
            obj &= ans == -1
        if "ground" in parts[3:]:  # ... down to the ground around it, within the bound
            obj &= np.abs(dh + height_above_ring(d["dsm"], d["elevated_dsm"])) <= b
        keep = coherent_mask(ans, None, 0.5) | obj
        return dh_probability(np.where(keep, dh, np.nan), sig, b)
    if name == "edge" or name.startswith("edge:"):  # edge[:S]: a "within" answer whose window holds at least S (default the
        # coherence quadrant (r+1)²/(2r+1)²) of coherent beyond-bound answers is no measurement (n6, ninth round)
        from scipy import ndimage as ndi

        from offnadir.change.dh_evidence import coherent_min_share
        from offnadir.cube.sweep import WINDOW_RADIUS

        parts = name.split(":")
        x = float(parts[1]) if len(parts) > 1 and parts[1] else coherent_min_share(WINDOW_RADIUS)
        dhc = coherent(dh, b, objects=el)
        a = np.abs(np.nan_to_num(dhc, nan=-1.0))
        within, beyond = np.isfinite(dhc) & (a <= b), np.isfinite(dhc) & (a > b)
        share = ndi.uniform_filter(beyond.astype(np.float64), 2 * WINDOW_RADIUS + 1, mode="constant")
        return np.where(within & (share >= x - 1e-9), np.nan, dh_probability(dhc, sig, b))
    if name.startswith("share:"):  # another minimum window share for the coherence rule
        x = float(name.split(":")[1])
        return dh_probability(coherent(dh, b, x, objects=el), sig, b)
    raise KeyError(name)


def height_above_ring(dsm, objects):
    """Per cell of a DSM-elevated component: its DSM height above the median DSM of the
    component's outer ring (the 8-neighbours outside it); NaN elsewhere."""
    from scipy import ndimage

    lab, n = ndimage.label(objects)
    ring = ndimage.grey_dilation(lab, size=(3, 3)) * (lab == 0)
    ok = ring > 0
    order = np.argsort(ring[ok], kind="stable")
    vals, keys = np.asarray(dsm, np.float64)[ok][order], ring[ok][order]
    med = np.full(n + 1, np.nan)
    bounds = np.searchsorted(keys, np.arange(n + 2))
    for k in range(1, n + 1):
        if bounds[k + 1] > bounds[k]:
            med[k] = np.median(vals[bounds[k]:bounds[k + 1]])
    return np.where(lab > 0, np.asarray(dsm, np.float64) - med[lab], np.nan)


def patch_share(lab, ans):
    """Per cell: the share of its patch's measured cells (finite ``ans``) whose dh answer equals
    the cell's (NaN where not measured or outside patches)."""
    lab = np.asarray(lab).astype(np.int64)
    out = np.full(lab.shape, np.nan)
    fin = np.isfinite(ans) & (lab > 0)
    n = np.bincount(lab[fin], minlength=lab.max() + 1).astype(np.float64)
    for a in (-1, 0, 1):
        m = fin & (ans == a)
        c = np.bincount(lab[m], minlength=lab.max() + 1)
        out[m] = c[lab[m]] / np.maximum(n[lab[m]], 1)
    return out


def scored(d, t):
    vis = d["visible"]
    return (vis[0] == 1) & (vis[t] == 1) & (d["occ"][t] == 0) & (d["truth"] != 255)


def f1(d, t, p):
    from offnadir.change.cells import DECISION_P

    m = scored(d, t) & d["elev"] & np.isfinite(p)
    truth = np.isin(d["truth"][m], (1, 2))
    pred = p[m] >= DECISION_P
    tp, fp, fn = (truth & pred).sum(), (~truth & pred).sum(), (truth & ~pred).sum()
    return 2 * tp / max(2 * tp + fp + fn, 1), int(fn), int(fp)


def miss_by_class(d, t, p, acc):
    """Adds the elevated cells missed per truth class and the falsely flagged ones to ``acc``."""
    from offnadir.change.cells import DECISION_P
    from offnadir.simulate.truth import CLASSES

    m = scored(d, t) & d["elev"] & np.isfinite(p)
    truth = np.isin(d["truth"], (1, 2))
    flag = np.where(np.isfinite(p), p, 0) >= DECISION_P
    for code in (1, 2, 3, 5, 6):
        k = "miss " + CLASSES[code]
        acc[k] = acc.get(k, 0) + int((m & truth & ~flag & (d["cls"] == code)).sum())
    acc["false elevated"] = acc.get("false elevated", 0) + int((m & ~truth & flag).sum())


def ground_false(d, t, p):
    """Flagged share of the unchanged ground cells (truth), scored as :func:`f1` scores."""
    from offnadir.change.cells import DECISION_P

    m = scored(d, t) & ~d["elev"] & np.isfinite(p) & (d["truth"] == 0)
    return float((p[m] >= DECISION_P).mean()) if m.any() else float("nan")


def diagnose(d, t):
    from offnadir.change.cells import DECISION_P
    from offnadir.simulate.truth import CLASSES

    b = d["bound"]
    dh = d["dh"][t].astype(np.float64)
    dhc = coherent(dh, b)
    m = scored(d, t) & d["elev"]
    flag = d["change"][t] == 1
    truth = np.isin(d["truth"], (1, 2))
    state = np.full(dh.shape, "unmeasured", object)
    state[np.isfinite(dh)] = "incoherent"
    from offnadir.change.dh_evidence import dh_answer, small_object_removal

    ans = dh_answer(dh, b)
    state[np.isfinite(dh) & ~np.isfinite(dhc) & small_object_removal(ans, d["elevated_dsm"])] = "object"
    fin = np.isfinite(dhc)
    state[fin & (np.abs(np.nan_to_num(dhc)) <= b)] = "within"
    state[fin & (np.abs(np.nan_to_num(dhc)) > b)] = "beyond"
    err = np.abs(dh - d["true_dh"])
    for what, sel in (("miss", m & truth & ~flag), ("false", m & ~truth & flag), ("hit", m & truth & flag),
                      ("ok", m & ~truth & ~flag)):
        for code, name in CLASSES.items():
            c = sel & (d["cls"] == code)
            if not c.any():
                continue
            parts = []
            for s in ("unmeasured", "incoherent", "object", "within", "beyond"):
                k = c & (state == s)
                if k.any():
                    ok = k & np.isfinite(err)
                    e = f" err {np.median(err[ok]):.1f}" if ok.any() else ""
                    ps = np.median(d["p_struct"][t][k])
                    parts.append(f"{s} {int(k.sum())} (ps {ps:.3f}{e})")
            tdh = np.median(np.abs(d["true_dh"][c]))
            print(f"    {what:5s} {name:12s} {int(c.sum()):5d} |true dh| {tdh:4.1f}: " + ", ".join(parts))
    p = d["probability"][t]
    tie = m & np.isfinite(p) & (np.abs(p - 0.5) < 1e-3)
    print(f"    ties (p 0.5): changed {int((tie & truth).sum())}, unchanged {int((tie & ~truth).sum())}; "
          f"decision at {DECISION_P}")


def load_km(store: Path, copy: Path, reference: Path):
    """(d, ref): a real stereo store's arrays for the replay (its structural probability from the copy made
    with the dh combination off, ``prepare``) and its height-change reference on the store's grid."""
    import xarray as xr

    from offnadir.change.evaluate import read_on_grid

    ds = xr.open_zarr(store, mask_and_scale=False)
    dc = xr.open_zarr(copy, mask_and_scale=False)
    ref = read_on_grid(reference, ds, "truth")
    d = {k: np.asarray(ds[k].values) for k in ("visible", "change", "probability", "dh", "dh_sigma", "patch")}
    d["elevated_dsm"] = np.asarray(ds["elevated"].values) == 1
    d["dsm"] = np.asarray(ds["dsm"].values)
    d["cell"] = float(abs(ds.x[1] - ds.x[0]))
    d["p_struct"] = np.asarray(dc["probability"].values, np.float64)
    d["bound"] = 2.5
    return d, ref


def km(store: Path, reference: Path, variants, prepare_copy: bool, off: Path) -> None:
    """The replay on a real stereo store (Kahramanmaraş) against its height-change reference: F1,
    score AUC and objects found on the decided cells, as ``offnadir evaluate`` scores them."""
    from offnadir.change.cells import DECISION_P
    from offnadir.change.reference import height_scores

    copy = off / store.name
    if prepare_copy or not copy.exists():
        prepare(store, copy)
    d, ref = load_km(store, copy, reference)
    vis = d["visible"]
    for t in range(1, vis.shape[0]):
        cells = (vis[0] == 1) & (vis[t] == 1)
        line = [f"{store.name} image {t}"]
        for v in variants:
            p = p_final(d, t, variant(d, t, v))
            ch = np.where(d["change"][t] == 2, 2, (p >= DECISION_P).astype(np.uint8))
            r = height_scores(ref, ch, p, cells, 0.25)
            line.append(f"{v}: F1 {r['f1']:.3f} P {r['precision']:.3f} R {r['recall']:.3f} AUC {r['auc']:.3f} "
                        f"objects {r['objects']['found']}/{r['objects']['objects']}")
        print(" | ".join(line))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="the --work of eval_hard_sim.py --stereo")
    ap.add_argument("--off", type=Path, default=None, help="where the copies go (default WORK/offline)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--prepare", action="store_true", help="(re)make the copies with the combination off")
    ap.add_argument("--variants", nargs="+", default=["current"])
    ap.add_argument("--diagnose", action="store_true")
    ap.add_argument("--all-cells", action="store_true",
                    help="also F1, score AUC and changed objects on all decided cells (offnadir evaluate's)")
    ap.add_argument("--km", type=Path, nargs=2, metavar=("STORE", "REFERENCE"),
                    help="replay a real stereo store (the README's Kahramanmaraş detect) against its reference")
    a = ap.parse_args(argv)
    off = a.off or a.work / "offline"
    off.mkdir(parents=True, exist_ok=True)
    if a.km:
        km(a.km[0], a.km[1], a.variants, a.prepare, off)
        return 0
    table = {v: [] for v in a.variants}
    classes, alls = {}, {}
    for seed in a.seeds:
        if a.prepare or not (off / f"hard_stereo{seed}.zarr").exists():
            prepare(a.work / f"hard_stereo{seed}.zarr", off / f"hard_stereo{seed}.zarr")
        d = load(a.work, off, seed)
        for t in (1, 2):
            stored = np.where(d["change"][t] == 2, np.nan, d["probability"][t].astype(np.float64))
            ref = f1(d, t, stored)
            line = [f"seed {seed} t{t}: stored F1 {ref[0]:.3f} (FN {ref[1]}, FP {ref[2]})"]
            for v in a.variants:
                p = p_final(d, t, variant(d, t, v))
                p = np.where(np.isfinite(stored), p, np.nan)
                r = f1(d, t, p)
                table[v].append(r[0])
                miss_by_class(d, t, p, classes.setdefault(v, {}))
                extra = ""
                if v == "current":
                    ok = np.isfinite(stored)
                    extra = f" max|p-stored| {np.nanmax(np.abs(p[ok] - stored[ok])):.2e}"
                if a.all_cells:
                    al = all_cells(d, t, p)
                    alls.setdefault(v, []).append(al)
                    extra += f"; all F1 {al[0]:.3f} AUC {al[1]:.3f} objects {al[2]}/{al[3]}"
                line.append(f"{v} {r[0]:.3f} (FN {r[1]}, FP {r[2]}, ground {ground_false(d, t, p):.4f}){extra}")
            print(" | ".join(line))
            if a.diagnose:
                diagnose(d, t)
    for v, xs in table.items():
        print(f"{v:24s} mean {np.mean(xs):.4f}  " + " ".join(f"{x:.3f}" for x in xs))
    for v, xs in alls.items():
        x = np.asarray(xs, np.float64)
        print(f"{v:24s} all decided cells: F1 mean {x[:, 0].mean():.4f}, AUC mean {x[:, 1].mean():.4f}, "
              f"objects {int(x[:, 2].sum())}/{int(x[:, 3].sum())}")
    for v, c in classes.items():
        print(f"{v:24s} " + ", ".join(f"{k} {n}" for k, n in c.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
