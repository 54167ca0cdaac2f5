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


# --------------------------------------------------------------------------------------- layout


def _snap(v, cell):
    return round(v / cell) * cell


def _street_lines(rng, L, pitch_rng, width_rng):
    out = []
    pitch = rng.uniform(*pitch_rng)
    p = rng.uniform(0.3, 0.7) * pitch
    while p < L:
        out.append((p, rng.uniform(*width_rng)))
        p += pitch + rng.uniform(-4, 4)
    return out


def _intervals(L, margin, lines, sidewalk, min_len):
    """Free intervals between streets (and their sidewalks) inside [margin, L - margin]."""
    cuts = sorted((c - w / 2 - sidewalk, c + w / 2 + sidewalk) for c, w in lines)
    out, lo = [], margin
    for c0, c1 in cuts:
        if c0 - lo >= min_len:
            out.append((lo, c0))
        lo = max(lo, c1)
    if L - margin - lo >= min_len:
        out.append((lo, L - margin))
    return out


def _split(rng, box, max_len, min_len, out):
    a0, a1, b0, b1 = box
    wa, wb = a1 - a0, b1 - b0
    if max(wa, wb) <= max_len or max(wa, wb) < 2 * min_len:
        out.append(box)
        return
    if wa >= wb:
        m = a0 + rng.uniform(0.38, 0.62) * wa
        _split(rng, (a0, m, b0, b1), max_len, min_len, out)
        _split(rng, (m, a1, b0, b1), max_len, min_len, out)
    else:
        m = b0 + rng.uniform(0.38, 0.62) * wb
        _split(rng, (a0, a1, b0, m), max_len, min_len, out)
        _split(rng, (a0, a1, m, b1), max_len, min_len, out)


def _height_class(rng):
    u = rng.uniform()
    if u < 0.50:
        return rng.uniform(3.5, 10.0)
    if u < 0.85:
        return rng.uniform(10.0, 22.0)
    if u < 0.97:
        return rng.uniform(22.0, 38.0)
    return rng.uniform(38.0, 55.0)


def _building_in(rng, bid, box, cell, height=None, allow_gable=True, force_shape=None):
    a0, a1, b0, b1 = box
    sb = [_snap(rng.uniform(1.0, 3.0), cell) for _ in range(4)]
    A0, A1, B0, B1 = a0 + sb[0], a1 - sb[1], b0 + sb[2], b1 - sb[3]
    A0, A1, B0, B1 = _snap(A0, cell), _snap(A1, cell), _snap(B0, cell), _snap(B1, cell)
    wa, wb = A1 - A0, B1 - B0
    if wa < 5 or wb < 5:
        return None
    h = _height_class(rng) if height is None else height
    u = rng.uniform()
    if force_shape:
        shape = force_shape
    elif u < 0.3:
        shape = "L" if min(wa, wb) >= 14 else "rect"
    else:
        shape = "rotated" if u < 0.45 else "rect"
    if shape == "L":
        fa, fb = _snap(rng.uniform(0.4, 0.6) * wa, cell), _snap(rng.uniform(0.4, 0.6) * wb, cell)
        # the long arm along a (full width) and a wing along b, on a random corner
        top = rng.uniform() < 0.5
        left = rng.uniform() < 0.5
        arm = (A0, A1, B0, B0 + fb) if top else (A0, A1, B1 - fb, B1)
        wing = (A0, A0 + fa, B0, B1) if left else (A1 - fa, A1, B0, B1)
        parts = [Rect((r[0] + r[1]) / 2, (r[2] + r[3]) / 2, r[1] - r[0], r[3] - r[2]) for r in (arm, wing)]
    elif shape == "rotated":
        ang = rng.uniform(12, 35) * (1 if rng.uniform() < 0.5 else -1)
        t = math.radians(abs(ang))
        # largest rectangle of the parcel's aspect that fits when rotated
        k = min(wa / (wa * math.cos(t) + wb * math.sin(t)), wb / (wa * math.sin(t) + wb * math.cos(t)))
        parts = [Rect((A0 + A1) / 2, (B0 + B1) / 2, wa * k * 0.98, wb * k * 0.98, ang)]
    else:
        parts = [Rect((A0 + A1) / 2, (B0 + B1) / 2, wa, wb)]
    gable = allow_gable and shape == "rect" and h <= 16 and min(wa, wb) <= 16 and rng.uniform() < 0.55
    if gable:
        roof, pitch = "gable", rng.uniform(20, 32)
        material = "roof_tile" if rng.uniform() < 0.75 else "roof_metal"
    else:
        roof, pitch = "flat", 0.0
        material = str(rng.choice(FLAT_ROOFS))
    b = Building(bid, parts, float(h), roof, float(pitch), material, str(rng.choice(FACADES)), shape,
                 brightness=float(rng.uniform(0.88, 1.12)))
    if roof == "flat":
        p0 = parts[0]
        if p0.w * p0.l > 150 and h > 8 and rng.uniform() < 0.7:
            for _ in range(int(rng.integers(1, 4))):
                bw, bl = rng.uniform(2.0, 4.0), rng.uniform(2.0, 4.0)
                if p0.w < bw + 3 or p0.l < bl + 3:
                    continue
                pa = rng.uniform(-(p0.w - bw) / 2 + 1, (p0.w - bw) / 2 - 1)
                pq = rng.uniform(-(p0.l - bl) / 2 + 1, (p0.l - bl) / 2 - 1)
                t = math.radians(p0.angle)
                ca = p0.a + pa * math.cos(t) + pq * math.sin(t)
                cb = p0.b - pa * math.sin(t) + pq * math.cos(t)
                b.boxes.append((Rect(ca, cb, bw, bl, p0.angle), float(rng.uniform(1.3, 2.6))))
        elif p0.w * p0.l > 100 and rng.uniform() < 0.35:
            b.solar = Rect(p0.a, p0.b, p0.w * 0.5, p0.l * 0.4, p0.angle)
    return b


