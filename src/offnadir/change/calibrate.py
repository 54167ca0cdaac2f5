"""Unsupervised per-run calibration of an evidence into a change probability (numpy only).

Most of any scene is unchanged. The evidence ``E`` of every observable cell of one target (and
one stratum: elevated or ground cells, whose textures differ) is histogrammed in one reduction;
on the client, a two-component Gaussian mixture is fitted to ``z = logit(E)`` by EM on that
histogram:

* component 0 ("unchanged") starts at the median with the robust spread (1.4826 MAD), with
  weight 0.9; component 1 ("changed") starts one spread above the 90th percentile with the same
  spread and weight 0.1 — i.e. the start says only "most cells are unchanged";
* EM (weights, means, variances) runs to convergence on the bin counts; the component with the
  larger mean is "changed";
* ``p(z) = pi1 N1(z) / (pi0 N0(z) + pi1 N1(z))``, with ``N1`` held at its peak beyond the changed
  mean (evidence nearer "no agreement beyond chance" is not less likely change), capped below the
  null mean at its value there (a
  wider changed component lifts the far left tail again) and made non-decreasing in ``z`` (more
  evidence never lowers the probability); cells get ``p`` by linear
  interpolation in the table.

``anchor`` (optional): the value of ``z`` that means change for certain (for the census evidence
``R``, passed as ``E = R/(1+R)`` so that ``z = log R``, the anchor is 0: no agreement beyond
chance). A changed component whose mean is nearer the null's mean than the anchor is not change,
only a tail of the unchanged population (e.g. a stereo pair's views disagreeing on steep
slopes): the fit is treated as degenerate.

If the fit is degenerate (a changed component with weight < :data:`MIN_WEIGHT`, not
separated from the null by at least one null sigma, or held at the weight cap
:data:`MAX_CHANGED`: one skewed population split in two), the fallback is a one-sided test against the
robust null alone: ``p = 1 - 2 * (1 - Phi(max(z - median, 0) / spread))`` clipped to [0, 1],
which is 0.5 at 0.67 robust sigmas... no: it is the two-sided-tail complement, 0.5 at
``z = median + 0.674 spread`` — stated in the store's attributes as ``fallback``.
"""

from __future__ import annotations

import math

import numpy as np

#: logit range of the histogram and its bins (E in [1e-4, 1 - 1e-4])
Z_LO, Z_HI, N_BINS = -9.2, 9.2, 368
EPS = 1e-4
#: fewer cells than this give no calibration (probability 0)
MIN_CELLS = 200
EM_ITER = 500
#: a changed component lighter than this (0.5 % of the cells) is no component
MIN_WEIGHT = 0.005
#: "most of any scene is unchanged": the changed component's weight never exceeds one half
MAX_CHANGED = 0.5
#: components closer than one pooled sigma (Ashman's D < 1.41) are one population, not two
MIN_SEPARATION = 1.0
#: fallback outlier test: probability 0.5 this many robust sigmas above the median (0.13 % of a
#: Gaussian null)
FALLBACK_SIGMA = 3.0


def to_z(e):
    e = np.clip(np.asarray(e, np.float64), EPS, 1 - EPS)
    return np.log(e / (1 - e))


def histogram(e, mask=None) -> np.ndarray:
    """Counts of ``logit(e)`` over the fixed bins (finite cells in ``mask``)."""
    e = np.asarray(e)
    sel = np.isfinite(e) if mask is None else (mask & np.isfinite(e))
    c, _ = np.histogram(to_z(e[sel]), bins=N_BINS, range=(Z_LO, Z_HI))
    return c.astype(np.int64)


def centres() -> np.ndarray:
    edges = np.linspace(Z_LO, Z_HI, N_BINS + 1)
    return 0.5 * (edges[:-1] + edges[1:])


def _quantile(c, w, q):
    cw = np.cumsum(w)
    return float(c[min(np.searchsorted(cw, q * cw[-1]), len(c) - 1)])


