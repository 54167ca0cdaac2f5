"""Per-cell change probability, one tile at a time (what the dask tasks of the evidence, sums and
maps passes of :mod:`offnadir.change.runner` run; numpy, no dask).

* :func:`evidence_tile`: structural evidence of every target against the base
  (:mod:`offnadir.change.evidence`), written as ``evidence``, small histograms per target and
  stratum (elevated / ground cells) for the calibration (:mod:`offnadir.change.calibrate`) on the
  client, and the IR-MAD sample (:mod:`offnadir.change.fit`) from the same reads;
* :func:`ortho_tile`: the ortho baseline's raw per-cell test and the histograms of its statistic;
* :func:`probability_tile`: probability of change per cell from the calibrated evidence, or-ed
  with the patch criteria's score (the patch decisions painted on their cells), combined with the
  same-date height change ``dh`` where the store has it; writes ``probability``, ``change``
  (0/1/2) and ``score`` (= probability), and the ortho baseline's ``change_ortho``/``score_ortho``
  with the same calibration.
"""

from __future__ import annotations

import numpy as np

from offnadir.change import calibrate as C
from offnadir.change import dh_evidence as DE
from offnadir.change import segment as SG
from offnadir.change import evidence as EV
from offnadir.change import localise as L
from offnadir.change import shadow_ray as SR
from offnadir.change import sun_pairs as SP
from offnadir.change.dh_evidence import DH_SIGMA_FLOOR, coherent_dh, combine, dh_probability  # noqa: F401 - re-exported
from offnadir.change.noise_hist import NOISE_BINS, NOISE_RANGE, noise_sigma, noise_tile  # noqa: F401 - re-exported

#: default decision: change where the probability reaches one half (the Bayes decision for equal
#: costs of a miss and a false alarm)
DECISION_P = 0.5


def window_cells(opts, cell: float) -> int:
    """Odd side (cells) of the evidence window: half the ground window (``ground_window`` is
    wider than the largest building, so half of it spans a building-sized footprint)."""
    return 2 * max(1, int(round(0.25 * float(opts.ground_window) / cell))) + 1


def evidence_halo(window: int, offsets) -> int:
    m = max((max(abs(a), abs(b)) for a, b in offsets), default=0)
    return window // 2 + m + EV.RADIUS + 1


def _win(tile, halo, shape):
    ny, nx = shape
    i0, i1 = max(tile.i0 - halo, 0), min(tile.i1 + halo, ny)
    j0, j1 = max(tile.j0 - halo, 0), min(tile.j1 + halo, nx)
    return (slice(i0, i1), slice(j0, j1)), (slice(tile.i0 - i0, tile.i1 - i0), slice(tile.j0 - j0, tile.j1 - j0))


def evidence_tile(io, ctx, tile, plan, has):
    """Write ``evidence`` of the tile; return ``{"hist": {("evidence", t, stratum): counts},
    "sample": the IR-MAD sample}`` (:func:`offnadir.change.fit.sample_tile`, from the same reads).
    ``plan["structural"]``: compute the structural evidence (the patch method) or not (method
    ortho)."""
    from offnadir.change import fit as F

    window, offsets, sigmas = plan["window"], plan["offsets"], plan["sigmas"]
    halo = evidence_halo(window, [o for offs in offsets.values() for o in offs]) if plan["structural"] else 0
    wyx, core = _win(tile, halo, ctx.shape)
    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    vis = io.read("visible", (slice(None),) + wyx)
    # as stored (float32): the intensities widen each value to float64 as they add (EV.intensity: the
    # same numbers), usable() only tests finiteness, and the sample is float32 rows (no window-sized
    # float64 copy of every band)
    val = io.read("value", (slice(None), slice(None)) + wyx)
    lit = io.read("illumination", (slice(None),) + wyx) if has.get("illumination") else None
    elev_w = io.read("elevated", wyx) == 1 if has.get("elevated") else np.zeros(vis.shape[1:], bool)
    elev = elev_w[core]
    hist = {}
    if plan["structural"]:
        inten = [EV.intensity(val[k]) for k in range(ctx.n_images)]
        ok = [(vis[k] == 1) & np.isfinite(inten[k]) for k in range(ctx.n_images)]
        ev = np.full((ctx.n_images,) + elev.shape, np.nan, np.float32)
        fine = ev.copy() if io.has("evidence_local") else None
        # where a same-date pair measured the height change, dh (not S) weighs a roof's texture change
        no_dh = ~np.isfinite(io.read("dh", (slice(None),) + yx)) if has.get("dh") else None
        for t in ctx.targets:  # the fine window (offnadir.change.localise) from the same census sweeps
            e = stratum_evidence(inten[0], inten[t], ok[0], ok[t], elev_w, window, offsets[t], (sigmas[0], sigmas[t]),
                                 pairs=SP.sun_pair_word(lit, t), core=(core[0].start, core[0].stop, core[1].start,
                                                                    core[1].stop),
                                 reversal=None if no_dh is None else no_dh[t],
                                 fine=None if fine is None else L.fine_window(window))
            e, ef = e if fine is not None else (e, None)
            ev[t] = e
            for s, m in ((1, elev), (0, ~elev)):
                hist[("evidence", t, s)] = C.histogram(ratio_evidence(e), m)
            if fine is not None:  # the ground cells' fine-window evidence (offnadir.change.localise)
                fine[t], hist[("local", t, 0)] = L.fine_tile(ef, elev)
        io.write("evidence", (slice(None),) + yx, ev)
        if fine is not None:
            io.write("evidence_local", (slice(None),) + yx, fine)
    cv = (slice(None),) + core
    sample = F.sample_tile(vis[cv], val[(slice(None),) + cv], None if lit is None else lit[cv], ctx,
                           (tile.i0, tile.j0), plan["sample_rate"], plan["want_patch"], plan["want_ortho"])
    return {"hist": hist, "sample": sample}


