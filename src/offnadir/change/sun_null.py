"""The sun estimate's acceptance against its own null (used by :mod:`offnadir.change.sun_estimate`).

``z >= 3`` on the best candidate (three jackknife standard errors above no association between
the predicted shadows and the image) is the test of one candidate; the best of the search's
hundreds is biased upwards: on shadow-free images (noise over a box DSM) the best z reached
1.5-4.6 and 2 of 12 passed (``python benchmarks/eval_sun_null.py``). So the whole-sky search (the
first level, where the multiplicity is) is run again on null draws of the same image: its samples
circularly shifted against the DSM by 0.3, 0.5 or 0.7 of the window's side in each axis (9
draws, :func:`null_shifts`; each sample lands at least 0.3 of a side from its own cell, farther
than the shadows of any sun over ~30 degrees on the window sizes used, so the association is
broken while the image's texture, its shadows' sizes and its dark fraction are kept). The DSM,
hence every candidate's predicted shadows, is the same, so one illumination run per candidate
serves the image and every draw (:func:`draw_sums`). Each draw's best z (the same candidates, the
same jackknife) is a maximum of many dependent variates, whose law is taken as Gumbel, fitted by
its moments to the draws; the sun is accepted when the image's own whole-sky best z reaches that
law's ``1 - NULL_ALPHA`` quantile (:func:`null_threshold`), and ``z >= 3``.

``NULL_ALPHA`` is 1 %: a quantile ~10 times beyond the draws' own range (9 draws reach ~90 %) is
as far as 9 draws can be extrapolated; at 0.1 % the threshold rode on the draws' outliers (on the
hard simulator some shifted draws reach z 5.6-6.3) and rejected a correct sun (z 8.6).
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
#: the null draws' shifts, in fractions of the window's sides (:func:`null_shifts`)
NULL_FRACTIONS = (0.3, 0.5, 0.7)


def null_shifts(ny: int, nx: int) -> list:
    """The circular shifts (rows, columns) of the null draws: every pair of 0.3, 0.5, 0.7 of the
    grid's sides, so each sample lands at least 0.3 of a side away from its cell in both axes."""
    return [(int(round(fy * ny)), int(round(fx * nx))) for fy in NULL_FRACTIONS for fx in NULL_FRACTIONS]


def null_threshold(z_null, z_min: float = 3.0) -> float:
    """The ``1 - NULL_ALPHA`` quantile of a Gumbel law with the null draws' mean and standard
    deviation (method of moments), at least ``z_min``; ``z_min`` when fewer than 3 draws are finite."""
    z = np.asarray(z_null, np.float64)
    z = z[np.isfinite(z)]
    if z.size < 3:
        log.warning("sun estimate: only %d finite null draws; the null threshold falls back to z %.1f", z.size, z_min)
        return z_min
    beta = float(np.std(z, ddof=1)) * math.sqrt(6.0) / math.pi
    mu = float(np.mean(z)) - 0.5772156649 * beta
    return max(z_min, mu - beta * math.log(-math.log1p(-NULL_ALPHA)))


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
