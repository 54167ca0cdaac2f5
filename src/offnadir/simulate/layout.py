"""The city's layout drawn from a seed: terrain, streets, parcels, buildings, the epoch-2 building
changes and the trees (:func:`generate`; deterministic for a seed)."""

from __future__ import annotations

import math

import numpy as np

from offnadir.simulate.scene_model import (FACADES, FLAT_ROOFS, MATERIALS, Building, Rect, SceneModel, Tree,
                                           _centres, _window, terrain_height)


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
