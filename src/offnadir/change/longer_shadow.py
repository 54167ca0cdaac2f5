"""Longer shadows as gain evidence for their caster (numpy/scipy; the per-tile sums, the client's decision).

A roof raised after the DSM casts a longer shadow at the target date than the DSM predicts: under
the target's sun (elevation ``e``), a raise ``dz`` moves the shadow's far edge by ``dz / tan e``.
Per elevated patch (a roof or a tree of the old DSM) this module sums the target's evidence of
shadow over the patch's **fringe**: the cells the DSM predicts lit at the target (with every cell
within 1 predicted so too: one cell of discretisation at the predicted edge) that would be in the
patch's cast shadow were every elevated cell ``band * cell * tan e`` higher (``band`` cells of shadow
beyond the predicted edge; the caster found by the illumination kernel's own march,
:func:`offnadir.change.sun_kernels.caster_distances`, on the raised surface), usable in both images.
The evidence per cell is ``log f_s(x) / f_l(x)`` of the target's own shadow classifier
(:mod:`offnadir.change.shadow_observed`), so each patch's sum is the log likelihood ratio of "its
shadow grew" against "that ground is lit", the mirror of :mod:`offnadir.change.missing_shadow`.

:func:`fringe_sums` gives the per-patch sums over a window, :func:`tile_sums` the same per tile
in the sums pass (beside the missing-shadow sums), :func:`decide` the rule (the form of the
missing-shadow rule: ``L = min(S_t / 9, -S_0 / 9)``, a prior share estimated on the run's roofs by
EM, the fringe must look like shadow on average, and the target's classifier must call at least half
of its own training shadows shadow) and :func:`decide_targets` adds the roofs decided raised to the
roofs gone, whose cells the maps pass lifts to one half. On the hard simulator it finds the raised
roof of seed 1 that nothing else found (elevated F1 0.867 -> 0.964); most raised roofs there have no
fringe to test (their shadow ends on another roof, in another shadow or out of sight); on
Kahramanmaras it is inactive (the witness condition). Figures and reasons in
``docs/change_detection.md``, section "Longer shadows, cut trees and seed 5".
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from offnadir.change.group_kernels import unique_inverse  # np.unique(..., return_inverse=True), hashed
from offnadir.change import missing_shadow as MS

#: cells of extra shadow beyond the predicted edge that the fringe tests (see the module docstring)
BAND_CELLS = 4.0
#: least share of its own sure-shadow training cells the target's classifier must call shadow
#: (``accuracy_shadow``) for its "this fringe is shadow" to count: a classifier that calls most of the
#: shadows it was shown lit (Kahramanmaras' 2023 targets: 0.31 and 0.14; the hard simulator's targets
#: 0.56-0.91) finds "shadow" on dark materials, not on shadows
SHADOW_WITNESS = 0.5


@njit(cache=True, nogil=True, error_model="numpy")
def _blocked_distances(h, cand, rise, tol, hmax, oi, oj, ss, out):
    """The blocked passes of :func:`offnadir.change.sun_kernels.caster_distances` (its blocks, its
    8 x 8 block maxima, its skip test and its hit test, the same numbers) at the cells of ``cand``
    (-1 at the other cells of blocks without one; the other cells of a block with one are not
    wanted and may hold anything): each block holding a cell of ``cand`` runs over the rows and
    columns its ``cand`` cells span, and takes its break and skip tests from the lowest finite top
    of its ``cand`` cells (not of all its cells): it leaves the offsets once the ray from that top
    is within ``tol`` of the window's highest top, and skips an offset whose shifted block's maxima
    are within ``tol`` of the ray from it; a row of it skips the offset when the same holds from the
    lowest finite top of its ``cand`` cells in that row to the maxima of the 8-row band it samples. Exact at the ``cand`` cells: a higher top's ray is higher
    (float sums and differences are monotone), so no ``cand`` cell can hit where the tests skip.
    The offsets ``oi, oj, ss`` and the cell-by-cell march of the rows and columns whose rounding
    differs are the caller's (:func:`_core_distances`)."""
    ny, nx = h.shape
    bm = np.full(((ny + 7) >> 3, (nx + 7) >> 3), -np.inf)
    for i in range(ny):
        for j in range(nx):
            v = h[i, j]
            out[i, j] = -1.0
            if np.isfinite(v):
                bm[i >> 3, j >> 3] = max(bm[i >> 3, j >> 3], v)
    zlo = np.empty(8)  # the lowest finite top of each row's cand cells in the block (inf: none)
    mrow = np.empty(2)  # the highest top of each 8-row band the block samples at an offset
    for r0 in range(0, ny, 8):
        r1 = min(ny, r0 + 8)
        for c0 in range(0, nx, 32):
            c1 = min(nx, c0 + 32)
            zb = np.inf  # the block's lowest top as caster_distances takes it (a block it skips stays -1)
            zc = np.inf  # the lowest finite top of the block's cand cells, and the rows and columns they span
            ra, rb, ca, cb = r1, r0, c1, c0
            for i in range(r0, r1):
                zi = np.inf
                for j in range(c0, c1):
                    zb = min(zb, h[i, j])
                    if cand[i, j]:
                        v = h[i, j]
                        if v < zi:
                            zi = v
                        ra = min(ra, i)
                        rb = max(rb, i + 1)
                        ca = min(ca, j)
                        cb = max(cb, j + 1)
                zlo[i - r0] = zi
                zc = min(zc, zi)
            if ra >= rb or not zb < np.inf or not zc < np.inf:
                continue
            for n in range(oi.shape[0]):
                a = oi[n]
                b = oj[n]
                s = ss[n]
                sr = s * rise
                if hmax - (zc + sr) <= tol:  # m <= hmax, and zc + sr grows with n
                    break
                i0 = max(ra, -a)
                i1 = min(rb, ny - a)
                j0 = max(ca, -b)
                j1 = min(cb, nx - b)
                if i0 >= i1 or j0 >= j1:
                    continue
                m = -np.inf
                p0 = (i0 + a) >> 3
                for p in range(p0, ((i1 - 1 + a) >> 3) + 1):
                    mp = -np.inf
                    for q in range((j0 + b) >> 3, ((j1 - 1 + b) >> 3) + 1):
                        mp = max(mp, bm[p, q])
                    mrow[p - p0] = mp
                    m = max(m, mp)
                if m - (zc + sr) <= tol:
                    continue
                for i in range(i0, i1):
                    # the same test per row: its cand cells' lowest top, the band of maxima it samples
                    if mrow[((i + a) >> 3) - p0] - (zlo[i - r0] + sr) <= tol:
                        continue
                    hr = h[i + a]
                    zrow = h[i]
                    orow = out[i]
                    for j in range(j0, j1):
                        zr = zrow[j] + sr
                        hit = (zr < hmax) & (hr[j + b] - zr > tol) & (orow[j] < 0.0)
                        orow[j] = s if hit else orow[j]


