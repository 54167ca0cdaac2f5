"""The demo's per-object account: found / missed / not observable, and where a change shows beside
its footprint (offnadir.demo_truth)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from offnadir.demo_truth import format_summary, object_masks, object_status, own_shadow_change, side_effects


def _maps(shape=(20, 20)):
    change = np.zeros(shape, np.float32)
    vis = {"base": np.ones(shape, np.float32), "target": np.ones(shape, np.float32)}
    return change, vis


def test_object_status_found_missed_and_hidden():
    change, vis = _maps()
    m = np.zeros(change.shape, bool)
    m[2:8, 2:8] = True  # 36 cells
    # all observable, 18 of 36 flagged: a majority is "at least half" -> found
    change[2:5, 2:8] = 1
    r = object_status(m, change, vis, "base", "target")
    assert r["status"] == "found" and r["observable"] == 1.0 and r["flagged"] == 0.5
    # one flag fewer: missed
    change[4, 7] = 0
    assert object_status(m, change, vis, "base", "target")["status"] == "missed"
    # the whole object hidden in the target view: the map says 2 there -> not observable, named view
    change[m] = 2
    vis["target"][m] = 0
    r = object_status(m, change, vis, "base", "target")
    assert r["status"] == "not observable" and r["observable"] == 0.0
    assert "hidden in the target view (100 %)" in r["why"] and "base" not in r["why"]
    # a third of it observable and all of that flagged: found (the line prints 33 % observable)
    change[2:4, 2:8] = 1
    r = object_status(m, change, vis, "base", "target")
    assert r["status"] == "found" and abs(r["observable"] - 1 / 3) < 1e-9
    # a third observable, none flagged: not observable rather than missed
    change[2:4, 2:8] = 0
    assert object_status(m, change, vis, "base", "target")["status"] == "not observable"
    # outside the base image
    vis["target"][m] = 1
    vis["base"][m] = 2
    change[m] = 2
    assert "outside the base image" in object_status(m, change, vis, "base", "target")["why"]


def test_format_summary_counts_every_status():
    rows = [{"name": "building 1 (6.0 m)", "kind": "new", "cells": 10, "observable": 0.0, "flagged": float("nan"),
             "status": "not observable", "why": "hidden in the target view (100 %)"},
            {"name": "building 2 (9.0 m)", "kind": "raised", "cells": 10, "observable": 1.0, "flagged": 0.9,
             "status": "found", "why": ""}]
    text = format_summary({"image": "target", "objects": rows, "flagged_outside": 7,
                           "flagged_outside_side_effects": 3, "flagged_outside_shade_differs": 2, "flagged": 16,
                           "flagged_outside_side_patches": 5})
    assert "1 found, 0 missed, 1 not observable" in text
    assert "hidden in the target view" in text and "7 of 16; 3 where a change shows" in text
    assert "4 false alarms proper, 2 of them" in text and "5 of the 7 lie in patches" in text


def test_side_effects_lie_within_the_reach_of_a_change(tmp_path):
    """On a simulated scene, every cell where the target sees a change beside its footprint (another
    cast shadow, another lean) lies within the physical reach of a changed object: its tallest
    surface's shadow length under the target's sun, or its relief displacement in the target view.
    The changed buildings' own cells are the objects, every one of them named once."""
    import json

    from offnadir.simulate import simulate

    sc = simulate(tmp_path / "scene", seed=2, size=160)
    side = side_effects(tmp_path / "scene")
    meta = json.loads((tmp_path / "scene" / "scene.json").read_text())
    cls = sc.change_class
    assert side.any() and not (side & (cls > 0)).any()
    t = meta["views"]["target"]
    objects = {int(o["name"].split()[1]): o["mask"] for o in object_masks(tmp_path / "scene", cls.shape)
               if o["name"].startswith("building")}
    # a changed building moves shadows only down-sun of it, by at most its height / tan(sun elevation),
    # and its lean only away from the satellite, by at most its height x tan(off-nadir)
    down_sun = np.radians(t["sun_azimuth_deg"] + 180.0)
    away = np.radians(t["azimuth_deg_at_centre"] + 180.0)
    near = np.zeros(cls.shape, bool)
    for b in meta["buildings"]:
        if b["id"] not in objects:
            continue
        own_reach = np.zeros(cls.shape, bool)
        top = max(b["roof_top_m"], (b["height_epoch2_m"] or 0.0) + b["roof_top_m"] - b["height_m"])
        for az, length in ((down_sun, top / np.tan(np.radians(t["sun_elevation_deg"]))),
                           (away, top * np.tan(np.radians(t["off_nadir_deg_at_centre"] + 1.0)))):
            for d in np.arange(0.0, length / meta["cell"] + 1.0, 0.5):
                di, dj = int(round(-np.cos(az) * d)), int(round(np.sin(az) * d))  # rows go south
                own_reach |= ndi.shift(objects[b["id"]].astype(np.uint8), (di, dj), order=0, cval=0).astype(bool)
        near |= own_reach
        # its own shadow change: none for a re-roof (same heights), some down-sun for a height change
        own = own_shadow_change(tmp_path / "scene", objects[b["id"]])
        assert own.any() == (b["change"] != "reroofed"), b
        assert not (own & ~ndi.binary_dilation(own_reach, structure=np.ones((3, 3), bool), iterations=3)).any()
    # + 3 cells: grid north differs from true north by the meridian convergence (< 1 deg here) and
    # cells are rounded
    near = ndi.binary_dilation(near, structure=np.ones((3, 3), bool), iterations=3)
    assert not (side & ~near).any()
    assert near.mean() < 0.6  # the bound is a real constraint (not most of the scene)
    # ... and it is local: most of the scene is not touched
    assert side.mean() < 0.2
    objects = object_masks(tmp_path / "scene", cls.shape)
    assert {o["kind"] for o in objects} <= {"new", "demolished", "raised", "reroofed"}  # the default preset
    changed = sorted(int(i) for ids in meta["changes"].values() for i in ids)
    named = sorted(int(o["name"].split()[1]) for o in objects if o["name"].startswith("building"))
    assert named == changed
    union = np.zeros(cls.shape, int)
    for o in objects:
        union += o["mask"]
    assert union.max() == 1 and ((union == 1) == (cls > 0)).all()
