"""A synthetic urban scene that knows its own truth, on a projected grid.

What it holds (all on one north-up grid of ``size × size`` cells, ``cell`` metres):

* **terrain**: a gentle plane (0.5-2 % slope) plus broad bumps, around ``base_height`` metres above
  the WGS84 ellipsoid (default 150 m: about 100 m above sea level near Marseille, where the geoid is
  ~50 m above the ellipsoid);
* **streets** (asphalt, dashed centre line) with concrete sidewalks, cutting the scene into blocks
  that are split into parcels; each parcel holds a **building**, a **park** (grass and trees), a
  **parking lot** or an empty **lot** (bare soil, where epoch 2 builds);
* **buildings** 3-60 m high: rectangles (some rotated), L-shapes, flat roofs (some with rooftop
  boxes or solar panels) and gable roofs; each has a roof and a façade material;
* **trees**: rounded crowns (the DSM sees the crown top; the rim drops to the ground from the crown
  base), never over a building of either epoch;
* **epoch 2**: known changes — buildings *demolished* (footprint becomes rubble at ground level),
  *new* (on the empty lots), *re-roofed* (same height, another roof material) and *raised* (extra
  floors). Trees, terrain and everything else are identical in both epochs; the nuisances
  (sun, vegetation tint, gains, noise) are applied when rendering, not here.

Per epoch the scene is rasterised (:func:`rasterize`) to a DSM (box geometry: a cell is a flat-topped
prism at its height), a cell kind, a material id, a 4-band (B, G, R, NIR) reflectance of the top and
of the sides (façades), and a building id. Layout is in local metres ``a`` (east of the west edge) and
``b`` (south of the north edge); ``x = x0 + a``, ``y = y0 - b`` in the grid CRS.

The model lives in :mod:`~offnadir.simulate.scene_model`, the layout drawn from a seed in
:mod:`~offnadir.simulate.layout`, the rasterisation in :mod:`~offnadir.simulate.raster` and the
harder epoch-2 changes in :mod:`~offnadir.simulate.epoch2`; this module gathers their public names.
"""

from __future__ import annotations

from offnadir.simulate.epoch2 import change_trees, retexture
from offnadir.simulate.layout import generate
from offnadir.simulate.raster import EpochRaster, rasterize
from offnadir.simulate.scene_model import (FACADES, FLAT_ROOFS, GRASS, KIND_NAMES, MATERIAL_IDS, MATERIALS,
                                           PARKING, ROAD, ROOF, SIDEWALK, SOIL, TREE, Building, Rect, SceneModel,
                                           Tree, building_records, model_to_dict, terrain_height)

__all__ = ["generate", "rasterize", "change_trees", "retexture", "building_records", "model_to_dict",
           "terrain_height", "EpochRaster", "SceneModel", "Building", "Rect", "Tree", "MATERIALS", "MATERIAL_IDS",
           "FLAT_ROOFS", "FACADES", "KIND_NAMES", "GRASS", "ROAD", "SIDEWALK", "SOIL", "ROOF", "TREE", "PARKING"]
