"""The facade test as an object-level decision (issue 7, t1 twelfth round; measured offline with
``eval_shadow_ray.py``'s ``fobj*`` variants).

s3 (eleventh round) found the new building's sensor-side wall in the target's ortho on the old DSM: a dark
strip ``H tan(off-nadir)`` wide (a run of ``U``, the shadow ray's unexplained seen shadows, along the lean,
ending in a step to a lit roof; :func:`_shadow_ray_rays.facade_strips`), but a per-cell likelihood ratio
calibrated on the run's own decisions could not give it weight. Here the decision is per candidate object
and its null comes from the run's own strips read in directions that have no physical meaning:

* candidates: the target's segments (:func:`eval_target_segments.target_segments`, the segment pass's SLIC
  on the target's ground cells), each a candidate displaced roof ``A``;
* per direction ``phi`` (the lean or a control), ``hits(A, phi)`` = the outline cells of ``A`` on the side
  ``phi`` comes from (towards the sensor for the lean) at which a strip read along ``phi`` starts (``A``
  holds facade and roof) or ends just outside (``A`` is the roof alone); ``share`` = hits over those
  outline cells; ``L(A)`` = the hits' mean strip length (the height ``H = L cell / tan(off-nadir)``);
* statistic ``T(A, phi)``: the hits (``fobj``: wall rows seen, a wall several rows long), or the hits where
  at least half the outline is hit (``fobj_share``);
* null: the same statistic read across the lean (``phi = lean +- 90 deg``: 2 draws per segment, the run's
  own strips, nothing calibrated on the decisions); per ``t`` the tail false-discovery share
  ``fdr(t) = (N_null(T >= t) / 2) / N_test(T >= t)``, made monotone from the top (q-values); the object's
  probability ``pi(A) = 1 - fdr(T(A))``, at least ``MIN_HITS`` rows;
* where ``pi >= 1/2`` (the decision's own half: at most half of the objects passing at that level are
  expected to be null draws) the candidate footprint ``A`` and ``A`` shifted back by ``L`` along the lean
  (its ground line from the strip start) becomes change: ``p = max(p, pi)`` on its ground cells.

Controls (``_perp`` / ``_against``): the test direction turned a quarter / reversed, its null read across
it as above.

``fobj_comp*`` (:func:`wall_object_probability`): the object is a wall, the rows of same-width strips joined
across the lean (:func:`wall_components`), its statistic the rows; ``_ctr`` counts a wall (in the test and in the
null alike) only where the fine window's log ratio on the roof side exceeds that on the ground line's side
(:func:`side_contrast`: a new roof differs from the base, the ground before its wall does not; this breaks the
strip test's symmetry under the reversed lean); ``_rows`` puts the footprint per wall row (:func:`rows_footprint`)
instead of on the roof segment and its shift. What they found: docs/change_detection.md, t1 twelfth round.
"""

from __future__ import annotations

import math

import numpy as np

from _shadow_ray_rays import _step, facade_strips, lean_and_bright, shift, wall_ends

MIN_HITS = 2  # a wall is more than one row


