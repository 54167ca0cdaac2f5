"""Evaluation: a grown crown's relief displacement read from its texture, one image per date (issue 7,
u5 thirteenth round; measured, not adopted — docs/change_detection.md).

The hard simulator grows a tree by scaling its crown above the crown base (``simulate/epoch2.change_trees``:
footprint and albedo kept, +0.9 m at the rim to +1.2…4.0 m at the top), so the target image, sampled at the
DSM's (old) heights, shows the crown's texture displaced along the target's view by ``dz tan(off-nadir)``.
Per crown (:func:`offnadir.change.crown_shadow.crowns`, replayed as ``eval_tree_crowns.py`` does) the target
is resampled from its image file at the cells' stored image coordinates moved by ``dz`` metres of height
(:func:`height_rate`: the store's ``row``/``col`` against the DSM, an affine fit over the visible cells) for
``dz`` in :data:`DZ`, and the Fisher ``z`` of the base and target values over the crown's inner cells lit at
both dates (:mod:`offnadir.change.crown_texture`'s cells and statistic) is taken at each ``dz``
(:func:`shift_curves`). The witness is the gain upward: ``max z(dz >= 1 m) - max z(|dz| <= 0.5 m)``; its
null, the run's crowns (median, 1.4826 MAD), optionally only crowns whose best ``z`` is within ``k`` robust
sd of the run's median ``z`` (``--corr k``: a crown without texture has no shift to measure).

Printed per seed: the crowns, AUC of the gain for mostly-grown crowns (>= 1/2 of their cells) against
unchanged ones (< 0.1 cut, < 0.1 grown), and the crowns and cells beyond 3 and 4 robust sd: grown, unchanged,
unchanged made of tree cells (>= 0.9, the scene regenerated from its seed), and crowns with any change.

    python benchmarks/eval_grown_crowns.py --hard W [--seeds 0 1 2] [--corr 1] [--model uniform|proportional] [--stereo]
        [--cache DIR] [--apply 3 4]
    python benchmarks/eval_grown_crowns.py --hard W --census
    python benchmarks/eval_grown_crowns.py --hard WS --stereo --dh
    python benchmarks/eval_grown_crowns.py --km K --model proportional --apply 3 4 [--size-quantile 0.9]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

#: metres of height the target is moved by (the grown crowns' +0.9…+4 m inside, and as far down)
DZ = np.arange(-3.0, 5.01, 0.25)


def height_rate(row, col, dsm, ok):
    """Image pixels (rows, cols) per metre of height: the affine fit ``a + b y + c x + d h`` of the
    stored image coordinates over the cells ``ok``; returns ``(d_row, d_col)``."""
    yy, xx = np.mgrid[: dsm.shape[0], : dsm.shape[1]]
    A = np.c_[np.ones(int(ok.sum())), yy[ok], xx[ok], dsm[ok]]
    return (float(np.linalg.lstsq(A, row[ok], rcond=None)[0][3]),
            float(np.linalg.lstsq(A, col[ok], rcond=None)[0][3]))


def shift_curves(img, row, col, rate, u, labels, dz=DZ, scale=None):
    """Per label (1..k of ``labels``, one per cell of ``row``/``col``/``u``) the Fisher ``z`` of ``u``
    against ``img`` sampled bilinearly at ``(row, col) + dz * rate`` for each ``dz``: ``(k, len(dz))``.
    With ``scale`` (per cell) the move is ``dz * scale`` metres: ``dz`` is then a growth factor and
    ``scale`` the cell's height above its ground (a crown grown in proportion)."""
    from scipy import ndimage as ndi

    from offnadir.change import crown_texture as CT

    k = int(labels.max()) if labels.size else 0
    g = labels - 1
    out = np.full((k, len(dz)), np.nan)
    u = np.asarray(u, np.float64)
    for j, d in enumerate(dz):
        m = d if scale is None else d * scale
        v = ndi.map_coordinates(img, [row + rate[0] * m, col + rate[1] * m], order=1, mode="nearest")
        s = np.stack([np.bincount(g, x, minlength=k) for x in (np.ones_like(u), u, v, u * u, v * v, u * v)], 1)
        out[:, j] = CT.fisher_z(s)
    return out


