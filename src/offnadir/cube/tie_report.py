"""The tie-point fit's report (issue 8): when a fit is weak, the per-image entry stored in the
store's ``tie_bias`` attribute, and its text for ``offnadir info``. The fit: :mod:`offnadir.cube.tiebias`."""

from __future__ import annotations

import json
import logging
import math

import numpy as np

from offnadir.camera.bias_robust import affine_displacement, apply_affine, clustered_displacement_sd

log = logging.getLogger("offnadir.cube.tiepoints")

#: below this many inlier tie points the image keeps its camera (and a warning says so)
MIN_POINTS = 12
#: below this many inliers, or with a median residual above WEAK_MEDIAN_PX, the fit is called weak
WEAK_POINTS = 40
WEAK_MEDIAN_PX = 0.5
#: ... or when the correction's standard deviation over the DSM footprint (from the fit's own parameter
#: covariance) exceeds this: half the 0.1 px agreement issue 8 aims at, so twice it stays within that
WEAK_SD_PX = 0.05


def _stats(d) -> tuple[float, float]:
    if len(d) == 0:
        return math.nan, math.nan
    return float(np.median(d)), float(np.percentile(d, 90))


def _image_report(im, st) -> dict:
    entry = {"image": im.name, "role": "tied to base", "n_measured": st["n_measured"], "n_iter": st["n_iter"],
             "applied": False, "weak": True, "settled": st["settled"]}
    if st["fit"] is None:
        entry.update(n_points=0, model=None,
                     warning=f"only {entry['n_measured']} tie points were measured{st.get('where', '')} (at least "
                             f"{MIN_POINTS} needed): "
                             "the camera is kept as given. The images may not overlap on textured, "
                             "unchanged ground; give GCPs for this image instead.")
        log.warning("tie points %s: %s", im.name, entry["warning"])
        return entry
    corr, used, inl, sigma, pred, meas = st["fit"]
    before = meas - pred
    after = meas - np.column_stack(apply_affine(corr, pred[:, 0], pred[:, 1]))
    mb, pb = _stats(np.hypot(*before[inl].T))
    ma, pa = _stats(np.hypot(*after[inl].T))
    n_in = int(inl.sum())
    fit, fp = st.get("robust"), st.get("footprint")
    sd = float(fit.displacement_sd(*fp.T).max()) if fit is not None and fp is not None else math.nan
    blocks = st.get("blocks")
    sd_blocks = math.nan
    if fit is not None and fp is not None and blocks is not None:
        pred_b, meas_b, sigma_b, labels = blocks
        sd_blocks = float(clustered_displacement_sd(fit, pred_b, meas_b, labels, *fp.T, sigma_pts=sigma_b).max())
    weak = n_in < WEAK_POINTS or not (ma <= WEAK_MEDIAN_PX) or sd > WEAK_SD_PX
    entry.update(n_points=n_in, n_outliers=int((~inl).sum()), model=used, correction=[float(v) for v in corr],
                 applied=True, weak=bool(weak),
                 residual_before_median_px=mb, residual_before_p90_px=pb,
                 residual_after_median_px=ma, residual_after_p90_px=pa,
                 shift_before_rc_px=[float(v) for v in np.median(before[inl], axis=0)],
                 max_correction_px=affine_displacement(corr, im.shape),
                 sigma_rc_px=list(sigma), last_move_px=float(st["move"]), correction_sd_px=sd,
                 correction_sd_blocks_px=sd_blocks)
    log.info("tie points %s: %d points (%d outliers), model %s, residual median/p90 %.3f/%.3f px before, "
             "%.3f/%.3f px after; correction %s, its standard deviation over the DSM footprint up to %.3f px "
             "(%.3f px with the errors of one block's windows shared)",
             im.name, n_in, entry["n_outliers"], used, mb, pb, ma, pa, " ".join(f"{v:.5g}" for v in corr), sd,
             sd_blocks)
    if weak:
        entry["warning"] = (f"weak tie-point fit: {n_in} inlier points (want >= {WEAK_POINTS}), median residual "
                            f"{ma:.2f} px (want <= {WEAK_MEDIAN_PX}), correction uncertain by up to {sd:.3f} px "
                            f"(want <= {WEAK_SD_PX}); check the images overlap on unchanged ground.")
        log.warning("tie points %s: %s", im.name, entry["warning"])
    return entry


# ------------------------------------------------------------------------------------ output
def report_attrs(report) -> dict:
    return {"tie_bias": json.dumps(report, default=float)}


def format_report(report) -> str:
    """``offnadir info``-style text of a tie-bias report."""
    lines = ["relative bias from tie points:"]
    for e in report:
        if e.get("role") == "base":
            lines.append(f"  {e['image']:<16} base (kept as given)")
            continue
        if not e.get("n_points"):
            lines.append(f"  {e['image']:<16} not fitted: {e.get('warning', '')}")
            continue
        b = e["bias"]
        lines.append(f"  {e['image']:<16} {e['n_points']} tie points ({e['n_outliers']} outliers), model {e['model']}"
                     f"{' WEAK' if e['weak'] else ''}")
        lines.append(f"  {'':<16} residual median/p90 before {e['residual_before_median_px']:.3f}/"
                     f"{e['residual_before_p90_px']:.3f} px, after {e['residual_after_median_px']:.3f}/"
                     f"{e['residual_after_p90_px']:.3f} px"
                     + (f"; correction uncertain by up to {e['correction_sd_px']:.3f} px (1 sd) over the DSM footprint"
                        if math.isfinite(e.get("correction_sd_px", math.nan)) else ""))
        lines.append(f"  {'':<16} row' = {b[0]:.6f} row + {b[1]:.6f} col + {b[2]:+.3f}; "
                     f"col' = {b[3]:.6f} row + {b[4]:.6f} col + {b[5]:+.3f}")
        if e.get("warning"):
            lines.append(f"  {'':<16} warning: {e['warning']}")
    return "\n".join(lines)
