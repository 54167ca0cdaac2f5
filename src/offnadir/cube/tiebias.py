"""The tie-point bias fit (issue 8): measure / fit / re-project rounds per image, the report, and
the pipeline step. The measurement and every threshold's reason: :mod:`offnadir.cube.tiepoints`."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np

from offnadir.camera.bias_robust import affine_displacement, apply_affine, clustered_displacement_sd, fit_robust
from offnadir.camera.camera import compose_affine
from offnadir.cube.tie_report import MIN_POINTS, WEAK_POINTS, WEAK_SD_PX, _image_report
from offnadir.cube.tie_report import WEAK_MEDIAN_PX, format_report, report_attrs  # noqa: F401 (re-exported)
from offnadir.cube.tie_tasks import gather, scheduler_threads
from offnadir.cube.tiepoints import (STEP_PX, BLOCK_WINDOWS, TieOptions, block_tiles, measure_windows,
                                     parallax_sensitivity, plan_suns, stages)
from offnadir.logs import say

log = logging.getLogger("offnadir.cube.tiepoints")

#: the fit has settled when the last correction moves no pixel of the image by more than this
SETTLE_PX = 0.02
#: after the first pass, shifts are searched within this many pixels of the corrected prediction
REFINE_RADIUS = 2


# ------------------------------------------------------------------------------------ fit
def fit_tie_bias(plan, opts: TieOptions | None = None, *, image_configs=None, same_date: bool = True):
    """Fit every non-base image's bias to the base from tie points. Returns ``(plan, report)``:
    the plan with corrected cameras and a list of per-image dicts (base first). With
    ``same_date``, mates of one later date are tied to each other (see :func:`_tie_same_date_mates`).

    The correction is fitted on top of each image's camera as given (with its GCP bias, if any):
    ``bias_new = correction ∘ bias_given``. A coarse first round measures a quarter of the blocks
    (:func:`~offnadir.cube.tiepoints.first_round`) with the full search radius; when it finds so
    few points that all blocks together would not reach :data:`MIN_POINTS`, the rest is never
    computed (the camera is kept, with a warning). The other blocks are measured in stages
    (:func:`~offnadir.cube.tiepoints.stages`), each only while the fit is :func:`short_of_target`."""
    from offnadir.camera.camera import IDENTITY

    opts = opts or TieOptions()
    images = list(plan.images)
    report = [{"image": images[0].name, "role": "base", "bias": list(images[0].camera.bias)}]
    if len(images) < 2 or not opts.enabled:
        return plan, report
    tiles = block_tiles(plan, opts)
    dh_step = {}
    for k in range(1, len(images)):
        s = parallax_sensitivity(plan, k)
        dh_step[k] = STEP_PX / s if s > 0 else math.inf
        log.info("tie points %s: %.3f px relative displacement per metre of height error; windows with a "
                 "neighbour height step above %.2f m are skipped", images[k].name, s, dh_step[k])
    order = stages(tiles, BLOCK_WINDOWS * (2 * opts.half + 1))
    first, later = order[0], order[1:]
    rest = [i for s in later for i in s]
    log.info("tie points: %d blocks of %d cells (first round on %d, then stages of %s while the fit is short of "
             "%d inliers or %.2f px standard deviation), windows of %d cells, first search +-%d px", len(tiles),
             (BLOCK_WINDOWS * (2 * opts.half + 1)) ** 2, len(first), "/".join(str(len(s)) for s in later) or "none",
             WEAK_POINTS, WEAK_SD_PX, (2 * opts.half + 1) ** 2, opts.search_px)
    suns = plan_suns(plan, image_configs)
    if suns[0] is None:
        log.info("tie points: the base's sun is unknown; shadowed windows are left to the robust fit")
    _import_meanwhile("scipy.special")   # the first fit's F-test needs it; imported while the workers measure
    threads = scheduler_threads()        # asked once: a round trip to a distributed scheduler
    blocks1 = gather(plan, [tiles[i] for i in first], opts, dh_step, suns, threads)
    coarse = {}
    for k in range(1, len(images)):
        data = [b[k] for b in blocks1 if k in b]
        pts, labels = _measure_labelled(data, IDENTITY, opts.search_px)
        expected = len(pts) * len(tiles) / max(len(first), 1)
        coarse[k] = (data, (pts, labels), expected)
        if expected < MIN_POINTS:
            log.info("tie points %s: the first round measured %d points on %d of %d blocks (about %.0f over all, "
                     "at least %d needed): the other blocks are not measured", images[k].name, len(pts),
                     len(first), len(tiles), expected, MIN_POINTS)
    alive = [k for k in coarse if coarse[k][2] >= MIN_POINTS]
    gathered: dict[int, list] = {}

    def stage_blocks(s):
        """Block data of later stage ``s``, computed once for every image (on first demand)."""
        if s not in gathered:
            gathered[s] = gather(plan, [tiles[i] for i in later[s]], opts, dh_step, suns, threads)
        return gathered[s]

    out_images = list(images)
    for k in range(1, len(images)):
        data, (pts, labels), expected = coarse[k]
        if k not in alive:
            where = (f" on the first {len(first)} of {len(tiles)} blocks (about {expected:.0f} expected over all; the "
                     "others were not measured)") if rest else ""
            entry, corr = _image_report(images[k], {"n_iter": 1, "settled": False, "fit": None, "where": where,
                                                    "n_measured": len(pts), "move": math.nan}), IDENTITY
        else:
            more = [(later[s], lambda s=s, k=k: [b.get(k) for b in stage_blocks(s)]) for s in range(len(later))]
            entry, corr = _fit_image(images[k], data, opts, more=more, first_pts=(pts, labels),
                                     footprint=_footprint(plan, k))
            n_stages = entry.pop("stages_measured", 1 + len(later))
            entry["blocks_measured"] = [len(first) + sum(len(s) for s in later[:n_stages - 1]), len(tiles)]
        if entry["applied"]:
            cam = images[k].camera
            out_images[k] = dataclasses.replace(images[k], camera=cam.with_bias(compose_affine(corr, cam.bias)))
        entry["bias"] = list(out_images[k].camera.bias)
        report.append(entry)
    if same_date:
        _tie_same_date_mates(plan, images, out_images, report, opts, image_configs)
    return dataclasses.replace(plan, images=tuple(out_images)), report


def _import_meanwhile(name: str):
    """Import module ``name`` in a background thread, unless imported already: the first fit's
    F-test imports ``scipy.special`` (~0.05-0.1 s with the GIL held), which in the client's thread
    after the first gather left both worker threads idle. Nothing but the time of the import moves:
    the fit imports it as before (waiting for this thread if it is still at it), and raises if it
    must. Returns the thread, or None."""
    import importlib
    import sys
    import threading

    def run():
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - the fit's own import reports it
            pass

    if name in sys.modules:
        return None
    thread = threading.Thread(target=run, name="offnadir-tie-import", daemon=True)
    thread.start()
    return thread


def _footprint(plan, k) -> np.ndarray:
    """(4, 2) pixels of image k (its camera as given) where the DSM's corner cells land at the
    reference height: where the cube uses the image, so where the correction must hold."""
    from offnadir.cube import geometry

    ny, nx = plan.dsm.shape
    ii = np.array([0.0, 0.0, ny - 1.0, ny - 1.0])
    jj = np.array([0.0, nx - 1.0, 0.0, nx - 1.0])
    lon, lat = geometry.cell_lonlat(plan.dsm, ii, jj)
    r, c = plan.images[k].camera.project(lon, lat, np.full(4, float(plan.z_ref)))
    return np.column_stack([r, c])


def _measure(data, corr, radius) -> np.ndarray:
    """Every block's windows measured (:func:`measure_windows`), in the order of ``data``. The blocks
    are independent and their search kernels release the GIL: they run on a thread per usable core
    of this (the client's) process, whose workers wait for the fit meanwhile. Same points, same order."""
    return _measure_labelled(data, corr, radius)[0]


def _measure_labelled(data, corr, radius) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_measure`, and for every point the index in ``data`` of the block it was measured in."""
    if not data:
        return np.empty((0, 9)), np.empty(0, np.int64)
    import os

    n = min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1, len(data))
    if n < 2:
        parts = [measure_windows(d, corr, radius) for d in data]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(n, thread_name_prefix="offnadir-tie-measure") as pool:
            parts = list(pool.map(lambda d: measure_windows(d, corr, radius), data))
    labels = np.concatenate([np.full(len(p), b, np.int64) for b, p in enumerate(parts)])
    return np.concatenate(parts, axis=0), labels


def _tie_same_date_mates(plan, images, out_images, report, opts, image_configs) -> None:
    """Mates of one date (a stereo pair or triplet, not the base's date) are fitted to the base
    each on its own, across dates, where matching is weakest; their relative orientation is what
    the height sweep measures heights with. Keep it: the mate with the most inliers stays tied to
    the base, every other mate is tied to it with same-date tie points (in place)."""
    from offnadir.cube.dataset import date_groups

    groups = date_groups(images, say=False)
    for g in np.unique(groups[1:]):
        members = [k for k in range(1, len(images)) if groups[k] == g]
        if g == groups[0] or len(members) < 2:
            continue  # the base's own mates are tied to it directly, same date
        fitted = [k for k in members if report[k].get("applied")]
        if not fitted:
            continue
        lead = max(fitted, key=lambda k: report[k]["n_points"])
        for k in members:
            if k == lead:
                continue
            sub = dataclasses.replace(plan, images=(out_images[lead], images[k]))
            confs = None if image_configs is None else [image_configs[lead], image_configs[k]]
            sub_plan, sub_report = fit_tie_bias(sub, opts, image_configs=confs, same_date=False)
            entry = dict(sub_report[1], role=f"tied to {images[lead].name} (same date)")
            if entry.get("applied"):
                out_images[k] = sub_plan.images[1]
            elif report[k].get("applied"):
                continue  # keep its own fit to the base when the mates could not be matched
            entry["bias"] = list(out_images[k].camera.bias)
            entry["cross_date_fit"] = {key: report[k].get(key) for key in
                                       ("n_points", "residual_after_median_px", "correction")}
            log.info("tie points %s: tied to its same-date mate %s (%s points, residual median %.3f px)",
                     images[k].name, images[lead].name, entry.get("n_points"),
                     entry.get("residual_after_median_px", float("nan")))
            report[k] = entry


def short_of_target(fit, footprint, points=None) -> bool:
    """Whether more tie points are needed: fewer than :data:`WEAK_POINTS` inliers, or a correction
    standard deviation over the DSM footprint above :data:`WEAK_SD_PX` (the report's own "weak"
    bounds). The deviation is the larger of the fit's own (independent points) and, given
    ``points = (pred, meas, sigma, block labels)``, the cluster-robust one by block
    (:func:`offnadir.camera.bias_robust.clustered_displacement_sd`): the windows of one block share
    its errors, and the independent-point figure was 1.2-2.3x too small on the simulator, Marseille
    and Kahramanmaras. No footprint: the deviation cannot be judged, so more points are always
    wanted. The median residual is not asked: more points do not lower it."""
    if int(fit.inliers.sum()) < WEAK_POINTS or footprint is None:
        return True
    sd = float(fit.displacement_sd(*footprint.T).max())
    if points is not None:
        pred, meas, sigma, groups = points
        sd = max(sd, float(clustered_displacement_sd(fit, pred, meas, groups, *footprint.T, sigma_pts=sigma).max()))
    return not sd <= WEAK_SD_PX


def _fit_image(im, data, opts, *, rest=(), more=(), first_pts=None, footprint=None):
    """Measure / fit / re-project rounds for one image; returns (report entry, correction affine).

    ``data``: the first round's blocks (searched over the full radius; ``first_pts`` their
    measurements when already made, alone or with their block labels as :func:`_measure_labelled`);
    ``rest``: other blocks, measured from the second round on, within a radius the first fit's own
    uncertainty and residuals set (:func:`_next_radius`);
    ``more``: later stages of blocks, ``(tile indices, callable giving their block data)``, taken
    one by one while the fit is :func:`short_of_target`: after the first round a short fit has the
    next stage measured in the second round; in a later round it has the round measured again with
    the next stage, with the same correction and radius. Blocks after the first round's are
    always measured in tile order, so that a run that takes every stage measures the same points
    in the same order as one given them all as ``rest``. ``footprint``: pixels where the
    correction's standard deviation is reported."""
    from offnadir.camera.camera import IDENTITY

    corr = IDENTITY
    pending = [(list(idx), get) for idx, get in more]
    added = sorted(enumerate(rest), key=lambda p: p[0])   # (tile order key, block data)

    taken = [0]

    def take(n_stages=1):
        for _ in range(n_stages):
            if not pending:
                return
            idx, get = pending.pop(0)
            taken[0] += 1
            added.extend((i, d) for i, d in zip(idx, get()) if d is not None)
        added.sort(key=lambda p: p[0])

    def later():
        return [d for _, d in added]

    st = {"n_iter": 0, "settled": False, "fit": None, "n_measured": 0, "move": math.nan}
    radius = opts.search_px
    it = 0
    while it < opts.max_iter:
        partial = it == 0 and bool(added or pending)
        if it == 0:
            if first_pts is None:
                pts, labels = _measure_labelled(data, corr, radius)
            else:
                pts, labels = first_pts if isinstance(first_pts, tuple) else (first_pts, None)
            if len(pts) < MIN_POINTS and (added or pending):   # the first round's blocks alone are too few: all
                take(len(pending))
                more_pts, more_labels = _measure_labelled(later(), corr, radius)
                pts, partial = np.concatenate([pts, more_pts]), False
                labels = None if labels is None else np.concatenate([labels, more_labels + len(data)])
        else:
            pts, labels = _measure_labelled(list(data) + later(), corr, radius)
        if len(pts) < MIN_POINTS:
            if it > 0 and pending:
                take()
                continue
            st["n_iter"], st["n_measured"] = it + 1, int(len(pts))
            st["fit"] = None
            break
        # pseudo-GCPs: prediction by the camera as given, and where the window was found
        r, c = im.camera.project(pts[:, 0], pts[:, 1], pts[:, 2])
        pred = np.column_stack([r, c])
        meas = pts[:, 3:5] + pts[:, 5:7]
        # each point weighs by its own correlation's standard error (peak curvature, from the refinement)
        sigma_pts = np.maximum(pts[:, 8], 1e-6)
        fit = fit_robust(pred, meas, opts.model, sigma_pts=sigma_pts)
        blocks = None if labels is None else (pred, meas, sigma_pts, labels)
        if it > 0 and pending and short_of_target(fit, footprint, blocks):
            log.info("tie points %s, round %d: %d inliers of %d measured fall short of the target (%d inliers, "
                     "correction sd <= %.2f px): measured again with %d more blocks", im.name, it + 1,
                     int(fit.inliers.sum()), len(pts), WEAK_POINTS, WEAK_SD_PX, len(pending[0][0]))
            take()
            continue
        st["n_iter"], st["n_measured"] = it + 1, int(len(pts))
        new, used, inl, sigma = fit.bias, fit.model, fit.inliers, fit.sigma_rc
        move = affine_displacement(compose_affine(new, _inv(corr)), im.shape)
        st.update(fit=(new, used, inl, sigma, pred, meas), move=move, robust=fit, footprint=footprint, blocks=blocks)
        log.info("tie points %s, round %d%s: %d measured (search +-%d px), %d inliers, model %s, correction moved "
                 "the image by up to %.3f px", im.name, it + 1, " (first blocks)" if partial else "", len(pts),
                 radius, int(inl.sum()), used, move)
        corr = new
        radius = _next_radius(fit, pred, meas, footprint, opts) if partial else REFINE_RADIUS
        if partial and pending and short_of_target(fit, footprint, blocks):
            take()   # the second round measures the next stage too
        elif partial and pending:
            log.info("tie points %s: the first round's %d inliers reach the target (correction sd <= %.2f px): the "
                     "other blocks are measured only if a later round falls short of it", im.name, int(inl.sum()),
                     WEAK_SD_PX)
        it += 1
        if move <= SETTLE_PX and not partial:
            st["settled"] = True
            break
    entry = _image_report(im, st)
    if more:
        entry["stages_measured"] = 1 + taken[0]
    return entry, corr


def _next_radius(fit, pred, meas, footprint, opts) -> int:
    """Search radius for every block after a first fit on some: the fit predicts any window's
    shift within ``ROBUST_K`` of its own standard deviation (at the footprint's corners, where it
    is largest) plus the spread of the points about it (p90 of the inliers' residuals, which also
    holds what a shift-only model leaves of a linear part); one more pixel so the peak is inside."""
    from offnadir.camera.bias_robust import ROBUST_K

    res = meas[fit.inliers] - np.column_stack(apply_affine(fit.bias, *pred[fit.inliers].T))
    p90 = float(np.percentile(np.hypot(*res.T), 90)) if len(res) else math.inf
    sd = float(fit.displacement_sd(*footprint.T).max()) if footprint is not None else 0.0
    need = p90 + ROBUST_K * sd
    return int(min(opts.search_px, max(REFINE_RADIUS, math.ceil(need) + 1))) if math.isfinite(need) \
        else int(opts.search_px)


def _inv(aff):
    from offnadir.camera.camera import invert_affine

    return invert_affine(aff)


def run_for_config(plan, cfg: dict, *, quiet: bool = False):
    """The pipeline's tie-bias step: options from the config's ``tie_bias`` section (on by default),
    fit, print the summary (unless ``quiet``). Returns ``(plan, report)``."""
    import sys

    opts = TieOptions.from_config(cfg.get("tie_bias"))
    if not opts.enabled or len(plan.images) < 2:
        if len(plan.images) >= 2:
            log.info("tie-point bias fit switched off (tie_bias.enabled false / --no-tie-bias)")
        return plan, [{"image": im.name, "role": "base" if k == 0 else "not fitted (switched off)",
                       "bias": list(im.camera.bias)} for k, im in enumerate(plan.images)]
    import time

    t = time.perf_counter()
    plan, report = fit_tie_bias(plan, opts, image_configs=cfg.get("images"))
    took = time.perf_counter() - t
    if not quiet:
        print(format_report(report), file=sys.stderr)
    say(log, f"tie-point pass took {took:.2f} s", quiet)
    return plan, report
