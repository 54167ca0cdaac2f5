"""The off-level and on-level tests of the same-date height sweep (:mod:`offnadir.cube.sweep`, module
docstring): a best height's lead over the DSM heights must hold on the window cells whose DSM surface
does not lie at that height (off-level); a DSM height the window test kept must beat a window that
follows the cell's own surface moved to the best height (on-level). numpy and the sweep's numba
kernels; no dask.

The two tests (moved here from :mod:`offnadir.cube.sweep`'s docstring; the window test, the DSM
height's standard errors and ``SE_FACTOR``, ``STOREY_M``, ``STEP_FRACTION`` are described there):

* **the off-level test** (``dsm_test="off_level"``, config ``height_sweep.dsm_test: off_level``;
  the default since issue 7, H4 seventh round, below; :func:`off_level_explained`): a window beside a height
  step holds cells whose DSM surface lies at another height; at that height *those* cells agree
  (it is their own surface), so the window's agreement can peak there whatever the cell does: the
  fronto-parallel window's fattening (hard simulated stereo scenes: of the unchanged roofs' cells
  with a coherent false ``dh``, 54-93 % had a height step in the window; the unchanged ground's
  false ``dh`` were all upward). So after the window test, where the best height z* lies at least
  one cell of relative displacement (``level = step / STEP_FRACTION``: within it a surface still
  correlates with itself) from the DSM height, the agreement at z* and at the DSM heights are
  measured again on the window cells whose DSM height is *not* within ``level`` of z*
  (:func:`sweep_kernels.ncc_off_level`, hidden cells out as at the DSM heights); where the DSM
  heights' is within :data:`SE_FACTOR` standard errors of a correlation, ``(1 - s²) / sqrt(N)``
  with N those cells, of z*'s, the lead came from the cells at z*: ``dh = 0`` with ``dh_sigma >=
  |z* - h| / SE_FACTOR`` (as the region stage: the test cannot tell the DSM height from z* on
  what is left, so both stay within reach; a certain zero vetoed the structural evidence of the
  changed roofs the false peak had found by luck: hard stereo mean 0.846 against 0.850). A real
  change keeps its lead: a demolished roof's cells (DSM at the roof) agree at the ground's height
  off the ground's level, a new roof's cells (DSM on the ground) at the roof's. The images are
  sampled again, after the sweep, at each candidate height that is a tested cell's best, on the
  windows of the cells tested there alone (the whole block was resampled at each before: then
  sweep CPU about 1.5x, 0.31-0.39 -> 0.53-0.60 CPU-s on the 256² hard scenes; the test took 6.9-7.2
  of the two Kahramanmaraş tiles' 20.8-21.3 CPU-s, now 1.4-1.5 of 15.2-15.6; docs/change_detection.md,
  "The off-level test's resampling"). Measured
  (docs/change_detection.md, "The off-level test"): hard stereo ground false alarms down on 11 of
  12 targets, F1 on all decided cells 0.612 -> 0.629, elevated F1 mean 0.847 -> 0.850 (7 up, 3
  down); Kahramanmaraş precision +0.01 but recall -0.01 and 2 changed objects of 100 lost per
  image, ``dh`` vs CARS 1.17 -> 1.20 m: hence an option then. Measured again with the change
  stage's later rules (unresolved zeros, small objects; docs/change_detection.md, "The off-level
  test as the default"): hard stereo 256² elevated F1 mean 0.877 -> 0.883 (11 of 12 targets up or
  equal), unchanged roofs' and crowns' false alarms -29 %; 1024² seeds 0-2 0.846 -> 0.846 (ground
  false alarms 0.054-0.067 -> 0.048-0.060, changed objects 314 -> 310 of 342); Kahramanmaraş F1
  0.736/0.742 -> 0.737/0.744, AUC unchanged, precision +0.01, one changed object of 100 lost per
  image, ``dh`` vs CARS 1.18 -> 1.22 m: the default since.
* **the on-level test** (``dsm_test="on_level"``; not the default; :func:`on_level_moved`):
  the window test compares the DSM heights with a *flat* window at z*; on a roof raised by dh the
  flat window straddles the roof's edge and the DSM heights can win though the roof moved. So where
  the window test keeps the DSM height and z* lies at least one cell of relative displacement from
  it, the DSM heights are compared with a window that follows the cell's own surface moved by
  ``z* - h`` (window cells within :data:`STOREY_M` of the cell's DSM height moved, the others at
  their DSM heights: a jump of a storey is another surface; cells beside a wall left out of both
  windows, :data:`ON_LEVEL_RIM_OUT`); where it beats the DSM heights by
  :data:`SE_FACTOR` standard errors after a Sidak allowance for z* picked among the candidates a
  cell of relative displacement apart (:func:`sweep_noise.selection_z`), ``dh = z* - h``. Measured
  (docs/change_detection.md, "The on-level test"): raised roofs found, but more false ``dh`` beside
  unchanged height steps: hard stereo mean 0.869 -> 0.866, Kahramanmaraş neutral: an option.
"""

