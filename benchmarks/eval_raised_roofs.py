"""Evaluation: the hard simulator's raised roofs, one image per date, read from stored runs (issue 7, H1).

Per raised roof of ``truth_change_class.tif`` (its scored cells: visible in both images by the cube and
the truth), the share of its cells the stored run flags and which source flags them on their own
(:func:`eval_roof_false_alarms.sources`: the census evidence after the rim witness, each patch
criterion's stored score, the shadow rules), its true height change and the parallax move it makes in
the target (``dh tan(theta_t) / cell``); per patch holding most of its cells the ``outline`` sums' rim
ratios ``b1``/``t1`` and the rim profile's measures recomputed from the store as the sums pass does
(:mod:`offnadir.change.rim_profile`: ``b0``/``t0`` at depth 0 over the lit pairs, the new edge inside
and its depth, ``went``).

``--variants``: every elevated patch's outcome under the rim rules, by the truth class holding most of
its scored cells, counting the cells the stored run does not flag yet: ``went`` (the adopted route) and
``weakened`` (the target's rim at most half of ``max(1, b0)`` instead of half the roof's step, with the
same new edge inside; not adopted, docs/change_detection.md) and ``facade`` (the dark facade strip,
:func:`offnadir.change.rim_profile.facade_strip`, where the store's sun puts the facade facing the target's
sensor in the dark; the route the ``outline`` criterion adds, issue 7 R4 eighth round; either sign where that
facade is lit, q2 tenth round). Per raised roof also
the strip's level ``dt``/``db`` (:func:`offnadir.change.rim_profile.strip_level`) and ``facade``.

``--light``: per seed the target's sun and the irradiance of the wall facing its sensor over a flat roof's,
per roof the raised building's roof and facade materials and the strip's expected contrast (truth only).

    python benchmarks/eval_raised_roofs.py --hard /tmp/eval_hard_sim [--seeds 0 1 2 3 4 5] [--variants] [--light]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_hard_sim as HS  # noqa: E402
import eval_roof_false_alarms as RF  # noqa: E402

RAISED = 3


def profile(store, scene, t: int = 1) -> dict:
    """The rim profile's sums of every elevated patch, recomputed from the store in one piece (the
    pipeline sums them per tile with a halo as long as the walk: the same numbers)."""
    import xarray as xr

    from offnadir.change import outline as OL
    from offnadir.change import rim_profile as RP
    from offnadir.change.tileio import parallax_offsets

    meta = json.loads((scene / "scene.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        cal = json.loads(ds.attrs["change_calibration"])
        val = np.asarray(ds["value"].values, np.float64)
        vis = np.asarray(ds["visible"].values)
        lit = np.asarray(ds["illumination"].values)
        lab = np.asarray(ds["patch"].values).astype(np.int64)
        elev = np.asarray(ds["elevated"].values) == 1
        ids = np.asarray(ds["patch_id"].values)
        pel = np.asarray(ds["patch_elevated"].values).astype(bool)
    tv = meta["views"]["target"]
    di, dj, sc = parallax_offsets(tv["azimuth_deg_at_centre"], tv["off_nadir_deg_at_centre"],
                                  float(cal["max_height_change_m"]), float(meta["cell"]))
    step = OL.sensor_step(di, dj, sc)
    kmax = int(np.max(np.maximum(np.abs(di), np.abs(dj)))) if len(di) else 0
    eids = ids[pel]
    em = np.where(np.isin(lab, eids), np.searchsorted(eids, lab), -1)
    ok = (vis[0] == 1) & (vis[t] == 1)
    core = (0, lab.shape[0], 0, lab.shape[1])
    xb, xt = val[0].mean(axis=0), val[t].mean(axis=0)
    prof = RP.depth_sums(lab, elev, xb, xt, ok, step, kmax, core, em, len(eids), lit[0], lit[t])
    moved, depth = RP.moved_rim(prof, 2.0, 8)
    tot = prof.sum(axis=1)
    with np.errstate(all="ignore"):
        n0 = prof[:, 0, 0] >= 8
        b0 = np.where(n0, prof[:, 0, 1] / prof[:, 0, 0] / (tot[:, 1] / tot[:, 0]), np.nan)
        t0 = np.where(n0, prof[:, 0, 2] / prof[:, 0, 0] / (tot[:, 2] / tot[:, 0]), np.nan)
    sun = json.loads(ds.attrs.get("change_sun", "null") or "null") or []
    rec = sun[t] if len(sun) > t and sun[t] else {}
    dark = rec.get("azimuth") is not None and RP.facade_dark(
        float(rec["azimuth"]) + float(rec.get("grid_north_deg") or 0.0), float(rec["elevation"]),
        float(ds["azimuth"].values[t]), OL.EDGE_FACTOR)
    dt, db = RP.strip_level(prof, depth, 8)
    # the pipeline's route (outline.facade_moved): darker strip where the facade is dark, either sign where lit
    facade = (RP.facade_strip(prof, 2.0, 8, either_sign=not dark) if rec.get("azimuth") is not None
              else np.full(len(eids), np.nan))
    return dict(eids=eids, lab=lab, prof=prof, moved=moved, depth=depth, b0=b0, t0=t0, went=RP.rim_went(prof, 2.0, 8),
                dt=dt, db=db, facade=facade, dark=dark,
                tan=float(np.tan(np.radians(tv["off_nadir_deg_at_centre"]))), cell=float(meta["cell"]))


def roofs(store, scene) -> list:
    """One row per raised roof (connected component of the truth's ``raised`` class, >= 20 scored cells)."""
    from scipy import ndimage as ndi

    from offnadir.simulate import truth as T

    src = RF.sources(store)
    d, tab = src["d"], src["tab"]
    pr = profile(store, scene)
    cls = HS._read(scene / "truth_change_class.tif")
    occ = HS._read(scene / "truth_occluded.tif")
    sb = HS._read(scene / "truth_structural.tif")
    dh = HS._read(scene / "dsm_epoch2.tif") - HS._read(scene / "dsm.tif")
    cells = (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1) & (occ == 0) & (sb != T.IGNORE)
    lab, n = ndi.label(cls == RAISED)
    idx = np.clip(np.searchsorted(d["ids"], d["patch"]), 0, len(d["ids"]) - 1)
    rows = []
    for k in range(1, n + 1):
        m = (lab == k) & cells
        if m.sum() < 20:
            continue
        pids, cnt = np.unique(d["patch"][m], return_counts=True)
        p = int(pids[np.argmax(cnt)])
        i = int(idx[d["patch"] == p][0])
        j = int(np.searchsorted(pr["eids"], p))
        has = j < len(pr["eids"]) and pr["eids"][j] == p
        z = float(np.median(dh[lab == k]))
        ii, jj = np.nonzero(d["patch"] == p)
        rows.append(dict(cells=int(m.sum()), dh=z, move=z * pr["tan"] / pr["cell"], ci=ii.mean(), cj=jj.mean(),
                         found=float(src["stored"][m].mean()), by={s: float(src[s][m].mean()) for s in RF.NAMES},
                         patch=p, b1=float(tab["patch_rim_base"][i]), t1=float(tab["patch_rim_target"][i]),
                         **{q: (float(pr[q][j]) if has else np.nan)
                            for q in ("b0", "t0", "moved", "depth", "went", "dt", "db", "facade")}))
    return rows


def facade_light(scene, rows) -> tuple:
    """The target's sun and the Lambertian irradiance of the wall facing its sensor over a flat roof's
    (direct ``cos e max(0, cos(az_sun - az_view)) / sin e``, and with the simulator's sky light, half of it
    on a wall), and per row the raised building nearest the patch's centre (its roof and facade
    materials, their mean albedo ratio, and ``contrast`` = that ratio times the irradiance ratio with sky:
    the strip's expected level over the roof's; truth only, not known to a run)."""
    import math

    from offnadir.simulate.presets import SKY
    from offnadir.simulate.scene_model import MATERIALS

    meta = json.loads((scene / "scene.json").read_text())
    tv, g = meta["views"]["target"], meta["grid"]
    e = math.radians(tv["sun_elevation_deg"])
    direct = math.cos(e) * max(0.0, math.cos(math.radians(tv["sun_azimuth_deg"] - tv["azimuth_deg_at_centre"])))
    sky = float(np.mean(SKY))
    ratio = (direct + 0.5 * sky) / (math.sin(e) + sky)
    head = (f"target sun elevation {tv['sun_elevation_deg']:.1f} azimuth {tv['sun_azimuth_deg']:.1f}, view azimuth "
            f"{tv['azimuth_deg_at_centre']:.0f}: wall/roof irradiance direct {direct / math.sin(e):.2f}, "
            f"with sky {ratio:.2f}")
    raised = [b for b in meta["buildings"] if b.get("change") == "raised"]
    out = []
    for r in rows:
        if not raised:
            out.append("")
            continue

        def dist(b):
            xy = np.asarray(b["footprint_xy"][0], float)
            return math.hypot((g["y0"] - xy[:, 1].mean()) / g["cell"] - r["ci"],
                              (xy[:, 0].mean() - g["x0"]) / g["cell"] - r["cj"])
        b = min(raised, key=dist)
        roof = b["material_epoch2"] or b["material"]
        ar = float(np.mean(MATERIALS[b["facade"]][0]) / np.mean(MATERIALS[roof][0]))
        out.append(f"{roof} / {b['facade']}: albedo ratio {ar:.2f}, contrast {ar * ratio:.2f}")
    return head, out


def variants(store, scene) -> dict:
    """Per variant and majority truth class: (patches, cells not flagged by the stored run) it would add."""
    from offnadir.change import outline as OL
    from offnadir.simulate import truth as T

    src = RF.sources(store)
    d = src["d"]
    pr = profile(store, scene)
    cls = HS._read(scene / "truth_change_class.tif")
    occ = HS._read(scene / "truth_occluded.tif")
    cells = (d["vis"][0] == 1) & (d["vis"][d["t"]] == 1) & (occ == 0)
    pos = np.searchsorted(d["ids"], pr["eids"])
    with np.errstate(all="ignore"):
        lost = OL.rim_lost(d["b1"][pos], d["t1"][pos]) >= 1
        rules = {"went": (pr["went"] >= 1) & ~lost,
                 "weakened": (np.minimum(np.log2(np.maximum(1.0, pr["b0"]) / pr["t0"]), pr["moved"]) >= 1)
                 & ~lost & ~(pr["went"] >= 1),
                 "facade": (pr["facade"] >= 1) & ~lost & ~(pr["went"] >= 1)}
    out = {}
    for name, sel in rules.items():
        res = out.setdefault(name, {})
        for p in pr["eids"][sel]:
            m = (d["patch"] == p) & cells
            if not m.any():
                continue
            c = T.CLASSES[int(np.argmax(np.bincount(cls[m], minlength=len(T.CLASSES))))]
            a = res.setdefault(c, [0, 0])
            a[0] += 1
            a[1] += int((m & ~src["stored"]).sum())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hard", type=Path, default=Path("/tmp/eval_hard_sim"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--variants", action="store_true", help="the rim rules' outcome per elevated patch")
    ap.add_argument("--light", action="store_true", help="per roof also the facade's light and materials (truth)")
    a = ap.parse_args(argv)
    for s in a.seeds:
        store, scene = a.hard / f"hard{s}.zarr", a.hard / f"hard{s}"
        if not store.exists():
            sys.exit(f"{store} not found: run `python benchmarks/eval_hard_sim.py --work {a.hard} --seeds {s}` first")
        if a.variants:
            print(f"seed {s}: patches (cells not yet flagged) each rule would add, by truth class: "
                  + "; ".join(f"{k}: " + ", ".join(f"{c} {v[0]} ({v[1]})" for c, v in sorted(r.items()))
                              for k, r in variants(store, scene).items()))
            continue
        rows = roofs(store, scene)
        head, light = facade_light(scene, rows) if a.light else ("", [""] * len(rows))
        if head:
            print(f"seed {s}: {head}")
        for r, lt in zip(rows, light):
            print(f"seed {s}: raised roof, {r['cells']} cells, dh {r['dh']:.1f} m (move {r['move']:.1f} cells), found "
                  f"{r['found']:.2f} (" + ", ".join(f"{k} {v:.2f}" for k, v in r["by"].items())
                  + f"); patch {r['patch']}: "
                  f"b1 {r['b1']:.2f} t1 {r['t1']:.2f} | lit pairs: b0 {r['b0']:.2f} t0 {r['t0']:.2f}, new edge "
                  f"{r['moved']:.2f} at depth {r['depth']:.0f}, went {r['went']:.2f} | strip level dt {r['dt']:.2f} "
                  f"db {r['db']:.2f}, facade {r['facade']:.2f}" + (f" | {lt}" if lt else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
