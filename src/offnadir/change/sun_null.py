"""The sun estimate's acceptance against its own null (used by :mod:`offnadir.change.sun_estimate`).

``z >= 3`` on the best candidate (three jackknife standard errors above no association between
the predicted shadows and the image) is the test of one candidate; the best of the search's
hundreds is biased upwards: on shadow-free images (noise over a box DSM) the best z reached
1.5-4.6 and 2 of 12 passed (``python benchmarks/eval_sun_null.py``). So the whole-sky search (the
first level, where the multiplicity is) is run again on null draws of the same image: its samples
circularly shifted against the DSM by 0.3, 0.4, 0.5, 0.6 or 0.7 of the window's side in each
axis (25 draws, :func:`null_shifts`; each sample lands at least 0.3 of a side from its own cell, farther
than the shadows of any sun over ~30 degrees on the window sizes used, so the association is
broken while the image's texture, its shadows' sizes and its dark fraction are kept). The DSM,
hence every candidate's predicted shadows, is the same, so one illumination run per candidate
serves the image and every draw (:func:`draw_sums`). Each draw's best z (the same candidates, the
same jackknife) is a maximum of many dependent variates, whose law is taken as Gumbel, fitted to
the draws by robust location and scale (their median and median absolute deviation, each mapped
to the Gumbel's own); the sun is accepted when the image's own whole-sky best z reaches that
law's ``1 - NULL_ALPHA`` quantile (:func:`null_threshold`), and ``z >= 3``.

Why robust, and why 25 draws: on the hard simulator some draws stand far above the others (a
shift that lays the image's real shadows over other buildings' predicted ones: steep geometry
seed 4's target, draws 1.6-3.7 and one 5.4); with 9 draws fitted by moments that one draw set
the threshold (6.54) above a correct sun's z (6.45). The median and MAD ignore up to half the
draws; they are noisier than moments on few draws, so the draws were raised from 9 (0.3/0.5/0.7
of each side) to 25 (0.3 to 0.7 by 0.1): on a clean Gumbel null the 1 % quantile fitted so is
exceeded 2.0 % of the time (Monte Carlo), against 2.9 % for 9 draws by moments (the estimate's
own spread makes any 1 % quantile from few draws exceeded more often). Measured: see
``docs/change_detection.md`` (issue 7, H11).

``NULL_ALPHA`` is 1 % (kept from the 9-draw fit: a quantile ~10 times beyond what 9 draws reach
was as far as they could be extrapolated; at 0.1 % the threshold rode on the draws' outliers,
on the hard simulator some shifted draws reach z 5.6-6.3, and rejected a correct sun, z 8.6).

numpy only (the illumination codes from :mod:`offnadir.change.kernels`, the sums of the shaded
cells :mod:`offnadir.change.sun_block_sums`).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from offnadir.change import kernels as K
from offnadir.change.sun_block_sums import shaded_row_sums

log = logging.getLogger("offnadir.change.sun_null")

#: the search's own false-acceptance rate (module doc): one shadow-free image in a hundred would be
#: given a sun; 9 null draws cannot pin a rarer quantile (0.1 % rejected a correct hard-sim sun)
NULL_ALPHA = 0.01
#: the null draws' shifts, in fractions of the window's sides (:func:`null_shifts`): 25 draws, enough
#: for a robust fit (module doc)
NULL_FRACTIONS = (0.3, 0.4, 0.5, 0.6, 0.7)
#: the standard Gumbel's median (``-ln ln 2``) and median absolute deviation about it (the root of
#: ``F(m + d) - F(m - d) = 1/2``, ``F(x) = exp(-exp(-x))``)
GUMBEL_MEDIAN = -math.log(math.log(2.0))
GUMBEL_MAD = 0.7670492513257082


def null_shifts(ny: int, nx: int) -> list:
    """The circular shifts (rows, columns) of the null draws: every pair of ``NULL_FRACTIONS``
    (0.3 to 0.7) of the grid's sides, so each sample lands at least 0.3 of a side away from its
    cell in both axes."""
    return [(int(round(fy * ny)), int(round(fx * nx))) for fy in NULL_FRACTIONS for fx in NULL_FRACTIONS]


def gumbel_robust_fit(z) -> tuple[float, float]:
    """Location and scale of a Gumbel law from the median and the median absolute deviation of
    ``z`` (finite values): ``scale = MAD / GUMBEL_MAD``, ``loc = median - scale * GUMBEL_MEDIAN``.
    Any number of values below half can be moved anywhere without moving the fit beyond the
    spread of the others."""
    z = np.asarray(z, np.float64)
    med = float(np.median(z))
    scale = float(np.median(np.abs(z - med))) / GUMBEL_MAD
    return med - scale * GUMBEL_MEDIAN, scale


def null_threshold(z_null, z_min: float = 3.0) -> float:
    """The ``1 - NULL_ALPHA`` quantile of the Gumbel law fitted to the null draws by
    :func:`gumbel_robust_fit`, at least ``z_min``; ``z_min`` when fewer than 5 draws are finite."""
    z = np.asarray(z_null, np.float64)
    z = z[np.isfinite(z)]
    if z.size < 5:
        log.warning("sun estimate: only %d finite null draws; the null threshold falls back to z %.1f", z.size, z_min)
        return z_min
    loc, scale = gumbel_robust_fit(z)
    return max(z_min, loc - scale * math.log(-math.log1p(-NULL_ALPHA)))


def shifted_draws(r, h, shifts) -> np.ndarray:
    """The image's ranks ``r`` (NaN where unusable) circularly shifted against the heights ``h``
    by each ``(dy, dx)``: array (2 K, ny * nx), the usable indicator of each draw (a finite rank
    on a finite height) then its ranks (0 where unusable)."""
    fin = np.isfinite(h)
    w, rk = [], []
    for dy, dx in shifts:
        x = np.roll(r, (dy, dx), axis=(0, 1))
        ok = np.isfinite(x) & fin
        w.append(ok.ravel().astype(np.float64))
        rk.append(np.where(ok, x, 0.0).ravel())
    return np.ascontiguousarray(np.stack(w + rk))


def draw_sums(buf, block, fin, x, nb: int, cache: dict) -> np.ndarray:
    """Per-block sums (n usable, n shadowed, rank sum, rank sum in shadow) of every draw ``x``
    (:func:`shifted_draws`) under one candidate's illumination codes ``buf`` (flat, as ``block``
    the block labels and ``fin`` the finite heights): array (K, 4, nb). ``cache`` keeps the
    draws' totals, the same for every candidate whose unknown cells are only the non-finite
    heights (the draws' unusable cells anyway)."""
    unknown = (buf == K.UNKNOWN) & fin
    if unknown.any():  # the kernel marks only non-finite heights unknown: not expected
        keep = ~unknown
        tot = np.stack([np.bincount(block[keep], row[keep], minlength=nb) for row in x])
    else:
        if cache.get("x") is not x:
            cache["x"], cache["tot"] = x, np.stack([np.bincount(block, row, minlength=nb) for row in x])
        tot = cache["tot"]
    shs = shaded_row_sums(buf, block, x, K.SHADED, nb)
    k = x.shape[0] // 2
    return np.stack([tot[:k], shs[:k], tot[k:], shs[k:]], axis=1)
