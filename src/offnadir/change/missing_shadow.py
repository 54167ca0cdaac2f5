"""Missing shadows as loss evidence for their caster (numpy; the per-tile sums, the client's decision).

A building demolished after the DSM still casts its predicted shadow in the change stage's
illumination codes; in the new image that ground is lit. Per elevated patch (a roof of the old
DSM) and image, the **caster sums** add, over the cells predicted in the patch's cast shadow with
certainty (:func:`offnadir.change.shadow_observed.training_classes`: code 0, every cell within 2
predicted so too and visible), the log likelihood ratio ``log f_lit(x) / f_shadow(x)`` of the cell's
intensity under the image's own two classes (:func:`~offnadir.change.shadow_observed.calibrate`).
The caster of a shadow cell is the first cell towards the sun whose top is above the sun ray
(:func:`shadow_casters`, the illumination kernel's own march), so each shadow cell is counted for
exactly one roof, in the tile that holds it (the sums are exact whatever the tiling).

**A shadow read on the surface that receives it.** The classifier is trained on all sure shadow and
lit cells pooled, mostly ground; a shadow cast on a roof brighter than lit ground is brighter than
lit ground too and reads "lit". Where the target's view hides the ground part of a caster's shadow
(behind the caster seen from the sun's side, from the north or from 40°) only the shadow on a lower
bright roof is left, and an unchanged caster was decided gone (issue 7, H1/H10 seventh round). So in
these sums a sure-shadow cell on a roof patch is read at ``x * min(1, lit_median / m_P)``
(:func:`~offnadir.change.shadow_observed.relative_to_surface`): ``m_P`` the median of that roof's own
sure-lit cells (predicted lit, visible, every cell within 1 so too) in the same image within the
tile's window (read over the bounding box of the roofs receiving a sure shadow,
:func:`roof_references`), ``lit_median`` the classifier's lit class median; a roof with fewer than
:data:`~offnadir.change.shadow_observed.MIN_REF` such cells has no level of its own and its cells
are not counted. The reference is the roof's part in the window (core plus the sun halo): a
receiving roof cut by the window's edge is referred to its part inside, so on roofs the sums are
exact for any tiling only where the window holds the receiving roof. The crown-shadow sums
(:mod:`offnadir.change.crown_shadow`) keep the pooled reading (with it the default geometry lost cut
crowns, H10). Measured in ``docs/change_detection.md``, section "View geometries: the loss census,
and the missing shadow read on its receiving roof" (issue 7, n5 ninth round).

Decision per target ``t`` and patch (:func:`decide`):

    L = min( S_t / C , -S_0 / C )          (S_0 absent: L = S_t / C)
    P(gone) = sigmoid( L + log pi / (1 - pi) ),   gone where P >= 1/2

* ``S_t / C``: the target's sum, with ``C`` = :data:`CORRELATED` = 9 — neighbouring samples are not
  independent (resampling mixes a 3 x 3 neighbourhood), so nine cells count as one observation;
* ``-S_0 / C``: the same caster's predicted shadow must be *there* in the base image (the DSM's
  epoch): a prediction the base does not confirm (a DSM artefact, a tree's porous crown, a shadow
  displaced by the sun's error) says nothing about the target; on Kahramanmaras it removed a third of
  the casters flagged without it;
* ``pi``: the share of casters gone, estimated on the run's own patches by EM (:func:`prior_log_odds`),
  not a constant: with even odds instead, Kahramanmaras flagged 2143 of 7629 roofs, most with a few
  cells of evidence; with the run's prior (3-7 %) 76;
* and the shadow must *look like lit ground*, not merely a little less dark than shadow: the mean
  per-cell ``log f_l / f_s`` of the caster's cells must reach :func:`midpoint`, halfway between the
  two training classes' means (a sum over hundreds of cells otherwise turns a small systematic
  shift — a shadow cast on a surface brighter than the shadows the classifier learnt — into
  certainty: hard simulator seed 2, a 630-cell unchanged roof at 0.03 per cell, midpoint 0.13).

A caster decided gone whose own shadow cells (shadowed by no other object) change light between the dates as
shadow at both dates does is kept (:func:`offnadir.change.shadow_ratio.veto`, on the client after :func:`decide`:
the cross-date ratio cancels the ground's albedo, which the one-image reading takes for light).

A patch decided gone marks its cells changed (:func:`raise_gone`: ``p -> max(p, 1/2)``): the test
says that the caster went, not how likely each of its cells is beyond that (a large patch can be
partly demolished); ``max(p, P)`` put a 9158-cell Kahramanmaras patch, half of it unchanged, above
every other cell (img1 AUC 0.7997), ``max(p, (1 + p)/2)`` still lost 0.0007 of it. Not where a same-date pair measured ``dh``: the height change
itself weighs the roof there (Kahramanmaras stereo: F1 -0.002 with the rule there too, unchanged
without). Measured (``python benchmarks/eval_shadow_offline.py``) in
``docs/change_detection.md``, section "Shadows seen, not predicted".
"""

