"""Time series (issue 9 item 2): appending date by date equals one run over all dates, each append
computes only its new date, and the change history matches the truth dates. Prints figures.

    python3 benchmarks/eval_timeseries.py [--size 256] [--dates 5] [--seed 3] [--workdir DIR]

What it does, on a simulated series (:mod:`offnadir.simulate.series`: one image per date, other
view and sun each time, buildings built/demolished/raised/re-roofed at known dates):

1. ``detect`` over all dates at once (the reference);
2. ``detect`` over the first two dates, then ``append`` of every later date, one at a time,
   counting what each append computes (cube tiles, change tiles, and dask tasks from the task
   stream of the same local cluster) next to the one-shot run's;
3. every variable and coordinate of the two stores compared bit for bit (attributes too, as JSON);
4. the history maps against the truth: for cells whose surface changed at date ``k``, how often
   ``first_change`` is date ``k``; for cells that never changed, how often a change is reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

#: attributes that legitimately differ between the two stores: the append's own record (and the
#: config's ``output`` section, where each store was written: left out of the comparison below)
ATTRS_SKIP = {"offnadir:appends"}


def _open(p):
    import xarray as xr

    return xr.open_zarr(str(p), consolidated=False, mask_and_scale=False)


def compare(a_path, b_path) -> dict:
    """{variable: 'same' | reason} over the union of variables, plus attribute differences."""
    a, b = _open(a_path), _open(b_path)
    out = {}
    for v in sorted(set(a.variables) | set(b.variables)):
        if v not in a or v not in b:
            out[v] = f"only in {'append' if v in a else 'one-shot'}"
            continue
        x, y = a[v].values, b[v].values
        if x.shape != y.shape:
            out[v] = f"shape {x.shape} vs {y.shape}"
        elif x.dtype.kind == "f":
            out[v] = "same" if np.array_equal(x, y, equal_nan=True) else f"{int(np.sum(~((x == y) | (np.isnan(x) & np.isnan(y)))))} values differ"
        elif x.dtype.kind == "M":
            out[v] = "same" if np.array_equal(x.view("int64"), y.view("int64")) else "values differ"
        else:
            out[v] = "same" if np.array_equal(x, y) else f"{int(np.sum(x != y))} values differ"
    attrs = {}
    for k in sorted(set(a.attrs) | set(b.attrs)):
        if k in ATTRS_SKIP:
            continue
        va, vb = a.attrs.get(k), b.attrs.get(k)
        try:
            va, vb = json.loads(va), json.loads(vb)
        except (TypeError, ValueError):
            pass
        if k == "config" and isinstance(va, dict) and isinstance(vb, dict):
            va, vb = ({x: y for x, y in c.items() if x != "output"} for c in (va, vb))
        if va != vb:
            attrs[k] = "differs"
    return {"vars": out, "attrs": attrs}


def history_scores(store, truth_date) -> dict:
    from offnadir.change.history import decode_days

    ds = _open(store)
    first = decode_days(ds["first_change"].values)
    obs = ~np.isnat(decode_days(ds["last_observed"].values))
    t = np.asarray(ds["time"].values, dtype="datetime64[D]")
    ch = ds["change"].values
    # cells every target observed: the date of the change is knowable there
    seen_all = np.all(ch[1:] != 2, axis=0)
    out = {"cells": int(truth_date.size), "observed_once": int(obs.sum()), "observed_by_all": int(seen_all.sum())}
    changed = truth_date > 0
    for name, m in (("all", np.ones_like(seen_all)), ("seen_by_all", seen_all)):
        c = changed & m
        hit = np.zeros(truth_date.shape, bool)
        for k in range(1, len(t)):
            hit |= (truth_date == k) & (first == t[k])
        out[f"changed_cells_{name}"] = int(c.sum())
        out[f"first_change_exact_{name}"] = float(hit[c].mean()) if c.any() else float("nan")
        out[f"first_change_any_{name}"] = float((~np.isnat(first))[c].mean()) if c.any() else float("nan")
        u = (truth_date < 0) & m
        out[f"unchanged_cells_{name}"] = int(u.sum())
        out[f"false_change_{name}"] = float((~np.isnat(first))[u].mean()) if u.any() else float("nan")
    per = {}
    for k in range(1, len(t)):
        m = truth_date == k
        seen_k = m & (ch[k] != 2)
        early = np.zeros(truth_date.shape, bool)
        for j in range(1, k):
            early |= ch[j] == 1
        per[str(t[k])] = {"cells": int(m.sum()),
                          "first_change_exact": float((first[m] == t[k]).mean()) if m.any() else float("nan"),
                          "observable_at_date": float(seen_k.sum() / max(m.sum(), 1)),
                          "detected_at_date": float((ch[k][seen_k] == 1).mean()) if seen_k.any() else float("nan"),
                          "flagged_before": float(early[m].mean()) if m.any() else float("nan")}
    out["per_date"] = per
    out["n_changes_histogram"] = {int(v): int(n) for v, n in zip(*np.unique(ds["n_changes"].values,
                                                                            return_counts=True))}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--dates", type=int, default=5)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--workdir", help="keep the series and stores here (default: a temporary folder)")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    logging.basicConfig(level=logging.ERROR)
    from distributed import Client, LocalCluster, get_task_stream

    from offnadir.append import append_images
    from offnadir.config import validate
    from offnadir.pipeline import detect_config
    from offnadir.simulate.series import DEFAULT_SERIES, simulate_series

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="eval_timeseries_"))
    for name in ("one.zarr", "app.zarr"):
        shutil.rmtree(work / name, ignore_errors=True)
    t0 = time.perf_counter()
    s = simulate_series(work / "data", seed=a.seed, size=a.size, views=DEFAULT_SERIES[:a.dates], overwrite=True)
    print(f"series: {len(s.images)} dates {', '.join(s.dates)}, {a.size}x{a.size} cells, chunk {a.chunk}; "
          f"changed cells per date {[int((s.change_date == k).sum()) for k in range(len(s.images))]} "
          f"({time.perf_counter() - t0:.1f} s)")
    for k, r in enumerate(json.loads((work / "data" / "series.json").read_text())["dates"]):
        print(f"  date {k}: off-nadir {r['off_nadir_deg']:.1f} deg, view azimuth {r['azimuth_deg']:.0f} deg, "
              f"sun azimuth {r['sun_azimuth_deg']:.0f} deg elevation {r['sun_elevation_deg']:.1f} deg")

    def cfg(images, out):
        return validate({"dsm": {"path": str(s.dsm)}, "images": [str(p) for p in images], "output": {"path": str(out)},
                         "tiling": {"chunk": a.chunk}}, base=".", source="eval")

    rows = []
    #: the functions of the tasks that do tile work (cube, illumination, change passes)
    tile_fns = ("write_tile_at", "write_tile", "cube_tile", "light_tile", "_stats_tile", "_segment_and_mark",
                "tile_border_pairs", "evidence_tile", "_sums_tile", "_maps_tile", "block_data")

    def tile_tasks(data):
        names = [str(t["key"]) for t in data]
        return sum(1 for n in names if any(f in n for f in tile_fns))

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        t = time.perf_counter()
        with get_task_stream(client) as ts:
            detect_config(cfg(s.images, work / "one.zarr"), quiet=True, client=client)
        rows.append(("one-shot detect, all dates", len(s.images), "-", "-", tile_tasks(ts.data), len(ts.data),
                     time.perf_counter() - t))
        t = time.perf_counter()
        with get_task_stream(client) as ts:
            detect_config(cfg(s.images[:2], work / "app.zarr"), quiet=True, client=client)
        rows.append(("detect, first two dates", 2, "-", "-", tile_tasks(ts.data), len(ts.data), time.perf_counter() - t))
        exceptions = []
        for k in range(2, len(s.images)):
            t = time.perf_counter()
            with get_task_stream(client) as ts:
                summ = append_images(work / "app.zarr", [{"path": str(s.images[k])}], client=client, quiet=True)
            rows.append((f"append date {k} ({s.dates[k]})", 1, summ["cube_tiles"], summ["change_tiles"],
                         tile_tasks(ts.data), len(ts.data), time.perf_counter() - t))
            exceptions += [f"date {k}: {e}" for e in summ["exceptions"]]
    n_tiles = (-(-a.size // a.chunk)) ** 2
    print(f"\nwork per run ({n_tiles} tiles; tasks from the dask task stream: 'tile tasks' read and compute tiles "
          "(each one over the run's images), 'all tasks' adds reductions and xarray/dask bookkeeping):")
    print(f"  {'run':34s} {'images':>6s} {'cube tiles':>10s} {'change tiles':>12s} {'tile tasks':>10s} "
          f"{'all tasks':>9s} {'wall s':>7s}")
    for r in rows:
        print(f"  {r[0]:34s} {r[1]:>6} {r[2]!s:>10} {r[3]!s:>12} {r[4]:>10} {r[5]:>9} {r[6]:>7.1f}")
    for e in exceptions:
        print(f"  note: {e}")

    cmp = compare(work / "app.zarr", work / "one.zarr")
    same = [v for v, r in cmp["vars"].items() if r == "same"]
    diff = {v: r for v, r in cmp["vars"].items() if r != "same"}
    print(f"\nappend date by date vs one run over all dates: {len(same)} of {len(cmp['vars'])} variables and "
          f"coordinates identical bit for bit")
    for v, r in diff.items():
        print(f"  DIFFERS {v}: {r}")
    print(f"  attributes compared as JSON (all but {', '.join(sorted(ATTRS_SKIP))} and the config's output "
          "section): "
          + ("all equal" if not cmp["attrs"] else "differ: " + ", ".join(cmp["attrs"])))

    h = history_scores(work / "app.zarr", s.change_date)
    print("\nhistory vs truth dates (first_change == the date the surface changed):")
    for name, what in (("all", "all cells"), ("seen_by_all", "cells every target observed")):
        print(f"  {what}: changed {h[f'changed_cells_{name}']}, first_change exact "
              f"{h[f'first_change_exact_{name}']:.3f}, any change reported {h[f'first_change_any_{name}']:.3f}; "
              f"unchanged {h[f'unchanged_cells_{name}']}, false change {h[f'false_change_{name}']:.3f}")
    pieces = json.loads((work / "data" / "series.json").read_text())["pieces"]
    for k, (d, r) in enumerate(h["per_date"].items(), start=1):
        kinds = ", ".join(f"{p['kind']} ({p['cells']})" for p in pieces if p["date_index"] == k) or "none"
        print(f"  changed at {d} [{kinds}]: first_change exact {r['first_change_exact']:.3f}; the date's map: "
              f"observable {r['observable_at_date']:.3f}, change where observable {r['detected_at_date']:.3f}; "
              f"flagged at an earlier date {r['flagged_before']:.3f}")
    print(f"  n_changes histogram: {h['n_changes_histogram']}")
    print(f"\n(stores in {work}; total {time.perf_counter() - t0:.0f} s)")
    return 0 if not diff else 1


if __name__ == "__main__":
    sys.exit(main())
