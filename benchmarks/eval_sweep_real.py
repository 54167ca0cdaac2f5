"""Evaluate the same-date height sweep (``dh``) on real imagery we did not make.

1. Kahramanmaraş (CNES picanteo, Pleiades pan): pre CARS DSM, the 2023-04-15 stereo pair
   ``post_event_img1`` + ``post_event_img2`` (and the 2016 ``pre_event_img1`` as base, a group of
   its own). Prints the median |dh - CARS (post - pre)| on changed cells of ``reference_change.tif``
   (target <= 1.5 m) and P/R/F1 of the change map from dh alone (:func:`offnadir.cube.sweep.dh_change`,
   target F1 >= 0.7) on the reference's decided cells where dh is measured (and, for the record,
   on all decided cells with unmeasured counted as no change).
2. Same-date pairs on their own DSM (nothing changed): s2p Marseille triplet, s2p Réunion pair.
   Prints the fraction of measured cells with |dh| > one storey (target <= 2 %) and the fraction
   the change map flags.

Writes PNG quicklooks (dh beside the CARS difference) into --out. Usage::

    python benchmarks/eval_sweep_real.py --out /tmp/h3/eval [--workers 1] [--chunk 1024] [--dsm-test region|prediction]
                                         [--config FILE]

``--dsm-test window`` / ``region`` / ``prediction`` / ``on_level``: the window test alone, the sweep's region stage, the DSM's prediction
at the best
height (config ``height_sweep.dsm_test``, see
:mod:`offnadir.cube.sweep`) instead of the default off-level test.

``--config FILE``: a YAML run config merged over each job (after ``--dsm-test`` and ``--no-tie-bias``),
validated as ``offnadir run`` validates (:mod:`eval_config`); exit status 2 with one line when FILE
is not a valid config.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402
import eval_config  # noqa: E402

PIC = bc.REAL / "picanteo"
S2P = bc.REAL / "s2p" / "tests" / "data"


TIE_BIAS = True
#: the sweep's test of the DSM height (config height_sweep.dsm_test; --dsm-test)
DSM_TEST = "off_level"
#: --config FILE: a run config merged over each job (None: the job as it is)
CONFIG = None


def run_sweep(dsm, images, out: Path, *, workers: int, chunk: int):
    """Cube + height sweep (no change detection) with the pipeline's defaults; the store as a Dataset."""
    import xarray as xr

    from offnadir.config import validate
    from offnadir.cube.sweep_stage import SweepStage
    from offnadir.pipeline import run_config

    job = {"dsm": {"path": str(dsm), "vertical_datum": "ellipsoid"}, "images": images,
           "output": {"path": str(out), "overwrite": True}, "tiling": {"chunk": chunk},
           "cluster": {"n_workers": workers}, "tie_bias": {"enabled": TIE_BIAS},
           "height_sweep": {"dsm_test": DSM_TEST}}
    cfg = validate(job, source="eval_sweep_real") if CONFIG is None else eval_config.job_config(job, CONFIG)
    t0 = time.perf_counter()
    run_config(cfg, quiet=True, stage_hooks=(SweepStage(quiet=True),))
    dt = time.perf_counter() - t0
    return xr.open_zarr(str(out)).load(), dt