def _core_distances(h, cand, rise, di, dj, tol, max_dist):
    """:func:`offnadir.change.sun_kernels.caster_distances` of ``h`` at the cells of ``cand`` (any
    value elsewhere): its offsets and rounding checks (called from here: a kernel calls kernels of
    its own file only), the blocked passes over the blocks that hold a cell of ``cand``
    (:func:`_blocked_distances`), the per-cell march where the rounding differs
    (:func:`~offnadir.change.sun_kernels.caster_distances_at`'s, at those cells:
    :func:`~offnadir.change.sun_kernels.march_cells`)."""
    from offnadir.change.sun_kernels import _regular, march_cells, ray_offsets

    ny, nx = h.shape
    fin = h[np.isfinite(h)]
    if not fin.size:
        return np.full(h.shape, -1.0)
    out = np.empty(h.shape)  # _blocked_distances writes -1 to every cell first
    hmax, zmin = float(fin.max()), float(fin.min())
    climb = (hmax - zmin) - tol + 1e-9 * (1.0 + abs(hmax) + abs(zmin))
    oi, oj, ss = ray_offsets(di, dj, max_dist, rise, climb, ny - 1, nx - 1)
    _blocked_distances(h, cand, rise, tol, hmax, oi, oj, ss, out)
    row_ok = _regular(ny, di, ny - 1, max_dist, rise, climb)
    col_ok = _regular(nx, dj, nx - 1, max_dist, rise, climb)
    odd = cand & ~(row_ok[:, None] & col_ok[None, :])
    if odd.any():  # caster_distances_at's march at those cells (hmax: the window's highest finite top, as there)
        oi_, oj_ = np.nonzero(odd)
        d = np.empty(len(oi_))
        march_cells(h, oi_.astype(np.int64), oj_.astype(np.int64), rise, di, dj, hmax, tol, max_dist, d)
        out[oi_, oj_] = d
    return out


