"""The height sweep's second, smaller window at a changed object's edge (:mod:`offnadir.cube.sweep`;
issue 7, s1 eleventh round). numpy and the sweep's numba kernels; no dask.

**Why.** The sweep measures ``dh`` on a fronto-parallel ``(2r+1)²`` window (13² cells). Along the
edges of a raised or new roof the window straddles the roof and the ground or roof around it, whose
DSM heights are right; there the DSM heights agree as well as the moved surface does and the window
test keeps the DSM height with a zero as certain as the peak's curvature: a band about a window wide
inside the changed roof (hard stereo seed 5: its new block's west band, 175 cells, its +9 m raised
block, 474; docs/change_detection.md, n6 ninth round). Treating such a zero as no measurement (n6's
``edge`` rule) gained on the simulator but cost Kahramanmaraş, whose stable cells beside fragmentary
changes lost the zero that vetoed their structural false alarms.

**The rule.** The classic stereo remedy besides shifting the window: measure again with a smaller
one, where the large window's answer is suspect. A cell is suspect where the large window keeps a
"within" answer (``|dh| <= bound``, ``bound`` the change stage's dh bound, ``elevated_height``) while
its window holds at least the quadrant ``(r+1)²/(2r+1)²`` of *coherent* beyond-bound answers (the
change stage's coherence rule, :func:`offnadir.change.dh_evidence.coherent_dh`: a changed object at
least as large as the window holds that share around any of its cells, corners included): the cell
may lie on that object's edge, where the window answers for its majority, not for the cell. There the
sweep is run again on a window of radius :data:`SMALL_RADIUS`, with the sweep's own machinery for
that window size: the window test and its unresolved zeros, the off-level test and the noise peak at
``N = (2r'+1)²`` (a smaller window has a wider null, and those tests widen with it). Where the small
window also answers "within", or measures nothing, the zero stays (so stable cells beside a change
keep their veto); where it answers beyond the bound *at its neighbours' surface* (within a storey,
``STOREY_M``, of the mean of their coherent beyond-bound ``dh``: a jump of a storey is another
surface, as the region stage's labels), the cell takes the small window's ``dh``, ``dh_sigma`` and
agreement. Any other answer of the small window is not what the suspicion is about: the zero stays.
(Measured: the neighbours' side replaced the eleventh round's "within a storey of their mean ``dh``" in
the twelfth round, together with the narrow roof below; alone it added ground false alarms.)

**The narrow roof** (n6's failure mode (2); t3 twelfth round). The converse suspicion: a roof narrower
than the large window (seed 5's 7 x 12 m tower on the hard simulator) is measured at the surrounding
ground's height, coherently over the roof, because the window's majority is the ground. A cell is a
narrow-roof suspect where the large window answers *beyond* the bound while its window's DSM range
exceeds the bound (the window straddles a step of the DSM, so it may answer for the other surface).
The small window reads it too, at two heights only (u1 thirteenth round; t3's full small sweep on
these suspects cost the sweep +50 % CPU on Kahramanmaraş, where ~18 % of the cells are beyond answers
at a DSM step, and the rule only asks which of two heights the small window prefers): its agreement at
the DSM's heights (its windows following the DSM surface, as the sweep's ``s0``) and on the candidate
plane where the large window peaked (:func:`two_heights`). Where its DSM agreement is a measurement
(above the noise peak of its ``N`` cells over the candidates, :func:`sweep_noise.noise_peak`, as the
sweep asks of its best agreement) and beats its agreement at the large window's height by ``se_factor``
standard errors of a correlation, ``(1 - s²) / sqrt(N)`` (:func:`rejects`: the window test's margin,
:func:`sweep_noise.unresolved` read the other way; within it the two heights are a tie, no evidence
against the large window), the two windows disagree: the large window's ``dh`` stays (the sweep's
height is not replaced: replacing it moved Kahramanmaraş' changed cells from CARS, 1.16 -> 1.23 m) but
its ``dh_sigma`` is floored at ``|dh| / se_factor`` (the unresolved zeros' convention: the DSM height
within ``se_factor`` sigmas), so the change stage weighs it as uncertain.

**The small window's size.** ``SMALL_RADIUS = 3`` (7² cells), half the large window's radius: the band
a fronto-parallel window loses at an edge is about its radius wide, so it halves the band, while the
noise peak a window of N cells reaches over the candidate heights (:func:`sweep_noise.noise_peak`,
``sqrt(2 ln M) / sqrt(N - 3)``) stays below the agreement of textured windows (0.47 at N = 49 for
~150 candidates, against 0.68 for 5² and 0.24 for 13²). Measured offline
(docs/change_detection.md): radius 2 and 4 as well.

**Cost.** Only the edge suspects are swept again (the narrow-roof suspects are read at two heights:
each candidate plane holding some suspect's answer sampled once on its suspects' windows): the images are sampled at every candidate height on
the union of their small windows (:meth:`sweep_views.View.sample_cells`) and the correlation taken at
those cells alone (:func:`sweep_kernels.ncc_off_level_cells` with no level left out). The rule needs the
large window's ``dh`` two window radii around the tile, so the sweep's block is widened by that
(:func:`halo`): the result does not depend on the tiling.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from offnadir.change.options import ChangeOptions
from offnadir.cube import sweep_kernels as swk
from offnadir.cube import sweep_level as SL
from offnadir.cube import sweep_level_kernels as slk
from offnadir.cube import sweep_noise as SN

#: the second window's radius (cells): half the sweep's (module docstring)
SMALL_RADIUS = 3
#: the second window at a changed object's edge is on (config-free: the sweep's default)
EDGE_SECOND = True
#: the second window also re-measures a beyond answer where the large window straddles a DSM step (the narrow roof)
NARROW_ROOF = True
#: the dh bound when the run gives none: the change stage's default ``elevated_height`` (m)
DH_BOUND_M = ChangeOptions.elevated_height
#: the tests of the DSM height the second window runs with (the window test, and the off-level test)
TESTS = ("window", "off_level")


def halo(radius: int, dsm_test: str) -> int:
    """The sweep block's margin around a tile (cells): the window radius, plus two more where the
    second window runs (the coherence of the large window's answers, then their share in the window)."""
    return 3 * radius if EDGE_SECOND and dsm_test in TESTS else radius


def quadrant(radius: int) -> float:
    """``(r+1)² / (2r+1)²``: the share of a window a changed object at least as large holds around any of its cells."""
    return (radius + 1) ** 2 / (2 * radius + 1) ** 2


def answers(dh, bound: float):
    """-1 lower than ``-bound``, 0 within, +1 higher than ``bound``; NaN where not measured."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(dh), np.sign(dh) * (np.abs(dh) > bound), np.nan)


def edge_suspects(dh, bound: float, radius: int):
    """(suspect, neighbours): bool map of the "within" cells whose window holds at least :func:`quadrant`
    of coherent beyond-bound answers, and the mean ``dh`` of those answers (their surface; NaN where none)."""
    a = answers(dh, bound)
    share = np.empty(dh.shape)
    swk.coherent_share(np.ascontiguousarray(a), radius, 0.5, share)
    with np.errstate(invalid="ignore", divide="ignore"):
        beyond = (share >= quadrant(radius) - 1e-12) & (np.abs(np.nan_to_num(a)) > 0)
        count = SN.box_sum(beyond.astype(np.float64), radius)
        neighbours = np.where(count > 0, SN.box_sum(np.where(beyond, dh, 0.0), radius) / count, np.nan)
        return (a == 0) & (count / (2 * radius + 1) ** 2 >= quadrant(radius) - 1e-12), neighbours


def narrow_suspects(dh, h, bound: float, radius: int):
    """bool map of the cells whose large window answers beyond ``bound`` while the DSM ``h`` ranges over
    more than ``bound`` in that window (a step: the answer may be the other surface's; module docstring)."""
    fin = np.isfinite(h)
    w = 2 * radius + 1
    rng = ndi.maximum_filter(np.where(fin, h, -np.inf), w) - ndi.minimum_filter(np.where(fin, h, np.inf), w)
    with np.errstate(invalid="ignore"):
        return np.isfinite(dh) & (np.abs(dh) > bound) & (rng > bound)


def small_window(views, at_dsm, hidden, pairs, h, ys, xs, z0: float, step: float, n: int, n_noise: int,
                 off_level: float, radius: int, min_fraction: float, se_factor: float):
    """The sweep of :func:`offnadir.cube.sweep.sweep_tile` at the listed cells ``(ys, xs)`` of the
    block with a window of ``radius``: (dh, dh_sigma, dh_score) float64, one per cell, NaN where not
    measured. ``n_noise``: the candidates the noise peak allows for; ``off_level``: the off-level test's
    level (m; 0: the window test alone)."""
    m = ys.size
    n_win = (2 * radius + 1) ** 2
    min_count = min_fraction * n_win
    stamp = np.zeros(h.shape, np.int64)
    cy = np.empty(h.size, np.int64)
    cx = np.empty(h.size, np.int64)
    k = slk.window_cells(ys, xs, radius, stamp, 1, cy, cx)
    cy, cx = cy[:k], cx[:k]
    smp = [np.full(h.shape, np.nan, np.float32) for _ in views]
    best = np.full((1, m), -np.inf, np.float32)
    best_k = np.full((1, m), -1, np.int32)
    s_prev, s_next, last = (np.full((1, m), np.nan, np.float32) for _ in range(3))
    ncc = np.empty(m, np.float32)
    cnt = np.empty(m)

    def agreement(samples, z):
        acc = np.zeros(m)
        for a, b in pairs:
            swk.ncc_off_level_cells(samples[a], samples[b], h, ys, xs, z, -1.0, radius, min_count, ncc, cnt)
            acc += ncc
        return acc / len(pairs)

    for i in range(n):
        z = z0 + i * step
        for v, out in zip(views, smp):
            v.sample_cells(z, cy, cx, out)
        swk.update_best(agreement(smp, z).astype(np.float32)[None], i, best, best_k, s_prev, s_next, last)
    s0 = agreement(at_dsm, 0.0)
    zz = np.empty((1, m))
    curv = np.empty((1, m))
    swk.refine(best, best_k, s_prev, s_next, n, z0, step, zz, curv)
    s, zz, curv = best[0].astype(np.float64), zz[0], curv[0]
    offset = zz - h[ys, xs]
    explained, no_peak = SN.window_test(s, s0, np.full(m, np.nan), offset, curv, n_win, se_factor)
    tie = SN.unresolved(explained, s, s0, n_win, se_factor)
    off = np.zeros(m, bool)
    if off_level > 0:  # the off-level test on the block's arrays, only the listed cells in play
        full_best = np.full(h.shape, -np.inf, np.float32)
        full_k = np.full(h.shape, -1, np.int32)
        full_expl = np.ones(h.shape, bool)
        full_best[ys, xs], full_k[ys, xs], full_expl[ys, xs] = best[0], best_k[0], explained
        off = SL.off_level_explained(views, at_dsm, hidden, pairs, h, full_best, full_k, z0, step, full_expl,
                                     off_level, radius, min_count, se_factor)[ys, xs]
        explained = explained | off
    dh = np.where(explained, 0.0, offset)
    ok = np.isfinite(dh) & np.isfinite(s) & np.isfinite(curv) & ~no_peak & (s > SN.noise_peak(n_win, n_noise))
    if hidden is not None:
        ok &= ~np.any([hid[ys, xs] for hid in hidden], axis=0)
    score = np.where(explained, s0, s)
    with np.errstate(invalid="ignore", divide="ignore"):
        undecided = np.where(tie | off, np.abs(offset) / se_factor, 0.0)
        sigma = np.fmax(np.sqrt(2.0 * np.clip(1.0 - score, 0.0, None) / (n_win * curv) + step * step / 12.0),
                        undecided)
    ok &= np.isfinite(score) & np.isfinite(sigma)
    return tuple(np.where(ok, x, np.nan) for x in (dh, sigma, score))


def two_heights(views, at_dsm, pairs, h, ys, xs, ks, z0: float, step: float, radius: int, min_fraction: float):
    """The small window's agreement at the listed block cells ``(ys, xs)`` at two heights only: at the
    DSM's (``at_dsm``, the views sampled at the DSM heights) and on the candidate plane ``z0 + ks * step``
    (``ks``: one candidate index per cell, the large window's best). (s_dsm, s_at) float64, NaN where a
    window has too few cells; equal to the bit to :func:`small_window`'s agreement at those heights. The
    cells are read plane by plane, each plane's cells' windows sampled once."""
    m = ys.size
    min_count = min_fraction * (2 * radius + 1) ** 2
    ncc = np.empty(m, np.float32)
    cnt = np.empty(m)

    def agreement(samples, z, yk, xk):
        acc = np.zeros(yk.size)
        for a, b in pairs:
            swk.ncc_off_level_cells(samples[a], samples[b], h, yk, xk, z, -1.0, radius, min_count, ncc, cnt)
            acc += ncc[:yk.size]
        return acc / len(pairs)

    s_dsm = agreement(at_dsm, 0.0, ys, xs)
    s_at = np.full(m, np.nan)
    stamp = np.zeros(h.shape, np.int64)
    cy = np.empty(h.size, np.int64)
    cx = np.empty(h.size, np.int64)
    smp = [np.full(h.shape, np.nan, np.float32) for _ in views]
    order = np.argsort(ks, kind="stable")
    planes, first = np.unique(ks[order], return_index=True)
    for tag, (k, idx) in enumerate(zip(planes, np.split(order, first[1:])), start=1):
        yk, xk = ys[idx], xs[idx]
        c = slk.window_cells(yk, xk, radius, stamp, tag, cy, cx)
        z = z0 + int(k) * step
        for v, out in zip(views, smp):
            v.sample_cells(z, cy[:c], cx[:c], out)
        s_at[idx] = agreement(smp, z, yk, xk)
    return s_dsm, s_at


def rejects(s_dsm, s_at, n_cells: int, k: float, peak: float):
    """bool: the small window (``n_cells`` cells) prefers the DSM heights to the other height: its DSM
    agreement ``s_dsm`` is a measurement (above ``peak``, the noise peak) and beats ``s_at`` by ``k``
    standard errors of a correlation, ``(1 - s_at²) / sqrt(N)`` (module docstring). NaN rejects nothing."""
    s_dsm = np.asarray(s_dsm, np.float64)
    s_at = np.asarray(s_at, np.float64)
    with np.errstate(invalid="ignore"):
        return (s_dsm > peak) & (s_dsm > s_at + k * (1.0 - s_at * s_at) / np.sqrt(n_cells))


#: at_edges' answer where no cell takes the small window's measurement
NO_EDGE = (np.empty(0, np.int64),) * 2 + (np.empty(0),) * 3
#: at_edges' answer where no narrow-roof cell's sigma is floored
NO_FLOOR = (np.empty(0, np.int64),) * 2 + (np.empty(0),)


def at_edges(dh, core, bound: float, radius: int, storey: float, small, h=None, se_factor: float = 2.0, firm=None):
    """The rule (module docstring) on one sweep block: ``dh`` the large window's (block, NaN where
    not measured), ``core`` the tile's slices in it, ``small(ys, xs)`` -> :func:`small_window`'s
    answer at block cells (the edge suspects); ``storey``: kept for the callers (the eleventh round's
    surface test, no longer used: the neighbours' side decides); ``h``: the block's DSM heights (None: no
    narrow-roof test); ``firm(ys, xs)`` -> bool per narrow-roof suspect, the small window rejects the large
    window's height (:func:`two_heights` and :func:`rejects`); ``se_factor``: the floor is ``|dh| / se_factor``.
    Returns (ys, xs, dh, dh_sigma, dh_score) of the tile's cells that take the small window's measurement,
    (ys, xs, sigma floor) of the narrow-roof cells whose ``dh_sigma`` is floored (tile coordinates), and
    [edge cells swept again, narrow-roof cells read at two heights, taken at an edge, narrow roofs floored]."""
    sus, neighbours = edge_suspects(dh, bound, radius)
    inner = np.zeros(dh.shape, bool)
    inner[core] = True
    y0, x0 = core[0].start, core[1].start
    edge, floor = NO_EDGE, NO_FLOOR
    ys, xs = np.nonzero(sus & inner)
    if ys.size:
        d, sg, sc = small(ys, xs)
        with np.errstate(invalid="ignore"):
            take = np.isfinite(d) & (np.abs(d) > bound) & (np.sign(d) == np.sign(neighbours[ys, xs]))
        edge = (ys[take] - y0, xs[take] - x0, d[take], sg[take], sc[take])
    ny, nx = np.nonzero(narrow_suspects(dh, h, bound, radius) & inner) if h is not None and firm is not None else \
        (np.empty(0, np.int64),) * 2
    if ny.size:
        f = np.asarray(firm(ny, nx), bool)
        floor = (ny[f] - y0, nx[f] - x0, np.abs(dh[ny[f], nx[f]]) / se_factor)
    return edge, floor, [int(ys.size), int(ny.size), int(edge[0].size), int(floor[0].size)]


def second_window(views, at_dsm, hidden, pairs, h, dh, best_k, core, bound: float, radius: int, storey: float,
                  z0: float, step: float, n: int, n_noise: int, level, min_fraction: float, se_factor: float):
    """:func:`at_edges` on one sweep block with the smaller window's two reads: the edge suspects swept
    again (:func:`small_window`) and, with :data:`NARROW_ROOF`, the narrow roofs read at two heights
    (:func:`two_heights`, :func:`rejects`); ``best_k`` the large window's best plane per block cell."""
    def small(ys, xs):
        return small_window(views, at_dsm, hidden, pairs, h, ys, xs, z0, step, n, n_noise, level, SMALL_RADIUS,
                            min_fraction, se_factor)

    def firm(ys, xs):
        n_small = (2 * SMALL_RADIUS + 1) ** 2
        return rejects(*two_heights(views, at_dsm, pairs, h, ys, xs, best_k[ys, xs], z0, step, SMALL_RADIUS,
                                    min_fraction), n_small, se_factor, SN.noise_peak(n_small, n_noise))

    return at_edges(dh, core, bound, radius, storey, small, h if NARROW_ROOF else None, se_factor, firm)


def apply(out: dict, edge, floor) -> None:
    """Writes :func:`second_window`'s answers into a tile's ``dh``, ``dh_sigma``, ``dh_score`` maps: the
    edge cells' measurement, then the narrow roofs' ``dh_sigma`` floor where ``dh`` is measured."""
    for name, v in zip(("dh", "dh_sigma", "dh_score"), edge[2:]):
        out[name][edge[0], edge[1]] = v
    fy, fx, fl = (a[np.isfinite(out["dh"][floor[0], floor[1]])] for a in floor)  # a narrow roof: dh kept, less certain
    out["dh_sigma"][fy, fx] = np.fmax(out["dh_sigma"][fy, fx], fl)
