"""Where the sun was on the DSM grid: the grid azimuth of true north at the scene centre, to turn
the sun azimuth of :func:`offnadir.sun.sun_position` into grid directions. Used to find cells whose direct sun differs between the dates
(:func:`offnadir.change.kernels.illumination`), which are illumination change, not change.

Sun position: the Astronomical Almanac's low-precision formulae (mean anomaly and longitude of
the sun, ecliptic longitude with the two-term equation of centre, obliquity, right ascension and
declination, Greenwich mean sidereal time, local hour angle); about 0.01 degree between 1950 and
2050, no refraction. Acquisition times without a time zone are taken as UTC (satellite metadata
are UTC).
"""

from __future__ import annotations

from offnadir.io.dsm import grid_centre_lonlat_and_north  # noqa: F401  (the grid, not change)


def resolve_suns(cube, *, tol: float = 0.3, log=None, max_side: int = 512) -> list[dict]:
    """The sun of every image of a cube, true azimuth and elevation in degrees, with its source:
    the cube's ``sun_azimuth``/``sun_elevation``/``sun_source`` coordinates where known (config,
    metadata or almanac at the acquisition time), else the acquisition ``time`` (almanac), else
    estimated from the image and the DSM (:func:`offnadir.change.sun_estimate.estimate_sun`, on
    the band mean of ``value`` where ``visible``). Each entry: ``{"azimuth", "elevation", "source",
    "detail"}`` (azimuth/elevation None when even the estimate failed). Every choice is logged."""
    import logging

    import numpy as np

    from offnadir.change.sun_estimate import estimate_sun
    from offnadir.change.sun_window import pick_window_lazy
    from offnadir.io.acquisition import sun_from_time

    log = log or logging.getLogger("offnadir.change.illumination")
    cube = small_coords_loaded(cube)
    n = cube.sizes["image"]
    names = [str(v) for v in cube["image"].values]
    # the grid from one variable: the Dataset's ``rio`` accessor scans every variable of the store
    grid = cube["dsm"] if "dsm" in cube else cube
    crs = grid.rio.crs
    lon = lat = None
    north = 0.0
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    transform = grid.rio.transform()
    if crs is not None:
        lon, lat, north = grid_centre_lonlat_and_north(crs.to_wkt(), tuple(transform), (ny, nx))
    cell = abs(float(transform.a))
    out = []
    known = [_known_sun(cube, t, lon, lat, sun_from_time) for t in range(n)]
    groups = cube["date_group"].values if "date_group" in cube.coords else np.arange(n)
    for t in range(n):
        rec = known[t]
        peer = next((k for k in range(n) if k != t and groups[k] == groups[t] and known[k] is not None), None)
        if rec is None and peer is not None:
            # a same-date image (a stereo/tri-stereo mate, seconds apart on one pass): the sun moves
            # by about 0.004 deg per second, far below what shadow prediction can resolve
            rec = dict(known[peer], source="same-date image",
                       detail=f"{known[peer]['source']} of {names[peer]} ({known[peer]['detail']})")
        if rec is None:
            # the window with the most visible walls, from per-chunk counts (bounded memory at any
            # grid size); then the heights, visibility and samples of that window only
            i0, i1, j0, j1 = pick_window_lazy(cube["dsm"], cube["visible"].isel(image=t), max_side)
            win = dict(y=slice(i0, i1), x=slice(j0, j1))
            h = np.asarray(cube["dsm"].isel(**win).values, np.float64)
            vis = np.asarray(cube["visible"].isel(image=t, **win).values) == 1
            val = np.asarray(cube["value"].isel(image=t, **win).mean("band").values, np.float64)
            fit = estimate_sun(h, val, vis & np.isfinite(val), cell, north, tol=tol, max_side=max_side)
            if fit is None:
                rec = dict(azimuth=None, elevation=None, source="none",
                           detail="no metadata, no acquisition time, and the image's shadows did not fit any sun")
            else:
                rec = dict(azimuth=fit.azimuth, elevation=fit.elevation, source="estimated", detail=fit.describe(),
                           sigma_azimuth=fit.sigma_azimuth, sigma_elevation=fit.sigma_elevation, score=fit.score,
                           z=fit.z)
        if rec["azimuth"] is None:
            log.warning("%s: sun unknown (%s): cast shadows cannot be predicted for this image", names[t],
                        rec["detail"])
        else:
            log.info("%s: sun azimuth %.2f deg, elevation %.2f deg (%s: %s)", names[t], rec["azimuth"],
                     rec["elevation"], rec["source"], rec["detail"])
        rec["image"] = names[t]
        rec["grid_north_deg"] = north
        out.append(rec)
    if all(r["azimuth"] is not None for r in out):
        shadow_classifiers(cube, out, cell, tol=tol, log=log)
    return out


