"""Robust, weighted image-space bias from many noisy points (tie points, issue 8).

:mod:`offnadir.camera.bias` fits the Fraser & Hanley affine to a handful of surveyed GCPs. Tie
points measured by correlation are many, noisy, of unequal quality and partly wrong (real change,
cars, shadows). Here:

* **weights**: each point may come with the standard error of its own measurement (from the
  curvature of its correlation peak); the fit weights it by ``1 / s_i**2`` and the residuals are
  judged relative to ``s_i``. The formal errors rank points well but underestimate the true
  error (on the simulator the true error is ~3x the formal one), so a *variance factor* per axis,
  the a-posteriori scale of the residuals divided by ``s_i`` (1.4826·MAD), carries them to pixels.
  This is the usual least-squares variance-component estimate, taken from the fit itself. On the
  simulator (seed 2) it halved the error of the recovered affine (0.107 -> 0.052 px at the image
  corners) against an unweighted fit of the same inliers.
* **outliers**: alternate fitting on the inliers and re-selecting them; a point is kept when its
  scaled residual lies within the 2-D 99.9 % chi-square bound (:data:`ROBUST_K`).
* **model**: the affine only when an F-test at :data:`AFFINE_F_ALPHA` shows the four extra
  parameters are needed (:func:`choose_model_ftest`), else the shift.
* **uncertainty**: the parameters' covariance (variance factor × inverse normal matrix) gives the
  standard deviation of the correction at any pixel (:meth:`RobustFit.displacement_sd`): the fit
  itself says whether its points constrain it where the image is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from offnadir.errors import ConfigError, GCPError

#: bias models: "auto" chooses between the affine and the shift
MODELS = ("auto", "affine", "shift")
#: relative size of the smallest singular value of the normalised design matrix below which the
#: points are taken as collinear (the affine is then undetermined across their line)
COLLINEAR_RTOL = 1e-6

#: inlier bound of the robust fit: sqrt of the 99.9 % quantile of chi-square with 2 degrees of
#: freedom, so a correct measurement with Gaussian errors is rejected 1 time in 1000
ROBUST_K = float(np.sqrt(-2.0 * np.log(1e-3)))
#: floor of the robust residual scale (px): sub-pixel correlation is not better than this, so
#: near-perfect points do not make a tiny MAD that rejects good points
ROBUST_SIGMA_FLOOR_PX = 0.05
#: false-alarm rate of the F-test that lets many tie points choose the affine over the shift
AFFINE_F_ALPHA = 1e-3
#: largest weight of one point, in median points: a formal error far below the typical one comes
#: from a window whose residuals happen to be tiny (a few samples, a flat patch matched by its
#: edges), not from a measurement 10x better; on the simulator the smallest formal errors are ~1/7
#: of the median, so the bound (1/10) leaves real data untouched and stops a near-zero one from
#: taking over the fit
MAX_WEIGHT = 100.0


def apply_affine(aff, row, col):
    a, b, c, d, e, f = aff
    row = np.asarray(row, dtype=np.float64)
    col = np.asarray(col, dtype=np.float64)
    return a * row + b * col + c, d * row + e * col + f


def affine_displacement(aff, shape) -> float:
    """Largest displacement (px) the affine ``aff`` gives over an image of ``shape`` (rows, cols)
    (at its corners: the displacement of an affine is largest at a corner of a convex area)."""
    nr, nc = shape
    r = np.array([-0.5, -0.5, nr - 0.5, nr - 0.5])
    c = np.array([-0.5, nc - 0.5, -0.5, nc - 0.5])
    rr, cc = apply_affine(aff, r, c)
    return float(np.max(np.hypot(rr - r, cc - c)))


# ---------------------------------------------------------------------------------------------
class _Frame:
    """Pixel coordinates centred on the points' mean and scaled by their spread (conditioning)."""

    def __init__(self, pred):
        self.centre = pred.mean(axis=0)
        self.scale = max(float(np.abs(pred - self.centre).max()), 1.0)

    def design(self, pts, model):
        n = pts.shape[0]
        if model == "shift":
            return np.ones((n, 1))
        return np.column_stack([(pts - self.centre) / self.scale, np.ones(n)])


