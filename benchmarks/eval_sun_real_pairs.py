"""Evaluation: the sun estimate on the real same-date s2p pairs (Réunion, Marseille), against the
sun of their acquisition times.

The s2p crops carry no sun angles and no acquisition-time tag, but their GeoTIFF metadata keep
Pleiades' GML coverage description, whose dataset name ``DS_PHR1B_201306290637144_...`` holds the
acquisition start (UTC, to 0.1 s), which offnadir reads (:mod:`offnadir.io.acquisition_time`): the
change stage uses the almanac's sun at that time. The estimate is what it would use without the
time (images renamed or re-encoded without their metadata); the almanac at the grid's centre is
the reference (the vendor time is data we did not make; the sun moves ~0.004 deg/s, the strip's
seconds do not matter). Per image: the source offnadir uses, the estimator's best
(:func:`offnadir.change.sun_estimate.fit_sun`, as the change stage calls it), whether it is
accepted and why not, and its error.

``--irradiance`` adds a diagnostic (not used by offnadir): the whole-sky grid (10/5 deg) maximum
of the rank correlation between the image and the predicted direct irradiance (cos of the
incidence, 0 in shadow) instead of the binary shadow indicator.

    python benchmarks/eval_sun_real_pairs.py [--irradiance]
"""

from __future__ import annotations

import argparse
import math
import warnings
from datetime import datetime, timezone

import numpy as np

S2P = "/work/shared/data/real/s2p/tests/data"
PAIRS = {
    "reunion": (f"{S2P}/expected_output/pair/dsm.tif",
                [f"{S2P}/input_pair/img_01.tif", f"{S2P}/input_pair/img_02.tif"]),
    "marseille": (f"{S2P}/expected_output/triplet/dsm.tif",
                  [f"{S2P}/input_triplet/img_01.tif", f"{S2P}/input_triplet/img_02.tif"]),
}


def acquired(path) -> datetime:
    from offnadir.io.acquisition_time import acquisition_time

    at = acquisition_time(path, None)
    if at is None:
        raise SystemExit(f"{path}: no acquisition time in its metadata")
    return datetime.fromisoformat(at.time.replace("Z", "+00:00")).astimezone(timezone.utc)


def irradiance_best(h, v, ok, cell, north):
    from scipy.stats import rankdata

    from offnadir.change import kernels as K
    from offnadir.change.sun_estimate import _block_mean

    f = max(1, int(math.ceil(1.0 / cell)), int(math.ceil(max(h.shape) / 256)))
    hc, vc = _block_mean(h, f), _block_mean(np.where(ok, v, np.nan), f)
    use = np.isfinite(hc) & np.isfinite(vc)
    hz = np.where(np.isfinite(hc), hc, np.nanmin(hc))
    rv, relief, buf = rankdata(vc[use]), float(np.nanmax(hc) - np.nanmin(hc)), np.empty(hc.shape, np.uint8)
    best = (-2.0, None)
    for az in range(0, 360, 10):
        for el in range(10, 81, 5):
            md = relief / (math.tan(math.radians(el)) * cell * f) + 2.0
            K.illumination(hz, cell * f, math.radians(az + north), math.radians(el), 0.3, 1.0, md, buf)
            c = float(np.corrcoef(rankdata(buf[use].astype(float)), rv)[0, 1])
            if c > best[0]:
                best = (c, (float(az), float(el)))
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--irradiance", action="store_true")
    args = ap.parse_args(argv)
    import dask

    from offnadir.change.sun_estimate import fit_sun, pick_window
    from offnadir.io.acquisition import image_sun, sun_from_time
    from offnadir.io.dsm import grid_centre_lonlat_and_north
    from offnadir.pipeline import coregister

    for name, (dsm, images) in PAIRS.items():
        with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
            warnings.simplefilter("ignore")  # s2p DSMs declare no vertical datum (they are ellipsoidal)
            cube = coregister(dsm, images, chunk=256).compute()
        grid = cube["dsm"]
        tr = grid.rio.transform()
        shape = (cube.sizes["y"], cube.sizes["x"])
        lon, lat, north = grid_centre_lonlat_and_north(grid.rio.crs.to_wkt(), tuple(tr), shape)
        cell = abs(float(tr.a))
        h = np.asarray(grid.values, np.float64)
        for t, path in enumerate(images):
            when = acquired(path)
            truth = sun_from_time(when.isoformat(), lon, lat)
            used = image_sun(path, None, when.isoformat(), (lon, lat))
            v = np.asarray(cube["value"].isel(image=t).mean("band").values, np.float64)
            ok = (np.asarray(cube["visible"].isel(image=t).values) == 1) & np.isfinite(v)
            fit = fit_sun(h, v, ok, cell, north)
            d_az = (fit.azimuth - truth.azimuth + 180) % 360 - 180
            why = "accepted" if fit.accepted() else (
                f"rejected: best within 2 sigma of the searched edge {fit.edge_range}" if fit.edge_range
                else f"rejected: z {fit.z:.1f}, whole-sky z {fit.z_sky:.2f} vs null {fit.null_threshold:.2f}")
            print(f"{name} {path.rsplit('/', 1)[1]} acquired {when:%Y-%m-%dT%H:%M:%S.%f}"[:-5] + "Z"
                  f" truth az {truth.azimuth:.1f} el {truth.elevation:.1f} | estimate az {fit.azimuth:.1f}"
                  f"+/-{fit.sigma_azimuth:.1f} el {fit.elevation:.2f}+/-{fit.sigma_elevation:.1f} (d_az {d_az:+.1f},"
                  f" d_el {fit.elevation - truth.elevation:+.1f}), {100 * fit.shadow_fraction:.0f} % predicted in"
                  f" shadow, {why}; offnadir uses: {used.source if used else 'the estimate'}")
            if args.irradiance:
                i0, i1, j0, j1 = pick_window(h, ok & np.isfinite(h), 512)
                c, (az, el) = irradiance_best(h[i0:i1, j0:j1], v[i0:i1, j0:j1], ok[i0:i1, j0:j1], cell, north)
                print(f"    irradiance rank correlation: best {c:.3f} at az {(az - north) % 360:.1f} el {el:.0f}")


if __name__ == "__main__":
    main()
