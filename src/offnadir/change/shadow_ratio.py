"""The missing-shadow rule's gone casters read on the cross-date ratio of their shadow (numpy; the
client's crops after :func:`offnadir.change.missing_shadow.decide`).

With one image per date the missing-shadow rule reads a shadow's intensity against the target's
classifier pooled over the image's ground: a shadow on bright ground reads "lit", and an unchanged
flat roof whose shadow is there was decided gone (hard simulator 1024² seeds 0-2: 5294 unchanged-roof
cells after the rim veto). The ground under an unchanged caster's shadow is the same surface at both
dates, so per cell the ratio ``r = log x_t - log x_0`` of the two images' band means cancels its
albedo. Two classes from the run's own cells (:func:`classes`, the sure-cell rule of
:func:`offnadir.change.shadow_observed.training_classes`):

* ``A``: predicted sure shadow in the base and in the target (the shadow stayed);
* ``B``: sure shadow in the base, sure lit in the target: the cells the sun's move between the dates
  lit, which change light as a gone caster's shadow does.

:func:`calibrate` turns them into a classifier (:func:`~offnadir.change.shadow_observed.calibrate`,
margin 0: the classes are sure already), calibrated beside each image's shadow classifier on the same
central window (:func:`offnadir.change.illumination.shadow_classifiers`); None without a ``B`` class
(no sun move: Kahramanmaraş, the same season; the rule then runs as without it).

**The veto** (:func:`veto`): for each caster the rule decided gone, its **sole** cells (:func:`sole_sums`):
the cells of its target shadow that are sure shadow at both dates and that the target's sun leaves
lit once the caster is lowered to its ground (the median DSM over the non-elevated cells within 3
cells of it) — a cell another object shades too says nothing of this one (demolished roofs whose old
shadow another old object still casts were vetoed over all cells). Where at least
:data:`~offnadir.change.missing_shadow.CORRELATED` sole cells (one independent observation) have a
mean ``log f_B(r) / f_A(r)`` below the ratio classifier's midpoint
(:func:`~offnadir.change.missing_shadow.midpoint`, halfway between the two classes' means), the
shadow stayed: ``P(gone) -> 0``. No constant is fitted. Each caster is read on a crop (its bounding
box and the longest shadow the relief casts, :func:`crop_reach`), never the whole grid: the
caster's box comes from the patch table's plane sums (centroid, spread) and is grown until the roof
no longer touches the crop's edge (:func:`roof_box`). Measured (issue 7, u4 and u8 thirteenth round;
``benchmarks/eval_shadow_ratio.py`` offline) in ``docs/change_detection.md``.
"""

from __future__ import annotations

import math

import numpy as np

from offnadir.change import missing_shadow as MS
from offnadir.change import shadow_observed as SO

#: cells added to the relief's longest shadow around a caster's box (the shadow's blur and the
#: sure-cell margin, :data:`~offnadir.change.shadow_observed.MARGIN`, with room)
REACH_PAD = 6
#: the ring of ground around a caster (cells) whose median DSM is the caster lowered
RING = 3