def _wls(pred, meas, w, model, frame):
    """Weighted least squares; returns (affine in pixels, inverse normal matrix in the frame)."""
    X = frame.design(pred, model)
    sw = np.sqrt(w)[:, None]
    N = (X * w[:, None]).T @ X
    if model == "shift":
        t = ((meas - pred) * w[:, None]).sum(axis=0) / w.sum()
        return (1.0, 0.0, float(t[0]), 0.0, 1.0, float(t[1])), np.linalg.inv(N)
    Y = (meas - frame.centre) / frame.scale
    M = np.linalg.lstsq(X * sw, Y * sw, rcond=None)[0].T  # (2, 3) in the frame
    A = M[:, :2]
    t = frame.scale * M[:, 2] + frame.centre - A @ frame.centre
    return (float(A[0, 0]), float(A[0, 1]), float(t[0]), float(A[1, 0]), float(A[1, 1]), float(t[1])), \
        np.linalg.pinv(N)


def _affine_ok(pred, frame, min_n: int = 7) -> bool:
    """Enough points (``min_n``; 7 for the F-test to have degrees of freedom), not on one line."""
    if pred.shape[0] < min_n:
        return False
    sv = np.linalg.svd(frame.design(pred, "affine"), compute_uv=False)
    return bool(sv[-1] >= COLLINEAR_RTOL * sv[0])


def _ftest(pred, meas, w, k, frame, alpha) -> str:
    """"affine" when the four extra parameters reduce the (weighted, per-axis variance-factor
    scaled) residual sum of squares more than noise would once in 1/alpha, else "shift"."""
    from scipy.special import fdtrc  # F survival function; scipy.stats costs ~0.5 CPU-s to import

    if not _affine_ok(pred, frame):
        return "shift"
    rss = {}
    for m in ("shift", "affine"):
        aff, _ = _wls(pred, meas, w, m, frame)
        res = meas - np.column_stack(apply_affine(aff, *pred.T))
        rss[m] = float(np.sum(w[:, None] * (res / np.asarray(k)) ** 2))
    dof = 2 * pred.shape[0] - 6
    if rss["affine"] <= 0.0:
        return "affine"
    F = ((rss["shift"] - rss["affine"]) / 4.0) / (rss["affine"] / dof)
    return "affine" if fdtrc(4, dof, F) < alpha else "shift"  # F above its (1 - alpha) quantile


def choose_model_ftest(pred_rc, meas_rc, alpha: float = AFFINE_F_ALPHA, sigma_pts=None) -> str:
    """"affine" when the four extra parameters reduce the residual sum of squares significantly
    (F-test, false-alarm rate ``alpha``), else "shift".

    For many noisy tie points a leave-one-out comparison is too lenient: hundreds of points make
    the affine's leave-one-out RMS a hair smaller by fitting noise, and a noise affine of 1e-3
    extrapolates to tenths of a pixel at the image corners. The F-test asks that the improvement
    exceed what noise gives by chance once in 1/alpha."""
    pred = np.asarray(pred_rc, dtype=np.float64).reshape(-1, 2)
    meas = np.asarray(meas_rc, dtype=np.float64).reshape(-1, 2)
    w = _weights(sigma_pts, pred.shape[0])
    return _ftest(pred, meas, w, (1.0, 1.0), _Frame(pred), alpha)


def _weights(sigma_pts, n) -> np.ndarray:
    if sigma_pts is None:
        return np.ones(n)
    s = np.asarray(sigma_pts, dtype=np.float64).reshape(-1)
    if s.shape[0] != n or not (np.isfinite(s).all() and (s > 0).all()):
        raise GCPError(f"point standard errors must be {n} positive finite values; got {s.shape[0]} "
                       f"({int((~np.isfinite(s) | (s <= 0)).sum())} not positive/finite).")
    # relative weights: scale so the median point weighs 1 (the variance factor carries the units);
    # no point weighs more than MAX_WEIGHT median points
    med = float(np.median(s))
    return (med / np.maximum(s, med / np.sqrt(MAX_WEIGHT))) ** 2