from __future__ import annotations

import math

import numpy as np

from offnadir.change.group_kernels import unique_inverse  # np.unique(..., return_inverse=True), hashed
from offnadir.change import shadow_observed as SO

#: cells per independent observation in the caster sums (a 3 x 3 neighbourhood: see the docstring)
CORRELATED = 9.0


def shadow_casters(h, codes, cell: float, sun_az: float, sun_el: float, tol: float, max_dist: float):
    """Per cell predicted in a cast shadow (code 0 with a blocker towards the sun), the (row, col)
    of its caster in the window: the first cell whose top is more than ``tol`` above the sun ray
    (:func:`offnadir.change.sun_kernels.caster_distances`, the march of the illumination kernel);
    -1 elsewhere. Returns two int64 arrays."""
    from offnadir.change.sun_kernels import caster_distances

    h = np.ascontiguousarray(h, np.float64)
    ny, nx = h.shape
    di, dj = -math.cos(sun_az), math.sin(sun_az)
    dist = np.empty(h.shape)
    caster_distances(h, math.tan(max(sun_el, 1e-6)) * cell, di, dj, float(tol), float(max_dist), dist)
    ii, jj = np.mgrid[0:ny, 0:nx]
    ci = ii + np.floor(dist * di + 0.5).astype(np.int64)
    cj = jj + np.floor(dist * dj + 0.5).astype(np.int64)
    ok = (dist > 0) & (np.asarray(codes) == 0) & (ci >= 0) & (ci < ny) & (cj >= 0) & (cj < nx)
    return np.where(ok, ci, -1), np.where(ok, cj, -1)


def caster_log_lr_sums(labels, ci, cj, sure_shadow, x, clf):
    """Per caster label: (ids, n, sum over its ``sure_shadow`` cells of ``log f_l(x) / f_s(x)``):
    the log likelihood ratio of "this shadow is lit ground" against "it is there", from the two
    training densities of :func:`calibrate` (no prior)."""
    m = np.asarray(sure_shadow, bool) & (ci >= 0) & np.isfinite(x)
    lab = np.asarray(labels)[ci[m], cj[m]]
    llr = -(clf.cell_log_odds(np.asarray(x)[m]) - clf.prior)
    keep = lab > 0
    ids, inv = unique_inverse(lab[keep])
    return ids, np.bincount(inv, minlength=len(ids)), np.bincount(inv, llr[keep], minlength=len(ids))


