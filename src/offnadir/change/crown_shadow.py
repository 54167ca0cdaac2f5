"""Cut crowns from their missing cast shadow, summed per crown (numpy; the tiles' adjacency pairs,
the client's grouping and decision).

The missing-shadow rule (:mod:`offnadir.change.missing_shadow`) decides per elevated patch. A crown
is not one patch: the roof-step split cuts a dome into fragments (a 42-cell crown of the hard
simulator into 6), and each predicted shadow cell counts for its caster only, the crown's fragment
towards the sun, so the evidence of a cut tree is spread over fragments none of which passes alone
(docs/change_detection.md, "Longer shadows, cut trees and seed 5"). Here the caster sums of the
patches of one crown are added and the crown is decided as one caster.

**Crowns** (:func:`crowns`): 4-connected groups of elevated patches none of which is a plane within
the DSM's noise (three times the ground patches' median plane-fit rms), whose heights together depart
from one plane by more than half an offset's height of the parallax search (the bound of
:func:`offnadir.change.criteria.rigid`, applied to the group: plane sums add). A roof face is a plane
(rms 0 on the simulator) and breaks a group: a tree beside a building stays a crown of its own.
The adjacency of patches comes from the tiles
(:func:`adjacent_pairs` on each tile's core and the first row and column of its neighbours below and
to the right: every 4-neighbour pair once, whatever the tiling).

**Decision** (:func:`decide_crowns`), per target ``t`` and crown, from the sums of its patches, the
missing-shadow rule's own test: ``L = min(S_t / 9, -S_0 / 9)``, ``P = sigmoid(L + log pi/(1-pi))``
with ``pi`` the share of crowns gone by EM over the run's crowns, and the crown's shadow must look
like lit ground on average (the rule's midpoint). The cells summed are those the crown casts first
and no other object would still shade (:func:`tile_sums`): a cut crown's shadow cell that a building
further towards the sun also shades stays dark. And the target's classifier must call at least half
of its own training shadows shadow (:data:`SHADOW_WITNESS`): one that calls most real shadows lit
witnesses no missing one (Kahramanmaras' 2023 targets call 0.31 / 0.14 of theirs shadow; there the
rule is off and says so). A crown decided gone paints its cells changed like
a roof gone (``p -> max(p, 1/2)``), not where a same-date pair measured ``dh``.

**Texture** (:mod:`offnadir.change.crown_texture`): the crown's base/target correlation against the
run's crowns adds its log-likelihood ratio (never negative) to the shadow's. It decides no crown
alone: not one that casts no sure shadow cell of its own (on the hard simulator at 1024² such
crowns decided on their texture were 3 unchanged of 10), nor one whose shadow is seen still there
(the midpoint test above).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from offnadir.change.group_kernels import unique_inverse  # np.unique(..., return_inverse=True), hashed

_LOG = logging.getLogger("offnadir.change.crown_shadow")
#: share of its own training shadows the target's classifier must call shadow for a predicted
#: shadow it calls lit to witness a missing one (the longer-shadow rule's witness condition, read
#: the other way: a classifier that calls most real shadows lit says "lit" of shadows that are there)
SHADOW_WITNESS = 0.5


def adjacent_pairs(lab):
    """Sorted unique ``(a, b)`` with ``a < b``, both > 0, of the 4-neighbour cells of ``lab`` that
    carry different labels (int64, shape ``(m, 2)``)."""
    lab = np.asarray(lab)
    xs, ys = [], []
    for a, b in ((lab[:, :-1], lab[:, 1:]), (lab[:-1, :], lab[1:, :])):
        m = (a > 0) & (b > 0) & (a != b)
        if m.any():
            x, y = a[m].astype(np.int64), b[m].astype(np.int64)
            xs.append(np.minimum(x, y))
            ys.append(np.maximum(x, y))
    if not xs:
        return np.zeros((0, 2), np.int64)
    return _unique_rows(np.concatenate(xs), np.concatenate(ys))


def _unique_rows(x, y):
    """Sorted unique rows of the pairs ``(x, y)`` (what ``np.unique(axis=0)`` gives, faster)."""
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    new = np.ones(len(x), bool)
    new[1:] = (x[1:] != x[:-1]) | (y[1:] != y[:-1])
    return np.stack([x[new], y[new]], 1)


def tile_pairs(io, tile, shape):
    """:func:`adjacent_pairs` of the elevated patches over the tile's core and the first row and
    column beyond its lower and right edges (the pairs across those borders; the upper and left
    ones are the neighbours'). Reads ``patch`` and ``elevated``."""
    i1, j1 = min(tile.i1 + 1, shape[0]), min(tile.j1 + 1, shape[1])
    key = (slice(tile.i0, i1), slice(tile.j0, j1))
    lab = np.where(np.asarray(io.read("elevated", key)) == 1, np.asarray(io.read("patch", key)), 0)
    # the corner cell beyond both edges pairs with nothing of this tile's core
    if i1 > tile.i1 and j1 > tile.j1:
        lab = lab.copy()
        lab[-1, -1] = 0
    return adjacent_pairs(lab)


def first_and_other(h, elevated, ii, jj, rise, di, dj, tol, max_dist):
    """Per shadow cell ``(ii, jj)`` of the window ``h``: (distance in cells to its first caster
    towards the sun, -1: none; whether another object would still shade it were that caster's
    object gone: a top above the ray met after the ray crossed the ground, past the first caster).
    The march of :func:`offnadir.change.sun_kernels.caster_distances_at` (its numbers; tested), continued
    (:func:`offnadir.change.crown_shadow_kernels.first_and_other`)."""
    from offnadir.change.crown_shadow_kernels import first_and_other as kernel

    h = np.ascontiguousarray(h, np.float64)
    fin = np.isfinite(h)
    hmax = float(h[fin].max()) if fin.any() else -np.inf
    ii = np.ascontiguousarray(ii, np.int64)
    jj = np.ascontiguousarray(jj, np.int64)
    dist = np.empty(len(ii))
    other = np.empty(len(ii), np.bool_)
    kernel(h, np.ascontiguousarray(elevated, np.uint8), ii, jj, float(rise), float(di), float(dj), hmax, float(tol),
           float(max_dist), dist, other)
    return dist, other


def tile_sums(io, ctx, tile, keep=None):
    """Per elevated patch (the first caster) and image: ``csh_n`` sure predicted-shadow cells of the
    tile's core it casts that no other object shades (:func:`first_and_other`), and their summed
    ``csh_llr`` ``log f_lit / f_shadow``: :func:`offnadir.change.missing_shadow.tile_sums`'s cells
    and numbers (the same window, sure shadows, casters and classifiers) less the cells another
    object would keep in shadow (:func:`first_and_other`). Grouped table ``{"ids", "rows"}``, merged by
    :func:`offnadir.change.missing_shadow.add_sums`; exact whatever the tiling."""
    from offnadir.change import missing_shadow as MS

    classes = getattr(ctx, "shadow_classes", ()) or ()
    n_img = ctx.n_images
    empty = {"ids": np.zeros(0, np.int64), "rows": {"csh_n": np.zeros((0, n_img)), "csh_llr": np.zeros((0, n_img))}}
    if not wanted(ctx):
        return empty
    sw = MS.shadow_window(io, ctx, tile, keep)  # the missing-shadow rule's, when it ran in this task
    h, sh, elev, lab = sw.h, sw.halo, sw.elevated, sw.labels
    ny, nx = h.shape
    parts = []
    for k in range(n_img):
        clf = classes[k] if k < len(classes) else None
        if clf is None:
            continue
        ii, jj, x = sw.sure[k]
        az, el = ctx.sun[k]
        di, dj = -math.cos(az), math.sin(az)
        d, other = first_and_other(h, elev, ii, jj, math.tan(max(el, 1e-6)) * ctx.cell, di, dj,
                                   float(ctx.opts.sun_tolerance), float(sh))
        sw.first[k] = d  # the missing-shadow sums' casters of the same cells (the same march's numbers)
        ci = ii + np.floor(d * di + 0.5).astype(np.int64)
        cj = jj + np.floor(d * dj + 0.5).astype(np.int64)
        ok = (d > 0) & (ci >= 0) & (ci < ny) & (cj >= 0) & (cj < nx) & ~other
        lc, x = lab[ci[ok], cj[ok]], x[ok]
        lc, x = lc[lc > 0], x[lc > 0]
        llr = -(clf.cell_log_odds(x) - clf.prior)
        ids, inv = unique_inverse(lc)
        rows_n = np.zeros((len(ids), n_img))
        rows_s = np.zeros((len(ids), n_img))
        rows_n[:, k] = np.bincount(inv, minlength=len(ids))
        rows_s[:, k] = np.bincount(inv, llr, minlength=len(ids))
        parts.append({"ids": ids, "rows": {"csh_n": rows_n, "csh_llr": rows_s}})
    if not parts:
        return empty
    return MS.add_sums(*parts)


def add_pairs(*parts):
    parts = [np.asarray(p, np.int64).reshape(-1, 2) for p in parts]
    allp = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    return _unique_rows(allp[:, 0], allp[:, 1]) if len(allp) else allp


#: below a millimetre no DSM resolves a surface: a patch nearer its plane than this is a plane,
#: whatever the run's noise estimate (an exact synthetic DSM's is 0)
PLANE_FLOOR_M = 1e-3


def bounds(rms, elevated, n, cell: float, tan_view: float):
    """``(plane tolerance, bent bound)`` in metres of plane-fit rms: a patch within the tolerance
    (``RIGID_NOISE_SIGMAS`` times the DSM's noise, the ground patches' median rms, at least
    :data:`PLANE_FLOOR_M`) is a plane as far as the DSM can tell (a roof face); a group of patches
    beyond the bent bound (half an offset's height ``0.5 cell / tan_view`` and the tolerance, as
    :func:`offnadir.change.criteria.rigid`) is not one plane at the parallax search's resolution.
    None without a view angle."""
    from offnadir.change.criteria import RIGID_NOISE_SIGMAS

    if not (np.isfinite(tan_view) and tan_view > 0):
        return None
    ground = ~np.asarray(elevated, bool) & (np.asarray(n) >= 4) & np.isfinite(rms)
    noise = float(np.median(rms[ground])) if ground.any() else 0.0
    tol = max(RIGID_NOISE_SIGMAS * noise, PLANE_FLOOR_M)
    return tol, max(0.5 * cell / tan_view, tol)


def crowns(ids, elevated, plane, pairs, cell: float, tan_view: float) -> dict:
    """The crowns: 4-connected groups of elevated patches none of which is a plane within the DSM's
    noise (fragments under 4 cells included), whose heights together depart from one plane by more
    than the bent bound (:func:`bounds`). A roof face is a plane and belongs to no crown, so a tree
    beside a building is a crown of its own; a dome cut into fragments by the roof-step split is
    one crown, though each fragment alone may be nearly flat.

    Returns ``{"ids": patch ids in a crown (sorted), "crown": each one's crown index 0..k-1,
    "count": k, "bound": the bent bound, "plane_tolerance", "cells": cells per crown}``. ``ids``
    sorted patch ids, ``elevated`` their flag, ``plane`` their plane sums
    (:func:`offnadir.change.crown.plane_sums`, added over tiles), ``pairs`` from
    :func:`adjacent_pairs`."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from offnadir.change.crown import plane_rms

    ids = np.asarray(ids, np.int64)
    empty = dict(ids=np.zeros(0, np.int64), crown=np.zeros(0, np.int64), count=0, bound=None,
                 plane_tolerance=None, cells=np.zeros(0, np.int64))
    if not len(ids) or plane is None:
        return empty
    plane = np.asarray(plane, np.float64)
    n = plane[:, 0]
    rms = plane_rms(plane)
    elevated = np.asarray(elevated, bool)
    b = bounds(rms, elevated, n, cell, tan_view)
    if b is None:
        return empty
    tol, bound = b
    with np.errstate(invalid="ignore"):
        cand = elevated & ((rms > tol) | (n < 4))
    empty.update(bound=bound, plane_tolerance=tol)
    if not cand.any():
        return empty
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    ka = np.minimum(np.searchsorted(ids, pairs[:, 0]), len(ids) - 1)
    kb = np.minimum(np.searchsorted(ids, pairs[:, 1]), len(ids) - 1)
    ok = (ids[ka] == pairs[:, 0]) & (ids[kb] == pairs[:, 1])
    ok &= cand[ka] & cand[kb]
    g = coo_matrix((np.ones(int(ok.sum())), (ka[ok], kb[ok])), shape=(len(ids), len(ids)))
    _, comp = connected_components(g, directed=False)
    # the group's plane sums are its patches' sums added: its rms over all its cells
    gs = np.stack([np.bincount(comp[cand], plane[cand, k], minlength=comp.max() + 1) for k in range(plane.shape[1])], 1)
    with np.errstate(invalid="ignore"):
        bent = plane_rms(gs) > bound
    keep = cand & bent[comp]
    if not keep.any():
        return empty
    _, crown = unique_inverse(comp[keep])
    k = int(crown.max()) + 1
    return dict(ids=ids[keep], crown=crown.astype(np.int64), count=k, bound=bound, plane_tolerance=tol,
                cells=np.bincount(crown, n[keep], minlength=k).astype(np.int64))


def decide_crowns(cr: dict, sums, targets, report=None, names=None, log=None, prior_log_odds=None,
                  need_witness: bool = True, texture=None) -> dict:
    """Per target: ``{"ids": patch ids of the crowns tested (sorted), "post": their crown's P(gone),
    "crowns": per tested crown a record, "prior": log prior odds, "midpoint", "crowns_total"}``
    (module docstring). ``sums`` the missing-shadow table (:func:`offnadir.change.missing_shadow.tile_sums`
    merged); ``report`` the sun report (its classifiers; the decision is recorded in the target's
    entry as ``crown_shadows``). ``prior_log_odds`` given: used instead of the crowns' EM;
    ``need_witness`` False: the witness condition left out (replays of the variant). ``texture``: per
    target a tuple ``(llr, m, s)`` of :func:`offnadir.change.crown_texture.log_lr` over the crowns, the
    texture's evidence added to each crown's shadow evidence."""
    from offnadir.change import missing_shadow as MS

    log = log or _LOG
    out = {}
    if not cr["count"] or sums is None or not len(sums["ids"]):
        for t in targets:
            if report is not None and t < len(report):
                report[t]["crown_shadows"] = dict(crowns=int(cr["count"]), crowns_tested=0, crowns_gone=0)
        return out
    sid = np.asarray(sums["ids"], np.int64)
    # the cells no other object shades (tile_sums), else every cell the crown casts first
    nk, sk = ("csh_n", "csh_llr") if "csh_n" in sums["rows"] else ("msh_n", "msh_llr")
    ns, ss = sums["rows"][nk], sums["rows"][sk]
    k = np.minimum(np.searchsorted(sid, cr["ids"]), len(sid) - 1)
    found = sid[k] == cr["ids"]
    classes = MS.classifiers(report) if report is not None else ()
    nc = cr["count"]
    for t in targets:
        def per_crown(col):
            return np.bincount(cr["crown"], np.where(found, col[k], 0.0), minlength=nc)

        n_t, s_t, n_0, s_0 = per_crown(ns[:, t]), per_crown(ss[:, t]), per_crown(ns[:, 0]), per_crown(ss[:, 0])
        clf = classes[t] if t < len(classes) else None
        live = witness(clf) or (clf is not None and not need_witness)
        tex = (texture or {}).get(t)
        ltex = tex[0] if tex is not None else np.zeros(nc)
        # only crowns with sure shadow cells of their own: the texture decides none alone (crown_texture;
        # measured: of the crowns without one that their texture would decide, 3 of 10 unchanged)
        tested = (n_t > 0) & live
        if not tested.any():
            continue
        lt = s_t / MS.CORRELATED
        lb = np.where(n_0 > 0, -s_0 / MS.CORRELATED, np.inf)
        llr = np.where(tested, np.minimum(lt, lb) + ltex, np.nan)
        prior = MS.prior_log_odds(llr[tested]) if prior_log_odds is None else float(prior_log_odds)
        post = 1.0 / (1.0 + np.exp(-np.clip(np.where(tested, llr, -np.inf) + prior, -50.0, 50.0)))
        mid = MS.midpoint(clf)
        with np.errstate(invalid="ignore", divide="ignore"):
            looks_lit = s_t / np.maximum(n_t, 1) >= mid
        post = np.where(looks_lit & tested, post, 0.0)
        sel = tested[cr["crown"]]
        npatch = np.bincount(cr["crown"], minlength=nc)
        recs = [dict(crown=int(c), cells=int(cr["cells"][c]), patches=int(npatch[c]), n_t=int(n_t[c]),
                     s_t=float(s_t[c]),
                     n_0=int(n_0[c]), s_0=float(s_0[c]), L=float(llr[c]), texture=float(ltex[c]),
                     post=float(post[c]))
                for c in np.nonzero(tested)[0]]
        out[t] = dict(ids=cr["ids"][sel], post=post[cr["crown"][sel]], crowns=recs, prior=prior, midpoint=mid,
                      crowns_total=nc)
        gone = int((post >= 0.5).sum())
        rec = dict(crowns=nc, crowns_tested=int(tested.sum()), crowns_gone=gone, shadow_witness=witness(clf),
                   accuracy_shadow=float(clf.accuracy_shadow),
                   prior_gone_share=1.0 / (1.0 + math.exp(-prior)), bent_rms_bound_m=float(cr["bound"]),
                   plane_tolerance_m=float(cr["plane_tolerance"]),
                   texture=(None if tex is None else dict(median_z=_num(tex[1]), robust_sd_z=_num(tex[2]),
                                                          crowns_with_evidence=int((ltex[tested] > 0).sum()))),
                   rule="crowns (groups of elevated patches not one plane) whose predicted cast shadow, summed "
                        "over the crown, is seen lit (and seen at the base date): cells changed, except where a "
                        "same-date pair measured dh")
        if report is not None and t < len(report):
            report[t]["crown_shadows"] = rec
        name = names[t] if names is not None else str(t)
        log.info("%s: %d of %d crowns' predicted shadows are missing, summed per crown, with their texture's "
                 "evidence (%d crowns: groups of "
                 "elevated patches, none a plane within %.3f m, together bent beyond a plane-fit rms of %.2f m; "
                 "prior share gone %.3f, estimated on this "
                 "run's crowns): loss evidence for those crowns", name, gone, rec["crowns_tested"], nc,
                 rec["plane_tolerance_m"], rec["bent_rms_bound_m"], rec["prior_gone_share"])
    return out


def merge_gone(gone: dict, crown_dec: dict) -> dict:
    """The per-target ``(patch ids, P(gone))`` of the patch rules with the crowns' decisions:
    per patch the larger of the two (a crown gone paints all its patches)."""
    out = dict(gone or {})
    for t, d in crown_dec.items():
        if not len(d["ids"]):
            continue
        if t in out and len(out[t][0]):
            ids0, p0 = np.asarray(out[t][0], np.int64), np.asarray(out[t][1], np.float64)
            ids = np.union1d(ids0, d["ids"])
            p = np.zeros(len(ids))
            p[np.searchsorted(ids, ids0)] = p0
            k = np.searchsorted(ids, d["ids"])
            p[k] = np.maximum(p[k], d["post"])
            out[t] = (ids, p)
        else:
            out[t] = (np.asarray(d["ids"], np.int64), np.asarray(d["post"], np.float64))
    return out


def _num(x):
    """A float for the store's attributes (None for NaN)."""
    return float(x) if np.isfinite(x) else None


def witness(clf) -> bool:
    """Whether image's shadow classifier ``clf`` witnesses a missing shadow (:data:`SHADOW_WITNESS`)."""
    return clf is not None and clf.accuracy_shadow >= SHADOW_WITNESS


def wanted(ctx) -> bool:
    """Whether the sums pass gathers the crowns' sums and adjacency: a sun, the option
    ``missing_shadows`` on, and a target whose shadow classifier is a witness (:func:`witness`)."""
    classes = getattr(ctx, "shadow_classes", ()) or ()
    return bool(ctx.use_sun and getattr(ctx.opts, "missing_shadows", True)
                and any(witness(classes[t]) for t in ctx.targets if t < len(classes)))


def decide_targets(red, pairs, sums, gone, targets, cell: float, off_nadir_deg, names=None, report=None,
                   log=None) -> dict:
    """The crowns of the patch table ``red`` (its ``plane``, ``n_elev`` and ``n_cells`` rows) under
    each target's view (:func:`crowns`), decided on the crowns' shadow sums (:func:`decide_crowns`)
    and merged into ``gone`` (:func:`merge_gone`); a target whose classifier is no witness
    (:func:`witness`) is logged and recorded as such. Returns ``gone``."""
    from offnadir.change import crown_texture as CT
    from offnadir.change import missing_shadow as MS

    log = log or _LOG
    classes = MS.classifiers(report) if report is not None else ()
    live = []
    for t in targets:
        clf = classes[t] if t < len(classes) else None
        if clf is not None and not witness(clf):
            if report is not None and t < len(report):
                report[t]["crown_shadows"] = dict(shadow_witness=False, accuracy_shadow=float(clf.accuracy_shadow),
                                                  rule="off: the target's classifier is no witness of missing shadows")
            log.info("%s: crowns' missing shadows not tested: the target's shadow classifier calls %.2f of its own "
                     "training shadows shadow (< %.2f), so a predicted shadow it calls lit is no witness of a missing "
                     "one", names[t] if names is not None else str(t), clf.accuracy_shadow, SHADOW_WITNESS)
        else:
            live.append(t)
    rows = red["rows"] if red is not None else {}
    if "plane" not in rows or sums is None or pairs is None:
        return gone
    ids = np.asarray(red["ids"], np.int64)
    elevated = rows["n_elev"] > 0.5 * rows["n_cells"]
    for t in live:
        tan_view = float(np.tan(np.radians(off_nadir_deg[t]))) if t < len(off_nadir_deg) else float("nan")
        cr = crowns(ids, elevated, rows["plane"], pairs, cell, tan_view)
        texture = None
        if CT.row(t) in rows:  # the crowns' texture (crown_texture): a second witness of a cut
            texture = {t: CT.log_lr(CT.fisher_z(CT.per_crown(cr, ids, rows[CT.row(t)])))}
            tex = texture[t]
            log.info("%s: crowns' texture across the dates: median Fisher z %.2f, robust sd %.2f over the run's "
                     "crowns; %d crowns' texture adds evidence of a cut", names[t] if names is not None else str(t),
                     tex[1], tex[2], int((tex[0] > 0).sum()))
        gone = merge_gone(gone, decide_crowns(cr, sums, (t,), report, names, log, texture=texture))
    return gone
