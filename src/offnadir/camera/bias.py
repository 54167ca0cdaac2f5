"""Image-space bias compensation of an RPC camera from ground control points (Fraser & Hanley).

Vendor RPCs inherit the satellite's attitude and ephemeris errors. Over one scene these show up
in image space as an almost constant shift plus small drifts, so an affine correction applied
after the RPC removes them (Fraser & Hanley 2003, 2005):

    row' = a·row + b·col + c
    col' = d·row + e·col + f

where (row, col) is the camera's prediction for a GCP's ground point *before* any bias (but after
the crop affine, see :class:`~offnadir.camera.camera.Camera`) and (row', col') the pixel where the
GCP was measured. Six parameters need ≥ 3 GCPs not on one line; the shift model fits only
(c, f) (a = e = 1, b = d = 0) and works from 1 GCP.

``model="auto"`` uses the affine only when it is *shown* to be better: ≥ 4 GCPs, not collinear,
and a smaller leave-one-out RMS than the shift (each GCP predicted by a fit to the others).
Otherwise it uses the shift. The reason is measured, not assumed: on the real QuickBird-2 crop
with 5 surveyed GCPs (Orthority test data) the affine fitted to 4 GCPs misses the fifth by up to
1.1 px, while the shift misses every withheld GCP by < 0.2 px — with few GCPs the four extra
parameters fit measurement noise, and extrapolate it. With 3 GCPs an affine fits exactly and
cannot be checked, so "auto" takes the shift; ask for ``model="affine"`` to override. The
selection is statistical: for a pure shift with 0.3 px GCP noise, 12 random GCPs make it choose
the affine about 1 time in 10 (only when the affine happened to predict withheld GCPs better);
a real affine of ~1 px across the image seen by 40 GCPs is always chosen.

The fit is linear least squares on coordinates centred on the GCPs' mean and scaled by their
spread (for conditioning), then expressed back in pixels. Residuals are always measured − predicted.
"""

from __future__ import annotations

import warnings

import numpy as np

from offnadir.camera.bias_robust import COLLINEAR_RTOL, MODELS, apply_affine, point_pairs
# the robust, weighted fit for many noisy points (tie points) lives in bias_robust; re-exported here
from offnadir.camera.bias_robust import (AFFINE_F_ALPHA, ROBUST_K, ROBUST_SIGMA_FLOOR_PX,  # noqa: F401
                                         affine_displacement, choose_model_ftest, fit_robust, solve_bias_robust)
from offnadir.camera.camera import Camera
from offnadir.camera.gcps import GCPs, read_gcps
from offnadir.errors import GCPError

__all__ = ["fit_bias", "leave_one_out", "read_gcps", "GCPs", "check_gcps", "solve_bias", "choose_model", "MODELS"]

#: a GCP counts as "in the image" up to this many pixels beyond the outer pixel edges
IMAGE_MARGIN_PX = 0.5
_COLLINEAR_RTOL = COLLINEAR_RTOL
#: how far (as a fraction of each half-range) a GCP's ground point may lie outside the RPC
#: validity domain before it is rejected
_DOMAIN_SLACK = 0.5


# ---------------------------------------------------------------------------------------------
def solve_bias(pred_rc, meas_rc, model: str = "auto") -> tuple[tuple[float, ...], str]:
    """Least-squares image-space bias: the 2×3 affine (a, b, c, d, e, f) mapping predicted
    (row, col) to measured (row, col), and the model actually used ("affine" or "shift").

    ``pred_rc`` and ``meas_rc`` are (N, 2) arrays. ``model="auto"`` chooses with
    :func:`choose_model`. Raises :class:`GCPError` when ``"affine"`` is asked for but cannot be
    determined (fewer than 3 GCPs, or all on one line)."""
    pred, meas = point_pairs(pred_rc, meas_rc, model, "bias compensation needs at least 1 GCP; got none.")
    n = pred.shape[0]
    if model == "auto":
        model = choose_model(pred, meas)
    if model == "shift":
        return _solve_shift(pred, meas), "shift"
    if n < 3:
        raise GCPError(f"the affine bias model has 6 parameters and needs at least 3 GCPs; got {n}. "
                       "Add GCPs or use the shift model (model='shift' or 'auto'; CLI --bias-model).")
    aff = _solve_affine(pred, meas)
    if aff is None:
        raise GCPError(f"the {n} GCPs lie on one line in the image, so the affine bias is undetermined "
                       "across it. Add a GCP off that line or use the shift model (model='shift').")
    return aff, "affine"