def stratum_evidence(base, target, ok_base, ok_target, elevated, window, offsets, sigmas, compare=None, core=None,
                     reversal=None, fine=None, pairs=None):
    """:func:`offnadir.change.evidence.structural_evidence`, and for a **ground** cell the smaller of
    that and the same ratio over the code pairs of ground cells only (``~elevated``).

    The evidence keeps the best explanation of "unchanged", as over the parallax offsets: a ground
    cell beside a changed, re-covered or worn roof shares its window with the roof's codes, whose
    disagreement is the roof's, not the ground's; its ground codes alone still agree. Where the
    ground itself changed (a new building's roof and walls appear *on* it) both disagree. Elevated
    cells keep their whole window (a roof's change shows on the ground beside it: its outline and
    relief displacement gone, a raised roof's walls moved) and take the geometric mean of its
    census ratio and its sign-reversal ratio (:func:`offnadir.change.evidence.roof_evidence`): a
    re-covered or weathered roof turns flat codes textured or textured ones flat, which ``R``
    counts as disagreement and the reversal ratio does not. Ground cells do not: a new building
    on flat ground is exactly texture appearing. ``reversal`` (bool, the core's shape): the
    elevated cells that use it (default all; :func:`evidence_tile`: those without a measured
    ``dh``, which weighs a roof's change there and sees a raised roof whose edges moved onto flat
    roof, where ``S`` is blind). Same arguments as ``structural_evidence`` plus ``elevated``; ``fine``
    (cells): also return :func:`offnadir.change.localise.ground_fine_evidence` over that window, from
    the same sweeps, as ``(E, E_fine)``. ``pairs``: the code pairs that may be compared
    (:func:`offnadir.change.sun_pairs.sun_pair_word`), in both sweeps."""
    if not elevated.any():
        return EV.structural_evidence(base, target, ok_base, ok_target, window, offsets, sigmas, compare=compare,
                                      core=core, fine=fine, pairs=pairs)
    e, rev, *ef = EV.structural_evidence(base, target, ok_base, ok_target, window, offsets, sigmas, compare=compare,
                                         core=core, reversal=True, fine=fine, pairs=pairs)
    ground = ~elevated if compare is None else (compare & ~elevated)
    eg = EV.structural_evidence(base, target, ok_base, ok_target, window, offsets, sigmas, compare=ground, core=core,
                                fine=fine, pairs=pairs)
    i0, i1, j0, j1 = core if core is not None else (0, base.shape[0], 0, base.shape[1])
    el = elevated[i0:i1, j0:j1]
    eg, *efg = eg if fine is not None else (eg,)
    roof = EV.roof_evidence(e, rev) if reversal is None else np.where(reversal, EV.roof_evidence(e, rev), e)
    out = np.where(el, roof, np.fmin(e, eg))
    return out if fine is None else (out, np.where(el, np.nan, np.fmin(ef[0], efg[0])))


