"""Where a roof's near-sensor rim went: the step profile of each elevated patch along the walk from
its near-sensor outline into the roof, in the base and the target (numpy and numba only; the sums
feed the ``outline`` criterion of :mod:`offnadir.change.criteria`).

Geometry (docs/change_detection.md, "Raised roofs whose base rim is faint"). The cube samples the
target at the epoch-1 heights. A roof raised by ``dh`` is seen ``s = dh tan(theta_t)`` nearer the
target's sensor: walking into the roof from its near-sensor outline, the target shows the new
floors' facade for the first ``s`` and the facade | roof edge ``s`` inside -- the rim *moved*
inwards. :mod:`offnadir.change.outline` tests the first step only (the rim there in the base and gone
from the target); where the base's rim has little contrast against the roof (a roof as bright as
the ground beside it) that test has nothing to lose, yet the edge the raise makes in the target
(facade against roof) is there. Per patch and depth ``k`` (the pair ``(c, c - u)`` with ``c`` ``k``
steps ``u`` inside the outline: ``c + u, ..., c + k u`` in the patch, ``c + (k + 1) u`` not), the sums
``(n_k, sum |d x_base|, sum |d x_target|)`` over the pairs of :func:`offnadir.change.outline.cell_steps`
(same patch, elevated, both observable, finite steps), for ``k = 0 .. kmax - 1``, where both cells
are lit at both dates and no shadow edge of the roof is near (:data:`SHADOW_MARGIN`) when the sun
is known: a step in a shadow is damped by the shadow's irradiance, and a shadow edge is an edge of
the light, not of the roof. The rim *went* where the target's step at depth 0 is at most half the
roof's mean step and an edge twice the roof's step appears at a depth of at least
:data:`MIN_MOVE_DEPTH` where the base's step is at most half of it (:func:`rim_went`).

``kmax`` = the parallax offsets' longest step count (the move of the largest height change the
patch criteria search, ``max_height_change``); a walk still in the patch after ``kmax`` steps has no
depth in range and is not counted. The sums pass's halo is that long (``ctx.max_shift()``), so the
walk from a core cell never leaves the window before it ends: the sums do not depend on the tiling.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_NB = dict(cache=True, nogil=True, error_model="numpy")

#: shallowest depth at which an edge counts as the rim *moved*: the base's rim lies in the pair at
#: depth 0 (the outline cell and its inward neighbour); the co-registration leaves up to one cell of
#: residual shift (tie points, resampling: the census evidence's tolerance), which moves an
#: unchanged rim's peak to depth 1 at most. A peak at depth 2 or deeper is beyond it (a raise of
#: about ``(2 + 1) cell / tan(theta_t)``: 3.2 m at 0.5 m cells and 25 degrees off nadir)
MIN_MOVE_DEPTH = 2


#: a pair is left out where a predicted shadow edge *on the same roof* lies within this many cells
#: of either of its cells, in either image: the edge may be off by one cell of grid discretisation
#: and one of resampling blur (the allowance of :data:`offnadir.change.shadow_observed.MARGIN`). A
#: cast shadow's edge on a roof moves with the sun between the dates (hard simulator seed 1: a
#: neighbour's shadow edge 4 cells inside a roof in the base, 10 in the target): an edge inside the
#: roof in one image and not the other that is not the roof's geometry. Edges off the roof (its
#: own shadow on the ground beside it) do not touch its steps.
SHADOW_MARGIN = 2

#: columns of :func:`depth_sums` per (patch, depth): ``n``, the base's and the target's sums of
#: ``|d x|`` over the pairs, and of the pair's outer cell's level ``x`` and ``x^2`` in each image
NCOL = 7


def depth_sums(lab, elevated, xb, xt, ok, step, kmax: int, core, erow_map, m: int, lit_base=None, lit_target=None,
               margin: int = SHADOW_MARGIN):
    """(m, kmax, :data:`NCOL`) sums ``(n, sum |d x_base|, sum |d x_target|, sum x_base, sum x_target,
    sum x_base^2, sum x_target^2)`` (``x`` of the pair's outer cell) per elevated-patch row
    (``erow_map``: each window cell's row, -1 outside the core or not an elevated patch's row) and
    depth (module docstring). Only interior pairs: the cell beyond the pair's inner cell is in the
    patch too (the far side's rim is another edge, which a raise moves outwards, off the walk).
    ``lit_base``, ``lit_target``: the predicted direct-sun state (:mod:`offnadir.change.illumination`:
    0 none, 1..254 lit, 255 unknown), pairs near a shadow edge on the roof left out
    (:data:`SHADOW_MARGIN`); None: not known. Zeros when ``step`` is None."""
    out = np.zeros((m, max(int(kmax), 0), NCOL))
    if step is None or m == 0 or kmax < 1:
        return out
    i0, i1, j0, j1 = core
    unknown = np.full((1, 1), 255, np.uint8)
    lb = unknown if lit_base is None else np.ascontiguousarray(lit_base, np.uint8)
    lt = unknown if lit_target is None else np.ascontiguousarray(lit_target, np.uint8)
    _depth_sums(np.ascontiguousarray(lab), np.ascontiguousarray(elevated, np.bool_),
                np.ascontiguousarray(xb, np.float64), np.ascontiguousarray(xt, np.float64),
                np.ascontiguousarray(ok, np.bool_), lb, lt, int(margin), int(step[0]), int(step[1]), int(kmax),
                int(i0), int(i1), int(j0), int(j1), np.ascontiguousarray(erow_map, np.int64), out)
    return out


@njit(**_NB)
def _near_shadow_edge(lit, lab, v, i, j, margin):
    """Both a cell without direct sun and a lit one of patch ``v`` within ``margin`` of (i, j)."""
    if lit.shape[0] == 1:  # no prediction
        return False
    ny, nx = lab.shape
    dark = False
    lit_ = False
    for a in range(max(i - margin, 0), min(i + margin + 1, ny)):
        for b in range(max(j - margin, 0), min(j + margin + 1, nx)):
            if lab[a, b] != v:
                continue
            c = lit[a, b]
            if c == 0:
                dark = True
            elif c < 255:
                lit_ = True
            if dark and lit_:
                return True
    return False


@njit(**_NB)
def _depth_sums(lab, elevated, xb, xt, ok, lb, lt, margin, si, sj, kmax, i0, i1, j0, j1, erow_map, out):
    ny, nx = lab.shape
    for i in range(i0, i1):
        for j in range(j0, j1):
            r = erow_map[i, j]
            v = lab[i, j]
            if r < 0 or v <= 0 or not elevated[i, j] or not ok[i, j]:
                continue
            pi = i - si
            pj = j - sj
            if pi < 0 or pi >= ny or pj < 0 or pj >= nx or lab[pi, pj] != v or not ok[pi, pj]:
                continue
            qi = pi - si
            qj = pj - sj
            if qi < 0 or qi >= ny or qj < 0 or qj >= nx or lab[qi, qj] != v:
                continue  # the far side's rim
            if lb.shape[0] > 1 and (lb[i, j] == 0 or lb[pi, pj] == 0):
                continue  # no direct sun in the base: its steps damped by the shadow's irradiance
            if lt.shape[0] > 1 and (lt[i, j] == 0 or lt[pi, pj] == 0):
                continue
            if (_near_shadow_edge(lb, lab, v, i, j, margin) or _near_shadow_edge(lb, lab, v, pi, pj, margin)
                    or _near_shadow_edge(lt, lab, v, i, j, margin) or _near_shadow_edge(lt, lab, v, pi, pj, margin)):
                continue
            db = abs(xb[pi, pj] - xb[i, j])
            dt = abs(xt[pi, pj] - xt[i, j])
            if not (np.isfinite(db) and np.isfinite(dt)):
                continue
            # depth: steps +u that stay in the patch (the window's edge ends the walk, as the patch's)
            k = -1
            qi, qj = i, j
            for s in range(kmax):
                qi += si
                qj += sj
                if qi < 0 or qi >= ny or qj < 0 or qj >= nx or lab[qi, qj] != v:
                    k = s
                    break
            if k < 0:
                continue
            out[r, k, 0] += 1.0
            out[r, k, 1] += db
            out[r, k, 2] += dt
            # the level of the pair's outer cell (the facade strip's witness, :func:`strip_level`)
            out[r, k, 3] += xb[i, j]
            out[r, k, 4] += xt[i, j]
            out[r, k, 5] += xb[i, j] * xb[i, j]
            out[r, k, 6] += xt[i, j] * xt[i, j]


def sparse(eids, sums):
    """``(keys, sums, nk)`` of the non-empty (patch, depth) pairs (``key = id * nk + k``), what the
    tiles send to be summed (as :func:`offnadir.change.tile.sparse_profile`)."""
    nk = sums.shape[1]
    r, k = np.nonzero(sums[..., 0] > 0)
    return np.asarray(eids, np.int64)[r] * nk + k, sums[r, k], nk


def dense(ids, sp):
    """:func:`sparse` summed over tiles back to the (len(ids), nk, 3) table of the (sorted) patch
    ``ids``; pairs of patches not in ``ids`` are dropped."""
    keys, vals, nk = sp
    ncol = np.asarray(vals).shape[-1] if np.ndim(vals) == 2 else NCOL
    out = np.zeros((len(ids), int(nk), ncol))
    if not len(keys):
        return out
    pid, k = keys // nk, keys % nk
    pos = np.clip(np.searchsorted(ids, pid), 0, max(len(ids) - 1, 0))
    hit = np.asarray(ids)[pos] == pid
    np.add.at(out, (pos[hit], k[hit]), np.asarray(vals).reshape(-1, ncol)[hit])
    return out


def moved_rim(profile, edge_factor: float, min_pairs: int, min_depth: int = MIN_MOVE_DEPTH):
    """Per patch, how strongly an edge appears inside the roof in the target that the base does not
    have at that depth, in factors of ``edge_factor``: ``max_k min(log_F pt(k), log_F pt(k)/pb(k))``
    over depths ``k >= min_depth`` with at least ``min_pairs`` pairs, where ``pt(k)`` is the target's
    mean step at depth ``k`` over the roof's mean step (the profile's pairs at every depth: the same
    pairs, none across a shadow edge) and ``pb(k)`` the same in the base. >= 1: an edge
    (``edge_factor`` times the roof's typical step) where the base had none (the base's step there at
    most ``1 / edge_factor`` of it). Also returns the depth of that maximum (-1: none). NaN where
    no depth qualifies."""
    p = np.asarray(profile, np.float64)
    s = p.sum(axis=1)
    n = p.shape[0]
    val = np.full(n, np.nan)
    at = np.full(n, -1, np.int64)
    if n == 0 or p.shape[1] <= min_depth:
        return val, at
    lf = math.log(edge_factor)
    with np.errstate(invalid="ignore", divide="ignore"):
        mb = s[:, 1] / s[:, 0]
        mt = s[:, 2] / s[:, 0]
        nk = p[:, min_depth:, 0]
        pb = p[:, min_depth:, 1] / nk / mb[:, None]
        pt = p[:, min_depth:, 2] / nk / mt[:, None]
        v = np.minimum(np.log(pt), np.log(pt) - np.log(pb)) / lf
        v = np.where((nk >= min_pairs) & ~np.isnan(v), v, -np.inf)
    ok = np.any(v > -np.inf, axis=1)
    k = np.argmax(v, axis=1)
    val[ok] = v[ok, k[ok]]
    at[ok] = k[ok] + min_depth
    return val, at


def rim_went(profile, edge_factor: float, min_pairs: int, min_depth: int = MIN_MOVE_DEPTH):
    """Per patch, ``min(-log_F t0, moved)``: the target's rim gone from the outline (``t0``: its mean
    step at depth 0 over the roof's mean step, at least ``min_pairs`` pairs) *and* a new edge inside
    the roof (:func:`moved_rim`), both from the profile's pairs (lit at both dates, none across a
    shadow edge); >= 1: the rim moved inwards, as a raise moves it. NaN where either is undefined."""
    p = np.asarray(profile, np.float64)
    moved, _ = moved_rim(p, edge_factor, min_pairs, min_depth)
    if p.shape[0] == 0 or p.shape[1] == 0:
        return moved
    s = p.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t0 = np.where(p[:, 0, 0] >= min_pairs, (p[:, 0, 2] / p[:, 0, 0]) / (s[:, 2] / s[:, 0]), np.nan)
        return np.minimum(-np.log(t0) / math.log(edge_factor), moved)


def strip_level(profile, depth, min_pairs: int):
    """Per patch, ``(dt, db)``: the mean level of the pairs' outer cells at depths ``1 .. depth`` (the
    strip between the outline and an edge at ``depth``) minus that of the deeper ones, over the
    patch's per-cell standard deviation of the level (all the profile's cells), in the target and
    in the base. Depth 0 is left out: its outer cell is the outline cell, which the resampling mixes
    with what lies outside the roof at both dates. NaN where ``depth`` < 1 or either side has fewer
    than ``min_pairs`` cells."""
    p = np.asarray(profile, np.float64)
    n = p.shape[0]
    dt = np.full(n, np.nan)
    db = np.full(n, np.nan)
    if n == 0 or p.shape[-1] < NCOL:
        return dt, db
    tot = p.sum(axis=1)
    k = np.arange(p.shape[1])[None, :]
    d = np.asarray(depth)[:, None]
    strip = ((k >= 1) & (k <= d)).astype(np.float64)
    inner = (k > d).astype(np.float64)
    a = np.einsum("pk,pkc->pc", strip, p)
    b = np.einsum("pk,pkc->pc", inner, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (np.asarray(depth) >= 1) & (a[:, 0] >= min_pairs) & (b[:, 0] >= min_pairs)
        for out, c in ((db, 3), (dt, 4)):
            m = tot[:, c] / tot[:, 0]
            sd = np.sqrt(np.maximum(tot[:, c + 2] / tot[:, 0] - m * m, 0.0))
            v = (a[:, c] / a[:, 0] - b[:, c] / b[:, 0]) / sd
            out[ok] = v[ok]
    return dt, db


def facade_dark(sun_azimuth_deg, sun_elevation_deg, view_azimuth_deg, edge_factor: float) -> bool:
    """Is the facade that faces the target's sensor (its normal horizontal, towards the view azimuth,
    both azimuths in the grid's frame) lit by at most ``1 / edge_factor`` of a flat roof's
    irradiance, whatever the sky's share? Direct sun on the wall ``cos(e) max(0, cos(az_sun -
    az_view))`` against ``sin(e)`` on the roof; diffuse light on a vertical wall at most half the
    sky the roof sees. So the wall's total over the roof's is at most ``max(direct ratio, 1/2)``:
    with a direct ratio of at most ``1 / edge_factor`` (``edge_factor`` >= 2) the facade is at least
    ``edge_factor`` times darker than the roof in irradiance, which no plausible facade/roof albedo
    ratio turns into a brighter facade on its own. False when any angle is unknown."""
    vals = (sun_azimuth_deg, sun_elevation_deg, view_azimuth_deg)
    if any(v is None or not np.isfinite(v) for v in vals) or sun_elevation_deg <= 0:
        return False
    e = math.radians(sun_elevation_deg)
    direct = math.cos(e) * max(0.0, math.cos(math.radians(sun_azimuth_deg - view_azimuth_deg)))
    return direct <= math.sin(e) / edge_factor


def facade_strip(profile, edge_factor: float, min_pairs: int, min_depth: int = MIN_MOVE_DEPTH,
                 either_sign: bool = False):
    """Per patch, how strongly the strip between the outline and a new edge inside the roof turned into
    a darker surface in the target, the facade a raise shows where that facade is in the dark
    (:func:`facade_dark`): ``min(moved, -dt, db - dt, log_F |dt| / |db|)`` with ``dt < 0``
    (:func:`moved_rim`, :func:`strip_level` at the new edge's depth), in factors of ``edge_factor``
    for the edge and the base's share and in per-cell standard deviations of the roof for the
    level. >= 1: a new edge in the target where the base has none, the strip before it at least one
    standard deviation darker than the roof beyond it in the target, darker by at least one more
    than in the base, and the base's offset at most ``1 / edge_factor`` of the target's (the strip is
    not the roof's own structure). Seen whether or not the facade's texture leaves an edge at the
    outline (which :func:`rim_went` needs gone). NaN where undefined, where the strip is not darker,
    or with fewer than ``min_pairs`` pairs at depth 0 (no outline to start the walk from).

    ``either_sign``: the strip may differ from the roof in either sign, the same bounds taken along
    the sign of ``dt`` (``min(moved, |dt|, sign(dt) (dt - db), log_F |dt| / |db|)``): where the facade
    facing the sensor is lit (:func:`facade_dark` False under a known sun) its irradiance over the
    roof's runs from ``1 / edge_factor`` up to about ``cot(e)`` (2.3 at a 23.5 degree sun, the sky
    light pulling it towards 1), while the facade/roof albedo ratio spans 0.2 to 8 between the
    simulator's facade and roof materials (brick on metal, white render on bitumen): their product,
    the strip's contrast, falls on either side of 1 and its sign is not predicted."""
    p = np.asarray(profile, np.float64)
    moved, depth = moved_rim(p, edge_factor, min_pairs, min_depth)
    if p.shape[0] == 0 or p.shape[1] == 0:
        return moved
    dt, db = strip_level(p, depth, min_pairs)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.log(np.abs(dt) / np.abs(db)) / math.log(edge_factor)
        sgn = np.where(dt > 0, 1.0, -1.0) if either_sign else -1.0
        v = np.minimum.reduce([moved, sgn * dt, sgn * (dt - db), share])
        keep = (p[:, 0, 0] >= min_pairs) & ((dt != 0) if either_sign else (dt < 0))
        return np.where(keep, v, np.nan)
