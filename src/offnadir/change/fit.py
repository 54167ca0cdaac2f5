"""IR-MAD and the robust scales from one pass over the cube: a fixed sample of cells gathered once,
then every iteration on the client, in memory. numpy only (no dask).

Before, each IR-MAD iteration was a pass over the whole cube (read from Zarr) returning weighted
moments; up to ``irmad_iterations`` passes, then one more for the robust scales. The moments are
means and covariances, so a sample estimates them; here every tile returns its sampled cells
(:func:`sample_tile`), the client iterates on them (:func:`fit_models`) and takes the robust scales,
``1.4826 median |M_i|``, and the NDVI histograms from the same cells. The iterations are the same
functions as before (:func:`offnadir.change.irmad.accumulate` / :func:`~offnadir.change.irmad.solve`
/ :func:`~offnadir.change.irmad.weights`) on the sample instead of the whole cube.

Sample: the cells whose hash of their **global** grid position (``gi, gj``) falls under a rate, so
the sample does not depend on the tiling; ``rate = min(1, SAMPLE_CELLS / cells visible in the
base)``, so a scene of up to :data:`SAMPLE_CELLS` cells is used whole (and the fit equals the
whole-cube fit to rounding: tested). Why :data:`SAMPLE_CELLS` = 2^18: the sampling standard error
of a canonical correlation is ``(1 - rho^2) / sqrt(n) <= 0.002`` and the relative standard error of
a median of ``|M_i|`` about ``1.25 / sqrt(n) = 0.0024``, both below the 2.3 % resolution of the
robust-scale histogram (:data:`offnadir.change.irmad.HIST_EDGES`) that set the criteria's scales
before; it costs ``2 p`` float32 per cell and target (8 MiB for 4 bands).
"""

from __future__ import annotations

import numpy as np

from offnadir.change import irmad

#: sampled cells per target (about; see the module docstring)
SAMPLE_CELLS = 2**18
#: IR-MAD strata of the patch method: 0 lit at both dates (or sun unknown), 1 shaded at both
N_STRATA = 2
NDVI_BINS = 200


def sample_rate(n_visible_base: float) -> float:
    return float(min(1.0, SAMPLE_CELLS / max(float(n_visible_base), 1.0)))


def sampled(gi0: int, gj0: int, shape, rate: float) -> np.ndarray:
    """Cells of a window starting at global (gi0, gj0) that belong to the sample (bool)."""
    if rate >= 1.0:
        return np.ones(shape, bool)
    from offnadir.change.kernels import sampled_cells

    out = np.empty(shape, np.bool_)
    sampled_cells(int(gi0), int(gj0), float(rate), out)  # the hash below, in one numba pass (tested equal)
    return out


def sampled_numpy(gi0: int, gj0: int, shape, rate: float) -> np.ndarray:
    """:func:`sampled` as numpy expressions (the reference of its test)."""
    if rate >= 1.0:
        return np.ones(shape, bool)
    i = np.arange(gi0, gi0 + shape[0], dtype=np.uint64)[:, None]
    j = np.arange(gj0, gj0 + shape[1], dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        x = i * np.uint64(0x9E3779B97F4A7C15) ^ (j + np.uint64(0x632BE59BD9B4E019)) * np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(31)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2.0**53) < rate


def usable(vis, val, lit, t, use_sun, shaded_both: bool = True):
    """(usable mask, stratum, illumination-changed mask) of target t for the patch method.

    Cells are compared when visible in both images with finite values and, when the sun is
    known, the same direct-sun state at both dates: lit at both (stratum 0, also when unknown)
    or without direct sun at both (stratum 1); each stratum gets its own IR-MAD model. Cells lit
    at one date only (a cast shadow that moved, a face turned away from a lower sun) are not
    compared: their radiometric change is illumination, not change. ``shaded_both=False`` (the
    patch criteria): cells without direct sun at either date are not compared by radiance at all
    (shadows widened by the sun's uncertainty, :mod:`offnadir.change.shadow`): in a shadow the
    radiance is sky light, which the other date's sun, the surroundings and a neighbour built or
    demolished change without any change of the cell; on the hard simulator scenes this removed
    86 % of the false alarms on shadowed ground (the structural evidence still covers those
    cells). (Changes of incidence on lit sloped faces are left to the criteria: setting those
    cells aside too lost more changed roofs than it saved false alarms on the simulator scenes.)"""
    from offnadir.change.kernels import SHADED, UNKNOWN

    ok = (vis[0] == 1) & (vis[t] == 1) & np.all(np.isfinite(val[0]), axis=0) & np.all(np.isfinite(val[t]), axis=0)
    stratum = np.zeros(ok.shape, np.int64)
    moved = np.zeros(ok.shape, bool)
    if use_sun:
        known = (lit[0] != UNKNOWN) & (lit[t] != UNKNOWN)
        b, g = lit[0] == SHADED, lit[t] == SHADED
        moved = ok & known & ((b != g) | (not shaded_both and b))
        stratum[known & b & g] = 1
        ok &= ~moved
    return ok, stratum, moved