def generate(seed: int = 0, size: int = 256, cell: float = 0.5, base_height: float = 150.0) -> SceneModel:
    """Draw a scene layout (deterministic for a seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5CE7E]))
    L = size * cell
    margin = max(3.0, 6 * cell)
    # terrain
    slope = rng.uniform(0.005, 0.02)
    sdir = rng.uniform(0, 2 * math.pi)
    bumps = [(float(rng.uniform(0, L)), float(rng.uniform(0, L)), float(rng.uniform(-1.2, 1.2)),
              float(rng.uniform(0.15, 0.4) * L)) for _ in range(3)]
    terrain = dict(base_height=float(base_height), slope_a=float(slope * math.cos(sdir)),
                   slope_b=float(slope * math.sin(sdir)), ca=L / 2, cb=L / 2, bumps=bumps)
    # streets
    sidewalk = 2.0
    small = L < 80.0  # too small for a street grid: one block of small parcels
    la = [] if small else _street_lines(rng, L, (42, 62), (8, 11))
    lb = [] if small else _street_lines(rng, L, (42, 62), (8, 11))
    streets = [("a", float(c), float(w)) for c, w in la] + [("b", float(c), float(w)) for c, w in lb]
    ia = _intervals(L, margin, la, sidewalk, 8.0)
    ib = _intervals(L, margin, lb, sidewalk, 8.0)
    parcels = []
    for a0, a1 in ia:
        for b0, b1 in ib:
            sub = []
            _split(rng, (a0, a1, b0, b1), rng.uniform(10, 14) if small else rng.uniform(18, 30), 8.0, sub)
            parcels.extend(sub)
    # uses: one lot for a new building (largest parcel that is not the biggest), one park, the rest
    area = np.array([(p[1] - p[0]) * (p[3] - p[2]) for p in parcels])
    order = list(np.argsort(-area, kind="stable"))
    uses = ["building"] * len(parcels)
    if len(parcels) >= 4:
        tower = order[0]
        lot = order[1]
        uses[lot] = "lot"
        park = order[-1] if order[-1] not in (tower, lot) else order[-2]
        uses[park] = "park"
        for k in order[2:]:
            if uses[k] == "building":
                u = rng.uniform()
                if u < 0.10:
                    uses[k] = "park"
                elif u < 0.20:
                    uses[k] = "parking"
                elif u < 0.26:
                    uses[k] = "lot"
    else:
        tower = None
        if len(parcels) >= 2:
            uses[order[-1]] = "lot"
    parcels_out = [(tuple(float(v) for v in p), u) for p, u in zip(parcels, uses)]

    buildings: list[Building] = []
    for k, (box, use) in enumerate(parcels_out):
        if use != "building":
            continue
        h = rng.uniform(42, 56) if k == tower else None
        b = _building_in(rng, len(buildings) + 1, box, cell, height=h, allow_gable=k != tower,
                         force_shape="rect" if k == tower else None)
        if b is not None:
            if b.roof_top(2) > 60:
                b.height = 60 - (b.roof_top(2) - b.height)
            buildings.append(b)
    model = SceneModel(size, cell, int(seed), terrain, streets, sidewalk, parcels_out, buildings, [])
    _epoch2_changes(rng, model)
    for b in model.buildings:
        A, B = _part_samples(b, cell)
        b.base = float(np.min(terrain_height(model, A, B)))
    model.trees = _plant_trees(rng, model, margin)
    return model


def _part_samples(b: Building, cell):
    pts = []
    for r in b.parts:
        a0, a1, b0, b1 = r.bbox()
        A, B = np.meshgrid(np.arange(a0, a1 + cell, cell), np.arange(b0, b1 + cell, cell))
        pts.append((A.ravel(), B.ravel()))
    return np.concatenate([p[0] for p in pts]), np.concatenate([p[1] for p in pts])


def _contrasting(rng, material):
    base = np.array(MATERIALS[material][0])
    cands = [m for m in FLAT_ROOFS + ("roof_tile", "roof_solar")
             if m != material and np.abs(np.array(MATERIALS[m][0]) - base).max() > 0.08]
    return str(rng.choice(cands))


def _epoch2_changes(rng, model: SceneModel):
    blds = model.buildings
    if not blds:
        return
    tallest = max(blds, key=lambda b: b.height).id
    cand = [b for b in blds if b.id != tallest]
    idx = list(rng.permutation(len(cand)))
    cand = [cand[i] for i in idx]
    n = len(blds)
    n_demol = max(1, round(n / 14))
    n_raise = max(1, round(n / 12))
    n_reroof = max(1, round(n / 12))
    taken = set()

    def pick(pred, k):
        out = []
        for b in cand:
            if len(out) == k:
                break
            if b.id not in taken and pred(b):
                out.append(b)
                taken.add(b.id)
        return out

    for b in pick(lambda b: b.height <= 25, n_demol):
        b.change, b.epochs = "demolished", (1,)
    for b in pick(lambda b: b.roof == "flat", n_raise):
        floors = int(rng.integers(1, 4))
        b.change, b.height2 = "raised", min(b.height + 3.0 * floors, 60.0 - (b.roof_top(1) - b.height))
    for b in pick(lambda b: True, n_reroof):
        b.change, b.material2 = "reroofed", _contrasting(rng, b.material)
        b.brightness2 = float(rng.uniform(0.9, 1.1))
    # new buildings on the empty lots
    for box, use in model.parcels:
        if use != "lot":
            continue
        nb = _building_in(rng, len(blds) + 1, box, model.cell, height=float(rng.uniform(6, 22)),
                          allow_gable=False, force_shape="rect")
        if nb is not None:
            nb.change, nb.epochs = "new", (2,)
            blds.append(nb)


def _plant_trees(rng, model: SceneModel, margin):
    L, cell = model.extent, model.cell
    # occupancy of buildings of both epochs (+ 1.5 m) on a coarse helper grid
    n = model.size
    A, B = _centres(n, cell)
    occ = np.zeros((n, n), bool)
    for b in model.buildings:
        for r in b.parts:
            big = Rect(r.a, r.b, r.w + 3.0, r.l + 3.0, r.angle)
            sl = _window([big.bbox()], cell, n)
            occ[sl] |= big.contains(A[sl], B[sl])[0]
    trees: list[Tree] = []

    def try_tree(a, b, rad, h):
        if a - rad < margin or b - rad < margin or a + rad > L - margin or b + rad > L - margin:
            return
        i0, i1 = int(max((b - rad) / cell, 0)), int(min((b + rad) / cell + 1, n))
        j0, j1 = int(max((a - rad) / cell, 0)), int(min((a + rad) / cell + 1, n))
        win = occ[i0:i1, j0:j1]
        d2 = (A[i0:i1, j0:j1] - a) ** 2 + (B[i0:i1, j0:j1] - b) ** 2
        if np.any(win & (d2 <= rad ** 2)):
            return
        for t in trees:
            if (t.a - a) ** 2 + (t.b - b) ** 2 < (0.8 * (t.radius + rad)) ** 2:
                return
        trees.append(Tree(float(a), float(b), float(rad), float(h), float(h * rng.uniform(0.3, 0.45))))

    # street trees on the sidewalk edges
    for axis, c, w in model.streets:
        if rng.uniform() < 0.35:
            continue
        for side in (-1, 1):
            if rng.uniform() < 0.3:
                continue
            off = c + side * (w / 2 + model.sidewalk * 0.6)
            p = rng.uniform(2, 8)
            while p < L:
                rad, h = rng.uniform(1.8, 3.2), rng.uniform(6, 11)
                if axis == "a":
                    try_tree(off, p, rad, h)
                else:
                    try_tree(p, off, rad, h)
                p += rng.uniform(7, 11)
    # parks
    for (a0, a1, b0, b1), use in model.parcels:
        if use != "park":
            continue
        k = max(2, int((a1 - a0) * (b1 - b0) / 90))
        for _ in range(k * 2):
            rad = rng.uniform(2.0, 4.0)
            try_tree(rng.uniform(a0 + rad, max(a1 - rad, a0 + rad + 0.1)),
                     rng.uniform(b0 + rad, max(b1 - rad, b0 + rad + 0.1)), rad, rng.uniform(5, 14))
    return trees


# --------------------------------------------------------------------------------------- raster


def _centres(n, cell):
    c = (np.arange(n) + 0.5) * cell
    A, B = np.meshgrid(c, c)  # A varies along columns (east), B along rows (south)
    return A, B


@dataclass
class EpochRaster:
    """One epoch of the scene on the grid (row 0 = north)."""

    dsm: np.ndarray  #: (H, W) float64, ellipsoidal m (already rounded to float32 values)
    kind: np.ndarray  #: (H, W) uint8, see KIND_NAMES
    material: np.ndarray  #: (H, W) uint16 material id (MATERIAL_IDS)
    albedo: np.ndarray  #: (4, H, W) float32 B, G, R, NIR reflectance of the top
    side: np.ndarray  #: (4, H, W) float32 reflectance of the cell's sides (façade for buildings)
    building: np.ndarray  #: (H, W) int32 building id, 0 where none


def _textures(seed, n, cell):
    """Three texture fields (fine, medium, coarse), zero mean, unit-ish std, deterministic."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E47]))
    out = []
    for sig_m in (0.0, 1.2, 6.0):
        f = rng.standard_normal((n, n))
        if sig_m > 0:
            f = gaussian_filter(f, sig_m / cell, mode="wrap")
        f = f / (f.std() + 1e-12)
        out.append(f.astype(np.float32))
    return out


