"""Cross-date structural evidence, per cell, in numpy/scipy (no dask, no xarray).

Radiance is a weak witness across dates (other sun, season, gain, years of wear); the *order* of
neighbouring samples survives any increasing radiometric change. The evidence is a ternary census
comparison of the base and target samples on the DSM grid (see docs/change_detection.md):

* ternary census code of cell ``c`` and its 8 neighbours ``n`` at distance ``r`` cells:
  ``C_n(c) = sign(x_n - x_c)`` if ``|x_n - x_c| > k sigma`` else 0, with ``sigma`` the image's
  pixel-difference noise (robust, :func:`noise_sigma`) and ``k`` = :data:`DEADBAND` (differences
  inside the noise carry no order);
* over a square window of side ``w`` cells, the fraction ``H`` of the valid code pairs that
  differ between base and target, divided by the fraction ``H_chance`` that two unrelated
  surfaces with the same code frequencies would give: ``R = H / H_chance`` (1 - Cohen's kappa of
  the codes; texture-neutral: flat ground and busy roofs both sit near 1 when unrelated);
* the DSM may be wrong by some metres and the images mis-registered by a pixel: the target is
  shifted along the *relative* parallax direction of the two views for height errors within the
  scene's relief, and the smallest ``R`` over those shifts is kept (an unchanged surface matches
  at one of them; a demolished roof or a new building matches at none).

* on **elevated** cells a second ratio over the same codes, the sign-reversal ratio ``S``
  (:mod:`offnadir.change.reversal`: only pairs whose order reversed count, not those that turned
  flat or textured), and the roof's evidence is their geometric mean ``sqrt(R S)``
  (:func:`roof_evidence`): a roof that is still there keeps the order of its edges and features
  however it was re-covered or weathered; one that vanished or moved does not.

A demolished building: the base shows the roof's edges where the DSM predicts them, the target
shows the ground (other edges, or none) -> codes differ. A new building on flat ground: the target
shows a roof and its relief displacement where the base shows ground -> codes differ. Both need no
radiometric model, so single-band images are handled like multi-band ones (band mean).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

#: census dead band, in noise sigmas of one sample: the difference of two noisy samples has
#: sd sqrt(2) sigma, so ``|d| <= 2 sigma`` (1.41 sd) holds with probability 0.84 for pure Gaussian
#: noise: a flat surface gives code 0 for most pairs at both dates (sigma is estimated with the
#: texture included, which widens the band further on textured scenes)
DEADBAND = 2.0
#: census neighbour distance (cells)
RADIUS = 1
_NEIGH = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def intensity(val):
    """(bands, y, x) -> (y, x) float64 band mean (single band: itself); the numbers of numpy's
    ``mean(axis=0)`` of the float64 values (:func:`offnadir.change.kernels.band_mean`)."""
    if np.ndim(val) == 3:
        from offnadir.change.kernels import band_mean

        return band_mean(val)
    return np.asarray(val, np.float64)


def noise_sigma(x, mask) -> float:
    """Robust noise sigma of one sample from the 2x2 second difference
    ``x[i,j] - x[i,j+1] - x[i+1,j] + x[i+1,j+1]`` (variance 4 sigma^2 for white noise):
    ``1.4826 MAD / 2`` over cells where all four are in ``mask``; texture inflates it, which only
    widens the dead band on textured scenes (conservative)."""
    m = mask[:-1, :-1] & mask[1:, :-1] & mask[:-1, 1:] & mask[1:, 1:]
    d = (x[:-1, :-1] - x[:-1, 1:] - x[1:, :-1] + x[1:, 1:])[m]
    if d.size < 16:
        return 0.0
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / 2.0)


def census(x, mask, sigma, r: int = RADIUS):
    """Ternary census codes (8, y, x) int8 and their validity (8, y, x) bool (centre and
    neighbour in ``mask``); borders are invalid."""
    ny, nx = x.shape
    codes = np.zeros((8,) + x.shape, np.int8)
    valid = np.zeros((8,) + x.shape, bool)
    t = DEADBAND * sigma
    xs = np.where(mask, x, 0.0)
    for k, (di, dj) in enumerate(_NEIGH):
        di, dj = di * r, dj * r
        src = (slice(max(di, 0), ny + min(di, 0)), slice(max(dj, 0), nx + min(dj, 0)))
        dst = (slice(max(-di, 0), ny + min(-di, 0)), slice(max(-dj, 0), nx + min(-dj, 0)))
        d = xs[src] - xs[dst]
        codes[k][dst] = np.sign(d) * (np.abs(d) > t)
        valid[k][dst] = mask[src] & mask[dst]
    return codes, valid


def shift(a, di: int, dj: int, fill):
    """``out[i, j] = a[i + di, j + dj]`` (``fill`` outside)."""
    out = np.full_like(a, fill)
    ny, nx = a.shape[-2:]
    src = (..., slice(max(di, 0), ny + min(di, 0)), slice(max(dj, 0), nx + min(dj, 0)))
    dst = (..., slice(max(-di, 0), ny + min(-di, 0)), slice(max(-dj, 0), nx + min(-dj, 0)))
    out[dst] = a[src]
    return out


def census_ratio(ca, va, cb, vb, window: int):
    """Window ratio ``R = H / H_chance`` of the observed code disagreement ``H`` (fraction of the
    valid code pairs that differ) to the disagreement two unrelated surfaces with the same code
    frequencies would show, ``H_chance = 1 - sum_k q_a(k) q_b(k)`` (``q``: window frequencies of
    the codes -1, 0, +1 in each image). ``R`` is 1 minus Cohen's kappa of the two code sets:
    about 1 where the structures are unrelated (change), lower where they agree, whatever the
    texture. NaN where the window has no valid pair; 0 where it has no code variety (both flat)."""
    both = va & vb
    n = ndi.uniform_filter(both.sum(axis=0).astype(np.float64), window, mode="constant")
    dif = ndi.uniform_filter(((ca != cb) & both).sum(axis=0).astype(np.float64), window, mode="constant")
    agree = np.zeros(n.shape)
    for k in (-1, 0, 1):
        qa = ndi.uniform_filter(((ca == k) & both).sum(axis=0).astype(np.float64), window, mode="constant")
        qb = ndi.uniform_filter(((cb == k) & both).sum(axis=0).astype(np.float64), window, mode="constant")
        agree += qa * qb
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = n > 0.5 / window**2  # at least about half a valid pair per window (float round-off)
        h = np.where(ok, dif / np.where(ok, n, 1.0), np.nan)
        chance = np.where(ok, 1.0 - agree / np.where(ok, n * n, 1.0), np.nan)
        # no code variety in the window (both flat, all codes equal): nothing disagrees, R = 0
        return np.where(chance > 1e-6, h / np.where(chance > 1e-6, chance, 1.0), np.where(ok, 0.0, np.nan))


def relative_offsets(az0, off0, az1, off1, max_dh, cell):
    """Integer (di, dj) grid offsets that the target's samples move relative to the base's for a
    DSM height error in ``[-max_dh, max_dh]`` metres: ``dh (tan(off1) u1 - tan(off0) u0)`` with
    ``u`` the unit ground vector towards each sensor (azimuth from grid north, clockwise; rows
    grow southwards). Always contains (0, 0); unknown angles -> only (0, 0)."""
    vals = (az0, off0, az1, off1)
    if not all(v is not None and np.isfinite(v) for v in vals) or max_dh <= 0:
        return [(0, 0)]

    def vec(az, off):
        t = math.tan(math.radians(off))
        return -t * math.cos(math.radians(az)), t * math.sin(math.radians(az))  # (d row, d col) per metre

    (a0, b0), (a1, b1) = vec(az0, off0), vec(az1, off1)
    di, dj = (a1 - a0) / cell, (b1 - b0) / cell
    kmax = int(math.ceil(max_dh * max(abs(di), abs(dj))))
    seen = [(0, 0)]
    for k in range(-kmax, kmax + 1):
        if kmax == 0:
            break
        h = max_dh * k / kmax
        d = (int(round(h * di)), int(round(h * dj)))
        if d not in seen:
            seen.append(d)
    return seen


def structural_evidence(base, target, ok_base, ok_target, window: int, offsets=((0, 0),),
                        sigmas=None, compare=None, core=None, reversal: bool = False, fine=None, pairs=None):
    """Per-cell cross-date structural evidence ``E`` (>= 0, about 1 = no agreement beyond
    chance; NaN: not observable): the smallest :func:`census_ratio` over the parallax
    ``offsets`` (target shifted), on the cells observable in both (``ok_base & ok_target``).

    ``base``/``target``: (y, x) intensities; ``sigmas``: their noise sigmas (default: from the
    arrays themselves, :func:`noise_sigma`); ``compare``: cells whose codes may be compared
    (default all; e.g. not where the direct sun differs between the dates: a moved cast shadow
    is a nuisance) — the others still get the evidence of their window. ``core``: (i0, i1, j0, j1),
    return only those cells (the arrays' margin is halo). ``reversal``: also return the
    sign-reversal ratio ``S`` of the same codes (:mod:`offnadir.change.reversal`), as ``(E, S)``.
    ``fine``: a narrower window (cells) whose evidence (the same codes and offsets) is taken in the
    same sweep and appended: ``(E, E_fine)`` or ``(E, S, E_fine)``. ``pairs``: a (y, x) uint32
    word in :func:`offnadir.change.census_codes.pack`'s layout and-ed into both images' codes (the
    code pairs that may be compared: :func:`offnadir.change.sun_pairs.pair_word`)."""
    from offnadir.change import census as K
    from offnadir.change import census_codes as CW

    sa, sb = sigmas if sigmas is not None else (noise_sigma(base, ok_base), noise_sigma(target, ok_target))
    cm = np.ones(base.shape, bool) if compare is None else compare
    # the packed codes of census() in one numba pass each (census_words; tested equal)
    wa = CW.census_words(base, ok_base & cm, DEADBAND * sa, RADIUS, _NEIGH)
    wb = CW.census_words(target, ok_target & cm, DEADBAND * sb, RADIUS, _NEIGH)
    if pairs is not None:
        wa, wb = wa & pairs, wb & pairs
    # with the reversal ratio: both from one sweep of the window sums (identical to min_reversal_ratio)
    res = K.min_census_ratio(wa, wb, offsets, window, core, reversal=bool(reversal), fine=fine)
    res = res if isinstance(res, tuple) else (res,)
    i0, i1, j0, j1 = core if core is not None else (0, base.shape[0], 0, base.shape[1])
    unseen = ~(ok_base & ok_target)[i0:i1, j0:j1]
    for a in res:
        a[unseen] = np.nan
    return res if len(res) > 1 else res[0]


def roof_evidence(r, s):
    """Evidence of an elevated cell from its census ratio ``R`` and sign-reversal ratio ``S``:
    ``sqrt(R S)`` (the mean of their logarithms, the scale the calibration works on: two witnesses
    of one roof, neither trusted alone), ``R`` where ``S`` is undefined (no signed code of a kind
    in the window). Both are about 1 for unrelated surfaces, so the product keeps that anchor."""
    r = np.asarray(r, np.float64)
    s = np.asarray(s, np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(s) & np.isfinite(r), np.sqrt(np.maximum(r, 0.0) * np.maximum(s, 0.0)), r)


def structural_evidence_reference(base, target, ok_base, ok_target, window: int, offsets=((0, 0),), sigmas=None,
                                  compare=None):
    """:func:`structural_evidence` as the numpy formula (:func:`census_ratio` per shifted offset):
    the slow, obvious twin the numba kernel is tested against."""
    sa, sb = sigmas if sigmas is not None else (noise_sigma(base, ok_base), noise_sigma(target, ok_target))
    cm = np.ones(base.shape, bool) if compare is None else compare
    ca, va = census(base, ok_base & cm, sa)
    cb, vb = census(target, ok_target & cm, sb)
    best = np.full(base.shape, np.nan)
    for di, dj in offsets:
        cbs = shift(cb, di, dj, 0) if (di or dj) else cb
        vbs = shift(vb, di, dj, False) if (di or dj) else vb
        best = np.fmin(best, census_ratio(ca, va, cbs, vbs, window))
    best[~(ok_base & ok_target)] = np.nan
    return best
