"""The sun's credible range for the roof-wide shadow rules (numpy; the march is
:func:`offnadir.change.sun_kernels.caster_distances_at`).

The missing-shadow, crown-shadow and longer-shadow rules (:mod:`~offnadir.change.missing_shadow`,
:mod:`~offnadir.change.crown_shadow`, :mod:`~offnadir.change.longer_shadow`) decide a whole roof from
the cells at and beyond its predicted shadow's edge. Where that edge lies depends on the sun, which
is known only to its uncertainty: the estimate's jackknife sigma (:mod:`offnadir.change.sun_estimate`),
or :data:`offnadir.change.shadow.SIGMA_KNOWN_DEG` for a sun from metadata or the almanac. A cell
whose state (shadowed / lit) changes within the sun's credible range says nothing about the roof:
its verdict is the sun's, not the image's. So the rules sum only the cells whose state holds over
the whole range: a sure shadow cell must be cast-shadowed at every end of the range
(:func:`shadowed_at_ends`, all), a fringe cell lit at every end (none).

Range: ``K_SIGMA`` = 2 sigmas in azimuth and in elevation (the same two sigmas as the shadow
widening, :func:`offnadir.change.illumination.shadow_errors`); its ends are the four corners
``(az +- d_az, el +- d_el)``: the shortest shadows (highest sun) turned either way bound the
shadow every sun of the range casts, the longest (lowest sun) turned either way the shadow some
sun of the range casts (for a box of suns the extremes of a cast shadow's reach lie at corners,
up to the turn of a sun's azimuth between them: at 2 sigmas of at most a few degrees, a fraction
of a cell at the distances of a roof's shadow).

A range too narrow to move any shadow's reach by ``MIN_SHIFT_CELLS`` of a cell over the scene's
relief (a given sun's ``SIGMA_KNOWN_DEG``: 0.04 m for 30 m of relief under a 30° sun) is no range:
the corners would repeat the centre's cells but for rays grazing a caster within that hair, so it is
dropped (``(0, 0)``) and the rules run on the sun alone, as before the range (the four extra sun
marches cost ~1 CPU-s per 2048² run, `benchmarks/bench_detect.py`'s sums).
"""

from __future__ import annotations

import math

import numpy as np

#: sigmas of the sun's uncertainty spanned by the range (two: about 95 % for each angle)
K_SIGMA = 2.0
#: a range that moves no shadow's reach by this share of a cell over the scene's relief is dropped
#: (module doc): the rules' sums count whole cells, a tenth of one is below what they can see
MIN_SHIFT_CELLS = 0.1


def reach_shift(relief: float, el_deg: float, d_az_deg: float, d_el_deg: float) -> float:
    """How far (m) a shadow of height ``relief`` moves its tip over the range: its length
    ``relief / tan(el)`` (at the range's lowest sun) turned by ``d_az``, and lengthened by ``d_el``
    (``relief / sin² el`` per radian)."""
    el = math.radians(max(el_deg - d_el_deg, 0.5))
    return max(relief / math.tan(el) * math.radians(d_az_deg), relief / math.sin(el) ** 2 * math.radians(d_el_deg))


