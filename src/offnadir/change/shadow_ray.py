"""A new building's cast shadow as evidence on the ground cells (issue 7, H6's measurement,
``benchmarks/eval_shadow_ray.py``; wired by H9).

A new building stands on what the old DSM calls ground. Whatever its texture, it casts a shadow the
old DSM does not predict, down-sun of its footprint, about ``h / tan(e)`` long. The target's shadow
classifier (:mod:`~offnadir.change.shadow_observed`) marks the cells seen shadowed that the old DSM
predicts lit (``U``: unexplained shadows). Per ground cell ``S`` is the share of ``U`` on the ray of
``K`` cells from the cell away from the sun, ``K = h / tan(e) / cell`` with ``h`` the typical height
of the old DSM's elevated objects (median over elevated cells of the DSM above its minimum over the
census window). Its likelihood ratio is calibrated on the run's own ground cells split by the
decision before the rule (10 equal bins of ``S``, counts + 1/2, made non-decreasing by
pool-adjacent-violators: more unexplained shadow down-sun never makes change less likely), and
``log LR(S)`` is added to the ground cells' logit of the wide window, before the localisation
(issue 7, n3 ninth round): the localisation lets the fine window raise a cell only where the wide
probability exceeds its prior, and the ray is evidence on the cell's neighbourhood as the wide
window is, so it counts towards that gate. The table is fitted on the decisions after the
localisation without the rule (the census's own best labels). Off for a target whose
classifier is no witness of shadows (``longer_shadow.SHADOW_WITNESS``) and when fewer than
:data:`MIN_CHANGED` ground cells are decided changed (nothing to calibrate on).

Three steps: :func:`height_tile` (a histogram of the elevated cells' height above the window's floor)
and :func:`ray_tile` (per target, the ground cells' decision against their bin of ``S``) are tile
reductions; :func:`fit` makes the table on the client (:func:`run_pass` wires them for the runner);
:func:`adjust` is called by the maps pass (:func:`offnadir.change.cells.probability_tile`)."""

from __future__ import annotations

import math

import numpy as np

BINS = 10  #: equal bins of S in [0, 1] (5 / 10 / 20 measured alike by H6)
MIN_CHANGED = 100  #: fewer ground cells decided changed: no calibration
HEIGHT_STEP = 0.01  #: metres per bin of the typical-height histogram (its median to +-5 mm)
HEIGHT_BINS = 100000  #: up to 1000 m
EDGES = np.linspace(0.0, 1.0, BINS + 1)[1:-1]


def witness(ctx, t):
    """Target ``t``'s shadow classifier when it is a witness of shadows, else None."""
    from offnadir.change.longer_shadow import SHADOW_WITNESS

    classes = getattr(ctx, "shadow_classes", ()) or ()
    clf = classes[t] if t < len(classes) else None
    if not ctx.use_sun or clf is None or not clf.accuracy_shadow >= SHADOW_WITNESS:
        return None
    return clf


def ray_length(h, elevation, cell, window) -> int:
    """Cells of the shadow a ``h`` m object casts at sun ``elevation`` (rad), 2 .. 4 windows."""
    return int(min(max(2, math.ceil(h / math.tan(max(elevation, 0.05)) / cell)), 4 * int(window)))


def offsets(az, k):
    """Integer (di, dj) of the ray's cells k = 1..K away from the sun (grid azimuth ``az``; rows south)."""
    di, dj = math.cos(az), -math.sin(az)
    ks = np.arange(1, k + 1)
    return (np.array([int(math.floor(x * di + 0.5)) for x in ks], np.int64),
            np.array([int(math.floor(x * dj + 0.5)) for x in ks], np.int64))


