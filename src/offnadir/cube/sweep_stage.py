"""The height-sweep stage: same-date image groups measure how far the surface moved from the DSM.

Runs after the cube is written and before change detection (``offnadir run``/``detect``). For
every date group (cube coordinate ``date_group``) with at least two images, one dask task per
(tile, group) sweeps heights (:func:`offnadir.cube.sweep.sweep_tile`) and writes its region.

Contract with the change stage (which reads these variables when present), all written to the
same Zarr store before change detection runs:

* ``dh`` float32 (image, y, x): best surface height minus the DSM height, metres; every image of a
  group gets the group's map; NaN for images in no group of >= 2, for cells hidden/outside
  (cube ``visible`` != 1) in any image of the group, DSM nodata, and where no maximum of the
  agreement lies inside the swept range.
* ``dh_sigma`` float32 (image, y, x): 1-sigma uncertainty of ``dh`` in metres (derivation in
  :mod:`offnadir.cube.sweep`); NaN where ``dh`` is.
* ``dh_score`` float32 (image, y, x): the group's agreement (mean pairwise windowed NCC, -1..1)
  at the chosen height; NaN where ``dh`` is.
* coordinate ``date_group`` (image), int: images of one calendar date share a group.
* store attribute ``height_sweep`` (JSON): groups, pair geometry (B/H), step, window, margin and
  the height range swept per tile.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from offnadir.cube import sweep
from offnadir.cube import sweep_small

log = logging.getLogger("offnadir.cube.sweep_stage")

SWEEP_VARS = {
    "dh": {"long_name": "height change: best-agreeing surface height of the image's date group minus the DSM height",
           "units": "m"},
    "dh_sigma": {"long_name": "1-sigma uncertainty of dh (agreement-curve curvature and sub-step interpolation)",
                 "units": "m"},
    "dh_score": {"long_name": "agreement of the date group's images at the chosen height (mean pairwise windowed "
                              "normalised cross-correlation)", "units": "1"},
}


def multi_view_groups(images) -> list[list[int]]:
    """Image indices of every date group with at least two images."""
    from offnadir.cube.dataset import date_groups

    g = date_groups(images, say=False)
    return [[int(k) for k in np.flatnonzero(g == v)] for v in np.unique(g) if (g == v).sum() >= 2]


def sweep_region(path: str, plan, tile, geom: dict, relief: float, dsm_test: str = sweep.DSM_TEST,
                 bound: float = sweep_small.DH_BOUND_M) -> dict:
    """One task: sweep one group over one tile and write its region of dh, dh_sigma, dh_score
    (``dsm_test``, ``bound``: :func:`offnadir.cube.sweep.sweep_tile`'s)."""
    import zarr

    from offnadir.store import _quiet_zarr

    members = geom["members"]
    region = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    i0, i1, j0, j1 = sweep.visibility_bounds(plan, tile, geom, relief, dsm_test)
    with _quiet_zarr():
        g = zarr.open_group(path, mode="r+", use_consolidated=False)
        vis = np.stack([np.asarray(g["visible"][k, i0:i1, j0:j1]) for k in members])
        res = sweep.sweep_tile(plan, tile, geom, relief, visible=vis, dsm_test=dsm_test, bound=bound)
        for name in SWEEP_VARS:
            for k in members:
                g[name][(k,) + region] = res[name]
    return {"tile": [tile.ti, tile.tj], "members": members, "z0": res["z0"], "n": res["n"], "step": res["step"],
            "measured": int(np.isfinite(res["dh"]).sum()), "regions": res["regions"], "edge": res["edge"]}


def _layout(path: Path, plan) -> None:
    """Add the (empty, NaN) sweep variables to the store, replacing earlier ones."""
    import dask.array as da
    import xarray as xr
    import zarr

    from offnadir.store import _quiet_zarr, encoding, zarr_format

    fmt = zarr_format(path)  # the store's own format (v2 by default, v3 when asked)
    n_img = len(plan.images)
    cy, cx = plan.chunks()
    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        for name in SWEEP_VARS:
            if name in g:
                del g[name]
        data = {}
        for name, attrs in SWEEP_VARS.items():
            arr = da.full((n_img, sum(cy), sum(cx)), np.nan, chunks=((1,) * n_img, cy, cx), dtype=np.float32)
            data[name] = (("image", "y", "x"), arr, {**attrs, "grid_mapping": "spatial_ref"})
        tmpl = xr.Dataset(data)
        tmpl.attrs = dict(g.attrs)  # xarray's append mode rewrites the group attributes
        enc = {n: encoding(fmt, (1, cy[0], cx[0]), np.nan) for n in SWEEP_VARS}
        tmpl.to_zarr(str(path), mode="a", compute=False, zarr_format=fmt, consolidated=False, encoding=enc)


#: what each test of the DSM height does (recorded in the ``height_sweep`` attribute)
DSM_TEST_TEXT = {
    "window": "window: dh = 0 where the agreement at the DSM heights is within dsm_test_standard_errors * "
              "(1 - s*^2) / sqrt(window cells) of the best agreement s*",
    "region": "region: the window test, then per connected region of cells that moved (neighbours within a storey "
              "of each other) the mean Fisher-z lead of the agreement at the region's moved surface (its median "
              "offset, or its median height) over the DSM heights must exceed the Sidak allowance for the offsets "
              "tried times its standard error from the effective samples; regions that fail get dh = 0 with "
              "dh_sigma >= |dh they claimed| / dsm_test_standard_errors",
    "prediction": "prediction: the window test, then no measurement where the DSM height is not kept and the best "
                  "agreement does not beat, by the same margin, the DSM's prediction at the best height (each "
                  "image's samples at the DSM heights read along the other's rays), wherever the best height lies "
                  "beyond its agreement peak's full width at half maximum from the DSM height",
    "off_level": "off_level: the window test, then dh = 0 (dh_sigma >= |best - DSM height| / "
                 "dsm_test_standard_errors) where the best height lies one cell of relative displacement or more from "
                 "the DSM height and, on the window cells whose DSM height is not within that of the best height, the "
                 "agreement at the DSM heights is within the same margin of the best height's",
    "on_level": "on_level: the window test, then dh = best - DSM height where the window test kept the DSM height, "
                "the best height lies one cell of relative displacement or more from it, and a window whose cells "
                "within a storey of the cell's DSM height are moved by that offset (the others at their DSM heights; "
                "cells beside a wall out of both windows) "
                "beats the agreement at the DSM heights by z * (1 - s^2) / sqrt(cells), z the Sidak allowance of "
                "dsm_test_standard_errors for the candidate heights a cell of relative displacement apart",
}


def sweep_store(path, plan, *, client, quiet: bool = False, dsm_test: str = sweep.DSM_TEST,
                bound: float = sweep_small.DH_BOUND_M) -> dict | None:
    """Run the height sweep for every multi-view date group and write it to the store at ``path``.
    Returns the summary stored in the ``height_sweep`` attribute (None when no date has two images).
    ``dsm_test``: the test of the DSM height (config ``height_sweep.dsm_test``;
    :func:`offnadir.cube.sweep.sweep_tile`); ``bound``: the change stage's dh bound (config
    ``change.elevated_height``), for the second window at a changed object's edge."""
    import dask
    import zarr

    from offnadir.cluster import run_tasks
    from offnadir.store import _quiet_zarr, location

    path = location(path)  # a URL (s3://...) stays text
    groups = multi_view_groups(plan.images)
    if not groups:
        log.info("height sweep: no acquisition date has two or more images; no dh written (give dates with "
                 "`date:` in the config or --date when images of one date lack them)")
        return None
    relief = float(plan.h_max - plan.h_min)
    geoms = [sweep.pair_geometry(plan, m) for m in groups]
    names = [im.name for im in plan.images]
    for geom in geoms:
        log.info("height sweep: group %s: B/H %s, step %.3f m (%.2f cell of relative displacement), %dx%d-cell "
                 "window, candidate heights from the scene's lowest DSM height %.1f m - %d steps to its highest %.1f m "
                 "+ %d steps in every tile (%d heights)", [names[k] for k in geom["members"]],
                 ", ".join(f"{b:.3f}" for b in geom["base_to_height"]), geom["step_m"], sweep.STEP_FRACTION,
                 2 * sweep.WINDOW_RADIUS + 1, 2 * sweep.WINDOW_RADIUS + 1, plan.h_min, sweep.MARGIN_STEPS,
                 plan.h_max, sweep.MARGIN_STEPS, sweep.height_range(plan.h_min, plan.h_max, geom["step_m"])[1])
    log.info("height sweep: test of the DSM height: %s%s", DSM_TEST_TEXT[dsm_test],
             " (config height_sweep.dsm_test)" if dsm_test != sweep.DSM_TEST else " (the default)")
    edge = _edge_text(dsm_test, bound)
    if edge:
        log.info("height sweep: %s", edge)
    _layout(path, plan)
    plan_node = dask.delayed(plan, pure=True, traverse=False)
    tasks = [dask.delayed(sweep_region, pure=False)(str(path), plan_node, t, geom, relief, dsm_test, bound)
             for t in plan.tiles() for geom in geoms]
    if not quiet:
        print(f"offnadir: height sweep, {len(groups)} date group(s) with >= 2 images, {len(tasks)} tasks",
              file=sys.stderr)
    t0 = time.perf_counter()
    results = run_tasks(client, tasks, desc="height sweep", quiet=quiet)
    elapsed = time.perf_counter() - t0
    summary = {
        "groups": [{"images": [names[k] for k in geom["members"]], "pairs": geom["pairs"],
                    "base_to_height": geom["base_to_height"], "step_m": geom["step_m"]} for geom in geoms],
        "step_fraction_of_cell": sweep.STEP_FRACTION,
        "window_cells": 2 * sweep.WINDOW_RADIUS + 1,
        "margin_steps": sweep.MARGIN_STEPS,
        "dsm_test_standard_errors": sweep.SE_FACTOR,
        "dsm_test": DSM_TEST_TEXT[dsm_test],
        "second_window": edge,
        "scene_relief_m": relief,
        "seconds": elapsed,
        "tiles": [{"tile": r["tile"], "images": [names[k] for k in r["members"]], "z_min": r["z0"],
                   "z_max": r["z0"] + (r["n"] - 1) * r["step"] if r["n"] else None,
                   "heights": r["n"], "cells_measured": r["measured"], "regions_tested_kept": r.get("regions"),
                   "second_window_edge_narrow_taken_floored": r.get("edge")}
                  for r in results if isinstance(r, dict)],
    }
    z = [(t["z_min"], t["z_max"]) for t in summary["tiles"] if t["heights"]]
    if z:
        log.info("height sweep: swept ellipsoidal heights %.1f .. %.1f m over %d tile task(s) in %.1f s",
                 min(a for a, _ in z), max(b for _, b in z), len(z), elapsed)
    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
        g.attrs["height_sweep"] = json.dumps(summary, default=float)
        zarr.consolidate_metadata(str(path))
    return summary


def _edge_text(dsm_test: str, bound: float) -> str | None:
    """What the second, smaller window does (:mod:`offnadir.cube.sweep_small`), or None where it does not run."""
    if not (sweep_small.EDGE_SECOND and dsm_test in sweep_small.TESTS):
        return None
    r, rs = sweep.WINDOW_RADIUS, sweep_small.SMALL_RADIUS
    return (f"second window: where the {2 * r + 1}x{2 * r + 1} window answers within {bound:g} m (change.elevated_height) "
            f"while >= {sweep_small.quadrant(r):.3f} of it holds coherent answers beyond, the sweep runs again with a "
            f"{2 * rs + 1}x{2 * rs + 1} window (its own tests at that size); a beyond answer on the neighbours' side "
            "replaces the zero, otherwise the zero stays"
            + (f"; where it answers beyond while the DSM ranges over more than {bound:g} m in it (a narrow roof), "
               f"the {2 * rs + 1}x{2 * rs + 1} window's agreement read at two heights (the DSM's, the answer's): where the DSM's beats "
               f"the answer's by {sweep.SE_FACTOR:g} standard errors of a correlation, dh_sigma is floored at |dh|/{sweep.SE_FACTOR:g} (dh kept)"
               if sweep_small.NARROW_ROOF else ""))


class SweepStage:
    """Stage hook (see :func:`offnadir.pipeline.run_config`): the height sweep on the written cube."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def __call__(self, cfg, plan, out, client):
        check_tie_consistency(out, plan)
        dsm_test = (cfg.get("height_sweep") or {}).get("dsm_test") or sweep.DSM_TEST
        bound = (cfg.get("change") or {}).get("elevated_height") or sweep_small.DH_BOUND_M
        sweep_store(out, plan, client=client, quiet=self.quiet, dsm_test=dsm_test, bound=float(bound))


def check_tie_consistency(path, plan) -> list[str]:
    """Warn when the tie-point pass (store attribute ``tie_bias``) corrected some images of a date
    group and kept others as given: the group's relative orientation, which the sweep relies on,
    then carries the difference (on the Kahramanmaraş pair a 1.3 px correction of one image alone
    moved the median |dh| of stable cells from 0 to 1.9 m)."""
    import zarr

    from offnadir.store import _quiet_zarr

    with _quiet_zarr():
        raw = zarr.open_group(str(path), mode="r", use_consolidated=False).attrs.get("tie_bias")
    if not raw:
        return []
    try:
        entries = {e.get("image"): e for e in json.loads(raw)}
    except (TypeError, ValueError, AttributeError):
        return []
    msgs = []
    for members in multi_view_groups(plan.images):
        names = [plan.images[k].name for k in members]
        state = {n: ("base" if entries.get(n, {}).get("role") == "base" else bool(entries.get(n, {}).get("applied")))
                 for n in names if n in entries}
        moved = [n for n, v in state.items() if v is True]
        kept = [n for n, v in state.items() if v is False]
        if moved and kept:
            msgs.append(f"height sweep: the tie-point pass corrected {', '.join(moved)} but kept {', '.join(kept)} as "
                        "given, although they are one date group: their relative orientation may be off and dh "
                        "biased; give GCPs for every image of the group, or switch the tie-point pass off "
                        "(tie_bias.enabled: false / --no-tie-bias) to keep the vendor's relative orientation")
    for m in msgs:
        log.warning(m)
    return msgs
