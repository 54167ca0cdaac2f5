"""Evaluation: should the sun estimate score the predicted direct irradiance instead of the binary
shadow indicator? Both on the same inputs, every world where a true sun is known.

* ``binary``: :func:`offnadir.change.sun_estimate.fit_sun` as the change stage runs it (rank /
  lit-indicator point-biserial correlation; whole-sky 10/5 deg, refinements 2.5/1.25 and
  0.5/0.25 deg); ``acc`` says whether it is accepted (z, null threshold, range edge).
* ``irradiance``: the Spearman correlation between the image and the predicted direct irradiance
  (:func:`offnadir.change.sun_kernels.illumination` codes: cos of the incidence over sin of the
  elevation, 0 without direct sun), same window, same grids, same coarse-to-fine search and
  re-centring, no acceptance test (a diagnostic: no null for it exists).
* ``cast``: the binary score on cast shadows only (faces turned away that nothing shades are left
  out), same search.

Worlds: the real same-date s2p crops (truth: the almanac at the Airbus dataset-name time,
:mod:`offnadir.io.acquisition_time`), the hard simulator (``offnadir simulate --preset hard``,
truth in scene.json), synthetic box DSMs with the simulator's cast shadows (``eval_sun_null``'s
``--shadows`` images) and Kahramanmaras post_event_img1 (truth: post_event_img2's IMAGING_TIME,
one pass). The error is the angle between the estimated and the true sun directions.

    python benchmarks/eval_sun_irradiance.py [--seeds 0 1 2 3 4 5] [--boxes 12] [--work /tmp/eval_sun_irradiance] [--variants irradiance cast]
                                             [--skip-real] [--skip-sim] [--skip-km]
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np

S2P = Path("/work/shared/data/real/s2p/tests/data")
KM = Path("/work/shared/data/real/picanteo")
VARIANTS = ["irradiance", "cast"]


def angle(az1, el1, az2, el2) -> float:
    def v(az, el):
        a, e = math.radians(az), math.radians(el)
        return np.array([math.cos(e) * math.sin(a), math.cos(e) * math.cos(a), math.sin(e)])
    return math.degrees(math.acos(float(np.clip(v(az1, el1) @ v(az2, el2), -1, 1))))


def _search(level, azs, els, kind):
    """Score of every candidate: ``irradiance`` (Spearman correlation of the image with the
    predicted irradiance) or ``cast`` (the binary score on cast shadows only: cells whose own face
    is turned away from the sun but that no other cell shades are left out, so a low sun cannot
    gain from marking slopes dark)."""
    from scipy.stats import rankdata

    from offnadir.change import sun_kernels as K

    h, cell, use, rv = level
    relief = float(np.nanmax(h) - np.nanmin(h))
    hz = np.where(np.isfinite(h), h, np.nanmin(h))
    buf = np.empty(h.shape, np.uint8)
    dist = np.empty(h.shape)
    r = np.zeros(h.shape)
    r[use] = (rv - 0.5) / rv.size
    out = np.full((len(azs), len(els)), -np.inf)
    for a, az in enumerate(azs):
        for e, el in enumerate(els):
            md = relief / (math.tan(math.radians(el)) * cell) + 2.0
            K.illumination(hz, cell, math.radians(az), math.radians(el), 0.3, 1.0, md, buf)
            if kind == "irradiance":
                x = buf[use].astype(np.float64)
                if np.ptp(x) > 0:
                    out[a, e] = float(np.corrcoef(rankdata(x), rv)[0, 1])
                continue
            az_r = math.radians(az)
            K.caster_distances(hz, math.tan(math.radians(el)) * cell, -math.cos(az_r), math.sin(az_r), 0.3, md, dist)
            cast = dist >= 0
            u = use & ~((buf == K.SHADED) & ~cast)
            sh = u & cast
            n, ns = int(u.sum()), int(sh.sum())
            if ns < 10 or n - ns < 10:
                continue
            d = (r[u].sum() - r[sh].sum()) / (n - ns) - r[sh].sum() / ns
            pp = ns / n
            out[a, e] = d * math.sqrt(pp * (1 - pp) * 12.0)
    return out


def variant_fit(h, v, ok, cell, north, kind, max_side=512, el_range=(10.0, 80.0)):
    """(true azimuth, elevation, best score) of the ``kind`` search (:func:`_search`)."""
    from scipy.stats import rankdata

    from offnadir.change.sun_estimate import _block_mean, pick_window

    ok = ok & np.isfinite(v) & np.isfinite(h)
    i0, i1, j0, j1 = pick_window(h, ok, max_side)
    h, v, ok = h[i0:i1, j0:j1], v[i0:i1, j0:j1], ok[i0:i1, j0:j1]
    f = max(1, int(math.ceil(1.0 / cell)), int(math.ceil(max(h.shape) / 256)))

    def level(fac):
        hc = _block_mean(h, fac) if fac > 1 else h
        vc = _block_mean(np.where(ok, v, np.nan), fac) if fac > 1 else np.where(ok, v, np.nan)
        use = np.isfinite(hc) & np.isfinite(vc)
        return (hc, cell * fac, use, rankdata(vc[use]))

    coarse, fine = level(f), (level(1) if f > 1 else None)
    fine = fine or coarse
    lo, hi = el_range
    azs, els = np.arange(0.0, 360.0, 10.0), np.arange(lo, hi + 1e-9, 5.0)
    sc = _search(coarse, azs + north, els, kind)
    a, e = np.unravel_index(np.argmax(sc), sc.shape)
    az0, el0 = azs[a], els[e]
    for lv, da, de in ((coarse, 2.5, 1.25), (fine, 0.5, 0.25)):
        for _ in range(4):
            azs = az0 + da * np.arange(-4, 5)
            els = np.unique(np.clip(el0 + de * np.arange(-4, 5), lo, hi))
            sc = _search(lv, azs + north, els, kind)
            a, e = np.unravel_index(np.argmax(sc), sc.shape)
            edge = a in (0, len(azs) - 1) or (e in (0, len(els) - 1) and lo < els[e] < hi)
            az0, el0 = azs[a], els[e]
            if not edge:
                break
    return float(az0 % 360.0), float(el0), float(sc[a, e])


def compare(label, h, v, ok, cell, north, taz, tel, rows):
    from offnadir.change.sun_estimate import fit_sun

    b = fit_sun(h, v, ok, cell, north)
    eb = angle(b.azimuth, b.elevation, taz, tel) if b else math.inf
    bs = (f"{b.azimuth:6.1f}/{b.elevation:5.1f} err {eb:5.2f} {'acc' if b.accepted() else 'REJ'}" if b
          else "none")
    line, errs = f"{label:30s} truth {taz:6.1f}/{tel:5.1f} | binary {bs}", [eb]
    for kind in VARIANTS:
        az, el, c = variant_fit(h, v, ok, cell, north, kind)
        errs.append(angle(az, el, taz, tel))
        line += f" | {kind} {az:6.1f}/{el:5.1f} err {errs[-1]:5.2f} ({c:.3f})"
    rows.append((label, *errs))
    print(line, flush=True)


def _cube_arrays(cube, t):
    h = np.asarray(cube["dsm"].values, np.float64)
    v = np.asarray(cube["value"].isel(image=t).mean("band").values, np.float64)
    ok = (np.asarray(cube["visible"].isel(image=t).values) == 1) & np.isfinite(v)
    return h, v, ok


def _grid(cube):
    from offnadir.io.dsm import grid_centre_lonlat_and_north

    g = cube["dsm"]
    tr = g.rio.transform()
    lon, lat, north = grid_centre_lonlat_and_north(g.rio.crs.to_wkt(), tuple(tr), (cube.sizes["y"], cube.sizes["x"]))
    return lon, lat, north, abs(float(tr.a))


def real(rows):
    import dask

    from offnadir.io.acquisition import sun_from_time
    from offnadir.io.acquisition_time import acquisition_time
    from offnadir.pipeline import coregister

    for name, dsm, imgs in (("reunion", S2P / "expected_output/pair/dsm.tif",
                             [S2P / "input_pair/img_01.tif", S2P / "input_pair/img_02.tif"]),
                            ("marseille", S2P / "expected_output/triplet/dsm.tif",
                             [S2P / f"input_triplet/img_0{k}.tif" for k in (1, 2, 3)])):
        with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
            warnings.simplefilter("ignore")
            cube = coregister(dsm, imgs, chunk=256).compute()
        lon, lat, north, cell = _grid(cube)
        for t, p in enumerate(imgs):
            truth = sun_from_time(acquisition_time(p, None).time, lon, lat)
            compare(f"{name} {p.name}", *_cube_arrays(cube, t), cell, north, truth.azimuth, truth.elevation, rows)


def km(rows, work):
    import dask

    from offnadir.io.acquisition import sun_from_time
    from offnadir.io.acquisition_time import acquisition_time
    from offnadir.io.image import open_image_source
    from offnadir.pipeline import coregister

    d = KM / "docs/tutorials/data"
    imgs = [{"path": d / f"post_event_img{k}.tif", "model": d / f"post_event_img{k}.geom"} for k in (1, 2)]
    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore")
        cube = coregister(KM / "derived/cars_1.3.0/post/dsm.tif", imgs, chunk=512).compute()
    lon, lat, north, cell = _grid(cube)
    im2 = open_image_source(imgs[1]["path"], model=imgs[1]["model"])
    truth = sun_from_time(acquisition_time(im2.path, im2.camera).time, lon, lat)
    for t in (0, 1):
        compare(f"kahramanmaras post_event_img{t + 1}", *_cube_arrays(cube, t), cell, north, truth.azimuth,
                truth.elevation, rows)


def simulated(rows, seeds, size, work):
    import json

    import rioxarray  # noqa: F401
    import xarray as xr

    for seed in seeds:
        d = work / f"hard_{seed}"
        for cmd in (["offnadir", "simulate", str(d), "--seed", str(seed), "--size", str(size), "--preset", "hard",
                     "--overwrite"],
                    ["offnadir", "coregister", "--dsm", str(d / "dsm.tif"), "--image", str(d / "base.tif"), "--image",
                     str(d / "target.tif"), "-o", str(d / "cube.zarr"), "--workers", "1", "--quiet", "--overwrite"]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
        meta = json.loads((d / "scene.json").read_text())
        cube = xr.open_zarr(d / "cube.zarr").load()
        _, _, north, cell = _grid(cube)
        for t, name in enumerate(("base", "target")):
            v = meta["views"][name]
            compare(f"hard seed {seed} {name}", *_cube_arrays(cube, t), cell, north, v["sun_azimuth_deg"],
                    v["sun_elevation_deg"], rows)


def boxes(rows, n):
    sys.path.insert(0, str(Path(__file__).parent))
    from eval_sun_null import boxes as box_dsm
    from eval_sun_null import shadowed

    for seed in range(n):  # the same draws as eval_sun_null.py --shadows
        h = box_dsm(256, 1000 + seed)
        rng = np.random.default_rng(2000 + seed)
        az, el = float(rng.uniform(0, 360)), float(rng.uniform(15, 75))
        compare(f"boxes {seed}", h, shadowed(h, az, el, seed), np.ones(h.shape, bool), 0.5, 0.0, az, el, rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--boxes", type=int, default=12)
    ap.add_argument("--work", default="/tmp/eval_sun_irradiance")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-sim", action="store_true")
    ap.add_argument("--skip-km", action="store_true")
    ap.add_argument("--variants", nargs="+", default=VARIANTS, choices=["irradiance", "cast"])
    a = ap.parse_args(argv)
    VARIANTS[:] = a.variants
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    if not a.skip_real:
        real(rows)
    if not a.skip_km:
        km(rows, work)
    if not a.skip_sim:
        simulated(rows, a.seeds, a.size, work)
    if a.boxes:
        boxes(rows, a.boxes)
    print("world            n  binary err median/max" + "".join(f" | {k} median/max better/worse (>0.5 deg)"
                                                          for k in VARIANTS))
    for world in ("reunion", "marseille", "kahramanmaras", "hard", "boxes"):
        r = [x for x in rows if x[0].startswith(world)]
        if not r:
            continue
        e = np.array([x[1:] for x in r])
        line = f"{world:15s} {len(r):2d}  {np.median(e[:, 0]):6.2f} / {e[:, 0].max():6.2f}"
        for k in range(1, e.shape[1]):
            line += (f" | {np.median(e[:, k]):6.2f} / {e[:, k].max():6.2f}  {int(np.sum(e[:, k] < e[:, 0] - 0.5))}/"
                     f"{int(np.sum(e[:, k] > e[:, 0] + 0.5))}")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
