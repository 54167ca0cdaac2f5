"""Change criteria: each turns the per-patch sums of one target image into a value and a 0-1
score per patch (0.5 = the criterion's threshold). Pluggable: register a function with
:func:`criterion` and name it in the ``change.criteria`` option.

Built-in criteria
-----------------
``spectral`` — IR-MAD (Nielsen 2007; see :mod:`offnadir.change.irmad`). Per cell, the MAD
variates of the cell's illumination stratum are expressed in the robust per-cell noise scale
``s_i = 1.4826 median |M_i|``. Per patch ``P`` with ``n`` usable cells::

    mbar_i = (1/n) sum_{c in P} M_i(c) / s_i
    value  = sqrt( (1/p) sum_i mbar_i^2 )      # RMS shift of the patch mean, in noise sigmas

Under no change ``p n value^2`` would be chi-square with ``p`` dof for independent cells; in VHR
images neighbouring cells are not independent and materials depart slightly from one affine
radiometric relation, so the test is an effect size instead: the patch mean must move by more
than ``spectral_sigma`` (default 3.5) noise standard deviations — what a chi-square test at
significance ``P(chi2_p > p * 12.25)`` (about 6e-10 for p = 4) asks of a single cell.
A mean can be pulled by a minority of cells (a neighbour's new shadow or new wall covering part of
a roof), so the majority must agree: with the per-cell magnitude
``m_c = sqrt((1/p) sum_i (M_i(c) / s_i)^2)``, the patch median of ``m_c`` (interpolated from the
share of cells above fixed levels 0.5 ... 32) must exceed ``spectral_cell_sigma`` (default 2.5; an
unchanged cell exceeds 2.5 with probability P(chi2_p > 6.25 p), 1e-4 for p = 4)::

    score = min(1 - 2^-(value / spectral_sigma)^2, 1 - 2^-(median m_c / spectral_cell_sigma)^2)

A patch whose compared cells are fewer than a quarter of those visible in both images (the rest
under changed illumination) gives no spectral evidence: a fringe does not speak for the patch;
nor does a patch whose lit cells' direct irradiance relative to flat ground changed by more than
``incidence_tolerance`` on average (a sloped roof face under a moved sun changes brightness by
itself).

``structural`` — patch correlation. With ``u``, ``v`` the first canonical variates of base and
target (IR-MAD: the best-matching combination of the bands), ``r(0)`` is their Pearson
correlation over the patch's usable interior cells (cells on a patch edge mix neighbours in the
resampled images and are left out). It is compared with a reference correlation ``r_ref``::

    value = atanh(r_ref) - atanh(r(0))   if r_ref >= structural_min_corr, else 0

so flat or untextured patches (low ``r_ref``) give no structural evidence, and
``score = 1 - 2^-(value / structural_dz)^2``. A patch whose compared cells are less than half of
those visible in both images (the rest under a shadow that moved) gives no structural evidence:
a fringe of a patch is not its texture.

* Elevated patches — parallax: a height change ``dh`` moves what the target shows at a roof cell
  by ``dh tan(theta_t)`` along the target's azimuth (the cube samples the target at the epoch-1
  height). ``r(k)`` correlates ``u(c)`` with ``v(c + k)`` for integer offsets ``k`` along that
  azimuth covering height changes up to ``max_height_change``, smoothed over neighbouring offsets
  (3-tap mean: one lucky offset is not a match), searched only at offsets where the patch overlaps
  its shifted copy on at least :data:`MIN_OVERLAP` of its zero-offset pairs (a height change moves
  the whole roof; a sliver at the patch's far ends does not speak for it). ``r_ref = max_k r(k)`` at offset ``k*`` when
  ``|k*|`` is at least ``structural_min_shift`` metres, else no evidence. The peak must stand out
  on both sides: ``r(0)`` in the formula is replaced by ``max(r(0), r(k* - w), r(k* + w))`` with
  ``w = structural_peak_width`` metres, so a plateau (a two-faced gable roof correlates with itself
  shifted along one direction) is not a move. Nor is a shift of 3.4 cells or more on a roof whose
  near-sensor rim is there at both dates (:func:`rim_contradicts`): a height change moves the rim.
  Nor is a patch whose DSM is not one plane at the search's resolution (:func:`rigid`: its heights'
  rms departure from their plane above half an offset's height; crowns): it has no single offset.
* Ground patches: no reference, no structural evidence. The correlation an unchanged patch of
  this texture would show, ``1 - s^2 / sqrt(var u var v)`` (``s^2`` the per-cell noise variance
  of the canonical variates, half the robust variance of the first MAD variate), is reported as
  ``corr_expected`` only: on the simulator it flagged ~40 % of unchanged ground patches (fine
  texture does not survive the two resamplings), far too loose a reference.

Vegetation-at-both-dates patches are silenced for every criterion (:mod:`offnadir.change.decide`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from offnadir.change.tile import sigma_score

CRITERIA: dict = {}
_LOG = logging.getLogger("offnadir.change.criteria")


def criterion(name: str, *, radiometric: bool = False):
    """Register ``fn(table: TargetTable, opts) -> (value, score)`` as criterion ``name``;
    ``radiometric`` marks criteria that compare radiometry (informative)."""

    def deco(fn):
        fn.radiometric = radiometric
        CRITERIA[name] = fn
        return fn

    return deco


@dataclass
class TargetTable:
    """Per-patch sums of one target image (rows aligned with ``ids``)."""

    ids: np.ndarray
    n_cells: np.ndarray
    elevated: np.ndarray  # bool
    used: np.ndarray
    mean_rob: np.ndarray  # (n, p) patch mean of robust-standardised MAD variates (NaN: unused)
    frac_above: np.ndarray  # (n, L) share of cells whose m_c exceeds each of tile.LEVELS
    c0: np.ndarray  # (n, 6) correlation sums at zero offset
    profile: np.ndarray | None  # (m, nk, 6) parallax sums of the rows ``profile_rows`` (others: none)
    shift_cells: np.ndarray  # (nk,) signed offset length of each profile column
    noise_var: float = np.nan  # per-cell noise variance of the first canonical variates
    cell: float = 1.0  # metres per cell
    profile_rows: np.ndarray | None = None  # (m,) rows of ``profile`` (None: all n, in order)
    # or, instead of a dense ``profile``, its non-empty (patch, offset) pairs: (index into
    # ``profile_rows``, offset column, (q, 6) sums) and the number of offset columns
    profile_pairs: tuple | None = None
    profile_nk: int = 0
    ndvi_thresholds: tuple | None = None  # (base, target) NDVI above which a patch is vegetation
    ndvi_base: np.ndarray | None = None
    ndvi_target: np.ndarray | None = None
    outline: np.ndarray | None = None  # (n, 14) near-sensor rim sums (offnadir.change.outline.patch_sums)
    tan_view: float = np.nan  # tan of the target's off-nadir angle (NaN: unknown)
    extra: dict = field(default_factory=dict)


def corr(sums):
    """Pearson r from (..., 6) sums (n, Sx, Sy, Sxx, Syy, Sxy); NaN when undefined (fewer than 3
    pairs, a variance not above 1e-12): :func:`offnadir.change.kernels.corr_sums`."""
    from offnadir.change.kernels import corr_sums

    return corr_sums(sums)


def _smooth3(r):
    """Mean of each profile value with its neighbours (NaN-aware), along the offsets: one numba pass
    (:func:`offnadir.change.kernels.smooth3`, equal to the numpy formula in its test)."""
    from offnadir.change.kernels import smooth3

    return smooth3(r)


def _profile_corr(tb, m, nk, min_cells):
    """(m, nk) correlations of the profile's (patch, offset) pairs with at least ``min_cells``
    cell pairs (a number, or one per profile row), NaN elsewhere. From the non-empty pairs alone
    when the table has them: an empty pair (zero sums) has no correlation either way (fewer than 3
    pairs)."""
    need = np.broadcast_to(np.asarray(min_cells, np.float64), (m,))
    if tb.profile is not None:
        return np.where(tb.profile[..., 0] >= need[:, None], corr(tb.profile), np.nan)
    row, k, sums = tb.profile_pairs
    out = np.full((m, nk), np.nan)
    out[row, k] = np.where(sums[:, 0] >= need[row], corr(sums), np.nan)
    return out


#: a parallax offset is searched only where the patch overlaps its shifted copy on at least this
#: share of its pairs at zero offset (its compared interior cells). A height change moves the roof's
#: whole texture, so its match holds over the roof less a strip as wide as the move; a match over a
#: sliver at the patch's far ends (the offset nearly as long as the patch) is a fringe's, which does
#: not speak for the patch -- the spectral criterion's quarter (docs/change_detection.md, H7: on the
#: hard simulator at 1024^2 the parallax criterion's false alarms on unchanged roofs peaked at
#: offsets overlapping 4-18 % of the roof, where 20-40 textured pairs correlate 0.6-0.99 by chance)
MIN_OVERLAP = 0.25


def median_level(frac_above, levels):
    """Median of a per-cell quantity from the share of cells above each level (log-interpolated;
    clamped to the level range)."""
    f = np.asarray(frac_above, np.float64)
    lv = np.log(np.asarray(levels, np.float64))
    n = f.shape[0]
    out = np.full(n, np.nan)
    ok = np.all(np.isfinite(f), axis=1)
    lo = ok & (f[:, 0] < 0.5)
    hi = ok & (f[:, -1] >= 0.5)
    out[lo] = levels[0]
    out[hi] = levels[-1]
    mid = ok & ~lo & ~hi
    if mid.any():
        fm = f[mid]
        k = np.sum(fm >= 0.5, axis=1) - 1  # last level with f >= 0.5
        a, b = fm[np.arange(len(k)), k], fm[np.arange(len(k)), k + 1]
        w = np.where(a > b, (a - 0.5) / np.where(a > b, a - b, 1.0), 0.0)
        out[mid] = np.exp(lv[k] + w * (lv[k + 1] - lv[k]))
    return out


@criterion("spectral", radiometric=True)
def spectral(tb: TargetTable, opts):
    from offnadir.change.tile import LEVELS

    value = np.sqrt(np.mean(tb.mean_rob**2, axis=1))
    med = median_level(tb.frac_above, LEVELS)
    illum = tb.extra.get("illum", np.zeros(len(tb.ids)))
    valid = (tb.used >= opts.min_cells) & (tb.used >= 0.25 * (tb.used + illum))
    # a face whose sun incidence changed has a radiometric change of its own: no spectral evidence
    inc = tb.extra.get("incidence_change")
    if inc is not None:
        valid &= inc <= opts.incidence_tolerance
    value = np.where(valid, value, np.nan)
    med = np.where(valid, med, np.nan)
    tb.extra["spectral_median"] = med
    score = np.minimum(sigma_score(value, opts.spectral_sigma), sigma_score(med, opts.spectral_cell_sigma))
    return value, np.where(valid, score, 0.0)


@criterion("structural")
def structural(tb: TargetTable, opts):
    n = len(tb.ids)
    r0 = corr(tb.c0)
    ref = np.full(n, np.nan)
    shift = np.full(n, np.nan)
    # ground patches: the correlation an unchanged patch of this texture would show
    with np.errstate(all="ignore"):
        nn = tb.c0[:, 0]
        vu = tb.c0[:, 3] / nn - (tb.c0[:, 1] / nn) ** 2
        vv = tb.c0[:, 4] / nn - (tb.c0[:, 2] / nn) ** 2
        r_exp = 1.0 - tb.noise_var / np.sqrt(vu * vv)
    ground = ~tb.elevated & (nn >= opts.min_cells) & np.isfinite(r_exp)
    ref[ground] = r_exp[ground]
    tb.extra["corr_expected"] = np.where(ground, r_exp, np.nan)
    ref[ground] = np.nan  # reported only: too loose a reference on real ground textures (see docs)
    # elevated patches: the best correlation along the parallax direction
    nk = tb.profile.shape[1] if tb.profile is not None else (tb.profile_nk if tb.profile_pairs is not None else 0)
    if nk > 0:
        # (n, nk), columns ordered by signed offset; rows without a profile stay NaN
        # only the rows with a profile (sel) can have one; of those, the elevated ones with any
        # correlation (``has``) are judged on it, the others keep r0 and no reference
        sel = np.arange(n) if tb.profile_rows is None else tb.profile_rows
        # offsets whose overlap with the patch is a sliver of it are not searched (MIN_OVERLAP)
        need = np.maximum(float(opts.min_cells), MIN_OVERLAP * np.asarray(tb.c0[sel, 0], np.float64))
        rs = _smooth3(_profile_corr(tb, len(sel), nk, need))
        hs = tb.elevated[sel] & np.any(np.isfinite(rs), axis=1)
        at, r = sel[hs], rs[hs]
        # ... but a plateau is judged on every offset: a side in the sliver still says "no peak"
        r_all = _smooth3(_profile_corr(tb, len(sel), nk, opts.min_cells))[hs]
        kb = np.nanargmax(np.where(np.isfinite(r), r, -np.inf), axis=1)
        rows = np.arange(len(at))
        rb = r[rows, kb]
        sb = tb.shift_cells[kb]
        # the peak must stand out on both sides: a texture moved as a whole, not a plateau
        w = opts.structural_peak_width / tb.cell
        side = np.full(len(at), np.nan)
        for sgn in (-1.0, 1.0):
            kk = np.argmin(np.abs(tb.shift_cells[None, :] - (sb[:, None] + sgn * w)), axis=1)
            inside = np.abs(tb.shift_cells[kk] - (sb + sgn * w)) <= 1.0
            side = np.fmax(side, np.where(inside, r_all[rows, kk], np.nan))
        moved = np.abs(sb) * tb.cell >= opts.structural_min_shift
        ref[at] = np.where(moved, rb, np.nan)
        shift[at] = sb
        r0 = r0.copy()
        r0[at] = np.fmax(r0[at], side)
    # a patch that is not one plane at the search's resolution (a crown) has no single offset to find
    bent = ~rigid(tb)
    if np.any(bent & np.isfinite(ref)):
        _LOG.info("structural: %d elevated patches' parallax search set aside, their DSM departs from a plane by "
                  "more than half a parallax offset's height (crowns, not rigid surfaces)",
                  int(np.sum(bent & np.isfinite(ref))))
    ref[bent] = np.nan
    # the texture left after the cells under a moved shadow are set aside must be most of the patch
    illum = tb.extra.get("illum", np.zeros(n))
    enough = tb.used >= 0.5 * (tb.used + illum)
    ok = np.isfinite(ref) & np.isfinite(r0) & (ref >= opts.structural_min_corr) & enough
    # a move of the roof by parallax is a height change, and a height change moves the roof's
    # near-sensor rim too: where that rim is where the old DSM puts it at both dates, the shifted
    # correlation is a coincidence of the texture, not a move (rim_contradicts)
    kept = rim_contradicts(tb, shift) & ok
    if kept.any():
        _LOG.info("structural: %d patches' parallax moves set aside, their near-sensor rim is there at both dates",
                  int(kept.sum()))
    ok &= ~kept
    with np.errstate(all="ignore"):
        dz = np.arctanh(np.clip(ref, -0.999, 0.999)) - np.arctanh(np.clip(r0, -0.999, 0.999))
    value = np.where(ok, np.maximum(dz, 0.0), 0.0)
    tb.extra["corr_ref"] = ref
    tb.extra["shift_cells"] = shift
    valid = tb.used >= opts.min_cells
    return value, np.where(valid, sigma_score(value, opts.structural_dz), 0.0)


#: robust sigmas of the DSM's noise a patch's plane-fit rms must exceed, besides half an offset's
#: height, to count as bent (:func:`rigid`)
RIGID_NOISE_SIGMAS = 3.0


def rigid(tb: TargetTable):
    """Patches whose DSM is one plane at the parallax search's resolution, as the criterion's move
    assumes (a height change shifts the whole patch by one offset). The search's offsets are whole
    cells, one of them a height step ``cell / tan(theta_t)``. A patch whose heights' rms departure
    from their least-squares plane exceeds half that step has cells more than half a step off any
    single plane (were every cell within it, the rms could not exceed it): its parts sit at different
    offsets and no single shifted copy of its texture is its move. Crowns are such patches (domes:
    rms 0.7-0.9 m on the hard simulator's flagged crowns, 0.54 m half a step at 25 deg and 0.5 m
    cells; docs/change_detection.md, H9). The rms must also exceed ``RIGID_NOISE_SIGMAS`` times the
    DSM's noise, estimated on the run as the median plane-fit rms of the ground patches (terrain is
    locally a plane; a noisy DSM's flat roofs are not bent). All True without the plane sums or the
    view angle; patches with fewer than 4 heights are rigid."""
    from offnadir.change import crown as CR

    n = len(tb.ids)
    sums = tb.extra.get("plane")
    if sums is None or not (np.isfinite(tb.tan_view) and tb.tan_view > 0):
        return np.ones(n, bool)
    rms = CR.plane_rms(sums)
    tb.extra["plane_rms"] = rms
    ground = ~tb.elevated & (np.asarray(sums)[:, 0] >= 4) & np.isfinite(rms)
    noise = float(np.median(rms[ground])) if ground.any() else 0.0
    bound = max(0.5 * tb.cell / tb.tan_view, RIGID_NOISE_SIGMAS * noise)
    _LOG.info("structural: a patch is one plane for the parallax search up to a plane-fit rms of %.2f m (half "
              "an offset's height %.2f m; %g x the DSM's noise, %.3f m)", bound, 0.5 * tb.cell / tb.tan_view,
              RIGID_NOISE_SIGMAS, noise)
    with np.errstate(invalid="ignore"):
        return ~(tb.elevated & (rms > bound))


#: cells a roof must move for its rim's first step (the pair of the outline cell and its neighbour
#: inwards, up to sqrt 2 cells long on a diagonal walk) to lose every edge: the pair's length plus
#: one cell on either side, over which bilinear resampling spreads the two edges that bound the
#: facade strip (ground | facade at the outline, facade | roof at the moved rim)
RIM_MOVE_CELLS = 2.0 + 2.0**0.5


def rim_contradicts(tb: TargetTable, shift_cells):
    """Elevated patches whose parallax move (``shift_cells``, signed cells along the target's
    parallax direction) is contradicted by their near-sensor rim (:mod:`offnadir.change.outline`).

    A height change ``dh`` shifts what the target shows on a roof by ``s = dh tan(theta_t)``. Raised
    (``s`` towards the sensor), the first ``s`` inside the near-sensor outline show the facade;
    lowered, they show the roof's interior (its edge is seen outside the outline): either way the
    base's rim step is gone from there in the target. A patch whose rim is there at both dates (rim
    ratio at least ``EDGE_FACTOR`` in the base and in the target, the ``outline`` criterion's
    "there") did not move by :data:`RIM_MOVE_CELLS` or more, whatever its shifted texture correlation
    says (on re-covered roofs a shifted copy of the texture can correlate by chance). A smaller move
    keeps an edge inside the rim's first step (a roof of the default simulator raised by a 3-cell
    move: base rim ratio 2.6, target 5.9). Patches without the rim's sums, with
    fewer than ``MIN_EDGE_PAIRS`` rim pairs or a smaller move: False."""
    with np.errstate(invalid="ignore"):
        return rim_kept(tb) & (np.abs(shift_cells) >= RIM_MOVE_CELLS)


def rim_kept(tb: TargetTable):
    """Elevated patches whose near-sensor rim is there at both dates: rim ratio at least
    ``EDGE_FACTOR`` in the base and in the target (:mod:`offnadir.change.outline`; False without
    the rim's sums or with fewer than ``MIN_EDGE_PAIRS`` rim pairs)."""
    from offnadir.change import outline as OL

    n = len(tb.ids)
    if tb.outline is None:
        return np.zeros(n, bool)
    b1, t1 = OL.rim_ratios(tb.outline)
    with np.errstate(invalid="ignore"):
        return tb.elevated & (b1 >= OL.EDGE_FACTOR) & (t1 >= OL.EDGE_FACTOR)


@criterion("outline")
def outline(tb: TargetTable, opts):
    """Elevated patches whose near-sensor rim is in the base and gone from the target
    (:mod:`offnadir.change.outline`): ``value = min(log2 b1, -log2 t1)`` (rim ratios of the base and
    target), ``score = 1 - 2^-value^2``, 0.5 when the base's first step inside the roof is twice the
    roof's mean step and the target's half of it. Or the rim *moved* inwards, whatever the base's
    rim contrast: gone from the target's outline and a new edge inside the roof where the base has
    none (:func:`offnadir.change.outline.rim_moved`), or the strip before that new edge darker in
    the target where the raise's facade would be in the dark, darker or brighter where it would be lit
    (:func:`offnadir.change.outline.facade_moved`; the largest of the values). The rim reads lost
    only where it also does with each image's ratio over its pairs on one side of that image's predicted
    shadow edges (:func:`offnadir.change.outline.rim_lost_in_one_light`). No evidence on
    ground patches, on patches with fewer than 8 rim pairs, or without the sums (unknown view
    angles)."""
    from offnadir.change import outline as OL

    n = len(tb.ids)
    if tb.outline is None:
        return np.zeros(n), np.zeros(n)
    b1, t1 = OL.rim_ratios(tb.outline)
    value = np.where(tb.elevated, OL.rim_lost_in_one_light(tb.outline), np.nan)  # not the light's steps
    with np.errstate(invalid="ignore"):
        light = tb.elevated & (OL.rim_lost(b1, t1) >= 1.0) & ~(value >= 1.0)
    if light.any():
        _LOG.info("outline: %d roofs' rim read lost over every pair but not over each image's pairs on one side of "
                  "its predicted shadow edges (the light's step, not the roof's)", int(light.sum()))
    # or gone from the outline and moved inwards: the target's rim missing there, a new edge inside
    went = np.where(tb.elevated, OL.rim_moved(tb), np.nan)
    with np.errstate(invalid="ignore"):
        extra = (went >= 1.0) & ~(value >= 1.0)
    if extra.any():
        _LOG.info("outline: %d roofs' near-sensor rim gone from the outline and moved inwards in the target "
                  "(their base rim fainter than %g times the roof's step)", int(extra.sum()), OL.EDGE_FACTOR)
    value = np.fmax(value, went)
    # or the strip before that new edge turned darker where the raise's facade would be in the dark
    strip = np.where(tb.elevated, OL.facade_moved(tb), np.nan)
    with np.errstate(invalid="ignore"):
        extra = (strip >= 1.0) & ~(value >= 1.0)
    if extra.any():
        _LOG.info("outline: %d roofs' strip between the near-sensor outline and a new edge inside turned darker "
                  "in the target (darker or brighter where the facade is lit), as the facade a raise shows there",
                  int(extra.sum()))
    value = np.fmax(value, strip)
    tb.extra["rim_base"] = np.where(tb.elevated, b1, np.nan)
    tb.extra["rim_target"] = np.where(tb.elevated, t1, np.nan)
    value = np.where(np.isfinite(value), np.maximum(value, 0.0), 0.0)
    return value, sigma_score(value, 1.0)


# its evidence is the rim's own pairs (>= MIN_EDGE_PAIRS visible in both), not the radiometrically
# compared cells: a roof under a shadow that moved between the dates keeps its rim
outline.own_evidence = True
