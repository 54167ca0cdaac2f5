"""What the change stage decides once per run before any tile work: which bands are red and NIR,
and the sun of every image (client side, small). numpy/rasterio only."""

from __future__ import annotations

import logging
import math

_LOG = logging.getLogger("offnadir.change.context")


def band_roles(band_names, n_bands, opts):
    """0-based (red, nir) indices: options, else band descriptions, else B,G,R,NIR for 4 bands."""
    from offnadir.errors import ConfigError

    red = opts.red_band - 1 if opts.red_band else None
    nir = opts.nir_band - 1 if opts.nir_band else None
    for k, v in ((red, "red_band"), (nir, "nir_band")):
        if k is not None and not 0 <= k < n_bands:
            raise ConfigError(f"change.{v} = {k + 1} but the images have {n_bands} band(s).")
    names = [str(b).strip().lower() for b in (band_names or [])]
    if red is None and names:
        for k, nm in enumerate(names):
            if nm in ("r", "red"):
                red = k
    if nir is None and names:
        for k, nm in enumerate(names):
            if nm in ("nir", "ir", "near-infrared", "near infrared", "nir1"):
                nir = k
    if red is None and nir is None and n_bands == 4 and not any(names):
        red, nir = 2, 3
    if red is None or nir is None:
        return None, None
    return red, nir


def image_band_names(paths):
    try:
        import rasterio

        with rasterio.open(paths[0]) as src:
            return list(src.descriptions)
    except Exception:  # noqa: BLE001 - band names are a convenience only
        return []


def resolve_sun(cube, opts, say=None, client=None):
    """(per image (grid azimuth, elevation) in radians, report): the cube's sun (config, metadata,
    almanac) or estimated from the image and the DSM; () when some image's sun stays unknown
    (said in the log). The report goes to the store's ``change_sun`` attribute. ``client``: a
    cluster's client, whose workers score an estimate's candidate suns (the reads stay here)."""
    import dask

    from offnadir.change.illumination import resolve_suns
    from offnadir.change.sun_tasks import client_scoring

    # the windows of the cube it reads (sun estimate, shadow classifiers: a few chunks) are read
    # here, in this process: through a cluster each ``.values`` was a compute of its own (graph,
    # scheduling, a worker opening the store, the transfer back), several per image
    with dask.config.set(scheduler="sync"), client_scoring(client):
        suns = resolve_suns(cube, tol=float(opts.sun_tolerance), log=_LOG)
    for s in suns:
        msg = f"sun of {s['image']}: " + ("unknown" if s["azimuth"] is None else
                                          f"azimuth {s['azimuth']:.1f} deg, elevation {s['elevation']:.1f} deg") \
            + f" ({s['source']})"
        if say is not None:
            say(msg)
    if any(s["azimuth"] is None for s in suns):
        _LOG.warning("shadow handling is off: the sun of %s is unknown",
                     ", ".join(s["image"] for s in suns if s["azimuth"] is None))
        return (), suns
    grid = tuple((math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])) for s in suns)
    if opts.shadow_margin:
        from offnadir.change.illumination import shadow_errors

        shadow_errors(suns, log=_LOG)
    return grid, suns


def shadow_errors(report) -> tuple:
    """Per image, by how much of their distance to the caster its predicted shadows are widened
    (:mod:`offnadir.change.shadow`), from :func:`resolve_sun`'s report; () without one."""
    if not report:
        return ()
    return tuple(float(s.get("shadow_relative_error") or 0.0) for s in report)