def prior_log_odds(llr, iterations: int = 200, tol: float = 1e-6) -> float:
    """Log prior odds of "gone" that make the per-caster log likelihood ratios ``llr`` most likely
    (EM for the weight of a two-class mixture whose class likelihoods are known up to their ratio:
    ``pi <- mean posterior``); the share of casters whose shadow is missing, estimated on the run's
    own data. Clipped to [1e-4, 1 - 1e-4]; 0.5 (0) without casters."""
    llr = np.asarray(llr, np.float64)
    llr = llr[np.isfinite(llr)]
    if not len(llr):
        return 0.0
    pi = 0.5
    for _ in range(iterations):
        lo = np.clip(llr + math.log(pi / (1.0 - pi)), -50, 50)
        new = float(np.mean(1.0 / (1.0 + np.exp(-lo))))
        new = min(max(new, 1e-4), 1.0 - 1e-4)
        if abs(new - pi) < tol:
            pi = new
            break
        pi = new
    return math.log(pi / (1.0 - pi))


def tile_sums(io, ctx, tile, keep=None):
    """Per elevated patch (the caster) and image: ``n`` sure predicted-shadow cells of the tile's core
    it casts, and their summed ``log f_lit / f_shadow`` (:func:`caster_log_lr_sums`). Returns the
    grouped table ``{"ids", "rows": {"msh_n": (m, images), "msh_llr": (m, images)}}`` (empty without
    a sun or a classifier). Reads the DSM, illumination, patch and elevated maps with the sun halo
    (as the segment pass computed the codes) and the values of the core (``keep["value"]``, the
    core's float64 values that :func:`offnadir.change.tile.patch_tile` read, when given).

    The same numbers as :func:`shadow_casters` + :func:`caster_log_lr_sums` over the window, for
    less: the sure shadows are found on the core and its :data:`~offnadir.change.shadow_observed.MARGIN`
    only, the casters marched from those cells only
    (:func:`offnadir.change.sun_kernels.march_cells`, the march of ``caster_distances_at``),
    intensities taken at those cells."""
    from offnadir.change.sun_kernels import march_cells, window_top

    classes = getattr(ctx, "shadow_classes", ()) or ()
    n_img = ctx.n_images
    empty = {"ids": np.zeros(0, np.int64), "rows": {"msh_n": np.zeros((0, n_img)), "msh_llr": np.zeros((0, n_img))}}
    if not ctx.use_sun or not any(c is not None for c in classes) or not getattr(ctx.opts, "missing_shadows", True):
        return empty
    sw = shadow_window(io, ctx, tile, keep)
    h, sh, lab = sw.h, sw.halo, sw.labels
    ny, nx = h.shape
    parts, hmax = [], None
    for k in range(n_img):
        clf = classes[k] if k < len(classes) else None
        if clf is None:
            continue
        ii, jj, x = sw.sure[k]
        # read on the receiving surface: a sure shadow on a roof relative to that roof's own lit level
        x, ok = SO.relative_to_surface(x, lab[ii, jj], *sw.roof_lit[k], clf.lit_median)
        ii, jj, x = ii[ok], jj[ok], x[ok]
        az, el = ctx.sun[k]
        di, dj = -math.cos(az), math.sin(az)
        d = sw.first.get(k)  # the crown rule's march of the same cells, when it ran first (crown_shadow)
        if d is not None:
            d = d[ok]
        else:
            if hmax is None:
                hmax = window_top(h)
            d = np.empty(len(ii))
            march_cells(h, np.asarray(ii, np.int64), np.asarray(jj, np.int64), math.tan(max(el, 1e-6)) * ctx.cell,
                        di, dj, hmax, float(ctx.opts.sun_tolerance), float(sh), d)
        ci = ii + np.floor(d * di + 0.5).astype(np.int64)
        cj = jj + np.floor(d * dj + 0.5).astype(np.int64)
        ok = (d > 0) & (ci >= 0) & (ci < ny) & (cj >= 0) & (cj < nx)
        lc = lab[ci[ok], cj[ok]]
        llr = -(clf.cell_log_odds(x[ok]) - clf.prior)
        keep_ = lc > 0
        ids, inv = unique_inverse(lc[keep_])
        rows_n = np.zeros((len(ids), n_img))
        rows_s = np.zeros((len(ids), n_img))
        rows_n[:, k] = np.bincount(inv, minlength=len(ids))
        rows_s[:, k] = np.bincount(inv, llr[keep_], minlength=len(ids))
        parts.append((ids, {"msh_n": rows_n, "msh_llr": rows_s}))
    if not parts:
        return empty
    return add_sums(*({"ids": i, "rows": r} for i, r in parts))