def prf(pred, truth, where):
    tp = int((pred & truth & where).sum())
    fp = int((pred & ~truth & where).sum())
    fn = int((~pred & truth & where).sum())
    p = tp / max(tp + fp, 1)
    r = tp / max(tp + fn, 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def kahramanmaras(out: Path, workers: int, chunk: int) -> dict:
    import rasterio

    from offnadir.cube.sweep import STOREY_M, dh_change

    d = PIC / "docs" / "tutorials" / "data"
    der = PIC / "derived" / "cars_1.3.0"
    images = [{"path": str(d / f"{n}.tif"), "model": str(d / f"{n}.geom"), "date": date}
              for n, date in (("pre_event_img1", "2016-04-23"), ("post_event_img1", "2023-04-15"),
                              ("post_event_img2", "2023-04-15"))]
    ds, dt = run_sweep(der / "pre" / "dsm.tif", images, out / "km.zarr", workers=workers, chunk=chunk)
    k = 1  # post_event_img1 (img2 carries the same map)
    dh = ds["dh"].values[k].astype(np.float64)
    sig = ds["dh_sigma"].values[k].astype(np.float64)
    assert np.array_equal(np.nan_to_num(dh, nan=-999), np.nan_to_num(ds["dh"].values[2], nan=-999))
    with rasterio.open(der / "diff_post_minus_pre.tif") as f:
        diff = f.read(1).astype(np.float64)
    with rasterio.open(der / "reference_change.tif") as f:
        ref = f.read(1)
    changed = (ref == 1) | (ref == 2)
    decided = ref != 255
    m = changed & np.isfinite(dh) & np.isfinite(diff)
    stable = decided & ~changed & np.isfinite(dh)
    cmap = dh_change(dh, sig, abs(float(ds.x[1] - ds.x[0])))
    pred = (cmap == 1) | (cmap == 2)
    measured = cmap != 255
    res = {
        "seconds": dt,
        "cells": int(dh.size),
        "measured_fraction_of_decided": float(np.isfinite(dh[decided]).mean()),
        "median_abs_dh_minus_cars_changed_m": float(np.median(np.abs(dh[m] - diff[m]))),
        "changed_cells_measured": int(m.sum()),
        "median_abs_dh_stable_m": float(np.median(np.abs(dh[stable]))),
        "stable_beyond_storey": float((np.abs(dh[stable]) > STOREY_M).mean()),
        "prf_measured": prf(pred, changed, decided & measured),
        "prf_all_decided": prf(pred, changed, decided),
        "prf_loss_gain": [prf(cmap == c, ref == c, decided & measured) for c in (1, 2)],
        "sweep": ds.attrs.get("height_sweep", "")[:400],
    }
    _quicklook(out / "km_dh.png", dh, diff, ref, cmap)
    return res


def _quicklook(path, dh, diff, ref, cmap):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(24, 6.5))
    for a, img, title in ((ax[0], dh, "dh (height sweep, post pair vs pre CARS DSM)"),
                          (ax[1], diff, "CARS post - pre")):
        im = a.imshow(img, cmap="RdBu_r", vmin=-20, vmax=20)
        a.set_title(title)
        fig.colorbar(im, ax=a, shrink=0.7, label="m")
    ax[2].imshow(np.where(cmap == 255, np.nan, cmap), cmap="viridis", vmin=0, vmax=2, interpolation="nearest")
    ax[2].set_title("change from dh (0 none, 1 loss, 2 gain)")
    ax[3].imshow(np.where(ref == 255, np.nan, ref), cmap="viridis", vmin=0, vmax=2, interpolation="nearest")
    ax[3].set_title("reference_change.tif")
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def same_date(name, dsm, images, out: Path, workers: int, chunk: int) -> dict:
    from offnadir.cube.sweep import STOREY_M, dh_change

    # one acquisition (stereo/tri-stereo), one date group: the date of each crop's Airbus dataset name
    ims = [{"path": str(p)} for p in images]
    ds, dt = run_sweep(dsm, ims, out / f"{name}.zarr", workers=workers, chunk=chunk)
    dh = ds["dh"].values[0].astype(np.float64)
    sig = ds["dh_sigma"].values[0].astype(np.float64)
    ok = np.isfinite(dh)
    cmap = dh_change(dh, sig, abs(float(ds.x[1] - ds.x[0])))
    return {"seconds": dt, "measured_cells": int(ok.sum()), "measured_fraction": float(ok.mean()),
            "beyond_storey": float((np.abs(dh[ok]) > STOREY_M).mean()),
            "flagged_by_change_map": float(((cmap == 1) | (cmap == 2)).sum() / max((cmap != 255).sum(), 1)),
            "median_abs_dh_m": float(np.median(np.abs(dh[ok])))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/offnadir_eval_sweep", help="folder for stores and PNGs")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--no-tie-bias", action="store_true",
                    help="switch the tie-point bias pass off (config tie_bias.enabled: false)")
    from offnadir.cube.sweep import DSM_TESTS

    ap.add_argument("--dsm-test", choices=DSM_TESTS, default="off_level",
                    help="the sweep's test of the DSM height (config height_sweep.dsm_test)")
    ap.add_argument("--skip-km", action="store_true")
    ap.add_argument("--skip-same-date", action="store_true")
    eval_config.add_argument(ap)
    a = ap.parse_args(argv)
    eval_config.check(a.config)
    global TIE_BIAS, DSM_TEST, CONFIG
    TIE_BIAS = not a.no_tie_bias
    DSM_TEST = a.dsm_test
    CONFIG = a.config
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    # distributed sets its loggers' levels when it is first imported (after this), and its INFO
    # records (worker start, "Lost all workers" when the threaded cluster closes) reach the root
    # handler: drop them there, errors stay
    quiet = ("distributed", "bokeh", "tornado", "asyncio")
    for h in logging.getLogger().handlers:
        h.addFilter(lambda r: r.levelno >= logging.ERROR or not r.name.startswith(quiet))
    warnings.filterwarnings("ignore")
    ok = True
    if not a.skip_km:
        r = kahramanmaras(out, a.workers, a.chunk)
        print(f"\n== Kahramanmaraş: pre CARS DSM, post pair 2023-04-15 (dh of the pair), tie-point bias "
              f"{'on' if TIE_BIAS else 'off'}, DSM test {DSM_TEST}")
        print(f"run (cube + sweep): {r['seconds']:.1f} s, {r['cells']} cells; dh measured on "
              f"{100 * r['measured_fraction_of_decided']:.1f} % of decided cells")
        print(f"median |dh - CARS(post-pre)| on changed cells: {r['median_abs_dh_minus_cars_changed_m']:.2f} m "
              f"({r['changed_cells_measured']} cells)  [target <= 1.5]")
        print(f"stable cells: median |dh| {r['median_abs_dh_stable_m']:.2f} m, "
              f"{100 * r['stable_beyond_storey']:.1f} % beyond one storey")
        p, rr, f = r["prf_measured"]
        print(f"change map from dh, decided cells where dh is measured: P {p:.3f} R {rr:.3f} F1 {f:.3f}  "
              "[target F1 >= 0.7]")
        p2, r2, f2 = r["prf_all_decided"]
        print(f"  (all decided cells, unmeasured = no change: P {p2:.3f} R {r2:.3f} F1 {f2:.3f})")
        for lab, (p3, r3, f3) in zip(("loss", "gain"), r["prf_loss_gain"]):
            print(f"  {lab}: P {p3:.3f} R {r3:.3f} F1 {f3:.3f}")
        print(f"quicklook: {out / 'km_dh.png'}")
        ok &= r["median_abs_dh_minus_cars_changed_m"] <= 1.5 and f >= 0.7
    if not a.skip_same_date:
        print("\n== Same-date pairs on their own DSM (no change): fraction of measured cells with |dh| > 3 m "
              "[target <= 2 %]")
        cases = {
            "marseille_triplet": (S2P / "expected_output" / "triplet" / "dsm.tif",
                                  [S2P / "input_triplet" / f"img_0{k}.tif" for k in (1, 2, 3)]),
            "reunion_pair": (S2P / "expected_output" / "pair" / "dsm.tif",
                             [S2P / "input_pair" / f"img_0{k}.tif" for k in (1, 2)]),
        }
        for name, (dsm, ims) in cases.items():
            r = same_date(name, dsm, ims, out, a.workers, a.chunk)
            print(f"{name}: {100 * r['beyond_storey']:.2f} % beyond 3 m, change map flags "
                  f"{100 * r['flagged_by_change_map']:.2f} %, median |dh| {r['median_abs_dh_m']:.2f} m, measured "
                  f"{r['measured_cells']} cells ({100 * r['measured_fraction']:.0f} %), {r['seconds']:.1f} s")
            ok &= r["beyond_storey"] <= 0.02
    print("\nall targets met" if ok else "\nsome target NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(eval_config.main_with_errors(main))
