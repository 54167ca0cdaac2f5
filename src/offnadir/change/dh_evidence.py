"""The same-date height change ``dh`` as change evidence: the probability that the height moved
by more than a bound given the sweep's measurement and its sigma, and its combination with the
structural probability (log-odds add); and which measurements count as evidence at all
(:func:`coherent_dh`: a height change is a patch of one height change, a false peak is not).

**Coherence** (issue 7, H3). A cell's ``dh`` counts as evidence only where at least
:func:`coherent_min_share` of the sweep window around it (``(2r+1)²`` cells, ``r`` =
:data:`offnadir.cube.sweep.WINDOW_RADIUS`: ``dh`` is a measurement over that window) gives the
same answer to the dh test as the cell: lower than the bound, within it, or higher than it (the
bound ``B`` = ``elevated_height``, the one of :func:`dh_probability`). Elsewhere the cell is
treated as not measured (the structural probability alone). Why: a real height change of
interest is an object at least as large as that window (100 m², the sweep's own reason for the
window), so a cell inside it or on its edge has at least the quadrant of its window, ``(r+1)²``
cells, on the same changed surface: a geometric bound, not a fitted one. A false peak from a
pattern repeating along the baseline (a road edge, a shadow edge) is a streak, and most of its
window answers otherwise. The answer, not the value, is compared: a demolished building's rubble
or a tree's crown has no single height change, but all of it is lower (or higher) by more than
the bound. Holes in the measurement count against the share (a cell at the corner of a change
with unmeasured neighbours may lose its ``dh``). Measured (docs/change_detection.md, "dh
coherence"): hard simulated stereo elevated F1 mean 0.787 -> 0.824 (offline on the stores),
Kahramanmaraş F1 0.722/0.726 -> 0.741/0.746 but changed objects 84/85 -> 80/84. Tried: the share
of cells whose ``dh`` is within a storey (3 m) of the cell's: hard stereo 0.807, Kahramanmaraş
74/77 objects (rubble and crowns are not level).

**Small objects** (issue 7, H6, sixth round; :func:`small_object_removal`). The window rule's
premise fails for an object smaller than the window: a cut crown (or a small shed) cannot hold a
window quadrant however consistent its answer, so ~half the cut-tree cells with a right ``dh`` were
dropped. Where the cell lies in a DSM-elevated component whose bounding box fits in the window and
answers "lower", the object itself is the coherent region: its ``dh`` counts where at least half the
object's cells (holes count against) answer "lower" too, i.e. the object went down as a whole. A
false peak is a streak along the baseline that does not stop at an object's outline. Only "lower":
in the sweep's fronto-parallel window a small object is a minority of the window, so its own *rise*
cannot win the window's agreement (the surrounding ground, the majority, disagrees at the raised
height), while its *removal* turns the whole window into one plane at the ground's height, which
agrees everywhere; a "higher" answer on a small object is the ground's false peak (measured: of
the "higher" cells the object test would keep, 26 of 278 were right within 1 m on the 256² hard
stereo scenes, 18 of 627 at 1024²; of the "lower" ones 393 of 737 and 3226 of 4644). Measured
(docs/change_detection.md, "Small objects"): hard stereo 256² mean 0.869 -> 0.877 (cut-tree misses
928 -> 514), 1024² seeds 0-2 0.842 -> 0.845, Kahramanmaraş F1, AUC and objects unchanged
(0.737/0.743, 79/83).
"""
from __future__ import annotations

import numpy as np

#: floor of the height-change sigma (m): a sweep never measures heights better than this
DH_SIGMA_FLOOR = 0.1
#: also keep a "lower" dh shared by its small DSM-elevated object (:func:`small_object_removal`; H6)
OBJECT_RULE = True
#: the share of a small object that must answer as the cell: a majority (the object's answer)
OBJECT_MIN_SHARE = 0.5
#: a tie of :func:`combine` (each evidence at its clip) goes to the dh where it is a removal down to
#: the local ground (:func:`removal_to_ground`; q4, tenth round)
REMOVAL_TIE = True
#: the clip of both evidences in :func:`combine`
CLIP = 1e-6