def rasterize(model: SceneModel) -> tuple[np.ndarray, EpochRaster, EpochRaster, np.ndarray]:
    """(terrain, epoch 1, epoch 2, tree_height) on the grid. ``tree_height`` is the crown surface
    above the terrain where a tree is (0 elsewhere)."""
    n, cell = model.size, model.cell
    A, B = _centres(n, cell)
    terrain = terrain_height(model, A, B)
    fine, medium, coarse = _textures(model.seed, n, cell)
    tex = 0.5 * fine + 0.35 * medium + 0.35 * coarse

    kind = np.full((n, n), GRASS, np.uint8)
    mat = np.full((n, n), MATERIAL_IDS["grass"], np.uint16)
    bright = np.ones((n, n), np.float32)
    # parcels and streets are axis-aligned: work on the rows/columns they cover (A varies along
    # columns only, B along rows only), not on full-grid masks
    ca, cb = A[0], B[:, 0]

    def span(c, lo, hi):  # slice of the sorted cell centres c with lo <= c < hi
        return slice(int(np.searchsorted(c, lo, "left")), int(np.searchsorted(c, hi, "left")))

    def near(c, centre, r):  # slice of the cell centres c with |c - centre| <= r (a superset)
        return slice(int(np.searchsorted(c, centre - r - cell, "left")),
                     int(np.searchsorted(c, centre + r + cell, "right")))

    prng = np.random.default_rng(np.random.SeedSequence([model.seed, 0xBA5E]))
    for (a0, a1, b0, b1), use in model.parcels:
        sl = (span(cb, b0, b1), span(ca, a0, a1))
        if use == "parking":
            kind[sl], mat[sl] = PARKING, MATERIAL_IDS["parking"]
            Aw, Bw = A[sl], B[sl]
            stripe = (np.abs(((Aw - a0) % 2.6) - 1.3) > 1.3 - cell * 0.6) & (np.abs(Bw - (b0 + b1) / 2) > 2.5)
            mat[sl][stripe] = MATERIAL_IDS["marking"]
        elif use == "lot":
            kind[sl], mat[sl] = SOIL, MATERIAL_IDS["soil"]
        elif use == "building" and prng.uniform() < 0.45:
            kind[sl], mat[sl] = SIDEWALK, MATERIAL_IDS["concrete"]

    def street_window(axis, c, r):
        return (slice(None), near(ca, c, r)) if axis == "a" else (near(cb, c, r), slice(None))

    # streets (on top of parcels, below buildings)
    for axis, c, w in model.streets:
        sl = street_window(axis, c, w / 2 + model.sidewalk)
        coord = (A if axis == "a" else B)[sl]
        side = (np.abs(coord - c) <= w / 2 + model.sidewalk) & (np.abs(coord - c) > w / 2)
        kind[sl][side], mat[sl][side] = SIDEWALK, MATERIAL_IDS["concrete"]
    for axis, c, w in model.streets:
        sl = street_window(axis, c, w / 2)
        coord = (A if axis == "a" else B)[sl]
        road = np.abs(coord - c) <= w / 2
        kind[sl][road], mat[sl][road] = ROAD, MATERIAL_IDS["asphalt"]
    for axis, c, w in model.streets:
        sl = street_window(axis, c, cell * 0.5)
        coord, along = (A[sl], B[sl]) if axis == "a" else (B[sl], A[sl])
        dash = (np.abs(coord - c) <= cell * 0.5) & ((along % 8.0) < 3.0)
        other = [s for s in model.streets if s[0] != axis]
        for _, c2, w2 in other:  # no markings across crossings
            dash &= np.abs(along - c2) > w2 / 2 + 1.0
        mat[sl][dash] = MATERIAL_IDS["marking"]

    ground_kind, ground_mat = kind.copy(), mat.copy()
    facade_mat = np.zeros((n, n), np.uint16)
    rasters = []
    tree_h = _tree_surface(model, A, B)
    for epoch in (1, 2):
        dsm = terrain.copy()
        kind, mat = ground_kind.copy(), ground_mat.copy()
        bid = np.zeros((n, n), np.int32)
        bright = np.ones((n, n), np.float32)
        fmat = facade_mat.copy()
        for b in model.buildings:
            sl = _window([r.bbox() for r in b.parts], cell, n)
            Aw, Bw = A[sl], B[sl]
            if epoch not in b.epochs:
                if epoch == 2 and b.change == "demolished":
                    m = _footprint(b, Aw, Bw)
                    kind[sl][m], mat[sl][m] = SOIL, MATERIAL_IDS["rubble"]
                continue
            m = _footprint(b, Aw, Bw)
            h = b.height2 if (epoch == 2 and b.height2 is not None) else b.height
            roof = np.full(m.shape, b.base + h)
            if b.roof == "gable":
                r = b.parts[0]
                _, p, q = r.contains(Aw, Bw)
                half = min(r.w, r.l) / 2
                d = np.abs(q) if r.w >= r.l else np.abs(p)  # distance from the ridge line
                roof = b.base + h + np.clip(half - d, 0, None) * math.tan(math.radians(b.pitch_deg))
            material = b.material2 if (epoch == 2 and b.material2) else b.material
            br = b.brightness2 if (epoch == 2 and b.brightness2) else b.brightness
            dsm[sl][m] = roof[m]
            kind[sl][m], mat[sl][m], bid[sl][m], bright[sl][m] = ROOF, MATERIAL_IDS[material], b.id, br
            fmat[sl][m] = MATERIAL_IDS[b.facade]
            if b.solar is not None:
                s = b.solar.contains(Aw, Bw)[0] & m
                mat[sl][s] = MATERIAL_IDS["roof_solar"]
            for r, bh in b.boxes:
                s = r.contains(Aw, Bw)[0] & m
                dsm[sl][s] = b.base + h + bh
                mat[sl][s] = MATERIAL_IDS["roof_box"]
        trees = (tree_h > 0.3) & (bid == 0)
        dsm[trees] = terrain[trees] + tree_h[trees]
        kind[trees], mat[trees] = TREE, MATERIAL_IDS["tree"]
        dsm = dsm.astype(np.float32).astype(np.float64)
        albedo = _albedo(mat, bright, tex, fine)
        # tree crowns: darker towards the rim
        if trees.any():
            rel = np.clip(tree_h / np.maximum(tree_h.max(), 1e-6), 0, 1)
            albedo[:, trees] *= (0.75 + 0.35 * rel[trees])[None]
        side = albedo.copy()
        fm = fmat > 0  # façades: their own material, computed on those cells only
        side[:, fm] = _albedo(fmat[fm], np.ones(int(fm.sum()), np.float32), 0.3 * tex[fm], 0.3 * fine[fm])
        rasters.append(EpochRaster(dsm, kind, mat, albedo.astype(np.float32, copy=False),
                                   side.astype(np.float32, copy=False), bid))
    terrain = terrain.astype(np.float32).astype(np.float64)
    return terrain, rasters[0], rasters[1], tree_h