#: side (cells) of the central window on which each image's shadow/lit classifier is calibrated:
#: a quarter million cells hold thousands of sure shadow cells on any scene with relief (the
#: hard simulator's 256² scenes: 1 700-18 000), far more than the 64 bins need, and the client's
#: read and illumination kernel stay at ~0.1 s per image (the sun estimate's window is as large)
CLASSIFIER_WINDOW = 512


def shadow_classifiers(cube, suns, cell: float, *, tol: float = 0.3, log=None, max_side: int = CLASSIFIER_WINDOW):
    """Each image's shadow/lit classifier (:func:`offnadir.change.shadow_observed.calibrate`),
    calibrated on the central ``max_side``² window of the grid: the image's band mean where it is
    visible, the classes from the cast shadows the DSM and its sun predict there (the illumination
    kernel with the change stage's tolerance). Stored in each entry of ``suns`` as
    ``shadow_classifier`` (its :meth:`~offnadir.change.shadow_observed.ShadowClassifier.report`, or
    None when a class has too few cells), and logged."""
    import logging
    import math

    import numpy as np

    from offnadir.change import kernels as K
    from offnadir.change import shadow_observed as SO

    log = log or logging.getLogger("offnadir.change.illumination")
    ny, nx = cube.sizes["y"], cube.sizes["x"]
    i0, j0 = max(0, (ny - max_side) // 2), max(0, (nx - max_side) // 2)
    win = dict(y=slice(i0, min(ny, i0 + max_side)), x=slice(j0, min(nx, j0 + max_side)))
    h = np.ascontiguousarray(cube["dsm"].isel(**win).values, np.float64)
    fin = np.isfinite(h)
    relief = float(np.nanmax(h) - np.nanmin(h)) if fin.any() else 0.0
    base = None
    for t, rec in enumerate(suns):
        az, el = math.radians(rec["azimuth"] + rec["grid_north_deg"]), math.radians(rec["elevation"])
        max_dist = min(relief / (math.tan(max(el, 1e-3)) * cell) + 2.0, float(max(h.shape)))
        codes = np.empty(h.shape, np.uint8)
        K.illumination(h, cell, az, el, float(tol), 1.0, max_dist, codes)
        vis = np.asarray(cube["visible"].isel(image=t, **win).values) == 1
        x = np.asarray(cube["value"].isel(image=t, **win).mean("band").values, np.float64)
        clf = SO.calibrate(x, codes, vis & np.isfinite(x))
        rec["shadow_classifier"] = None if clf is None else clf.report()
        if t == 0:
            base = (x, codes, vis)
        else:
            ratio_classifier(rec, base, (x, codes, vis), log)
        if clf is None:
            # a warning, like an unknown sun: the roof-wide shadow rules are off for this image (a high sun
            # seen from its own side: both20 seed 5's target sees 46 sure shadow cells)
            log.warning("%s: no shadow/lit classifier (fewer than %d sure shadow or lit cells in the %d x %d "
                        "window): its shadows are only predicted, and the missing-, longer- and crown-shadow rules "
                        "do not test its roofs", rec.get("image", t), SO.MIN_CELLS, *h.shape)
        else:
            log.info("%s: shadow/lit classifier calibrated on its predicted shadows (%d sure shadow, %d sure lit "
                     "cells): intensity below %.4g looks shadowed; %.1f %% of the shadow and %.1f %% of the lit "
                     "cells classified as predicted; lit median %.4g (the missing-shadow rule reads a shadow on a "
                     "roof at this level relative to that roof's own lit cells)", rec.get("image", t), clf.n_shadow,
                     clf.n_lit, clf.threshold, 100 * clf.accuracy_shadow, 100 * clf.accuracy_lit, clf.lit_median)


def ratio_classifier(rec, base, target, log):
    """The cross-date shadow ratio classifier of a target (:func:`offnadir.change.shadow_ratio.calibrate`)
    on the window's ``(x, codes, visible)`` of the base and the target: stored in ``rec`` as
    ``shadow_ratio_classifier`` (its report, None without enough cells the sun's move lit) and logged."""
    from offnadir.change import missing_shadow as MS
    from offnadir.change import shadow_ratio as SR

    r = SR.log_ratio(base[0], target[0])
    A, B = SR.classes(r, base[1], target[1], base[2], target[2])
    clf = SR.calibrate(r, A, B)
    rec["shadow_ratio_classifier"] = None if clf is None else clf.report()
    name = rec.get("image", "?")
    if clf is None:
        log.info("%s: no cross-date shadow ratio classifier (%d cells shadowed at both dates, %d shadowed at the "
                 "base and lit here: the sun barely moved): the missing-shadow rule reads this image's intensities "
                 "only", name, int(A.sum()), int(B.sum()))
    else:
        log.info("%s: cross-date shadow ratio classifier (log target / base) on %d cells shadowed at both dates and "
                 "%d shadowed at the base and lit here (the sun's move): midpoint %.3f; a roof decided gone by its "
                 "missing shadow is kept where its own shadow cells read below it", name, clf.n_shadow, clf.n_lit,
                 MS.midpoint(clf))


def small_coords_loaded(cube):
    """The cube with its lazy per-image coordinates (sun, time, date group, ...) read at once in
    this process: each ``.values`` of a lazy coordinate is otherwise a round trip to the scheduler."""
    import dask

    lazy = [k for k in cube.coords if cube[k].dims == ("image",) and cube[k].chunks is not None]
    if not lazy:
        return cube
    # read here (a few bytes each): a first compute on a cluster costs its workers opening the store
    loaded = dask.compute(*[cube[k].data for k in lazy], scheduler="sync")
    # same variables (attributes, encoding) holding numpy data
    return cube.assign_coords({k: cube[k].variable.copy(deep=False, data=v) for k, v in zip(lazy, loaded)})


def _known_sun(cube, t, lon, lat, sun_from_time) -> dict | None:
    """The sun of image ``t`` from the cube's sun coordinates or its acquisition time, else None."""
    import numpy as np

    if "sun_azimuth" in cube.coords and np.isfinite(cube["sun_azimuth"].values[t]) \
            and np.isfinite(cube["sun_elevation"].values[t]):
        src = str(cube["sun_source"].values[t]) if "sun_source" in cube.coords else "cube: sun coordinates"
        kind, _, detail = src.partition(": ")
        return dict(azimuth=float(cube["sun_azimuth"].values[t]), elevation=float(cube["sun_elevation"].values[t]),
                    source=kind, detail=detail)
    if "time" in cube.coords and lon is not None and not np.isnat(cube["time"].values[t]):
        s = sun_from_time(str(cube["time"].values[t]), lon, lat)
        if s is not None:
            return dict(azimuth=s.azimuth, elevation=s.elevation, source=s.source, detail=s.detail)
    return None


def shadow_errors(suns, *, log=None) -> list:
    """Per image, ``eps`` of :func:`offnadir.change.shadow.relative_error`: by how much of its
    distance to the caster a predicted shadow may be off (two sigmas of the sun's uncertainty
    from ``suns``, or :data:`~offnadir.change.shadow.SIGMA_KNOWN_DEG` when it came with none);
    0 where the sun is unknown. Each entry of ``suns`` gets ``"shadow_relative_error"``; logged."""
    import logging

    from offnadir.change import shadow as SH

    log = log or logging.getLogger("offnadir.change.illumination")
    out = []
    for rec in suns:
        if rec.get("azimuth") is None:
            out.append(0.0)
            continue
        sa, se = rec.get("sigma_azimuth"), rec.get("sigma_elevation")
        sa = SH.SIGMA_KNOWN_DEG if sa is None else float(sa)
        se = SH.SIGMA_KNOWN_DEG if se is None else float(se)
        eps = SH.relative_error(float(rec["elevation"]), sa, se)
        rec["shadow_relative_error"] = eps
        log.info("%s: predicted shadows widened by 1 cell + %.1f %% of their distance to the caster (at most %d "
                 "cells; sun sigma %.2f deg azimuth, %.2f deg elevation)", rec.get("image", "?"), 100 * eps,
                 SH.MARGIN_CAP, sa, se)
        out.append(eps)
    return out


def facade_dark_for(sun_report, t: int, view_azimuth_deg: float, log):
    """Is the facade facing target ``t``'s sensor in the dark under its sun
    (:func:`offnadir.change.rim_profile.facade_dark`, the sun's azimuth turned into the grid's frame
    by the report's ``grid_north_deg``)? Recorded in the report (the store's ``change_sun``) and
    logged; None without a sun (the outline test then reads no strip)."""
    from offnadir.change.outline import EDGE_FACTOR
    from offnadir.change.rim_profile import facade_dark

    rec = (sun_report or [None] * (t + 1))[t] or {}
    if rec.get("azimuth") is None or rec.get("elevation") is None:
        return None
    az = float(rec["azimuth"]) + float(rec.get("grid_north_deg") or 0.0)
    dark = facade_dark(az, float(rec["elevation"]), view_azimuth_deg, EDGE_FACTOR)
    rec["facade_dark"] = dark
    log(f"image {t}: the facade facing the sensor (azimuth {view_azimuth_deg:.1f} deg) is "
        + ("in the dark under the sun: the outline test also reads its strip's level, darker than the roof"
           if dark else "lit by the sun: the outline test also reads its strip's level, darker or brighter than "
           "the roof (the facade's albedo decides)"))
    return dark