def shadow_window(io, ctx, tile, keep=None):
    """What the shadow sums of a tile read and find first (:func:`tile_sums`,
    :func:`offnadir.change.crown_shadow.tile_sums`): a namespace with ``halo`` (the sun halo, at least
    :data:`~offnadir.change.shadow_observed.MARGIN` + 1), ``window`` (the tile's
    :class:`~offnadir.change.tileio.Window` with that halo), ``h`` (its DSM, float64), ``elevated`` (its
    elevated map), ``labels`` (patch IDs on elevated cells, 0 elsewhere) and ``sure``: per image with a
    shadow classifier (None for the others), ``(ii, jj, x)``, the window rows and columns of the core's
    sure predicted-shadow cells whose mean value ``x`` over the bands is finite, row-major; ``first``:
    per image, the distances to those cells' first casters, when the crown rule marched them
    (:func:`offnadir.change.crown_shadow.tile_sums`, the numbers of :func:`tile_sums`' own march).

    Sure shadow: :func:`offnadir.change.shadow_observed.training_classes`' shadow class, code 0 and
    visible at every cell within MARGIN, so a square minimum filter of ``lit == 0 & visible`` (the
    filter of an AND is the AND of the filters) over the core and its MARGIN only (the window's own
    edges where that crop reaches them). ``keep``: the sums task's dict (``keep["value"]``, the core's
    float64 values :func:`offnadir.change.tile.patch_tile` read, used when there); the result is kept
    in it as ``keep["shadow_window"]`` and returned from there on the next call, so both rules read the
    window and filter the shadows once per task."""
    from types import SimpleNamespace

    from offnadir.change.tileio import Window

    if keep is not None and "shadow_window" in keep:
        return keep["shadow_window"]
    classes = getattr(ctx, "shadow_classes", ()) or ()
    sh = max(ctx.sun_halo(), SO.MARGIN + 1)
    w = Window.around(tile, sh, ctx.shape)
    h = np.ascontiguousarray(io.read("dsm", w.yx), np.float64)
    ny, nx = h.shape
    a0, a1, b0, b1 = w.core
    # the sure shadows of the core depend on the cells within MARGIN of it only (a square minimum
    # filter): filtered on that crop, with the window's own edges where the crop reaches them
    mg = SO.MARGIN
    r0, r1, c0, c1 = max(a0 - mg, 0), min(a1 + mg, ny), max(b0 - mg, 0), min(b1 + mg, nx)
    elev = np.asarray(io.read("elevated", w.yx))
    labels = np.where(elev == 1, io.read("patch", w.yx), 0)
    crop = (slice(w.i0 + r0, w.i0 + r1), slice(w.j0 + c0, w.j0 + c1))
    lit = io.read("illumination", (slice(None),) + crop)
    vis = io.read("visible", (slice(None),) + crop)
    if keep is not None and "value" in keep:
        val = keep["value"]
    else:
        val = io.read("value", (slice(None), slice(None), slice(tile.i0, tile.i1),
                                slice(tile.j0, tile.j1))).astype(np.float64)
    in_core = (slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0))
    sure = []
    for k in range(ctx.n_images):
        if (classes[k] if k < len(classes) else None) is None:
            sure.append(None)
            continue
        # training_classes' shadow class: min_filter(A) & min_filter(B) == min_filter(A & B)
        both = (lit[k] == 0) & (vis[k] == 1)
        ii, jj = np.nonzero(SO.all_within(both, mg)[in_core])  # row-major
        x = val[k][:, ii, jj].mean(axis=0)
        fin = np.isfinite(x)
        ii, jj, x = ii[fin] + a0, jj[fin] + b0, x[fin]
        rng = ctx.sun_range[k] if k < len(getattr(ctx, "sun_range", ())) else None
        if rng is not None and len(ii):  # shadowed over the sun's whole range (change.sun_range)
            from offnadir.change import sun_range as SR

            keep_ = SR.held_over_range(h, ii, jj, ctx.sun[k], rng, ctx.cell, float(ctx.opts.sun_tolerance), sh, True)
            if keep_ is not None:
                ii, jj, x = ii[keep_], jj[keep_], x[keep_]
        sure.append((ii, jj, x))
    out = SimpleNamespace(halo=sh, window=w, h=h, elevated=elev, labels=labels, sure=tuple(sure),
                          roof_lit=roof_references(io, w, labels, sure), first={})
    if keep is not None:
        keep["shadow_window"] = out
    return out


