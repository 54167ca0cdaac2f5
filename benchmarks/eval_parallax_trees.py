"""Evaluation: the parallax (``structural``) criterion's patches on the hard simulator, by truth
class (issue 7, H9): which crowns it flags and what the DSM says of their surface.

For every elevated patch of a stored run (target 1), with the store's per-patch figures (``r_ref``,
``r(0)``, shift, structural score, cells) and, from the store's DSM alone, the patch's surface
figures (:func:`offnadir.change.crown.patch_surface`): the rms departure of the DSM from the patch's
least-squares plane, and the share of its cells whose slope along the target's parallax direction
foreshortens them by more than half (``|s tan(theta_t)| > 1/2``). Truth per patch (majority of its
cells): unchanged tree, tree cut, tree grown, unchanged roof, changed roof.

Prints, per seed, the flagged patches' counts and cells by class, and their surface figures' quartiles.

    python benchmarks/eval_parallax_trees.py --hard W --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_hard_sim as HS  # noqa: E402


def table(store, scene, t: int = 1) -> dict:
    import xarray as xr

    from offnadir.simulate import scene as S
    from offnadir.simulate import truth as T

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = xr.open_zarr(store, mask_and_scale=False)
        lab = np.asarray(ds["patch"].values)
        ids = np.asarray(ds["patch_id"].values)
        pel = np.asarray(ds["patch_elevated"].values).astype(bool)
        dsm = np.asarray(ds["dsm"].values, np.float64)
        col = {k: np.asarray(ds[f"patch_{k}"].values[t], np.float64)
               for k in ("corr_ref", "corr0", "shift", "structural_score", "structural")}
        ncell = np.asarray(ds["patch_n_cells"].values, np.float64)
        cell = float(abs(ds.attrs["spatial:transform"][0]))
    meta = json.loads((scene / "scene.json").read_text())
    model = S.generate(int(meta["seed"]), int(meta["size"]), float(meta["cell"]), float(meta["heights"]["base_height"]))
    tree = S.rasterize(model)[1].kind == S.TREE
    sb = HS._read(scene / "truth_structural.tif")
    cls = HS._read(scene / "truth_change_class.tif")
    return dict(lab=lab, ids=ids, pel=pel, dsm=dsm, col=col, ncell=ncell, cell=cell, tree=tree, sb=sb, cls=cls,
                meta=meta, T=T)


def classify(d) -> np.ndarray:
    """Per patch: 0 unchanged roof, 1 changed roof, 2 unchanged tree, 3 tree cut, 4 tree grown."""
    lab, ids = d["lab"], d["ids"]
    idx = np.searchsorted(ids, lab)
    idx = np.clip(idx, 0, len(ids) - 1)
    inp = (lab > 0) & (ids[idx] == lab)
    n = len(ids)
    cnt = lambda m: np.bincount(idx[inp & m], minlength=n)  # noqa: E731
    T = d["T"]
    ch = np.isin(d["sb"], (T.LOSS, T.GAIN))
    tree = d["tree"]
    # change classes 5 tree cut, 6 tree grown (offnadir.simulate)
    k = np.stack([cnt(~tree & ~ch), cnt(~tree & ch), cnt(tree & ~ch), cnt(ch & (d["cls"] == 5)),
                  cnt(ch & (d["cls"] == 6))], 1)
    return np.argmax(k, axis=1)


NAMES = ("roof unchanged", "roof changed", "tree unchanged", "tree cut", "tree grown")


def main(argv=None) -> int:
    from offnadir.change import crown as CR

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hard", required=True, help="--work of eval_hard_sim.py")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--tan", type=float, default=float(np.tan(np.radians(25.0))),
                    help="tan of the target's off-nadir angle (simulator default 25 deg)")
    a = ap.parse_args(argv)
    for s in a.seeds:
        w = Path(a.hard)
        d = table(w / f"hard{s}.zarr", w / f"hard{s}")
        c = classify(d)
        rms, steep = CR.patch_surface(d["dsm"], d["lab"], d["ids"], d["cell"], (0.0, -1.0), a.tan)
        flag = (np.nan_to_num(d["col"]["structural_score"]) >= 0.5) & d["pel"]
        print(f"seed {s}: elevated patches {int(d['pel'].sum())}, structural-flagged {int(flag.sum())}")
        for k, nm in enumerate(NAMES):
            m = d["pel"] & (c == k)
            f = m & flag
            q = lambda x: np.round(np.nanpercentile(x, [25, 50, 75]), 2) if len(x) else "-"  # noqa: E731
            nf = int(d["ncell"][f].sum())
            print(f"  {nm:15s} patches {int(m.sum()):5d} flagged {int(f.sum()):4d} ({nf:6d} cells)"
                  f"  rms all {q(rms[m])} flagged {q(rms[f])}  steep all {q(steep[m])} flagged {q(steep[f])}"
                  f"  shift(m) flagged {q(np.abs(d['col']['shift'][f]))} cells {q(d['ncell'][f])}"
                  f"  r_ref {q(d['col']['corr_ref'][f])} r0 {q(d['col']['corr0'][f])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
