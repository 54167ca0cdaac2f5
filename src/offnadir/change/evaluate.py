"""Accuracy of change maps against a truth raster on the DSM grid.

Cells evaluated: visible in both images according to the cube (``visible == 1`` in the base and
the target) and, when an occlusion truth is given, ``truth_occluded == 0`` (visible in both views
by the truth's own reckoning). They are split into **elevated** cells (``truth_elevated == 1``, or,
without that raster, the store's ``elevated`` mask: height above the local ground >
``elevated_height``, as in segmentation) and **ground** cells.

Per method (``change``: the method the store was made with; ``change_ortho``: the ortho
baseline) and class, from the confusion counts TP, FP, FN, TN (change = positive):

* precision ``TP / (TP + FP)``, recall ``TP / (TP + FN)``, F1 ``2 TP / (2 TP + FP + FN)``;
* overall accuracy ``(TP + TN) / N``; false-alarm rate ``FP / (FP + TN)``;
* Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the overall accuracy and
  ``p_e = ((TP + FP)(TP + FN) + (FN + TN)(FP + TN)) / N^2``.

Against a height-change reference (0 none, 1 loss, 2 gain, 255 ignore; detected automatically,
or ``reference="height"``), "changed" is loss or gain, cells the map leaves undecided (2) or the
reference ignores (255) are left out, and score AUC and object recall are added
(:mod:`offnadir.change.reference`).

Undefined ratios (no positive, no cell) are reported as NaN (``null`` in JSON). The ``gain`` is the
ratio of the method's F1 to the baseline's, per class.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from offnadir.errors import DataError, InputFileError

CLASSES = ("elevated", "ground", "all")
SIBLINGS = {"elevated": "truth_elevated.tif", "occluded": "truth_occluded.tif"}


def metrics(truth, pred) -> dict:
    """Confusion counts and scores of boolean arrays ``truth``/``pred`` (same shape)."""
    t = np.asarray(truth, bool).ravel()
    p = np.asarray(pred, bool).ravel()
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    tn = int(np.sum(~t & ~p))
    n = tp + fp + fn + tn

    def ratio(a, b):
        return a / b if b > 0 else math.nan

    oa = ratio(tp + tn, n)
    pe = ratio((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn), n * n) if n else math.nan
    kappa = (oa - pe) / (1 - pe) if n and pe < 1 else math.nan
    return {"n": n, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn), "overall_accuracy": oa,
            "kappa": kappa, "false_alarm_rate": ratio(fp, fp + tn)}


def _open(store):
    import rioxarray  # noqa: F401  (the .rio accessor)
    import xarray as xr

    if isinstance(store, xr.Dataset):
        return store
    from offnadir.store import exists, location, open_dataset

    p = location(store)  # a URL (s3://...) stays text
    if not exists(p):
        raise InputFileError(f"{p}: change store not found. Make it with `offnadir detect ... -o {p}`.")
    try:
        return open_dataset(p)  # the stored codes (change 2 = unobservable), not CF-masked floats
    except Exception as e:  # noqa: BLE001 - any failure to read is bad input
        raise InputFileError(f"{p}: cannot be read as a Zarr store ({e}).") from None


def read_on_grid(path, ds, what: str) -> np.ndarray:
    """Band 1 of a raster that must lie on the store's DSM grid (shape, transform, CRS)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: {what} raster not found.")
    try:
        with rasterio.open(p) as src:
            arr = src.read(1)
            shape, tr, crs = src.shape, src.transform, src.crs
    except RasterioIOError as e:
        raise InputFileError(f"{p}: cannot be read as a raster ({e}).") from None
    ny, nx = ds.sizes["y"], ds.sizes["x"]
    gt = ds.attrs.get("spatial:transform")
    grid = f"{ny} x {nx} cells" + (f", origin ({gt[2]:.3f}, {gt[5]:.3f}), cell {gt[0]:g}" if gt else "")
    fix = ("resample it onto the DSM grid first, e.g. `gdalwarp -r near -te XMIN YMIN XMAX YMAX -tr DX DY "
           f"{p.name} {p.stem}_on_grid.tif` with the DSM's extent and cell size (`offnadir info DSM.tif`).")
    if shape != (ny, nx):
        raise DataError(f"{p}: the {what} raster is {shape[0]} x {shape[1]} cells but the change maps are on the "
                        f"DSM grid, {grid}; {fix}")
    if gt is not None:
        a, b, c, d, e, f = gt
        tol = 1e-3 * abs(a)
        if any(abs(u - v) > tol for u, v in zip((tr.a, tr.b, tr.c, tr.d, tr.e, tr.f), (a, b, c, d, e, f))):
            raise DataError(f"{p}: the {what} raster's grid (origin ({tr.c:.3f}, {tr.f:.3f}), cell {tr.a:g}) is not "
                            f"the DSM grid ({grid}); {fix}")
    grid_wkt = _grid_crs_wkt(ds)
    if crs is not None and grid_wkt:
        from pyproj import CRS

        a_crs, b_crs = CRS.from_user_input(crs.to_wkt()), CRS.from_user_input(grid_wkt)
        if not a_crs.equals(b_crs, ignore_axis_order=True) and a_crs.to_epsg() != b_crs.to_epsg():
            raise DataError(f"{p}: the {what} raster's CRS ({a_crs.name}) is not the DSM's ({b_crs.name}); {fix}")
    return arr