def _scale(z) -> np.ndarray:
    """Per-axis robust scale (1.4826·MAD), at least :data:`ROBUST_SIGMA_FLOOR_PX`."""
    centre = np.median(z, axis=0)
    return np.maximum(1.4826 * np.median(np.abs(z - centre), axis=0), ROBUST_SIGMA_FLOOR_PX)


@dataclass(frozen=True)
class RobustFit:
    """Result of :func:`fit_robust`: ``bias`` (a, b, c, d, e, f), ``model`` used, ``inliers`` mask,
    ``sigma_rc`` (a median point's standard error per axis, px), ``cov_rc`` (per axis, the
    parameters' covariance in the fit's frame), the frame's centre/scale."""

    bias: tuple
    model: str
    inliers: np.ndarray
    sigma_rc: tuple
    cov_rc: tuple
    centre: tuple
    scale: float

    def displacement_sd(self, rows, cols) -> np.ndarray:
        """Standard deviation (px, both axes together) of the fitted correction at pixels (rows, cols)."""
        rows = np.atleast_1d(np.asarray(rows, np.float64))
        cols = np.atleast_1d(np.asarray(cols, np.float64))
        if self.model == "shift":
            X = np.ones((rows.size, 1))
        else:
            X = np.column_stack([(rows - self.centre[0]) / self.scale, (cols - self.centre[1]) / self.scale,
                                 np.ones(rows.size)])
        var = sum(np.einsum("ij,jk,ik->i", X, np.asarray(c), X) for c in self.cov_rc)
        return np.sqrt(np.maximum(var, 0.0))


def point_pairs(pred_rc, meas_rc, model: str, none_msg: str):
    """Predicted and measured (row, col) as (N, 2) float arrays, after checking ``model`` (one of
    :data:`MODELS`) and that there is at least one pair (else :class:`GCPError` ``none_msg``)."""
    if model not in MODELS:
        raise ConfigError(f"bias model must be one of {', '.join(MODELS)}; got {model!r}.")
    pred = np.asarray(pred_rc, dtype=np.float64).reshape(-1, 2)
    meas = np.asarray(meas_rc, dtype=np.float64).reshape(-1, 2)
    if pred.shape[0] == 0:
        raise GCPError(none_msg)
    return pred, meas


def fit_robust(pred_rc, meas_rc, model: str = "auto", *, sigma_pts=None, max_rounds: int = 20) -> RobustFit:
    """Robust weighted image-space bias (see the module doc). ``sigma_pts``: per-point standard
    errors (px) or None for equal weights. Starts from the median shift (robust to up to half the
    points being wrong), then alternates fitting on the inliers and re-selecting them until the
    inlier set no longer changes."""
    pred, meas = point_pairs(pred_rc, meas_rc, model, "the robust bias fit needs at least 1 point; got none.")
    n = pred.shape[0]
    w = _weights(sigma_pts, n)
    s = 1.0 / np.sqrt(w)      # relative standard error of each point (median 1)
    med = np.median(meas - pred, axis=0)
    bias: tuple = (1.0, 0.0, float(med[0]), 0.0, 1.0, float(med[1]))
    used = "shift"
    inl = np.ones(n, dtype=bool)
    k = np.full(2, ROBUST_SIGMA_FLOOR_PX)
    frame = _Frame(pred)
    Ninv = None
    for rnd in range(max_rounds):
        z = (meas - np.column_stack(apply_affine(bias, pred[:, 0], pred[:, 1]))) / s[:, None]
        k = _scale(z[inl] if inl.sum() >= 3 else z)
        new = np.hypot(z[:, 0] / k[0], z[:, 1] / k[1]) <= ROBUST_K
        if new.sum() < 1:
            break
        frame = _Frame(pred[new])
        m = model if new.sum() >= 3 else "shift"
        if m == "auto":
            m = _ftest(pred[new], meas[new], w[new], k, frame, AFFINE_F_ALPHA)
        elif m == "affine" and not _affine_ok(pred[new], frame, 3):
            m = "shift"
        bias, Ninv = _wls(pred[new], meas[new], w[new], m, frame)
        used = m
        # the first round's scale is that of the starting shift's residuals (a linear part inflates
        # it): at least one more round judges the points against the fitted model
        if rnd > 0 and np.array_equal(new, inl):
            break
        inl = new
    if Ninv is None:
        frame = _Frame(pred)
        _, Ninv = _wls(pred, meas, w, used, frame)
    # the variance factor of the final model, from its own inliers' residuals
    z = (meas - np.column_stack(apply_affine(bias, pred[:, 0], pred[:, 1]))) / s[:, None]
    k = _scale(z[inl] if inl.sum() >= 3 else z)
    cov = tuple((float(kk) ** 2 * Ninv).tolist() for kk in k)
    return RobustFit(bias=tuple(float(v) for v in bias), model=used, inliers=inl,
                     sigma_rc=(float(k[0]), float(k[1])), cov_rc=cov,
                     centre=(float(frame.centre[0]), float(frame.centre[1])), scale=float(frame.scale))