def coherent_min_share(radius: int) -> float:
    """The share of a ``(2r+1)²`` window a convex object at least as large as the window holds
    around any of its cells, corners included: ``(r+1)² / (2r+1)²`` (0.29 for r = 6)."""
    return (radius + 1) ** 2 / (2 * radius + 1) ** 2


def coherence_rule(bound: float) -> dict:
    """The coherence rule's parameters, for the store attributes and the log."""
    from offnadir.cube.sweep import WINDOW_RADIUS

    rule = {"radius_cells": WINDOW_RADIUS, "bound_m": float(bound),
            "min_share": round(coherent_min_share(WINDOW_RADIUS), 4),
            "rule": "dh is evidence where >= min_share of the (2r+1)^2 window answers the dh test (lower than "
                    "-bound, within, higher than +bound) as the cell does; elsewhere not measured"}
    if OBJECT_RULE:
        rule["small_objects"] = {"objects": "4-connected DSM-elevated components whose bounding box fits in the "
                                            "window", "min_share": OBJECT_MIN_SHARE,
                                 "rule": "a 'lower' answer is also evidence where >= min_share of the cell's small "
                                         "object answers 'lower' (the object's removal)"}
    if REMOVAL_TIE:
        rule["removal_ties"] = {
            "clip": CLIP,
            "rule": "a cell whose structural probability is at its lower clip and whose p_dh is at its upper clip "
                    "(the log-odds cancel) is decided 'change' where its dh, kept by the window rule, is a removal "
                    "down to the local ground: DSM-elevated, dh < -bound, |dsm + dh - ground| <= bound (ground: "
                    "the DSM's opening of the elevated stratum)"}
    return rule


def dh_answer(dh, bound: float):
    """The dh test's answer per cell: -1 lower than ``-bound``, 0 within, +1 higher than
    ``bound``; NaN where not measured."""
    dh = np.asarray(dh, np.float64)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(dh), np.sign(dh) * (np.abs(dh) > bound), np.nan)


def coherent_mask(dh_block, radius: int | None = None, tol: float | None = None):
    """bool (..., ny, nx): cells whose value is shared, within ``tol`` (default a storey), by
    at least :func:`coherent_min_share` of the window of ``radius`` (default the sweep's); False
    where the value is NaN. :func:`coherent_dh` passes the dh test's answers with ``tol`` 0.5. ``dh_block``: one or more (ny, nx) planes; the share near the
    block's edges is of the cells inside it, so pass the block with a halo of ``radius``."""
    from offnadir.cube.sweep import STOREY_M, WINDOW_RADIUS
    from offnadir.cube.sweep_kernels import coherent_share

    r = WINDOW_RADIUS if radius is None else int(radius)
    tol = STOREY_M if tol is None else float(tol)
    a = np.asarray(dh_block, np.float64)
    planes = a.reshape((-1,) + a.shape[-2:])
    share = np.empty(planes.shape)
    for k in range(planes.shape[0]):
        coherent_share(np.ascontiguousarray(planes[k]), r, tol, share[k])
    with np.errstate(invalid="ignore"):
        return (share >= coherent_min_share(r) - 1e-12).reshape(a.shape)