from __future__ import annotations

import numpy as np

from offnadir.cube import sweep_kernels as swk
from offnadir.cube import sweep_level_kernels as slk
from offnadir.cube import sweep_views as SV


def off_level_agreement(samples, pairs, h, level_z, level: float, radius: int, min_count: float):
    """(agreement, cells): the mean over the pairs of the windowed NCC of ``samples`` over the
    window cells whose height ``h`` is not within ``level`` of the cell's ``level_z``
    (:func:`sweep_kernels.ncc_off_level`), and the fewest cells any pair used."""
    acc = np.zeros(h.shape)
    cells = np.full(h.shape, np.inf)
    ncc = np.empty(h.shape, np.float32)
    cnt = np.empty(h.shape)
    for a, b in pairs:
        swk.ncc_off_level(samples[a], samples[b], h, level_z, float(level), radius, min_count, ncc, cnt)
        acc += ncc
        cells = np.minimum(cells, cnt)
    return acc / len(pairs), cells


def off_level_explained(views, at_dsm, hidden, pairs, h, best, best_k, z0: float, step: float, explained,
                        level: float, radius: int, min_count: float, se_factor: float):
    """The off-level test (:mod:`offnadir.cube.sweep`): bool map of the cells whose best height (candidate
    ``best_k``) lies at least ``level`` from the DSM height and whose DSM-height agreement, on the
    window cells whose DSM is not within ``level`` of that best height, is within
    ``se_factor`` standard errors of a correlation, ``(1 - s²) / sqrt(N)`` with N those
    cells, of the best height's on the same cells: dh = 0 there. ``explained``: the window test's
    answer (those cells are not tested again). The group's images are sampled again at each
    candidate height that is some tested cell's best (hidden cells out, as in ``at_dsm``), on the
    windows of the cells tested there alone (:meth:`sweep_views.View.sample_cells`; sampling the
    whole block at each such height took most of the test's time, docs/change_detection.md, "The
    off-level test's resampling"), and the agreement is taken at those cells alone."""
    z_best = np.where(best_k >= 0, z0 + best_k * step, np.nan)
    with np.errstate(invalid="ignore"):
        far = ~explained & np.isfinite(best) & (np.abs(z_best - h) >= level)
    off_best = np.full(h.shape, np.nan)
    off_cells = np.zeros(h.shape)
    ys, xs = np.nonzero(far)
    ks = best_k[ys, xs]
    order = np.argsort(ks, kind="stable")
    ys, xs, ks = ys[order], xs[order], ks[order]
    cuts = np.flatnonzero(np.diff(ks)) + 1
    smp = [np.empty(h.shape, np.float32) for _ in views]
    stamp = np.zeros(h.shape, np.int64)
    cy = np.empty(h.size, np.int64)
    cx = np.empty(h.size, np.int64)
    hidden = [None] * len(views) if hidden is None else hidden
    for tag, (s0, s1) in enumerate(zip(np.r_[0, cuts], np.r_[cuts, ks.size]), 1):
        if s1 <= s0:
            continue
        y, x, z = ys[s0:s1], xs[s0:s1], float(z0 + ks[s0] * step)
        m = slk.window_cells(y, x, radius, stamp, tag, cy, cx)
        for v, out, hid in zip(views, smp, hidden):
            v.sample_cells(z, cy[:m], cx[:m], out, hid)
        acc = np.zeros(s1 - s0)
        cells = np.full(s1 - s0, np.inf)
        ncc = np.empty(s1 - s0, np.float32)
        cnt = np.empty(s1 - s0)
        for a, b in pairs:
            swk.ncc_off_level_cells(smp[a], smp[b], h, y, x, z, float(level), radius, min_count, ncc, cnt)
            acc += ncc
            cells = np.minimum(cells, cnt)
        off_best[y, x] = acc / len(pairs)
        off_cells[y, x] = cells
    return off_level_rule(at_dsm, pairs, h, z_best, far, off_best, off_cells, level, radius, min_count, se_factor)