def height_tile(io, tile, shape, window, has_elevated):
    """Histogram (:data:`HEIGHT_STEP` bins) of the tile's elevated cells' height above the minimum
    of the DSM over the ``window`` around them."""
    from scipy import ndimage as ndi

    from offnadir.change.tileio import Window

    out = np.zeros(HEIGHT_BINS, np.int64)
    if not has_elevated:
        return out
    w = Window.around(tile, int(window), shape)
    a0, a1, b0, b1 = w.core
    dsm = np.asarray(io.read("dsm", w.yx), np.float64)
    floor = ndi.minimum_filter(np.where(np.isfinite(dsm), dsm, np.inf), size=int(window))[a0:a1, b0:b1]
    el = (io.read("elevated", w.yx) == 1)[a0:a1, b0:b1]
    rel = (dsm[a0:a1, b0:b1] - floor)[el & np.isfinite(dsm[a0:a1, b0:b1])]
    rel = rel[np.isfinite(rel)]
    return np.bincount(np.clip((rel / HEIGHT_STEP).astype(np.int64), 0, HEIGHT_BINS - 1),
                       minlength=HEIGHT_BINS).astype(np.int64)


def height_parts(run):
    """The per-tile :func:`height_tile` tasks of ``run`` (a
    :class:`~offnadir.change.runner.Runner` after its evidence pass) when :func:`run_pass` will
    use them, else None. They read only the DSM and ``elevated`` (final after the segment pass), so
    the runner computes them with the sums pass, not in a round of their own after the calibration."""
    import dask

    if not run.plan.get("structural") or not getattr(run.opts, "new_building_shadows", True) \
            or not run.has.get("elevated") or all(witness(run.ctx, t) is None for t in run.targets):
        return None
    io, win = run.segmented_io(), int(run.plan["window"])
    return [dask.delayed(height_tile, pure=True)(io, t, run.ctx.shape, win, True) for t in run.tiles]