#: growth factors of ``--model proportional`` (``dz = f * height above ground``: 0.1 is 1 m on a 10 m tree)
FACTORS = np.arange(-0.3, 0.501, 0.025)


def gain_up(Z, dz=DZ, up=1.0, near=0.5):
    """``max z(dz >= up) - max z(|dz| <= near)`` per row; ``(gain, z at zero, best z)``."""
    Zf = np.where(np.isfinite(Z), Z, -np.inf)
    z0 = Zf[:, np.abs(dz) <= near + 1e-9].max(1)
    return Zf[:, dz >= up - 1e-9].max(1) - z0, z0, Zf.max(1)


def scan(path: Path, scene: Path | None, model: str = "uniform", lit_only: bool = True) -> dict:
    """The curves of target 1 per crown of a stored run, with each crown's truth fractions."""
    import rasterio
    import xarray as xr

    from scipy import ndimage as ndi

    import eval_evidence_offline as OFF
    import eval_tree_crowns as ETC
    from offnadir.change import crown_texture as CT

    run, _, lab_c, _ = ETC.replay(path)
    a = run["arr"]
    d = xr.open_zarr(path)
    h = a["dsm"].astype(np.float64)
    il = a["illumination"]
    targets = range(1, a["visible"].shape[0])  # a stereo run: both same-date targets, curves averaged
    vis = np.all([a["visible"][i] == 1 for i in range(a["visible"].shape[0])], 0)
    lit = np.all([(il[i] > 0) & (il[i] < 255) for i in range(il.shape[0])], 0)
    sel = CT.inner(a["elevated"] == 1) & vis & (lit if lit_only else True) & (lab_c > 0)
    ids, lab = np.unique(lab_c[sel], return_inverse=True)
    above = None
    if model != "uniform":  # the height above the local ground: the lowest DSM within 30 m (a crown's, a roof's width)
        above = (h - ndi.minimum_filter(h, size=int(round(60.0 / run["cell"])) | 1))[sel]
    curves, rates = [], []
    for t in targets:
        row, col = d["row"].values[t].astype(np.float64), d["col"].values[t].astype(np.float64)
        rate = height_rate(row, col, h, a["visible"][t] == 1)
        if scene is not None:
            name = scene / ("target.tif" if t == 1 else f"target{t}.tif")
        else:  # a real run: the image the store names
            name = Path(json.loads(d.attrs["images"])[t]["path"]) if isinstance(d.attrs["images"], str) \
                else Path(d.attrs["images"][t]["path"])
        with rasterio.open(name) as src:
            img = src.read(1).astype(np.float64)
        u = a["value"][0, 0][sel]
        v0 = ndi.map_coordinates(img, [row[sel], col[sel]], order=1, mode="nearest")
        vt = a["value"][t, 0][sel]  # the store's own samples (its coordinates are float32: ~1e-4 px)
        if sel.any() and np.nanmax(np.abs(v0 - vt)) > 1e-3 * np.nanmedian(np.abs(vt)):
            raise RuntimeError(f"{name} resampled at the stored coordinates is not the store's value")
        if model == "uniform":
            curves.append(shift_curves(img, row[sel], col[sel], rate, u, lab + 1))
        else:
            curves.append(shift_curves(img, row[sel], col[sel], rate, u, lab + 1, FACTORS, above))
        rates.append(rate)
    Z = np.mean(curves, 0)
    rate = rates[0]
    n = np.bincount(lab, minlength=len(ids))
    if scene is None:  # no truth: every crown counts as unchanged in the summaries
        z = np.zeros(len(ids))
        return dict(Z=Z, n=n, cut=z, grown=z, changed=z, tree=z, rate=rate, ids=ids, lab_c=lab_c)
    cls = OFF._read(scene / "truth_change_class.tif")[sel]
    tree = _trees(scene)[sel]

    def frac(x):
        return np.bincount(lab, x.astype(np.float64), minlength=len(ids)) / np.maximum(n, 1)

    return dict(Z=Z, n=n, cut=frac(cls == 5), grown=frac(cls == 6), changed=frac((cls >= 1) & (cls <= 6)),
                tree=frac(tree), rate=rate, ids=ids, lab_c=lab_c)


