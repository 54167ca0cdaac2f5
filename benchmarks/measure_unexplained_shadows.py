"""Measurement: how many false alarms lie in shadows the old DSM does not predict, and how dark
those shadows are (issue 7, point 4; H2).

On stores ``eval_hard_sim.py`` left (``--work``, ``hardN`` + ``hardN.zarr``), with the simulator's
truth: the target's cast shadows of ``dsm_epoch2`` under the *true* target sun, against those of
``dsm`` (what the change stage can predict). Cells shadowed at date 2 by the new surface only are
**unexplained shadows** (a new or raised building's shadow); cells shadowed by the old surface
only are **missing shadows** (a demolished building's). Per seed it prints

* the false alarms on ground (``change == 1`` on unchanged, scored, non-elevated cells) and how
  many of them lie in unexplained / missing / predicted shadows, within 1 m of a change or not;
* the darkness of the target's cube values (band mean) on ground cells in unexplained shadows against those in
  shadows the old DSM predicts and on lit cells: medians, and the AUC of "unexplained shadow
  darker than a lit cell" and "... than a predicted-shadow cell".

Kahramanmaras (``--km``: the stores ``eval_change_real.py --workdir`` leaves, ``km_post1.zarr``,
``km_post2.zarr``): the same with the CARS post-event DSM as the new surface (moved onto the pre DSM's
grid, one cell apart), the sun the change stage used (estimated: the images carry no time), and
``reference_change.tif`` (0 none) for the unchanged cells.

    python benchmarks/measure_unexplained_shadows.py [--work /tmp/eval_hard_sim] [--seeds 0 1 2 3 4 5]
                                                     [--km /tmp/eval_change_real]
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import numpy as np


def _read(path):
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def shaded(h, az_deg, el_deg, north_deg, cell, tol=0.3):
    """Cells of ``h`` without direct sun (code 0 of the change stage's illumination kernel)."""
    from offnadir.change import kernels as K

    out = np.empty(h.shape, np.uint8)
    K.illumination(np.ascontiguousarray(h, np.float64), cell, math.radians(az_deg + north_deg),
                   math.radians(el_deg), tol, 1.0, float(max(h.shape)), out)
    return out == K.SHADED


def auc(a, b):
    """P(a < b) + P(a == b)/2 (a darker than b)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(a) or not len(b):
        return math.nan
    allv = np.concatenate([a, b])
    from scipy.stats import rankdata

    r = rankdata(allv)
    ra = r[: len(a)].sum()
    u = ra - len(a) * (len(a) + 1) / 2  # pairs where a > b
    return float(1.0 - u / (len(a) * len(b)))


def one(d: Path, store: Path) -> dict:
    import xarray as xr
    from scipy.ndimage import distance_transform_edt

    from offnadir.simulate import truth as T

    meta = json.loads((d / "scene.json").read_text())
    cell = float(meta["cell"])
    ds = xr.open_zarr(store, mask_and_scale=False)
    suns = json.loads(ds.attrs.get("change_sun", "null") or "null") or []
    north = float(suns[0]["grid_north_deg"]) if suns else 0.0
    h1 = _read(d / "dsm.tif").astype(np.float64)
    h2 = _read(d / "dsm_epoch2.tif").astype(np.float64)
    vt = meta["views"]["target"]
    old = shaded(h1, vt["sun_azimuth_deg"], vt["sun_elevation_deg"], north, cell)
    new = shaded(h2, vt["sun_azimuth_deg"], vt["sun_elevation_deg"], north, cell)
    unexpl, missing, both = new & ~old, old & ~new, new & old
    vis = np.asarray(ds["visible"].values)
    chm = np.asarray(ds["change"].values[1])
    val = np.asarray(ds["value"].values[1], np.float64).mean(axis=0)
    occ = _read(d / "truth_occluded.tif")
    elev = _read(d / "truth_elevated.tif") == 1
    cls = _read(d / "truth_change_class.tif")
    sb = _read(d / "truth_structural.tif")
    cells = (vis[0] == 1) & (vis[1] == 1) & (occ == 0) & (sb != T.IGNORE) & (chm != 2)
    near = distance_transform_edt(cls == 0) * cell <= 1.0
    fa = cells & (sb == 0) & (chm == 1) & ~elev
    out = dict(seed=int(meta["seed"]), ground_fa=int(fa.sum()))
    for name, m in (("unexplained", unexpl), ("missing", missing), ("predicted", both & ~near),
                    ("lit", ~new & ~old)):
        out[f"fa_{name}"] = int((fa & m).sum())
        out[f"fa_{name}_far"] = int((fa & m & ~near).sum())
    # the share of unexplained-shadow ground cells flagged (whatever their truth class)
    g = cells & ~elev
    out["unexplained_ground_cells"] = int((g & unexpl).sum())
    out["unexplained_ground_flagged"] = float(chm[g & unexpl].mean() == 1) if (g & unexpl).any() else math.nan
    out["unexplained_ground_flag_rate"] = float((chm[g & unexpl] == 1).mean()) if (g & unexpl).any() else math.nan
    ok = (vis[1] == 1) & np.isfinite(val) & ~elev  # ground cells: the surface a shadow falls on
    vu, vp, vl = val[ok & unexpl], val[ok & both], val[ok & ~new & ~old]
    out.update(n_unexpl=int(len(vu)), n_pred=int(len(vp)), n_lit=int(len(vl)),
               med_unexpl=float(np.median(vu)) if len(vu) else math.nan,
               med_pred=float(np.median(vp)) if len(vp) else math.nan,
               med_lit=float(np.median(vl)) if len(vl) else math.nan,
               auc_unexpl_vs_lit=auc(vu, vl), auc_unexpl_vs_pred=auc(vu, vp), auc_pred_vs_lit=auc(vp, vl))
    # missing shadows: now lit, should look like lit
    vm = val[ok & missing]
    out.update(n_missing=int(len(vm)), med_missing=float(np.median(vm)) if len(vm) else math.nan,
               auc_pred_vs_missing=auc(vp, vm))
    return out


CARS = Path("/work/shared/data/real/picanteo/derived/cars_1.3.0")


def _on_pre_grid(post_path, pre_path):
    """The post DSM resampled (nearest, whole-cell offset) onto the pre DSM's grid; NaN outside."""
    import rasterio

    with rasterio.open(pre_path) as a, rasterio.open(post_path) as b:
        ta, tb = a.transform, b.transform
        post = b.read(1).astype(np.float64)
        if b.nodata is not None:
            post[post == b.nodata] = np.nan
        di = int(round((tb.f - ta.f) / ta.e))  # rows of the pre grid where post's first row lies
        dj = int(round((tb.c - ta.c) / ta.a))
        out = np.full(a.shape, np.nan)
        i0, j0 = max(di, 0), max(dj, 0)
        i1, j1 = min(a.shape[0], di + post.shape[0]), min(a.shape[1], dj + post.shape[1])
        out[i0:i1, j0:j1] = post[i0 - di:i1 - di, j0 - dj:j1 - dj]
        return out


def one_km(store: Path, t: int = 1) -> dict:
    import xarray as xr

    ds = xr.open_zarr(store, mask_and_scale=False)
    suns = json.loads(ds.attrs["change_sun"])
    cell = abs(float(ds.attrs["spatial:transform"][0]))
    h1 = np.asarray(ds["dsm"].values, np.float64)
    h2 = _on_pre_grid(CARS / "post" / "dsm.tif", CARS / "pre" / "dsm.tif")
    s = suns[t]
    old = shaded(h1, s["azimuth"], s["elevation"], s["grid_north_deg"], cell)
    new = shaded(np.where(np.isfinite(h2), h2, h1), s["azimuth"], s["elevation"], s["grid_north_deg"], cell)
    unexpl, missing, both = new & ~old, old & ~new, new & old
    ref = _read(CARS / "reference_change.tif")
    vis = np.asarray(ds["visible"].values)
    chm = np.asarray(ds["change"].values[t])
    elev = np.asarray(ds["elevated"].values) == 1
    val = np.asarray(ds["value"].values[t], np.float64).mean(axis=0)
    cells = (vis[0] == 1) & (vis[t] == 1) & (ref != 255) & (chm != 2)
    fa = cells & (ref == 0) & (chm == 1) & ~elev
    out = dict(store=store.name, sun=(round(s["azimuth"], 1), round(s["elevation"], 1), s["source"]),
               ground_fa=int(fa.sum()), ground_unchanged=int((cells & (ref == 0) & ~elev).sum()))
    for name, m in (("unexplained", unexpl), ("missing", missing), ("predicted", both), ("lit", ~new & ~old)):
        out[f"fa_{name}"] = int((fa & m).sum())
        out[f"cells_{name}"] = int((cells & (ref == 0) & ~elev & m).sum())
    ok = (vis[t] == 1) & np.isfinite(val) & ~elev
    vu, vp, vl = val[ok & unexpl], val[ok & both], val[ok & ~new & ~old]
    out.update(auc_unexpl_vs_lit=auc(vu, vl), auc_unexpl_vs_pred=auc(vu, vp), auc_pred_vs_lit=auc(vp, vl),
               med_unexpl=float(np.median(vu)) if len(vu) else math.nan, med_pred=float(np.median(vp)),
               med_lit=float(np.median(vl)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/eval_hard_sim")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path, help="eval_change_real.py --workdir (km_post1.zarr, km_post2.zarr)")
    a = ap.parse_args(argv)
    if a.km:
        for t in (1, 2):
            r = one_km(a.km / f"km_post{t}.zarr")
            print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))
    if not a.seeds:
        return 0
    w = Path(a.work)
    rows = [one(w / f"hard{s}", w / f"hard{s}.zarr") for s in a.seeds]
    keys = ["seed", "ground_fa", "fa_unexplained", "fa_unexplained_far", "fa_missing", "fa_missing_far",
            "fa_predicted", "fa_lit", "fa_lit_far", "unexplained_ground_cells", "unexplained_ground_flag_rate",
            "n_unexpl", "med_unexpl", "med_pred", "med_lit", "med_missing", "auc_unexpl_vs_lit",
            "auc_unexpl_vs_pred", "auc_pred_vs_lit", "auc_pred_vs_missing"]
    for k in keys:
        vals = [r[k] for r in rows]
        print(f"{k:32s} " + " ".join(f"{v:8.3f}" if isinstance(v, float) else f"{v:8d}" for v in vals))
    tot = sum(r["ground_fa"] for r in rows)
    print(f"ground false alarms: {tot}; in unexplained shadows {sum(r['fa_unexplained'] for r in rows)} "
          f"({sum(r['fa_unexplained_far'] for r in rows)} farther than 1 m from a change), in missing shadows "
          f"{sum(r['fa_missing'] for r in rows)}, in predicted shadows away from changes "
          f"{sum(r['fa_predicted'] for r in rows)}, lit {sum(r['fa_lit'] for r in rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