def _footprint(b: Building, A, B):
    m = np.zeros(A.shape, bool)
    for r in b.parts:
        m |= r.contains(A, B)[0]
    return m


def _window(bboxes, cell, n, pad: int = 2):
    """Grid slices covering local-metre boxes (a0, a1, b0, b1) plus ``pad`` cells."""
    a0 = min(b[0] for b in bboxes)
    a1 = max(b[1] for b in bboxes)
    b0 = min(b[2] for b in bboxes)
    b1 = max(b[3] for b in bboxes)
    j0, j1 = max(int(math.floor(a0 / cell)) - pad, 0), min(int(math.ceil(a1 / cell)) + pad, n)
    i0, i1 = max(int(math.floor(b0 / cell)) - pad, 0), min(int(math.ceil(b1 / cell)) + pad, n)
    return (slice(i0, max(i1, i0)), slice(j0, max(j1, j0)))


def _tree_surface(model: SceneModel, A, B):
    h = np.zeros(A.shape)
    n = A.shape[0]
    for t in model.trees:
        sl = _window([(t.a - t.radius, t.a + t.radius, t.b - t.radius, t.b + t.radius)], model.cell, n)
        d2 = ((A[sl] - t.a) ** 2 + (B[sl] - t.b) ** 2) / t.radius ** 2
        z = np.where(d2 < 1, t.crown_base + (t.height - t.crown_base) * np.sqrt(np.clip(1 - d2, 0, 1)), 0.0)
        h[sl] = np.maximum(h[sl], z)
    return h