def apply(r: dict, path: Path, scene: Path | None, q: float, model: str, size_q: float | None = None) -> str:
    """``--apply q``: the rule as the pipeline could run it — the crowns whose gain exceeds the run's crowns'
    median by ``q`` robust sd (every crown with a curve: no truth) flagged (``p -> max(p, 3/4)`` on their
    cells) — scored before and after as ``eval_tree_crowns.py`` scores (``eval_missing_shadow.score_hard``).
    ``size_q``: only crowns no larger than that quantile of the run's crowns' cells (one tree, not a park or
    a group of bent roof faces)."""
    import eval_missing_shadow as EMS

    gain = (gain_up(r["Z"]) if model == "uniform" else gain_up(r["Z"], FACTORS, 0.1, 0.05))[0]
    fin = np.isfinite(r["Z"]).all(1)
    med = float(np.median(gain[fin]))
    sd = float(1.4826 * np.median(np.abs(gain[fin] - med)))
    ok = fin & (gain > med + q * sd)
    if size_q is not None:
        ok &= r["n"] <= np.quantile(r["n"][fin], size_q)
    hit = r["ids"][ok]
    run = EMS.load(path)
    p0 = run["arr"]["probability"][1].astype(np.float64)
    p = p0.copy()
    m = np.isin(r["lab_c"], hit)
    p[m] = np.maximum(p[m], 0.75)
    score = (lambda q: EMS.score_km(run, q)) if scene is None else (lambda q: EMS.score_hard(run, q, scene))
    before, after = score(p0), score(p)
    size = "" if size_q is None else f", crowns up to the {size_q:g} quantile of size"
    return (f"  apply > {q:g} sd{size} (null of all {int(fin.sum())} crowns: median {med:+.2f} sd {sd:.2f}): "
            f"{len(hit)} crowns, {int(m.sum())} cells; " + ", ".join(f"{k} {v:.4f}" for k, v in before.items())
            + " -> " + ", ".join(f"{k} {v:.4f}" for k, v in after.items()))


CRITERIA = ("patch_shift", "patch_corr0", "patch_structural_score", "patch_spectral_score", "patch_outline_score")


def census(path: Path, scene: Path) -> str:
    """``--census``: the grown cells a run misses (scored as ``eval_hard_sim.py`` scores, target 1) against the
    unchanged tree cells: lit at both dates, the true height gained, and what each patch criterion and the
    census evidence said (median and 10-90 % of the cells' patch values)."""
    import xarray as xr

    import eval_evidence_offline as OFF

    d = xr.open_zarr(path)
    pid, ids = d["patch"].values, d["patch_id"].values
    k = np.clip(np.searchsorted(ids, pid), 0, len(ids) - 1)
    okp = (pid > 0) & (ids[k] == pid)
    cls = OFF._read(scene / "truth_change_class.tif")
    vis = (d["visible"].values[0] == 1) & (d["visible"].values[1] == 1)
    scored = vis & (OFF._read(scene / "truth_structural.tif") != 255) & (OFF._read(scene / "truth_occluded.tif") == 0)
    prob = d["probability"].values[1]
    il = d["illumination"].values
    lit = (il[0] > 0) & (il[0] < 255) & (il[1] > 0) & (il[1] < 255)
    dz = OFF._read(scene / "dsm_epoch2.tif").astype(float) - OFF._read(scene / "dsm.tif").astype(float)
    gm = scored & (cls == 6) & ~(prob >= 0.5)
    un = scored & (cls == 0) & _trees(scene)
    q = np.nanpercentile
    out = [f"grown scored {int((scored & (cls == 6)).sum())}, missed {int(gm.sum())} (lit at both "
           f"{lit[gm].mean():.2f}; height gained median {np.median(dz[gm]):.2f} m, 5-95 % {q(dz[gm], 5):.2f}-"
           f"{q(dz[gm], 95):.2f}); unchanged tree cells {int(un.sum())} (lit at both {lit[un].mean():.2f}, "
           f"flagged {int((un & (prob >= 0.5)).sum())})"]
    for name in CRITERIA + ("evidence",):
        v = np.full(pid.shape, np.nan)
        if name == "evidence":
            v = d["evidence"].values[1].astype(float)
        else:
            v[okp] = d[name].values[1][k[okp]]
        a, b = v[gm], v[un]
        if np.isfinite(a).any() and np.isfinite(b).any():
            out.append(f"  {name:24s} grown missed {np.nanmedian(a):+.2f} [{q(a, 10):+.2f} {q(a, 90):+.2f}], "
                       f"unchanged trees {np.nanmedian(b):+.2f} [{q(b, 10):+.2f} {q(b, 90):+.2f}]")
    return "\n".join(out)


