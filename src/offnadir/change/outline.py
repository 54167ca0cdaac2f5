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

**Each image in one light** (t2, twelfth round; s2's eleventh-round form, taken back, left a pair out of
both ratios when it straddled a shadow edge in either image). A pair whose two cells lie on two sides of a
predicted shadow edge in an image (one without direct sun, the other lit: :mod:`offnadir.change.illumination`'s
codes) has, *in that image*, the irradiance's step, not the roof's; in the other image its step is the
roof's (or the raise's). :func:`patch_sums` also sums each image's ratio over the pairs on one side of every
predicted shadow edge *of that image* (``b1`` over the base's one-light pairs, ``t1`` over the target's), and
the ``outline`` criterion reads the rim lost only where that reading says so too
(:func:`rim_lost_in_one_light`). An unchanged roof in a neighbour's shadow whose base rim pairs straddle
that shadow's edge (hard simulator 1024² seed 1: steps 63-230 against 10-23 for its lit pairs, ``b1`` 8.3)
no longer reads a base rim; a raised roof whose *base* rim pairs straddle a shadow edge keeps its target
reading over those pairs (the target's steps there are the raise's facade: nadir geometry seed 1, the
532-cell +6 m roof that s2's joint filter lost). The conjunction with the all-pairs reading, not the
filtered one alone: left out, the straddling pairs also lower a roof's mean step and *raise* ``b1`` of
roofs that had no rim (256² seed 1, a 540-cell unchanged roof, ``b1`` 1.6 -> 3.1).
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


def sun_class(codes):
    """The predicted direct-sun class of illumination codes (:mod:`offnadir.change.illumination`): 0 none
    (code 0), 1 lit (1..254), 2 unknown (255)."""
    c = np.asarray(codes)
    return np.where(c == 0, 0, np.where(c < 255, 1, 2)).astype(np.uint8)


def one_light(lit, step):
    """Cells ``c`` whose pair ``(c, c - step)`` does not cross a predicted shadow edge in the image of the
    illumination codes ``lit``: both cells without direct sun, or both with it (an unknown code on either
    side, or ``lit`` None: no prediction, kept)."""
    if lit is None:
        return True
    a = sun_class(lit)
    b = _shift(a, -step[0], -step[1], 2)
    return (a == b) | (a == 2) | (b == 2)


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


#: columns of :func:`patch_sums`: every pair (0-5), then each image over its own one-light pairs (6-13)
N_COLUMNS = 14


def patch_sums(lab, elevated, xb, xt, ok, step, core, rowmap, n: int, lit_base=None, lit_target=None):
    """(n, 14) per-patch sums of the core cells (``core`` = (i0, i1, j0, j1) of the window arrays;
    ``rowmap``: each window cell's row in the tile's table, -1 outside the core or no patch) over the pairs
    of :func:`cell_steps`: columns 0-5 ``(n_all, sum_all |d x_b|, sum_all |d x_t|, n_edge, sum_edge |d x_b|,
    sum_edge |d x_t|)`` over every pair; 6-9 ``(n_all, sum_all |d x_b|, n_edge, sum_edge |d x_b|)`` over the
    pairs on one side of every predicted shadow edge of the base (``lit_base``, its illumination codes:
    :func:`one_light`), 10-13 the same of the target over the target's (``lit_target``); None where no sun
    is known: every pair (module docstring). Zeros when ``step`` is None. Summed in one pass over the core
    (:func:`_patch_sums`: the same numbers, added in the same order)."""
    out = np.zeros((n, N_COLUMNS))
    if step is None or n == 0:
        return out
    i0, i1, j0, j1 = core
    unknown = np.full((1, 1), 255, np.uint8)
    lb = unknown if lit_base is None else np.ascontiguousarray(lit_base, np.uint8)
    lt = unknown if lit_target is None else np.ascontiguousarray(lit_target, np.uint8)
    _patch_sums(np.ascontiguousarray(lab), np.ascontiguousarray(elevated, np.bool_),
                np.ascontiguousarray(xb, np.float64), np.ascontiguousarray(xt, np.float64),
                np.ascontiguousarray(ok, np.bool_), lb, lt, int(step[0]), int(step[1]), int(i0), int(i1), int(j0),
                int(j1), np.ascontiguousarray(rowmap, np.int64), out)
    return out


@njit(**_NB)
def _two_lights(c, i, j, pi, pj):
    """The pair's cells on two sides of a predicted shadow edge (illumination codes: 0 no direct sun,
    1..254 lit, 255 unknown, as :func:`sun_class`; a 1 x 1 ``c``: no prediction)."""
    if c.shape[0] == 1:
        return False
    a = c[i, j]
    b = c[pi, pj]
    if a == 255 or b == 255:
        return False
    return (a == 0) != (b == 0)


@njit(**_NB)
def _patch_sums(lab, elevated, xb, xt, ok, lb, lt, si, sj, i0, i1, j0, j1, rowmap, out):
    """:func:`patch_sums` per core cell in row-major order: the pair (c, c - step) of
    :func:`cell_steps` (same patch, elevated, both ``ok``, finite steps) into columns 0-5, into 6-9 (the
    base's steps) where it lies on one side of every predicted shadow edge of the base, into 10-13 (the
    target's) where it does of the target; an edge where ``c + step`` is outside the window or the patch."""
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
            qi = i + si
            qj = j + sj
            e = qi < 0 or qi >= ny or qj < 0 or qj >= nx or lab[qi, qj] != v
            out[r, 0] += 1.0
            out[r, 1] += db
            out[r, 2] += dt
            if e:
                out[r, 3] += 1.0
                out[r, 4] += db
                out[r, 5] += dt
            if not _two_lights(lb, i, j, pi, pj):
                out[r, 6] += 1.0
                out[r, 7] += db
                if e:
                    out[r, 8] += 1.0
                    out[r, 9] += db
            if not _two_lights(lt, i, j, pi, pj):
                out[r, 10] += 1.0
                out[r, 11] += dt
                if e:
                    out[r, 12] += 1.0
                    out[r, 13] += dt


def rim_ratios(sums, one_light: bool = False):
    """``(b1, t1)`` per patch from :func:`patch_sums` (NaN with fewer than
    :data:`MIN_EDGE_PAIRS` outline pairs or no step at all); ``one_light``: each image's ratio over its own
    one-light pairs (columns 6-9 and 10-13; all NaN where the sums have none)."""
    s = np.asarray(sums, np.float64)
    if one_light:
        if s.ndim != 2 or s.shape[1] < N_COLUMNS:
            return np.full(len(s), np.nan), np.full(len(s), np.nan)
        return _ratio(s[:, 6], s[:, 7], s[:, 8], s[:, 9]), _ratio(s[:, 10], s[:, 11], s[:, 12], s[:, 13])
    return _ratio(s[:, 0], s[:, 1], s[:, 3], s[:, 4]), _ratio(s[:, 0], s[:, 2], s[:, 3], s[:, 5])


def _ratio(n_all, sum_all, n_edge, sum_edge):
    """The outline's mean step over the patch's (NaN with fewer than :data:`MIN_EDGE_PAIRS` outline pairs)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_edge >= MIN_EDGE_PAIRS, (sum_edge / n_edge) / (sum_all / n_all), np.nan)


def rim_lost_in_one_light(sums):
    """:func:`rim_lost` of the ratios over every pair, capped by its value over each image's one-light
    pairs (:func:`rim_ratios` ``one_light``) where that is defined (module docstring): a rim reads lost only
    if it does without the light's steps too."""
    v = rim_lost(*rim_ratios(sums))
    v1 = rim_lost(*rim_ratios(sums, one_light=True))
    return np.where(np.isfinite(v1), np.fmin(v, v1), v)


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