def fringe(h, elevated_labels, codes_t, usable, cell: float, sun_az: float, sun_el: float, tol: float,
           max_dist: float, band: float = BAND_CELLS, core=None):
    """(rows, cols, caster labels) of the fringe cells (see the module docstring): lit under ``h``
    at the target (``codes_t`` 1..254 — no caster under ``h`` with the march's tolerance ``tol`` —,
    every cell within 1 so too), in the
    cast shadow of an elevated cell once every elevated cell (``elevated_labels > 0``) is raised by
    ``band * cell * tan(sun_el)``, and ``usable`` with every cell within 1 usable. ``sun_az`` is
    clockwise from the grid's north (rows up), radians.

    ``core``: ``(a0, a1, b0, b1)``, window rows and columns: the fringe cells in ``[a0, a1) x [b0, b1)``
    only (the same cells in the same order as those of the whole window that lie there), for less:
    the filter runs on the core and one cell around it, the march of the raised surface only on the
    blocks holding a core cell that the filter keeps (:func:`_core_distances`), and the rows and
    columns of the window on the core's side away from the sun are NaN to it. A ray
    from a core cell never samples them (``floor(i + s di + 1/2) >= i`` for ``di >= 0``, ``<= i``
    for ``di <= 0``, in floating point too), the cells keep their indices (the march's rounding is
    unchanged), and a smaller highest or larger lowest top only prunes samples that cannot block
    (``tol >= 0``), so the core's distances are those of the whole window."""
    from offnadir.change import shadow_observed as SO
    from offnadir.change.sun_kernels import caster_distances

    h = np.ascontiguousarray(h, np.float64)
    lab = np.asarray(elevated_labels)
    codes_t = np.asarray(codes_t)
    ny, nx = h.shape
    di, dj = -math.cos(sun_az), math.sin(sun_az)
    rise = math.tan(max(sun_el, 1e-6)) * cell
    # a cell the codes call lit has no caster under h (the same march and tolerance made the codes):
    # no march of h is needed
    h1 = np.where(lab > 0, h + band * rise, h)
    if core is not None and tol >= 0:
        a0, a1, b0, b1 = (int(v) for v in core)
        if di >= 0:
            h1[:a0] = np.nan
        if di <= 0:
            h1[a1:] = np.nan
        if dj >= 0:
            h1[:, :b0] = np.nan
        if dj <= 0:
            h1[:, b1:] = np.nan

    def sure(m):  # every cell within 1 so too; sure(a & b) == sure(a) & sure(b) for a minimum filter
        return SO.all_within(m, 1)

    if core is None:
        d1 = np.empty(h.shape)
        caster_distances(h1, rise, di, dj, float(tol), float(max_dist), d1)
        lit = (codes_t > 0) & (codes_t < 255)
        ii, jj = np.nonzero((d1 > 0) & sure(lit & np.asarray(usable, bool)))
    else:
        # the filter's values on the core depend on the cells within 1 of it: that crop, with the
        # window's own edges where it reaches them (mode "nearest" sees the same cells); the march
        # only where the fringe can be (those cells of the core)
        a0, a1, b0, b1 = (int(v) for v in core)
        r0, r1, c0, c1 = max(a0 - 1, 0), min(a1 + 1, ny), max(b0 - 1, 0), min(b1 + 1, nx)
        ct, us = codes_t[r0:r1, c0:c1], np.asarray(usable, bool)[r0:r1, c0:c1]
        cand = np.zeros(h.shape, bool)
        cand[a0:a1, b0:b1] = sure((ct > 0) & (ct < 255) & us)[a0 - r0:a1 - r0, b0 - c0:b1 - c0]
        d1 = _core_distances(h1, cand, rise, di, dj, float(tol), float(max_dist))
        ii, jj = np.nonzero((d1 > 0) & cand)
    d = d1[ii, jj]
    ci = ii + np.floor(d * di + 0.5).astype(np.int64)
    cj = jj + np.floor(d * dj + 0.5).astype(np.int64)
    ok = (ci >= 0) & (ci < ny) & (cj >= 0) & (cj < nx)
    ii, jj, ci, cj = ii[ok], jj[ok], ci[ok], cj[ok]
    lc = lab[ci, cj]
    keep = lc > 0
    return ii[keep], jj[keep], lc[keep]


