"""Evaluation: flagged roofs under a shadow cast from outside them, and whether a riser explains it (issue 7, n4
ninth round; measured, nothing wired).

With one image per date an unchanged roof is flagged when a neighbour's change lays an unpredicted shadow on it
(R3 eighth round). The witness asked for: the roof's own outline cannot explain a shadow cast on it from
outside; an object that *rose* since the DSM (new, raised, a grown crown) up-sun can. This script measures,
on the stores of ``eval_hard_sim.py --work W``, per flagged elevated patch with at least
:data:`eval_roof_false_alarms.ROOF_MIN_FLAGGED` flagged scored cells (``--list`` shows those with at least
:data:`MIN_UNEXPLAINED` of their cells in an **unexplained target shadow**: ``truth_shadow`` at the target where
the old DSM, under the true target sun, predicts direct sun):

* ``oracle``: the share of that shadow cast by the risen objects at their true heights with the patch kept at its
  old height (old DSM, cells of the truth classes new / raised / tree grown lifted to ``dsm_epoch2``,
  :func:`offnadir.simulate.views.cast_shadows` under the true target sun) — the witness at its best;
* ``run``: the same with what the run knows: the ground cells it flags changed lifted by a height (the shadow
  ray's typical height, ``change_calibration.shadow_ray.typical_height_m``, or ``--quantile q``: that quantile
  of the old DSM's elevated heights above the 41-cell floor), under the run's estimated target sun; the share
  of the patch's cells in that new shadow (``--touching``: the flagged ground components within
  :data:`TOUCH_CELLS` of the patch left out, as the patch's own change);
* ``seen``: the share of the patch's predicted-lit cells the target's shadow classifier calls shadow
  (3 x 3 log-odds >= 0, ``eval_roof_unexplained.unexplained``).

Per world it totals, for ``oracle >= 1/2`` (on patches at least :data:`MIN_UNEXPLAINED` in an unexplained
shadow), ``run >= 1/2`` and ``seen >= 1/2`` (every patch), the unchanged and the changed patches / flagged cells
a veto would reach.

    python benchmarks/eval_roof_cast_shadow.py --hard W [--seeds 0 1 2] [--quantile 90] [--list]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_hard_sim as HS  # noqa: E402
import eval_roof_false_alarms as RF  # noqa: E402

#: least share of a patch's cells in an unexplained target shadow for it to be listed
MIN_UNEXPLAINED = 0.2
#: the truth classes that rose since the DSM (simulate.truth: new, raised, tree grown)
RISEN = (1, 3, 6)
#: ``--touching``: flagged ground within this many cells of a patch is taken as the patch's own change
TOUCH_CELLS = 2
#: the shadow march's tolerance (m), as the simulator renders its shadows
TOL = 0.3


def lifted(h_old, where, h_new):
    """The old DSM with the ``where`` cells lifted to ``h_new`` (never lowered)."""
    return np.where(where, np.maximum(h_old, h_new), h_old)


def new_shadow(h_old, h_lifted, sun, cell: float):
    """Cells shadowed under ``sun`` (a grid sun vector) on ``h_lifted`` but lit on ``h_old``."""
    from offnadir.simulate.views import cast_shadows

    return (cast_shadows(h_lifted, sun, cell, TOL) == 1) & (cast_shadows(h_old, sun, cell, TOL) == 0)


def explained(unexplained, cast, patch_mask) -> float:
    """Share of the patch's ``unexplained`` cells that ``cast`` covers (NaN without any)."""
    u = unexplained & patch_mask
    return float((u & cast).sum() / u.sum()) if u.any() else math.nan