def add_sums(*parts):
    from offnadir.change import kernels as K

    parts = [p for p in parts if len(p["ids"])] or list(parts[:1])
    # tables with other columns (the longer-shadow sums beside these): every column in every table
    names = {k: np.shape(v)[1:] for p in parts for k, v in p["rows"].items()}
    rows_ = [{k: p["rows"].get(k, np.zeros((len(p["ids"]),) + s)) for k, s in names.items()} for p in parts]
    ids, rows = K.merge_grouped([p["ids"] for p in parts], rows_)
    return {"ids": ids, "rows": rows}


def classifiers(report) -> tuple:
    """Per image, its :class:`~offnadir.change.shadow_observed.ShadowClassifier` from the sun report
    (:func:`offnadir.change.illumination.resolve_suns`, entry ``shadow_classifier``), or None."""
    return tuple(SO.ShadowClassifier.from_report(r["shadow_classifier"]) if r.get("shadow_classifier") else None
                 for r in (report or ()))


def decide(sums, targets, names=None, report=None, log=None, enabled: bool = True) -> dict:
    """Per target: ``(patch ids, P(gone))`` (see the module docstring). What was decided (casters
    tested, gone, the prior share) is logged and added to the target's entry of ``report`` (the sun
    report, stored as the attribute ``change_sun``) as ``missing_shadows``. ``enabled`` False (the
    option ``change.missing_shadows: false``): no decision, and that is logged and recorded."""
    import logging

    log = log or logging.getLogger("offnadir.change.missing_shadow")
    if not enabled:
        log.info("missing-shadow rule off (change.missing_shadows: false): roofs whose predicted shadow is seen "
                 "lit are not decided changed by it")
        for t in targets:
            if report is not None and t < len(report):
                report[t]["missing_shadows"] = dict(rule="off (change.missing_shadows: false)")
        return {}
    ids = np.asarray(sums["ids"])
    out = {}
    if not len(ids):
        return out
    n, s = sums["rows"]["msh_n"], sums["rows"]["msh_llr"]
    classes = classifiers(report) if report is not None else ()
    for t in targets:
        tested = n[:, t] > 0
        if not tested.any():
            continue
        lt = s[:, t] / CORRELATED
        lb = np.where(n[:, 0] > 0, -s[:, 0] / CORRELATED, np.inf)
        llr = np.where(tested, np.minimum(lt, lb), np.nan)
        prior = prior_log_odds(llr[tested])
        post = 1.0 / (1.0 + np.exp(-np.clip(np.where(tested, llr, -np.inf) + prior, -50.0, 50.0)))
        mid = midpoint(classes[t] if t < len(classes) else None)
        with np.errstate(invalid="ignore", divide="ignore"):
            looks_lit = s[:, t] / np.maximum(n[:, t], 1) >= mid  # the shadow looks like lit ground
        post = np.where(looks_lit, post, np.minimum(post, 0.0))
        out[t] = (ids, post)
        name = names[t] if names is not None else str(t)
        rec = dict(casters_tested=int(tested.sum()), casters_gone=int((post >= 0.5).sum()),
                   prior_gone_share=1.0 / (1.0 + math.exp(-prior)), cells_per_observation=CORRELATED,
                   rule="roofs whose predicted cast shadow is seen lit (and seen at the base date): cells changed, "
                        "except where a same-date pair measured dh")
        if report is not None and t < len(report):
            report[t]["missing_shadows"] = rec
        log.info("%s: %d of %d roofs' predicted shadows are missing (seen lit, seen at the base date; prior "
                 "share of roofs gone %.3f, estimated on this run): loss evidence for those roofs", name,
                 rec["casters_gone"], rec["casters_tested"], rec["prior_gone_share"])
    return out