def fringe_sums(h, elevated_labels, codes_t, usable, x_t, clf, cell: float, sun_az: float, sun_el: float,
                tol: float, max_dist: float, band: float = BAND_CELLS):
    """Per caster label over its :func:`fringe` cells: ``(ids, n, sum of log f_s(x) / f_l(x))`` of the
    target's intensities ``x_t`` (y, x) under its classifier ``clf`` (no prior)."""
    ii, jj, lc = fringe(h, elevated_labels, codes_t, usable, cell, sun_az, sun_el, tol, max_dist, band)
    x = np.asarray(x_t, np.float64)[ii, jj]
    fin = np.isfinite(x)
    llr = clf.cell_log_odds(x[fin]) - clf.prior
    ids, inv = unique_inverse(lc[fin])
    return ids, np.bincount(inv, minlength=len(ids)), np.bincount(inv, llr, minlength=len(ids))


def decide(n, s, clf, n0=None, s0=None) -> np.ndarray:
    """P(raised) per patch from :func:`fringe_sums`' ``n`` and ``s`` (the target's) and, when given,
    ``n0`` and ``s0`` (the base's, its own sun): ``L = min(S / 9, -S_0 / 9)`` (``S / 9`` where the base
    has no fringe cells), ``sigmoid(L + log pi/(1-pi))`` with the prior share ``pi`` estimated by EM on
    the patches' ``L`` (:func:`offnadir.change.missing_shadow.prior_log_odds`); 0 where the fringe's
    mean ``log f_s / f_l`` does not reach the classifier's midpoint (it must look like shadow, not
    merely a little darker than lit ground); 0 everywhere when the classifier misses most of its own
    training shadows (:data:`SHADOW_WITNESS`). ``-S_0``: at the DSM's date the caster's shadow must end
    where the DSM says (its base fringe lit); a DSM lower than the caster (a smoothed roof edge, a
    tree crown) leaves a shadow beyond the prediction at every date, which says nothing of a change."""
    n = np.asarray(n, np.float64)
    s = np.asarray(s, np.float64)
    if not len(n) or clf is None or not clf.accuracy_shadow >= SHADOW_WITNESS:
        return np.zeros(len(n))
    llr = s / MS.CORRELATED
    if n0 is not None:
        n0, s0 = np.asarray(n0, np.float64), np.asarray(s0, np.float64)
        llr = np.where(n0 > 0, np.minimum(llr, -s0 / MS.CORRELATED), llr)
    prior = MS.prior_log_odds(llr)
    post = 1.0 / (1.0 + np.exp(-np.clip(llr + prior, -50.0, 50.0)))
    mid = -MS.midpoint(clf)  # halfway between the classes' mean log f_s / f_l
    with np.errstate(invalid="ignore", divide="ignore"):
        looks_shadow = s / np.maximum(n, 1) >= mid
    return np.where(looks_shadow & (n > 0), post, 0.0)


def tile_sums(io, ctx, tile, keep=None, band: float = BAND_CELLS):
    """Per elevated patch (the caster) and image (the base and each target): ``n`` fringe cells of
    the tile's core and their summed ``log f_s / f_l`` (:func:`fringe_sums`; the same numbers
    whatever the tiling: the window holds the sun halo of the surface raised by ``band`` cells of
    shadow, and one cell more for the margin). Returns the grouped table ``{"ids", "rows":
    {"lsh_n": (m, images), "lsh_s": (m, images)}}`` (empty without a sun or a target classifier).
    ``keep["value"]``: the core's values, when read."""
    from offnadir.change.tileio import Window

    classes = getattr(ctx, "shadow_classes", ()) or ()
    n_img = ctx.n_images
    empty = {"ids": np.zeros(0, np.int64), "rows": {"lsh_n": np.zeros((0, n_img)), "lsh_s": np.zeros((0, n_img))}}
    targets = [t for t in ctx.targets if t < len(classes) and classes[t] is not None]
    if not ctx.use_sun or not targets:
        return empty
    if classes[0] is not None:  # the base's own fringe (its sun): the DSM's prediction confirmed there
        targets = [0] + targets
    sh = ctx.sun_halo() + int(math.ceil(band)) + 2
    w = Window.around(tile, sh, ctx.shape)
    h = np.ascontiguousarray(io.read("dsm", w.yx), np.float64)
    lab = np.where(io.read("elevated", w.yx) == 1, io.read("patch", w.yx), 0)
    ill = io.read("illumination", (slice(None),) + w.yx)
    vis = io.read("visible", (slice(None),) + w.yx)
    if keep is not None and "value" in keep:
        val = keep["value"]
    else:
        val = io.read("value", (slice(None), slice(None), slice(tile.i0, tile.i1),
                                slice(tile.j0, tile.j1))).astype(np.float64)
    a0, a1, b0, b1 = w.core
    parts = []
    for t in targets:
        az, el = ctx.sun[t]
        usable = (vis[0] == 1) & (vis[t] == 1)  # the base: visible there
        ii, jj, lc = fringe(h, lab, ill[t], usable, ctx.cell, az, el, float(ctx.opts.sun_tolerance), float(sh), band,
                            core=(a0, a1, b0, b1))
        rng = ctx.sun_range[t] if t < len(getattr(ctx, "sun_range", ())) else None
        if rng is not None and len(ii):  # lit over the sun's whole range (change.sun_range)
            from offnadir.change import sun_range as SR

            lit = SR.held_over_range(h, ii, jj, ctx.sun[t], rng, ctx.cell, float(ctx.opts.sun_tolerance), sh, False)
            if lit is not None:
                ii, jj, lc = ii[lit], jj[lit], lc[lit]
        x = np.asarray(val[t], np.float64)[:, ii - a0, jj - b0].mean(axis=0)
        fin = np.isfinite(x)
        llr = classes[t].cell_log_odds(x[fin]) - classes[t].prior
        ids, inv = unique_inverse(lc[fin])
        rn, rs = np.zeros((len(ids), n_img)), np.zeros((len(ids), n_img))
        rn[:, t] = np.bincount(inv, minlength=len(ids))
        rs[:, t] = np.bincount(inv, llr, minlength=len(ids))
        parts.append({"ids": ids, "rows": {"lsh_n": rn, "lsh_s": rs}})
    return MS.add_sums(*parts) if parts else empty


