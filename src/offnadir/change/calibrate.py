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
  mean (``plateau``, the default: evidence nearer "no agreement beyond chance" is not less likely
  change; without it the Gaussian tail, and ``p`` is held at its maximum), capped below the
  null mean at its value there (a
  wider changed component lifts the far left tail again) and made non-decreasing in ``z`` (more
  evidence never lowers the probability); cells get ``p`` by linear
  interpolation in the table.

``anchor`` (optional): the value of ``z`` that means change for certain (for the census evidence
``R``, passed as ``E = R/(1+R)`` so that ``z = log R``, the anchor is 0: no agreement beyond
chance). A changed component whose mean is nearer the null's mean than the anchor is not change,
only a tail of the unchanged population (e.g. a stereo pair's views disagreeing on steep
slopes): the fit is treated as degenerate.

If the fit is degenerate (a changed component with weight < :data:`MIN_WEIGHT`, closer to the
null than :data:`MIN_SEPARATION` pooled sigmas, or held at the weight cap :data:`MAX_CHANGED`: one
skewed population split in two), the fallback is a one-sided outlier test against the robust null
alone: ``p = Phi((z - median) / spread - FALLBACK_SIGMA)`` (0.5 at ``FALLBACK_SIGMA`` robust sigmas
above the median) — stated in the store's attributes as ``fallback``.