def solve_bias_robust(pred_rc, meas_rc, model: str = "auto", *, sigma_pts=None, max_rounds: int = 20):
    """:func:`fit_robust` as a tuple ``(bias, model_used, inlier_mask, sigma_rc)``."""
    f = fit_robust(pred_rc, meas_rc, model, sigma_pts=sigma_pts, max_rounds=max_rounds)
    return f.bias, f.model, f.inliers, f.sigma_rc


def clustered_displacement_sd(fit: RobustFit, pred_rc, meas_rc, groups, rows, cols, *, sigma_pts=None) -> np.ndarray:
    """Standard deviation (px, both axes together) of ``fit``'s correction at pixels (rows, cols)
    when the points' errors are correlated within ``groups`` (one label per point), such as tie
    windows of one block, which share its DSM errors and image content: the cluster-robust
    ("sandwich") covariance of the weighted least-squares parameters over the fit's inliers,
    ``Ninv (sum_g s_g s_g^T) Ninv`` with ``s_g`` the weighted residual score of group g, times the
    small-sample factor G/(G-1). :meth:`RobustFit.displacement_sd` assumes independent points; with
    correlated ones it is too small (tie blocks of the simulator and of real pairs: by 1.2-2.3x).
    Infinite with fewer than 2 groups of inliers (the spread between groups cannot be estimated)."""
    pred = np.asarray(pred_rc, dtype=np.float64).reshape(-1, 2)
    meas = np.asarray(meas_rc, dtype=np.float64).reshape(-1, 2)
    rows = np.atleast_1d(np.asarray(rows, np.float64))
    cols = np.atleast_1d(np.asarray(cols, np.float64))
    inl = np.asarray(fit.inliers, bool)
    w = _weights(sigma_pts, pred.shape[0])[inl]
    _, inv = np.unique(np.asarray(groups)[inl], return_inverse=True)
    n_groups = int(inv.max()) + 1 if inv.size else 0
    if n_groups < 2:
        return np.full(rows.shape, np.inf)
    frame = _Frame(pred[inl])
    frame.centre, frame.scale = np.asarray(fit.centre), fit.scale
    X = frame.design(pred[inl], fit.model)
    Xq = frame.design(np.column_stack([rows, cols]), fit.model)
    Ninv = np.linalg.pinv((X * w[:, None]).T @ X)
    res = meas[inl] - np.column_stack(apply_affine(fit.bias, pred[inl, 0], pred[inl, 1]))
    var = np.zeros(rows.shape)
    for ax in range(2):
        score = np.zeros((n_groups, X.shape[1]))
        np.add.at(score, inv, X * (w * res[:, ax])[:, None])
        cov = Ninv @ (score.T @ score) @ Ninv * (n_groups / (n_groups - 1))
        var += np.einsum("ij,jk,ik->i", Xq, cov, Xq)
    return np.sqrt(np.maximum(var, 0.0))