def add_evidence(*parts):
    from offnadir.change.fit import add_samples

    return {"hist": add_hist(*[p["hist"] for p in parts]), "sample": add_samples(*[p["sample"] for p in parts])}


def ortho_tile(io, ctx, tile, ortho, want_patch, arrays=None):
    """The ortho baseline's raw per-cell test (:mod:`offnadir.change.ortho`) written as
    ``change_ortho``/``score_ortho`` (``change``/``score`` with method ortho; the maps pass
    calibrates them), and histograms ``{("ortho", t, stratum): counts}`` of its statistic.
    ``arrays``: the core's visible/value/elevated when the caller read them already."""
    from offnadir.change import kernels as K
    from offnadir.change.ortho import cell_scores

    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    if arrays:  # read by the patch sums of the same task
        vis, val, elev = arrays["visible"], arrays["value"], arrays["elevated"] == 1
    else:
        vis = io.read("visible", (slice(None),) + yx)
        val = io.read("value", (slice(None), slice(None)) + yx).astype(np.float64)
        elev = io.read("elevated", yx) == 1 if want_patch else np.zeros(vis.shape[1:], bool)
    fin = np.all(np.isfinite(val), axis=1)
    ch = np.full(vis.shape, 2, np.uint8)
    sc = np.full(vis.shape, np.nan, np.float32)
    ch[0][(vis[0] != 2) & fin[0]] = 0
    sc[0][(vis[0] != 2) & fin[0]] = 0.0
    hist = {}
    for t in ctx.targets:
        model, scale, z_thr = ortho[t]
        ok = (vis[0] != 2) & (vis[t] != 2) & fin[0] & fin[t]  # ortho.usable's cells, finiteness taken once
        s = cell_scores(model, scale, z_thr, K.masked_cells(val[0], ok).T, K.masked_cells(val[t], ok).T)
        ch[t][ok] = (s >= 0.5).astype(np.uint8)
        sc[t][ok] = s
        so = ortho_evidence(sc[t])
        for st, m in ((1, elev), (0, ~elev)):
            hist[("ortho", t, st)] = C.histogram(so, m)
    io.write("change_ortho" if want_patch else "change", (slice(None),) + yx, ch)
    io.write("score_ortho" if want_patch else "score", (slice(None),) + yx, sc)
    return hist


def add_hist(*parts):
    out = dict(parts[0])
    for p in parts[1:]:
        for k, v in p.items():
            out[k] = out[k] + v if k in out else v
    return out


def either(p, q):
    """``max(p, q)`` where the patch criteria's score ``q`` reaches 0.5 (their decision: a
    noise-sigma threshold on IR-MAD and parallax evidence), else ``p``: change when either witness
    says so, and below that the ranking stays the calibrated probability's."""
    with np.errstate(invalid="ignore"):
        hit = np.isfinite(p) & np.isfinite(q) & (q >= DECISION_P)
    return np.where(hit, np.maximum(p, q), p)


def ratio_evidence(r):
    """The census ratio ``R >= 0`` as an evidence in [0, 1): ``R / (1 + R)`` (``logit = log R``;
    ``R = 1``, no agreement beyond chance, is ``z = 0``: the calibration's anchor)."""
    r = np.asarray(r, np.float64)
    return r / (1.0 + r)


#: calibration anchors (z where change is certain): census R = 1; ortho u = Z / threshold = 1
ANCHOR = {"evidence": 0.0, "ortho": 0.0, "local": 0.0}
#: per (evidence kind, stratum: 1 elevated, 0 ground), the mixture fit's options
#: (:func:`offnadir.change.calibrate.fit`): the census evidence's ground stratum is fitted censored
#: below its median (its changed share is small: new buildings; its best-agreeing half is
#: unchanged and its heavy tail broke the fit) with the changed component's Gaussian tail (the
#: probability held at its maximum: no more confidence than the changed mode supports where the
#: null's upper tail, beyond its fitted half, is heavier than Gaussian). docs/change_detection.md,
#: "Censored ground calibration"
FIT = {("evidence", 0): {"censor": 0.5, "plateau": False}}


def calibration_model(key, counts) -> dict:
    """The mixture model of one calibration histogram ``key = (kind, target, stratum)``."""
    return C.fit(counts, anchor=ANCHOR[key[0]], **FIT.get((key[0], key[2]), {}))