def dh_crowns(path: Path, scene: Path) -> str:
    """``--dh`` (stereo stores): per crown the share of its cells with a measured ``dh`` that is not zero, and
    with ``0.5 < dh <= 4 m`` (a grown crown's range), against the run's crowns (median, robust sd; crowns of
    8 cells or more): whether the sweep's heights, below the 2.5 m bound, still tell grown crowns apart."""
    import xarray as xr

    import eval_evidence_offline as OFF
    import eval_tree_crowns as ETC

    _, _, lab_c, _ = ETC.replay(path)
    dh = xr.open_zarr(path)["dh"].values[1]
    sel = (lab_c > 0) & np.isfinite(dh)
    ids, lab = np.unique(lab_c[sel], return_inverse=True)
    n = np.bincount(lab, minlength=len(ids))

    def frac(x):
        return np.bincount(lab, x.astype(np.float64), minlength=len(ids)) / np.maximum(n, 1)

    cls = OFF._read(scene / "truth_change_class.tif")[sel]
    grown, cut, tree = frac(cls == 6), frac(cls == 5), frac(_trees(scene)[sel])
    ok = n >= 8
    unch, gr = ok & (grown < 0.1) & (cut < 0.1), ok & (grown >= 0.5)
    out = []
    x = dh[sel]
    for name, st in (("dh not zero", frac(np.abs(x) > 0.01)), ("0.5 < dh <= 4", frac((x > 0.5) & (x <= 4)))):
        med = float(np.median(st[ok]))
        sd = float(1.4826 * np.median(np.abs(st[ok] - med)))
        line = (f"  {name}: crowns {int(ok.sum())}, grown {int(gr.sum())}, AUC {auc(st[gr], st[unch]):.2f}, "
                f"median {med:.2f} sd {sd:.2f}")
        for q in (3, 4):
            f = ok & (st > med + q * sd)
            ft = f & unch & (tree >= 0.9)
            line += (f"; > {q} sd grown {int((f & gr).sum())} ({int((n * grown)[f].sum())} grown cells), unchanged "
                     f"{int((f & unch).sum())} ({int(n[f & unch].sum())} cells, trees {int(n[ft].sum())})")
        out.append(line)
    return "\n".join(out)


def _trees(scene: Path):
    """The simulator's tree cells at date 1 (the scene regenerated from its seed: deterministic)."""
    from offnadir.simulate import scene as S

    meta = json.loads((scene / "scene.json").read_text())
    model = S.generate(int(meta["seed"]), int(meta["size"]), float(meta["cell"]), float(meta["heights"]["base_height"]))
    return S.rasterize(model)[1].kind == S.TREE


def auc(pos, neg) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    return float(np.mean(pos[:, None] > neg[None]) + 0.5 * np.mean(pos[:, None] == neg[None]))