def choose_model(pred_rc, meas_rc) -> str:
    """"affine" if ≥ 4 non-collinear GCPs and the affine's leave-one-out RMS beats the shift's,
    else "shift" (see the module doc for why)."""
    pred = np.asarray(pred_rc, dtype=np.float64).reshape(-1, 2)
    meas = np.asarray(meas_rc, dtype=np.float64).reshape(-1, 2)
    n = pred.shape[0]
    if n < 4 or _solve_affine(pred, meas) is None:
        return "shift"
    err = {"shift": 0.0, "affine": 0.0}
    for k in range(n):
        keep = np.arange(n) != k
        for m in err:
            aff = _solve_shift(pred[keep], meas[keep]) if m == "shift" else _solve_affine(pred[keep], meas[keep])
            if aff is None:  # the others are collinear: the affine cannot predict this GCP
                return "shift"
            r, c = apply_affine(aff, pred[k, 0], pred[k, 1])
            err[m] += (meas[k, 0] - r) ** 2 + (meas[k, 1] - c) ** 2
    return "affine" if err["affine"] < err["shift"] else "shift"


def _solve_shift(pred, meas) -> tuple[float, ...]:
    t = (meas - pred).mean(axis=0)
    return (1.0, 0.0, float(t[0]), 0.0, 1.0, float(t[1]))


def _solve_affine(pred, meas) -> tuple[float, ...] | None:
    """Least-squares affine on coordinates centred and scaled for conditioning; None if the
    points are (numerically) collinear or fewer than 3."""
    n = pred.shape[0]
    if n < 3:
        return None
    centre = pred.mean(axis=0)
    scale = max(float(np.abs(pred - centre).max()), 1.0)
    X = np.column_stack([(pred - centre) / scale, np.ones(n)])
    Y = (meas - centre) / scale
    sv = np.linalg.svd(X, compute_uv=False)
    if sv[-1] < _COLLINEAR_RTOL * sv[0]:
        return None
    M = np.linalg.lstsq(X, Y, rcond=None)[0].T  # (2, 3) in normalised coordinates
    A = M[:, :2]
    t = scale * M[:, 2] + centre - A @ centre
    return (float(A[0, 0]), float(A[0, 1]), float(t[0]), float(A[1, 0]), float(A[1, 1]), float(t[1]))


# ---------------------------------------------------------------------------------------------
def check_gcps(camera: Camera, gcps: GCPs, *, strict: bool = False,
               margin_px: float = IMAGE_MARGIN_PX) -> np.ndarray:
    """Check GCPs against the camera; return a boolean mask: measured pixel inside the image.

    Always an error (:class:`GCPError`, naming the GCP and the distance):

    * the ground point lies far outside the RPC validity domain (the model is meaningless there);
    * the measured pixel lies outside the part of the image plane the model covers (the pixel
      box of its validity domain): such a GCP cannot have been measured on this image (wrong
      GCP file, swapped row/col, ...).

    A measured pixel outside the image itself (beyond ``margin_px`` past the outer pixel edges)
    is an error when ``strict``; otherwise it is kept with a warning, because GCPs measured on the
    parent full scene of a crop legitimately fall outside the crop while still constraining the
    scene-wide bias (the Orthority QuickBird-2 crop's surveyed GCPs do: 2 of 5 lie outside it).
    """
    src = gcps.source
    lon0, lon1, lat0, lat1, h0, h1 = camera.rpc.domain
    slack = _DOMAIN_SLACK
    for name, vals, lo, hi in (("longitude", gcps.lon, lon0, lon1), ("latitude", gcps.lat, lat0, lat1),
                               ("height", gcps.h, h0, h1)):
        half = 0.5 * (hi - lo)
        lo_ok, hi_ok = lo - slack * half, hi + slack * half
        bad = (vals < lo_ok) | (vals > hi_ok)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise GCPError(
                f"{src}: GCP {gcps.id[k]!r} has {name} {vals[k]:.6g}, far outside the camera model's validity "
                f"domain ({name} {lo:.6g}..{hi:.6g}; model {camera.source or 'camera'}). Check that the GCP "
                "file is for this image and that lon/lat (and h, in metres) are in the right columns."
            )
    r0, r1, c0, c1 = _model_pixel_box(camera)
    dist = _outside_distance(gcps.row, gcps.col, r0, r1, c0, c1)
    if (dist > 0).any():
        k = int(np.argmax(dist))
        raise GCPError(
            f"{src}: GCP {gcps.id[k]!r} at row {gcps.row[k]:.2f}, col {gcps.col[k]:.2f} lies {dist[k]:.1f} px "
            f"outside the image area the camera model covers (rows {r0:.0f}..{r1:.0f}, cols {c0:.0f}..{c1:.0f}), "
            "so it cannot have been measured on this image. Check the GCP file belongs to this image and "
            "that its row/col (or ji = [col, row]) are not swapped."
        )
    if camera.shape is None:
        return np.ones(len(gcps), dtype=bool)
    nr, nc = camera.shape
    m = float(margin_px)
    dist = _outside_distance(gcps.row, gcps.col, -0.5 - m, nr - 0.5 + m, -0.5 - m, nc - 0.5 + m)
    outside = dist > 0
    if outside.any():
        names = ", ".join(f"{gcps.id[k]!r} ({_where(gcps.row[k], gcps.col[k], nr, nc)})"
                          for k in np.flatnonzero(outside))
        msg = (f"{src}: {int(outside.sum())} of {len(gcps)} GCPs lie outside the {nr}x{nc} image "
               f"(more than {m:g} px past its edge): {names}")
        if strict:
            raise GCPError(msg + ". A GCP outside the image cannot have been measured on it: fix its row/col "
                           "or drop it. If the GCPs were measured on the full scene this image was cropped "
                           "from (and the camera model covers that scene), allow them by not asking for "
                           "strict checking (strict=False; CLI: leave out --strict-gcps).")
        warnings.warn(msg + "; they are used on the assumption that they were measured on the full scene "
                      "this image was cropped from.", stacklevel=3)
    return ~outside


