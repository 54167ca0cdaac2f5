"""Two-scale structural evidence on ground cells: *which* cells of a changed neighbourhood changed
(numpy only; issue 7, H2).

The census window (:func:`offnadir.change.cells.window_cells`, 41 cells at 0.5 m) carries a new
building's disagreement half a window onto the unchanged ground beside it: there the window says
"something changed near here", and its calibrated probability is about one half on the building
and beside it alike (docs/change_detection.md, "One image per date"). A window a quarter as wide
(:func:`fine_window`, 11 cells) bleeds a quarter as far, but alone its null is wide (rejected
before: more false alarms on unchanged ground). Here the two scales are combined as two witnesses:

* the wide window's calibrated probability ``p`` is the prior that the cell's neighbourhood
  changed;
* the fine window's ratio ``R_f`` (same codes, parallax offsets and ground-pair rule as the wide
  one, :func:`ground_fine_evidence`) enters as a likelihood ratio ``LR_f = N1(z_f) / N0(z_f)``,
  ``z_f = log R_f``, of the two components of its own per-run mixture
  (:func:`offnadir.change.calibrate.fit` on the ground cells' ``R_f`` histogram; the changed
  density held at its peak beyond its mean, as in the calibration, and made non-decreasing:
  :func:`log_likelihood_ratio`): ``logit p' = logit p + log LR_f``;
* the fine witness may *raise* ``p`` only where both scales, each on its own, favour change: the
  wide one's posterior is above its prior (``p > pi_1``, the wide mixture's changed weight: its
  likelihood ratio is above 1; a wide calibration that fell back to the outlier test has no changed
  population to localise), and the fine one's own posterior (its mixture's prior) reaches one half
  (``log LR_f >= log(pi_0f / pi_1f)``). There the fine window decides which of the neighbourhood's
  cells changed. Elsewhere it may only lower ``p`` (a cell whose small neighbourhood agrees is less
  likely changed), so its wide null cannot create a false alarm where the wide window does not
  already see change.

No fine mixture (fewer than 200 cells, no separate changed component, ...): nothing changes.
Elevated cells keep their evidence (roofs: their own rules).
"""

from __future__ import annotations

import numpy as np

#: log-likelihood ratios are bounded (a density ratio of e^20 already decides any prior)
LLR_BOUND = 20.0


def fine_window(window: int) -> int:
    """Odd side of the fine window: a quarter of the wide window's half-side on each side
    (41 -> 11 cells): its evidence bleeds a quarter as far from a changed object."""
    return 2 * max(1, int(np.floor((int(window) // 2) / 4.0 + 0.5))) + 1


def ground_fine_evidence(base, target, ok_base, ok_target, elevated, window, offsets, sigmas, compare=None,
                         core=None):
    """The census ratio over the fine ``window`` for the **ground** cells (NaN on elevated cells):
    the smaller of the ratio over all code pairs and over the ground cells' pairs only (the ground
    stratum's rule of :func:`offnadir.change.cells.stratum_evidence`), smallest over ``offsets``."""
    from offnadir.change import evidence as EV

    e = EV.structural_evidence(base, target, ok_base, ok_target, window, offsets, sigmas, compare=compare, core=core)
    i0, i1, j0, j1 = core if core is not None else (0, base.shape[0], 0, base.shape[1])
    el = elevated[i0:i1, j0:j1]
    if elevated.any():
        ground = ~elevated if compare is None else (compare & ~elevated)
        eg = EV.structural_evidence(base, target, ok_base, ok_target, window, offsets, sigmas, compare=ground,
                                    core=core)
        e = np.fmin(e, eg)
    return np.where(el, np.nan, e)


def fine_tile(fine, elevated):
    """What the evidence pass adds per target and tile: the ground cells' fine evidence over the
    core (:func:`ground_fine_evidence`, taken by :func:`offnadir.change.cells.stratum_evidence` in
    the wide window's sweeps; ``elevated``: the core's) as stored, and its histogram (the
    calibration's key ``("local", t, 0)``)."""
    from offnadir.change import calibrate as C

    fine = np.asarray(fine).astype(np.float32)  # as stored (and read back by the maps pass)
    r = fine.astype(np.float64)
    return fine, C.histogram(r / (1.0 + r), ~elevated)


def apply(p, ground, fine, coarse_model, fine_model):
    """:func:`localise` on the ``ground`` cells of ``p`` (a copy; unchanged without a fine model)."""
    if fine_model is None:
        return p
    out = np.array(p, np.float64, copy=True)
    out[ground] = localise(out[ground], fine[ground], coarse_model, fine_model)
    return out


def log_likelihood_ratio(model):
    """Per bin of :func:`offnadir.change.calibrate.centres`: ``log N1(z) / N0(z)`` of a fitted
    mixture (the changed density held at its peak beyond its mean, made non-decreasing in ``z``,
    bounded by :data:`LLR_BOUND`); None when the model is a fallback (no changed component)."""
    from offnadir.change import calibrate as C

    if model is None or model.get("fallback") or not model.get("pi"):
        return None
    z = C.centres()
    mu, sd = model["mean"], model["sd"]
    # the log densities in closed form: both Gaussians underflow far in the left tail (|z - mu| >
    # ~38 sd; the table reaches z = -9), where floored densities gave log LR = 0 and the running
    # maximum then lifted every bin up to the components' crossing to 0: the fine window could not
    # lower any cell (1024² seeds 1-2, fine null sd 0.19-0.20; docs, t6 twelfth round)
    l0 = -0.5 * ((z - mu[0]) / sd[0]) ** 2 - np.log(sd[0])
    l1 = np.where(z > mu[1], 0.0, -0.5 * ((z - mu[1]) / sd[1]) ** 2) - np.log(sd[1])
    llr = l1 - l0
    return np.maximum.accumulate(np.clip(llr, -LLR_BOUND, LLR_BOUND))


def localise(p, fine_evidence, coarse_model, fine_model):
    """Ground cells' probability ``p`` (wide window, calibrated with ``coarse_model``) updated by the
    fine window's evidence (the census ratio ``R_f``, NaN: none) as the module docstring states.
    Returns a new array; cells without fine evidence keep ``p``."""
    from scipy.special import expit, logit

    from offnadir.change import calibrate as C

    p = np.asarray(p, np.float64)
    tab = log_likelihood_ratio(fine_model)
    if tab is None:
        return p.copy()
    r = np.asarray(fine_evidence, np.float64)
    fin = np.isfinite(r) & np.isfinite(p)
    llr = np.zeros(p.shape)
    llr[fin] = C.interp(C.to_z(r[fin] / (1.0 + r[fin])), C.centres(), tab)
    prior = None if coarse_model is None or coarse_model.get("fallback") else coarse_model["pi"][1]
    # the fine evidence alone, with its own mixture's prior, calls the cell changed (posterior >= 1/2)
    fine_says = llr >= np.log(fine_model["pi"][0] / fine_model["pi"][1])
    with np.errstate(invalid="ignore"):
        may_raise = ((p > prior) & fine_says) if prior is not None else np.zeros(p.shape, bool)
    llr = np.where(may_raise, llr, np.minimum(llr, 0.0))
    # the ufuncs on the cells they move only (element by element: the same numbers as over all cells)
    w = np.flatnonzero(fin & (llr != 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = expit(logit(np.clip(p.reshape(-1)[w], 0.0, 1.0)) + llr.reshape(-1)[w])
    out = p.copy()
    ok = np.isfinite(q)
    out.reshape(-1)[w[ok]] = q[ok]
    return out
