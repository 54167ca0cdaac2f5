"""One epoch of the city rasterised on the grid (:func:`rasterize`): DSM (box geometry), cell kind,
material, top and side reflectance, building id."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from offnadir.simulate.scene_model import (GRASS, MATERIAL_IDS, MATERIALS, PARKING, ROAD, ROOF, SIDEWALK, SOIL,
                                           TREE, Building, SceneModel, _centres, _window, terrain_height)


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