def _albedo(mat, bright, tex, fine):
    names = list(MATERIALS)
    base = np.zeros((4,) + mat.shape, np.float32)
    amp = np.zeros(mat.shape, np.float32)
    for k, name in enumerate(names):
        m = mat == k + 1
        if m.any():
            refl, a = MATERIALS[name]
            base[:, m] = np.asarray(refl, np.float32)[:, None]
            amp[m] = a
    # brightness texture, plus a little band-decorrelated texture so it is not pure grey scaling
    t = 1.0 + amp * tex
    base *= (bright * t)[None]
    del t
    base[3] *= 1.0 + 0.3 * amp * fine
    return np.clip(base, 0.005, 1.0, out=base)


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


# --------------------------------------------------------------------------------------- harder epoch 2
def change_trees(model: SceneModel, terrain, e2: EpochRaster, tree_h, rng, removed: float, grown: float):
    """Tree changes at epoch 2, in place on ``e2``: a fraction ``removed`` of the trees is cut
    (crown cells become grass at terrain height) and a fraction ``grown`` grows 25-50 % taller
    (crown surface above the crown base scaled). Only cells where the tree is the visible top
    (kind TREE) change. Returns (ids removed, ids grown) as indices into ``model.trees``."""
    n, cell = model.size, model.cell
    A, B = _centres(n, cell)
    order = rng.permutation(len(model.trees))
    k_rm = int(round(removed * len(order)))
    k_gr = int(round(grown * len(order)))
    rm, gr = sorted(order[:k_rm].tolist()), sorted(order[k_rm:k_rm + k_gr].tolist())
    fine, medium, coarse = _textures(model.seed, n, cell)
    grass = _albedo(np.full((n, n), MATERIAL_IDS["grass"], np.uint16), np.ones((n, n), np.float32),
                    0.5 * fine + 0.35 * medium + 0.35 * coarse, fine)
    for idx, cut in [(i, True) for i in rm] + [(i, False) for i in gr]:
        t = model.trees[idx]
        sl = _window([(t.a - t.radius, t.a + t.radius, t.b - t.radius, t.b + t.radius)], cell, n)
        d2 = ((A[sl] - t.a) ** 2 + (B[sl] - t.b) ** 2) / t.radius ** 2
        m = (d2 < 1) & (e2.kind[sl] == TREE)
        if not m.any():
            continue
        ii, jj = np.nonzero(m)
        ii, jj = ii + sl[0].start, jj + sl[1].start
        if cut:
            e2.dsm[ii, jj] = terrain[ii, jj]
            e2.kind[ii, jj] = GRASS
            e2.material[ii, jj] = MATERIAL_IDS["grass"]
            e2.albedo[:, ii, jj] = grass[:, ii, jj]
            e2.side[:, ii, jj] = grass[:, ii, jj]
        else:
            g = float(rng.uniform(1.25, 1.5))
            above = np.maximum(tree_h[ii, jj] - t.crown_base, 0.0)
            new = terrain[ii, jj] + t.crown_base + above * g
            e2.dsm[ii, jj] = np.maximum(e2.dsm[ii, jj], new).astype(np.float32).astype(np.float64)
    return rm, gr


def retexture(albedo, seed: int, cell: float, strength: float, *, out=None):
    """Epoch-2 albedo of unchanged surfaces re-rendered: multiplied by ``1 + strength * t`` with a
    fresh texture field ``t`` (other seed than epoch 1; fine, medium and coarse scales), clipped
    to valid reflectances (float32; into ``out`` when given, which may be ``albedo`` itself).
    Materials (the truth) are unchanged."""
    n = albedo.shape[-1]
    fine, medium, coarse = _textures(int(seed) ^ 0x5EA5, n, cell)
    t = 0.5 * fine + 0.35 * medium + 0.35 * coarse
    del fine, medium, coarse
    t *= strength
    t += 1.0
    if out is None:
        out = np.empty(albedo.shape, np.float32)
    np.multiply(albedo, t[None], out=out)
    return np.clip(out, 0.005, 1.0, out=out)