def _where(row, col, nr, nc) -> str:
    parts = []
    if row < -0.5:
        parts.append(f"{-0.5 - row:.1f} px above")
    elif row > nr - 0.5:
        parts.append(f"{row - (nr - 0.5):.1f} px below")
    if col < -0.5:
        parts.append(f"{-0.5 - col:.1f} px left of")
    elif col > nc - 0.5:
        parts.append(f"{col - (nc - 0.5):.1f} px right of")
    return (" and ".join(parts) + " the image") if parts else "inside"


def _outside_distance(row, col, r0, r1, c0, c1) -> np.ndarray:
    dr = np.maximum(np.maximum(r0 - row, row - r1), 0.0)
    dc = np.maximum(np.maximum(c0 - col, col - c1), 0.0)
    return np.hypot(dr, dc)


def _model_pixel_box(camera: Camera) -> tuple[float, float, float, float]:
    """Pixel bounding box (row0, row1, col0, col1) of the RPC validity domain (without bias)."""
    lon0, lon1, lat0, lat1, h0, h1 = camera.rpc.domain
    g = np.linspace(0.0, 1.0, 9)
    L, P, H = np.meshgrid(lon0 + g * (lon1 - lon0), lat0 + g * (lat1 - lat0), [h0, h1], indexing="ij")
    r, c = camera.without_bias().project(L, P, H)
    ok = np.isfinite(r) & np.isfinite(c)
    if not ok.any():
        return (-np.inf, np.inf, -np.inf, np.inf)
    return float(r[ok].min()), float(r[ok].max()), float(c[ok].min()), float(c[ok].max())


# ---------------------------------------------------------------------------------------------
def _predict(camera: Camera, gcps: GCPs) -> np.ndarray:
    """(N, 2) predicted (row, col) of the GCPs' ground points by the camera without its bias."""
    r, c = camera.without_bias().project(gcps.lon, gcps.lat, gcps.h)
    pred = np.column_stack([r, c])
    bad = ~np.isfinite(pred).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise GCPError(f"{gcps.source}: the camera model {camera.source or ''} gives no finite pixel for GCP "
                       f"{gcps.id[k]!r} (lon {gcps.lon[k]}, lat {gcps.lat[k]}, h {gcps.h[k]}): its denominator "
                       "vanishes there. Drop that GCP or check its coordinates.")
    return pred


def _prepare(camera, gcps, strict):
    if not isinstance(camera, Camera):
        raise TypeError(f"fit_bias needs a Camera (offnadir.read_camera(path)), not {type(camera).__name__}")
    gcps = read_gcps(gcps, image=camera.source)
    if len(gcps) < 1:
        raise GCPError(f"{gcps.source}: holds no GCPs; bias compensation needs at least 1.")
    _refuse_repeated_points(gcps)
    in_image = check_gcps(camera, gcps, strict=strict)
    return gcps, in_image


