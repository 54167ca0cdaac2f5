"""Shadows seen in an image but not predicted by the DSM (numpy/scipy; no dask, no numba).

The change stage predicts each image's cast shadows from the *old* DSM and the image's sun
(:func:`offnadir.change.kernels.illumination`). A building built or raised after the DSM casts a
shadow the DSM does not predict (an **unexplained shadow**); a demolished one leaves a predicted
shadow that is not there (a **missing shadow**). On the hard simulator (``python
benchmarks/measure_unexplained_shadows.py``, six seeds, true suns) 21 % of the ground false
alarms lie in unexplained shadows, and those shadows are as dark as the predicted ones (AUC of
"darker than a predicted-shadow cell" 0.27-0.61, against 0.89-0.98 for "darker than a lit cell").

**Classifier, calibrated per image on the run's own data** (:func:`calibrate`). The image's
intensity (band mean) at cells the prediction is sure of gives the two classes: *shadow* = cells
predicted without direct sun whose every neighbour within :data:`MARGIN` cells is predicted so
too, *lit* = cells predicted lit with no predicted shadow (nor unknown cell) within
:data:`MARGIN` cells; both with every cell within :data:`MARGIN` visible (an occlusion rim blends
the occluding roof into the resampled sample). ``MARGIN`` = 2: a predicted shadow edge may be off by one cell of grid
discretisation and one of resampling blur (the same allowance as :mod:`offnadir.change.shadow`).
Their intensities are histogrammed on :data:`BINS` equal-count bins of the pooled sample (so any
monotone radiometry gives the same bins), each count + 1/2 (Jeffreys), giving the densities
``f_s``, ``f_l``; the log likelihood ratio ``log f_s / f_l`` is made non-increasing in intensity
(pool-adjacent-violators, weighted by counts: the same surface in shadow is darker than in sun,
so more light can never make "shadow" likelier), and the prior is the shadow class's share ``π``
of the two. Per cell, the posterior log-odds of shadow is

    lo(x) = log f_s(x) / f_l(x) + log π / (1 - π),

averaged over the cell's 3 × 3 neighbourhood (:func:`log_odds`; resampling already mixes
neighbours, and the mean of nine halves the noise of a single sample), and the Bayes decision for
equal costs is **shadow where lo >= 0**. Because ``lo`` is non-increasing in intensity, that is a
threshold on intensity per image (``threshold`` in the report).

**Use** (:func:`observed_codes`): an image's illumination codes with the cells predicted lit but
seen shadowed set to 0 (unexplained shadows) and those predicted shadowed but seen lit set to
:data:`SEEN_LIT` (missing shadows). The change stage compares code pairs by structure only where
both dates had the same direct-sun state (:func:`offnadir.change.sun_pairs.same_sun`); with the seen
codes, a new building's shadow on unchanged ground is a nuisance there like a moved predicted
shadow, not change. Less than :data:`MIN_CELLS` cells in either class: no classifier (the image
keeps its predicted codes), said in the log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: cells between a training cell and the other class's prediction (see the module docstring)
MARGIN = 2
#: equal-count intensity bins of the likelihood ratio: 64 bins of >= MIN_CELLS/64 cells each
#: resolve the two modes' crossing to about 1.5 % of the sample's quantiles
BINS = 64
#: fewest training cells per class (as the calibration's mixture: fewer than 200 cells, no model)
MIN_CELLS = 200
#: code given to a cell predicted shadowed but seen lit: direct sun on flat ground (100 = 1.00)
SEEN_LIT = np.uint8(100)


@dataclass(frozen=True)
class ShadowClassifier:
    """Per image: bin edges (intensity), the non-increasing log likelihood ratio per bin and the
    prior log-odds (see the module docstring). Small and picklable (goes to the workers)."""

    edges: tuple
    log_lr: tuple
    prior: float
    threshold: float  #: intensity below which a cell is seen in shadow (before the 3x3 mean)
    n_shadow: int
    n_lit: int
    accuracy_shadow: float  #: share of the shadow training cells classified shadow
    accuracy_lit: float
    #: mean of ``log f_s / f_l`` over the shadow / the lit training cells (the two classes' centres
    #: on the scale the caster sums add up: a sample of lit ground averages about ``mean_llr_lit``)
    mean_llr_shadow: float = math.nan
    mean_llr_lit: float = math.nan
    #: median intensity of the lit training cells (the level :func:`relative_to_surface` maps a
    #: roof's own lit level to); NaN in stores written before it existed (no rescaling then)
    lit_median: float = math.nan

    def cell_log_odds(self, x):
        """Posterior log-odds of shadow per cell of ``x`` (NaN where ``x`` is not finite)."""
        from offnadir.change.kernels import bin_values

        return bin_values(x, self.edges, self.log_lr, self.prior)  # in numpy: searchsorted, look-up, + prior

    def report(self) -> dict:
        """What the store's ``change_sun`` attribute records (JSON: also what :meth:`from_report`
        rebuilds the classifier from)."""
        return dict(threshold=None if not math.isfinite(self.threshold) else self.threshold,
                    prior_shadow_share=1.0 / (1.0 + math.exp(-self.prior)), n_shadow=self.n_shadow,
                    n_lit=self.n_lit, accuracy_shadow=self.accuracy_shadow, accuracy_lit=self.accuracy_lit,
                    margin_cells=MARGIN, inner_edges=list(self.edges[1:-1]), log_lr=list(self.log_lr),
                    prior_log_odds=self.prior, mean_llr_shadow=self.mean_llr_shadow, mean_llr_lit=self.mean_llr_lit,
                    lit_median=None if not math.isfinite(self.lit_median) else self.lit_median)

    @classmethod
    def from_report(cls, r: dict) -> "ShadowClassifier":
        thr = r.get("threshold")
        return cls(edges=(-math.inf, *map(float, r["inner_edges"]), math.inf), log_lr=tuple(map(float, r["log_lr"])),
                   prior=float(r["prior_log_odds"]), threshold=math.nan if thr is None else float(thr),
                   n_shadow=int(r["n_shadow"]), n_lit=int(r["n_lit"]), accuracy_shadow=float(r["accuracy_shadow"]),
                   accuracy_lit=float(r["accuracy_lit"]), mean_llr_shadow=float(r.get("mean_llr_shadow", math.nan)),
                   mean_llr_lit=float(r.get("mean_llr_lit", math.nan)),
                   lit_median=math.nan if r.get("lit_median") is None else float(r["lit_median"]))


def all_within(m, radius: int):
    """Cells of the bool 2-D mask ``m`` whose every cell within ``radius`` (square) is set, the edges
    repeated: ``scipy.ndimage.minimum_filter(m.astype(uint8), size=2 radius + 1, mode="nearest") == 1``
    as shifted ANDs along each axis (the same cells, a few memory passes instead of the filter's)."""
    m = np.asarray(m, bool)
    a = m.copy()
    for k in range(1, int(radius) + 1):
        a[k:] &= m[:-k]
        a[:-k] &= m[k:]
    c = a.copy()
    for k in range(1, int(radius) + 1):
        c[:, k:] &= a[:, :-k]
        c[:, :-k] &= a[:, k:]
    return c


def training_classes(codes, usable, margin: int = MARGIN):
    """(shadow, lit) bool masks: cells predicted without direct sun (code 0) / lit (1..254) whose
    every cell within ``margin`` (square) is predicted the same and ``usable``: resampling mixes a
    cell with its neighbours, so a cell beside a predicted shadow edge or an occlusion rim (where
    the occluding roof is blended in) does not speak for its class."""
    codes = np.asarray(codes)

    def sure(m):
        return all_within(m, int(margin))

    ok = sure(usable)
    return sure(codes == 0) & ok, sure((codes > 0) & (codes < 255)) & ok


def _pav_nonincreasing(y, w):
    """Weighted least-squares non-increasing fit of ``y`` (pool adjacent violators)."""
    vals, wts, lens = [], [], []
    for yi, wi in zip(-np.asarray(y, np.float64), np.asarray(w, np.float64)):
        vals.append(yi)
        wts.append(wi)
        lens.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, l2 = vals.pop(), wts.pop(), lens.pop()
            v1, w1, l1 = vals.pop(), wts.pop(), lens.pop()
            vals.append((v1 * w1 + v2 * w2) / (w1 + w2))
            wts.append(w1 + w2)
            lens.append(l1 + l2)
    return -np.repeat(vals, lens)


def calibrate(x, codes, usable, margin: int = MARGIN, bins: int = BINS):
    """The :class:`ShadowClassifier` of one image from its intensities ``x`` (y, x), its predicted
    illumination codes and its usable cells; None with fewer than :data:`MIN_CELLS` training cells
    in either class."""
    x = np.asarray(x, np.float64)
    ok = np.asarray(usable, bool) & np.isfinite(x)
    sh, lit = training_classes(codes, ok, margin)
    xs, xl = x[sh], x[lit]
    if len(xs) < MIN_CELLS or len(xl) < MIN_CELLS:
        return None
    pooled = np.concatenate([xs, xl])
    # equal-count bins from an evenly strided sample of at most 2^16 values: the quantiles move by
    # about 1/sqrt(2^16) = 0.4 % of the sample, far below a bin's 1.6 % (and a sort of a million
    # values costs more than the rest of the calibration)
    step = max(1, len(pooled) >> 16)
    edges = np.unique(np.quantile(pooled[::step], np.linspace(0.0, 1.0, bins + 1)))
    if len(edges) < 3:
        return None
    inner = edges[1:-1]  # bins: (-inf, e1), [e1, e2), ..., [e_last, inf)
    cs = np.bincount(np.searchsorted(inner, xs, side="right"), minlength=len(inner) + 1) + 0.5
    cl = np.bincount(np.searchsorted(inner, xl, side="right"), minlength=len(inner) + 1) + 0.5
    raw = np.log(cs / cs.sum()) - np.log(cl / cl.sum())
    llr = _pav_nonincreasing(raw, cs + cl)
    prior = math.log(len(xs) / len(xl))
    post = llr + prior
    # first bin whose posterior falls below 0: its lower edge is the intensity threshold
    below = np.nonzero(post < 0)[0]
    if not len(below):
        thr = math.inf
    elif below[0] == 0:
        thr = -math.inf
    else:
        thr = float(inner[below[0] - 1])
    says_shadow = post >= 0  # per bin: the training cells' classification is their bin's
    return ShadowClassifier(edges=tuple(float(v) for v in np.r_[-np.inf, inner, np.inf]),
                            log_lr=tuple(float(v) for v in llr), prior=prior, threshold=thr,
                            n_shadow=int(len(xs)), n_lit=int(len(xl)),
                            accuracy_shadow=float((cs - 0.5)[says_shadow].sum() / len(xs)),
                            accuracy_lit=float((cl - 0.5)[~says_shadow].sum() / len(xl)),
                            mean_llr_shadow=float(np.dot(cs - 0.5, llr) / len(xs)),
                            mean_llr_lit=float(np.dot(cl - 0.5, llr) / len(xl)),
                            lit_median=float(np.median(xl[::max(1, len(xl) >> 16)])))


#: fewest sure-lit cells of a roof patch for its own lit level (:func:`relative_to_surface`): the
#: median of 20 samples lies within about 0.3 of the cells' spread of the patch's true median
MIN_REF = 20


def relative_to_surface(x, patch, ref_x, ref_patch, lit_median: float, min_ref: int = MIN_REF):
    """A shadow read on the surface that receives it. Intensities ``x`` of cells on roof patches
    ``patch`` (ids > 0; 0 = ground, kept as is) are rescaled by ``min(1, lit_median / m_P)``, ``m_P``
    the median of ``ref_x`` over that patch's cells in ``ref_patch`` (the patch's own sure-lit cells
    in the same image). Radiance is reflectance times irradiance, in sun and in sky light alike: a
    roof brighter than the lit class is brighter in its shadow by the same factor, and the pooled
    classifier (trained mostly on ground) reads its true shadow "lit". The factor is at most 1: a
    darker roof's shadow already reads shadow, and scaling it up lets unpredicted shadows among a
    roof's "lit" cells make its shadow read lit (Kahramanmaras img2 F1 0.558 -> 0.544 without the
    bound, branch h10). Returns ``(x', keep)``; ``keep`` is False on roof cells whose patch has fewer
    than ``min_ref`` reference cells (no level of its own: its brightness says nothing about
    shadow). ``lit_median`` not finite: ``x`` unchanged, every cell kept."""
    x = np.asarray(x, np.float64)
    patch = np.asarray(patch)
    keep = np.ones(x.shape, bool)
    roof = patch > 0
    if not math.isfinite(lit_median) or not roof.any():
        return x, keep
    out = x.copy()
    keep[roof] = False
    ref_x, ref_patch = np.asarray(ref_x, np.float64).ravel(), np.asarray(ref_patch).ravel()
    sel = np.isfinite(ref_x) & np.isin(ref_patch, np.unique(patch[roof]))
    ref_x, ref_patch = ref_x[sel], ref_patch[sel]
    if not len(ref_x):
        return out, keep
    # each patch's median reference: sorted by (patch, value), the middle of each patch's run
    order = np.lexsort((ref_x, ref_patch))
    rp, rx = ref_patch[order], ref_x[order]
    ids, start, count = np.unique(rp, return_index=True, return_counts=True)
    med = 0.5 * (rx[start + (count - 1) // 2] + rx[start + count // 2])
    good = (count >= min_ref) & (med > 0)
    ids, factor = ids[good], np.minimum(1.0, lit_median / med[good])
    if not len(ids):
        return out, keep
    r_idx = np.nonzero(roof)[0]
    pos = np.minimum(np.searchsorted(ids, patch[r_idx]), len(ids) - 1)
    hit = ids[pos] == patch[r_idx]
    out[r_idx[hit]] = x[r_idx[hit]] * factor[pos[hit]]
    keep[r_idx[hit]] = True
    return out, keep


def log_odds(x, usable, clf: ShadowClassifier):
    """Posterior log-odds of shadow per cell, averaged over the usable cells of its 3 x 3
    neighbourhood (NaN where none is usable)."""
    from scipy import ndimage as ndi

    lo = clf.cell_log_odds(np.where(np.asarray(usable, bool), x, np.nan))
    fin = np.isfinite(lo)
    s = ndi.uniform_filter(np.where(fin, lo, 0.0), size=3, mode="constant")
    n = ndi.uniform_filter(fin.astype(np.float64), size=3, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / n, np.nan)


def observed_codes(codes, x, usable, clf, where=None):
    """Illumination codes as seen: predicted-lit cells whose :func:`log_odds` is >= 0 set to 0
    (unexplained shadow), predicted-shadow cells whose log-odds is < 0 set to :data:`SEEN_LIT`
    (missing shadow); unknown (255) and unusable cells keep their code, and so do cells outside
    ``where`` (bool, default all). ``clf`` None: ``codes``."""
    codes = np.asarray(codes)
    if clf is None:
        return codes
    lo = log_odds(x, usable, clf)
    out = np.array(codes, np.uint8, copy=True)
    ok = np.asarray(usable, bool) & np.isfinite(lo)
    if where is not None:
        ok &= np.asarray(where, bool)
    out[ok & (codes > 0) & (codes < 255) & (lo >= 0)] = 0
    out[ok & (codes == 0) & (lo < 0)] = SEEN_LIT
    return out



def caster_walk(shadow, sources, h, cell: float, sun_az: float, sun_el: float, tol: float, max_cells: int):
    """The caster walk: from every ``sources`` cell walk towards the sun (``sun_az`` grid azimuth,
    ``sun_el`` elevation, radians; one cell per step, to the nearest cell) over the cells seen in
    ``shadow``; the first cell out of it, ``k`` steps away, is where the shadow's caster must
    stand, with a top at least ``h[c] + k cell tan(e)`` high to cast the shadow that far.
    Returns ``(src_i, src_j, exit_i, exit_j, lacks)`` for the walks that end inside the window
    within ``max_cells`` steps; ``lacks``: the old height at the exit is more than ``tol`` metres
    below what the shadow needs (the old surface cannot cast it)."""
    h = np.asarray(h, np.float64)
    ny, nx = h.shape
    di, dj = -math.cos(sun_az), math.sin(sun_az)
    rise = math.tan(max(sun_el, 1e-6)) * cell
    si, sj = np.nonzero(np.asarray(sources, bool) & np.isfinite(h))
    idx = np.arange(len(si))
    h0 = h[si, sj]
    sh = np.asarray(shadow, bool)
    out = [[], [], [], [], []]
    for k in range(1, int(max_cells) + 1):
        if not len(idx):
            break
        ti = si[idx] + int(math.floor(k * di + 0.5))
        tj = sj[idx] + int(math.floor(k * dj + 0.5))
        inside = (ti >= 0) & (ti < ny) & (tj >= 0) & (tj < nx)
        idx, ti, tj = idx[inside], ti[inside], tj[inside]
        done = ~sh[ti, tj]
        if done.any():
            ht = h[ti[done], tj[done]]
            lacks = ~(ht >= h0[idx[done]] + k * rise - tol)
            for lst, v in zip(out, (si[idx[done]], sj[idx[done]], ti[done], tj[done], lacks)):
                lst.append(v)
        idx = idx[~done]
    cat = [np.concatenate(v) if v else np.zeros(0, np.int64) for v in out]
    cat[4] = cat[4].astype(bool)
    return tuple(cat)


def missing_casters(shadow, unexplained, h, cell: float, sun_az: float, sun_el: float, tol: float, max_cells: int):
    """Per cell, how many walks of :func:`caster_walk` from the ``unexplained`` cells end there
    with the old surface lacking the caster (int32, the shape of ``h``)."""
    _, _, ei, ej, lacks = caster_walk(shadow, unexplained, h, cell, sun_az, sun_el, tol, max_cells)
    counts = np.zeros(np.shape(h), np.int32)
    np.add.at(counts, (ei[lacks], ej[lacks]), 1)
    return counts

