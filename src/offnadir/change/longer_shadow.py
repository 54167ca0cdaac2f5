"""Longer shadows as gain evidence for their caster (numpy/scipy; measured, not in the decision).

A roof raised after the DSM casts a longer shadow at the target date than the DSM predicts: under
the target's sun (elevation ``e``), a raise ``dz`` moves the shadow's far edge by ``dz / tan e``.
Per elevated patch (a roof or a tree of the old DSM) this module sums the target's evidence of
shadow over the patch's **fringe**: the cells the DSM predicts lit at the target (with every cell
within 1 predicted so too: one cell of discretisation at the predicted edge) that would be in the
patch's cast shadow were every elevated cell ``band * cell * tan e`` higher (``band`` cells of shadow
beyond the predicted edge; the caster found by the illumination kernel's own march,
:func:`offnadir.change.sun_kernels.caster_distances`, on the raised surface), usable in both images.
The evidence per cell is ``log f_s(x) / f_l(x)`` of the target's own shadow classifier
(:mod:`offnadir.change.shadow_observed`), so each patch's sum is the log likelihood ratio of "its
shadow grew" against "that ground is lit", the mirror of :mod:`offnadir.change.missing_shadow`.

:func:`fringe_sums` gives the per-patch sums; :func:`decide` the rule one would adopt (the same
form as the missing-shadow rule: ``L = S / 9``, a prior share estimated on the run's patches by EM,
and the fringe must look like shadow on average, past the classifier's midpoint). Not wired into
the pipeline: measured on the hard simulator (``python benchmarks/eval_longer_shadow.py --hard W``)
it finds the two raised roofs of seed 1 and also flags one unchanged roof of seed 2 on which a new
building's shadow falls (the fringe cannot tell whose shadow it is); figures and reasons in
``docs/change_detection.md``, section "Longer shadows, cut trees and seed 5".
"""

from __future__ import annotations

import math

import numpy as np

from offnadir.change import missing_shadow as MS

#: cells of extra shadow beyond the predicted edge that the fringe tests (see the module docstring)
BAND_CELLS = 4.0


def fringe(h, elevated_labels, codes_t, usable, cell: float, sun_az: float, sun_el: float, tol: float,
           max_dist: float, band: float = BAND_CELLS):
    """(rows, cols, caster labels) of the fringe cells (see the module docstring): lit under ``h``
    at the target (``codes_t`` 1..254, every cell within 1 so too and not in a cast shadow), in the
    cast shadow of an elevated cell once every elevated cell (``elevated_labels > 0``) is raised by
    ``band * cell * tan(sun_el)``, and ``usable`` with every cell within 1 usable. ``sun_az`` is
    clockwise from the grid's north (rows up), radians."""
    from scipy import ndimage as ndi

    from offnadir.change.sun_kernels import caster_distances

    h = np.ascontiguousarray(h, np.float64)
    lab = np.asarray(elevated_labels)
    codes_t = np.asarray(codes_t)
    ny, nx = h.shape
    di, dj = -math.cos(sun_az), math.sin(sun_az)
    rise = math.tan(max(sun_el, 1e-6)) * cell
    d0 = np.empty(h.shape)
    caster_distances(h, rise, di, dj, float(tol), float(max_dist), d0)
    h1 = np.where(lab > 0, h + band * rise, h)
    d1 = np.empty(h.shape)
    caster_distances(h1, rise, di, dj, float(tol), float(max_dist), d1)

    def sure(m):
        return ndi.minimum_filter(np.asarray(m, np.uint8), size=3, mode="nearest") == 1

    lit = (codes_t > 0) & (codes_t < 255) & (d0 < 0)
    fr = (d1 > 0) & (d0 < 0) & sure(lit) & sure(usable)
    ii, jj = np.nonzero(fr)
    d = d1[ii, jj]
    ci = ii + np.floor(d * di + 0.5).astype(np.int64)
    cj = jj + np.floor(d * dj + 0.5).astype(np.int64)
    ok = (ci >= 0) & (ci < ny) & (cj >= 0) & (cj < nx)
    ii, jj, ci, cj = ii[ok], jj[ok], ci[ok], cj[ok]
    lc = lab[ci, cj]
    keep = lc > 0
    return ii[keep], jj[keep], lc[keep]


def fringe_sums(h, elevated_labels, codes_t, usable, x_t, clf, cell: float, sun_az: float, sun_el: float,
                tol: float, max_dist: float, band: float = BAND_CELLS):
    """Per caster label over its :func:`fringe` cells: ``(ids, n, sum of log f_s(x) / f_l(x))`` of the
    target's intensities ``x_t`` (y, x) under its classifier ``clf`` (no prior)."""
    ii, jj, lc = fringe(h, elevated_labels, codes_t, usable, cell, sun_az, sun_el, tol, max_dist, band)
    x = np.asarray(x_t, np.float64)[ii, jj]
    fin = np.isfinite(x)
    llr = clf.cell_log_odds(x[fin]) - clf.prior
    ids, inv = np.unique(lc[fin], return_inverse=True)
    return ids, np.bincount(inv, minlength=len(ids)), np.bincount(inv, llr, minlength=len(ids))


def decide(n, s, clf) -> np.ndarray:
    """P(raised) per patch from :func:`fringe_sums`' ``n`` and ``s``: ``sigmoid(S / 9 + log pi/(1-pi))``
    with the prior share ``pi`` estimated by EM on the patches' ``S / 9``
    (:func:`offnadir.change.missing_shadow.prior_log_odds`), 0 where the fringe's mean
    ``log f_s / f_l`` does not reach the classifier's midpoint (it must look like shadow, not
    merely a little darker than lit ground)."""
    n = np.asarray(n, np.float64)
    s = np.asarray(s, np.float64)
    if not len(n):
        return np.zeros(0)
    llr = s / MS.CORRELATED
    prior = MS.prior_log_odds(llr)
    post = 1.0 / (1.0 + np.exp(-np.clip(llr + prior, -50.0, 50.0)))
    mid = -MS.midpoint(clf)  # halfway between the classes' mean log f_s / f_l
    with np.errstate(invalid="ignore", divide="ignore"):
        looks_shadow = s / np.maximum(n, 1) >= mid
    return np.where(looks_shadow & (n > 0), post, 0.0)