def decide_targets(sums, gone: dict, targets, clfs, names=None, report=None, log=None) -> dict:
    """Adds the roofs decided raised (:func:`decide` on the ``lsh_`` columns of the sums pass) to
    ``gone`` (per target ``(ids, P)``, :func:`offnadir.change.missing_shadow.decide`): ``P`` becomes
    the larger of the two, so the maps pass lifts either roof's cells to one half. Logged, and
    recorded in the target's entry of ``report`` as ``longer_shadows``. Returns ``gone``."""
    import logging

    log = log or logging.getLogger("offnadir.change.longer_shadow")
    rows = sums.get("rows", {}) if sums else {}
    if "lsh_n" not in rows or not len(sums["ids"]):
        return gone
    ids = np.asarray(sums["ids"])
    for t in targets:
        clf = clfs[t] if t < len(clfs) else None
        n, s = rows["lsh_n"][:, t], rows["lsh_s"][:, t]
        tested = n > 0
        if clf is None or not tested.any():
            continue
        post = np.zeros(len(ids))
        n0, s0 = (rows["lsh_n"][:, 0], rows["lsh_s"][:, 0]) if t != 0 else (None, None)
        post[tested] = decide(n[tested], s[tested], clf, None if n0 is None else n0[tested],
                              None if s0 is None else s0[tested])
        raised = int((post >= 0.5).sum())
        if t in gone:  # the missing-shadow decision on the same table (its ids, or a subset of them)
            g_ids, g_p = gone[t]
            full = np.zeros(len(ids))
            full[np.searchsorted(ids, g_ids)] = g_p
            post = np.maximum(post, full)
        gone[t] = (ids, post)
        witness = bool(clf.accuracy_shadow >= SHADOW_WITNESS)
        rec = dict(casters_tested=int(tested.sum()), casters_raised=raised, band_cells=BAND_CELLS,
                   classifier_accuracy_shadow=float(clf.accuracy_shadow), shadow_witness=witness,
                   rule="roofs whose cast shadow reaches beyond the DSM's prediction (seen shadowed there at the "
                        "target): cells changed, except where a same-date pair measured dh")
        if report is not None and t < len(report):
            report[t]["longer_shadows"] = rec
        name = names[t] if names is not None else t
        if not witness:
            log.info("%s: longer-shadow rule inactive: the image's shadow classifier calls only %.2f of its own "
                     "training shadows shadow (< %.2f), so a dark fringe is no witness of a shadow", name,
                     clf.accuracy_shadow, SHADOW_WITNESS)
            continue
        log.info("%s: %d of %d roofs' cast shadows reach beyond the DSM's prediction (%g cells tested): gain "
                 "evidence for those roofs", name, rec["casters_raised"], rec["casters_tested"], BAND_CELLS)
    return gone
