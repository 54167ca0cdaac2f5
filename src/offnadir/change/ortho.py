"""The ortho baseline (``method: ortho``): what change detection on two orthorectified images gives
without occlusion handling or patches.

Both images are resampled on the DSM (the cube's ``value``: at a cell hidden in an image it is
the occluder's value, exactly what ``gdalwarp -rpc -to RPC_DEM=...`` would show) and compared cell
by cell, ignoring visibility: every cell inside both images is compared.

* IR-MAD (:mod:`offnadir.change.irmad`) is fitted on all those cells (one stratum, no shadow
  handling), in the same dask passes as the patch method;
* per cell ``Z = sum_i (M_i / s_i)^2`` with the MAD variates ``M_i``:

  - ``baseline_test: chi2`` (default, the textbook use of IR-MAD): ``s_i`` = IR-MAD's own
    ``sigma_i``, change when ``Z > chi2_p quantile (1 - baseline_alpha)`` (default alpha 0.01);
  - ``baseline_test: robust``: ``s_i`` = the robust scale ``1.4826 median |M_i|`` and change when
    ``Z > p * baseline_sigma^2`` — the patch method's spectral effect size applied per cell.

* ``score = 1 - 2^-(Z / threshold)`` (0.5 at the threshold).
"""

from __future__ import annotations

import numpy as np

from offnadir.change import irmad


def usable(vis, val, t):
    """Cells inside both the base and image t (any visibility), with finite values."""
    return (vis[0] != 2) & (vis[t] != 2) & np.all(np.isfinite(val[0]), axis=0) & np.all(np.isfinite(val[t]), axis=0)


def threshold(opts, model, robust_scale):
    """(scale (p,), threshold on Z) of the per-cell test."""
    p = model.p
    if opts.baseline_test == "robust":
        return np.asarray(robust_scale, np.float64), float(opts.baseline_sigma) ** 2 * p
    return np.ones(p), irmad.chi2_isf(opts.baseline_alpha, p)


def cell_scores(model, scale, z_thr, x, y):
    """0-1 scores of cells (rows of x, y); change where >= 0.5."""
    z = model.z(x, y, scale)
    with np.errstate(over="ignore"):
        return (1.0 - np.exp2(-z / z_thr)).astype(np.float32)