def world(store: Path, scene: Path, quantile=None, touching: bool = False) -> dict:
    import xarray as xr
    from scipy import ndimage as ndi

    import eval_roof_unexplained as RU
    from offnadir.simulate.grid import Grid
    from offnadir.simulate.sun import sun_vector

    meta = json.loads((scene / "scene.json").read_text())
    g, cell = meta["grid"], float(meta["cell"])
    north = Grid(g["crs"], g["x0"], g["y0"], g["cell"], int(g["shape"][0]), int(g["shape"][1])).north_angle()
    v = meta["views"]["target"]
    sun_true = sun_vector(v["sun_elevation_deg"], v["sun_azimuth_deg"] + north)
    h1 = HS._read(scene / "dsm.tif").astype(np.float64)
    h2 = HS._read(scene / "dsm_epoch2.tif").astype(np.float64)
    cls = HS._read(scene / "truth_change_class.tif")
    from offnadir.simulate.views import cast_shadows

    unexpl = ((HS._read(scene / "truth_shadow.tif") & 2) > 0) & (cast_shadows(h1, sun_true, cell, TOL) == 0)
    oracle = new_shadow(h1, lifted(h1, np.isin(cls, RISEN), h2), sun_true, cell)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        sun = json.loads(ds.attrs["change_sun"])[1]
        cal = ds.attrs.get("change_calibration", {})
        cal = json.loads(cal) if isinstance(cal, str) else cal
        dsm = np.asarray(ds["dsm"].values, np.float64)
        el = np.asarray(ds["elevated"].values) == 1
        flagged_ground = (np.asarray(ds["change"].values[1]) == 1) & ~el
    floor = ndi.minimum_filter(dsm, size=41)
    if quantile is None:
        h = float(cal.get("shadow_ray", cal).get("typical_height_m") or math.nan)
    else:
        h = float(np.percentile((dsm - floor)[el], quantile))
    run_sun = sun_vector(sun["elevation"], sun["azimuth"] + sun["grid_north_deg"])
    run = new_shadow(dsm, lifted(dsm, flagged_ground, floor + h), run_sun, cell)
    comp = ndi.label(flagged_ground)[0] if touching else None

    src = RF.sources(store)
    d = src["d"]
    roof, _, changed = RF.truth(scene, meta, d)
    un, _, _, arr = RU.seen(store, 1)
    ill = arr["arr"]["illumination"][1]
    rows = []
    for pid in np.unique(d["patch"][src["stored"] & d["elev"]]):
        m = d["patch"] == pid
        f = m & src["stored"]
        nu, nc = int((f & roof).sum()), int((f & changed).sum())
        if nu + nc < RF.ROOF_MIN_FLAGGED:
            continue
        own = np.zeros(m.shape, bool)
        if touching:  # the run's flagged ground touching the patch is left out: most likely its own change
            own = np.isin(comp, np.unique(comp[ndi.binary_dilation(m, iterations=TOUCH_CELLS) & (comp > 0)]))
        cast = run if not own.any() else new_shadow(dsm, lifted(dsm, flagged_ground & ~own, floor + h), run_sun, cell)
        lit = m & (ill != 0) & (ill != 255)
        rows.append(dict(id=int(pid), cells=int(m.sum()), unchanged=nu, changed=nc,
                         truth=int(np.bincount(cls[m], minlength=8).argmax()),
                         sources=",".join(k for k in RF.NAMES if (f & src[k]).sum() >= 0.5 * f.sum()),
                         unexplained=float((unexpl & m).sum() / m.sum()), oracle=explained(unexpl, oracle, m),
                         run=float((cast & m).sum() / m.sum()), seen=float((un[1] & lit).sum() / max(lit.sum(), 1))))
    return dict(rows=rows, height=h, flagged_unchanged=int((roof & src["stored"]).sum()))


def totals(rows, key: str, bound: float = 0.5, unexplained: float = 0.0) -> dict:
    """Patches and flagged cells with ``key`` >= ``bound`` (and at least ``unexplained`` of their cells in an
    unexplained shadow), split unchanged / changed (the patch's majority)."""
    out = {"unchanged": [0, 0], "changed": [0, 0]}
    for r in rows:
        if np.nan_to_num(r[key]) >= bound and r.get("unexplained", 1.0) >= unexplained:
            k = "unchanged" if r["unchanged"] > r["changed"] else "changed"
            out[k][0] += 1
            out[k][1] += r[k]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hard", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quantile", type=float, default=None, help="the run's risen ground lifted by this quantile of "
                                                                 "the old elevated heights (default: typical height)")
    ap.add_argument("--touching", action="store_true", help="the run's flagged ground touching a patch is not a "
                                                             "caster for it (its own change)")
    ap.add_argument("--list", action="store_true", help="list the patches with an unexplained shadow")
    a = ap.parse_args(argv)
    for s in a.seeds:
        r = world(a.hard / f"hard{s}.zarr", a.hard / f"hard{s}", a.quantile, a.touching)
        if a.list:
            for q in r["rows"]:
                if q["unexplained"] < MIN_UNEXPLAINED:
                    continue
                print(f"  seed {s} patch {q['id']:8d} {'UNCH' if q['unchanged'] > q['changed'] else 'CHG '} truth "
                      f"{q['truth']} cells {q['cells']:5d} flagged unchanged {q['unchanged']} changed {q['changed']} "
                      f"[{q['sources']}] unexplained {q['unexplained']:.2f} oracle {q['oracle']:.2f} run {q['run']:.2f} "
                      f"seen {q['seen']:.2f}")
        line = "; ".join(f"{k} >= 1/2: unchanged {t['unchanged'][0]} patches / {t['unchanged'][1]} cells, changed "
                         f"{t['changed'][0]} / {t['changed'][1]}" for k in ("oracle", "run", "seen")
                         for t in [totals(r["rows"], k, unexplained=MIN_UNEXPLAINED if k == "oracle" else 0.0)])
        print(f"seed {s}: unchanged-roof cells flagged {r['flagged_unchanged']}, run height {r['height']:.2f} m | {line}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
