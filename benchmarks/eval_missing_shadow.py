"""Evaluation: the missing-shadow rule (:mod:`offnadir.change.missing_shadow`) applied through the
pipeline's own functions to runs made without it, and scored (issue 7, point 4).

For each run (a change store, or an ``.npz`` of its arrays with a ``.json`` beside it holding
``change_sun`` and ``cell``): each image's classifier from
:func:`offnadir.change.illumination.shadow_classifiers` (the run's suns), the caster sums of
:func:`~offnadir.change.missing_shadow.tile_sums` over the whole grid as one tile (tested equal to
any tiling), :func:`~offnadir.change.missing_shadow.decide` and
:func:`~offnadir.change.missing_shadow.raise_gone` on the run's probability (not where it has
``dh``), and the scores before and after:

* hard simulator (``--hard W``: ``eval_hard_sim.py --work W`` leaves ``hardN/`` and ``hardN.zarr``):
  elevated F1 on the structural truth and score AUC, as ``eval_evidence_offline.py`` scores them;
* Kahramanmaras (``--km K``: ``eval_change_real.py --workdir K``): F1, score AUC;
* default simulator (``--default D``: ``simN{A,B}.npz`` + ``simN{A,B}/`` scenes, as
  ``tests/test_change.py`` makes them): elevated F1 against ``truth_change.tif`` on cells visible in
  both images and by the truth, and the ground false-alarm rate.

Variant ``all``: the rule as it is; ``ground``: only shadow cells on ground (``elevated == 0``) are
summed; ``no_vis_margin``: sure cells need not have every cell within 2 visible.

    python benchmarks/eval_missing_shadow.py [--hard W] [--km K] [--default D] [--variants all ground]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eval_evidence_offline as OFF  # noqa: E402

from offnadir.change import cells as P  # noqa: E402
from offnadir.change import missing_shadow as MS  # noqa: E402
from offnadir.change import reference as REF  # noqa: E402


def load(path: Path) -> dict:
    import xarray as xr

    if path.suffix == ".npz":
        z = np.load(path)
        meta = json.loads(path.with_suffix(".json").read_text())
        arr = {k: z[k] for k in z.files}
        suns, cell = json.loads(meta["change_sun"]), float(meta["cell"])
    else:
        ds = xr.open_zarr(path, mask_and_scale=False)
        arr = {k: np.asarray(ds[k].values) for k in ("dsm", "visible", "value", "illumination", "patch", "elevated",
                                                     "probability", "change") + (("dh",) if "dh" in ds else ())}
        suns, cell = json.loads(ds.attrs["change_sun"]), abs(float(ds.attrs["spatial:transform"][0]))
    return dict(arr=arr, suns=suns, cell=cell)


def fitted_suns(run: dict) -> list:
    """The stored run's suns (one per image) with the pipeline's shadow classifiers fitted on its cube
    (:func:`offnadir.change.illumination.shadow_classifiers`), as every replay of the shadow rules needs."""
    import xarray as xr

    from offnadir.change.illumination import shadow_classifiers

    a = run["arr"]
    n_img = a["visible"].shape[0]
    cube = xr.Dataset({"dsm": (("y", "x"), a["dsm"]), "visible": (("image", "y", "x"), a["visible"]),
                       "value": (("image", "band", "y", "x"), a["value"])})
    suns = [dict(s) for s in run["suns"][:n_img]]
    shadow_classifiers(cube, suns, run["cell"])
    return suns


def stored_jobs(hard, seeds, km) -> list:
    """(name, store, scene or None) of the stores ``eval_hard_sim.py --work HARD`` and
    ``eval_change_real.py --workdir KM`` left, those that exist."""
    jobs = []
    if hard:
        jobs += [(f"hard{s}", hard / f"hard{s}.zarr", hard / f"hard{s}") for s in seeds
                 if (hard / f"hard{s}.zarr").exists()]
    if km:
        jobs += [(f"km img{t}", km / f"km_post{t}.zarr", None) for t in (1, 2)
                 if (km / f"km_post{t}.zarr").exists()]
    return jobs


def with_rule(run, ground_only=False) -> np.ndarray:
    """The run's probability of target 1 after the missing-shadow rule."""
    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    a = run["arr"]
    n_img = a["visible"].shape[0]
    suns = fitted_suns(run)
    arrays = {k: a[k] for k in ("dsm", "visible", "value", "illumination", "patch", "elevated")}
    if ground_only:  # shadow cells on roofs left out: their illumination read as unknown there
        ill = a["illumination"].copy()
        ill[:, a["elevated"] == 1] = np.where(ill[:, a["elevated"] == 1] == 0, 255, ill[:, a["elevated"] == 1])
        arrays["illumination"] = ill
    h = a["dsm"].astype(np.float64)
    grid = tuple((math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])) for s in suns)
    ctx = Context(shape=h.shape, n_images=n_img, n_bands=a["value"].shape[1], cell=run["cell"], opts=ChangeOptions(),
                  targets=tuple(range(1, n_img)), h_range=(float(np.nanmin(h)), float(np.nanmax(h))), sun=grid,
                  shadow_classes=MS.classifiers(suns))
    sums = MS.tile_sums(MemoryIO(arrays), ctx, Tile(0, 0, 0, h.shape[0], 0, h.shape[1]))
    gone = MS.decide(sums, ctx.targets, [s["image"] for s in suns], suns)
    p = a["probability"][1].astype(np.float64)
    if 1 not in gone:
        return p, suns
    g = P.paint(a["patch"], *gone[1])
    if "dh" in a:
        g[np.isfinite(a["dh"][1])] = np.nan
    return MS.raise_gone(p, g), suns