def sample_tile(vis, val, lit, ctx, gij0, rate, want_patch, want_ortho) -> dict:
    """The tile's sampled cells per target: ``("patch", t)`` -> (x, y, stratum) and
    ``("ortho", t)`` -> (x, y) with x, y (n, p) float32 rows of base and target bands."""
    from offnadir.change.ortho import usable as ortho_usable

    if rate < 1.0:  # the sampled cells first (row-major, as a mask selects them), then the usable
        # tests on those only: the same rows in the same order as testing the whole tile and selecting
        ii, jj = np.nonzero(sampled(gij0[0], gij0[1], vis.shape[1:], rate))
        vis, val = vis[:, ii, jj], val[:, :, ii, jj]
        lit = None if lit is None else lit[:, ii, jj]
    out = {}
    for t in ctx.targets:
        if want_patch:
            ok, st, _ = usable(vis, val, lit, t, ctx.use_sun)
            out[("patch", t)] = (val[0][:, ok].T.astype(np.float32), val[t][:, ok].T.astype(np.float32),
                                 st[ok].astype(np.int8))
        if want_ortho:
            ok = ortho_usable(vis, val, t)
            out[("ortho", t)] = (val[0][:, ok].T.astype(np.float32), val[t][:, ok].T.astype(np.float32))
    return out


def add_samples(*parts) -> dict:
    """Tree-reduction step: concatenate the samples of several tiles."""
    out = {}
    for k in parts[0]:
        out[k] = tuple(np.concatenate([p[k][a] for p in parts if k in p]) for a in range(len(parts[0][k])))
    return out


def _weights_strata(ms, x, y, s):
    """Each cell's no-change probability under its stratum's model (:func:`irmad.weights`; 1 where
    no model applies): the squared MAD norms of every stratum in one pass
    (:func:`irmad.sq_norms_strata`, the numbers of ``irmad.weights``' ``(M * M).sum(axis=1)``) and
    one ``chi2_sf`` over the cells (element by element: the same numbers), not a copy of the
    cells, the (n, p) variates and their squares per stratum and iteration.
    :func:`_weights_strata_per_stratum` is that form (kept for the twin test)."""
    ms = list(ms)[:N_STRATA]
    dof = {m.p for m in ms if m is not None}
    if len(dof) != 1:  # no model, or models of different band counts: the per-stratum form
        return _weights_strata_per_stratum(ms, x, y, s)
    z, used = irmad.sq_norms_strata(ms, x, y, s)
    w = np.ones(len(x))
    w[used] = irmad.chi2_sf(z[used], dof.pop())
    return w


def _weights_strata_per_stratum(ms, x, y, s):
    w = np.ones(len(x))
    for k in range(N_STRATA):
        sel = s == k
        if sel.any():
            m = ms[k] if ms[k] is not None else ms[0]
            w[sel] = irmad.weights(m, x[sel], y[sel])
    return w


