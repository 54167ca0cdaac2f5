"""What the demo found, object by object, against the simulator's truth.

The cell scores of :mod:`offnadir.change.evaluate` leave out the cells a view does not see, so a
changed building that the target view cannot see at all does not count as a miss there, while
the quicklook still draws its truth outline next to no red. This module tells a user, for every
changed object of a simulated scene, which of three things happened:

* **found**: at least half of its observable cells are flagged (the majority rule of
  :data:`offnadir.change.reference.OBJECT_FOUND`, applied to what the map can decide);
* **missed**: most of it is observable and less than half of that is flagged;
* **not observable**: less than half of its cells can be decided (hidden in the base or the
  target view, or outside an image); a map cannot show a majority of such an object whatever
  its rules, so it is neither found nor missed. The view that hides it is named.

It also splits the flagged cells outside every truth object into those that lie where a change
*shows* on unchanged ground (the target sees a different cast shadow, or a different lean of
the changed object over its neighbours, than the epoch-1 DSM predicts: the simulator's two
surfaces under the target's sun and its occlusion bits) and the rest (false alarms proper).
The first kind is the image evidence of a real change seen beside its footprint, not noise; as
the map decides whole base patches, the flags in patches holding such cells are counted too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from offnadir.change.reference import OBJECT_FOUND

log = logging.getLogger("offnadir.demo_truth")

#: truth_change_class codes (offnadir.simulate.truth)
CLASS_NAMES = {1: "new", 2: "demolished", 3: "raised", 4: "re-roofed", 5: "tree cut", 6: "tree grown",
               7: "height change below one pixel of parallax"}
#: the map's codes (offnadir.store): 0 unchanged, 1 changed, 2 unobservable
UNOBSERVABLE = 2
#: the store's visibility codes
HIDDEN, OUTSIDE = 0, 2


def _read(path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def object_masks(scene_dir, shape) -> list[dict]:
    """The changed objects of a simulated scene: every changed building of ``scene.json`` (its
    footprint's changed cells), then each 8-connected blob of changed cells left outside them,
    per truth class (trees, small changes). Each: ``name``, ``kind``, ``mask`` (bool on the grid)."""
    from rasterio.features import rasterize
    from rasterio.transform import Affine
    from scipy import ndimage as ndi

    scene_dir = Path(scene_dir)
    meta = json.loads((scene_dir / "scene.json").read_text())
    cls = _read(scene_dir / "truth_change_class.tif")
    if cls.shape != tuple(shape):
        raise ValueError(f"{scene_dir}: truth {cls.shape} is not on the store's grid {tuple(shape)}")
    transform = Affine(*meta["grid"]["transform"][:6])
    objects, claimed = [], np.zeros(cls.shape, bool)
    for b in meta.get("buildings", []):
        if b.get("change", "none") == "none":
            continue
        polys = [{"type": "Polygon", "coordinates": [[tuple(p) for p in ring]]} for ring in b["footprint_xy"]]
        foot = rasterize([(p, 1) for p in polys], out_shape=cls.shape, transform=transform, fill=0,
                         dtype="uint8").astype(bool)
        m = foot & (cls > 0)
        if not m.any():
            continue
        h2 = b.get("height_epoch2_m")
        height = f"{b['roof_top_m']:.1f} m" + (f" -> {h2:.1f} m" if h2 is not None else "")
        objects.append({"name": f"building {b['id']} ({height})", "kind": b["change"], "mask": m})
        claimed |= m
    for code, name in CLASS_NAMES.items():
        lab, n = ndi.label((cls == code) & ~claimed, structure=np.ones((3, 3), bool))
        for k, sl in enumerate(ndi.find_objects(lab), 1):
            m = lab == k
            i, j = (int(round(float(c))) for c in ndi.center_of_mass(m))
            objects.append({"name": f"{name} at row {i}, col {j}", "kind": name, "mask": m})
    return objects


def _target_sun(scene_dir):
    """(epoch-1 DSM, epoch-2 DSM, the target's sun vector on the grid, cell size)."""
    from offnadir.simulate.grid import Grid
    from offnadir.simulate.sun import sun_vector

    scene_dir = Path(scene_dir)
    meta = json.loads((scene_dir / "scene.json").read_text())
    g = meta["grid"]
    grid = Grid(g["crs"], float(g["x0"]), float(g["y0"]), float(g["cell"]), int(g["shape"][0]), int(g["shape"][1]))
    t = meta["views"]["target"]
    sun = sun_vector(float(t["sun_elevation_deg"]), float(t["sun_azimuth_deg"]) + grid.north_angle())
    z1 = _read(scene_dir / "dsm.tif").astype(np.float64)
    z2 = _read(scene_dir / "dsm_epoch2.tif").astype(np.float64)
    return z1, z2, sun, grid.cell


def own_shadow_change(scene_dir, mask) -> np.ndarray:
    """Cells whose shading under the target's sun changes when only the object ``mask`` takes its
    epoch-2 heights (its new or missing cast shadow), outside the object. Bool on the grid."""
    from offnadir.simulate.views import cast_shadows

    z1, z2, sun, cell = _target_sun(scene_dir)
    z = np.where(mask, z2, z1)
    return (cast_shadows(z1, sun, cell).astype(bool) != cast_shadows(z, sun, cell).astype(bool)) & ~mask


def side_effects(scene_dir) -> np.ndarray:
    """Unchanged cells where the target image differs from what the epoch-1 DSM predicts because
    of a change nearby: cast shadow of the epoch-2 surface under the target's sun != that of the
    epoch-1 surface under the same sun, or hidden in the target over one surface and not the
    other (truth_occluded bits 2 and 4). Bool on the grid."""
    from offnadir.simulate.views import cast_shadows

    z1, z2, sun, cell = _target_sun(scene_dir)
    shade = cast_shadows(z1, sun, cell).astype(bool) != cast_shadows(z2, sun, cell).astype(bool)
    occ = _read(Path(scene_dir) / "truth_occluded.tif")
    lean = ((occ & 2) > 0) != ((occ & 4) > 0)
    return (shade | lean) & (_read(Path(scene_dir) / "truth_change_class.tif") == 0)


def object_status(m, change, vis: dict, base: str, image: str) -> dict:
    """One object (bool mask ``m``) in the map ``change`` (0/1, 2 or NaN undecided) of ``image``:
    cells, observable share, flagged share of its observable cells, status (module docstring) and,
    when not observable, which view hides it (``vis``: image name -> the store's visibility codes)."""
    n = int(m.sum())
    decided = m & (change != UNOBSERVABLE) & np.isfinite(change)
    nd = int(decided.sum())
    hit = int((decided & (change == 1)).sum())
    if nd > 0 and hit >= OBJECT_FOUND * nd:
        status = "found"
    elif nd < OBJECT_FOUND * n:
        status = "not observable"
    else:
        status = "missed"
    why = ""
    if status == "not observable":
        parts = []
        for name in (base, image):
            v = vis[name][m]
            if (v == HIDDEN).mean() >= 0.5:
                parts.append(f"hidden in the {name} view ({100 * (v == HIDDEN).mean():.0f} %)")
            elif (v == OUTSIDE).mean() >= 0.5:
                parts.append(f"outside the {name} image")
        why = "; ".join(parts) or "its cells are undecided"
    return {"cells": n, "observable": nd / n if n else 0.0, "flagged": hit / nd if nd else float("nan"),
            "status": status, "why": why}


def summarize(store, scene_dir, image: str = "target") -> dict:
    """Per changed object: cells, observable share, flagged share of the observable cells, status
    and (when not observable) which view hides it; and the flagged cells outside every object,
    split by :func:`side_effects`."""
    from offnadir.store import open_dataset

    ds = open_dataset(store)  # stored codes (change 2 = unobservable, visible 2 = outside)
    change = np.asarray(ds["change"].sel(image=image).values)
    vis = {str(n): np.asarray(ds["visible"].sel(image=n).values) for n in ds["image"].values}
    base = str(ds["image"].values[0])
    objects = object_masks(scene_dir, change.shape)
    rows, any_truth = [], np.zeros(change.shape, bool)
    hidden = np.zeros(change.shape, bool)
    for o in objects:
        m = o["mask"]
        any_truth |= m
        r = object_status(m, change, vis, base, image)
        if r["status"] == "not observable":
            hidden |= m
            # what the target can still see of it: its new or missing cast shadow on observable cells
            sh = own_shadow_change(scene_dir, m) & (change != UNOBSERVABLE) & np.isfinite(change)
            if sh.any():
                r["why"] += (f"; its changed cast shadow falls on {int(sh.sum())} observable cells, "
                             f"{int((sh & (change == 1)).sum())} of them flagged")
        rows.append({"name": o["name"], "kind": o["kind"]} | r)
    outside = (change == 1) & ~any_truth
    side = side_effects(scene_dir)
    shadow = _read(Path(scene_dir) / "truth_shadow.tif")  # bits: 1 no sun at epoch 1, 2 no sun at epoch 2
    sun_moved = ((shadow & 1) > 0) != ((shadow & 2) > 0)
    out = {"image": image, "objects": rows, "flagged_outside": int(outside.sum()),
           "flagged_outside_side_effects": int((outside & side).sum()),
           "flagged_outside_shade_differs": int((outside & ~side & sun_moved).sum()),
           "flagged": int((change == 1).sum()), "not_observable_mask": hidden}
    if "patch" in ds:  # decisions are per base patch: a patch that holds such cells is flagged whole
        patch = np.asarray(ds["patch"].values)
        touched = np.unique(patch[outside & side])
        out["flagged_outside_side_patches"] = int((outside & np.isin(patch, touched)).sum())
    for r in rows:
        log.info("%s %s: %s (%d cells, %.0f %% observable)", r["kind"], r["name"], r["status"], r["cells"],
                 100 * r["observable"])
    return out


def format_summary(s: dict) -> str:
    """Lines a person reads: one per object, then the flags outside them."""
    lines = [f"changed objects (simulator truth) in the {s['image']} image: found = at least half of the "
             "observable cells flagged"]
    for r in s["objects"]:
        fl = "   -" if r["observable"] == 0 else f"{100 * r['flagged']:3.0f} %"
        lines.append(f"  {r['status']:<15s}{r['kind']:<11s}{r['name']:<32s}{r['cells']:6d} cells, "
                     f"{100 * r['observable']:3.0f} % observable, {fl} flagged" + (f"  ({r['why']})" if r["why"] else ""))
    counts = {k: sum(r["status"] == k for r in s["objects"]) for k in ("found", "missed", "not observable")}
    lines.append(f"  {counts['found']} found, {counts['missed']} missed, {counts['not observable']} not observable "
                 "from these two views (no rule can flag cells a view does not see)")
    n, side = s["flagged_outside"], s["flagged_outside_side_effects"]
    if s["flagged"]:
        shade = s.get("flagged_outside_shade_differs", 0)
        lines.append(f"flagged cells outside every changed object: {n} of {s['flagged']}; {side} where a change "
                     "shows on unchanged ground in the target (its new or missing cast shadow, or its lean over "
                     f"neighbours); {n - side} false alarms proper, {shade} of them lit in one image and in "
                     "shadow in the other")
        if "flagged_outside_side_patches" in s:
            lines.append(f"  decided per base patch: {s['flagged_outside_side_patches']} of the {n} lie in patches "
                         "holding cells where a change shows")
    return "\n".join(lines)