def typical_height(hist):
    """Median of :func:`height_tile`'s summed histogram (bin centre; NaN: no elevated cell)."""
    n = int(hist.sum())
    if n == 0:
        return math.nan
    c = np.cumsum(hist)
    lo, hi = np.searchsorted(c, (n - 1) // 2, side="right"), np.searchsorted(c, n // 2, side="right")
    return float((lo + hi + 1) * HEIGHT_STEP / 2)


def share(io, ctx, tile, t, k, clf, has_elevated=True):
    """``S`` on the tile's cells: the share of unexplained seen shadows of target ``t`` on the ray of
    ``k`` cells down-sun."""
    from offnadir.change import evidence as EV
    from offnadir.change import shadow_observed as SO
    from offnadir.change.shadow_ray_kernels import ray_counts
    from offnadir.change.tileio import Window

    w = Window.around(tile, k + 2, ctx.shape)  # the ray, and the 3 x 3 mean of the classifier's log-odds
    x = EV.intensity(io.read("value", (slice(t, t + 1), slice(None)) + w.yx)[0])  # float32 bands: the same numbers
    ill = io.read("illumination", (slice(t, t + 1),) + w.yx)[0]
    ok = (io.read("visible", (slice(t, t + 1),) + w.yx)[0] == 1) & np.isfinite(x)
    elev = io.read("elevated", w.yx) == 1 if has_elevated else np.zeros(x.shape, bool)
    lo = SO.log_odds(x, ok, clf)
    u = (np.nan_to_num(lo, nan=-1.0) >= 0) & (ill > 0) & (ill < 255) & ~elev & ok
    di, dj = offsets(ctx.sun[t][0], k)
    a0, a1, b0, b1 = w.core
    return ray_counts(np.ascontiguousarray(u, np.uint8), di, dj, a0, a1, b0, b1) / k


def bins_of(s):
    return np.clip(np.searchsorted(EDGES, s, side="right"), 0, BINS - 1)


def wide_p(ev, elev, models, t):
    """The ground cells' probability from the wide window's calibration alone (NaN elsewhere)."""
    from offnadir.change import calibrate as C
    from offnadir.change.cells import ratio_evidence

    p = np.full(ev.shape, np.nan)
    p[~elev] = C.probability(ratio_evidence(ev[~elev]), models[("evidence", t, 0)])
    return p


def ground_p(ev, fine, elev, models, t, wide=None):
    """The ground cells' probability after the localisation, without this rule (NaN elsewhere): the
    decision the rule is calibrated on. ``wide``: :func:`wide_p`, when computed already."""
    from offnadir.change import localise as L

    p = wide_p(ev, elev, models, t) if wide is None else wide
    if fine is not None:
        p = L.apply(p, ~elev, fine, models.get(("evidence", t, 0)), models.get(("local", t, 0)))
    return p


def _key(kind, tile, t, k=0):
    return (kind, tile.i0, tile.i1, tile.j0, tile.j1, int(t), int(k))


def ray_tile(io, ctx, tile, models, ks, has_elevated):
    """{t: (2, BINS) counts of the observed ground cells decided unchanged (row 0) and changed (row 1)
    by bin of ``S``} for the targets of ``ks`` ({t: K}). The bins of ``S`` and the ground cells'
    probability are handed over to the maps pass (:func:`offnadir.change.tileio.hand_over`: the
    same arrays it would compute again, when its task runs in this process)."""
    from offnadir.change.cells import DECISION_P
    from offnadir.change.tileio import hand_over

    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    vis = io.read("visible", (slice(None),) + yx)
    elev = io.read("elevated", yx) == 1 if has_elevated else np.zeros(vis.shape[1:], bool)
    out = {}
    for t, k in ks.items():
        ev = io.read("evidence", (slice(t, t + 1),) + yx)[0].astype(np.float64)
        fine = io.read("evidence_local", (slice(t, t + 1),) + yx)[0].astype(np.float64) if io.has("evidence_local") else None
        pw = wide_p(ev, elev, models, t)
        p = ground_p(ev, fine, elev, models, t, pw)
        b = bins_of(share(io, ctx, tile, t, k, witness(ctx, t), has_elevated))
        obs = ~elev & np.isfinite(p) & (vis[0] == 1) & (vis[t] == 1)
        chg = obs & (p >= DECISION_P)
        out[t] = np.stack([np.bincount(b[obs & ~chg], minlength=BINS), np.bincount(b[chg], minlength=BINS)])
        hand_over(io, _key("bins", tile, t, k), b.astype(np.uint8))
        hand_over(io, _key("ground_p", tile, t), pw)
    return out


def taken_ground_p(io, tile, t):
    """The ground cells' wide-window probability :func:`ray_tile` computed for target ``t``
    (:func:`wide_p`: NaN on elevated cells; the maps pass adds the rule to it, then localises), when
    handed over in this process; else None."""
    from offnadir.change.tileio import take_over

    return take_over(io, _key("ground_p", tile, t))


def add(*parts):
    if isinstance(parts[0], np.ndarray):
        return sum(parts[1:], parts[0].copy())
    return {t: sum(p[t] for p in parts) for t in parts[0]}


def pav_up(y, w):
    """Weighted least-squares non-decreasing fit (pool-adjacent-violators): the shadow classifier's
    non-increasing fit (:func:`offnadir.change.shadow_observed._pav_nonincreasing`) of ``-y``, negated."""
    from offnadir.change.shadow_observed import _pav_nonincreasing

    return -_pav_nonincreasing(-np.asarray(y, np.float64), w)


def fit(counts):
    """(log LR per bin of S, or None when fewer than :data:`MIN_CHANGED` ground cells changed) from
    :func:`ray_tile`'s summed counts."""
    fu, fc = np.asarray(counts[0], np.float64) + 0.5, np.asarray(counts[1], np.float64) + 0.5
    if counts[1].sum() < MIN_CHANGED:
        return None
    return pav_up(np.log(fc / fc.sum()) - np.log(fu / fu.sum()), fc + fu)


def adjust(io, ctx, tile, t, p, elev, rule, has_elevated=True):
    """``p`` with ``log LR(S)`` added to the logit of the ground cells (``rule``: {"K", "log_lr"} of
    target ``t``, or None: ``p`` as it is)."""
    from scipy.special import expit, logit

    from offnadir.change.tileio import take_over

    if not rule or rule.get("log_lr") is None:
        return p
    b = take_over(io, _key("bins", tile, t, int(rule["K"])))  # the ray pass's bins, when handed over here
    if b is None:
        b = bins_of(share(io, ctx, tile, t, int(rule["K"]), witness(ctx, t), has_elevated))
    add_ = np.asarray(rule["log_lr"], np.float64)[b]
    w = ~elev & (add_ != 0)  # the cells the rule moves: the ufuncs on those only (element by element)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = expit(logit(np.clip(p[w], 0, 1)) + add_[w])
    out = np.array(p, np.float64, copy=True)
    fin = np.isfinite(q)
    out.reshape(-1)[np.flatnonzero(w)[fin]] = q[fin]
    return out


def start_pass(run):
    """:func:`run_pass` up to its tile tasks, which are submitted (``run.submit``) without waiting
    for them: they need the calibration, not the patch decisions, so the runner decides the patches
    on the client while they run. Returns what :func:`run_pass` finishes from."""
    import dask

    ctx, has_el = run.ctx, bool(run.has.get("elevated"))
    rec = {"bins": BINS, "min_changed": MIN_CHANGED}
    if not run.plan.get("structural") or not getattr(run.opts, "new_building_shadows", True):
        rec["rule"] = "off" + (" (change.new_building_shadows: false)" if run.plan.get("structural") else " (no structural evidence)")
        run.calibration["shadow_ray"] = rec
        return {"rules": {}}
    clfs = {t: witness(ctx, t) for t in run.targets}
    if not any(c is not None for c in clfs.values()) or not has_el:
        rec["rule"] = "off: no target's shadow classifier is a witness of shadows" if has_el else "off: no elevated"
        rec["accuracy_shadow"] = {str(t): (None if t >= len(ctx.shadow_classes or ()) or ctx.shadow_classes[t] is None
                                           else round(ctx.shadow_classes[t].accuracy_shadow, 3)) for t in run.targets}
        run.log("new-building shadow ray " + rec["rule"])
        run.calibration["shadow_ray"] = rec
        return {"rules": {}}
    hist = getattr(run, "ray_heights", None)  # computed with the sums pass (height_parts)
    if hist is None:
        hist = run.reduce(height_parts(run), add)
    win = int(run.plan["window"])
    io = run.segmented_io()
    h = typical_height(hist)
    rec["typical_height_m"] = round(h, 3) if math.isfinite(h) else None
    if not math.isfinite(h):
        rec["rule"] = "off: no elevated cell"
        run.calibration["shadow_ray"] = rec
        return {"rules": {}}
    ks = {t: ray_length(h, ctx.sun[t][1], ctx.cell, win) for t, c in clfs.items() if c is not None}
    cx, mo = run.shared(ctx), run.shared(run.cal_models)
    return {"rec": rec, "h": h, "ks": ks,
            "counts": run.submit([dask.delayed(ray_tile, pure=True)(io, cx, tile, mo, ks, has_el) for tile in run.tiles],
                                 add)}


def run_pass(run, started=None):
    """The rule's reductions and fit for a :class:`~offnadir.change.runner.Runner` after its
    calibration: {t: {"K", "log_lr"}} for the maps pass, logged and recorded in ``run.calibration``.
    ``started``: what :func:`start_pass` returned (None: started here)."""
    started = start_pass(run) if started is None else started
    if "rules" in started:
        return started["rules"]
    ctx, rec, h, ks = run.ctx, started["rec"], started["h"], started["ks"]
    counts = run.fetch(started["counts"])
    rules, per = {}, {}
    for t in run.targets:
        if t not in ks:
            per[str(t)] = {"rule": "off: the target's shadow classifier is no witness of shadows",
                           "accuracy_shadow": round(ctx.shadow_classes[t].accuracy_shadow, 3)
                           if ctx.shadow_classes[t] is not None else None}
            continue
        llr = fit(counts[t])
        per[str(t)] = {"K": ks[t], "ground_changed": int(counts[t][1].sum()),
                       "ground_unchanged": int(counts[t][0].sum()),
                       "log_lr": None if llr is None else [round(float(v), 4) for v in llr]}
        if llr is None:
            per[str(t)]["rule"] = f"off: fewer than {MIN_CHANGED} ground cells decided changed"
        else:
            rules[t] = {"K": ks[t], "log_lr": llr.tolist()}
        run.log(f"new-building shadow ray image {t}: typical height {h:.2f} m, K {ks[t]} cells, ground cells changed "
                f"{per[str(t)]['ground_changed']}, " + ("log LR " + " ".join(f"{v:.2f}" for v in llr) if llr is not None
                                                         else per[str(t)]["rule"]))
    rec["targets"] = per
    run.calibration["shadow_ray"] = rec
    return rules
