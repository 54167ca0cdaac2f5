"""A cut crown's texture: the base and target images over a crown's inner cells no longer correlate
(numpy; the sums per patch come from :func:`offnadir.change.tile.patch_tile`, row ``ctex_t``).

A felled tree leaves the ground at its place: the target, sampled at the crown's old heights, shows
ground displaced by the crown's height along the target's view, unrelated to the crown the base
shows. An unchanged crown keeps some likeness across the dates (its shading from the sun's side, its
outline), how much depends on the run (the sun's move, re-texturing, the view): on the hard
simulator the run's median crown correlation (Fisher ``z``) is 0.13-1.06. So the witness is
calibrated on the run's own crowns: per crown ``z = atanh r(0)`` of the first canonical variates
(the ``structural`` criterion's ``u``, ``v``) over its lit cells whose four neighbours are elevated
(a crown's rim mixes the ground in the resampled images), summed over the crown's patches
(:mod:`offnadir.change.crown_shadow`: the crown is known only after the sums pass, so the sums are
kept per patch and added). The run's crowns give the unchanged class, ``N(m, s)`` with ``m`` the
median and ``s`` the 1.4826 MAD of their ``z`` (most crowns are unchanged: the median and MAD
ignore the few that are not). A cut crown's texture is unrelated to the base, ``z`` centred on 0;
its spread is that of the crowns' (the spread of ``z`` is set by how crowns differ, not by the
number of cells: an unchanged crown's ``z`` varies over the run far beyond ``1/sqrt(n)``). The
log-likelihood ratio of the two, ``log N(z; 0, s) / N(z; m, s) = m (m - 2 z) / (2 s^2)``, is added
to the crown's missing-shadow evidence (:func:`offnadir.change.crown_shadow.decide_crowns`), only
where positive: a crown that still correlates like the unchanged ones is no witness that its
shadow stayed (measured: the two-sided form lost a found cut crown, ``docs/change_detection.md``).
No witness where the crowns do not correlate at all (``m <= 0``), nor from fewer than
:data:`MIN_CELLS` cells.
"""

from __future__ import annotations

import numpy as np

#: fewer inner cells than this give no correlation (as :data:`offnadir.change.rim_profile`'s
#: ``MIN_EDGE_PAIRS``: a statistic of a handful of correlated cells is not one)
MIN_CELLS = 8


def row(t: int) -> str:
    """The patch table's row of target ``t``: ``(n, Σu, Σv, Σu², Σv², Σuv)`` per patch."""
    return f"ctex_{t}"


def inner(elevated):
    """Cells whose four neighbours are elevated too (window edges count as not): a crown's cells
    away from its rim."""
    e = np.asarray(elevated) == 1
    out = e.copy()
    out[1:] &= e[:-1]
    out[:-1] &= e[1:]
    out[:, 1:] &= e[:, :-1]
    out[:, :-1] &= e[:, 1:]
    out[0] = out[-1] = False
    out[:, 0] = out[:, -1] = False
    return out


def fisher_z(sums):
    """``atanh`` of the Pearson correlation of the sums ``(n, Σu, Σv, Σu², Σv², Σuv)`` (rows), NaN
    under :data:`MIN_CELLS` cells or without spread; clipped to ``|r| <= 0.999``."""
    s = np.asarray(sums, np.float64).reshape(-1, 6)
    n = s[:, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        cu = s[:, 3] - s[:, 1] ** 2 / n
        cv = s[:, 4] - s[:, 2] ** 2 / n
        cuv = s[:, 5] - s[:, 1] * s[:, 2] / n
        r = cuv / np.sqrt(cu * cv)
    ok = (n >= MIN_CELLS) & (cu > 0) & (cv > 0) & np.isfinite(r)
    return np.where(ok, np.arctanh(np.clip(r, -0.999, 0.999)), np.nan)


def log_lr(z):
    """Per crown the texture's evidence of a cut (module docstring), and the run's ``(m, s)``: the
    median and robust sd of the crowns' ``z`` (NaN: no witness, evidence 0)."""
    z = np.asarray(z, np.float64)
    fin = np.isfinite(z)
    out = np.zeros(len(z))
    if fin.sum() < 3:
        return out, float("nan"), float("nan")
    m = float(np.median(z[fin]))
    s = float(1.4826 * np.median(np.abs(z[fin] - m)))
    if not (m > 0 and s > 0):
        return out, m, s
    out[fin] = np.maximum(m * (m - 2.0 * z[fin]) / (2.0 * s * s), 0.0)
    return out, m, s


def per_crown(cr: dict, ids, sums):
    """The patch table's texture sums ``sums`` (rows of the sorted patch ``ids``) added per crown of
    ``cr`` (:func:`offnadir.change.crown_shadow.crowns`); ``(count, 6)``."""
    ids = np.asarray(ids, np.int64)
    out = np.zeros((cr["count"], 6))
    if not cr["count"] or sums is None or not len(ids):
        return out
    k = np.minimum(np.searchsorted(ids, cr["ids"]), len(ids) - 1)
    f = ids[k] == cr["ids"]
    s = np.asarray(sums, np.float64)
    for c in range(6):
        out[:, c] = np.bincount(cr["crown"][f], s[k[f], c], minlength=cr["count"])
    return out
