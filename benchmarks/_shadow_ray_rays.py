"""The rays of ``eval_shadow_ray.py`` (issue 7, H6 seventh round; q3 tenth round): a stored run's arrays
(:func:`load`), the share of a mask on a ray of K cells (:func:`ray_share`), the old DSM's typical height, the
shadow ray of unexplained seen shadows down-sun (:func:`shadow_ray`), the relief ray away from the target's
sensor (:func:`lean_ray`) and their likelihood ratios' table (:func:`ray_table`, non-decreasing by
:func:`pav_up`). What they measure and the variants: ``eval_shadow_ray.py``'s docstring.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as ED  # noqa: E402

from offnadir.change import evidence as EV  # noqa: E402
from offnadir.change import longer_shadow as LS  # noqa: E402
from offnadir.change import shadow_observed as SO  # noqa: E402

BINS = 10
MIN_CHANGED = 100


def load(store, t=1):
    import xarray as xr

    d = ED.load(store, t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        val = np.asarray(ds["value"].values, np.float64)
        d["target"] = EV.intensity(val[t])
        d["ill"] = np.asarray(ds["illumination"].values[t])
        d["dsm"] = np.asarray(ds["dsm"].values, np.float64)
        d["sun"] = json.loads(ds.attrs["change_sun"])[t]
        d["cal"] = json.loads(ds.attrs["change_calibration"])
        d["view_az"] = float(ds["azimuth"].values[t])
        d["view_off"] = float(ds["off_nadir"].values[t])
    d["ok_t"] = (d["vis"][t] == 1) & np.isfinite(d["target"])
    return d


def shift(a, di, dj):
    """out[i, j] = a[i + di, j + dj] (0 outside)."""
    out = np.zeros_like(a)
    ny, nx = a.shape
    i0, i1, j0, j1 = max(0, di), min(ny, ny + di), max(0, dj), min(nx, nx + dj)
    out[i0 - di:i1 - di, j0 - dj:j1 - dj] = a[i0:i1, j0:j1]
    return out


def ray_share(m, az, k_cells):
    """Share of ``m`` over the cells ``c + k (cos az, -sin az)``, k = 1..K (rows south, ``az`` the
    sun's grid azimuth: the ray points away from the sun)."""
    di, dj = math.cos(az), -math.sin(az)
    acc = np.zeros(m.shape)
    for k in range(1, k_cells + 1):
        acc += shift(m.astype(np.float64), int(math.floor(k * di + 0.5)), int(math.floor(k * dj + 0.5)))
    return acc / k_cells


def typical_height(d):
    """Median height of the old DSM's elevated cells above the minimum of the DSM over the census window."""
    win = int(d["cal"]["window_cells"])
    floor = ndi.minimum_filter(np.where(np.isfinite(d["dsm"]), d["dsm"], np.inf), size=win)
    rel = (d["dsm"] - floor)[d["elev"] & np.isfinite(d["dsm"])]
    return float(np.median(rel)) if rel.size else math.nan


def shadow_ray(d, name):
    """(S, info): the ray share of unexplained seen shadows, or (None, info) where the rule is off."""
    sun = d["sun"]
    rec = sun.get("shadow_classifier")
    clf = SO.ShadowClassifier.from_report(rec) if rec else None
    info = dict(accuracy_shadow=None if clf is None else round(clf.accuracy_shadow, 3))
    if clf is None or (clf.accuracy_shadow < LS.SHADOW_WITNESS and "nowitness" not in name):
        return None, dict(info, off="no witness")
    az = math.radians(sun["azimuth"] + sun["grid_north_deg"])
    el = math.radians(sun["elevation"])
    lo = SO.log_odds(d["target"], d["ok_t"], clf)
    lit = (d["ill"] > 0) & (d["ill"] < 255)
    U = (np.nan_to_num(lo, nan=-1.0) >= 0) & lit & ~d["elev"] & d["ok_t"]
    h = float(d["cal"]["evidence_height_m"][str(d["t"])]) if "evh" in name else typical_height(d)
    k = int(min(max(2, math.ceil(h / math.tan(max(el, 0.05)) / d["cell"])), 4 * int(d["cal"]["window_cells"])))
    if name.startswith("up"):
        az += math.pi
    elif name.startswith("perp"):
        az += math.pi / 2
    S = ray_share(U, az, k)
    if "elig" in name:
        n = ray_share(lit & ~d["elev"] & d["ok_t"], az, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            S = np.where(n > 0, S / np.where(n > 0, n, 1.0), 0.0)
    return S, dict(info, height_m=round(h, 2), K=k, U_cells=int(U.sum()))


def lean_ray(d, name, says):
    """(S, info): the share of ``says`` (ground cells whose fine window calls change, seen) on the ray of K
    cells from each cell away from the target's sensor: where a building standing on the cell would show its
    roof in the target (relief displacement h tan(off-nadir), h the old DSM's typical height)."""
    az = math.radians(d["view_az"] + d["sun"]["grid_north_deg"])
    if name.endswith("against"):
        az += math.pi
    elif name.endswith("perp"):
        az += math.pi / 2
    h = typical_height(d)
    k = int(min(max(2, math.ceil(h * math.tan(math.radians(d["view_off"])) / d["cell"])),
                int(d["cal"]["window_cells"]) // 2))
    m = says & ~d["elev"] & d["ok_t"]
    if name.endswith("lit"):  # only what the fine window says on ground the old DSM predicts lit at the new date
        m &= (d["ill"] > 0) & (d["ill"] < 255)
    S = ray_share(m, az, k)
    if name.endswith("diff"):  # the asymmetry: change down the lean that the sensor side of the cell does not show
        S = np.maximum(S - ray_share(m, az + math.pi, k), 0.0)
    return S, dict(lean_K=k, lean_h=round(h, 2))


def ray_table(S, chg, unc, name):
    """log LR per bin of ``S`` (10 bins, counts + 1/2, pool-adjacent-violators: non-decreasing)."""
    b = np.clip(np.searchsorted(np.linspace(0, 1, BINS + 1)[1:-1], S, side="right"), 0, BINS - 1)
    fc = np.bincount(b[chg], minlength=BINS) + 0.5
    fu = np.bincount(b[unc], minlength=BINS) + 0.5
    llr = pav_up(np.log(fc / fc.sum()) - np.log(fu / fu.sum()), fc + fu)
    if name.endswith("raise"):
        llr = llr - llr[0]
    return llr, b


def pav_up(y, w):
    """Weighted least-squares non-decreasing fit."""
    blocks = []
    for yi, wi in zip(map(float, y), map(float, w)):
        blocks.append([yi * wi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, wt, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += wt
            blocks[-1][2] += n
    return np.array([s / wt for s, wt, n in blocks for _ in range(n)])
