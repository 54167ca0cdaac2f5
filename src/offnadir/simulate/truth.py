"""What counts as change in a simulated scene: a class per cell, and the structural truth.

``truth_change.tif`` (1 where the surface changed in height **or material**) is kept as it was. It
is a fair truth for the default scenes, whose second date keeps every unchanged surface's
texture and a consistent radiometry: a re-roofed building is then the one roof whose
reflectance changed. It is not fair for the harder scenes (``--preset hard``), and this module
says what is, rule by rule.

**Change classes** (``truth_change_class.tif``, uint8, :data:`CLASSES`):

====  ===================  ==========================================================================
code  name                 cells
====  ===================  ==========================================================================
0     none                 nothing changed
1     new                  footprint of a building that exists at epoch 2 only
2     demolished           footprint of a building that exists at epoch 1 only (rubble at ground level)
3     raised               footprint of a building with extra floors (same footprint, +3 to +9 m)
4     reroofed             footprint of a building with another roof material, same geometry
5     tree_cut             crown cells of a tree removed at epoch 2 (grass at terrain height)
6     tree_grown           crown cells of a tree grown 25-50 % taller
7     below_parallax       a cell of class 1-3, 5 or 6 whose height changed by less than ``dh_min``
====  ===================  ==========================================================================

**Structural truth** (``truth_structural.tif``, the height-change reference format of
:mod:`offnadir.change.reference`, as the Kahramanmaraş reference: 0 no change, 1 loss (the surface
went down: demolished, tree cut), 2 gain (it went up: new, raised, tree grown), 255 left out of
the scores; ``offnadir evaluate OUT.zarr truth_structural.tif`` recognises it and adds score AUC and
object recall): what the change stage is asked to find — surfaces that were built, demolished,
raised, cut or grown. The rules:

* **Re-roofs (4) are left out (255).** Same geometry, new material: a change of reflectance, not
  of structure. The structural truth is what the change stage is asked to find from geometry that
  survives any radiometry (built, demolished, raised). Whether a re-roof can be told from the hard
  preset's nuisance depends on the two materials, not on the method: the per-band gain, offset and
  gamma are monotone and keep the brightness order between a roof and its surroundings, only the
  re-texturing (a multiplicative field of strength 0.3) can flip it, and the simulator draws new
  roofs at least 0.08 in reflectance from the old (``scene._contrasting``), so a method comparing
  local order finds many of them (the census evidence of the change stage flagged 70 % of the
  re-roof cells of hard seed 0, with no false alarm on unchanged roofs). Counting them as change
  rewards that luck with materials; counting them as no change punishes a true detection. So
  they are scored neither way, and ``benchmarks/eval_hard_sim.py`` reports the flagged share.
* **Height changes of buildings (1, 2, 3) and trees (5, 6) count (1).** A surface that rose or fell
  moves its image by ``dh · tan(view zenith)`` in each view, changes what it hides and the shadow it
  casts: geometry, not radiometry, so it survives any re-texturing. A cut tree is a demolished
  crown; a grown tree is a raised crown. They are reported as their own classes, so building-only
  figures can be read apart.
* **Height changes below one pixel of parallax are left out (7 -> 255).** Comparing the dates
  through the epoch-1 DSM, a height change ``dh`` displaces the cell in the base view by
  ``dh · tan θ_b`` along the base view's azimuth and in the target view by ``dh · tan θ_t`` along
  the target's: the two samples of the cell disagree in position by
  ``dh · |tan θ_b · a_b − tan θ_t · a_t|`` (``a``: unit ground vectors of the view azimuths). Below
  one GSD of that relative parallax the change is invisible to geometry, so
  ``dh_min = GSD / |tan θ_b · a_b − tan θ_t · a_t|`` (0.9 m for the default views 5°/90° and
  25°/270° at 0.5 m), capped at the elevated threshold (2.5 m: an object that high appearing or
  disappearing is change whatever the views). It removes the rims of grown crowns (a few cm of
  change); every building change is >= 3 m.
* **Shadows are not change**, including a shadow that appears or disappears because a building
  was built or demolished next to it: the cell's surface did not change (``truth_shadow.tif``
  says which cells had no direct sun at either date; the evaluation reports false alarms there).
* **Cells hidden in either view are not scored** (``truth_occluded.tif`` != 0, as
  ``offnadir evaluate`` uses it): nothing of them is seen in one of the images.
* **Ground and vegetation tint, re-texturing, gains, noise** are nuisance, never change.
* There are no cars or other movers in the scene.
"""