def _grid_crs_wkt(ds):
    if ds.attrs.get("proj:wkt2"):
        return ds.attrs["proj:wkt2"]
    for name in ("spatial_ref",):
        if name in ds.variables:
            a = ds[name].attrs
            if a.get("crs_wkt") or a.get("spatial_ref"):
                return a.get("crs_wkt") or a.get("spatial_ref")
    crs = ds.rio.crs
    return crs.to_wkt() if crs is not None else None


def evaluate(store, truth, *, elevated=None, occluded=None, image=None, siblings: bool = True,
             reference: str = "auto") -> dict:
    """Scores of the store's change maps (and its ortho baseline) against ``truth`` (0/1 raster
    on the DSM grid). ``elevated``/``occluded``: truth rasters (default: ``truth_elevated.tif`` /
    ``truth_occluded.tif`` next to ``truth`` when ``siblings``). ``image``: target image name or
    index (default: every target). Returns a dict (see :func:`format_report`)."""
    ds = _open(store)
    if "change" not in ds:
        raise DataError("the store has no change maps; run `offnadir detect` (or `offnadir run` with a change "
                        "section) to make them.")
    tpath = Path(truth)
    truth_a = read_on_grid(tpath, ds, "truth")
    used = {"truth": str(tpath)}
    rasters = {}
    for key, given in (("elevated", elevated), ("occluded", occluded)):
        path = Path(given) if given else (tpath.parent / SIBLINGS[key] if siblings else None)
        if path is not None and (given or path.exists()):
            rasters[key] = read_on_grid(path, ds, key)
            used[key] = str(path)
    if "elevated" in rasters:
        elev = rasters["elevated"] == 1
    elif "elevated" in ds:
        elev = np.asarray(ds["elevated"].values) == 1
        used["elevated"] = "store (DSM height above the local ground)"
    else:
        elev = _elevated_from_dsm(ds)
        used["elevated"] = "DSM height above the local ground (default options)"
    vis = np.asarray(ds["visible"].values)
    names = [str(v) for v in ds["image"].values]
    targets = _targets(names, image)
    methods = [m for m in ("change", "change_ortho") if m in ds]
    labels = {"change": ds.attrs.get("change_method", "patch"), "change_ortho": "ortho"}
    from offnadir.change import reference as R

    if reference not in R.KINDS:
        raise DataError(f"reference kind {reference!r}: choose one of {', '.join(R.KINDS)}.")
    used["reference_kind"] = R.kind(truth_a, reference)
    height = used["reference_kind"] == "height"
    valid_truth = (truth_a != R.IGNORE) if height else np.isin(truth_a, (0, 1))
    truth_bin = np.isin(truth_a, (1, 2)) if height else truth_a == 1
    cell_area = float(abs(ds.attrs["spatial:transform"][0] * ds.attrs["spatial:transform"][4])) \
        if ds.attrs.get("spatial:transform") else 1.0
    out = {"inputs": used, "images": {}}
    for t in targets:
        cells = (vis[0] == 1) & (vis[t] == 1) & valid_truth
        if "occluded" in rasters:
            cells &= rasters["occluded"] == 0
        res = {}
        for m in methods:
            chm = np.asarray(ds[m].isel(image=t).values)
            pred = chm == 1
            dec = cells & (chm != 2) if height else cells
            res[labels[m]] = {c: metrics(truth_bin[sel], pred[sel])
                              for c, sel in (("elevated", dec & elev), ("ground", dec & ~elev), ("all", dec))}
            if height:
                pname = "probability" if m == "change" and "probability" in ds else \
                    ("score_ortho" if m == "change_ortho" and "score_ortho" in ds else "score")
                prob = np.asarray(ds[pname].isel(image=t).values, np.float64) if pname in ds else None
                res.setdefault("reference", {})[labels[m]] = R.height_scores(truth_a, chm, prob, cells, cell_area)
        if "ortho" in res and labels["change"] in res and labels["change"] != "ortho":
            res["gain_f1"] = {c: _div(res[labels["change"]][c]["f1"], res["ortho"][c]["f1"]) for c in CLASSES}
        out["images"][names[t]] = res
    return out


