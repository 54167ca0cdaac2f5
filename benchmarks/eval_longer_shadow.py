"""Evaluation: longer shadows as evidence of raised roofs (:mod:`offnadir.change.longer_shadow`),
applied through its own functions to finished runs (made without the rule: before fe656aa, or with
it, which then shows what it decided) and scored, to choose its conditions (issue 7, H4).

Per run and target 1: the target's shadow classifier (the run's suns, as the pipeline calibrates
it), :func:`~offnadir.change.longer_shadow.fringe_sums` over the whole grid for each ``--band``,
:func:`~offnadir.change.longer_shadow.decide`, and what it would do: the patches decided raised with
their truth class (the majority of their cells in ``truth_change_class.tif``), the patches' per-class
count of ``S/9 > 2`` and, painted as ``p -> max(p, 1/2)`` on the patches decided (as the
missing-shadow rule paints a roof gone), the scores before and after:

* hard simulator (``--hard W``: ``eval_hard_sim.py --work W`` leaves ``hardN/`` and ``hardN.zarr``):
  elevated F1 on the structural truth and score AUC;
* Kahramanmaras (``--km K``: ``eval_change_real.py --workdir K``): F1 and score AUC.

``--trees`` (hard simulator): the missing-shadow caster sums
(:func:`offnadir.change.missing_shadow.tile_sums`) of the cut trees, per elevated patch (as the rule
decides) and per connected elevated component (the whole crown, which the roof-step split cuts into
fragments), with the run's prior of roofs gone: why the missing-shadow rule does not find them.

    python benchmarks/eval_longer_shadow.py [--hard W] [--km K] [--band 3 4 6] [--no-base] [--trees]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eval_evidence_offline as OFF  # noqa: E402
import eval_missing_shadow as EMS  # noqa: E402

from offnadir.change import cells as P  # noqa: E402
from offnadir.change import longer_shadow as LS  # noqa: E402
from offnadir.change import missing_shadow as MS  # noqa: E402

NAMES = {0: "none", 1: "new", 2: "demolished", 3: "raised", 4: "reroofed", 5: "tree_cut", 6: "tree_grown",
         7: "below_parallax"}


def with_rule(run, band: float, cls=None, base: bool = True):
    """(probability of target 1 after the rule, [(patch, class, cells, n, S/n, S/9, P)])."""

    from offnadir.change.options import ChangeOptions

    a = run["arr"]
    suns = EMS.fitted_suns(run)
    clf = MS.classifiers(suns)[1]
    p = a["probability"][1].astype(np.float64)
    if clf is None:
        return p, []
    h = a["dsm"].astype(np.float64)
    lab = np.where(a["elevated"] == 1, a["patch"], 0)
    az = math.radians(suns[1]["azimuth"] + suns[1]["grid_north_deg"])
    el = math.radians(suns[1]["elevation"])
    usable = (a["visible"][0] == 1) & (a["visible"][1] == 1)
    x = a["value"][1].astype(np.float64).mean(axis=0)
    ids, n, s = LS.fringe_sums(h, lab, a["illumination"][1], usable, x, clf, run["cell"], az, el,
                               ChangeOptions().sun_tolerance, float(max(h.shape)), band)
    post = LS.decide(n, s, clf)
    clf0 = MS.classifiers(suns)[0]
    if base and clf0 is not None:  # the base's own fringe under its own sun, on the same patches
        az0 = math.radians(suns[0]["azimuth"] + suns[0]["grid_north_deg"])
        el0 = math.radians(suns[0]["elevation"])
        x0 = a["value"][0].astype(np.float64).mean(axis=0)
        i0, n0_, s0_ = LS.fringe_sums(h, lab, a["illumination"][0], a["visible"][0] == 1, x0, clf0, run["cell"],
                                      az0, el0, ChangeOptions().sun_tolerance, float(max(h.shape)), band)
        k = np.searchsorted(i0, ids)
        found = (k < len(i0)) & (i0[np.minimum(k, len(i0) - 1)] == ids)
        n0 = np.where(found, n0_[np.minimum(k, len(i0) - 1)], 0)
        s0 = np.where(found, s0_[np.minimum(k, len(i0) - 1)], 0.0)
        post = LS.decide(n, s, clf, n0, s0)
    rows = []
    for k, pid in enumerate(ids):
        m = a["patch"] == pid
        c = NAMES[int(np.bincount(cls[m], minlength=8).argmax())] if cls is not None else "?"
        rows.append((int(pid), c, int(m.sum()), int(n[k]), float(s[k] / max(n[k], 1)), float(s[k] / 9), float(post[k])))
    hit = post >= 0.5
    if hit.any():
        g = P.paint(a["patch"], ids[hit], post[hit])
        if "dh" in a:
            g[np.isfinite(a["dh"][1])] = np.nan
        p = MS.raise_gone(p, g)
    return p, rows


def cut_trees(run, cls) -> str:
    """The cut trees' missing-shadow evidence (see the module docstring, ``--trees``)."""
    import xarray as xr
    from scipy import ndimage as ndi

    from offnadir.change.illumination import shadow_classifiers
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    a = run["arr"]
    cube = xr.Dataset({"dsm": (("y", "x"), a["dsm"]), "visible": (("image", "y", "x"), a["visible"]),
                       "value": (("image", "band", "y", "x"), a["value"])})
    suns = [dict(s) for s in run["suns"][:2]]
    shadow_classifiers(cube, suns, run["cell"])
    h = a["dsm"].astype(np.float64)
    grid = tuple((math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])) for s in suns)
    ctx = Context(shape=h.shape, n_images=2, n_bands=1, cell=run["cell"], opts=ChangeOptions(), targets=(1,),
                  h_range=(float(np.nanmin(h)), float(np.nanmax(h))), sun=grid, shadow_classes=MS.classifiers(suns))
    arrays = {k: a[k] for k in ("dsm", "visible", "value", "illumination", "patch", "elevated")}
    sums = MS.tile_sums(MemoryIO(arrays), ctx, Tile(0, 0, 0, h.shape[0], 0, h.shape[1]))
    ids, n, S = sums["ids"], sums["rows"]["msh_n"], sums["rows"]["msh_llr"]

    def L(n0, n1, s0, s1):
        return np.where(n1 > 0, np.where(n0 > 0, np.minimum(s1, -s0), s1) / MS.CORRELATED, np.nan)

    lp = L(n[:, 0], n[:, 1], S[:, 0], S[:, 1])
    prior = MS.prior_log_odds(lp[np.isfinite(lp)])
    el = a["elevated"] == 1
    comp, _ = ndi.label(el)
    first = {}
    for p_, c_ in zip(a["patch"][el], comp[el]):
        first.setdefault(int(p_), int(c_))
    cid = np.array([first.get(int(i), 0) for i in ids])
    out = []
    for c in np.unique(comp[el & (cls == 5)]):
        m = comp == c
        if (cls[m] == 5).mean() < 0.5:
            continue
        k = cid == c
        pk = lp[k]
        lc = float(L(n[k, 0].sum(), n[k, 1].sum(), S[k, 0].sum(), S[k, 1].sum()))
        out.append(f"{int(m.sum())} cells, {int(k.sum())} casters, n_t {int(n[k, 1].sum())}: "
                   f"best patch L {np.nanmax(pk) if np.isfinite(pk).any() else float('nan'):.2f}, crown L {lc:.2f}")
    return f"prior log odds {prior:.2f}; cut trees: " + "; ".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--km", type=Path)
    ap.add_argument("--band", type=float, nargs="+", default=[LS.BAND_CELLS])
    ap.add_argument("--no-base", action="store_true", help="without the base's confirmation (-S_0)")
    ap.add_argument("--trees", action="store_true", help="the cut trees' missing-shadow evidence (hard simulator)")
    a = ap.parse_args(argv)
    jobs = []
    if a.hard:
        jobs += [(f"hard{s}", a.hard / f"hard{s}.zarr", a.hard / f"hard{s}",
                  lambda r, p, s=s: EMS.score_hard(r, p, a.hard / f"hard{s}"))
                 for s in range(6) if (a.hard / f"hard{s}.zarr").exists()]
    if a.km:
        jobs += [(f"km img{t}", a.km / f"km_post{t}.zarr", None, EMS.score_km) for t in (1, 2)
                 if (a.km / f"km_post{t}.zarr").exists()]
    if a.trees:
        for name, path, scene, _ in jobs:
            if scene is not None:
                print(f"  {name:9s} " + cut_trees(EMS.load(path), OFF._read(scene / "truth_change_class.tif")),
                      flush=True)
        return 0
    for band in a.band:
        print(f"band {band:g} cells of extra shadow", flush=True)
        for name, path, scene, scorer in jobs:
            run = EMS.load(path)
            cls = OFF._read(scene / "truth_change_class.tif") if scene is not None else None
            before = scorer(run, run["arr"]["probability"][1].astype(np.float64))
            p, rows = with_rule(run, band, cls, not a.no_base)
            after = scorer(run, p)
            strong = {}
            for r in rows:
                if r[5] > 2:
                    strong[r[1]] = strong.get(r[1], 0) + 1
            dec = [(r[0], r[1], r[2]) for r in rows if r[6] >= 0.5]
            print(f"  {name:9s} " + ", ".join(f"{k} {v:.4f}" for k, v in before.items()) + " -> " +
                  ", ".join(f"{k} {v:.4f}" for k, v in after.items()) +
                  f"; patches with a fringe {len(rows)}, S/9 > 2 by class {strong}; decided raised "
                  f"(patch, class, cells) {dec[:8]}{' ...' if len(dec) > 8 else ''}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