def midpoint(clf) -> float:
    """The mean per-cell ``log f_l / f_s`` halfway between a sample of the shadow class and one of
    the lit class (:attr:`~offnadir.change.shadow_observed.ShadowClassifier.mean_llr_shadow`,
    ``mean_llr_lit``); -inf without a classifier."""
    if clf is None or not (math.isfinite(clf.mean_llr_shadow) and math.isfinite(clf.mean_llr_lit)):
        return -math.inf
    return -0.5 * (clf.mean_llr_shadow + clf.mean_llr_lit)


def raise_gone(p, gone):
    """``max(p, 1/2)`` where ``gone >= 1/2`` (a patch's P(gone) painted on its cells), else ``p``:
    the cells of a roof whose shadow went are decided changed; the test says nothing about how
    likely each of them is beyond that, so cells already above one half keep their probability."""
    p = np.asarray(p, np.float64)
    with np.errstate(invalid="ignore"):
        hit = np.isfinite(p) & np.isfinite(gone) & (np.asarray(gone) >= 0.5)
    return np.where(hit, np.fmax(p, 0.5), p)


def roof_references(io, w, labels, sure):
    """Per image with sure shadows (None for the others), ``(x, patch)``: the sure-lit cells (predicted
    lit and visible, every cell within 1 so too: one cell of resampling blur) of the roofs that receive
    one of its sure shadows, their mean value over the bands and patch ID: each receiving roof's own lit
    level in the window, the reference of a shadow read on it (:func:`tile_sums`). Read over the
    bounding box of those roofs, one cell more for the 3 x 3 filter; a roof cut by the window's edge is
    referred to its part inside."""
    got = [np.unique(labels[s[0], s[1]]) for s in sure if s is not None]
    ids = np.unique(np.concatenate(got)) if got else np.zeros(0, labels.dtype)
    ids = ids[ids > 0]
    empty = (np.zeros(0), np.zeros(0, labels.dtype))
    if not len(ids):
        return tuple(None if s is None else empty for s in sure)
    ny, nx = labels.shape
    lut = np.zeros(int(ids[-1]) + 1, bool)  # ids: sorted, > 0; labels >= 0 (patch IDs, 0 off the roofs)
    lut[ids] = True
    m = lut[np.clip(labels, 0, len(lut) - 1)] & (labels <= ids[-1])  # lut[0] is False: no negative ID matches
    rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
    R0, R1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, ny)
    C0, C1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, nx)
    box = (slice(w.i0 + R0, w.i0 + R1), slice(w.j0 + C0, w.j0 + C1))
    litb = np.asarray(io.read("illumination", (slice(None),) + box))
    visb = np.asarray(io.read("visible", (slice(None),) + box))
    bval = np.asarray(io.read("value", (slice(None), slice(None)) + box))  # (image, band, y, x), as stored
    blab = np.where(m[R0:R1, C0:C1], labels[R0:R1, C0:C1], 0)
    on_roof = blab > 0
    out = []
    for k, s in enumerate(sure):
        if s is None:
            out.append(None)
            continue
        good = (litb[k] > 0) & (litb[k] < 255) & (visb[k] == 1)
        ri, rj = np.nonzero(SO.all_within(good, 1) & on_roof)
        # float64 of the cells read only: the numbers of the whole box's float64 copy
        out.append((np.asarray(bval[k][:, ri, rj], np.float64).mean(axis=0), blab[ri, rj]))
    return tuple(out)