def object_coherent(answer, objects, radius: int | None = None, min_share: float = OBJECT_MIN_SHARE):
    """bool (ny, nx): cells of a *small object* whose dh answer (:func:`dh_answer`) is shared by
    at least ``min_share`` of the object's cells (holes count against).

    ``objects``: bool (ny, nx), the cells that may form objects (the DSM's elevated cells: a
    crown, a small building), or int labels (0: none); an object is a 4-connected component of
    the bool cells (or one label) whose bounding box
    fits in the sweep window (``2r+1`` cells a side). The window rule (:func:`coherent_mask`)
    assumes an object at least as large as the window; a smaller one cannot hold the window's
    quadrant, however consistent its answer, and is judged on its own cells instead: a false peak
    is a streak along the baseline that does not stop at an object's outline, a changed crown
    changes as a whole. ``answer``: -1/0/1 or NaN. Components are complete for every cell within
    ``2r`` of the array's inner part, so pass a block with a halo of ``2r``."""
    from scipy import ndimage

    from offnadir.cube.sweep import WINDOW_RADIUS

    r = WINDOW_RADIUS if radius is None else int(radius)
    ans = np.asarray(answer, np.float64)
    obj = np.asarray(objects)
    if obj.dtype == bool:
        lab, n = ndimage.label(obj)
    else:  # already labelled (0: none), e.g. the base image's patches
        lab = obj.astype(np.int64)
        n = int(lab.max()) if lab.size else 0
    keep = np.zeros(ans.shape, bool)
    if n == 0:
        return keep
    side = 2 * r + 1
    small = np.zeros(n + 1, bool)
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        small[k] = sl is not None and sl[0].stop - sl[0].start <= side and sl[1].stop - sl[1].start <= side
    size = np.bincount(lab.ravel(), minlength=n + 1).astype(np.float64)
    cand = small[lab] & np.isfinite(ans)
    for a in (-1.0, 0.0, 1.0):
        m = cand & (ans == a)
        agree = np.bincount(lab[m], minlength=n + 1)
        share = agree / np.maximum(size, 1)
        keep[m] = share[lab[m]] >= min_share
    return keep


def small_object_removal(answer, elevated, radius: int | None = None):
    """bool (ny, nx): cells whose "lower" answer is shared by at least :data:`OBJECT_MIN_SHARE` of
    their small DSM-elevated object (:func:`object_coherent` restricted to the removal: why in the
    module docstring)."""
    ans = np.asarray(answer, np.float64)
    return object_coherent(ans, elevated, radius, OBJECT_MIN_SHARE) & (ans == -1)


def coherent_dh(io, tile, shape, bound: float, radius: int | None = None, objects: bool | None = None,
                window_kept: bool = False):
    """The tile's ``dh`` (all images) with the cells whose dh test's answer (:func:`dh_answer`)
    is shared neither by the window quadrant (:func:`coherent_mask`) nor, with ``objects`` and an
    ``elevated`` layer, by its small DSM-elevated object (:func:`small_object_removal`) set to NaN (not
    measured). Read with a halo of ``2r + 1`` (``r`` without objects): the result does not depend
    on the tiling (a component that reaches the halo's edge from the core spans more than the
    window, so it is not small whatever lies beyond). With ``window_kept``: (that ``dh``, bool map
    of the cells the window rule alone keeps)."""
    from offnadir.cube.sweep import WINDOW_RADIUS

    r = WINDOW_RADIUS if radius is None else int(radius)
    use_obj = (OBJECT_RULE if objects is None else objects) and io.has("elevated")
    h = 2 * r + 1 if use_obj else r
    ny, nx = shape
    i0, i1 = max(tile.i0 - h, 0), min(tile.i1 + h, ny)
    j0, j1 = max(tile.j0 - h, 0), min(tile.j1 + h, nx)
    block = io.read("dh", (slice(None), slice(i0, i1), slice(j0, j1))).astype(np.float64)
    ans = dh_answer(block, bound)
    # the window rule needs a halo of r only: computed there (answers are -1, 0, 1: equal within 0.5)
    wy = slice(max(tile.i0 - r, 0) - i0, min(tile.i1 + r, ny) - i0)
    wx = slice(max(tile.j0 - r, 0) - j0, min(tile.j1 + r, nx) - j0)
    keep = np.zeros(ans.shape, bool)
    keep[:, wy, wx] = coherent_mask(ans[:, wy, wx], r, 0.5)
    core = (slice(None), slice(tile.i0 - i0, tile.i1 - i0), slice(tile.j0 - j0, tile.j1 - j0))
    window = keep[core].copy() if window_kept else None
    if use_obj:
        elev = io.read("elevated", (slice(i0, i1), slice(j0, j1))) == 1
        for k in range(block.shape[0]):
            keep[k] |= small_object_removal(ans[k], elev, r)
    out = np.where(keep, block, np.nan)[core]
    return (out, window) if window_kept else out