def ranges(report, log=None, *, relief: float = math.inf, cell: float = 0.0) -> tuple:
    """Per image of the sun ``report`` (:func:`offnadir.change.illumination.resolve_suns`): the range's
    half-widths ``(d_az, d_el)`` in radians (``K_SIGMA`` times the estimate's sigmas, or
    :data:`~offnadir.change.shadow.SIGMA_KNOWN_DEG` when the sun came with none); ``(0, 0)`` for an
    unknown sun. Each entry of ``report`` gets ``"rules_sun_range_deg": [d_az, d_el]``; logged."""
    import logging

    from offnadir.change.shadow import SIGMA_KNOWN_DEG

    log = log or logging.getLogger("offnadir.change.sun_range")
    out = []
    for rec in report or ():
        if rec.get("azimuth") is None:
            out.append((0.0, 0.0))
            continue
        sa, se = rec.get("sigma_azimuth"), rec.get("sigma_elevation")
        da = K_SIGMA * (SIGMA_KNOWN_DEG if sa is None else float(sa))
        de = K_SIGMA * (SIGMA_KNOWN_DEG if se is None else float(se))
        shift = reach_shift(relief, float(rec.get("elevation", 45.0)), da, de) if math.isfinite(relief) else math.inf
        if shift < MIN_SHIFT_CELLS * cell:
            rec["rules_sun_range_deg"] = [0.0, 0.0]
            log.info("%s: the %s sun's range +-%.3f deg moves no shadow over the scene's %.1f m of relief by more than "
                     "%.3f m (< %g of a cell): the roof-wide shadow rules use the sun alone", rec.get("image", "?"),
                     rec.get("source", "?"), max(da, de), relief, shift, MIN_SHIFT_CELLS)
            out.append((0.0, 0.0))
            continue
        rec["rules_sun_range_deg"] = [da, de]
        log.info("%s: the roof-wide shadow rules count only cells whose shadow state holds over the sun's "
                 "range +-%.2f deg azimuth, +-%.2f deg elevation (%g sigmas of the %s sun)", rec.get("image", "?"),
                 da, de, K_SIGMA, rec.get("source", "?"))
        out.append((math.radians(da), math.radians(de)))
    return tuple(out)


def ends(sun, rng) -> list:
    """The range's four corners ``(az, el)`` (radians) around ``sun``; [] for an empty range."""
    az, el = sun
    da, de = rng
    if da <= 0 and de <= 0:
        return []
    return [(az + sa * da, max(el + se * de, 1e-3)) for sa in (-1, 1) for se in (-1, 1)]


def shadowed_at_ends(h, ii, jj, sun, rng, cell: float, tol: float, max_dist: float) -> np.ndarray:
    """(ends, m) bool: window cells ``(ii, jj)`` of ``h`` cast-shadowed (a caster more than ``tol``
    above the ray within ``max_dist`` cells) under each end of the range (:func:`ends`); shape
    ``(0, m)`` for an empty range."""
    from offnadir.change.sun_kernels import march_cells, window_top

    ii, jj = np.asarray(ii, np.int64), np.asarray(jj, np.int64)
    es = ends(sun, rng)
    out = np.zeros((len(es), len(ii)), bool)
    if not len(ii) or not es:
        return out
    h = np.ascontiguousarray(h, np.float64)
    hmax, dist = window_top(h), np.empty(len(ii))
    for k, (az, el) in enumerate(es):
        march_cells(h, ii, jj, math.tan(el) * cell, -math.cos(az), math.sin(az), hmax, float(tol), float(max_dist),
                    dist)
        out[k] = dist > 0
    return out


def held_over_range(h, ii, jj, sun, rng, cell: float, tol: float, max_dist: float, shadowed: bool):
    """(m,) bool: ``shadowed_at_ends(...).all(axis=0)`` (``shadowed``: a cell cast-shadowed at every
    end) or ``~shadowed_at_ends(...).any(axis=0)`` (not ``shadowed``: lit at every end); None for an
    empty range or no cells (nothing to filter). The same marches, but an end marches only the
    cells every earlier end kept: a cell that failed once is out whatever the later ends say."""
    from offnadir.change.sun_kernels import march_cells, window_top

    es = ends(sun, rng)
    if not len(ii) or not es:
        return None
    ii, jj = np.asarray(ii, np.int64), np.asarray(jj, np.int64)
    h = np.ascontiguousarray(h, np.float64)
    hmax = window_top(h)
    todo = np.arange(len(ii))
    for az, el in es:
        dist = np.empty(len(todo))
        march_cells(h, ii[todo], jj[todo], math.tan(el) * cell, -math.cos(az), math.sin(az), hmax, float(tol),
                    float(max_dist), dist)
        todo = todo[(dist > 0) == shadowed]
        if not len(todo):
            break
    out = np.zeros(len(ii), bool)
    out[todo] = True
    return out


def halo_elevation(sun, rng) -> float:
    """The lowest elevation of the range (the longest shadows a tile's halo must hold)."""
    return max(sun[1] - (rng[1] if rng else 0.0), 1e-3)
