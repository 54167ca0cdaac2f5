"""Evaluation: the roofs the shadow rules decided changed on the hard simulator, against the truth
(issue 7, H2 seventh round).

Three rules raise a whole patch's cells to ``max(p, 1/2)`` (``plan["gone"]``): missing shadows
(:mod:`offnadir.change.missing_shadow`: the predicted shadow seen lit), longer shadows
(:mod:`offnadir.change.longer_shadow`: seen shadowed beyond it, a raised roof) and crown shadows
(:mod:`offnadir.change.crown_shadow`). The store keeps only their counts (``change_sun``, printed), not
which rule decided a patch; the patches are found as those holding cells at ``p = 1/2`` exactly, and
the sign of the target classifier's mean log-ratio over the predicted shadow hints at the rule (above
the midpoint: read lit, the missing-shadow rule; well below: read shadowed, the longer-shadow rule
whose fringe lies beyond it). Per such patch of at least ``--min-cells`` cells: its truth class (most of its cells), its predicted cast
shadow at the target (:func:`~offnadir.change.missing_shadow.shadow_casters` with the store's DSM,
illumination codes and target sun, every predicted-shadow cell, not only the rule's sure ones), the
share of those cells truly shadowed at the target and at the base date (``truth_shadow.tif``), the
cells where the surface rose by more than 2.5 m (``dsm_epoch2 - dsm``: a new or raised receiver
lights a shadow that is still cast), and the target classifier's mean per-cell ``log f_lit / f_shadow``
there against the rule's midpoint (:func:`~offnadir.change.missing_shadow.midpoint`).

    python benchmarks/eval_shadow_gone.py --work DIR [--seeds 0 1 2 3 4 5] [--min-cells 50]

``DIR``: an ``eval_hard_sim.py --work`` (scenes ``hardN/``, stores ``hardN.zarr``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np


def _read(path):
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def gone_roofs(scene: Path, store: Path, t: int = 1, min_cells: int = 50) -> list:
    """One dict per patch of at least ``min_cells`` cells that the rule decided gone at target ``t``."""
    import xarray as xr

    from offnadir.change import missing_shadow as MS
    from offnadir.simulate import truth as T

    ds = xr.open_zarr(store, mask_and_scale=False)
    cls, shadow = _read(scene / "truth_change_class.tif"), _read(scene / "truth_shadow.tif")
    dsm = np.asarray(ds["dsm"].values, np.float64)
    rose = _read(scene / "dsm_epoch2.tif").astype(np.float64) - dsm > 2.5
    pid, prob = np.asarray(ds["patch"].values), np.asarray(ds["probability"].values[t])
    report = json.loads(ds.attrs["change_sun"])
    sun = report[t]
    cell = float(abs(ds.attrs["spatial:transform"][0]))
    az, el = math.radians(sun["azimuth"] + sun["grid_north_deg"]), math.radians(sun["elevation"])
    ci, cj = MS.shadow_casters(dsm, np.asarray(ds["illumination"].values[t]), cell, az, el, 0.3,
                               float(np.nanmax(dsm) - np.nanmin(dsm)) / (math.tan(el) * cell) + 2.0)
    caster = np.where(ci >= 0, pid[np.clip(ci, 0, None), np.clip(cj, 0, None)], 0)
    clf = MS.classifiers(report)[t]
    x = np.asarray(ds["value"].values[t], np.float64).mean(0)
    llr = -(clf.cell_log_odds(np.where(np.isfinite(x), x, 0.0)) - clf.prior) if clf is not None else None
    vis = np.asarray(ds["visible"].values[t]) == 1
    out = []
    with np.errstate(invalid="ignore"):
        at_half = np.isfinite(prob) & (prob == np.float32(0.5))
    for p in np.unique(pid[at_half]):
        m = pid == p
        if m.sum() < min_cells:
            continue
        counts = np.bincount(cls[m].astype(np.int64), minlength=len(T.CLASSES))
        sh = caster == p
        seen = sh & vis & np.isfinite(x)
        out.append(dict(patch=int(p), cells=int(m.sum()), truth=T.CLASSES[int(np.argmax(counts))],
                        shadow_cells=int(sh.sum()),
                        shadowed_target=float(((shadow[sh] & 2) != 0).mean()) if sh.any() else math.nan,
                        shadowed_base=float(((shadow[sh] & 1) != 0).mean()) if sh.any() else math.nan,
                        rose=int((rose & sh).sum()),
                        mean_llr=float(llr[seen].mean()) if llr is not None and seen.any() else math.nan,
                        midpoint=MS.midpoint(clf)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="eval_hard_sim.py --work")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--min-cells", type=int, default=50)
    a = ap.parse_args(argv)
    import xarray as xr

    for s in a.seeds:
        rows = gone_roofs(a.work / f"hard{s}", a.work / f"hard{s}.zarr", min_cells=a.min_cells)
        bad = [r for r in rows if r["truth"] == "none"]
        rec = json.loads(xr.open_zarr(a.work / f"hard{s}.zarr").attrs["change_sun"])[1]
        rules = (f"missing shadows {rec.get('missing_shadows', {}).get('casters_gone')}, longer shadows "
                 f"{rec.get('longer_shadows', {}).get('casters_raised')}, crown shadows "
                 f"{rec.get('crown_shadows', {}).get('crowns_gone')}")
        print(f"seed {s}: {len(rows)} patches at p = 1/2 (>= {a.min_cells} cells), {len(bad)} unchanged "
              f"({sum(r['cells'] for r in bad)} cells); decided by the rules (any size): {rules}")
        for r in rows:
            print(f"  patch {r['patch']:>8} {r['cells']:>5} cells, truth {r['truth']:<10} predicted shadow "
                  f"{r['shadow_cells']:>5} cells: truly shadowed at the target {r['shadowed_target']:.2f}, at the "
                  f"base {r['shadowed_base']:.2f}; surface rose there {r['rose']:>4}; target log f_l/f_s "
                  f"{r['mean_llr']:+.2f} (midpoint {r['midpoint']:+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