def dh_probability(dh, dh_sigma, bound: float):
    """Probability that the height changed by more than ``bound`` metres given a measurement
    ``dh`` with Gaussian sigma ``dh_sigma``: ``Phi((|dh| - bound) / sigma)`` (NaN where not
    measured)."""
    from scipy.special import ndtr

    s = np.where(np.isfinite(dh_sigma) & (dh_sigma > DH_SIGMA_FLOOR), dh_sigma, DH_SIGMA_FLOOR)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(dh), ndtr((np.abs(dh) - bound) / s), np.nan)


def removal_to_ground(io, tile, shape, dhc, elevated, bound: float, ground_radius: int):
    """bool (n_images, ny, nx) of the tile, or None where nothing can be a removal: DSM-elevated
    cells (``elevated``, the tile's) whose ``dhc`` (the ``dh`` the window rule keeps, NaN elsewhere:
    :func:`coherent_dh` with ``window_kept``; why not the small objects' in :func:`combine`) is lower than
    ``-bound`` and puts the surface within ``bound`` of the local ground, ``|h + dh - g| <= bound``
    with ``g`` the DSM's grey opening of radius ``ground_radius`` (the ground estimate that defines
    the elevated stratum, :func:`offnadir.change.segment.elevated_mask`): the object went and left
    the ground. The DSM is read with a halo of ``2 ground_radius`` (the opening depends on heights
    that far): the result does not depend on the tiling. Why it decides :func:`combine`'s ties:
    there."""
    dhc = np.asarray(dhc, np.float64)
    with np.errstate(invalid="ignore"):
        cand = np.asarray(elevated, bool)[None] & (dhc < -bound)
    if not cand.any():
        return None
    h, g = _dsm_and_ground(io, tile, shape, ground_radius)
    with np.errstate(invalid="ignore"):
        return cand & (np.abs(h[None] + dhc - g[None]) <= bound)


def _dsm_and_ground(io, tile, shape, ground_radius: int):
    """The tile's DSM heights and their ground estimate (the grey opening of radius
    ``ground_radius``), read with a halo of ``2 ground_radius`` so that they do not depend on the tiling."""
    from offnadir.change.segment_kernels import ground_estimate

    ny, nx = shape
    r2 = 2 * int(ground_radius)
    i0, i1 = max(tile.i0 - r2, 0), min(tile.i1 + r2, ny)
    j0, j1 = max(tile.j0 - r2, 0), min(tile.j1 + r2, nx)
    h = io.read("dsm", (slice(i0, i1), slice(j0, j1))).astype(np.float64)
    g = ground_estimate(h, int(ground_radius))
    core = (slice(tile.i0 - i0, tile.i1 - i0), slice(tile.j0 - j0, tile.j1 - j0))
    return h[core], g[core]


def tie_removals(io, tile, shape, p_struct, p_dh, dh_window, elevated, bound: float, ground_radius: int,
                 memo: dict | None = None):
    """:func:`removal_to_ground` of one image's tile where :func:`combine` would tie (``p_struct``
    at its lower clip, ``p_dh`` at its upper one), None where no such tie is a candidate (then the
    DSM is not read: the ground estimate costs ~0.1 CPU-s per Mpx). ``memo``: a dict kept across
    the images of one tile (the ground estimate is made once)."""
    eps = CLIP
    dw = np.asarray(dh_window, np.float64)
    with np.errstate(invalid="ignore"):
        cand = np.asarray(elevated, bool) & (dw < -bound) & (np.asarray(p_struct) <= eps) & \
            (np.asarray(p_dh) >= 1 - eps)
    if not cand.any():
        return None
    memo = {} if memo is None else memo
    if "hg" not in memo:
        memo["hg"] = _dsm_and_ground(io, tile, shape, ground_radius)
    h, g = memo["hg"]
    with np.errstate(invalid="ignore"):
        return cand & (np.abs(h + dw - g) <= bound)


