"""Evaluation (offline, issue 7 H3 seventh round): does the ground beyond a roof's predicted hidden zone
look like the roof at the target? A raised roof hides more of the ground on the side away from the
target's sensor (relief displacement ``dz tan(theta_t)``, whatever the sun), so the first cells the
old DSM calls visible beyond its hidden zone show the roof instead of the ground.

Per elevated patch and target: the **strip** (the first ``K`` cells visible in both images, on the
ground, walking from the roof's far edge away from the target's sensor through the hidden zone) and
the **beyond** band (the next ``K`` such cells). In each image, with medians ``s`` (strip), ``r`` (the
roof's inner cells) and ``g`` (beyond),

    q = (|s - r| - |s - g|) / (|s - r| + |s - g|)      (+1: the strip looks like the ground, -1: like the roof)

A raised roof: ``q_base > 0`` and ``q_target < 0`` (the strip went from ground-like to roof-like);
strictly ``q_base >= 1/2`` and ``q_target <= -1/2`` (three times nearer one than the other). Scored
against the truth on the hard simulator (``truth_change_class`` per patch, share of the strip truly
occluded at the target) and against the Kahramanmaras reference (changed share per patch).

    python benchmarks/eval_far_occlusion.py --hard /tmp/eval_hard_sim [--seeds 0 1 2 3 4 5] [--km DIR] [--k 8]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

CLASSES = "none new demolished raised reroofed tree_cut tree_grown below_parallax".split()


def away_step(azimuth_deg: float):
    """8-neighbour grid step (drow, dcol) pointing away from a sensor at this azimuth (clockwise from north)."""
    a = math.radians(azimuth_deg)
    de, dn = -math.sin(a), -math.cos(a)  # away from the sensor, (east, north)
    dr, dc = -dn, de
    m = max(abs(dr), abs(dc))
    return int(round(dr / m)), int(round(dc / m))


def _shift(a, di, dj, fill):
    out = np.full_like(a, fill)
    ny, nx = a.shape
    src = (slice(max(-di, 0), ny - max(di, 0)), slice(max(-dj, 0), nx - max(dj, 0)))
    dst = (slice(max(di, 0), ny + min(di, 0)), slice(max(dj, 0), nx + min(dj, 0)))
    out[dst] = a[src]
    return out  # out[i + di, j + dj] = a[i, j]


def strips(lab, elev, vis_b, vis_t, step, k: int):
    """Per cell the patch whose far-side strip (``1``) or beyond band (``2``) it is; (owner, kind)."""
    di, dj = step
    hidden = (vis_t == 0) & ~elev
    seen = (vis_b == 1) & (vis_t == 1) & ~elev
    far = (lab > 0) & elev & (_shift(lab, -di, -dj, 0) != lab)  # roof cells whose away-neighbour is not the roof
    carry = np.where(far, lab, 0)
    owner = np.zeros_like(lab)
    kind = np.zeros(lab.shape, np.uint8)
    # through the hidden zone: carry the far-edge label while cells stay hidden
    front = _shift(carry, di, dj, 0)
    through = np.zeros_like(lab)
    for _ in range(max(lab.shape)):
        h = (front > 0) & hidden & (through == 0)
        if not h.any():
            break
        through[h] = front[h]
        front = _shift(np.where(h, front, 0), di, dj, 0)
    # the first visible cells after a non-empty hidden run: start of the strip
    start = _shift(through, di, dj, 0)
    cur = np.where((start > 0) & seen & (through == 0), start, 0)
    for n in range(2 * k):
        ok = (cur > 0) & seen & (owner == 0)
        owner[ok] = cur[ok]
        kind[ok] = 1 if n < k else 2
        cur = _shift(np.where(ok, cur, 0), di, dj, 0)
    return owner, kind


def roof_table(val, vis, elev, patch, t: int, az_t: float, k: int):
    from scipy import ndimage as ndi

    lab = np.where(elev, patch, 0)
    owner, kind = strips(lab, elev, vis[0], vis[t], away_step(az_t), k)
    inner = ndi.binary_erosion(elev, iterations=2) & (vis[0] == 1) & (vis[t] == 1)
    rows = []
    for pid in np.unique(owner[owner > 0]):
        s, g = (owner == pid) & (kind == 1), (owner == pid) & (kind == 2)
        r = inner & (patch == pid)
        if s.sum() < 20 or g.sum() < 10 or r.sum() < 20:
            continue
        q, inside = [], []
        for img in (val[0], val[t]):
            ms, mr, mg = np.median(img[s]), np.median(img[r]), np.median(img[g])
            a, b = abs(ms - mr), abs(ms - mg)
            q.append((a - b) / (a + b) if a + b > 0 else 0.0)
            lo, hi = np.percentile(img[r], [25, 75])
            inside.append(bool(lo <= ms <= hi))  # the strip's median within the roof's own quartiles
        rows.append(dict(pid=int(pid), n=int((patch == pid).sum()), strip=int(s.sum()), beyond=int(g.sum()),
                         q_base=q[0], q_target=q[1], iqr=(not inside[0]) and inside[1], mask=s))
    return rows


def _read(p):
    import rasterio

    with rasterio.open(p) as f:
        return f.read(1)


def load(store):
    import xarray as xr

    ds = xr.open_zarr(store, mask_and_scale=False)
    val = np.asarray(ds["value"].values, np.float64).mean(axis=1)
    return (val, np.asarray(ds["visible"].values), np.asarray(ds["elevated"].values) == 1,
            np.asarray(ds["patch"].values), np.asarray(ds["azimuth"].values, np.float64))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path)
    ap.add_argument("--k", type=int, default=8)
    ap.add_argument("--rule", choices=("strict", "iqr"), default="strict",
                    help="strict: q_base >= 1/2 and q_target <= -1/2; iqr: the q flip with the strip's median "
                         "outside the roof's quartiles at the base and inside them at the target")
    a = ap.parse_args(argv)
    tally = {}
    if a.hard:
        for s in a.seeds:
            val, vis, elev, patch, az = load(a.hard / f"hard{s}.zarr")
            cls = _read(a.hard / f"hard{s}" / "truth_change_class.tif")
            occ = _read(a.hard / f"hard{s}" / "truth_occluded.tif")
            for r in roof_table(val, vis, elev, patch, 1, az[1], a.k):
                c = CLASSES[int(np.bincount(cls[patch == r["pid"]], minlength=8).argmax())]
                flip = r["q_base"] > 0 > r["q_target"]
                strict = (r["iqr"] and flip) if a.rule == "iqr" else (r["q_base"] >= 0.5 and r["q_target"] <= -0.5)
                key = "changed" if c in ("new", "demolished", "raised") else "unchanged/re-roofed"
                t = tally.setdefault(key, [0, 0, 0, 0, 0])
                t[0] += 1
                t[1] += flip
                t[2] += strict
                t[3] += r["n"] * flip
                t[4] += r["n"] * strict
                if c in ("raised", "demolished", "new") or flip:
                    print(f"seed {s} patch {r['pid']:6d} {c:<10} {r['n']:5d} cells, strip {r['strip']:4d}: q base "
                          f"{r['q_base']:+.2f} target {r['q_target']:+.2f}{' FLIP' if flip else ''}"
                          f"{' STRICT' if strict else ''}; strip truly occluded at the target "
                          f"{(occ[r['mask']] != 0).mean():.2f}")
        for key, t in tally.items():
            print(f"hard {key}: roofs with a strip {t[0]}, flip {t[1]} ({t[3]} cells), strict {t[2]} ({t[4]} cells)")
    if a.km:
        from offnadir.change import reference as REF

        ref = _read(Path("/work/shared/data/real/picanteo/derived/cars_1.3.0/reference_change.tif"))
        for name in ("km_post1.zarr", "km_post2.zarr"):
            val, vis, elev, patch, az = load(a.km / name)
            rows = roof_table(val, vis, elev, patch, 1, az[1], a.k)
            out = {"flip": [0, 0, 0.0], "strict": [0, 0, 0.0]}
            for r in rows:
                m = (patch == r["pid"]) & (ref != REF.IGNORE)
                ch = float(np.isin(ref[m], (1, 2)).mean()) if m.any() else math.nan
                for key, hit in (("flip", r["q_base"] > 0 > r["q_target"]),
                                 ("strict", (r["iqr"] and r["q_base"] > 0 > r["q_target"]) if a.rule == "iqr"
                                  else (r["q_base"] >= 0.5 and r["q_target"] <= -0.5))):
                    if hit and math.isfinite(ch):
                        out[key][0] += 1
                        out[key][1] += r["n"]
                        out[key][2] += ch * r["n"]
            print(f"{name}: roofs with a strip {len(rows)}; " + "; ".join(
                f"{k} {v[0]} roofs, {v[1]} cells, changed share {v[2] / max(v[1], 1):.2f}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