def _div(a, b):
    return a / b if (b and not math.isnan(b) and not math.isnan(a)) else math.nan


def _targets(names, image):
    if image is None:
        return list(range(1, len(names)))
    if isinstance(image, int) or (isinstance(image, str) and image.isdigit()):
        k = int(image)
    elif image in names:
        k = names.index(image)
    else:
        raise DataError(f"image {image!r} is not in the store; its images are {', '.join(names)} (the first is "
                        "the base).")
    if not 1 <= k < len(names):
        raise DataError(f"image {image!r}: choose a target image (index 1..{len(names) - 1}); {names[0]} is the base.")
    return [k]


def _elevated_from_dsm(ds):
    from offnadir.change.options import ChangeOptions
    from offnadir.change.segment import elevated_mask

    cell = abs(float(ds["x"].values[1] - ds["x"].values[0])) if ds.sizes["x"] > 1 else 1.0
    return elevated_mask(np.asarray(ds["dsm"].values, np.float64), ChangeOptions(), cell)


def format_report(rep: dict) -> str:
    """A plain-text table of :func:`evaluate`'s result."""
    cols = ("precision", "recall", "f1", "overall_accuracy", "kappa", "false_alarm_rate")
    head = f"{'method':<8} {'class':<9} {'cells':>9} " + " ".join(f"{c[:9]:>9}" for c in cols)
    lines = [f"truth: {rep['inputs'].get('truth')}",
             f"occlusion truth: {rep['inputs'].get('occluded', 'none (cube visibility only)')}",
             f"elevated: {rep['inputs'].get('elevated')}"]
    for name, res in rep["images"].items():
        lines += ["", f"target image {name} (cells visible in both images)", head]
        for method, per in res.items():
            if method in ("gain_f1", "reference"):
                continue
            for c in CLASSES:
                m = per[c]
                lines.append(f"{method:<8} {c:<9} {m['n']:>9} " + " ".join(f"{_fmt(m[k]):>9}" for k in cols))
        for method, r in res.get("reference", {}).items():
            o = r["objects"]
            lines.append(f"{method:<8} height-change reference, decided cells {r['n']}: P {_fmt(r['precision'])} "
                         f"R {_fmt(r['recall'])} F1 {_fmt(r['f1'])} kappa {_fmt(r['kappa'])} score AUC "
                         f"{_fmt(r['auc'])} flagged {_fmt(r['flagged'])}; objects >= {o['min_area_m2']:g} m2 found "
                         f"{o.get('found', 0)}/{o.get('objects', 0)} (recall {_fmt(o.get('recall', math.nan))}, "
                         f"loss {_fmt(o.get('loss_recall', math.nan))}, gain {_fmt(o.get('gain_recall', math.nan))})")
        if "gain_f1" in res:
            g = res["gain_f1"]
            lines.append("F1 gain over the ortho baseline: " + ", ".join(f"{c} {_fmt(g[c])}x" for c in CLASSES))
    return "\n".join(lines)


def _fmt(v):
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def to_json(rep: dict) -> str:
    import json

    def clean(o):
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, float) and math.isnan(o):
            return None
        return o

    return json.dumps(clean(rep), indent=2)
