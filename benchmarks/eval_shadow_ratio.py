"""Evaluation: the missing-shadow rule's casters read on the cross-date ratio of their shadow (issue 7, u4
thirteenth round), on stored runs.

A caster's predicted shadow that is there at both dates darkens the same ground at both: per cell the ratio
``r = log x_t - log x_0`` of the two images' values cancels the surface's own albedo (the ground is the DSM's,
unchanged), so a shadow on bright ground, which the pooled one-image classifier reads "lit", is read by how its
light *changed*. The two classes come from the run itself: cells predicted sure shadow at both dates (``A``:
shadow stayed) and cells sure shadow at the base, sure lit at the target (``B``: the sun's move between the dates
lit them, the change a gone caster's shadow makes), each with :func:`offnadir.change.shadow_observed.calibrate`'s
binned, monotone likelihood ratio. Per caster (the target's march, :func:`missing_shadow.shadow_casters`) the sum
``R`` of ``log f_B(r) / f_A(r)`` over its cells that are sure shadow at both dates.

Variants of the missing-shadow decision (target 1), beside ``current``:

* ``ratio``: ``L = min(S_t / C, -S_0 / C, R / C)`` (``R`` absent: as now), the prior's EM on that ``L``;
* ``ratio_mid``: ``current``'s ``L`` and also the caster's mean ``R / n_r`` at least the ratio classes'
  midpoint (as :func:`missing_shadow.midpoint` for the intensities);
* each also ``+rim``: the pipeline's rim veto (``eval_shadow_casters.rim_veto`` ``rim_veto_dark_s``) after it.

``--casters`` lists every caster decided by ``current`` or a variant with its figures and truth class.
``--check-crops``: the pipeline's crop form (:mod:`offnadir.change.shadow_ratio`: each candidate's box from
its plane sums, its crop, its sole cells) gives ``sole_ratio_sums``' whole-grid numbers, caster by caster.

    python benchmarks/eval_shadow_ratio.py --hard W --seeds 0 1 2 [--km K] [--casters]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_evidence_offline as OFF  # noqa: E402
import eval_missing_shadow as EMS  # noqa: E402
import eval_shadow_casters as ESC  # noqa: E402
from _shadow_casters_rules import caster_sums, decisions  # noqa: E402

from offnadir.change import missing_shadow as MS  # noqa: E402
from offnadir.change import shadow_observed as SO  # noqa: E402
from offnadir.change.options import ChangeOptions  # noqa: E402

VARIANTS = ("current", "current+rim", "ratio", "ratio+rim", "ratio_mid", "ratio_mid+rim", "ratio_sole_mid",
            "ratio_sole_mid+rim")


def ratio_classes(a, t: int = 1):
    """(r, A, B): the per-cell log ratio target / base and the two sure classes (see the docstring)."""
    vis = a["visible"]
    x = a["value"].astype(np.float64).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(x[t]) - np.log(x[0])
    ok = np.isfinite(r)
    s0, l0 = SO.training_classes(a["illumination"][0], (vis[0] == 1) & ok)
    st, lt = SO.training_classes(a["illumination"][t], (vis[t] == 1) & ok)
    return r, s0 & st, s0 & lt


def ratio_classifier(r, A, B):
    """The binned monotone classifier of ``A`` (as "shadow") against ``B`` (as "lit") on ``r``, or None."""
    codes = np.full(r.shape, 255, np.uint8)
    codes[A] = 0
    codes[B] = 1
    return SO.calibrate(r, codes, A | B, margin=0)


def ratio_sums(run, ctx, ids, t: int = 1):
    """Per caster of ``ids``: ``(n_r, R)`` over its target-march cells sure shadow at both dates, and the
    classifier (None: too few cells in a class)."""
    a = run["arr"]
    r, A, B = ratio_classes(a, t)
    clf = ratio_classifier(r, A, B)
    n = np.zeros(len(ids))
    s = np.zeros(len(ids))
    if clf is None:
        return n, s, None
    h = a["dsm"].astype(np.float64)
    lab = np.where(a["elevated"] == 1, a["patch"], 0).astype(np.int64)
    az, el = ctx.sun[t]
    ci, cj = MS.shadow_casters(h, a["illumination"][t], ctx.cell, az, el, ChangeOptions().sun_tolerance,
                               float(max(h.shape)))
    m = A & (ci >= 0)
    c = lab[ci[m], cj[m]]
    llr = -(clf.cell_log_odds(r[m]) - clf.prior)  # log f_B / f_A
    k = np.searchsorted(ids, c)
    ok = (c > 0) & (k < len(ids))
    ok[ok] &= ids[k[ok]] == c[ok]
    n += np.bincount(k[ok], minlength=len(ids))[:len(ids)]
    s += np.bincount(k[ok], llr[ok], minlength=len(ids))[:len(ids)]
    return n, s, clf


def sole_ratio_sums(run, ctx, ids, cand, rclf, t: int = 1):
    """``(n_r, R)`` as :func:`ratio_sums` over the caster's *sole* cells only, for the casters ``cand``: the
    cells the target's sun leaves lit once the caster is lowered to its ground (the median of the DSM over the
    non-elevated cells within 3 cells of it): a cell another object shades too says nothing of this one."""
    from scipy import ndimage

    from offnadir.change.sun_kernels import illumination

    a = run["arr"]
    r, A, _ = ratio_classes(a, t)
    h = a["dsm"].astype(np.float64)
    lab = np.where(a["elevated"] == 1, a["patch"], 0).astype(np.int64)
    az, el = ctx.sun[t]
    ci, cj = MS.shadow_casters(h, a["illumination"][t], ctx.cell, az, el, ChangeOptions().sun_tolerance,
                               float(max(h.shape)))
    clab = np.where(ci >= 0, lab[np.maximum(ci, 0), np.maximum(cj, 0)], 0)
    relief = float(np.nanmax(h) - np.nanmin(h))
    L = int(relief / (math.tan(max(el, 1e-3)) * ctx.cell)) + 6
    n = np.zeros(len(ids))
    s = np.zeros(len(ids))
    for c in cand:
        j = int(np.searchsorted(ids, c))
        roof = lab == c
        ii, jj = np.nonzero(roof)
        if not len(ii):
            continue
        i0, i1 = max(ii.min() - L, 0), min(ii.max() + L + 1, h.shape[0])
        j0, j1 = max(jj.min() - L, 0), min(jj.max() + L + 1, h.shape[1])
        hc = h[i0:i1, j0:j1].copy()
        rc = roof[i0:i1, j0:j1]
        ring = ndimage.binary_dilation(rc, iterations=3) & ~rc & (a["elevated"][i0:i1, j0:j1] != 1)
        if not ring.any():
            continue
        hc[rc] = np.nanmedian(hc[ring])
        codes = np.empty(hc.shape, np.uint8)
        illumination(np.ascontiguousarray(hc), ctx.cell, az, el, float(ChangeOptions().sun_tolerance), 1.0,
                     float(max(hc.shape)), codes)
        m = (clab[i0:i1, j0:j1] == c) & A[i0:i1, j0:j1] & (codes > 0) & (codes < 255)
        if m.any():
            rr = r[i0:i1, j0:j1][m]
            n[j] = m.sum()
            s[j] = float(np.sum(-(rclf.cell_log_odds(rr) - rclf.prior)))
    return n, s


def check_crops(run, ctx, ids, cand, rclf, t: int = 1):
    """(candidates, mismatches, CPU-s of the crops): :func:`sole_ratio_sums` against the pipeline's
    crops (:func:`offnadir.change.shadow_ratio.roof_box`, ``caster_crop``, ``sole_sums``)."""
    import time

    from offnadir.change import crown
    from offnadir.change import shadow_ratio as SRT
    from offnadir.change.tileio import MemoryIO

    a = run["arr"]
    ns, Rs = sole_ratio_sums(run, ctx, ids, cand, rclf, t)
    io = MemoryIO({k: a[k] for k in ("dsm", "visible", "value", "illumination", "patch", "elevated")})
    lab = np.where(a["elevated"] == 1, a["patch"], 0)
    pids = np.unique(a["patch"][a["patch"] > 0])
    plane = crown.plane_sums(a["dsm"], a["patch"], pids)
    reach = SRT.crop_reach(ctx.h_range[1] - ctx.h_range[0], ctx.sun[t][1], ctx.cell)
    bad, cpu = 0, 0.0
    for c in cand:
        j, k = int(np.searchsorted(ids, c)), int(np.searchsorted(pids, c))
        ii, jj = np.nonzero(lab == c)
        t0 = time.process_time()
        box = SRT.roof_box(io, int(c), plane[k], ctx.shape)
        n, s = 0, 0.0
        if box is not None:
            h, lb, el, r, A, _ = SRT.caster_crop(io, box, reach, ctx.shape, t, ctx.sun[t][0])
            n, s = SRT.sole_sums(h, lb, el, r, A, int(c), ctx.cell, *ctx.sun[t], float(ChangeOptions().sun_tolerance),
                                 float(max(ctx.shape)), rclf)
        cpu += time.process_time() - t0
        exact = (ii.min(), ii.max() + 1, jj.min(), jj.max() + 1) if len(ii) else None
        bad += not (box == exact and n == ns[j] and math.isclose(s, Rs[j], rel_tol=1e-12, abs_tol=1e-9))
    return len(cand), bad, cpu


def decide_ratio(sums, suns, nr, R, rclf, variant: str, t: int = 1):
    ids = np.asarray(sums["ids"])
    rows = sums["rows"]
    n, s = rows["msh_n"], rows["msh_llr"]
    C = MS.CORRELATED
    tested = n[:, t] > 0
    lt = s[:, t] / C
    lb = np.where(n[:, 0] > 0, -s[:, 0] / C, np.inf)
    llr = np.minimum(lt, lb)
    if variant == "ratio" and rclf is not None:
        llr = np.minimum(llr, np.where(nr > 0, R / C, np.inf))
    llr = np.where(tested, llr, np.nan)
    prior = MS.prior_log_odds(llr[tested])
    post = 1.0 / (1.0 + np.exp(-np.clip(np.where(tested, llr, -np.inf) + prior, -50.0, 50.0)))
    mid = MS.midpoint(MS.classifiers(suns)[t])
    with np.errstate(invalid="ignore", divide="ignore"):
        post = np.where(s[:, t] / np.maximum(n[:, t], 1) >= mid, post, np.minimum(post, 0.0))
        if (variant.startswith("ratio_mid") or variant.startswith("ratio_sole_mid")) and rclf is not None:
            rmid = MS.midpoint(rclf)
            # fewer cells than one independent observation (CORRELATED) is no witness
            post = np.where((nr < MS.CORRELATED) | (R / np.maximum(nr, 1) >= rmid), post, np.minimum(post, 0.0))
    return ids, post


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--casters", action="store_true")
    ap.add_argument("--check-crops", action="store_true")
    a = ap.parse_args(argv)
    for name, store, scene in EMS.stored_jobs(a.hard, a.seeds, a.km):
        run = EMS.load(store)
        sums, suns, ctx = caster_sums(run)
        ids = np.asarray(sums["ids"])
        nr, R, rclf = ratio_sums(run, ctx, ids)
        if rclf is None:
            print(f"{name}: no ratio classifier (too few cells shadow at base and lit at target)")
        else:
            print(f"{name}: ratio classes A {rclf.n_shadow} B {rclf.n_lit}, accuracy {rclf.accuracy_shadow:.3f} / "
                  f"{rclf.accuracy_lit:.3f}, midpoint {MS.midpoint(rclf):.3f}")
        cur = decisions(sums, suns, "current")
        if a.check_crops and rclf is not None:
            did, post = cur["missing"]
            nc, bad, cpu = check_crops(run, ctx, ids, did[post >= 0.5], rclf)
            print(f"{name}: crops of {nc} candidates: {bad} differ from the whole-grid form ({cpu:.2f} CPU-s)")
        p0 = ESC.pre_rule_probability(store, run, cur)
        cls = OFF._read(scene / "truth_change_class.tif") if scene is not None else None
        listed = {}
        sole = None
        for v in a.variants:
            base = v.replace("+rim", "")
            dec = dict(cur)
            if base == "ratio_sole_mid" and rclf is not None:
                did, post = cur["missing"]
                cand = did[post >= 0.5]
                ns, Rs = sole_ratio_sums(run, ctx, ids, cand, rclf)
                dec["missing"] = decide_ratio(sums, suns, ns, Rs, rclf, base)
                sole = (ns, Rs)
            elif base != "current":
                dec["missing"] = decide_ratio(sums, suns, nr, R, rclf, base)
            if v.endswith("+rim"):
                dec = ESC.rim_veto(store, dec, ("missing", "longer-if-moved"), dark_only=True)
            p = ESC.apply(run, p0, dec)
            sc = ESC.score_hard(run, p, scene) if scene is not None else EMS.score_km(run, p)
            rows = ESC.caster_rows(run, sums, dec, cls)
            by = {}
            for r in rows:
                if r["rule"] != "missing":
                    continue
                key = r["cls"]
                k_, c_ = by.get(key, (0, 0))
                by[key] = (k_ + 1, c_ + r["cells"])
                listed.setdefault(r["id"], r)
            print(f"{name:9s} {v:14s} " + ", ".join(f"{k} {x:.4f}" for k, x in sc.items())
                  + " | missing decided: " + ", ".join(f"{k} {n_}/{c_}" for k, (n_, c_) in sorted(by.items())),
                  flush=True)
        if a.casters:
            for pid, r in sorted(listed.items(), key=lambda kv: (kv[1]["cls"], -kv[1]["cells"])):
                j = int(np.searchsorted(ids, pid))
                mr = R[j] / nr[j] if nr[j] else math.nan
                print(f"    {pid:8d} {r['cls']:12s} cells {r['cells']:5d} n_t {r['n_t']:4d} m_t {r['m_t']:5.2f} "
                      f"m_0 {r['m_0']:6.2f} | n_r {int(nr[j]):4d} mean R {mr:6.2f} R/C {R[j] / MS.CORRELATED:7.1f}"
                      + ("" if sole is None else f" | sole n_r {int(sole[0][j]):4d} mean R "
                         f"{sole[1][j] / sole[0][j] if sole[0][j] else math.nan:6.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