def ortho_evidence(score):
    """The ortho baseline's statistic as an evidence in (0, 1) that does not saturate: its score
    is ``1 - 2^-u`` with ``u = Z / threshold`` (:mod:`offnadir.change.ortho`); ``E = u / (1 + u)``,
    so that ``logit(E) = log u`` (the calibration then works on ``log Z``)."""
    sc = np.asarray(score, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = -np.log2(np.maximum(1.0 - sc, 2.0**-60))
        return u / (1.0 + u)


def paint(lab, ids, values, index=None):
    """Per-cell value of each cell's patch (``ids`` sorted, ``values`` aligned; NaN: no patch).
    ``index``: :func:`paint_index` of ``(lab, ids)`` when already taken."""
    out = np.full(lab.shape, np.nan)
    m, idx, hit = paint_index(lab, ids) if index is None else index
    if idx is None:
        return out
    v = np.zeros(idx.shape)
    v[hit] = np.asarray(values, np.float64)[idx[hit]]
    out[m] = v
    return out


def paint_index(lab, ids):
    """The patch cells of ``lab``, the position of each one's patch in ``ids`` and whether it is
    there (the look-up :func:`paint` does; ``None`` twice: nothing to paint)."""
    m = lab > 0
    if not len(ids) or not m.any():
        return m, None, None
    from offnadir.change.kernels import sorted_lookup  # np.searchsorted's numbers, one search per run

    idx, hit = sorted_lookup(lab[m], ids)
    return m, idx, hit


def _painter(lab):
    """:func:`paint` on ``lab`` with each distinct ``ids``' look-up taken once (a tile paints several
    values per patch and target on the same patch IDs)."""
    seen = []

    def f(ids, values):
        for i, ix in seen:
            if i is ids or (len(i) == len(ids) and np.array_equal(i, ids)):
                return paint(lab, ids, values, ix)
        seen.append((ids, paint_index(lab, ids)))
        return paint(lab, ids, values, seen[-1][1])
    return f


def probability_tile(io, ctx, tile, models, has, plan):
    """Write ``probability``/``change``/``score`` (and the baseline's maps) of the tile; with
    method ortho (no structural evidence) ``probability`` is the ortho baseline's.
    ``plan["decisions"]``: {t: (sorted patch ids, patch criteria score)}, painted on the cells of
    each patch (0 in patches without evidence)."""
    bound = plan["bound"]
    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    vis = io.read("visible", (slice(None),) + yx)
    ev = io.read("evidence", (slice(None),) + yx).astype(np.float64)
    fine = io.read("evidence_local", (slice(None),) + yx).astype(np.float64) if io.has("evidence_local") else None
    elev = io.read("elevated", yx) == 1 if has.get("elevated") else np.zeros(vis.shape[1:], bool)
    shp = vis.shape
    prob = np.full(shp, np.nan, np.float32)
    ch = np.full(shp, 2, np.uint8)
    prob[0][vis[0] == 1] = 0.0
    ch[0][vis[0] == 1] = 0
    dh = io.read("dh", (slice(None),) + yx).astype(np.float64) if has.get("dh") else None
    dsig = io.read("dh_sigma", (slice(None),) + yx).astype(np.float64) if has.get("dh_sigma") else None
    dhc, win = coherent_dh(io, tile, ctx.shape, bound, window_kept=True) if dh is not None else (None, None)
    ties = dhc is not None and DE.REMOVAL_TIE and bool(has.get("elevated"))  # dh_evidence.combine's ties
    memo = {}
    lab = io.read("patch", yx) if has.get("patch") else None
    painted = _painter(lab) if lab is not None else None
    crit = {t: painted(*plan["decisions"][t][:2]) for t in ctx.targets} if lab is not None else None
    for t in ctx.targets if plan["structural"] else ():
        p = SR.taken_ground_p(io, tile, t)  # the ray pass's wide ground probability (shadow_ray.wide_p), or None
        if p is None:
            p = SR.wide_p(ev[t], elev, models, t)
        if (plan.get("ray") or {}).get(t):  # a new building's cast shadow down-sun (shadow_ray), before the
            p = SR.adjust(io, ctx, tile, t, p, elev, plan["ray"][t], bool(has.get("elevated")))  # localisation's gate
        if fine is not None:  # which ground cells of a changed neighbourhood changed
            p = L.apply(p, ~elev, fine[t], models.get(("evidence", t, 0)), models.get(("local", t, 0)))
        p[elev] = C.probability(ratio_evidence(ev[t][elev]), models[("evidence", t, 1)])  # L.apply: ground only
        if crit is not None:
            if len(plan["decisions"][t]) > 2 and plan["decisions"][t][2] is not None:  # roofs whose rim stayed
                from offnadir.change.outline import rim_witness

                p = rim_witness(p, painted(plan["decisions"][t][0], plan["decisions"][t][2]), DECISION_P)
            p = either(p, crit[t])
        if dh is not None:
            sig = dsig[t] if dsig is not None else np.full(p.shape, np.nan)
            # a dh incoherent with its window is no measurement (dh_evidence: a false peak's streak)
            pdh = dh_probability(dhc[t], sig, bound)
            removal = DE.tie_removals(io, tile, ctx.shape, p, pdh, np.where(win[t], dhc[t], np.nan), elev, bound,
                                      SG.opening_radius(ctx.opts, ctx.cell), memo) if ties else None
            p = combine(p, pdh, removal)
        if lab is not None and (plan.get("gone") or {}).get(t) is not None:  # roofs whose shadow went
            from offnadir.change.missing_shadow import raise_gone

            gone = painted(*plan["gone"][t])
            if dh is not None:  # where a same-date pair measured dh, dh weighs the roof's change
                gone[np.isfinite(dh[t])] = np.nan
            p = raise_gone(p, gone)
        obs = (vis[0] == 1) & (vis[t] == 1) & np.isfinite(p)
        prob[t][obs] = C.stored(p[obs], DECISION_P)
        ch[t][obs] = (p[obs] >= DECISION_P).astype(np.uint8)
    grouped = {"ids": np.zeros(0, np.int64), "rows": {"psum": np.zeros((0, ctx.n_images)),
                                                       "pn": np.zeros((0, ctx.n_images))}}
    if plan["structural"]:
        io.write("probability", (slice(None),) + yx, prob)
        io.write("change", (slice(None),) + yx, ch)
        io.write("score", (slice(None),) + yx, prob)
        if has.get("patch"):
            grouped = _patch_sums(lab, prob)
    if plan["ortho"]:
        cname, sname = plan["ortho"]
        sc = io.read(sname, (slice(None),) + yx)
        cho = io.read(cname, (slice(None),) + yx)
        po = np.where(cho == 2, np.nan, 0.0).astype(np.float32)
        for t in ctx.targets:
            so = ortho_evidence(sc[t])  # the targets' only (the base layer is not calibrated)
            p = np.full(shp[1:], np.nan)
            for s, m in ((1, elev), (0, ~elev)):
                p[m] = C.probability(so[m], models[("ortho", t, s)])
            fin = np.isfinite(p) & (cho[t] != 2)
            po[t][fin] = C.stored(p[fin], DECISION_P)
            cho[t][fin] = (p[fin] >= DECISION_P).astype(np.uint8)
        io.write(cname, (slice(None),) + yx, cho)
        io.write(sname, (slice(None),) + yx, po)
        if not plan["structural"]:
            io.write("probability", (slice(None),) + yx, po)
    return grouped


def _patch_sums(lab, prob):
    """Per patch (ID > 0) and image: sum and count of the finite cell probabilities."""
    from offnadir.change import kernels as K

    m = lab > 0
    ids, inv = K.group_index(lab[m])
    psum, pn = K.prob_group_sums(inv, len(ids), prob, m)  # no (cells, images) copies
    return {"ids": ids, "rows": {"psum": psum, "pn": pn}}


def add_grouped(*parts):
    from offnadir.change import kernels as K

    ids, rows = K.merge_grouped([p["ids"] for p in parts], [p["rows"] for p in parts])
    return {"ids": ids, "rows": rows}


def patch_probability(grouped, ids, t):
    """Mean cell probability of every patch of ``ids`` (sorted) for image ``t`` (NaN: none)."""
    out = np.full(len(ids), np.nan)
    if not len(grouped["ids"]):
        return out
    k = np.searchsorted(grouped["ids"], ids)
    k = np.minimum(k, len(grouped["ids"]) - 1)
    hit = grouped["ids"][k] == ids
    n = grouped["rows"]["pn"][k[hit], t]
    with np.errstate(invalid="ignore", divide="ignore"):
        out[hit] = np.where(n > 0, grouped["rows"]["psum"][k[hit], t] / n, np.nan)
    return out
