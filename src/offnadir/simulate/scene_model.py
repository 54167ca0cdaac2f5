"""The simulated city's vector model: cell kinds, materials, the building/tree/scene records, the
terrain function, the grid helpers every raster step shares, and the records written to scene.json.

Layout is in local metres ``a`` (east of the west edge) and ``b`` (south of the north edge);
``x = x0 + a``, ``y = y0 - b`` in the grid CRS (see :mod:`offnadir.simulate.scene`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# cell kinds (the renderer uses GRASS/TREE for the vegetation tint and ROOF for façade windows)
GRASS, ROAD, SIDEWALK, SOIL, ROOF, TREE, PARKING = range(7)
KIND_NAMES = ("grass", "road", "sidewalk", "soil", "roof", "tree", "parking")

#: reflectance (B, G, R, NIR) and texture strength of each material
MATERIALS: dict[str, tuple[tuple[float, float, float, float], float]] = {
    "grass": ((0.035, 0.080, 0.045, 0.42), 0.12),
    "tree": ((0.030, 0.062, 0.036, 0.46), 0.15),
    "asphalt": ((0.075, 0.080, 0.085, 0.110), 0.08),
    "marking": ((0.30, 0.31, 0.31, 0.32), 0.05),
    "concrete": ((0.20, 0.215, 0.225, 0.26), 0.06),
    "soil": ((0.110, 0.140, 0.180, 0.240), 0.12),
    "rubble": ((0.150, 0.165, 0.185, 0.215), 0.20),
    "parking": ((0.100, 0.105, 0.110, 0.140), 0.06),
    "roof_tile": ((0.070, 0.110, 0.240, 0.300), 0.10),
    "roof_concrete": ((0.240, 0.250, 0.260, 0.290), 0.06),
    "roof_bitumen": ((0.050, 0.055, 0.060, 0.070), 0.08),
    "roof_metal": ((0.380, 0.400, 0.410, 0.420), 0.04),
    "roof_gravel": ((0.160, 0.170, 0.180, 0.210), 0.10),
    "roof_solar": ((0.060, 0.060, 0.080, 0.090), 0.03),
    "roof_box": ((0.300, 0.305, 0.310, 0.330), 0.04),
    "facade_stone": ((0.26, 0.29, 0.33, 0.37), 0.05),
    "facade_white": ((0.42, 0.43, 0.44, 0.46), 0.04),
    "facade_grey": ((0.18, 0.19, 0.20, 0.22), 0.05),
    "facade_brick": ((0.09, 0.11, 0.20, 0.26), 0.06),
}
MATERIAL_IDS = {name: k + 1 for k, name in enumerate(MATERIALS)}
FLAT_ROOFS = ("roof_concrete", "roof_bitumen", "roof_gravel", "roof_metal")
FACADES = ("facade_stone", "facade_white", "facade_grey", "facade_brick")


# --------------------------------------------------------------------------------------- model


@dataclass
class Rect:
    """A rectangle in local metres: centre (a, b), size along its own axes, rotation (degrees,
    counter-clockwise on the map). ``w`` runs along the rotated east axis, ``l`` along south."""

    a: float
    b: float
    w: float
    l: float  # noqa: E741
    angle: float = 0.0

    def contains(self, A, B):
        t = math.radians(self.angle)
        da, db = A - self.a, B - self.b
        # map rotation counter-clockwise: in (east, south) coordinates that is clockwise
        p = da * math.cos(t) - db * math.sin(t)
        q = da * math.sin(t) + db * math.cos(t)
        return (np.abs(p) <= self.w / 2) & (np.abs(q) <= self.l / 2), p, q

    def corners(self):
        t = math.radians(self.angle)
        out = []
        for sp, sq in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p, q = sp * self.w / 2, sq * self.l / 2
            out.append((self.a + p * math.cos(t) + q * math.sin(t), self.b - p * math.sin(t) + q * math.cos(t)))
        return out

    def bbox(self):
        c = np.array(self.corners())
        return c[:, 0].min(), c[:, 0].max(), c[:, 1].min(), c[:, 1].max()


@dataclass
class Building:
    id: int
    parts: list[Rect]
    height: float  #: eave height above its base (m)
    roof: str  #: "flat" or "gable"
    pitch_deg: float
    material: str
    facade: str
    shape: str  #: "rect", "rotated", "L"
    brightness: float = 1.0  #: per-building albedo factor
    boxes: list[tuple[Rect, float]] = field(default_factory=list)  #: rooftop boxes (rect, height)
    solar: Rect | None = None
    base: float = 0.0  #: ground height (ellipsoidal) the height is measured from: min terrain under it
    epochs: tuple[int, ...] = (1, 2)
    change: str = "none"  #: none / demolished / new / reroofed / raised
    height2: float | None = None
    material2: str | None = None
    brightness2: float | None = None

    def roof_top(self, epoch: int) -> float:
        h = self.height2 if (epoch == 2 and self.height2 is not None) else self.height
        extra = 0.0
        if self.roof == "gable":
            r = self.parts[0]
            extra = min(r.w, r.l) / 2 * math.tan(math.radians(self.pitch_deg))
        return h + extra


@dataclass
class Tree:
    a: float
    b: float
    radius: float
    height: float
    crown_base: float


@dataclass
class SceneModel:
    """The vector description of the scene (layout in local metres)."""

    size: int
    cell: float
    seed: int
    terrain_params: dict
    streets: list[tuple[str, float, float]]  #: ("a"|"b", centre, width): constant-a or constant-b
    sidewalk: float
    parcels: list[tuple[tuple[float, float, float, float], str]]  #: ((a0, a1, b0, b1), use)
    buildings: list[Building]
    trees: list[Tree]

    @property
    def extent(self) -> float:
        return self.size * self.cell


# --------------------------------------------------------------------------------------- terrain


def terrain_height(model: SceneModel, A, B):
    """Ellipsoidal ground height (m) at local metres (A east, B south)."""
    p = model.terrain_params
    z = p["base_height"] + p["slope_a"] * (A - p["ca"]) + p["slope_b"] * (B - p["cb"])
    for (ba, bb, amp, sig) in p["bumps"]:
        z = z + amp * np.exp(-((A - ba) ** 2 + (B - bb) ** 2) / (2 * sig ** 2))
    return z


# --------------------------------------------------------------------------------------- grid helpers


def _centres(n, cell):
    c = (np.arange(n) + 0.5) * cell
    A, B = np.meshgrid(c, c)  # A varies along columns (east), B along rows (south)
    return A, B



def _window(bboxes, cell, n, pad: int = 2):
    """Grid slices covering local-metre boxes (a0, a1, b0, b1) plus ``pad`` cells."""
    a0 = min(b[0] for b in bboxes)
    a1 = max(b[1] for b in bboxes)
    b0 = min(b[2] for b in bboxes)
    b1 = max(b[3] for b in bboxes)
    j0, j1 = max(int(math.floor(a0 / cell)) - pad, 0), min(int(math.ceil(a1 / cell)) + pad, n)
    i0, i1 = max(int(math.floor(b0 / cell)) - pad, 0), min(int(math.ceil(b1 / cell)) + pad, n)
    return (slice(i0, max(i1, i0)), slice(j0, max(j1, j0)))



# --------------------------------------------------------------------------------------- reports


def building_records(model: SceneModel, grid_x0: float, grid_y0: float, cell_counts: dict) -> list[dict]:
    """Buildings as plain dicts for scene.json (polygons in the grid CRS, x/y metres)."""
    out = []
    for b in model.buildings:
        polys = [[(grid_x0 + a, grid_y0 - bb) for a, bb in r.corners()] for r in b.parts]
        out.append(dict(
            id=b.id, shape=b.shape, roof=b.roof, pitch_deg=round(b.pitch_deg, 3),
            height_m=round(b.height, 3), height_epoch2_m=round(b.height2, 3) if b.height2 is not None else None,
            roof_top_m=round(b.roof_top(1), 3), base_ellipsoidal_m=round(b.base, 3),
            material=b.material, material_epoch2=b.material2, facade=b.facade,
            epochs=list(b.epochs), change=b.change, n_cells=int(cell_counts.get(b.id, 0)),
            footprint_xy=[[list(map(lambda v: round(v, 3), p)) for p in poly] for poly in polys],
            rooftop_boxes=len(b.boxes), solar=b.solar is not None,
        ))
    return out


def model_to_dict(model: SceneModel) -> dict:
    return dict(size=model.size, cell=model.cell, seed=model.seed, terrain=model.terrain_params,
                streets=[dict(axis=s[0], centre=s[1], width=s[2]) for s in model.streets],
                parcels=[dict(box=list(p), use=u) for p, u in model.parcels],
                trees=[asdict(t) for t in model.trees])
