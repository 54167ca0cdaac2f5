"""Kahramanmaraş: what the remaining errors are, cell by cell and object by object (issue 7, H5 seventh round).

Reads stores that ``offnadir detect`` wrote for the picanteo pair (the README's stereo command, or
``benchmarks/eval_change_real.py``'s one-image stores) and the CARS height-change reference
(0 none, 1 loss, 2 gain, 255 ignore: ``|post - pre| >= 3 m`` of two CARS DSMs) and prints, per
store and target image, on the decided cells (map 0/1, reference not 255):

1. **attribution**: F1 and score AUC on all decided cells, outside a 1 m band around the
   reference's change boundary (both sides), on the reference's measured cells only
   (``reference_change_measured_only.tif``: cells CARS interpolated in either DSM are 255 there),
   and both; the band's share of the decided cells;
2. **cell classes**: every false negative and false positive cell put in the first class that
   holds, in this order. FN: within 1 m of an unchanged cell (edge), reference interpolated by
   CARS, marginal (``|CARS dh| < 4 m``, within 1 m of the reference's 3 m), in shadow (base or
   target), then by kind: demolished (loss, DSM-elevated), raised/grown (gain, elevated), new
   (gain, ground), loss on ground. FP: within 1 m of a changed cell (edge), within 8 m (halo),
   sub-threshold (``|CARS dh|`` 1.5-3 m), far from any change on elevated cells in shadow / lit,
   on ground in shadow / lit;
3. **objects**: 8-connected FN and FP blobs of at least 100 m² (as the evaluation's object
   recall), each given its cells' majority class, counted per class; ``--list`` prints each
   blob (size, centre, CARS dh, shares of elevated / shadow / interpolated cells, median
   probability and evidence, store ``dh``);
4. ``--png DIR``: contact sheets of the largest blobs (base, target, CARS dh, TP/FN/FP map).

    python benchmarks/eval_km_errors.py km.zarr /tmp/eval_change_real/km_post1.zarr [--list] [--png DIR]

A store argument is ``PATH`` (every target image of it) or ``PATH:IMAGE``. Analysis only: nothing
here decides anything, and no figure is fitted to the scene.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

REF_DIR = Path("/work/shared/data/real/picanteo/derived/cars_1.3.0")
#: the evaluation's object size (offnadir.change.reference.MIN_OBJECT_AREA), in 0.5 m cells
MIN_OBJECT_M2 = 100.0
EDGE_M, HALO_M = 1.0, 8.0
FN_CLASSES = ("edge", "reference interpolated", "marginal", "shadow", "demolished", "raised/grown", "new",
              "loss on ground")
FP_CLASSES = ("edge", "halo", "sub-threshold", "elevated, shadow", "elevated, lit", "ground, shadow",
              "ground, lit")


def load_reference(ref_dir: Path = REF_DIR) -> dict:
    import rasterio

    def read(name):
        with rasterio.open(ref_dir / name) as f:
            return f.read(1), abs(f.transform.a)

    ref, res = read("reference_change.tif")
    return {"ref": ref, "res": res, "diff": read("diff_post_minus_pre.tif")[0],
            "measured": read("reference_change_measured_only.tif")[0] != 255}


def cell_classes(R: dict, ch, el, shadow):
    """Per-cell class index (FN classes, FP classes) and the FN/FP masks; -1 elsewhere."""
    from scipy import ndimage as ndi

    ref, ad = R["ref"], np.abs(R["diff"])
    chg = (ref == 1) | (ref == 2)
    dec = (ch < 2) & (ref != 255)
    fn, fp = dec & chg & (ch == 0), dec & ~chg & (ch == 1)
    d_chg = ndi.distance_transform_edt(~chg) * R["res"]
    d_un = ndi.distance_transform_edt(chg | (ref == 255)) * R["res"]
    fn_rules = (d_un <= EDGE_M, ~R["measured"], ad < 4.0, shadow, (ref == 1) & el, (ref == 2) & el,
                (ref == 2) & ~el, np.ones_like(el))
    fp_rules = (d_chg <= EDGE_M, d_chg <= HALO_M, ad >= 1.5, el & shadow, el, shadow, np.ones_like(el))
    cls = np.full(ref.shape, -1, np.int8)
    for m, rules in ((fn, fn_rules), (fp, fp_rules)):
        left = m.copy()
        for k, r in enumerate(rules):
            s = left & r
            cls[s] = k
            left &= ~s
    return cls, fn, fp, dec, chg


def attribution(R, ch, p, dec, chg) -> dict:
    from scipy import ndimage as ndi

    from offnadir.change.reference import auc

    band = np.where(chg, ndi.distance_transform_edt(chg | (R["ref"] == 255)),
                    ndi.distance_transform_edt(~chg)) * R["res"] <= EDGE_M
    out = {}
    for name, m in (("all", dec), ("outside 1 m band", dec & ~band), ("measured only", dec & R["measured"]),
                    ("both", dec & R["measured"] & ~band)):
        f = ch[m] == 1
        t = chg[m]
        tp, fpn, fnn = int(np.sum(t & f)), int(np.sum(~t & f)), int(np.sum(t & ~f))
        out[name] = (2 * tp / max(2 * tp + fpn + fnn, 1), auc(t, p[m]))
    out["band share"] = float(band[dec].mean())
    return out


def blobs(R, cls, fn, fp, ds_maps) -> list:
    from scipy import ndimage as ndi

    min_cells = int(round(MIN_OBJECT_M2 / R["res"] ** 2))
    rows = []
    for kind, m, names in (("FN", fn, FN_CLASSES), ("FP", fp, FP_CLASSES)):
        lab, _ = ndi.label(m, np.ones((3, 3), bool))
        sizes = np.bincount(lab.ravel())
        for k in np.nonzero(sizes >= min_cells)[0]:
            if k == 0:
                continue
            b = lab == k
            ys, xs = np.nonzero(b)
            c = np.bincount(cls[b], minlength=len(names))
            r = {"kind": kind, "n": int(b.sum()), "cls": names[int(np.argmax(c))],
                 "y0": int(ys.min()), "y1": int(ys.max()), "x0": int(xs.min()), "x1": int(xs.max()),
                 "cy": int(ys.mean()), "cx": int(xs.mean()), "cars_dh": float(np.nanmedian(R["diff"][b])),
                 "elevated": float(ds_maps["el"][b].mean()), "shadow": float(ds_maps["shadow"][b].mean()),
                 "interp": float((~R["measured"][b]).mean()), "prob": float(np.nanmedian(ds_maps["p"][b])),
                 "evidence": float(np.nanmedian(ds_maps["ev"][b]))}
            dh = ds_maps["dh"]
            r["dh"] = float(np.nanmedian(dh[b])) if dh is not None and np.isfinite(dh[b]).any() else float("nan")
            rows.append(r)
    return sorted(rows, key=lambda r: (r["kind"], -r["n"]))


def sheet(path, R, ds_maps, rows, n=8):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = rows[:n]
    if not rows:
        return
    v0, v1, ch = ds_maps["v0"], ds_maps["v1"], ds_maps["ch"]
    err_cmap = matplotlib.colors.ListedColormap(["white", "green", "blue", "red"])
    fig, ax = plt.subplots(len(rows), 4, figsize=(12, 3 * len(rows)), squeeze=False)
    for a, r in zip(ax, rows):
        h = max(40, (r["y1"] - r["y0"]) // 2 + 15, (r["x1"] - r["x0"]) // 2 + 15)
        cy, cx = (r["y0"] + r["y1"]) // 2, (r["x0"] + r["x1"]) // 2
        sl = (slice(max(cy - h, 0), cy + h), slice(max(cx - h, 0), cx + h))
        rr, c = R["ref"][sl], ch[sl]
        err = np.full(rr.shape, np.nan)
        dec = (c < 2) & (rr != 255)
        chg = (rr == 1) | (rr == 2)
        for k, m in enumerate((~chg & (c == 0), chg & (c == 1), chg & (c == 0), ~chg & (c == 1))):
            err[dec & m] = k
        for j, (im, cm, lim) in enumerate(((v0[sl], "gray", None), (v1[sl], "gray", None),
                                           (R["diff"][sl], "RdBu", (-8, 8)), (err, err_cmap, (0, 3)))):
            if lim is None:
                f = np.isfinite(im)
                lim = tuple(np.percentile(im[f], [2, 98])) if f.any() else (0, 1)
            a[j].imshow(im, cmap=cm, vmin=lim[0], vmax=lim[1], interpolation="nearest")
            a[j].set_xticks([])
            a[j].set_yticks([])
        a[0].set_title(f"{r['kind']} {r['cls']} n{r['n']} y{cy} x{cx} CARS dh {r['cars_dh']:.1f}", fontsize=8,
                       loc="left")
    fig.suptitle("base | target | CARS dh (red loss, blue gain) | TN white, TP green, FN blue, FP red")
    fig.tight_layout()
    fig.savefig(path, dpi=55)
    plt.close(fig)


def analyse(store: str, image: str | None, R: dict, list_blobs=False, png: Path | None = None):
    from offnadir.store import open_dataset

    ds = open_dataset(store)
    names = [str(n) for n in ds.image.values]
    targets = [image] if image else names[1:]
    el = ds["elevated"].values.astype(bool)
    ill = ds["illumination"].values
    for img in targets:
        i = names.index(img)
        ch, p = ds["change"].values[i], ds["probability"].values[i]
        shadow = (ill[0] == 0) | (ill[i] == 0)
        cls, fn, fp, dec, chg = cell_classes(R, ch, el, shadow)
        att = attribution(R, ch, p, dec, chg)
        print(f"\n## {store} : {img}  (FN {int(fn.sum())}, FP {int(fp.sum())} cells; 1 m band "
              f"{100 * att.pop('band share'):.0f} % of the decided cells)")
        print("  " + "; ".join(f"{k}: F1 {f:.3f} AUC {a:.3f}" for k, (f, a) in att.items()))
        dh = ds["dh"].values[i] if "dh" in ds else None
        maps = {"el": el, "shadow": shadow, "p": p, "ev": ds["evidence"].values[i], "dh": dh,
                "v0": ds["value"].values[0, 0], "v1": ds["value"].values[i, 0], "ch": ch}
        rows = blobs(R, cls, fn, fp, maps)
        for kind, m, nm in (("FN", fn, FN_CLASSES), ("FP", fp, FP_CLASSES)):
            c = np.bincount(cls[m], minlength=len(nm))
            ob = [r for r in rows if r["kind"] == kind]
            print(f"  {kind} | class | cells (share) | blobs >= 100 m² (cells)")
            for k, name in enumerate(nm):
                bk = [r for r in ob if r["cls"] == name]
                print(f"  {kind} | {name} | {c[k]} ({100 * c[k] / max(m.sum(), 1):.0f} %) | "
                      f"{len(bk)} ({sum(r['n'] for r in bk)})")
        if list_blobs:
            keys = ("kind", "cls", "n", "cy", "cx", "cars_dh", "elevated", "shadow", "interp", "prob",
                    "evidence", "dh")
            print("  " + " ".join(f"{k:>14}" if k == "cls" else f"{k:>8}" for k in keys))
            for r in rows:
                print("  " + " ".join(f"{r[k]:>14}" if k == "cls" else
                                      (f"{r[k]:>8.2f}" if isinstance(r[k], float) else f"{r[k]:>8}") for k in keys))
        if png is not None:
            png.mkdir(parents=True, exist_ok=True)
            stem = f"{Path(store).stem}_{img}"
            for kind in ("FN", "FP"):
                sheet(png / f"{stem}_{kind}.png", R, maps, [r for r in rows if r["kind"] == kind])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="+", help="PATH or PATH:IMAGE")
    ap.add_argument("--reference-dir", type=Path, default=REF_DIR)
    ap.add_argument("--list", action="store_true", help="print every blob >= 100 m²")
    ap.add_argument("--png", type=Path, help="write contact sheets of the largest blobs here")
    a = ap.parse_args(argv)
    R = load_reference(a.reference_dir)
    for s in a.stores:
        path, image = s.rsplit(":", 1) if ":" in s and not s.endswith(".zarr") else (s, None)
        analyse(path, image, R, a.list, a.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
