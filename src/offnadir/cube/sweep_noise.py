"""Noise models of the same-date height sweep (:mod:`offnadir.cube.sweep`): when does a better
agreement at another height mean that the surface moved?

* :func:`noise_peak`: the agreement pure noise reaches as the best of the candidate heights
  (textureless windows are no measurement);
* :func:`effective_samples`: how many independent samples a window's correlation rests on
  (Bartlett's formula on the images' disagreement);
* :func:`region_lead`, :func:`region_se` and :func:`selection_z`: the region stage of
  ``sweep_tile(dsm_test="region")``, the evidence pooled over each connected region of cells that moved (the module docstring of
  :mod:`offnadir.cube.sweep` says why and what it costs).

numpy and scipy only; no dask.
"""

from __future__ import annotations

import math

import numpy as np

from offnadir.cube import sweep_kernels as swk


def noise_peak(n_cells: int, n_heights: int) -> float:
    """The agreement that pure noise reaches as the best of ``n_heights`` candidates: the
    correlation of ``n_cells`` independent pairs has a null standard deviation ``1 / sqrt(N - 3)``
    (Fisher), and the largest of M independent normal draws stays below ``sqrt(2 ln M)`` of them
    (the Gaussian maximum bound; the candidates are not independent, so M = n_heights is
    conservative)."""
    return math.sqrt(2.0 * math.log(max(n_heights, 2))) / math.sqrt(max(n_cells - 3, 1))


def _lag_corr(smp, axis: int, lag: int, radius: int, min_count: float) -> np.ndarray:
    """Windowed correlation of an image's samples with themselves shifted by ``lag`` cells along
    ``axis``, on the (ny, nx) grid (the last ``lag`` rows/columns repeat the nearest value);
    NaN where a window has too few pairs or no variance."""
    ny, nx = smp.shape
    sl0 = (slice(None, -lag), slice(None)) if axis == 0 else (slice(None), slice(None, -lag))
    sl1 = (slice(lag, None), slice(None)) if axis == 0 else (slice(None), slice(lag, None))
    a0 = np.ascontiguousarray(smp[sl0])
    a1 = np.ascontiguousarray(smp[sl1])
    out = np.empty(a0.shape, np.float32)
    swk.window_ncc(a0, a1, radius, min_count, out, np.empty((7,) + a0.shape))
    full = np.empty((ny, nx))
    full[sl0] = out
    if axis == 0:
        full[ny - lag:] = out[-1]
    else:
        full[:, nx - lag:] = out[:, -1:]
    return full


def effective_samples(samples, pairs, radius: int, min_count: float) -> np.ndarray:
    """Effective number of independent samples behind each window's agreement
    (``samples``: the group's samples at one surface, e.g. the DSM heights).

    Noise model: where the surface has not moved, the two images' samples at the DSM heights
    differ by noise only, and the correlation's sampling error comes from that difference. With
    both windows standardised (``a^``, ``b^``: zero mean, unit variance per window),
    ``r = 1 - sum(d²) / (2N)`` for ``d = a^ - b^``, and for Gaussian ``d`` with autocorrelation
    ``rho_d`` the variance of ``sum(d²)`` is ``N`` times ``S = sum over lags |k| < L of
    (1 - |k| / L) rho_d(k)²`` that of independent cells: ``N_eff = N / S`` (``N`` the window's
    cells sampled in both images). ``rho_d`` is modelled per window and axis as
    ``rho1 ** (|k| ** alpha)`` from the measured lag-1 and lag-2 correlations of ``d``, with
    ``alpha = log2(ln rho2 / ln rho1)`` clipped to [1, 2] (exponential to Gaussian decay), and
    ``S = S_y * S_x`` (separable). Independent noise per cell gives ``N_eff ~ N``; a smooth
    disagreement (blur, resampling of weak texture, a slowly varying radiometric difference)
    gives few, down to 1 for a window-wide offset. Where the surface did move, ``d`` holds the
    displaced pattern too and ``N_eff`` is underestimated: the test errs towards no change.
    For a triplet the smallest over the pairs. (ny, nx) float64, >= 1; NaN where a window has
    fewer than ``min_count`` cells."""
    ny, nx = samples[0].shape
    win = 2 * radius + 1
    k = np.arange(1, win, dtype=np.float64)[:, None, None]
    wk = 1.0 - k / win
    n_eff = np.full((ny, nx), np.inf)
    for a, b in pairs:
        valid = np.isfinite(samples[a]) & np.isfinite(samples[b])
        count = box_sum(valid.astype(np.float64), radius)
        d = (_standardise(samples[a], valid, radius, count)
             - _standardise(samples[b], valid, radius, count)).astype(np.float32)
        s = np.ones((ny, nx))
        for axis in (0, 1):
            # no variance or too few pairs: no evidence of independence (fully correlated)
            r1 = np.clip(np.nan_to_num(_lag_corr(d, axis, 1, radius, min_count), nan=1.0), 1e-3, 1.0 - 1e-6)
            r2 = np.clip(np.nan_to_num(_lag_corr(d, axis, 2, radius, min_count), nan=1.0), 1e-6, 1.0 - 1e-6)
            with np.errstate(invalid="ignore", divide="ignore"):
                alpha = np.clip(np.nan_to_num(np.log2(np.log(r2) / np.log(r1)), nan=1.0), 1.0, 2.0)
            s *= 1.0 + 2.0 * (wk * np.exp(2.0 * np.log(r1) * k ** alpha)).sum(axis=0)
        n_eff = np.minimum(n_eff, np.where(count >= min_count, count / s, np.nan))
    return np.where(np.isfinite(n_eff), np.maximum(n_eff, 1.0), np.nan)


