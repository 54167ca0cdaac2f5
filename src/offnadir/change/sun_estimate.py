"""The sun from an image and the DSM, when no metadata gives it.

For a candidate sun (azimuth, elevation) the DSM predicts which cells get no direct sun
(:func:`offnadir.change.kernels.illumination`: cast shadows and faces turned away). The image,
sampled on the DSM grid (the cube's ``value`` where ``visible``), is darker there if the candidate
is right. The fit statistic is rank-based, so any monotone radiometry (gain, offset, gamma, one
band or many) gives the same answer:

    r_k = rank of the sample of cell k among the usable cells, scaled to (0, 1)
    S   = usable cells predicted without direct sun, L = the other usable cells, p = |S| / n
    score = (mean_L r - mean_S r) * sqrt(p (1 - p)) / sqrt(1/12)

which is the correlation between the ranks and the "lit" indicator (point-biserial correlation
of the ranks). Unlike the Mann-Whitney AUC alone it is largest when the predicted shadows have
the true shadows' extent (a subset of the true shadows — a sun too high — has the same AUC but a
smaller p; a superset lowers the AUC), so it constrains the elevation as well as the azimuth.

Search, coarse to fine: every 10 degrees of azimuth and 5 degrees of elevation (10-80 degrees)
on a grid block-averaged to cells of at least 1 m (and at most 256² cells), a refinement there
(steps 2.5/1.25 degrees), then a last one on the native grid (steps 0.5/0.25 degrees); each
refinement is a 9 × 9 grid, re-centred (up to 4 times) while its best lies on its edge. The analysis window is the (at most
``max_side``²) part of the grid holding the most visible wall cells (height steps over 2 m). On a
cube, the change stage finds it without reading the grid whole (:mod:`offnadir.change.sun_window`:
wall counts per block in the dask graph, :func:`pick_window_from_counts`), the same window as
:func:`pick_window` (tested).

Uncertainty: a delete-one-block jackknife (4 × 4 blocks of the window) of the final search: the
arg-max is recomputed without each block; the jackknife standard deviation of the azimuth and
elevation, with the last grid step's quantisation (step / sqrt(12)) added in quadrature, is the
stated 1-sigma uncertainty. The best score's jackknife standard error gives ``z = score / SE``.

Acceptance: ``z >= 3`` and the whole-sky search's best z at least a threshold calibrated on
the image itself (the same search on the image shifted against the DSM; the reason and the rate
in :mod:`offnadir.change.sun_null`), and the best elevation more than two of its sigmas inside the
searched range (10-80 degrees; the refinements stay inside it). A best on the range's edge means
the score still rose there: no maximum was found, so the elevation is not determined. That is
the signature of an image whose brightness follows the shading of slopes rather than cast
shadows (s2p's Réunion pair: 106 m of relief and no walls; the score grows as a sun sinking
towards the horizon marks more of the slopes facing away dark, towards half the scene: best
10 degrees at azimuth 50 against the true 38.9 at azimuth 31.0 of its acquisition time). Otherwise the
image tells nothing about the sun (flat DSM, overcast, no shadows) and None is returned. The
threshold, the draws and the rate are logged and stated in :meth:`SunFit.describe` (the sun
record's detail).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np

from offnadir.change import kernels as K
from offnadir.change.sun_block_sums import block_sums
from offnadir.change.sun_null import NULL_ALPHA, draw_sums, null_shifts, shifted_draws
from offnadir.change.sun_null import null_threshold as _null_threshold
from offnadir.change.sun_window_choice import WALL_STEP_M, pick_window  # noqa: F401 (re-exported)

log = logging.getLogger("offnadir.change.sun_estimate")

#: acceptance: best score at least this many jackknife standard errors above zero
Z_MIN = 3.0
N_BLOCKS = 4


@dataclass(frozen=True)
class SunFit:
    azimuth: float  #: degrees clockwise from true north
    elevation: float
    sigma_azimuth: float
    sigma_elevation: float
    score: float  #: point-biserial correlation of the ranks with the lit prediction
    z: float  #: score / jackknife standard error
    n_cells: int
    shadow_fraction: float
    window: tuple  #: (i0, i1, j0, j1) analysed
    z_sky: float = math.nan  #: z of the best candidate of the whole-sky (first) search
    null_threshold: float = math.nan  #: what ``z_sky`` had to reach (:func:`null_threshold`)
    null_z: tuple = ()  #: the null draws' best z (:func:`null_shifts`)
    #: the searched elevation range (lo, hi) when the best lies within two of its own sigmas of
    #: an edge: a maximum beyond the range cannot be excluded, so the elevation was not found
    #: (module doc); else ()
    edge_range: tuple = ()

    def accepted(self) -> bool:
        """The best fit is significant: ``z >= Z_MIN``, the whole-sky search's best z at least
        the null threshold, and the best elevation not on the searched range's edge (module doc)."""
        return bool(self.score > 0 and self.z >= Z_MIN and self.z_sky >= self.null_threshold
                    and not self.edge_range)

    def describe(self) -> str:
        return (f"estimated from the image and the DSM: score {self.score:.3f} (z {self.z:.1f}), "
                f"uncertainty +/-{self.sigma_azimuth:.1f} deg azimuth, +/-{self.sigma_elevation:.1f} deg elevation "
                f"(1 sigma), {100 * self.shadow_fraction:.1f} % of {self.n_cells} cells predicted in shadow; "
                f"whole-sky z {self.z_sky:.2f} against the null threshold {self.null_threshold:.2f} "
                f"({len(self.null_z)} draws of the image shifted against the DSM, false-acceptance rate {NULL_ALPHA:g})"
                + (f"; best on the edge of the searched elevations {self.edge_range[0]:g}-{self.edge_range[1]:g} deg "
                   f"(no maximum inside them: elevation not determined)" if self.edge_range else ""))


