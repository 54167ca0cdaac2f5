"""The off-level test of the same-date height sweep (:mod:`offnadir.cube.sweep`, module docstring:
"the off-level test"): a best height's lead over the DSM heights must hold on the window cells
whose DSM surface does not lie at that height. numpy and the sweep's numba kernels; no dask."""

from __future__ import annotations

import numpy as np

from offnadir.cube import sweep_kernels as swk


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
    candidate height that is some tested cell's best (hidden cells out, as in ``at_dsm``)."""
    z_best = np.where(best_k >= 0, z0 + best_k * step, np.nan)
    with np.errstate(invalid="ignore"):
        far = ~explained & np.isfinite(best) & (np.abs(z_best - h) >= level)
    off_best = np.full(h.shape, np.nan)
    off_cells = np.zeros(h.shape)
    for k in np.unique(best_k[far]):
        sel = far & (best_k == k)
        smp = [v.sample(z0 + k * step).copy() for v in views]
        if hidden is not None:
            for x, hid in zip(smp, hidden):
                x[hid] = np.nan
        a_off, n_off = off_level_agreement(smp, pairs, h, np.where(sel, z0 + k * step, np.nan), level, radius,
                                           min_count)
        off_best[sel] = a_off[sel]
        off_cells[sel] = n_off[sel]
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
