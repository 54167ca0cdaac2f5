"""The near-sensor outline of a roof: is its edge still where the old DSM puts it in the target?
(numpy only; the per-patch sums of :func:`patch_sums` feed the ``outline`` criterion of
:mod:`offnadir.change.criteria`.)

Geometry (docs/change_detection.md, "Raised roofs and the near-sensor outline"). The cube samples
the target at the epoch-1 heights. Where a roof was raised by ``dh``, a target sample at a roof
cell shows the roof point ``s = dh tan(theta_t)`` nearer the target's sensor. Walking from the
roof's outline on the side *facing the target's sensor* into the roof:

* the ground outside stays ground: the outline itself stays an edge (ground | facade instead of
  ground | roof), which is why a test of "is the outline where the DSM puts it" does not see a raise;
* the first ``s`` of the roof show the facade (a wall seen obliquely: little texture), so the
  first step inside the roof, an edge in the base (the roof's rim), is flat in the target;
* the facade | roof edge appears ``s`` inside.

A demolished roof loses that rim too (the target shows ground there). An unchanged roof keeps it
whatever re-covering or weathering did to its texture. Per patch, with ``u`` the grid step towards
the target's sensor and ``|d x|`` the absolute step of an image between a roof cell and its
neighbour ``-u`` (both in the patch, both observable in the two images):

* ``edge``: the near-sensor outline cells (``c + u`` outside the patch): their first step inside;
* ``all``: every such pair of the patch (the roof's typical step).

``b1 = mean_edge |d x_base| / mean_all |d x_base|`` and ``t1`` the same for the target; the patch's
rim vanished when the base has one (``b1 >= 2``) and the target has none (``t1 <= 1/2``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")

#: an edge is a step at least this many times the roof's mean step (and "none" at most its
#: inverse): with the minimum of :data:`MIN_EDGE_PAIRS` pairs the mean of ``|d x|`` (coefficient
#: of variation about 0.75 for Gaussian texture) has a relative error of 0.75 / sqrt(8) = 0.27,
#: so a factor 2 is log(2) / 0.27 = 2.6 standard errors from "typical" on either side
EDGE_FACTOR = 2.0
#: fewer outline pairs than this give no outline evidence (4 m of rim at 0.5 m cells)
MIN_EDGE_PAIRS = 8


def sensor_step(di, dj, shift_cells):
    """The 8-neighbour grid step towards the target's sensor from its parallax offsets
    (:func:`offnadir.change.tileio.parallax_offsets`: ``(di, dj)`` of positive ``shift_cells`` point
    towards the sensor), or None without any (unknown view angles, or a view so near nadir that the
    scene's relief moves nothing by a cell: then no rim is displaced either)."""
    di, dj, sc = np.asarray(di), np.asarray(dj), np.asarray(shift_cells, np.float64)
    if not len(sc) or not np.any(sc > 0):
        return None
    k = int(np.argmax(sc))
    a, b = float(di[k]), float(dj[k])
    m = max(abs(a), abs(b))
    return int(round(a / m)), int(round(b / m))


def _shift(a, di: int, dj: int, fill):
    """``out[i, j] = a[i + di, j + dj]`` (``fill`` outside)."""
    out = np.full_like(a, fill)
    ny, nx = a.shape
    src = (slice(max(di, 0), ny + min(di, 0)), slice(max(dj, 0), nx + min(dj, 0)))
    dst = (slice(max(-di, 0), ny + min(-di, 0)), slice(max(-dj, 0), nx + min(-dj, 0)))
    out[dst] = a[src]
    return out


def cell_steps(lab, elevated, xb, xt, ok, step):
    """Per cell: (pair, edge, |d x_base|, |d x_target|) of the pair (c, c - step): ``pair`` where
    both cells are in the same elevated patch and ``ok``; ``edge`` where moreover ``c + step`` is
    outside the patch (the near-sensor outline)."""
    si, sj = step
    inner = _shift(lab, -si, -sj, 0)
    pair = (lab > 0) & elevated & (inner == lab) & ok & _shift(ok, -si, -sj, False)
    edge = pair & (_shift(lab, si, sj, 0) != lab)
    with np.errstate(invalid="ignore"):
        db = np.abs(_shift(xb, -si, -sj, np.nan) - xb)
        dt = np.abs(_shift(xt, -si, -sj, np.nan) - xt)
    pair &= np.isfinite(db) & np.isfinite(dt)
    edge &= pair
    return pair, edge, np.where(pair, db, 0.0), np.where(pair, dt, 0.0)


def patch_sums(lab, elevated, xb, xt, ok, step, core, rowmap, n: int):
    """(n, 6) per-patch sums ``(n_all, sum_all |d x_b|, sum_all |d x_t|, n_edge, sum_edge |d x_b|,
    sum_edge |d x_t|)`` of the core cells (``core`` = (i0, i1, j0, j1) of the window arrays;
    ``rowmap``: each window cell's row in the tile's table, -1 outside the core or no patch).
    Zeros when ``step`` is None. The pairs of :func:`cell_steps`, summed in one pass over the core
    (:func:`_patch_sums`: the same numbers, added in the same order)."""
    out = np.zeros((n, 6))
    if step is None or n == 0:
        return out
    i0, i1, j0, j1 = core
    _patch_sums(np.ascontiguousarray(lab), np.ascontiguousarray(elevated, np.bool_),
                np.ascontiguousarray(xb, np.float64), np.ascontiguousarray(xt, np.float64),
                np.ascontiguousarray(ok, np.bool_), int(step[0]), int(step[1]), int(i0), int(i1), int(j0), int(j1),
                np.ascontiguousarray(rowmap, np.int64), out)
    return out


@njit(**_NB)
def _patch_sums(lab, elevated, xb, xt, ok, si, sj, i0, i1, j0, j1, rowmap, out):
    """:func:`patch_sums` per core cell in row-major order: the pair (c, c - step) of
    :func:`cell_steps` (same patch, elevated, both ``ok``, finite steps), and an edge where
    ``c + step`` is outside the window or the patch."""
    ny, nx = lab.shape
    for i in range(i0, i1):
        for j in range(j0, j1):
            r = rowmap[i, j]
            v = lab[i, j]
            if r < 0 or v <= 0 or not elevated[i, j] or not ok[i, j]:
                continue
            pi = i - si
            pj = j - sj
            if pi < 0 or pi >= ny or pj < 0 or pj >= nx or lab[pi, pj] != v or not ok[pi, pj]:
                continue
            db = abs(xb[pi, pj] - xb[i, j])
            dt = abs(xt[pi, pj] - xt[i, j])
            if not (np.isfinite(db) and np.isfinite(dt)):
                continue
            out[r, 0] += 1.0
            out[r, 1] += db
            out[r, 2] += dt
            qi = i + si
            qj = j + sj
            if qi < 0 or qi >= ny or qj < 0 or qj >= nx or lab[qi, qj] != v:
                out[r, 3] += 1.0
                out[r, 4] += db
                out[r, 5] += dt


def rim_ratios(sums):
    """``(b1, t1)`` per patch from :func:`patch_sums` (NaN with fewer than
    :data:`MIN_EDGE_PAIRS` outline pairs or no step at all)."""
    s = np.asarray(sums, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = s[:, 3] >= MIN_EDGE_PAIRS
        b1 = np.where(ok, (s[:, 4] / s[:, 3]) / (s[:, 1] / s[:, 0]), np.nan)
        t1 = np.where(ok, (s[:, 5] / s[:, 3]) / (s[:, 2] / s[:, 0]), np.nan)
    return b1, t1


def rim_lost(b1, t1):
    """How far the rim went from "there in the base" to "gone in the target", in factors of
    :data:`EDGE_FACTOR`: ``min(log_F b1, -log_F t1)`` (>= 1: present in the base, absent in the
    target; NaN where undefined)."""
    lf = math.log(EDGE_FACTOR)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.minimum(np.log(b1) / lf, -np.log(t1) / lf)


def rim_witness(p, kept, decision: float = 0.5):
    """The census evidence's probability ``p`` kept below ``decision`` on the cells of roofs whose
    near-sensor rim is there at both dates (``kept >= 1/2``: :func:`offnadir.change.criteria.rim_kept`
    painted on the cells), its order below kept (the maps pass, :func:`offnadir.change.cells.probability_tile`).

    Demolished, raised or lowered, a roof loses that rim in the target (ground, facade or its own
    interior shows there); a rim that stayed is a geometric witness of "not moved", which the census
    window cannot give on a re-covered roof (its texture, and the order of its samples, is then
    unrelated at both dates). It speaks for the roof's geometry only: the patch criteria (a re-roof's
    spectral change, a parallax move) and a measured ``dh`` are applied after it and may still
    decide change."""
    p = np.asarray(p, np.float64)
    with np.errstate(invalid="ignore"):
        hit = np.isfinite(p) & np.isfinite(kept) & (np.asarray(kept) >= 0.5)
    # the largest float32 below the decision: the stored (float32) probability stays below it too
    return np.where(hit, np.minimum(p, float(np.nextafter(np.float32(decision), np.float32(0.0)))), p)


def rim_moved(tb):
    """Per patch of a :class:`offnadir.change.criteria.TargetTable`, how far the near-sensor rim
    went from the outline to a new edge inside the roof in the target (:func:`offnadir.change.rim_profile.rim_went` over the step profile inwards from that
    outline, ``tb.extra["rim_profile"]``), in factors of ``EDGE_FACTOR``; NaN without the profile
    or with fewer than ``MIN_EDGE_PAIRS`` pairs at depth 0 or at every depth from
    ``MIN_MOVE_DEPTH`` on. A roof raised by ``dh`` shows, walking inwards from that outline, the new
    floors' facade and then the facade | roof edge ``dh tan(theta_t)`` inside: the rim moved there."""
    from offnadir.change.rim_profile import rim_went

    out = np.full(len(tb.ids), np.nan)
    prof = tb.extra.get("rim_profile")
    if prof is None:
        return out
    rows, table = prof
    v = rim_went(table, EDGE_FACTOR, MIN_EDGE_PAIRS)
    out[rows] = v
    return out


def facade_moved(tb):
    """Per patch, :func:`offnadir.change.rim_profile.facade_strip` over the step profile inwards from
    the near-sensor outline (``tb.extra["rim_profile"]``) under a known sun (``tb.extra["facade_dark"]``,
    :func:`offnadir.change.rim_profile.facade_dark`, set by the runner from the target's sun and view
    azimuth; None: no sun, NaN). A roof raised by ``dh`` shows its new floors' facade in the strip
    ``dh tan(theta_t)`` wide inside that outline: darker than the roof there whatever its texture
    where that facade is in the dark; where it is lit (``facade_dark`` False) its irradiance is
    comparable to the roof's and the strip may differ in either sign (the facade's albedo decides)."""
    from offnadir.change.rim_profile import facade_strip

    out = np.full(len(tb.ids), np.nan)
    prof = tb.extra.get("rim_profile")
    dark = tb.extra.get("facade_dark")
    if prof is None or dark is None:
        return out
    rows, table = prof
    out[rows] = facade_strip(table, EDGE_FACTOR, MIN_EDGE_PAIRS, either_sign=not dark)
    return out