def summary(r: dict, corr: float | None = None, model: str = "uniform") -> str:
    gain, z0, zb = gain_up(r["Z"]) if model == "uniform" else gain_up(r["Z"], FACTORS, 0.1, 0.05)
    n = r["n"]
    fin = np.isfinite(r["Z"]).all(1)
    if corr is not None:
        m = np.median(z0[fin])
        s = 1.4826 * np.median(np.abs(z0[fin] - m))
        fin &= zb >= m - corr * s
    unch = fin & (r["grown"] < 0.1) & (r["cut"] < 0.1)
    gr = fin & (r["grown"] >= 0.5)
    med = float(np.median(gain[unch]))
    sd = float(1.4826 * np.median(np.abs(gain[unch] - med)))
    out = [f"crowns {int(fin.sum())}, unchanged {int(unch.sum())}, grown {int(gr.sum())} ({int(n[gr].sum())} cells); "
           f"gain AUC {auc(gain[gr], gain[unch]):.2f}, null median {med:+.2f} sd {sd:.2f}"]
    for q in (3, 4):
        f = fin & (gain > med + q * sd)
        ut = f & unch & (r["tree"] >= 0.9)
        out.append(f"  > {q} sd: grown {int((f & gr).sum())} crowns / {int((n * r['grown'])[f].sum())} grown cells; "
                   f"unchanged {int((f & unch).sum())} / {int(n[f & unch].sum())} cells (of them tree crowns "
                   f"{int(ut.sum())} / {int(n[ut].sum())}); any change {int((f & (r['changed'] >= 0.1)).sum())}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--km", type=Path, help="eval_change_real.py --workdir K: the rule scored on Kahramanmaras")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(6)))
    ap.add_argument("--corr", type=float, default=None,
                    help="only crowns whose best z is within this many robust sd of the run's median z")
    ap.add_argument("--model", choices=("uniform", "proportional"), default="uniform",
                    help="uniform: the crown moved by dz metres; proportional: by a factor of its height above ground")
    ap.add_argument("--stereo", action="store_true",
                    help="eval_hard_sim.py --stereo stores: both targets' curves averaged")
    ap.add_argument("--apply", type=float, nargs="*", default=[],
                    help="score the rule flagging crowns beyond these many robust sd of the run's crowns")
    ap.add_argument("--size-quantile", type=float, help="--apply: only crowns up to this quantile of size")
    ap.add_argument("--dh", action="store_true", help="with --stereo: the sweep's dh per crown, not the texture")
    ap.add_argument("--cells", choices=("lit", "visible"), default="lit",
                    help="a crown's inner cells lit at both dates (crown_texture's) or every visible one")
    ap.add_argument("--census", action="store_true", help="only the census of the missed grown cells")
    ap.add_argument("--cache", type=Path, help="a folder keeping each seed's curves (a rerun reads them)")
    a = ap.parse_args(argv)
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)  # crowns without cells: NaN rows, reported as such
    if a.km:  # eval_change_real.py --workdir K: km_post1.zarr, km_post2.zarr (no truth of trees: --apply only)
        for t in (1, 2):
            path = a.km / f"km_post{t}.zarr"
            cache = a.cache / f"km{t}_{a.model}.npz" if a.cache else None
            if cache is not None and cache.exists():
                r = dict(np.load(cache))
            else:
                r = scan(path, None, a.model)
                if cache is not None:
                    np.savez(cache, **r)
            print(f"== Kahramanmaras img{t}: target px per metre of height {np.hypot(*r['rate']):.2f}, "
                  f"crowns {int(np.isfinite(r['Z']).all(1).sum())}")
            for q in a.apply:
                print(apply(r, path, None, q, a.model, a.size_quantile))
        return 0
    for s in a.seeds:
        stem = "hard_stereo" if a.stereo else "hard"
        path, scene = a.hard / f"{stem}{s}.zarr", a.hard / f"{stem}{s}"
        if not path.exists():
            continue
        if a.census:
            print(f"== seed {s}: " + census(path, scene))
            continue
        if a.dh:
            print(f"== seed {s}: the stereo sweep's dh per crown\n" + dh_crowns(path, scene))
            continue
        tag = f"{a.hard.name}_{'st' if a.stereo else ''}{s}_{a.model}{'' if a.cells == 'lit' else '_vis'}"
        cache = a.cache / f"{tag}.npz" if a.cache else None
        if cache is not None and cache.exists():
            r = dict(np.load(cache))
        else:
            r = scan(path, scene, a.model, a.cells == "lit")
            if cache is not None:
                np.savez(cache, **r)
        print(f"== seed {s}: target px per metre of height {np.hypot(*r['rate']):.2f}")
        print(summary(r, a.corr, a.model))
        for q in a.apply:
            print(apply(r, path, scene, q, a.model, a.size_quantile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