def _ranks(v, ok):
    from scipy.stats import rankdata

    r = np.full(v.shape, np.nan)
    r[ok] = (rankdata(v[ok]) - 0.5) / ok.sum()
    return r


def _block_mean(a, f):
    ny, nx = (a.shape[0] // f) * f, (a.shape[1] // f) * f
    b = a[:ny, :nx].reshape(ny // f, f, nx // f, f)
    if not np.isnan(b).any():
        return b.mean(axis=(1, 3))
    with warnings.catch_warnings():  # all-NaN blocks stay NaN (unusable)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(b, axis=(1, 3))


class _Level:
    """One resolution: heights, ranks, block labels; scores candidates (grid azimuths, radians)."""

    def __init__(self, h, r, cell, tol):
        self.h = np.ascontiguousarray(h, np.float64)
        self.ok = np.isfinite(r) & np.isfinite(h)
        self.r = np.where(self.ok, r, 0.0)
        self.cell = cell
        self.tol = tol
        fin = np.isfinite(h)
        self.relief = float(np.nanmax(h) - np.nanmin(h)) if fin.any() else 0.0
        ny, nx = h.shape
        bi = np.minimum(np.arange(ny) * N_BLOCKS // max(ny, 1), N_BLOCKS - 1)
        bj = np.minimum(np.arange(nx) * N_BLOCKS // max(nx, 1), N_BLOCKS - 1)
        self.block = (bi[:, None] * N_BLOCKS + bj[None, :])
        self.buf = np.empty(h.shape, np.uint8)
        self.r_img = np.asarray(r, np.float64)  # the image's ranks, NaN where unusable (for the null draws)
        self.fin_flat = np.isfinite(self.h).ravel()
        self.draw_cache = {}

    def sums(self, az_grid, el):
        """Per block: n usable, n shadowed, rank sum, rank sum in shadow (arrays of N_BLOCKS²)."""
        max_dist = self.relief / (math.tan(el) * self.cell) + 2.0
        K.illumination(self.h, self.cell, az_grid, el, self.tol, 1.0, max_dist, self.buf)
        return block_sums(self.buf.ravel(), self.ok.ravel(), self.block.ravel(), self.r.ravel(), K.SHADED,
                          K.UNKNOWN, N_BLOCKS * N_BLOCKS)

    def sums_draws(self, az_grid, el, x):
        """:meth:`sums` of the image and of every null draw ``x`` (:func:`~offnadir.change.sun_null.
        shifted_draws`) under one candidate sun, from one illumination run: arrays (4, n_blocks)
        and (K, 4, n_blocks)."""
        own = self.sums(az_grid, el)  # leaves the candidate's illumination in self.buf
        return own, draw_sums(self.buf.ravel(), self.block.ravel(), self.fin_flat, x, N_BLOCKS * N_BLOCKS,
                              self.draw_cache)


def _score(s):
    """score from summed (n, ns, rsum, rsum_s) (last axis); -inf where undefined."""
    n, ns, rs, rss = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
    nl = n - ns
    with np.errstate(invalid="ignore", divide="ignore"):
        p = ns / n
        d = (rs - rss) / nl - rss / ns
        out = d * np.sqrt(p * (1 - p)) * math.sqrt(12.0)
    return np.where((ns >= 10) & (nl >= 10), out, -np.inf)


def _score_batch(level, x, cands):
    """Per candidate of ``cands`` ((grid azimuth, elevation) in radians): :meth:`_Level.sums`, or
    with null draws ``x`` :meth:`_Level.sums_draws`. On a copy of ``level`` with buffers of its own:
    batches run at once on threads that share ``level`` (:mod:`offnadir.change.sun_tasks`)."""
    lv = copy.copy(level)
    lv.buf, lv.draw_cache = np.empty_like(level.buf), {}
    return [lv.sums(az, el) if x is None else lv.sums_draws(az, el, x) for az, el in cands]


#: how the candidates of one search are scored: ``run(fn, items, *shared)`` returns ``fn(*shared,
#: items)`` (a list, one result per item, in order) however it splits the items
#: (:func:`offnadir.change.sun_tasks.client_scoring` spreads them over a cluster's workers)
_RUN = contextvars.ContextVar("offnadir_sun_candidates", default=None)


def _serial(fn, items, *shared):
    return fn(*shared, items)


@contextlib.contextmanager
def candidate_runner(run):
    """Within it, the searches score their candidates with ``run`` (see :data:`_RUN`); None: here."""
    tok = _RUN.set(run)
    try:
        yield
    finally:
        _RUN.reset(tok)


def _search(level, azs, els, shifts=None):
    """Per-block sums for every candidate: array (n_az, n_el, 4, n_blocks); with null ``shifts``
    also the best ``z`` (:func:`_z_at_best`) of the same search for each null draw (the image
    shifted against the DSM by each of them): array (K,)."""
    x = None if shifts is None else shifted_draws(level.r_img, level.h, shifts)
    cands = [(math.radians(az), math.radians(el)) for az in azs for el in els]
    res = (_RUN.get() or _serial)(_score_batch, cands, level, x)
    shape = (len(azs), len(els), 4, N_BLOCKS * N_BLOCKS)
    if x is None:
        return np.stack(res).reshape(shape)
    s = np.stack([r[0] for r in res]).reshape(shape)
    out = np.moveaxis(np.stack([r[1] for r in res]), 1, 0).reshape((len(shifts),) + shape)
    return s, np.array([_z_at_best(o)[1] for o in out])


def _search_with_nulls(level, azs, els, shifts):
    return _search(level, azs, els, shifts)


def null_threshold(z_null) -> float:
    """:func:`offnadir.change.sun_null.null_threshold` at least ``Z_MIN``."""
    return _null_threshold(z_null, Z_MIN)


def _z_at_best(s):
    """(score, z, (a, e)) of the best candidate of per-block sums ``s`` (n_az, n_el, 4, n_blocks):
    its score over the delete-one-block jackknife standard error of that score."""
    tot = s.sum(-1)
    sc = _score(tot)
    a, e = np.unravel_index(np.argmax(sc), sc.shape)
    nb = s.shape[-1]
    jsc = np.array([_score(tot[a, e] - s[a, e, :, b]) for b in range(nb)])
    fin = np.isfinite(jsc)
    se = math.sqrt((nb - 1) / nb * float(np.sum((jsc[fin] - jsc[fin].mean()) ** 2))) if fin.sum() > 2 else math.inf
    best = float(sc[a, e])
    return best, (best / se if se > 0 else math.inf), (a, e)


def estimate_sun(h, values, usable, cell: float, north_deg: float = 0.0, *, tol: float = 0.3,
                 max_side: int = 512, el_range=(10.0, 80.0)) -> SunFit | None:
    """Estimate the sun from one image sampled on the DSM grid: :func:`fit_sun`, then its
    acceptance test (:meth:`SunFit.accepted`); None when either fails (logged)."""
    fit = fit_sun(h, values, usable, cell, north_deg, tol=tol, max_side=max_side, el_range=el_range)
    if fit is None:
        return None
    if fit.edge_range:
        log.warning("sun estimate rejected: the best fit (azimuth %.1f, elevation %.1f, score %.3f, z %.1f) "
                    "lies within two sigmas of the edge of the searched elevations %g-%g deg: the score has no "
                    "maximum inside them, so the elevation is not determined (e.g. an image whose brightness "
                    "follows the shading of slopes rather than cast shadows)", fit.azimuth, fit.elevation,
                    fit.score, fit.z, *fit.edge_range)
        return None
    if not fit.accepted():
        log.warning("sun estimate rejected: best fit azimuth %.1f elevation %.1f has score %.3f, z %.1f (minimum "
                    "%.0f), whole-sky z %.2f against the null threshold %.2f (the image's dark regions do not follow "
                    "the DSM's shadows)", fit.azimuth, fit.elevation, fit.score, fit.z, Z_MIN, fit.z_sky,
                    fit.null_threshold)
        return None
    log.info("sun estimate accepted: whole-sky z %.2f >= null threshold %.2f (%d shifted draws, best z %.2f-%.2f; "
             "false-acceptance rate %g)", fit.z_sky, fit.null_threshold, len(fit.null_z), min(fit.null_z),
             max(fit.null_z), NULL_ALPHA)
    return fit


def fit_sun(h, values, usable, cell: float, north_deg: float = 0.0, *, tol: float = 0.3,
            max_side: int = 512, el_range=(10.0, 80.0)) -> SunFit | None:
    """The best sun of the search for one image sampled on the DSM grid, with its null draws,
    accepted or not (None only when there is nothing to fit: too few cells, no relief).

    ``h`` (y, x) surface heights (m), ``values`` (y, x) image samples (any radiometry; e.g. the
    band mean), ``usable`` (y, x) bool: cells visible in the image with a finite sample; ``cell``
    metres; ``north_deg`` the grid azimuth of true north (degrees, added to a true azimuth to get
    a grid azimuth). ``tol``: metres a cell must rise above a sun ray to shadow (as the change
    stage). Returns None when the fit is not significant (see the module doc)."""
    h = np.asarray(h, np.float64)
    v = np.asarray(values, np.float64)
    ok = np.asarray(usable, bool) & np.isfinite(v) & np.isfinite(h)
    if ok.sum() < 1000:
        log.info("sun estimate: only %d usable cells; not estimated", int(ok.sum()))
        return None
    i0, i1, j0, j1 = pick_window(h, ok, max_side)
    h, v, ok = h[i0:i1, j0:j1], v[i0:i1, j0:j1], ok[i0:i1, j0:j1]
    if not np.isfinite(h).any() or float(np.nanmax(h) - np.nanmin(h)) < 1.0:
        log.info("sun estimate: the DSM has no relief to cast shadows; not estimated")
        return None
    r = _ranks(v, ok)
    hr = np.where(np.isfinite(h), h, np.nan)
    f = max(1, int(math.ceil(1.0 / cell)), int(math.ceil(max(h.shape) / 256)))
    if f > 1:
        rc = _block_mean(np.where(ok, r, np.nan), f)
        hc = _block_mean(hr, f)
        coarse = _Level(hc, rc, cell * f, tol)
    else:
        coarse = None
    fine = _Level(hr, r, cell, tol)
    lo, hi = el_range
    # level 0: coarse grid, whole sky
    azs = np.arange(0.0, 360.0, 10.0)
    els = np.arange(lo, hi + 1e-9, 5.0)
    lo, hi = float(els[0]), float(els[-1])  # the elevations the whole-sky search covers
    # with the same search on the image shifted against the DSM: the best z without association
    s, z_null = _search(coarse or fine, azs, els, null_shifts(*(coarse or fine).h.shape))
    sc = _score(s.sum(-1))
    a, e = np.unravel_index(np.argmax(sc), sc.shape)
    az0, el0 = azs[a], els[e]
    z_sky = _z_at_best(s)[1]
    z_thr = null_threshold(z_null)
    # levels 1 and 2: native grid around the best
    for level, da, de in ((coarse or fine, 2.5, 1.25), (fine, 0.5, 0.25)):
        for _ in range(4):  # re-centre while the best lies on the edge of the local grid
            azs = az0 + da * np.arange(-4, 5)
            # within the elevations the whole-sky search covered: outside them nothing was
            # compared, and the null threshold was calibrated on that range only
            els = np.unique(np.clip(el0 + de * np.arange(-4, 5), lo, hi))
            s = _search(level, azs, els)
            sc = _score(s.sum(-1))
            a, e = np.unravel_index(np.argmax(sc), sc.shape)
            edge = a in (0, len(azs) - 1) or (e in (0, len(els) - 1) and lo < els[e] < hi)
            az0, el0 = azs[a], els[e]
            if not edge:
                break
    best = float(sc[a, e])
    # jackknife over blocks
    tot = s.sum(-1)
    nb = N_BLOCKS * N_BLOCKS
    jaz, jel, jsc = [], [], []
    for b in range(nb):
        sb = _score(tot - s[..., b])
        k = np.unravel_index(np.argmax(sb), sb.shape)
        jaz.append(azs[k[0]])
        jel.append(els[k[1]])
        jsc.append(sb[a, e])
    jaz, jel, jsc = np.asarray(jaz), np.asarray(jel), np.asarray(jsc)
    jk = (nb - 1) / nb
    daz = (jaz - az0 + 180.0) % 360.0 - 180.0
    sig_az = math.sqrt(jk * float(np.sum((daz - daz.mean()) ** 2)) + da**2 / 12.0)
    sig_el = math.sqrt(jk * float(np.sum((jel - jel.mean()) ** 2)) + de**2 / 12.0)
    fin = np.isfinite(jsc)
    se = math.sqrt(jk * float(np.sum((jsc[fin] - jsc[fin].mean()) ** 2))) if fin.sum() > 2 else math.inf
    z = best / se if se > 0 else math.inf
    n_ok = int(tot[a, e, 0])
    fit = SunFit(azimuth=float((az0 - north_deg) % 360.0), elevation=float(el0), sigma_azimuth=sig_az,
                 sigma_elevation=sig_el, score=best, z=float(z), n_cells=n_ok,
                 shadow_fraction=float(tot[a, e, 1] / max(n_ok, 1)), window=(i0, i1, j0, j1),
                 z_sky=float(z_sky), null_threshold=float(z_thr), null_z=tuple(float(v) for v in z_null),
                 edge_range=(lo, hi) if min(el0 - lo, hi - el0) <= 2.0 * sig_el else ())
    return fit
