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
        d["base"] = EV.intensity(val[0])
        d["ill_base"] = np.asarray(ds["illumination"].values[0])
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


def first_probabilities(d):
    """A stored run's probabilities replayed up to the fine window's localisation: ``(p, pw, fm, models)``,
    ``p`` after the localisation on the ground, ``pw`` before it, ``fm`` the fine window's mixture (None
    without a fine window), ``models`` the coarse mixtures of the ground (0) and the elevated cells (1)."""
    from offnadir.change import calibrate as C
    from offnadir.change import cells as P
    from offnadir.change import localise as L

    e, el = d["ev"], d["elev"]
    p = np.full(e.shape, np.nan)
    models = {}
    for s, m in ((1, el), (0, ~el)):
        models[s] = ED.refit(C.histogram(P.ratio_evidence(e), m), s)
        p[m] = C.probability(P.ratio_evidence(e[m]), models[s])
    g = ~el
    pw, fm = p.copy(), None
    if d.get("fine") is not None:
        fm = C.fit(C.histogram(P.ratio_evidence(d["fine"]), g), anchor=P.ANCHOR["local"])
        p[g] = L.localise(p[g], d["fine"][g], models[0], fm)
    return p, pw, fm, models


def lean_reach(d, name):
    """``(az, k)``: the azimuth away from the target's sensor in grid terms (turned by ``against`` /
    ``perp`` variants) and the ray's length in cells: the relief displacement of the old DSM's typical
    height, at least 2 and at most half the evidence window."""
    az = math.radians(d["view_az"] + d["sun"]["grid_north_deg"])
    if name.endswith("against"):
        az += math.pi
    elif name.endswith("perp"):
        az += math.pi / 2
    h = typical_height(d)
    return az, int(min(max(2, math.ceil(h * math.tan(math.radians(d["view_off"])) / d["cell"])),
                       int(d["cal"]["window_cells"]) // 2))


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
    az, k = lean_reach(d, name)
    h = typical_height(d)
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


def unexplained_shadows(d):
    """``U``: the target's classifier says shadow on ground the old DSM predicts lit and the target sees (the
    shadow ray's input), or None where the classifier is no witness."""
    rec = d["sun"].get("shadow_classifier")
    clf = SO.ShadowClassifier.from_report(rec) if rec else None
    if clf is None or clf.accuracy_shadow < LS.SHADOW_WITNESS:
        return None
    lo = SO.log_odds(d["target"], d["ok_t"], clf)
    lit = (d["ill"] > 0) & (d["ill"] < 255)
    return (np.nan_to_num(lo, nan=-1.0) >= 0) & lit & ~d["elev"] & d["ok_t"]


def _step(az, k):
    return int(math.floor(k * math.cos(az) + 0.5)), int(math.floor(-k * math.sin(az) + 0.5))


def facade_strips(U, bright, az, lo, hi, parts=False):
    """Cells of the dark facade strips (issue 7, s3 eleventh round): runs of ``U`` along ``az`` (the lean, away
    from the sensor) of ``lo`` .. ``hi`` cells that end in a step to a ``bright`` cell (the displaced roof: lit,
    seen, not classified shadow). A new building's wall facing the sensor and turned from the sun shows in the
    target's ortho as such a strip, ``H tan(off-nadir)`` wide, between its ground line and its roof."""
    run = U.copy()
    length = U.astype(np.int32)
    for k in range(1, hi + 1):  # length of the run of U ending at each cell, counted towards the sensor
        di, dj = _step(az, -k)
        run &= shift(U, di, dj)
        if not run.any():
            break
        length += run
    di, dj = _step(az, 1)
    end = U & shift(bright, di, dj) & (length >= lo) & (length <= hi)
    strip = end.copy()
    for k in range(1, hi):  # the strip: back from each end cell over its run
        di, dj = _step(az, -k)
        strip |= shift(end & (length > k), -di, -dj)
    return (strip, end, length) if parts else strip



def wall_ends(end, length, az):
    """The strip ends (``facade_strips(parts=True)``) that have a neighbour across the lean (one cell either
    side, up to one cell along it) ending a strip of the same width, within one cell: a wall, not a lone run."""
    el = np.where(end, length, -99)
    keep = np.zeros(end.shape, bool)
    for side in (math.pi / 2, -math.pi / 2):
        a, b = _step(az + side, 1)
        for along in (-1, 0, 1):
            c, e = _step(az, along)
            keep |= np.abs(shift(el, a + c, b + e) - el) <= 1
    return end & keep

def lean_and_bright(d, name, U):
    """The facade test's set-up: the lean's azimuth on the grid (reversed for ``_against``, turned a quarter
    for ``_perp``), ``K`` (the typical height's relief displacement in cells, at least 2) and the lit
    ground cells the target sees without unexplained shadow (where a strip can end at a roof step)."""
    az = math.radians(d["view_az"] + d["sun"]["grid_north_deg"])
    if "against" in name:
        az += math.pi
    elif "perp" in name:
        az += math.pi / 2
    h = typical_height(d)
    k = int(max(2, math.ceil(h * math.tan(math.radians(d["view_off"])) / d["cell"])))
    lit = (d["ill"] > 0) & (d["ill"] < 255)
    return az, k, lit & d["ok_t"] & ~U & ~d["elev"]


def facade_ray(d, name, U):
    """(S, info): share of facade-strip cells on the cell and the ``2 K`` cells towards the sensor from it (``K``
    the typical height's relief displacement): a footprint lies on and down the lean of its facade strip. Strip
    runs of ``K/2 .. 2 K`` cells (half to twice the typical height). Controls: ``_against`` (the lean reversed:
    the strip's roof step towards the sensor), ``_perp`` (across the lean)."""
    az, k, bright = lean_and_bright(d, name, U)
    if "roof" in name:  # the roof step must lead onto a surface the base does not show
        bright &= roof_differs(d, az, k)
    if "wall" in name:  # a wall: the strip's end has a neighbour across the lean ending a strip of the same width
        strip, end, length = facade_strips(U, bright, az, max(2, k // 2), 2 * k, parts=True)
        end = wall_ends(end, length, az)
        strip = end.copy()
        for kk in range(1, 2 * k):
            a, b = _step(az, -kk)
            strip |= shift(end & (length > kk), -a, -b)
    else:
        strip = facade_strips(U, bright, az, max(2, k // 2), 2 * k)
    reach = 4 * k if "deep" in name else 2 * k  # _deep: footprints up to twice as deep along the lean
    S = (strip.astype(np.float64) + reach * ray_share(strip, az + math.pi, reach)) / (reach + 1)
    if "any" in name:  # _any: a strip anywhere on the ray, not its share
        S = (S > 0).astype(np.float64)
    if "across" in name:  # _across: and on the K cells either side across the lean (rows whose wall was not seen)
        hit = S > 0
        acc = hit.copy()
        for side in (math.pi / 2, -math.pi / 2):
            for j in range(1, k + 1):
                a, b = _step(az + side, j)
                acc |= shift(hit, a, b)
        S = np.maximum(S, np.where(acc & ~hit, 0.5 if "any" not in name else 1.0, 0.0))
    info = dict(facade_K=k, strip_cells=int(strip.sum()))
    if "elig" in name:  # where a facade could not be seen (its ray mostly on predicted shadow, roofs, unseen): no word
        seen = (d["ill"] > 0) & (d["ill"] < 255) & d["ok_t"] & ~d["elev"]
        e = (seen.astype(np.float64) + 2 * k * ray_share(seen, az + math.pi, 2 * k)) / (2 * k + 1)
        S = np.where((S > 0) | (e >= 0.5), S, np.nan)
        info["eligible_share"] = round(float(np.mean(e >= 0.5)), 3)
    return S, info


def roof_differs(d, az, k, level=0.9):
    """Cells whose ``k`` cells down the lean (``az``), from the cell itself, differ from the base more than
    ``level`` of the run's ground cells do: the residual of the target on a least-squares line of the base
    (ground lit at both dates, seen by both), its mean over the ``k`` cells, against the same mean's
    ``level`` quantile of absolute values over the ground cells."""
    lit = (d["ill"] > 0) & (d["ill"] < 255) & (d["ill_base"] > 0) & (d["ill_base"] < 255)
    ok = ~d["elev"] & d["ok_t"] & (d["vis"][0] == 1) & np.isfinite(d["base"])
    fitm = ok & lit
    c1, c0 = np.polyfit(d["base"][fitm], d["target"][fitm], 1)
    r = np.where(ok, d["target"] - (c0 + c1 * d["base"]), 0.0)
    sig = 1.4826 * np.median(np.abs(r[fitm] - np.median(r[fitm])))
    acc = r / sig
    for j in range(1, k):
        di, dj = _step(az, j)
        acc = acc + shift(r / sig, di, dj)
    m = np.abs(acc / k)
    thr = np.quantile(m[ok], level)
    return m > thr


def facade_segments(d, name, U):
    """(S, info): the facade test per target segment (issue 7, s3 eleventh round). The target's ortho is
    segmented (:func:`eval_target_segments.target_segments`, the segment pass's SLIC on the target's ground
    cells); a segment ``A`` is a candidate roof. ``Q(A)`` = the share of ``A``'s sensor-side outline cells
    (cells of ``A`` whose neighbour towards the sensor is not in ``A``) that a facade strip ends at (a run of
    ``U`` of ``K/2 .. 2K`` cells along the lean, :func:`facade_strips`): the step edge parallel to the
    outline, a strip's width (``H tan(off-nadir)``) towards the sensor. Each cell gets the largest ``Q`` of the
    segment it lies in and of the segment its own strip width down the lean (the roof of a footprint on the
    cell); the strip width per segment is the mean of its strips' lengths."""
    from eval_target_segments import target_segments

    az, k, bright = lean_and_bright(d, name, U)
    strip, end, length = facade_strips(U, bright, az, max(2, k // 2), 2 * k, parts=True)
    if "lab" not in d:
        d["lab"] = target_segments(d["target"], d["dsm"], d["ok_t"], ~d["elev"])
    lab = d["lab"]
    n = int(lab.max()) + 1
    di, dj = _step(az, 1)
    near = (lab > 0) & (shift(lab, -di, -dj) != lab)
    # a strip's first cell (its ground line) at the outline (the segment holds facade and roof), or its last
    # cell just outside it (the segment is the roof alone)
    start_len = np.zeros(lab.shape, np.int32)
    for ell in range(max(2, k // 2), 2 * k + 1):
        a, b = _step(az, ell - 1)
        start_len = np.maximum(start_len, shift(np.where(end & (length == ell), ell, 0).astype(np.int32), a, b))
    end_len = shift(np.where(end, length, 0).astype(np.int32), -di, -dj)
    hl = np.where(start_len > 0, start_len, end_len)
    hit = near & (hl > 0)
    cn = np.bincount(lab[near], minlength=n).astype(np.float64)
    ch = np.bincount(lab[hit], minlength=n).astype(np.float64)
    Q = np.where(cn > 0, ch / np.maximum(cn, 1), 0.0)
    Q[0] = 0.0
    w = np.bincount(lab[hit], weights=hl[hit].astype(np.float64), minlength=n)
    L = np.where(ch > 0, np.rint(w / np.maximum(ch, 1)), 0).astype(int)
    S = Q[lab]
    for ell in np.unique(L[Q > 0]):
        q = np.where(L == ell, Q, 0.0)[lab]
        dl, dm = _step(az, int(ell))
        S = np.maximum(S, shift(q, dl, dm))
    return S, dict(facade_K=k, strip_cells=int(strip.sum()), segments_hit=int((Q > 0).sum()))