def _standardise(x, valid, radius: int, count) -> np.ndarray:
    """``x`` minus its window mean over ``valid`` cells, divided by its window standard deviation
    (NaN outside ``valid`` and where a window has no variance)."""
    x0 = np.where(valid, x, 0.0).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = box_sum(x0, radius) / count
        var = box_sum(x0 * x0, radius) / count - mu * mu
        return np.where(valid & (var > 0), (x0 - mu) / np.sqrt(var), np.nan)


def box_sum(v, radius: int) -> np.ndarray:
    """Sum of ``v`` in the (2r+1)² window around each cell (clipped at the border)."""
    c = np.pad(np.cumsum(np.cumsum(v, 0), 1), ((1, 0), (1, 0)))
    ny, nx = v.shape
    y0 = np.clip(np.arange(ny) - radius, 0, ny)
    y1 = np.clip(np.arange(ny) + radius + 1, 0, ny)
    x0 = np.clip(np.arange(nx) - radius, 0, nx)
    x1 = np.clip(np.arange(nx) + radius + 1, 0, nx)
    return c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0]


def region_lead(lab, n: int, a_dsm, a_moved) -> np.ndarray:
    """(n + 1,) per region (index 1..n; 0 unused, NaN): the lead ``D`` of the agreement at the
    moved surface over the agreement at the DSM heights, the mean over the region's cells of
    ``atanh(a_moved) - atanh(a_dsm)`` (Fisher z: a window's correlation there has standard error
    ``1 / sqrt(N_eff - 3)``). a_dsm / a_moved: the windowed agreement
    (:func:`offnadir.cube.sweep._agreement`) of every cell at the DSM heights and at the region's
    moved surface; lab: int32 region labels (0: none)."""
    lim = 1.0 - 1e-6
    with np.errstate(invalid="ignore"):
        lead = np.arctanh(np.clip(a_moved, -lim, lim)) - np.arctanh(np.clip(a_dsm, -lim, lim))
    f = (lab > 0) & np.isfinite(lead)
    cnt = np.bincount(lab[f], minlength=n + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(cnt > 0, np.bincount(lab[f], lead[f], n + 1) / cnt, np.nan)
    d[0] = np.nan
    return d


def region_se(lab, n: int, n_eff, window_cells: int, radius: int) -> np.ndarray:
    """(n + 1,) per region: the standard error of :func:`region_lead` where nothing moved.

    n_eff: per-cell effective samples of a window of ``window_cells`` cells
    (:func:`effective_samples`). Noise model: the region's windows together hold the ``U`` cells
    within a window radius of the region (:func:`offnadir.cube.sweep_kernels.halo_counts`), and
    their mean agreement is a locally normalised correlation over those cells; its samples are
    not independent where the images' disagreement is smooth, and the windows' variance factor
    ``S = N / N_eff`` (Bartlett, measured around every cell) applies to the region as well while
    the disagreement's correlation length is shorter than a window: ``U_eff = U / mean(S)`` and
    ``se = sqrt(2 / (U_eff - 3))`` (the two agreements taken as independent: they share their
    samples and are positively correlated, so this errs towards no change). NaN where
    ``U_eff <= 4``: too few independent samples to tell two surfaces apart."""
    seen = (lab > 0) & np.isfinite(n_eff)
    ns = np.bincount(lab[seen], minlength=n + 1)
    u = np.zeros(n + 1, np.int64)
    swk.halo_counts(np.ascontiguousarray(lab, np.int32), n, radius, u)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.where(ns > 0, np.bincount(lab[seen], window_cells / np.maximum(n_eff[seen], 1.0), n + 1) / ns, np.nan)
        u_eff = u / np.maximum(s, 1.0)
        se = np.where(u_eff > 4.0, np.sqrt(2.0 / (u_eff - 3.0)), np.nan)
    se[0] = np.nan
    return se


def selection_z(k: float, n_choices: float) -> float:
    """The lead (in standard errors) that the best of ``n_choices`` independent null draws
    exceeds at the one-sided rate of ``k`` standard errors, ``alpha = 1 - Phi(k)`` (Sidak):
    ``Phi^-1((1 - alpha)^(1 / M))``; ``k`` itself for one choice."""
    from scipy.special import ndtr, ndtri

    return float(ndtri(float(ndtr(k)) ** (1.0 / max(float(n_choices), 1.0))))


def null_agreement(samples, at_dsm, origin, los, z: float, h, pairs, radius: int, min_count: float, scratch,
                   out, grid_origin=(0, 0)) -> None:
    """The agreement the DSM predicts at height ``z`` where nothing moved (the sweep's null
    hypothesis), into ``out`` (ny, nx) float32: the mean over the pairs (a, b) of
    ``(ncc(a_z, a_0 at b's ray) + ncc(b_0 at a's ray, b_z)) / 2``.

    Why: at a height ``z`` other than the surface's, each image looks, through the cell, at the
    DSM point its ray meets, ``x - los (z - h)``: the two images see *other* places than the
    cell, each its own. If the DSM is right, image b's samples there equal image a's samples at
    the DSM heights of those places (``a_0`` read along b's ray, :func:`sweep_kernels.sample_along_ray`),
    up to noise, so the agreement at ``z`` is what image a's own pattern gives between the two
    places: high wherever that pattern repeats along the pair's relative displacement (an edge
    or a road marking parallel to the baseline, a periodic texture), and then a window of weak
    texture at the cell loses to a strong pattern nearby seen from the wrong height. Noise only
    lowers the cross-image agreement below this prediction, so a best height whose agreement does
    not beat it (by the window test's standard errors) is no evidence that the surface moved. On
    a real height change the places seen from the right height hold different patterns, and the
    prediction is low. ``los``: per image of the group, its line of sight (cells per metre,
    :func:`offnadir.cube.geometry.los_on_grid`; one per group, at the DSM centre); ``at_dsm``:
    the group's samples at the DSM heights (NaN where hidden) on a block wider than ``samples``'
    by the rays' reach (:func:`offnadir.cube.sweep.null_bounds`), whose cell ``origin`` (row,
    col) is ``samples``' cell (0, 0): the prediction then does not depend on the tiling;
    ``scratch``: (ncc, work) arrays; ``grid_origin``: the grid cell of ``samples``' cell (0, 0) (fixes
    the order of the window sums, :func:`sweep_kernels.window_ncc`)."""
    ncc, work = scratch
    along = np.empty(h.shape)
    acc = np.zeros(h.shape)
    for a, b in pairs:
        for own, other in ((a, b), (b, a)):
            swk.sample_along_ray(at_dsm[own], origin[0], origin[1], los[other][0], los[other][1], z, h, along)
            swk.window_ncc(samples[own], along.astype(np.float32), radius, min_count, ncc, work, grid_origin[0],
                           grid_origin[1])
            acc += ncc
    out[...] = acc / (2 * len(pairs))


def unresolved(explained, s_best, s_dsm, n_cells: int, k: float):
    """bool map: cells the window test keeps at the DSM height (``explained``) whose DSM agreement
    ``s_dsm`` does not beat the best swept one ``s*`` by ``k`` standard errors of a correlation
    either, ``s_dsm <= s* + k (1 - s*²) / sqrt(N)``: neither height is preferred (the window test's
    margin, both ways), so the zero is no evidence against the best height. Where the DSM heights
    agree better by more than that margin, the DSM is the better explanation and the zero stands."""
    s = np.asarray(s_best, np.float64)
    with np.errstate(invalid="ignore"):
        tol = k * (1.0 - s * s) / math.sqrt(n_cells)
        return np.asarray(explained, bool) & (np.asarray(s_dsm, np.float64) <= s + tol)


def window_test(s_best, s_dsm, s_null, offset, curv, n_cells: int, k: float):
    """The window test of the DSM height, per cell: (``explained``, ``no_measurement``) bool maps.

    ``explained``: the agreement at the DSM heights ``s_dsm`` is within ``k`` standard errors of a
    correlation, ``(1 - s*²) / sqrt(N)`` (N = ``n_cells``), of the best swept agreement ``s*`` =
    ``s_best``: the images give no evidence that the surface moved (dh = 0).

    ``no_measurement``: not explained, but the DSM's prediction of the agreement at the best
    height (:func:`null_agreement` there, ``s_null``) is within the same margin of ``s*``: the
    best height is no evidence of a surface there either, so neither height is shown. Applied
    only where the best height is resolved from the DSM height: ``|offset|`` (best height minus
    DSM height) at least the agreement peak's full width at half maximum, ``2 sqrt(s* / a)`` from
    the parabola of curvature ``a`` = ``curv`` at the peak. Closer, a surface at the best height
    predicts the same agreement as the DSM does (both see the pattern within its own
    correlation length), and the test has no power. NaN inputs explain nothing."""
    s = np.asarray(s_best, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tol = k * (1.0 - s * s) / math.sqrt(n_cells)
        explained = np.asarray(s_dsm, np.float64) >= s - tol
        resolved = np.abs(offset) >= 2.0 * np.sqrt(np.clip(s, 0.0, None) / np.asarray(curv, np.float64))
        none = ~explained & resolved & (np.asarray(s_null, np.float64) >= s - tol)
    return explained, none