def fit_models(x, y, stratum, ref_x, ref_y, *, n_strata: int, iterations: int, tol: float):
    """IR-MAD per stratum on sampled cells, iterated in memory until every stratum's canonical
    correlations settle (or ``iterations``): list of :class:`~offnadir.change.irmad.MadModel`
    (None: too few cells) and the number of iterations run."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    s = np.asarray(stratum, np.int64)
    models = None
    it = 0
    for it in range(1, iterations + 1):
        w = np.ones(len(x)) if models is None else _weights_strata(models, x, y, s)
        sums = irmad.accumulate(irmad.empty_sums(n_strata, x.shape[1]), x, y, w, s, ref_x, ref_y)
        new = [irmad.solve(sums, k, ref_x, ref_y, iterations=it, previous=None if models is None else models[k],
                           tol=tol) for k in range(n_strata)]
        models = new
        if new[0] is None or all(m is None or m.converged for m in new):
            break
    return models, it


def mad_cells(models, x, y, stratum):
    """Standardised MAD variates of cells with per-cell stratum models (fallback: stratum 0)."""
    M = np.full(x.shape, np.nan)
    for k in range(len(models)):
        m = models[k] if models[k] is not None else models[0]
        sel = stratum == k
        if m is None or not sel.any():
            continue
        M[sel] = m.mad(x[sel], y[sel])
    return M


def robust_scales(models, x, y, stratum) -> list:
    """Per stratum, the robust scale ``1.4826 median |M_i|`` of the sampled cells (None: none)."""
    # mad_cells' numbers (mad_strata without scales divides by 1.0) without a copy of each stratum's rows
    M = irmad.mad_strata(models, [None] * len(models), np.asarray(x, np.float64), np.asarray(y, np.float64), stratum)
    out = []
    for k in range(len(models)):
        sel = stratum == k
        out.append(irmad.robust_scale(irmad.histogram(np.abs(M[sel]))) if sel.any() else None)
    return out


def ndvi(red, nir):
    with np.errstate(all="ignore"):
        d = nir + red
        return np.where(d > 0, (nir - red) / np.where(d > 0, d, 1.0), 0.0)


def ndvi_histograms(x, y, red, nir) -> tuple:
    """NDVI histograms (base, target) of sampled cells over [-1, 1]."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    return tuple(np.histogram(ndvi(v[:, red], v[:, nir]), bins=NDVI_BINS, range=(-1.0, 1.0))[0].astype(np.float64)
                 for v in (x, y))


def fit_all(samples, ctx, names, want_patch, want_ortho, ndvi_min, targets=None) -> dict:
    """Everything the stage fits on the sample, per target (``targets``: a subset, else all):
    IR-MAD models (patch method per stratum, ortho baseline), robust scales, NDVI thresholds
    (Otsu, at least ``ndvi_min``) and the ortho baseline's per-cell test
    (:func:`offnadir.change.ortho.threshold`). The fits are independent: :func:`merge_fits` joins
    the parts of separate calls (one per target and method, run in parallel by the stage)."""
    from offnadir.change.decide import otsu
    from offnadir.change.ortho import threshold
    from offnadir.errors import DataError

    opts, p = ctx.opts, ctx.n_bands
    out = {"models": {}, "omodels": {}, "scales": {}, "oscales": {}, "ndvi": {}, "iterations": {}, "ortho": {},
           "sampled": {}}
    for t in (ctx.targets if targets is None else targets):
        if want_patch:
            x, y, s = samples[("patch", t)]
            ms, it = fit_models(x, y, s, ctx.band_mean[0], ctx.band_mean[t], n_strata=N_STRATA,
                                iterations=opts.irmad_iterations, tol=opts.irmad_tolerance)
            if ms[0] is None:
                raise DataError(f"too few cells visible in both the base and image {names[t]} to fit IR-MAD "
                                f"({len(x)} sampled; need {max(10 * p, 2 * p + 2)}).")
            out["models"][t], out["iterations"][f"patch/{t}"], out["sampled"][f"patch/{t}"] = ms, it, len(x)
            out["scales"][t] = robust_scales(ms, x, y, s)
            if ctx.red is not None and ctx.nir is not None:
                out["ndvi"][t] = tuple(float(opts.ndvi_threshold) if opts.ndvi_threshold is not None else
                                       max(ndvi_min, otsu(h, -1.0, 1.0))
                                       for h in ndvi_histograms(x, y, ctx.red, ctx.nir))
        if want_ortho:
            x, y = samples[("ortho", t)]
            zero = np.zeros(len(x), np.int64)
            ms, it = fit_models(x, y, zero, ctx.band_mean[0], ctx.band_mean[t], n_strata=1,
                                iterations=opts.irmad_iterations, tol=opts.irmad_tolerance)
            if ms[0] is None:
                raise DataError(f"too few cells in both the base and image {names[t]} to fit IR-MAD for the ortho "
                                "baseline.")
            out["omodels"][t], out["iterations"][f"ortho/{t}"], out["sampled"][f"ortho/{t}"] = ms[0], it, len(x)
            out["oscales"][t] = robust_scales(ms, x, y, zero)[0]
            out["ortho"][t] = (ms[0],) + threshold(opts, ms[0], out["oscales"][t])
    return out


def merge_fits(*parts) -> dict:
    """One :func:`fit_all` result from the results of calls on parts (their entries in order)."""
    out = {k: {} for k in parts[0]}
    for p in parts:
        for k, v in p.items():
            out[k].update(v)
    return out
