"""IR-MAD (Nielsen 2007, IEEE TIP 16(2)): iteratively reweighted multivariate alteration detection,
as sums that tiles accumulate and a tree reduction adds up. numpy (+ scipy.special for the
chi-square tail, numba for the per-cell variates).

Model, for base bands ``x`` and target bands ``y`` (p each) of the cells usable in both images:

* weighted means ``mx, my`` and covariances ``Sxx, Syy, Sxy`` with weights ``w`` (1 at the first
  iteration);
* canonical correlation analysis: ``A = Lx^-T U``, ``B = Ly^-T V`` with
  ``Lx^-1 Sxy Ly^-T = U diag(rho) V^T`` (SVD, ``Lx``/``Ly`` Cholesky factors), so the canonical
  variates ``u = A^T (x - mx)`` and ``v = B^T (y - my)`` have unit variance and correlations
  ``rho_1 >= ... >= rho_p >= 0``;
* MAD variates ``M_i = u_i - v_i``, variance ``sigma_i^2 = 2 (1 - rho_i)``; a cell's
  ``Z = sum_i M_i^2 / sigma_i^2`` is chi-square with p degrees of freedom under no change;
* next weights ``w = P(chi2_p > Z)`` (the no-change probability). Iterate until no ``rho_i`` moves
  more than the tolerance.

MAD variates are invariant to any affine transformation of each image's bands (gains, offsets,
band mixing), which is why radiometric differences between the dates are not change.

Accumulation: every tile adds ``sum w``, ``sum w x``, ``sum w y`` and ``sum w [x y][x y]^T``
of the values minus a fixed reference (the global band means), in float64 — exact sums, so the
reduction equals the whole-array computation to rounding. Strata (e.g. cells lit at both dates,
cells shaded at both dates) each get their own model in the same passes.

Robust scale: IR-MAD's ``sigma_i`` describes the most consistent cells it converges on, which
underrates the spread that texture and resampling leave in unchanged areas of VHR images. The
criteria therefore express MAD variates in a robust scale, ``1.4826 * median |M_i|`` over all
usable cells (from a histogram reduction with log-spaced bins, relative resolution 2.3 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.special import gammaincc

#: histogram bins of |M| (IR-MAD units) for the robust scale: 1e-6 .. 1e6, 100 per decade
HIST_EDGES = np.logspace(-6, 6, 1201)


def chi2_sf(z, dof):
    """P(chi2_dof > z)."""
    return gammaincc(0.5 * dof, 0.5 * np.maximum(z, 0.0))


def chi2_isf(alpha, dof):
    """z with P(chi2_dof > z) = alpha (bisection on chi2_sf; scalars)."""
    lo, hi = 0.0, 1.0
    while chi2_sf(hi, dof) > alpha:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if chi2_sf(mid, dof) > alpha:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@dataclass(frozen=True)
class MadModel:
    """One fitted IR-MAD model (a target image against the base, in one stratum)."""

    mean_x: np.ndarray  # (p,)
    mean_y: np.ndarray
    A: np.ndarray  # (p, p) canonical vectors of the base (columns)
    B: np.ndarray
    rho: np.ndarray  # (p,) canonical correlations, decreasing
    weight: float  # sum of the weights it was fitted with
    n: float  # number of cells
    iterations: int = 0
    converged: bool = False

    @property
    def p(self) -> int:
        return len(self.rho)

    @property
    def sigma(self) -> np.ndarray:
        return np.sqrt(np.maximum(2.0 * (1.0 - self.rho), 1e-12))

    def mad(self, x, y):
        """Standardised MAD variates ``M_i / sigma_i`` of rows of x, y (n, p) -> (n, p)."""
        # ((x - mx) A - (y - my) B) / sigma in one numba loop over the rows: no BLAS (whose threads,
        # where a process does not limit them, spun 3-10x the CPU of the product on tile-sized
        # arrays), no centred copies, any memory order (callers pass ``val[:, ok].T``)
        x, y = _rows(x), _rows(y)
        out = np.empty((x.shape[0], self.p))
        _mad_rows(x, y, self.A, self.B, self.mean_x @ self.A - self.mean_y @ self.B, self.sigma, out)
        return out

    def z(self, x, y, scale):
        """``sum_i (M_i / sigma_i / scale_i)^2`` per row of x, y (n, p) -> (n,): the MAD variates'
        squared norm in units of ``scale`` (p,), without the (n, p) variates in memory."""
        x, y = _rows(x), _rows(y)
        out = np.empty(x.shape[0])
        _mad_z(x, y, self.A, self.B, self.mean_x @ self.A - self.mean_y @ self.B, self.sigma,
               np.asarray(scale, np.float64), out)
        return out

    def canonical(self, x, y):
        """First canonical variates (u_1, v_1): the most correlated combination of the bands."""
        x, y = _rows(x), _rows(y)
        u = np.empty(x.shape[0])
        v = np.empty(y.shape[0])
        _first_rows(x, self.A[:, 0].copy(), float(self.mean_x @ self.A[:, 0]), u)
        _first_rows(y, self.B[:, 0].copy(), float(self.mean_y @ self.B[:, 0]), v)
        return u, v

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d) -> MadModel:
        return cls(**{k: (np.asarray(v, np.float64) if isinstance(v, list) else v) for k, v in d.items()})


def _stack_models(models, p):
    """Each stratum's model (None: stratum 0's) stacked for the kernels: A, B (k, p, p), the offsets
    ``mean_x A - mean_y B`` and sigmas (k, p), and whether stratum k has a model at all."""
    k_n = len(models)
    A = np.zeros((k_n, p, p))
    B = np.zeros((k_n, p, p))
    c = np.zeros((k_n, p))
    sig = np.ones((k_n, p))
    has = np.zeros(k_n, np.bool_)
    for k in range(k_n):
        m = models[k] if models[k] is not None else models[0]
        if m is not None:
            A[k], B[k], c[k], sig[k] = m.A, m.B, m.mean_x @ m.A - m.mean_y @ m.B, m.sigma
            has[k] = True
    return A, B, c, sig, has


def mad_strata(models, scales, x, y, stratum):
    """MAD variates ``M_i / sigma_i`` of rows of x, y (n, p) under the model of each row's
    stratum (None: stratum 0's; both None: NaN), divided by that stratum's robust ``scales``
    (None: stratum 0's; both None: not divided), in one numba pass: the numbers of
    :func:`offnadir.change.fit.mad_cells` followed by the per-stratum division, without a copy of
    the cells per stratum."""
    x, y = _rows(x), _rows(y)
    A, B, c, sig, has = _stack_models(models, x.shape[1])
    sc = np.ones_like(sig)
    for k in range(len(models)):
        s_k = scales[k] if scales[k] is not None else scales[0]
        if s_k is not None:
            sc[k] = s_k
    out = np.empty(x.shape)
    _mad_strata(x, y, np.ascontiguousarray(stratum, np.int64), A, B, c, sig, sc, has, out)
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _mad_strata(x, y, stratum, A, B, c, sigma, scale, has, out):
    n, p = x.shape
    for i in range(n):
        k = stratum[i]
        if k < 0 or k >= has.shape[0] or not has[k]:
            for q in range(p):
                out[i, q] = np.nan
            continue
        for q in range(p):
            s = 0.0
            for r in range(p):
                s += float(x[i, r]) * A[k, r, q] - float(y[i, r]) * B[k, r, q]
            out[i, q] = (s - c[k, q]) / sigma[k, q] / scale[k, q]


def sq_norms_strata(models, x, y, stratum):
    """Per row of x, y (n, p), the squared norm ``sum_i M_i^2`` of its MAD variates ``M_i / sigma_i``
    under its stratum's model (None: stratum 0's), and whether a model applied (False: no model, or
    a stratum outside ``range(len(models))``): in one numba pass, the numbers of
    ``(m.mad(x[sel], y[sel]) ** 2).sum(axis=1)`` per stratum (the same products and quotients, the
    squares added in variate order), without the per-stratum copies of the rows and the (n, p)
    variates. What :func:`weights` takes ``chi2_sf`` of."""
    x, y = _rows(x), _rows(y)
    A, B, c, sig, has = _stack_models(models, x.shape[1])
    z = np.empty(x.shape[0])
    used = np.empty(x.shape[0], np.bool_)
    _sq_norms_strata(x, y, np.ascontiguousarray(stratum, np.int64), A, B, c, sig, has, z, used)
    return z, used


@njit(cache=True, nogil=True, error_model="numpy")
def _sq_norms_strata(x, y, stratum, A, B, c, sigma, has, z, used):
    n, p = x.shape
    for i in range(n):
        k = stratum[i]
        if k < 0 or k >= has.shape[0] or not has[k]:
            z[i] = np.nan
            used[i] = False
            continue
        s2 = 0.0
        for q in range(p):
            s = 0.0
            for r in range(p):
                s += float(x[i, r]) * A[k, r, q] - float(y[i, r]) * B[k, r, q]
            m = (s - c[k, q]) / sigma[k, q]
            s2 += m * m
        z[i] = s2
        used[i] = True


def _rows(a):
    """(n, p) rows as float32 or float64 in their own memory order (a copy only for other dtypes)."""
    a = np.asarray(a)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


@njit(cache=True, nogil=True, error_model="numpy")
def _mad_rows(x, y, A, B, c, sigma, out):
    """``out[i] = (x[i] A - y[i] B - c) / sigma`` in float64."""
    n, p = x.shape
    for i in range(n):
        for k in range(p):
            s = 0.0
            for q in range(p):
                s += float(x[i, q]) * A[q, k] - float(y[i, q]) * B[q, k]
            out[i, k] = (s - c[k]) / sigma[k]


@njit(cache=True, nogil=True, error_model="numpy")
def _mad_z(x, y, A, B, c, sigma, scale, out):
    """``out[i] = sum_k (((x[i] A - y[i] B)_k - c_k) / sigma_k / scale_k)^2``, summed in k order."""
    n, p = x.shape
    for i in range(n):
        z = 0.0
        for k in range(p):
            s = 0.0
            for q in range(p):
                s += float(x[i, q]) * A[q, k] - float(y[i, q]) * B[q, k]
            m = (s - c[k]) / sigma[k] / scale[k]
            z += m * m
        out[i] = z


@njit(cache=True, nogil=True, error_model="numpy")
def _first_rows(x, a, c, out):
    """``out[i] = x[i] a - c`` in float64."""
    n, p = x.shape
    for i in range(n):
        s = 0.0
        for q in range(p):
            s += float(x[i, q]) * a[q]
        out[i] = s - c


def empty_sums(n_strata: int, p: int) -> dict:
    return {"n": np.zeros(n_strata), "sw": np.zeros(n_strata), "sx": np.zeros((n_strata, p)),
            "sy": np.zeros((n_strata, p)), "sxx": np.zeros((n_strata, 2 * p, 2 * p))}


def accumulate(sums: dict, x, y, w, stratum, ref_x, ref_y) -> dict:
    """Add cells (rows of x, y (n, p), weights w (n,), stratum (n,) int in [0, K)) to ``sums``
    (one numba pass over the cells: no BLAS threads, no per-stratum copies)."""
    x, y = _rows(x), _rows(y)
    _accumulate(x, y, np.ascontiguousarray(w, np.float64), np.ascontiguousarray(stratum, np.int64),
                np.asarray(ref_x, np.float64), np.asarray(ref_y, np.float64),
                sums["n"], sums["sw"], sums["sx"], sums["sy"], sums["sxx"])
    return sums


@njit(cache=True, nogil=True, error_model="numpy")
def _accumulate(x, y, w, stratum, ref_x, ref_y, n, sw, sx, sy, sxx):
    p = x.shape[1]
    z = np.empty(2 * p)
    for i in range(x.shape[0]):
        k = stratum[i]
        if k < 0 or k >= n.shape[0]:
            continue
        wi = w[i]
        for q in range(p):
            z[q] = float(x[i, q]) - ref_x[q]
            z[p + q] = float(y[i, q]) - ref_y[q]
        n[k] += 1.0
        sw[k] += wi
        for q in range(p):
            sx[k, q] += wi * z[q]
            sy[k, q] += wi * z[p + q]
        for a in range(2 * p):
            wa = wi * z[a]
            for b in range(2 * p):
                sxx[k, a, b] += wa * z[b]


def add_sums(*parts: dict) -> dict:
    out = {k: np.array(v, copy=True) for k, v in parts[0].items()}
    for p in parts[1:]:
        for k in out:
            out[k] = out[k] + p[k]
    return out


def solve(sums: dict, k: int, ref_x, ref_y, *, iterations: int = 0, previous: MadModel | None = None,
          tol: float = 1e-4) -> MadModel | None:
    """The CCA model of stratum k from its sums (None when it holds too few cells)."""
    p = sums["sx"].shape[1]
    sw = sums["sw"][k]
    if not sw > 0 or sums["n"][k] < max(10 * p, 2 * p + 2):
        return None
    mx = sums["sx"][k] / sw
    my = sums["sy"][k] / sw
    m = np.concatenate([mx, my])
    C = sums["sxx"][k] / sw - np.outer(m, m)
    Sxx, Syy, Sxy = C[:p, :p], C[p:, p:], C[:p, p:]
    Lx = _chol(Sxx)
    Ly = _chol(Syy)
    Lxi = np.linalg.inv(Lx)
    Lyi = np.linalg.inv(Ly)
    U, s, Vt = np.linalg.svd(Lxi @ Sxy @ Lyi.T)
    A = Lxi.T @ U
    B = Lyi.T @ Vt.T
    # deterministic signs: the largest base coefficient of each canonical vector positive
    for i in range(p):
        sgn = np.sign(A[np.argmax(np.abs(A[:, i])), i]) or 1.0
        A[:, i] *= sgn
        B[:, i] *= sgn
    rho = np.clip(s, 0.0, 1.0)
    converged = previous is not None and bool(np.max(np.abs(rho - previous.rho)) < tol)
    return MadModel(mx + ref_x, my + ref_y, A, B, rho, float(sw), float(sums["n"][k]), iterations, converged)


def _chol(S):
    try:
        return np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        ridge = 1e-9 * max(np.trace(S) / len(S), 1e-12)
        return np.linalg.cholesky(S + ridge * np.eye(len(S)))


def weights(model: MadModel | None, x, y):
    """No-change probabilities P(chi2_p > Z) of cells under ``model`` (ones when None)."""
    if model is None:
        return np.ones(len(x))
    M = model.mad(x, y)
    return chi2_sf((M * M).sum(axis=1), model.p)


def histogram(absm) -> np.ndarray:
    """Counts of |M| values (n, p) in :data:`HIST_EDGES`, per variate -> (p, nbins): the counts of
    ``np.histogram(np.clip(v, lo, hi), bins=HIST_EDGES)`` (:func:`histogram_numpy`; bins
    ``edges[j] <= x < edges[j + 1]``, NaN not counted) from one numba pass per variate, each value's bin
    guessed from its ``log10`` and corrected by comparisons against the edges (numpy sorts the values)."""
    absm = np.asarray(absm, np.float64)
    out = np.zeros((absm.shape[1], len(HIST_EDGES) - 1))
    lo, hi = HIST_EDGES[0] * 1.0000001, HIST_EDGES[-1] * 0.9999999
    per_decade = (len(HIST_EDGES) - 1) / (np.log10(HIST_EDGES[-1]) - np.log10(HIST_EDGES[0]))
    for i in range(absm.shape[1]):
        _log_bin_counts(absm[:, i], HIST_EDGES, lo, hi, float(per_decade), out[i])
    return out


def histogram_numpy(absm) -> np.ndarray:
    """:func:`histogram` with numpy (its twin in the tests)."""
    absm = np.asarray(absm, np.float64)
    out = np.zeros((absm.shape[1], len(HIST_EDGES) - 1))
    for i in range(absm.shape[1]):
        v = np.clip(absm[:, i], HIST_EDGES[0] * 1.0000001, HIST_EDGES[-1] * 0.9999999)
        out[i] = np.histogram(v, bins=HIST_EDGES)[0]
    return out


@njit(cache=True, nogil=True, error_model="numpy")
def _log_bin_counts(v, edges, lo, hi, per_decade, out):
    nb = edges.shape[0] - 1
    e0 = math.log10(edges[0])
    for i in range(v.shape[0]):
        x = v[i]
        if x != x:  # NaN: np.histogram counts it in no bin
            continue
        x = min(max(x, lo), hi)  # np.clip
        j = min(max(int((math.log10(x) - e0) * per_decade), 0), nb - 1)
        while j > 0 and x < edges[j]:
            j -= 1
        while j < nb - 1 and x >= edges[j + 1]:
            j += 1
        if edges[j] <= x <= edges[nb]:
            out[j] += 1.0


def hist_median(counts) -> float:
    """Median of the values histogrammed in ``counts`` (log-linear interpolation in the bin)."""
    total = counts.sum()
    if total <= 0:
        return np.nan
    c = np.cumsum(counts)
    k = int(np.searchsorted(c, 0.5 * total))
    prev = c[k - 1] if k > 0 else 0.0
    frac = (0.5 * total - prev) / max(counts[k], 1e-300)
    lo, hi = np.log(HIST_EDGES[k]), np.log(HIST_EDGES[k + 1])
    return float(np.exp(lo + frac * (hi - lo)))


def robust_scale(counts) -> np.ndarray:
    """Robust standard deviation per variate, 1.4826 * median |M_i|, from (p, nbins) counts."""
    return np.array([1.4826 * hist_median(c) for c in counts])