def _refuse_repeated_points(gcps) -> None:
    """The same point listed twice (within 0.01 px in the image and 1e-7 deg / 1 mm on the ground)
    adds no information but weighs the fit, and makes leave-one-out report a perfect 0: refuse it."""
    key = np.column_stack([np.round(gcps.row, 2), np.round(gcps.col, 2), np.round(gcps.lon, 7),
                           np.round(gcps.lat, 7), np.round(gcps.h, 3)])
    _, first, counts = np.unique(key, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        k = int(np.argmax(counts))
        same = [gcps.id[i] for i in np.flatnonzero((key == key[first[k]]).all(axis=1))]
        raise GCPError(f"{gcps.source}: {counts[k]} GCPs are the same point ({', '.join(same[:5])}"
                       f"{' ...' if len(same) > 5 else ''} at row {gcps.row[first[k]]:.2f}, col "
                       f"{gcps.col[first[k]]:.2f}); a repeated point weighs the fit and hides its error in the "
                       "leave-one-out check. Keep one of each.")


def fit_bias(camera: Camera, gcps, *, model: str = "auto", strict: bool = False) -> Camera:
    """Fit the image-space affine bias of ``camera`` to GCPs; return the compensated camera.

    ``gcps``: a :class:`GCPs` or anything :func:`read_gcps` reads. Any bias the camera already
    has is ignored (the fit starts from ``camera.without_bias()``), so refitting is idempotent.
    ``model``: "affine" (6 parameters, ≥ 3 GCPs), "shift" (2 parameters) or "auto" (the affine
    only when ≥ 4 GCPs show by leave-one-out that it predicts better; see the module doc). ``strict``: reject GCPs outside the image (see :func:`check_gcps`).

    The returned camera's ``bias_report`` is a tuple of per-GCP dicts with the keys
    ``id, lon, lat, h, row, col`` (measured), ``row_before, col_before`` (predicted without bias),
    ``row_after, col_after`` (with the fitted bias), ``residual_row, residual_col, residual``
    (measured − after, and its norm), ``residual_row_before, residual_col_before,
    residual_before``, ``in_image`` and ``model`` (the model used)."""
    gcps, in_image = _prepare(camera, gcps, strict)
    pred = _predict(camera, gcps)
    meas = np.column_stack([gcps.row, gcps.col])
    bias, used = solve_bias(pred, meas, model)
    after = np.column_stack(apply_affine(bias, pred[:, 0], pred[:, 1]))
    report = []
    for k in range(len(gcps)):
        rb, cb = meas[k] - pred[k]
        ra, ca = meas[k] - after[k]
        report.append({
            "id": gcps.id[k], "lon": float(gcps.lon[k]), "lat": float(gcps.lat[k]), "h": float(gcps.h[k]),
            "row": float(meas[k, 0]), "col": float(meas[k, 1]),
            "row_before": float(pred[k, 0]), "col_before": float(pred[k, 1]),
            "row_after": float(after[k, 0]), "col_after": float(after[k, 1]),
            "residual_row": float(ra), "residual_col": float(ca), "residual": float(np.hypot(ra, ca)),
            "residual_row_before": float(rb), "residual_col_before": float(cb),
            "residual_before": float(np.hypot(rb, cb)),
            "in_image": bool(in_image[k]), "model": used,
        })
    return camera.with_bias(bias, report)


def leave_one_out(camera: Camera, gcps, *, model: str = "auto", strict: bool = False) -> tuple[dict, ...]:
    """Leave-one-out check of the bias fit: for each GCP, fit on all the others and predict it.

    ``model`` is applied to each subset as in :func:`fit_bias` ("auto" may thus use the shift model
    on small subsets). Returns per-GCP dicts with ``id, row, col`` (measured), ``row_loo, col_loo``
    (predicted by the fit without it), ``residual_row, residual_col, residual`` (measured − loo)
    and ``model`` (model fitted on the others). Needs ≥ 2 GCPs (≥ 4 for an affine model)."""
    gcps, _ = _prepare(camera, gcps, strict)
    n = len(gcps)
    if n < 2:
        raise GCPError(f"{gcps.source}: leave-one-out needs at least 2 GCPs; got {n}.")
    pred = _predict(camera, gcps)
    meas = np.column_stack([gcps.row, gcps.col])
    out = []
    for k in range(n):
        keep = np.arange(n) != k
        try:
            bias, used = solve_bias(pred[keep], meas[keep], model)
        except GCPError as e:
            raise GCPError(f"{gcps.source}: leave-one-out without GCP {gcps.id[k]!r}: {e}") from None
        r, c = apply_affine(bias, pred[k, 0], pred[k, 1])
        rr, rc = meas[k, 0] - r, meas[k, 1] - c
        out.append({"id": gcps.id[k], "row": float(meas[k, 0]), "col": float(meas[k, 1]),
                    "row_loo": float(r), "col_loo": float(c), "residual_row": float(rr),
                    "residual_col": float(rc), "residual": float(np.hypot(rr, rc)), "model": used})
    return tuple(out)