def _decided(p, vis):
    ch = np.full(p.shape, 2, np.uint8)
    obs = (vis[0] == 1) & (vis[1] == 1) & np.isfinite(p)
    ch[obs] = p[obs] >= 0.5
    return ch


def score_hard(run, p, scene: Path) -> dict:
    from offnadir.change.evaluate import metrics

    a = run["arr"]
    ch = _decided(p, a["visible"])
    ref, occ = OFF._read(scene / "truth_structural.tif"), OFF._read(scene / "truth_occluded.tif")
    te = OFF._read(scene / "truth_elevated.tif") == 1
    cells = (a["visible"][0] == 1) & (a["visible"][1] == 1) & (ref != REF.IGNORE) & (occ == 0)
    dec = cells & (ch != 2)
    truth = np.isin(ref, (1, 2))
    el = metrics(truth[dec & te], (ch == 1)[dec & te])
    hs = REF.height_scores(ref, ch, p, cells, run["cell"] ** 2)
    return dict(f1=el["f1"], auc=hs["auc"])


def score_km(run, p) -> dict:
    a = run["arr"]
    ref = OFF._read(OFF.KM_REF)
    cells = (a["visible"][0] == 1) & (a["visible"][1] == 1) & (ref != REF.IGNORE)
    hs = REF.height_scores(ref, _decided(p, a["visible"]), p, cells, run["cell"] ** 2)
    return dict(f1=hs["f1"], auc=hs["auc"])


def score_default(run, p, scene: Path) -> dict:
    from offnadir.change.evaluate import metrics

    a = run["arr"]
    ch = _decided(p, a["visible"])
    tc = OFF._read(scene / "truth_change.tif") != 0
    te = OFF._read(scene / "truth_elevated.tif") == 1
    occ = OFF._read(scene / "truth_occluded.tif")
    cells = (a["visible"][0] == 1) & (a["visible"][1] == 1) & (ch != 2) & ((occ & 1) == 0) & ((occ & 4) == 0)
    el = metrics(tc[cells & te], (ch == 1)[cells & te])
    gr = metrics(tc[cells & ~te], (ch == 1)[cells & ~te])
    return dict(f1=el["f1"], ground_fa=gr["false_alarm_rate"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--km", type=Path)
    ap.add_argument("--default", type=Path)
    ap.add_argument("--variants", nargs="+", default=["all", "ground"], choices=["all", "ground", "no_vis_margin", "floor_half"])
    a = ap.parse_args(argv)
    jobs = []
    if a.hard:
        jobs += [(f"hard{s}", a.hard / f"hard{s}.zarr", lambda r, p, s=s: score_hard(r, p, a.hard / f"hard{s}"))
                 for s in range(6) if (a.hard / f"hard{s}.zarr").exists()]
    if a.km:
        jobs += [(f"km img{t}", a.km / f"km_post{t}.zarr", score_km) for t in (1, 2)
                 if (a.km / f"km_post{t}.zarr").exists()]
    if a.default:
        jobs += [(f"default {s}{v}", a.default / f"sim{s}{v}.npz",
                  lambda r, p, s=s, v=v: score_default(r, p, a.default / f"sim{s}{v}"))
                 for s in (0, 1, 2) for v in "AB" if (a.default / f"sim{s}{v}.npz").exists()]
    for name, path, scorer in jobs:
        run = load(path)
        before = scorer(run, run["arr"]["probability"][1].astype(np.float64))
        line = f"{name:12s} without " + ", ".join(f"{k} {v:.4f}" for k, v in before.items())
        for v in a.variants:
            if v == "no_vis_margin":  # training/sure cells without the visibility margin (only usable)
                from offnadir.change import shadow_observed as SO

                orig = SO.training_classes

                def plain(codes, usable, margin=SO.MARGIN, _orig=orig):
                    sh, lit = _orig(codes, np.ones(np.shape(codes), bool), margin)
                    return sh & np.asarray(usable, bool), lit & np.asarray(usable, bool)

                SO.training_classes = plain
                try:
                    p, suns = with_rule(run)
                finally:
                    SO.training_classes = orig
            elif v == "floor_half":  # gone roofs' cells raised to at least 1/2 only (p -> max(p, 1/2))
                orig = MS.raise_gone

                def floor(p, gone):
                    with np.errstate(invalid="ignore"):
                        hit = np.isfinite(p) & np.isfinite(gone) & (np.asarray(gone) >= 0.5)
                    return np.where(hit, np.fmax(p, 0.5), p)

                MS.raise_gone = floor
                try:
                    p, suns = with_rule(run)
                finally:
                    MS.raise_gone = orig
            else:
                p, suns = with_rule(run, ground_only=v == "ground")
            after = scorer(run, p)
            ms = suns[1].get("missing_shadows") or {}
            line += f" | {v}: " + ", ".join(f"{k} {x:.4f}" for k, x in after.items()) + \
                f" (roofs gone {ms.get('casters_gone')} of {ms.get('casters_tested')})"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
