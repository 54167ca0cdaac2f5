"""Evaluation: where each image's OBSERVED shadow edge lies beyond the old DSM's predicted far edge, per
caster, on stored runs (issue 7, u2 thirteenth round; measured offline).

A roof raised by ``dz`` after the DSM casts, under an image's sun (elevation ``e``), a shadow whose far
edge lies ``dz / tan e`` further along the sun's azimuth than the old DSM predicts. The longer-shadow
rule (:mod:`offnadir.change.longer_shadow`) asks whether a fixed band of 4 cells beyond the predicted
edge looks like shadow to the image's classifier; this script instead *locates* the observed edge on
each ray and reads the implied height error:

* a *far-edge cell* ``a`` of caster ``c`` (an elevated patch): predicted in ``c``'s cast shadow (code 0,
  its caster by :func:`offnadir.change.missing_shadow.shadow_casters`), the ``D`` = 2 cells before it
  along ``u`` (the unit step away from the sun) too, the next cell ``a + u`` predicted lit;
* the ray beyond: ``a + k u`` for ``k = 1 .. K`` while the cell is inside the grid, visible in the
  image, predicted lit (1..254: a cell in another predicted shadow cannot show where this one ends) and
  on the edge cell's level (DSM within ``sun_tolerance``: the displaced edge is read on the surface the
  shadow falls on); ``K`` = the calibration's ``max_height_change_m / (cell tan e)``;
* the observed edge on the ray: the boundary ``k*`` (between ``a + k* u`` and ``a + (k*+1) u``,
  ``k* = 0`` is the predicted edge) of the strongest dark-to-bright step ``s(k) = mean log x over the two
  cells up to k - mean over the two after`` over ``k = 0 .. V - 2`` (``V`` valid cells, ``V >= 2``);
  the implied height error ``k* cell tan e``;
* per caster and image: rays, the median ``k*``, the share of rays whose ``k*`` step is a shadow's
  step (``s(k*)`` below half the run's median step at the predicted edge, every caster's rays), the
  median step.

Noise model: the same measurement on every caster of the run (most stand unchanged) gives the null
of each image; a raise shows as ``k*`` beyond the null in the target and not in the base (its own
sun, its own prediction, which the old DSM makes correctly at its date).

    python benchmarks/eval_shadow_edge_moved.py --hard W [--seeds 0 1 2] [--out rows.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import warnings

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

D = 2  # cells before the edge that must be the caster's predicted shadow (shadow_observed.MARGIN)


def _steps(u, k):
    return np.floor(k * u[0] + 0.5).astype(np.int64), np.floor(k * u[1] + 0.5).astype(np.int64)


def edge_rays(h, lab, codes, vis, lx, cell, az, el, tol, max_dh, ref=None, truth=None, other=None, across=False,
              other_step=None):
    """Per far-edge cell of image (codes, vis, log intensity lx; sun az, el in the grid's frame,
    radians): (caster, valid length V, k*, s(k*), s(0)). ``ref``: (log intensity, usable mask) of
    another image: the profile is ``lx - ref`` and every cell of the ray (the inside ones too) must be
    usable in it (a material's own darkness cancels; only the light's change is left)."""
    from offnadir.change import missing_shadow as MS

    ny, nx = h.shape
    ci, cj = MS.shadow_casters(h, codes, cell, az, el, tol, float(max(h.shape)))
    clab = np.where(ci >= 0, lab[np.maximum(ci, 0), np.maximum(cj, 0)], 0)
    u = (math.cos(az), -math.sin(az))  # away from the sun (the march goes (-cos, sin))
    K = int(min(math.ceil(max_dh / (cell * math.tan(max(el, 1e-3)))), max(ny, nx)))
    i0, j0 = np.nonzero(clab > 0)
    c0 = clab[i0, j0]

    def at(k):
        di, dj = _steps(u, k)
        pi, pj = i0 + di, j0 + dj
        ins = (pi >= 0) & (pi < ny) & (pj >= 0) & (pj < nx)
        return np.clip(pi, 0, ny - 1), np.clip(pj, 0, nx - 1), ins

    ok = np.ones(len(i0), bool)
    for k in range(-D, 0):
        pi, pj, ins = at(k)
        ok &= ins & (clab[pi, pj] == c0)
    pi, pj, ins = at(1)
    ok &= ins & (codes[pi, pj] > 0) & (codes[pi, pj] < 255)
    i0, j0, c0 = i0[ok], j0[ok], c0[ok]
    n = len(i0)
    L = np.full((n, K + D + 1), np.nan)  # columns k = -D .. K
    alive = np.ones(n, bool)
    V = np.zeros(n, np.int64)
    ha = h[i0, j0]
    if ref is not None:
        lx = lx - ref[0]
        vis = vis & ref[1]
        for k in range(-D, 1):
            pi, pj, ins = at(k)
            alive &= ref[1][pi, pj]
    for k in range(-D, K + 1):
        pi, pj, ins = at(k)
        if k >= 1:
            alive &= ins & vis[pi, pj] & (codes[pi, pj] > 0) & (codes[pi, pj] < 255)
            with np.errstate(invalid="ignore"):
                alive &= np.abs(h[pi, pj] - ha) <= tol
            V += alive
            L[:, k + D] = np.where(alive, lx[pi, pj], np.nan)
            if not alive.any():
                break
        else:
            # inside cells on the edge cell's level only (one surface: another one has its own albedo)
            with np.errstate(invalid="ignore"):
                same = vis[pi, pj] & (np.abs(h[pi, pj] - ha) <= tol)
            L[:, k + D] = np.where(same, lx[pi, pj], np.nan)
    # s(k) for k = 0 .. K-2: mean of L[k-1], L[k] minus mean of L[k+1], L[k+2]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN pair: NaN
        a = np.nanmean(np.stack([L[:, D - 1:-2], L[:, D:-1]]), axis=0)  # k-1, k for k = 0 .. (k = 0: the edge
        # cell alone where the cell before it is on another level)
    b = 0.5 * (L[:, D + 1:] + np.concatenate([L[:, D + 2:], np.full((n, 1), np.nan)], axis=1))
    s = a[:, :b.shape[1]] - b
    kk = np.arange(s.shape[1])
    s = np.where(kk[None, :] <= V[:, None] - 2, s, np.nan)
    has = V >= 2
    s_ok = np.where(has[:, None], s, 0.0)
    s_ok = np.where(np.isfinite(s_ok), s_ok, np.inf)
    kstar = np.argmin(s_ok, axis=1)
    sstar = s_ok[np.arange(n), kstar]
    keep = has & np.isfinite(sstar)
    # the profile's levels: inside (k = -D .. 0), between the predicted and the observed edge (1 .. k*),
    # beyond (k* + 1, k* + 2); a shadow that continues keeps the inside level up to k*
    r = np.arange(n)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m_in = np.nanmean(L[:, :D + 1], axis=1)
        cs = np.nancumsum(L, axis=1)
        m_mid = np.where(kstar >= 1, (cs[r, np.minimum(kstar + D, L.shape[1] - 1)] - cs[r, D]) / np.maximum(kstar, 1),
                         np.nan)
        m_out = 0.5 * (L[r, np.minimum(kstar + 1 + D, L.shape[1] - 1)] + L[r, np.minimum(kstar + 2 + D, L.shape[1] - 1)])
        cont = (m_mid - m_in) / (m_out - m_in)
    s0all = s[:, 0]
    # the other image (``other``: its log intensity, codes, visibility) on the same cells 1 .. k* + 2: where
    # its own light is one state along them (all predicted lit, or all in a predicted shadow), the
    # ratio of the two images cancels the surface's albedo; a shadow that continues to k* keeps its step
    # in the ratio, a dark material beyond the edge does not. NaN: the other image's light changes there
    dR = np.full(n, np.nan)
    if other is not None:
        olx, ocodes, ovis = other
        Bl = np.zeros((n, K + D + 1), np.int64)
        Bs = np.zeros((n, K + D + 1), np.int64)
        R = np.zeros((n, K + D + 1))
        for k in range(1, K + 1):
            pi, pj, ins = at(k)
            okk = ins & ovis[pi, pj] & (ocodes[pi, pj] < 255)
            Bl[:, k + D] = okk & (ocodes[pi, pj] > 0)
            Bs[:, k + D] = okk & (ocodes[pi, pj] == 0)
            ol = olx[pi, pj]
            if other_step is not None:  # the other image's predicted shadow corrected by its own shadow step:
                ol = ol - other_step * (ocodes[pi, pj] == 0)  # any mix of its light states then reads as lit
                Bl[:, k + D] |= Bs[:, k + D]
            R[:, k + D] = np.where(okk, L[:, k + D] - ol, 0.0)
        cl, cs_, cr = np.cumsum(Bl, axis=1), np.cumsum(Bs, axis=1), np.nancumsum(R, axis=1)
        e = np.minimum(kstar + 2 + D, L.shape[1] - 1)
        ln = kstar + 2
        one = ((cl[r, e] - cl[r, D]) == ln) | ((cs_[r, e] - cs_[r, D]) == ln)
        with np.errstate(invalid="ignore", divide="ignore"):
            mid = (cr[r, np.minimum(kstar + D, L.shape[1] - 1)] - cr[r, D]) / np.maximum(kstar, 1)
            out = 0.5 * (R[r, np.minimum(kstar + 1 + D, L.shape[1] - 1)] + R[r, e])
        dR = np.where(one & (kstar >= 1), mid - out, np.nan)
    if truth is not None:  # diagnostics: consecutive cells beyond the edge truly without direct sun
        ext = np.zeros(n, np.int64)
        run_on = np.ones(n, bool)
        for k in range(1, K + 1):
            pi, pj, ins = at(k)
            run_on &= ins & (truth[pi, pj] != 0)
            ext += run_on
            if not run_on.any():
                break
        res = (c0[keep], V[keep], kstar[keep], sstar[keep], s0all[keep], cont[keep], dR[keep], ext[keep])
    else:
        res = (c0[keep], V[keep], kstar[keep], sstar[keep], s0all[keep], cont[keep], dR[keep])
    if across:  # each ray's position across the sun's direction (cells)
        res = res + ((-u[1] * i0 + u[0] * j0)[keep],)
    return res


def _lx(run, k):
    x = run["arr"]["value"][k].astype(np.float64).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(x) & (x > 0), np.log(np.where(x > 0, x, 1.0)), np.nan)


def caster_summary(c, V, ks, ss, s0, cont, dR, ext, present: float, across=None) -> dict:
    """Per caster, from :func:`edge_rays`' rays and the image's ``present`` step (the median ``s(0)`` of
    every caster's rays: the run's own shadow step): ``n`` rays; ``nsig`` whose ``k*`` step is at least
    half a shadow's; ``nmoved`` of those *moved* (``k* >= 1``, the profile up to ``k*`` nearer the inside
    level than the level beyond, no half-shadow step at the predicted edge); ``nconf`` / ``nref`` moved
    rays the other image's ratio keeps / loses the step on; medians of ``k*`` over each set; ``n_able``
    the rays long enough to show the confirmed median move (``V >= k + 2``) and ``n_near`` the confirmed
    ones among them within ``max(2, k / 4)`` cells of it (a raised flat roof moves its whole far edge)."""
    sig = ss <= 0.5 * present
    with np.errstate(invalid="ignore"):
        moved = sig & (ks >= 1) & (cont < 0.5) & ~(s0 <= 0.5 * present)
        conf = moved & (dR <= 0.5 * present)  # the other image's ratio keeps the step
        refuted = moved & (dR > 0.5 * present)
    out = {}
    if not len(c):
        return out
    order = np.argsort(c, kind="stable")
    c, V, ks, ss, sig, ext, moved = c[order], V[order], ks[order], ss[order], sig[order], ext[order], moved[order]
    w = np.zeros(len(c)) if across is None else np.asarray(across, np.float64)[order]
    conf, refuted = conf[order], refuted[order]
    ids, start = np.unique(c, return_index=True)
    end = np.append(start[1:], len(c))

    def med(v):
        return float(np.median(v)) if len(v) else math.nan

    for i, a0, b0 in zip(ids, start, end):
        kk, sg, mv, cf = ks[a0:b0], sig[a0:b0], moved[a0:b0], conf[a0:b0]
        row = dict(n=int(b0 - a0), nsig=int(sg.sum()), k_med=med(kk), ksig_med=med(kk[sg]),
                   V_med=med(V[a0:b0]), s_med=med(ss[a0:b0]), ext_med=med(ext[a0:b0]), nmoved=int(mv.sum()),
                   kmoved_med=med(kk[mv]), nconf=int(cf.sum()), nref=int(refuted[a0:b0].sum()),
                   kconf_med=med(kk[cf]), n_able=0, n_near=0)
        if cf.any():
            kc = row["kconf_med"]
            able = V[a0:b0] >= kc + 2
            near = cf & (np.abs(kk - kc) <= max(2.0, kc / 4))
            row.update(n_able=int(able.sum()), n_near=int((near & able).sum()))
            wa, wn = w[a0:b0][able], w[a0:b0][near & able]
            if len(wa) and len(wn):  # the share of the able rays' extent across the sun that the move spans
                row["span"] = float((wn.max() - wn.min() + 1) / (wa.max() - wa.min() + 1))
        out[int(i)] = row
    return out


def caster_table(run, k, max_dh, tol, ratio=False, truth=None, other_step=None):
    from offnadir.change import missing_shadow as MS  # noqa: F401

    a = run["arr"]
    h = a["dsm"].astype(np.float64)
    lab = np.where(a["elevated"] == 1, a["patch"], 0)
    s = run["suns"][k]
    az, el = math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])
    lx = _lx(run, k)
    ref = None
    if ratio and k != 0:
        c0 = a["illumination"][0]
        ref = (_lx(run, 0), (a["visible"][0] == 1) & (c0 > 0) & (c0 < 255))
    o = 1 - k if a["visible"].shape[0] == 2 else (0 if k else 1)
    other = (_lx(run, o), a["illumination"][o], a["visible"][o] == 1)
    res = edge_rays(h, lab, a["illumination"][k], a["visible"][k] == 1, lx, run["cell"], az, el, tol,
                    max_dh, ref, truth, other, across=True, other_step=other_step)
    c, V, ks, ss, s0, cont, dR = res[:7]
    ext = res[7] if truth is not None else np.zeros(len(c), np.int64)
    w = res[-1]
    present = float(np.nanmedian(s0)) if len(s0) else math.nan  # the run's step at the predicted edge
    out = caster_summary(c, V, ks, ss, s0, cont, dR, ext, present, w)
    return dict(casters=out, present=present, tan=math.tan(el), el_deg=math.degrees(el))


def main(argv=None) -> int:
    import eval_evidence_offline as OFF
    import eval_missing_shadow as EMS
    import xarray as xr

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--prefix", default="hard", help="store names: PREFIX<seed>.zarr (hard_stereo for --stereo runs)")
    ap.add_argument("--km", type=Path, nargs="+", help="Kahramanmaras one-image stores: F1/AUC with the rules")
    ap.add_argument("--replay", type=Path, help="rows (a previous --out) to replay: F1 with the moved casters painted")
    ap.add_argument("--truth", action="store_true", help="per caster the truth's shadow extension (diagnostic)")
    ap.add_argument("--corrected", action="store_true",
                    help="the base's predicted shadow cells corrected by its own shadow step in the confirmation")
    ap.add_argument("--ratio", action="store_true", help="the target's profile over the base's (base lit cells)")
    a = ap.parse_args(argv)
    from offnadir.change.options import ChangeOptions

    tol = ChangeOptions().sun_tolerance
    if a.km:
        for store in a.km:
            km_replay(store, tol)
        return 0
    if a.replay:
        rows = [r for r in json.loads(a.replay.read_text()) if r["seed"] in a.seeds]
        replay(a.hard, rows, RULES, a.prefix)
        return 0
    allrows = []
    for sd in a.seeds:
        store, scene = a.hard / f"{a.prefix}{sd}.zarr", a.hard / f"{a.prefix}{sd}"
        run = EMS.load(store)
        cal = json.loads(xr.open_zarr(store).attrs["change_calibration"])
        max_dh = float(cal["max_height_change_m"])
        cls = OFF._read(scene / "truth_change_class.tif")
        tsh = OFF._read(scene / "truth_shadow.tif")
        tabs = [caster_table(run, 0, max_dh, tol, a.ratio, (tsh & 1) if a.truth else None)]
        step0 = tabs[0]["present"] if a.corrected else None
        tabs.append(caster_table(run, 1, max_dh, tol, a.ratio, (tsh & 2) if a.truth else None, step0))
        patch = run["arr"]["patch"]
        flagged = np.nan_to_num(run["arr"]["probability"][1].astype(np.float64)) >= 0.5
        ids = sorted(set(tabs[1]["casters"]) | set(tabs[0]["casters"]))
        pl = patch.ravel()
        order = np.argsort(pl, kind="stable")
        ps = pl[order]
        for cid in ids:
            lo, hi = np.searchsorted(ps, cid), np.searchsorted(ps, cid, side="right")
            idx = order[lo:hi]
            cc = cls.ravel()[idx]
            bc = np.bincount(cc, minlength=8)
            row = dict(seed=sd, caster=cid, cls=int(bc.argmax()), cells=int(hi - lo),
                       unflagged=int((~flagged.ravel()[idx]).sum()),
                       t=tabs[1]["casters"].get(cid), b=tabs[0]["casters"].get(cid),
                       tan_t=tabs[1]["tan"], tan_b=tabs[0]["tan"], cell=run["cell"],
                       present_t=tabs[1]["present"], present_b=tabs[0]["present"])
            allrows.append(row)
        print(f"seed {sd}: target sun {tabs[1]['el_deg']:.1f} deg, present step {tabs[1]['present']:.3f}; base "
              f"{tabs[0]['el_deg']:.1f} deg, {tabs[0]['present']:.3f}; casters with rays t {len(tabs[1]['casters'])} "
              f"b {len(tabs[0]['casters'])}", flush=True)
    if a.out:
        a.out.write_text(json.dumps(allrows))
    return 0


RULES = {"plain_4_0.5_2.5": (4, 0.5, 2.5, False), "ratio_2_0.5_1.5": (2, 0.5, 1.5, True),
         "ratio_4_0.5_2.5": (4, 0.5, 2.5, True), "ratio_6_0.5_2.5": (6, 0.5, 2.5, True),
         "whole_4_0.5_2.5_0.75": (4, 0.5, 2.5, True, 0.75), "whole_2_0.5_1.5_0.75": (2, 0.5, 1.5, True, 0.75),
         "whole_4_0.25_2.5_0.75": (4, 0.25, 2.5, True, 0.75), "whole_4_0.5_2.5_0.5": (4, 0.5, 2.5, True, 0.5)}


def km_replay(store: Path, tol: float) -> None:
    """Kahramanmaras (one image per date, the reference change map): F1 and AUC of the stored run and
    with each rule's casters painted changed."""
    import eval_missing_shadow as EMS
    import xarray as xr

    run = EMS.load(store)
    cal = json.loads(xr.open_zarr(store).attrs["change_calibration"])
    tabs = [caster_table(run, k, float(cal["max_height_change_m"]), tol) for k in (0, 1)]
    rows = [dict(seed=0, caster=c, t=tabs[1]["casters"].get(c), b=tabs[0]["casters"].get(c), tan_t=tabs[1]["tan"],
                 tan_b=tabs[0]["tan"], cell=run["cell"]) for c in sorted(set(tabs[0]["casters"]) | set(tabs[1]["casters"]))]
    p0 = run["arr"]["probability"][1].astype(np.float64)
    sc = EMS.score_km(run, p0)
    print(f"{store.name} stored: F1 {sc['f1']:.4f} AUC {sc['auc']:.4f}; target sun {tabs[1]['el_deg']:.1f} deg, present "
          f"step {tabs[1]['present']:.3f}, casters with rays {len(tabs[1]['casters'])}", flush=True)
    for name, rule in RULES.items():
        cs = [c for _, c in moved_casters(rows, *rule)]
        m = np.isin(run["arr"]["patch"], cs) & np.isfinite(p0)
        p = np.where(m, np.fmax(p0, 0.5), p0)
        sc = EMS.score_km(run, p)
        print(f"{store.name} {name}: {len(cs)} casters, {int((m & ~(p0 >= 0.5)).sum())} cells added; F1 {sc['f1']:.4f} "
              f"AUC {sc['auc']:.4f}", flush=True)