**Censored** (``censor=q``; the ground stratum of the census evidence,
:data:`offnadir.change.cells.FIT`): the bins below the ``q`` quantile enter the EM by their number
only (the likelihood of a censored cell is ``pi0 F0(c) + pi1 F1(c)``, ``c`` the cut; the E-step
takes each component's moments truncated below ``c``). With ``q = 1/2``: every cell below the
median agrees *better* than the typical cell; as long as the changed share is well under one half
(the weight cap says it is at most that) those cells are unchanged, and their *shape* (a heavy tail
of strongly textured surfaces that agree far better than typical) says nothing about change. Fitted
by shape, that tail takes one Gaussian and the null's peak the other, and the changed population
goes unseen (hard simulator seed 5's ground: pinned at the weight cap, fallback, its new building
missed; docs/change_detection.md, "Censored ground calibration"). With the cut, the null is fitted
to its upper half and its count below the cut, the changed component to the excess above it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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


def _truncated_moments(c, mu, sd):
    """Per component: probability below ``c`` and the first two moments of the component
    truncated to ``(-inf, c)`` (``E[z]``, ``E[z^2]``; Johnson, Kotz & Balakrishnan: with
    ``a = (c - mu)/sd`` and ``lam = phi(a)/Phi(a)``, ``E = mu - sd lam``,
    ``Var = sd^2 (1 - a lam - lam^2)``)."""
    from scipy.special import ndtr

    a = (c - mu) / sd
    f = np.maximum(ndtr(a), 1e-300)
    lam = np.exp(-0.5 * a * a) / math.sqrt(2 * math.pi) / f
    ex = mu - sd * lam
    return f, ex, sd**2 * np.maximum(1.0 - a * lam - lam**2, 0.0) + ex**2


def _em(w, z, n, pi, mu, sd, width, cut=None):
    """EM of the two-component mixture on the bin counts ``w``; with ``cut`` (a bin edge), the bins
    below it are **censored**: their cells enter by their number only (likelihood
    ``pi0 F0(cut) + pi1 F1(cut)``; the E-step takes each component's moments truncated below the
    cut: the EM for censored data of Lee & Scott, "EM algorithms for multivariate Gaussian mixture
    models with truncated and censored data", CSDA 2012)."""
    below = np.zeros(len(z), bool) if cut is None else z < cut
    n_low = float(w[below].sum())
    wu = np.where(below, 0.0, w)
    ll_old = -np.inf
    for _ in range(EM_ITER):
        dens = np.stack([pi[k] * _normal(z, mu[k], sd[k]) for k in range(2)]) + 1e-300
        tot = dens.sum(axis=0)
        r = dens / tot
        if n_low > 0:
            f, ex, ex2 = _truncated_moments(cut, mu, sd)
            low = pi * f + 1e-300
            rl = n_low * low / low.sum()  # censored cells per component
        else:
            ex = ex2 = rl = np.zeros(2)
            low = np.ones(2)
        nk = (r * wu).sum(axis=1) + rl
        if np.any(nk < 1e-9):
            break
        pi = nk / n
        if pi[1] > MAX_CHANGED:  # most of a scene is unchanged: the changed weight is capped
            pi = np.array([1.0 - MAX_CHANGED, MAX_CHANGED])
        mu = ((r * wu * z).sum(axis=1) + rl * ex) / nk
        var = ((r * wu * (z - mu[:, None]) ** 2).sum(axis=1) + rl * (ex2 - 2.0 * mu * ex + mu**2)) / nk
        sd = np.sqrt(np.maximum(var, width**2))
        ll = float((wu * np.log(tot)).sum() + (n_low * math.log(low.sum()) if n_low > 0 else 0.0))
        if ll - ll_old < 1e-9 * abs(ll):
            break
        ll_old = ll
    return pi, mu, sd


def fit(counts, anchor: float | None = None, censor: float | None = None, plateau: bool = True) -> dict:
    """Two-component Gaussian mixture (EM on the histogram of ``logit(E)``) -> model dict
    (JSON-able): ``pi``, ``mean``, ``sd`` (unchanged, changed), ``n``, ``fallback``, ``table``
    (change probability per bin centre). ``censor`` (a quantile, e.g. 0.5): the cells below it
    enter the fit by their number only (module docstring, "Censored"); None: every bin by its
    shape. ``plateau``: the changed density held at its peak beyond its mean (else its Gaussian
    tail; the probability is held at its maximum either way)."""
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
    # the cut: the lower edge of the bin holding the quantile (every bin below it lies wholly below)
    cut = None if censor is None else _quantile(z, w, censor) - 0.5 * width
    pi, mu, sd = _em(w, z, n, np.array([0.9, 0.1]), np.array([med, _quantile(z, w, 0.9) + spread]),
                     np.array([spread, spread]), width, cut)
    sep = (mu[1] - mu[0]) / math.sqrt(0.5 * (sd[0] ** 2 + sd[1] ** 2))
    model = {"n": n, "pi": [float(pi[0]), float(pi[1])], "mean": [float(mu[0]), float(mu[1])],
             "sd": [float(sd[0]), float(sd[1])], "separation": float(sep), "null_median": med,
             "null_spread": spread, "censored_below": None if cut is None else float(cut)}
    unlike = anchor is not None and mu[1] < 0.5 * (mu[0] + anchor)
    # EM wanted at least half of the cells "changed": the histogram is one skewed population split in
    # two, not a mostly unchanged scene with a changed part (the model this calibration assumes)
    pinned = pi[1] >= MAX_CHANGED - 1e-9
    model["anchor"] = anchor
    model["pinned"] = bool(pinned)
    model["plateau"] = bool(plateau)
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
        d1 = pi[1] * np.where(plateau & (z > mu[1]), _normal(mu[1], mu[1], sd[1]), _normal(z, mu[1], sd[1]))
        p = d1 / np.maximum(d0 + d1, 1e-300)
        left = z < mu[0]  # a wider changed component lifts the far left tail again: not evidence
        p[left] = np.minimum(p[left], np.interp(mu[0], z, p))
        model.update(fallback=False)
    p = np.maximum.accumulate(np.clip(p, 0.0, 1.0))
    model["table"] = p.tolist()
    # what the model decides on its own histogram: a fallback whose threshold no cell reaches turns the
    # stratum's calibrated decision off (both20 seed 5's roofs: log R >= +0.17, beyond R = 1), which the
    # log must say rather than leave to the reader of the sigmas
    k = np.nonzero(p >= 0.5)[0]
    model["decision_z"] = float(z[k[0]]) if len(k) else None
    model["decided_cells"] = int(w[k[0]:].sum()) if len(k) else 0
    return model


def summary(model) -> str:
    """One log line's account of a :func:`fit` model: the fallback's reason or the mixture's weight and
    separation, and the cells of its own histogram it decides changed (saying so when none: the
    stratum's calibrated decision is then off, only other witnesses decide there)."""
    out = ("fallback (" + model.get("reason", "") + ")" if model.get("fallback") else
           f"changed weight {model['pi'][1]:.3f}, separation {model['separation']:.2f}")
    if "decided_cells" not in model:
        return out
    z = model["decision_z"]
    out += (f"; probability 1/2 at logit {z:+.2f}" if z is not None else "; probability 1/2 nowhere")
    out += f": {model['decided_cells']} of {int(model['n'])} cells"
    return out + (" (its calibrated decision is off: only other witnesses decide there)"
                  if model["decided_cells"] == 0 else "")


def probability(e, model) -> np.ndarray:
    """Change probability of evidence ``e`` (NaN stays NaN) from a :func:`fit` model."""
    e = np.asarray(e, np.float64)
    out = interp(to_z(e), centres(), np.asarray(model["table"], np.float64))
    out[~np.isfinite(e)] = np.nan
    return out


def interp(x, xp, fp):
    """``np.interp(x, xp, fp)`` bit for bit for strictly increasing ``xp`` of 3 or more points
    (numpy's formula, its index ``xp[j] <= x < xp[j + 1]`` and its end cases; tested against
    it), the index from ``xp``'s mean spacing and corrected by comparisons instead of a binary
    search per value; anything else goes to ``np.interp``."""
    x = np.asarray(x, np.float64)
    xp = np.asarray(xp, np.float64)
    fp = np.asarray(fp, np.float64)
    if xp.ndim != 1 or fp.shape != xp.shape or len(xp) < 3 or not np.all(xp[1:] > xp[:-1]) or not np.isfinite(xp).all():
        return np.interp(x, xp, fp)
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty(flat.shape)
    _interp(flat, xp, fp, out)
    return out.reshape(x.shape)


@njit(cache=True, nogil=True, error_model="numpy")
def _interp(x, xp, fp, out):
    n = xp.shape[0]
    slopes = np.empty(n - 1)
    for i in range(n - 1):
        slopes[i] = (fp[i + 1] - fp[i]) / (xp[i + 1] - xp[i])
    x0, inv = xp[0], (n - 1) / (xp[n - 1] - xp[0])
    for k in range(x.shape[0]):
        v = x[k]
        if np.isnan(v):
            out[k] = v
            continue
        if v > xp[n - 1]:
            out[k] = fp[n - 1]
            continue
        if v < x0:
            out[k] = fp[0]
            continue
        j = int(min(max((v - x0) * inv, 0.0), n - 1.0))
        while j + 1 < n and xp[j + 1] <= v:
            j += 1
        while xp[j] > v:
            j -= 1
        if j == n - 1 or xp[j] == v:
            out[k] = fp[j]
            continue
        r = slopes[j] * (v - xp[j]) + fp[j]
        if np.isnan(r):
            r = slopes[j] * (v - xp[j + 1]) + fp[j + 1]
            if np.isnan(r) and fp[j] == fp[j + 1]:
                r = fp[j]
        out[k] = r


def threshold_z(model, p: float = 0.5) -> float:
    """Smallest evidence (as logit) whose probability reaches ``p`` (inf if none)."""
    t = np.asarray(model["table"])
    k = np.nonzero(t >= p)[0]
    return float(centres()[k[0]]) if len(k) else math.inf


def stored(p, decision: float) -> np.ndarray:
    """``p`` (float64 probabilities) as the float32 the store keeps, with every value under
    ``decision`` kept under it: a probability within float32 rounding below the decision (e.g. a
    structural probability at its 1e-6 clip against a ``dh`` one at 1 - 1e-6) would otherwise be
    stored as ``decision`` itself, and ``probability >= decision_p`` read from the store would
    disagree with ``change``. Those values become the float32 just below ``decision``."""
    p = np.asarray(p, np.float64)
    q = p.astype(np.float32)
    below = (p < decision) & (q >= np.float32(decision))
    q[below] = np.nextafter(np.float32(decision), np.float32(0.0))
    return q