def off_level_rule(at_dsm, pairs, h, z_best, far, off_best, off_cells, level: float, radius: int,
                   min_count: float, se_factor: float):
    """The decision of :func:`off_level_explained`: among the ``far`` cells with an off-level
    agreement ``off_best`` at their best height ``z_best`` (on ``off_cells`` cells), those whose
    DSM-height agreement on the same cells (``at_dsm``, :func:`off_level_agreement`) is within
    ``se_factor`` standard errors of it."""
    far = far & np.isfinite(off_best)
    s0_off, _ = off_level_agreement(at_dsm, pairs, h, np.where(far, z_best, np.nan), level, radius, min_count)
    with np.errstate(invalid="ignore", divide="ignore"):
        tol = se_factor * (1.0 - off_best ** 2) / np.sqrt(np.maximum(off_cells, 1.0))
        return far & (s0_off >= off_best - tol)


def on_level_agreement(at_dsm, moved, pairs, h, level_h, tol: float, radius: int, min_count: float,
                       on_only: bool = False):
    """(agreement, cells): the mean over the pairs of the windowed NCC over a window whose cells on
    the cell's level (``|h - level_h| < tol``) are read from ``moved`` and the others from
    ``at_dsm`` (left out with ``on_only``; :func:`sweep_level_kernels.ncc_on_level`), and the
    fewest cells any pair used."""
    acc = np.zeros(h.shape)
    cells = np.full(h.shape, np.inf)
    ncc = np.empty(h.shape, np.float32)
    cnt = np.empty(h.shape)
    for a, b in pairs:
        slk.ncc_on_level(at_dsm[a], at_dsm[b], moved[a], moved[b], h, level_h, float(tol), bool(on_only), radius,
                         min_count, ncc, cnt)
        acc += ncc
        cells = np.minimum(cells, cnt)
    return acc / len(pairs), cells


def on_level_moved(views, lon, lat, at_dsm, hidden, pairs, h, s0, offset, kept, step: float, level: float,
                   tol: float, radius: int, min_count: float, se_factor: float, on_only: bool = False,
                   rim_out: bool = False):
    """The on-level test (:mod:`offnadir.cube.sweep`): bool map of the ``kept`` cells (dh = 0 by the
    window test) whose best height lies at least ``level`` from the DSM height (``offset = z* -
    h``) and where a window that follows the cell's own surface moved by that offset (the window
    cells within ``tol`` of the cell's DSM height moved, the others at their DSM heights) agrees
    better than the DSM heights ``s0`` by ``se_factor`` standard errors of a correlation,
    ``(1 - s²) / sqrt(N)`` with N the cells it used: the surface moved there. The offsets are
    grouped on the step lattice; the group's images are sampled once per offset some tested cell
    holds (hidden cells out, as in ``at_dsm``). ``on_only``: both agreements on the cell's level's
    window cells alone (the cells where the two windows differ), N those cells. ``rim_out``: both
    windows leave out the cells beside a wall (their 3x3 DSM neighbourhood spans ``tol`` or more:
    mixed pixels and façades, where the DSM heights do not show one surface either)."""
    with np.errstate(invalid="ignore"):
        tested = kept & np.isfinite(offset) & np.isfinite(s0) & np.isfinite(h) & (np.abs(offset) >= level)
    q = np.where(tested, np.rint(np.where(tested, offset, 0.0) / step), 0).astype(np.int64)
    rim = None
    if rim_out:
        from scipy import ndimage as ndi

        with np.errstate(invalid="ignore"):
            rim = ~(ndi.maximum_filter(h, 3, mode="nearest") - ndi.minimum_filter(h, 3, mode="nearest") < tol)
        at_dsm = [np.where(rim, np.float32(np.nan), a) for a in at_dsm]
        if not on_only:
            s0, _ = on_level_agreement(at_dsm, at_dsm, pairs, h, np.where(tested, h, np.nan), tol, radius,
                                       min_count)
    if on_only:
        s0, _ = on_level_agreement(at_dsm, at_dsm, pairs, h, np.where(tested, h, np.nan), tol, radius, min_count,
                                   True)
    s_on = np.full(h.shape, np.nan)
    n_on = np.zeros(h.shape)
    for k in np.unique(q[tested]):
        sel = tested & (q == k)
        mv = SV.samples_at(views, lon, lat, h + k * step, hidden)
        if rim is not None:
            for x in mv:
                x[rim] = np.nan
        a_on, c_on = on_level_agreement(at_dsm, mv, pairs, h, np.where(sel, h, np.nan), tol, radius, min_count,
                                        on_only)
        s_on[sel] = a_on[sel]
        n_on[sel] = c_on[sel]
    with np.errstate(invalid="ignore", divide="ignore"):
        margin = se_factor * (1.0 - s_on ** 2) / np.sqrt(np.maximum(n_on, 1.0))
        return tested & np.isfinite(s_on) & (s_on > s0 + margin)
