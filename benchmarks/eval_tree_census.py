"""Census of the tree changes a run misses (issue 7, R5 eighth round): per changed tree of the hard
simulator's truth (4-connected components of the ``tree_cut`` / ``tree_grown`` classes), its cells,
scored and missed cells, height and height change, and the evidence the crowns' rules have of it —
the crown group it belongs to (:func:`offnadir.change.crown_shadow.crowns`), that group's missing-
shadow sums and decision (replayed as ``eval_tree_crowns.py`` does, before the texture witness), the
group's texture correlation against the run's crowns (:mod:`offnadir.change.crown_texture`, over
the lit inner cells with the band values: one band, so the canonical variates' correlation) — and the
stored census evidence and probability. A closing line per seed sorts the missed cells by why.

    python benchmarks/eval_tree_census.py --hard W [--seeds 0 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import eval_evidence_offline as OFF  # noqa: E402
import eval_missing_shadow as EMS  # noqa: E402
import eval_tree_crowns as ETC  # noqa: E402

from offnadir.change import crown_texture as CT  # noqa: E402


def texture(a, lab_c):
    """Per crown label (1..) the texture's Fisher z over its lit inner cells, the run's (m, s), the evidence."""
    el = a["elevated"] == 1
    il = a["illumination"]
    vis = (a["visible"][0] == 1) & (a["visible"][1] == 1)
    lit = (il[0] > 0) & (il[0] < 255) & (il[1] > 0) & (il[1] < 255)
    ok = CT.inner(el) & vis & lit
    u, v = a["value"][0, 0].astype(float), a["value"][1, 0].astype(float)
    k = int(lab_c.max())
    sums = np.zeros((k, 6))
    m = ok & (lab_c > 0)
    g = lab_c[m] - 1
    for c, x in enumerate((np.ones(m.sum()), u[m], v[m], u[m] ** 2, v[m] ** 2, u[m] * v[m])):
        sums[:, c] = np.bincount(g, x, minlength=k)
    z = CT.fisher_z(sums)
    llr, med, sd = CT.log_lr(z)
    return z, llr, med, sd


def census(path: Path, scene: Path, seed: int) -> dict:
    from scipy import ndimage as ndi

    run, _, lab_c, d = ETC.replay(path)
    a = run["arr"]
    p = a["probability"][1].astype(float)
    cls = OFF._read(scene / "truth_change_class.tif")
    ref, occ = OFF._read(scene / "truth_structural.tif"), OFF._read(scene / "truth_occluded.tif")
    te = OFF._read(scene / "truth_elevated.tif") == 1
    dsm1, dsm2 = OFF._read(scene / "dsm.tif").astype(float), OFF._read(scene / "dsm_epoch2.tif").astype(float)
    ch = EMS._decided(p, a["visible"])
    cells = (a["visible"][0] == 1) & (a["visible"][1] == 1) & (ref != 255) & (occ == 0) & (ch != 2) & te
    z, ltex, med, sd = texture(a, lab_c)
    recs = {r["crown"] + 1: r for r in d.get("crowns", [])}
    suns = run["suns"]
    print(f"== seed {seed}: sun elevation base {suns[0]['elevation']:.0f} deg, target {suns[1]['elevation']:.0f} deg; "
          f"crowns' prior log odds {d.get('prior', float('nan')):.2f}; texture median z {med:.2f}, robust sd {sd:.2f}")
    why = {}
    for k, name in ((5, "cut"), (6, "grown")):
        lab, n = ndi.label(cls == k)
        for o in range(1, n + 1):
            m = lab == o
            sc = m & cells
            if not sc.any():
                continue
            miss = int((sc & (ch == 0)).sum())
            dz = dsm2[m] - dsm1[m]
            ring = ndi.binary_dilation(m, iterations=3) & ~m
            h = float(np.nanmax(dsm1[m]) - np.nanmin(dsm1[ring])) if ring.any() else float("nan")
            crs = [int(c) for c in np.unique(lab_c[m]) if c > 0]
            info, reason = [], None
            for c in crs:
                gm = lab_c == c
                r = recs.get(c)
                zs = (z[c - 1] - med) / sd if sd > 0 else float("nan")
                txt = (f"group {gm.sum()} cells, this tree {(gm & m).sum() / gm.sum():.2f}, "
                       f"texture z {z[c - 1]:+.2f} ({zs:+.1f} sd) ev {ltex[c - 1]:.1f}")
                if r is None:
                    txt += ", no sure shadow of its own"
                    reason = reason or "no sure shadow of its own (untested)"
                else:
                    txt += f", n_t {r['n_t']} L {r['L']:.1f} P {r['post']:.2f}"
                    if (gm & m).sum() / gm.sum() < 0.5:
                        reason = reason or "a group mostly of other crowns"
                    elif r["L"] < 0:
                        reason = reason or "shadow seen present"
                    else:
                        reason = reason or "shadow evidence short of the prior"
                info.append(f"[{txt}]")
            reason = reason or "in no crown"
            if miss:
                why[(name, reason)] = why.get((name, reason), 0) + miss
            print(f"  {name:5s} {m.sum():4d} cells, scored {sc.sum():4d}, missed {miss:4d}; height {h:5.1f} m, "
                  f"dz {dz.min():+5.1f}..{dz.max():+5.1f} m; probability median {np.nanmedian(p[m]):.2f} "
                  + " ".join(info))
    print("  missed cells by why: " + ", ".join(f"{k[0]} / {k[1]}: {v}" for k, v in sorted(why.items())))
    return why


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(6)))
    a = ap.parse_args(argv)
    tot = {}
    for s in a.seeds:
        path, scene = a.hard / f"hard{s}.zarr", a.hard / f"hard{s}"
        if path.exists():
            for k, v in census(path, scene, s).items():
                tot[k] = tot.get(k, 0) + v
    print("missed cells over the seeds by why: " + ", ".join(f"{k[0]} / {k[1]}: {v}" for k, v in sorted(tot.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