from __future__ import annotations

import math

import numpy as np

#: change class codes of ``truth_change_class.tif``
CLASSES = {0: "none", 1: "new", 2: "demolished", 3: "raised", 4: "reroofed", 5: "tree_cut", 6: "tree_grown",
           7: "below_parallax"}
CODE = {v: k for k, v in CLASSES.items()}
#: classes counted as structural change; 4 and 7 are left out (IGNORE)
STRUCTURAL = (1, 2, 3, 5, 6)
IGNORE = 255


def parallax_dh_min(views: dict, gsd: float, cap: float) -> float:
    """Smallest height change (m) giving one GSD of relative parallax between the two views:
    ``gsd / |tan θ_b a_b − tan θ_t a_t|``, capped at ``cap``. ``views``: {"base"/"target": (zenith
    deg, azimuth deg)} at the scene centre."""
    vec = []
    for name in ("base", "target"):
        zen, az = (math.radians(float(a)) for a in views[name])
        vec.append((math.tan(zen) * math.sin(az), math.tan(zen) * math.cos(az)))
    p = math.hypot(vec[0][0] - vec[1][0], vec[0][1] - vec[1][1])
    return float(min(cap, gsd / p)) if p > 0 else float(cap)


def change_classes(e1, e2, buildings, tree_kind: int, dh_min: float) -> np.ndarray:
    """Class per cell (uint8, :data:`CLASSES`) from the two epoch rasters and the building records
    (``id``, ``change``). A cell gets a class > 0 exactly where its height or material changed
    (the part of a re-roofed building under unchanged rooftop boxes or panels keeps 0);
    ``ValueError`` if a changed cell is explained by no rule."""
    changed = (e1.dsm != e2.dsm) | (e1.material != e2.material)
    out = np.zeros(e1.dsm.shape, np.uint8)
    for b in buildings:
        if b["change"] == "none":
            continue
        cells = ((e1.building == b["id"]) | (e2.building == b["id"])) & changed
        out[cells] = CODE[b["change"]]
    free = changed & (out == 0)
    out[free & (e1.kind == tree_kind) & (e2.kind != tree_kind)] = CODE["tree_cut"]
    out[free & (e1.kind == tree_kind) & (e2.kind == tree_kind)] = CODE["tree_grown"]
    if (changed & (out == 0)).any():
        raise ValueError(f"{int((changed & (out == 0)).sum())} changed cells are explained by no change rule")
    small = np.isin(out, STRUCTURAL) & (np.abs(e2.dsm - e1.dsm) < dh_min)
    out[small] = CODE["below_parallax"]
    return out


LOSS, GAIN = 1, 2


def structural(classes: np.ndarray, dh: np.ndarray) -> np.ndarray:
    """``truth_structural`` from the classes and the height change ``dh`` (epoch 2 - epoch 1):
    :data:`LOSS` / :data:`GAIN` where a structural change lowered / raised the surface, 0 none,
    :data:`IGNORE` left out (re-roofs, changes below one pixel of parallax)."""
    out = np.zeros(classes.shape, np.uint8)
    counted = np.isin(classes, STRUCTURAL)
    out[counted & (dh < 0)] = LOSS
    out[counted & (dh > 0)] = GAIN
    out[np.isin(classes, (CODE["reroofed"], CODE["below_parallax"]))] = IGNORE
    return out