def moved_casters(rows, n_min: int, share: float, dz_min: float, ratio: bool = True, whole: float = 0.0) -> set:
    """Casters whose target far edge moved (see the module docstring): at least ``n_min`` rays and
    ``share`` of the caster's rays moved (confirmed by the other image's ratio when ``ratio``), the
    confirmed rays' median implied raise at least ``dz_min`` metres, and the base's own far edge not
    moved by the same count."""
    out = set()
    for r in rows:
        t, b = r["t"], r["b"]
        if t is None:
            continue
        nm, km = (t["nconf"], t["kconf_med"]) if ratio else (t["nmoved"], t["kmoved_med"])
        if nm < n_min or nm < share * t["n"] or (ratio and t["nref"] > nm):
            continue
        if not km * r["cell"] * r["tan_t"] >= dz_min:
            continue
        if whole and not t.get("n_near", 0) >= whole * t.get("n_able", 0):
            continue
        if b is not None and b["nmoved"] >= max(n_min, share * b["n"]):
            continue
        out.add((r["seed"], r["caster"]))
    return out


def replay(hard: Path, rows, rules, prefix: str = "hard") -> None:
    """Elevated F1 and AUC of the stored run, and with each rule's casters painted changed (``max(p, 1/2)``
    on their cells, as the maps pass paints a roof decided raised); cells added by truth class."""
    import eval_evidence_offline as OFF
    import eval_missing_shadow as EMS
    import eval_shadow_casters as ESC

    seeds = sorted({r["seed"] for r in rows})
    NAMES = ESC.NAMES
    for sd in seeds:
        store, scene = hard / f"{prefix}{sd}.zarr", hard / f"{prefix}{sd}"
        run = EMS.load(store)
        p0 = run["arr"]["probability"][1].astype(np.float64)
        cls = OFF._read(scene / "truth_change_class.tif")
        base = ESC.score_hard(run, p0, scene)
        print(f"seed {sd} stored: elevated F1 {base['f1']:.4f} AUC {base['auc']:.4f} all-cells F1 {base['all_f1']:.4f}")
        for name, rule in rules.items():
            cs = [c for s_, c in moved_casters([r for r in rows if r["seed"] == sd], *rule)]
            m = np.isin(run["arr"]["patch"], cs) & np.isfinite(p0)
            if "dh" in run["arr"]:  # not where a same-date pair measured dh (as the maps pass paints)
                m &= ~np.isfinite(run["arr"]["dh"][1])
            p = np.where(m, np.fmax(p0, 0.5), p0)
            sc = ESC.score_hard(run, p, scene)
            add = m & ~(p0 >= 0.5) & (run["arr"]["visible"][0] == 1) & (run["arr"]["visible"][1] == 1)
            by = np.bincount(cls[add], minlength=8)
            print(f"seed {sd} {name}: {len(cs)} casters; elevated F1 {sc['f1']:.4f} AUC {sc['auc']:.4f} all-cells F1 "
                  f"{sc['all_f1']:.4f}; cells added: " + ", ".join(f"{NAMES[i]} {int(v)}" for i, v in enumerate(by) if v),
                  flush=True)


if __name__ == "__main__":
    sys.exit(main())
