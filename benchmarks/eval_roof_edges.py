"""Diagnostic: what a raised roof shows with one image per date and the OLD DSM, measured on the hard
simulator's truth (issue 7, H3). Prints figures; changes nothing in the pipeline.

Geometry. The cube samples the target at the epoch-1 heights. A roof raised by ``dh`` is seen in the
target ``s = dh tan(theta_t)`` further along the target's view azimuth than the DSM predicts: a
target sample at a roof cell shows the roof point ``s`` nearer the sensor. So, walking from the
roof's outline on the side facing the target's sensor into the roof (direction ``-u_t``):

* the outline itself stays where the DSM puts it: outside it is ground at both dates, inside it is
  now the *wall* (facade) instead of the roof's edge — a ground/facade edge replaces the ground/roof
  edge at the same place (which is why outline tests that ask "is the roof's edge where the DSM
  puts it?" do not see a raise);
* the strip of width ``s`` inside shows the facade (little texture: its gradient drops);
* the roof's own edge (facade/roof) appears ``s`` cells inside, where the base has roof interior;
* the far side is hidden at both heights (occluded by the old building already).

Per building of the truth (``scene.json`` footprints, ``truth`` rasters regenerated from the seed)
this prints, along the near-sensor outline, the mean absolute step ``|x(c - k u) - x(c - (k-1) u)|``
of each image for ``k = 1..K`` (``k = 1`` the first step inside the roof), its peak ``k*`` and the
first step relative to the profile's median (``T1/med`` target, ``B1/med`` base), against the
predicted inward shift ``s``; and the census ratio of the roof's cells (as in the evidence, roof
codes only) swept along the *target's* view direction ``dh' tan(theta_t)`` (the shift a raise
makes) rather than the relative base/target direction: its value at 0 and where it is smallest.

    python benchmarks/eval_roof_edges.py [--work /tmp/eval_hard_sim] [--seeds 0 1 2 3 4 5]

Reads the scenes and stores ``benchmarks/eval_hard_sim.py --work DIR`` leaves (one image per date).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np


def view_step(az_deg: float) -> tuple[int, int]:
    """Grid step (d row, d col) of the 8-neighbourhood nearest to the ground direction towards a
    sensor at azimuth ``az_deg`` (clockwise from grid north; rows grow southwards)."""
    a = math.radians(az_deg)
    return int(round(-math.cos(a))), int(round(math.sin(a)))


def near_edge_profile(mask, xb, xt, ok, step, k_max: int):
    """(3, k_max + 1) sums over the cells of ``mask`` on its outline facing ``step`` (the neighbour
    towards the sensor is outside ``mask``): row 0 the count, rows 1-2 the sums of the base's and
    target's absolute step ``|x(c - k step) - x(c - (k-1) step)|`` for ``k = 1..k_max`` (column k),
    counted while the walk stays inside ``mask`` and both cells are ``ok``."""
    si, sj = step
    ny, nx = mask.shape
    out = np.zeros((3, k_max + 1))
    for i, j in zip(*np.nonzero(mask)):
        a, b = i + si, j + sj
        if 0 <= a < ny and 0 <= b < nx and mask[a, b]:
            continue
        for k in range(1, k_max + 1):
            p, q = i - (k - 1) * si, j - (k - 1) * sj
            c, d = i - k * si, j - k * sj
            if not (0 <= c < ny and 0 <= d < nx) or not mask[c, d]:
                break
            if ok[p, q] and ok[c, d]:
                out[0, k] += 1
                out[1, k] += abs(xb[c, d] - xb[p, q])
                out[2, k] += abs(xt[c, d] - xt[p, q])
    return out


def profile_summary(sums, n_min: int = 5) -> dict:
    """Peaks ``k*`` of the base and target profiles and their first step over the median."""
    n = sums[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        pb = np.where(n >= n_min, sums[1] / n, np.nan)
        pt = np.where(n >= n_min, sums[2] / n, np.nan)
    pb[0] = pt[0] = np.nan
    if np.sum(np.isfinite(pt)) < 3:
        return {}
    mb, mt = np.nanmedian(pb[1:]), np.nanmedian(pt[1:])
    return dict(n_edge=int(n[1]), k_base=int(np.nanargmax(pb)), k_target=int(np.nanargmax(pt)),
                t1=float(pt[1] / mt) if mt > 0 else math.nan, b1=float(pb[1] / mb) if mb > 0 else math.nan)


def _read(path):
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def run_seed(work: Path, seed: int) -> list[dict]:
    import xarray as xr

    from offnadir.change import census as K
    from offnadir.change import evidence as EV
    from offnadir.simulate import scene as S

    store, scene = work / f"hard{seed}.zarr", work / f"hard{seed}"
    if not store.exists():
        sys.exit(f"{store} not found: run `python benchmarks/eval_hard_sim.py --work {work} --seeds {seed}` first")
    ds = xr.open_zarr(store, mask_and_scale=False)
    meta = json.loads((scene / "scene.json").read_text())
    cal = json.loads(ds.attrs["change_calibration"])
    vis = np.asarray(ds["visible"].values)
    val = np.asarray(ds["value"].values, np.float64)
    elev = np.asarray(ds["elevated"].values) == 1
    az = np.asarray(ds["azimuth"].values, np.float64)
    off = np.asarray(ds["off_nadir"].values, np.float64)
    cell = float(meta["cell"])
    xb, xt = EV.intensity(val[0]), EV.intensity(val[1])
    okb, okt = (vis[0] == 1) & np.isfinite(xb), (vis[1] == 1) & np.isfinite(xt)
    ok = okb & okt
    model = S.generate(int(meta["seed"]), int(meta["size"]), cell, float(meta["heights"]["base_height"]))
    bid = S.rasterize(model)[1].building
    step = view_step(az[1])
    per_m = math.tan(math.radians(off[1])) / cell  # cells of target displacement per metre of raise
    k_max = int(math.ceil(float(cal["max_height_change_m"]) * per_m)) + 2
    # roof codes only, target shifted along its own view direction (the shift a raise makes)
    sig = cal["noise_sigma"]
    wa = K.census_words(xb, okb & elev, EV.DEADBAND * sig[0], EV.RADIUS, EV._NEIGH)
    wb = K.census_words(xt, okt & elev, EV.DEADBAND * sig[1], EV.RADIUS, EV._NEIGH)
    ux, uy = -math.cos(math.radians(az[1])) * per_m, math.sin(math.radians(az[1])) * per_m
    sweep = {}
    for h in np.arange(-16.0, 16.5, 1.0):
        o = (int(round(h * ux)), int(round(h * uy)))
        if o not in sweep:
            sweep[o] = (h, K.min_census_ratio(wa, wb, [o], int(cal["window_cells"]), None))
    rows = []
    for b in meta["buildings"]:
        if b["change"] not in ("none", "raised", "demolished", "reroofed"):
            continue
        m = (bid == b["id"]) & elev
        if (m & ok).sum() < 60:
            continue
        s = profile_summary(near_edge_profile(m, xb, xt, ok, step, k_max))
        if not s:
            continue
        dh = (b["height_epoch2_m"] or b["height_m"]) - b["height_m"] if b["change"] == "raised" else 0.0
        hs, rr = [], []
        for h, r in sorted(sweep.values(), key=lambda v: v[0]):
            v = r[m & ok]
            if np.isfinite(v).any():
                hs.append(h)
                rr.append(float(np.nanmedian(v)))
        k0 = int(np.argmin(np.abs(hs)))
        kb = int(np.argmin(rr))
        rows.append(dict(seed=seed, id=b["id"], change=b["change"], roof=b["roof"], dh=dh, shift=dh * per_m, **s,
                         census_r0=rr[k0], census_best=rr[kb], census_best_dh=hs[kb]))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/eval_hard_sim"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    a = ap.parse_args(argv)
    rows = [r for s in a.seeds for r in run_seed(a.work, s)]
    print(f"{'seed':>4} {'change':>10} {'roof':>5} {'id':>3} {'dh m':>5} {'pred s':>6} {'edges':>5} | {'k* base':>7} "
          f"{'k* tgt':>6} {'T1/med':>6} {'B1/med':>6} | census R(0) best @dh'")
    for r in sorted(rows, key=lambda r: (r["change"], r["seed"], r["id"])):
        print(f"{r['seed']:>4} {r['change']:>10} {r['roof']:>5} {r['id']:>3} {r['dh']:>5.1f} {r['shift']:>6.1f} "
              f"{r['n_edge']:>5} | {r['k_base']:>7} {r['k_target']:>6} {r['t1']:>6.2f} {r['b1']:>6.2f} | "
              f"{r['census_r0']:.2f} {r['census_best']:.2f} @{r['census_best_dh']:+.0f} m")
    raised = [r for r in rows if r["change"] == "raised"]
    flat = [r for r in rows if r["change"] == "none" and r["roof"] == "flat"]
    if raised:
        hit = sum(abs(r["k_target"] - (1 + r["shift"])) <= 1.5 for r in raised)
        near = sum(abs(r["census_best_dh"] - r["dh"]) <= 1.5 for r in raised)
        print(f"\nraised roofs: target edge peak within 1.5 cells of 1 + dh tan(theta_t)/cell on {hit} of {len(raised)}; "
              f"census minimum within 1.5 m of the true dh on {near} of {len(raised)}")
        print("raised roofs, first step inside the near-sensor outline over the median (T1/med): "
              + ", ".join(f"{r['t1']:.2f}" for r in raised))
    if flat:
        t1 = np.array([r["t1"] for r in flat])
        print(f"unchanged flat roofs ({len(flat)}): T1/med median {np.nanmedian(t1):.2f}, below 1.0 on "
              f"{int(np.sum(t1 < 1.0))}, below 1.3 on {int(np.sum(t1 < 1.3))}; target peak at k = 1 on "
              f"{sum(r['k_target'] == 1 for r in flat)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
