"""Harder epoch 2 (``preset="hard"``): trees cut or grown, and unchanged surfaces re-textured."""

from __future__ import annotations

import numpy as np

from offnadir.simulate.raster import EpochRaster, _albedo, _textures
from offnadir.simulate.scene_model import GRASS, MATERIAL_IDS, TREE, SceneModel, _centres, _window


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