def _normal(z, m, s):
    return np.exp(-0.5 * ((z - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def fit(counts, anchor: float | None = None) -> dict:
    """Two-component Gaussian mixture (EM on the histogram of ``logit(E)``) -> model dict
    (JSON-able): ``pi``, ``mean``, ``sd`` (unchanged, changed), ``n``, ``fallback``, ``table``
    (change probability per bin centre)."""
    from scipy.special import ndtr  # the normal CDF (scipy.stats costs seconds to import)

    w = np.asarray(counts, np.float64)
    z = centres()
    n = float(w.sum())
    if n < MIN_CELLS:
        return {"n": n, "pi": None, "mean": None, "sd": None, "fallback": True, "table": np.zeros(N_BINS).tolist(),
                "reason": f"fewer than {MIN_CELLS} cells: probability 0"}
    width = (Z_HI - Z_LO) / N_BINS
    med = _quantile(z, w, 0.5)
    spread = max((_quantile(z, w, 0.75) - _quantile(z, w, 0.25)) / 1.349, width)
    pi = np.array([0.9, 0.1])
    mu = np.array([med, _quantile(z, w, 0.9) + spread])
    sd = np.array([spread, spread])
    ll_old = -np.inf
    for _ in range(EM_ITER):
        dens = np.stack([pi[k] * _normal(z, mu[k], sd[k]) for k in range(2)]) + 1e-300
        tot = dens.sum(axis=0)
        r = dens / tot
        nk = (r * w).sum(axis=1)
        if np.any(nk < 1e-9):
            break
        pi = nk / n
        if pi[1] > MAX_CHANGED:  # most of a scene is unchanged: the changed weight is capped
            pi = np.array([1.0 - MAX_CHANGED, MAX_CHANGED])
        mu = (r * w * z).sum(axis=1) / nk
        sd = np.sqrt(np.maximum((r * w * (z - mu[:, None]) ** 2).sum(axis=1) / nk, width**2))
        ll = float((w * np.log(tot)).sum())
        if ll - ll_old < 1e-9 * abs(ll):
            break
        ll_old = ll
    sep = (mu[1] - mu[0]) / math.sqrt(0.5 * (sd[0] ** 2 + sd[1] ** 2))
    model = {"n": n, "pi": [float(pi[0]), float(pi[1])], "mean": [float(mu[0]), float(mu[1])],
             "sd": [float(sd[0]), float(sd[1])], "separation": float(sep), "null_median": med,
             "null_spread": spread}
    unlike = anchor is not None and mu[1] < 0.5 * (mu[0] + anchor)
    # EM wanted at least half of the cells "changed": the histogram is one skewed population split in
    # two, not a mostly unchanged scene with a changed part (the model this calibration assumes)
    pinned = pi[1] >= MAX_CHANGED - 1e-9
    model["anchor"] = anchor
    model["pinned"] = bool(pinned)
    if pi[1] < MIN_WEIGHT or sep < MIN_SEPARATION or unlike or pinned:
        p = ndtr((z - med) / spread - FALLBACK_SIGMA)
        if pi[1] < MIN_WEIGHT or sep < MIN_SEPARATION:
            why = "no separate changed component"
        elif pinned:
            why = f"changed component at the weight cap ({MAX_CHANGED:g}): one skewed population, not two"
        else:
            why = "changed component nearer the null than the evidence level of certain change"
        model.update(fallback=True, reason=f"{why}: robust outlier test, probability 0.5 at {FALLBACK_SIGMA} robust "
                                           "sigmas above the median")
    else:
        d0 = pi[0] * _normal(z, mu[0], sd[0])
        # beyond its mean the changed density stays at its peak: the evidence there is nearer "no
        # agreement beyond chance" (the anchor, certain change), which a Gaussian tail would call
        # less likely to be change than the changed cells' typical evidence
        d1 = pi[1] * np.where(z > mu[1], _normal(mu[1], mu[1], sd[1]), _normal(z, mu[1], sd[1]))
        p = d1 / np.maximum(d0 + d1, 1e-300)
        left = z < mu[0]  # a wider changed component lifts the far left tail again: not evidence
        p[left] = np.minimum(p[left], np.interp(mu[0], z, p))
        model.update(fallback=False)
    p = np.maximum.accumulate(np.clip(p, 0.0, 1.0))
    model["table"] = p.tolist()
    return model


def probability(e, model) -> np.ndarray:
    """Change probability of evidence ``e`` (NaN stays NaN) from a :func:`fit` model."""
    e = np.asarray(e, np.float64)
    out = np.interp(to_z(e), centres(), np.asarray(model["table"], np.float64))
    out[~np.isfinite(e)] = np.nan
    return out


def threshold_z(model, p: float = 0.5) -> float:
    """Smallest evidence (as logit) whose probability reaches ``p`` (inf if none)."""
    t = np.asarray(model["table"])
    k = np.nonzero(t >= p)[0]
    return float(centres()[k[0]]) if len(k) else math.inf