def combine(p_struct, p_dh, removal=None):
    """Independent evidences: log-odds add (naive Bayes with the even prior of the dh test);
    where ``p_dh`` is NaN, ``p_struct`` alone.

    Both are clipped to the same ``[1e-6, 1 - 1e-6]``, so a structural probability of ~0 and a
    ``p_dh`` of ~1 cancel to one half (in float64 to 0.5 - 7e-12: such a tie is decided "no
    change", while the stored float32 probability reads 0.5; thousands of elevated cells per
    target on the 1024² hard stereo scenes, docs/change_detection.md "Unresolved zeros": no tie
    rule holds on both the simulator and Kahramanmaraş). Tried and not adopted (issue 7, H7): (a) the structural
    probability held within the calibration's resolution (``1 / (n pi_k + 2)`` from the cells of
    each mixture component, Laplace's rule; dh kept at 1e-6) lets a large ``|dh|`` win there:
    hard stereo sim elevated F1 mean 0.787 -> 0.796 but 6 of 12 targets lower (by 0.001-0.010)
    and ground false alarms up; Kahramanmaraş stereo F1 0.722/0.726 -> 0.716/0.722 (objects
    84/85 -> 86/88; every flip 0 -> 1, median |dh| 11 m; precision 0.684/0.675 -> 0.660/0.657);
    same-date pairs unchanged. (b) ``p_dh`` also held within a false-peak rate of 10 %
    (the sweep's documented rate on unchanged hard-sim cells): hard stereo mean 0.705. A bound
    for ``p_dh`` measured on the run's own unchanged cells needs a run-wide reduction of ``dh``
    against the calibrated structural probability before the maps pass (not built). What the
    change stage does instead (H3, third round): a ``dh`` not shared by its window quadrant is no
    measurement (:func:`coherent_dh`), which removes most of the false peaks this clip let win.

    **Ties and removals** (``removal``: bool, :func:`removal_to_ground`; q4, tenth round). Where the
    structural probability is at its lower clip and ``p_dh`` at its upper one, the two log-odds
    cancel: the model says one half, and the decision was left to float rounding (below one half:
    "no change"). Such a tie is decided by a third, independent reading: whether the measured ``dh``
    is a *removal down to the local ground* (a DSM-elevated cell lowered by more than the bound onto
    the ground estimate that defines the elevated stratum, within the bound). A felled crown or a
    demolished block leaves the ground; a false peak of the sweep has no reason to land there. Such
    a tie gets the decision probability itself (change). Elsewhere nothing moves (the magnitudes
    decide). Measured (docs/change_detection.md, q4 tenth round): the hard stereo scenes at 1024²
    hold thousands of such ties per target (cut crowns and demolished roofs whose structural
    probability is at its clip), Kahramanmaraş none."""
    eps = CLIP
    a = np.clip(p_struct, eps, 1 - eps)
    b = np.clip(p_dh, eps, 1 - eps)
    with np.errstate(invalid="ignore"):
        lo = np.log(a / (1 - a)) + np.log(b / (1 - b))
        both = 1.0 / (1.0 + np.exp(-lo))
        if removal is not None and REMOVAL_TIE:
            both = np.where(np.asarray(removal, bool) & (a <= eps) & (b >= 1 - eps), 0.5, both)
    return np.where(np.isfinite(p_dh) & np.isfinite(p_struct), both, p_struct)