# ----------------------------------------------------------------------------- numbers (numpy)
def log_ratio(x0, xt):
    """``log x_t - log x_0`` per cell (NaN where either is not positive or finite)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(np.asarray(xt, np.float64)) - np.log(np.asarray(x0, np.float64))
    return np.where(np.isfinite(r), r, np.nan)


def classes(r, codes0, codest, vis0, vist):
    """``(A, B)``: sure shadow at both dates; sure shadow at the base and sure lit at the target
    (:func:`offnadir.change.shadow_observed.training_classes` on each image's codes, visible and
    ``r`` finite)."""
    ok = np.isfinite(r)
    s0, _ = SO.training_classes(codes0, (np.asarray(vis0) == 1) & ok)
    st, lt = SO.training_classes(codest, (np.asarray(vist) == 1) & ok)
    return s0 & st, s0 & lt


def calibrate(r, A, B):
    """The binned monotone classifier of ``A`` (as its "shadow" class) against ``B`` (as "lit") on
    ``r``; None with too few cells in a class (:data:`~offnadir.change.shadow_observed.MIN_CELLS`)."""
    codes = np.full(np.shape(r), 255, np.uint8)
    codes[A] = 0
    codes[B] = 1
    return SO.calibrate(r, codes, A | B, margin=0)


def crop_reach(relief: float, sun_el: float, cell: float) -> int:
    """Cells around a caster's box that hold its longest shadow: the relief's, plus :data:`REACH_PAD`."""
    return int(relief / (math.tan(max(sun_el, 1e-3)) * cell)) + REACH_PAD


def sole_sums(h, lab, elevated, r, A, c: int, cell: float, sun_az: float, sun_el: float, tol: float,
              max_dist: float, clf):
    """``(n, sum of log f_B(r) / f_A(r))`` over caster ``c``'s sole cells on a crop holding its box and
    its longest shadow (``h`` DSM, ``lab`` patch IDs on elevated cells and 0 elsewhere, ``elevated``,
    ``r`` and ``A`` as :func:`classes`; the sun on the grid in radians; ``max_dist`` the march's
    reach): the cells of ``A`` whose first caster towards the sun is ``c`` (the missing-shadow sums'
    march, :func:`offnadir.change.sun_kernels.march_cells`) and which the sun lights once ``c`` is
    lowered to the median DSM of the ground within :data:`RING` cells: no top above the ray (the same
    march on the lowered crop) and the surface facing the sun (the illumination kernel's normal, on
    the cells' box only). The numbers of the illumination kernel over the whole lowered crop."""
    from scipy import ndimage

    from offnadir.change.sun_kernels import illumination, march_cells, window_top

    h = np.ascontiguousarray(h, np.float64)
    roof = lab == c
    if not roof.any():
        return 0, 0.0
    ii, jj = np.nonzero(A)
    if not len(ii):
        return 0, 0.0
    di, dj = -math.cos(sun_az), math.sin(sun_az)
    rise = math.tan(max(sun_el, 1e-6)) * cell
    d = np.empty(len(ii))
    march_cells(h, ii.astype(np.int64), jj.astype(np.int64), rise, di, dj, window_top(h), float(tol),
                float(max_dist), d)
    ci = ii + np.floor(d * di + 0.5).astype(np.int64)
    cj = jj + np.floor(d * dj + 0.5).astype(np.int64)
    ok = (d > 0) & (ci >= 0) & (ci < h.shape[0]) & (cj >= 0) & (cj < h.shape[1])
    ii, jj, ci, cj = ii[ok], jj[ok], ci[ok], cj[ok]
    mine = lab[ci, cj] == c
    ii, jj = ii[mine], jj[mine]
    if not len(ii):
        return 0, 0.0
    ring = ndimage.binary_dilation(roof, iterations=RING) & ~roof & (np.asarray(elevated) != 1)
    if not ring.any():
        return 0, 0.0
    low = h.copy()
    low[roof] = np.nanmedian(h[ring])
    # lit once lowered: nothing above the ray (the kernel's march over the crop, cells listed) ...
    d = np.empty(len(ii))
    march_cells(low, ii.astype(np.int64), jj.astype(np.int64), rise, di, dj, window_top(low), float(tol),
                float(max(h.shape)), d)
    # ... and facing the sun: the kernel without its march (max_dist 0) on the cells' box and one cell
    # around it, the same normals as over the crop (the box's inner cells are the crop's inner cells)
    i0, i1 = max(int(ii.min()) - 1, 0), min(int(ii.max()) + 2, h.shape[0])
    j0, j1 = max(int(jj.min()) - 1, 0), min(int(jj.max()) + 2, h.shape[1])
    codes = np.empty((i1 - i0, j1 - j0), np.uint8)
    illumination(np.ascontiguousarray(low[i0:i1, j0:j1]), cell, sun_az, sun_el, float(tol), 1.0, 0.0, codes)
    cc = codes[ii - i0, jj - j0]
    lit = (d < 0) & (cc > 0) & (cc < 255)
    rr = np.asarray(r)[ii[lit], jj[lit]]
    if not len(rr):
        return 0, 0.0
    return int(len(rr)), float(np.sum(-(clf.cell_log_odds(rr) - clf.prior)))


def vetoed(n, s, clf) -> bool:
    """Does the caster's shadow read as having stayed: at least one independent observation
    (:data:`~offnadir.change.missing_shadow.CORRELATED` sole cells) whose mean is below the
    classifier's midpoint?"""
    return bool(clf is not None and n >= MS.CORRELATED and s / n < MS.midpoint(clf))


def box_guess(plane_row, shape, grow: float = 1.0):
    """A first box ``(i0, i1, j0, j1)`` of a patch from its plane sums (``n, Sx, Sy, Sz, Sxx, Syy,
    ...``, :func:`offnadir.change.crown.plane_sums`): the centroid +- sqrt(3) standard deviations
    (a uniform spread's half width) + 2 cells, times ``grow``."""
    n, sx, sy, _, sxx, syy = (float(v) for v in plane_row[:6])
    if n <= 0:
        return None
    mi, mj = sy / n, sx / n
    hi = grow * (math.sqrt(3.0 * max(syy / n - mi * mi, 0.0)) + 2.0)
    hj = grow * (math.sqrt(3.0 * max(sxx / n - mj * mj, 0.0)) + 2.0)
    return (max(int(math.floor(mi - hi)), 0), min(int(math.ceil(mi + hi)) + 1, shape[0]),
            max(int(math.floor(mj - hj)), 0), min(int(math.ceil(mj + hj)) + 1, shape[1]))


# ----------------------------------------------------------------------------- glue (store reads)
def roof_box(io, c: int, plane_row, shape, tries: int = 6):
    """Patch ``c``'s exact bounding box ``(i0, i1, j0, j1)`` on the grid (elevated cells), read on
    crops from :func:`box_guess`, doubled while the roof touches a crop edge inside the grid; None
    when it is not found."""
    grow = 1.0
    for _ in range(tries):
        b = box_guess(plane_row, shape, grow)
        if b is None:
            return None
        i0, i1, j0, j1 = b
        yx = (slice(i0, i1), slice(j0, j1))
        roof = (np.asarray(io.read("patch", yx)) == c) & (np.asarray(io.read("elevated", yx)) == 1)
        ii, jj = np.nonzero(roof)
        if not len(ii):
            grow *= 2.0
            continue
        touch = ((ii.min() == 0 and i0 > 0) or (ii.max() == i1 - i0 - 1 and i1 < shape[0])
                 or (jj.min() == 0 and j0 > 0) or (jj.max() == j1 - j0 - 1 and j1 < shape[1]))
        if not touch:
            return i0 + int(ii.min()), i0 + int(ii.max()) + 1, j0 + int(jj.min()), j0 + int(jj.max()) + 1
        grow *= 2.0
    return None


def caster_crop(io, box, reach: int, shape, t: int, sun_az: float):
    """The arrays :func:`sole_sums` reads, on ``box`` widened by ``reach`` (clipped to the grid):
    ``(h, lab, elevated, r, A, (i0, j0))``, ``A`` and ``r`` of the base and target ``t``. The images
    are read where the caster's shadow can fall only (the box widened by ``reach`` down-sun along each
    axis, by the sure-cell margin and one cell up-sun): ``A`` is False and ``r`` NaN elsewhere."""
    i0, i1, j0, j1 = box
    I0, I1 = max(i0 - reach, 0), min(i1 + reach, shape[0])
    J0, J1 = max(j0 - reach, 0), min(j1 + reach, shape[1])
    yx = (slice(I0, I1), slice(J0, J1))
    h = np.asarray(io.read("dsm", yx), np.float64)
    elev = np.asarray(io.read("elevated", yx))
    lab = np.where(elev == 1, io.read("patch", yx), 0).astype(np.int64)
    # the shadow side: rows / columns opposite the sun (di, dj its direction in rows, columns)
    di, dj = -math.cos(sun_az), math.sin(sun_az)
    pad = SO.MARGIN + 2
    si0 = max(i0 - (int(math.ceil(reach * max(di, 0.0))) + pad), I0)
    si1 = min(i1 + int(math.ceil(reach * max(-di, 0.0))) + pad, I1)
    sj0 = max(j0 - (int(math.ceil(reach * max(dj, 0.0))) + pad), J0)
    sj1 = min(j1 + int(math.ceil(reach * max(-dj, 0.0))) + pad, J1)
    sub = (slice(si0, si1), slice(sj0, sj1))
    codes = [np.asarray(io.read("illumination", (k,) + sub)) for k in (0, t)]
    vis = [np.asarray(io.read("visible", (k,) + sub)) for k in (0, t)]
    x = [np.asarray(io.read("value", (k, slice(None)) + sub), np.float64).mean(axis=0) for k in (0, t)]
    rs = log_ratio(x[0], x[1])
    As, _ = classes(rs, codes[0], codes[1], vis[0], vis[1])
    r = np.full(h.shape, np.nan)
    A = np.zeros(h.shape, bool)
    at = (slice(si0 - I0, si1 - I0), slice(sj0 - J0, sj1 - J0))
    r[at], A[at] = rs, As
    return h, lab, elev, r, A, (I0, J0)


def veto(gone: dict, io, ctx, patch_table, report, names=None, log=None) -> dict:
    """``gone`` (per target ``(ids, P)``, :func:`offnadir.change.missing_shadow.decide`) with ``P -> 0``
    for the casters decided gone whose sole cells say their shadow stayed (module docstring). Needs the
    target's ratio classifier (``report[t]["shadow_ratio_classifier"]``) and the patch table's plane
    sums (``patch_table["rows"]["plane"]``); without them the decisions are kept. The count is logged
    and recorded in ``report[t]["missing_shadows"]``."""
    import logging

    log = log or logging.getLogger("offnadir.change.shadow_ratio")
    rows = (patch_table or {}).get("rows", {}) if patch_table is not None else {}
    pids = np.asarray(patch_table["ids"]) if patch_table is not None else np.zeros(0, np.int64)
    shape = tuple(ctx.shape)
    relief = float(ctx.h_range[1] - ctx.h_range[0]) if np.all(np.isfinite(ctx.h_range)) else 0.0
    tol = float(ctx.opts.sun_tolerance)
    out = dict(gone)
    for t, (ids, post) in gone.items():
        rec = (report[t] if report is not None and t < len(report) else {}) or {}
        cr = rec.get("shadow_ratio_classifier")
        clf = SO.ShadowClassifier.from_report(cr) if cr else None
        cand = np.nonzero(np.asarray(post) >= 0.5)[0]
        name = names[t] if names is not None else str(t)
        msh = rec.setdefault("missing_shadows", {}) if report is not None and t < len(report) else {}
        if clf is None or "plane" not in rows or not len(cand):
            msh["ratio_vetoed"] = None if clf is None else 0
            if clf is None and len(cand):
                log.info("%s: no cross-date shadow ratio classifier (no cells the sun's move lit): the %d roofs "
                         "decided gone by their missing shadow are kept", name, len(cand))
            continue
        az, el = ctx.sun[t]
        reach = crop_reach(relief, el, ctx.cell)
        post = np.array(post, np.float64)
        n_veto, read = 0, 0
        for k in cand:
            c = int(ids[k])
            j = int(np.searchsorted(pids, c))
            if j >= len(pids) or pids[j] != c:
                continue
            box = roof_box(io, c, rows["plane"][j], shape)
            if box is None:
                continue
            h, lab, elev, r, A, _ = caster_crop(io, box, reach, shape, t, az)
            read += 1
            n, s = sole_sums(h, lab, elev, r, A, c, ctx.cell, az, el, tol, float(max(shape)), clf)
            if vetoed(n, s, clf):
                post[k] = 0.0
                n_veto += 1
        out[t] = (ids, post)
        msh["ratio_vetoed"] = n_veto
        mid = MS.midpoint(clf)
        msh["ratio_midpoint"] = mid if math.isfinite(mid) else None  # JSON: no infinities
        if "casters_gone" in msh:
            msh["casters_gone"] = int((post >= 0.5).sum())
        log.info("%s: %d of the %d roofs decided gone by their missing shadow kept: at least %d of their own shadow "
                 "cells (shadowed by no other object) change light between the dates as shadow at both dates does "
                 "(cross-date ratio below the midpoint %.3f of its classes; %d crops read)", name, n_veto, len(cand),
                 int(MS.CORRELATED), MS.midpoint(clf), read)
    return out