def segment_hits(lab, U, bright, az, k, wall=False):
    """Per segment label: (outline cells on the side ``az`` comes from, hits, mean strip length)."""
    strip, end, length = facade_strips(U, bright, az, max(2, k // 2), 2 * k, parts=True)
    if wall:  # the strip's end has a neighbour across the lean ending a strip of the same width (s3's _wall)
        end = wall_ends(end, length, az)
    n = int(lab.max()) + 1
    di, dj = _step(az, 1)
    near = (lab > 0) & (shift(lab, -di, -dj) != lab)
    start_len = np.zeros(lab.shape, np.int32)
    for ell in range(max(2, k // 2), 2 * k + 1):  # a strip's first cell at the outline
        a, b = _step(az, ell - 1)
        start_len = np.maximum(start_len, shift(np.where(end & (length == ell), ell, 0).astype(np.int32), a, b))
    end_len = shift(np.where(end, length, 0).astype(np.int32), -di, -dj)  # its last cell just outside
    hl = np.where(start_len > 0, start_len, end_len)
    hit = near & (hl > 0)
    cn = np.bincount(lab[near], minlength=n).astype(np.float64)
    ch = np.bincount(lab[hit], minlength=n).astype(np.float64)
    w = np.bincount(lab[hit], weights=hl[hit].astype(np.float64), minlength=n)
    L = np.where(ch > 0, np.rint(w / np.maximum(ch, 1)), 0).astype(int)
    cn[0] = ch[0] = 0
    return cn, ch, L


def statistic(cn, ch, name):
    share = np.where(cn > 0, ch / np.maximum(cn, 1), 0.0)
    if "share" in name:
        return np.where(share >= 0.5, ch, 0.0)
    return ch


def tail_fdr(t_test, t_null, n_draws, pseudo=0.0):
    """Per test value: the q-value (tail false-discovery share) against ``n_draws`` null draws per candidate;
    ``pseudo`` null objects added to every tail count (``_half``: 1/2, the ray tables' counts + 1/2)."""
    vals = np.unique(t_test[t_test >= MIN_HITS])
    q = np.ones(t_test.shape)
    if vals.size == 0:
        return q
    nt = np.array([(t_test >= v).sum() for v in vals], np.float64)
    nn = (np.array([(t_null >= v).sum() for v in vals], np.float64) + pseudo) / n_draws
    f = np.minimum(1.0, nn / nt)
    f = np.minimum.accumulate(f)  # q-value: the smallest tail share of a rejection set holding the object
    idx = np.searchsorted(vals, t_test)
    ok = t_test >= MIN_HITS
    q[ok] = f[idx[ok]]
    return q


def object_probability(d, name, U):
    """(pi per cell, info): the object test's probability on the candidate footprints passing it (0 elsewhere)."""
    from eval_target_segments import target_segments

    az, k, bright = lean_and_bright(d, name, U)  # _against / _perp turn the test direction
    if "lab" not in d:
        d["lab"] = target_segments(d["target"], d["dsm"], d["ok_t"], ~d["elev"])
    lab = d["lab"]
    wall = "wall" in name
    cn, ch, L = segment_hits(lab, U, bright, az, k, wall)
    t_test = statistic(cn, ch, name)
    nulls = []
    for side in (math.pi / 2, -math.pi / 2):
        cn0, ch0, _ = segment_hits(lab, U, bright, az + side, k, wall)
        nulls.append(statistic(cn0, ch0, name))
    t_null = np.concatenate([x[1:] for x in nulls])
    q = tail_fdr(t_test, t_null, 2)
    pi = 1.0 - q
    pi[0] = 0.0
    passed = pi >= 0.5
    pc = np.zeros(lab.shape)
    for ell in np.unique(L[passed]):
        sel = np.where(passed & (L == ell), pi, 0.0)
        on = sel[lab]
        dl, dm = _step(az, int(ell))
        pc = np.maximum(pc, np.maximum(on, shift(on, dl, dm)))  # A and A shifted back by L (its ground line)
    thr = None
    if passed.any():
        thr = int(t_test[passed].min())
    info = dict(fobj_K=k, segments=int(lab.max()), tested=int((t_test >= MIN_HITS).sum()),
                null_ge2=int((t_null >= MIN_HITS).sum()), passed=int(passed.sum()), threshold=thr,
                footprint_cells=int((pc > 0).sum()))
    return pc, info


def wall_components(U, bright, az, k):
    """The walls read along ``az``: strip ends (:func:`facade_strips`, runs of ``K/2 .. 2K``) that have a
    neighbour across ``az`` (or one cell along it) ending a strip of the same width within a cell (s3's
    ``_wall``), joined 8-connected into components. Returns (labels of the end cells, rows per label, the
    strip length per end cell)."""
    from scipy import ndimage as ndi

    strip, end, length = facade_strips(U, bright, az, max(2, k // 2), 2 * k, parts=True)
    lab, n = ndi.label(wall_ends(end, length, az), structure=np.ones((3, 3), bool))
    rows = np.bincount(lab.ravel(), minlength=n + 1)
    rows[0] = 0
    return lab, rows, length


def wall_object_probability(d, name, U):
    """(pi per cell, info), ``fobj_comp*``: the object is a wall component (:func:`wall_components`), its
    statistic the rows it spans, its null the components read across the lean (2 draws); a passing wall's
    probability ``1 - q`` goes to its strips, to the target segment its roof step lands on and to that segment
    shifted back by the wall's mean strip length (the footprint from its ground line)."""
    from eval_target_segments import target_segments

    az, k, bright = lean_and_bright(d, name, U)
    lab_w, rows, length = wall_components(U, bright, az, k)
    nulls = [wall_components(U, bright, az + side, k) for side in (math.pi / 2, -math.pi / 2)]
    if "ctr" in name and d.get("fine") is not None:  # the roof side must differ from the base more than the ground side
        logr = np.where(np.isfinite(d["fine"]) & ~d["elev"], np.log(np.maximum(d["fine"], 1e-12)), 0.0)
        rows = np.where(side_contrast(lab_w, rows, length, logr, az, k) > 0, rows, 0)
        nulls = [(lw, np.where(side_contrast(lw, rw, ln, logr, az + side, k) > 0, rw, 0), ln)
                 for (lw, rw, ln), side in zip(nulls, (math.pi / 2, -math.pi / 2))]
    t_null = np.concatenate([x[1][1:] for x in nulls])
    q = tail_fdr(rows.astype(np.float64), t_null.astype(np.float64), 2, 0.5 if "half" in name else 0.0)
    pi = 1.0 - q
    pi[0] = 0.0
    passed = pi >= 0.5
    pc = np.zeros(lab_w.shape)
    info = dict(fobj_K=k, walls=int((rows >= MIN_HITS).sum()), null_walls=int((t_null >= MIN_HITS).sum()),
                passed=int(passed.sum()), threshold=int(rows[passed].min()) if passed.any() else None,
                pi_max=round(float(pi.max()), 3))
    if not passed.any():
        return pc, dict(info, footprint_cells=0)
    if "lab" not in d:
        d["lab"] = target_segments(d["target"], d["dsm"], d["ok_t"], ~d["elev"])
    seg = d["lab"]
    ends = passed[lab_w] & (lab_w > 0)
    ii, jj = np.nonzero(ends)
    c = lab_w[ii, jj]
    Lc = np.rint(np.bincount(c, weights=length[ii, jj], minlength=rows.size) / np.maximum(rows, 1)).astype(int)
    a, b = _step(az, 1)
    ny, nx = seg.shape
    ri, rj = np.clip(ii + a, 0, ny - 1), np.clip(jj + b, 0, nx - 1)
    roof = seg[ri, rj]
    if "rows" in name:  # the footprint per wall row: the roof run in its segment, shifted back by the strip
        pc = rows_footprint(seg, ii, jj, length[ii, jj], pi[c], roof, az, k)
        return pc, dict(info, footprint_cells=int((pc > 0).sum()))
    for ell in np.unique(Lc[c]):
        m = (Lc[c] == ell) & (roof > 0)
        if not m.any():
            continue
        keys, inv = np.unique(roof[m], return_inverse=True)
        best = np.zeros(keys.size)
        np.maximum.at(best, inv, pi[c[m]])
        on = np.zeros(seg.shape)
        sel = np.isin(seg, keys)
        on[sel] = best[np.searchsorted(keys, seg[sel])]
        dl, dm = _step(az, int(ell))
        pc = np.maximum(pc, np.maximum(on, shift(on, dl, dm)))
    strip = np.zeros(seg.shape)  # the strips of passing walls: back from each end over its run
    pe = np.where(ends, pi[lab_w], 0.0)
    for kk in range(0, 2 * k):
        a2, b2 = _step(az, -kk)
        strip = np.maximum(strip, shift(np.where(length > kk, pe, 0.0), -a2, -b2))
    pc = np.maximum(pc, strip)
    return pc, dict(info, footprint_cells=int((pc > 0).sum()))


def side_contrast(lab_w, rows, length, logr, az, k):
    """Per wall component: the mean over its rows of the fine window's log ratio over the ``k`` cells past the
    strip's end (the roof side, down ``az``) less that over the ``k`` cells before its start (the ground line's
    side): a new roof differs from the base, the ground before its wall does not."""
    fwd = np.zeros(logr.shape)
    bwd = np.zeros(logr.shape)
    for j in range(1, k + 1):
        a, b = _step(az, j)
        fwd += shift(logr, a, b)
        bwd += shift(logr, -(a), -(b))
    fwd /= k
    bwd /= k
    ends = lab_w > 0
    before = np.zeros(logr.shape)
    for ell in np.unique(length[ends]):
        a, b = _step(az, -int(ell) + 1)  # the strip's first cell; bwd counts from the cell before it
        before = np.where(ends & (length == ell), shift(bwd, a, b), before)
    c = np.bincount(lab_w[ends], weights=(fwd - before)[ends], minlength=rows.size)
    return np.where(rows > 0, c / np.maximum(rows, 1), 0.0)


def rows_footprint(seg, ii, jj, ln, pis, roof, az, k):
    """Per wall row (end cell ``ii, jj``, strip length ``ln``): the roof run = the cells past the end along
    ``az`` that stay in the end's roof segment (at most ``4 k``), D cells; the footprint = the D cells from the
    strip's first cell, and the strip itself; each gets the wall's probability (largest where rows overlap)."""
    ny, nx = seg.shape
    pc = np.zeros(seg.shape)
    steps = [_step(az, j) for j in range(-2 * k - 1, 4 * k + 2)]
    off = 2 * k + 1
    for i, j, ell, p, r in zip(ii, jj, ln, pis, roof):
        D = 0
        if r > 0:
            for m in range(1, 4 * k + 1):
                a, b = steps[off + m]
                y, x = i + a, j + b
                if not (0 <= y < ny and 0 <= x < nx) or seg[y, x] != r:
                    break
                D = m
        last = max(0, D - int(ell))
        for m in range(-int(ell) + 1, last + 1):
            a, b = steps[off + m]
            y, x = i + a, j + b
            if 0 <= y < ny and 0 <= x < nx:
                pc[y, x] = max(pc[y, x], p)
    return pc
