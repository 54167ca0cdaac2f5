"""Evaluation: change detection on the hard simulated scenes, scored against the structural truth.

Per seed: ``offnadir simulate DIR --seed N --preset hard`` (one band, every surface re-textured at
the second date, dry season, per-band gain/offset/gamma drawn from the seed, no time or sun in the
files, 20 % of the trees cut or grown), then ``offnadir detect`` with defaults only (the sun is
estimated from the images and the DSM), then ``offnadir evaluate`` against

* ``truth_structural.tif`` (a height-change reference: 1 loss, 2 gain, 255 left out): built,
  demolished, raised, tree cut or grown; re-roofs (material only) and height changes below one
  pixel of parallax left out — the reasons are in :mod:`offnadir.simulate.truth`. This is the
  headline: **elevated F1** (target >= 0.9), on the decided cells, with score AUC and the recall
  of changed objects >= 100 m² that ``offnadir evaluate`` adds for such references;
* ``truth_change.tif`` (height or material): the old truth, for comparison.

It also prints where the misses and false alarms are, per truth class (``truth_change_class.tif``,
cells scored by ``offnadir evaluate``: visible in both images by the cube and by the truth), the
ground false-alarm rate in and out of shadow (``truth_shadow.tif``), the elevated F1 on buildings
only (tree changes left out too), and the sun the change stage used (store attribute
``change_sun``) against the truth in scene.json (target: within 5 degrees). The unchanged ground's
false alarms are also split by how the old DSM's predicted shadows (the store's ``illumination``)
match the true ones (:func:`shadow_classes`): shadows as predicted, unexplained (a new or raised
caster's), missing (a caster gone or lowered), and ground lit at both dates; and by distance to the
grid's edge (within half the evidence window, ``change_calibration`` ``window_cells``, the window is
cut by the edge).

    python benchmarks/eval_hard_sim.py [--seeds 0 1 2 3 4 5] [--size 256] [--work /tmp/eval_hard_sim]
                                       [--workers 1] [--reuse] [--json out.json] [--stereo]
                                       [--base-view 5,90] [--target-view 30,270] [--config FILE]
                                       [--true-sun]

``--stereo``: the second date is a same-date pair (``offnadir simulate --new-views 2``: target.tif
and target2.tif, same time and sun, B/H 0.3, every other file as in the one-image scene of the seed),
detected with the three images and their dates given as for Kahramanmaras (``--date`` per image, the
pair sharing one), so that the height sweep measures ``dh``. Each target is scored as above
(target2 with ``truth_occluded_target2.tif``), and ``dh`` is compared with the true height change
``dsm_epoch2 - dsm``: median absolute error on the changed cells (structural truth loss or gain)
where the sweep measured it, the share of those cells it measured, and the median ``|dh|`` on
unchanged cells. Scenes and stores go to ``hard_stereoN`` / ``hard_stereoN.zarr``.

``--config FILE``: a YAML run config merged over the detect job (e.g. ``height_sweep: {dsm_test:
off_level}``), validated as ``offnadir run`` validates (:mod:`eval_config`); the job then runs as
``offnadir run`` of that config (the same DSM, images, dates, workers and change detection) instead
of ``offnadir detect``. Use a ``--work`` of its own: ``--reuse`` cannot tell the stores apart.

``--true-sun``: every image's true sun (scene.json) is given to the job (``--sun AZ,EL`` per image,
or the images' ``sun_azimuth``/``sun_elevation`` with ``--config``) instead of being estimated: an
oracle of how much of each figure the sun estimate costs. Use a ``--work`` of its own.

Exits 1 when a target is missed; 2 (one line) when --config is not a valid config.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_config  # noqa: E402

F1_TARGET = 0.9
SUN_LIMIT_DEG = 5.0
#: a false alarm within this distance (m) of a changed cell counts as "near a change": two cells at
#: 0.5 m, about how far a detector working on windows or patches blurs a changed object's edge;
#: beyond it a false alarm has a cause of its own (shadow, texture, a wrong parallax)
NEAR_M = 1.0


def _run(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return time.perf_counter() - t


def _read(path):
    import rasterio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path) as ds:
            return ds.read(1)


def _angle(az1, el1, az2, el2):
    def v(az, el):
        a, e = math.radians(az), math.radians(el)
        return np.array([math.cos(e) * math.sin(a), math.cos(e) * math.cos(a), math.sin(e)])

    return math.degrees(math.acos(float(np.clip(v(az1, el1) @ v(az2, el2), -1, 1))))


def one_seed(seed: int, size: int, work: Path, workers: int, reuse: bool, stereo: bool = False,
             sim_views: tuple = (), config: Path | None = None, true_sun: bool = False) -> dict:
    """Simulate and detect one seed; the scores of the (first) target, and with ``stereo`` those
    of target2 (``target2``) and the height sweep's (``dh``) as well. ``sim_views``: extra
    arguments of ``offnadir simulate`` (``--base-view``/``--target-view`` and their values);
    ``config``: a YAML run config merged over the detect job (:mod:`eval_config`); ``true_sun``: every
    image's true sun (scene.json) given to the job instead of estimating it (an oracle)."""
    d = work / (f"hard_stereo{seed}" if stereo else f"hard{seed}")
    store = work / (f"hard_stereo{seed}.zarr" if stereo else f"hard{seed}.zarr")
    t_sim = t_det = 0.0
    if not (reuse and (d / "truth_structural.tif").exists() and (not stereo or (d / "target2.tif").exists())):
        t_sim = _run([sys.executable, "-m", "offnadir.cli", "simulate", str(d), "--seed", str(seed), "--size",
                      str(size), "--preset", "hard", "--overwrite"] + (["--new-views", "2"] if stereo else [])
                     + list(sim_views))
    meta = json.loads((d / "scene.json").read_text())
    if not (reuse and store.exists()):
        views = ["base", "target"] + (["target2"] if stereo else [])
        cmd = [sys.executable, "-m", "offnadir.cli", "detect", "--dsm", str(d / "dsm.tif"), "--base",
               str(d / "base.tif")]
        for v in views[1:]:
            cmd += ["--target", str(d / f"{v}.tif")]
        if stereo:  # the files carry no time: dates given per image, as for Kahramanmaras
            for v in views:
                cmd += ["--date", meta["views"][v]["acquired"][:10]]
        suns = ({v: (meta["views"][v]["sun_azimuth_deg"], meta["views"][v]["sun_elevation_deg"]) for v in views}
                if true_sun else {})
        if true_sun:  # the oracle: the truth given per image, in image order
            for v in views:
                cmd += ["--sun", f"{suns[v][0]!r},{suns[v][1]!r}"]
        if config is not None:  # the same job as a run config, with the file's options over it
            job = {"dsm": {"path": str(d / "dsm.tif")},
                   "images": [{"path": str(d / f"{v}.tif"), **({"date": meta["views"][v]["acquired"][:10]}
                                                            if stereo else {}),
                               **({"sun_azimuth": suns[v][0], "sun_elevation": suns[v][1]} if true_sun else {})}
                              for v in views],
                   "output": {"path": str(store), "overwrite": True}, "cluster": {"n_workers": workers},
                   "change": {"enabled": True}}
            cfg = eval_config.write_job(job, config, work / f"{store.stem}.job.json")
            cmd = [sys.executable, "-m", "offnadir.cli", "run", str(cfg), "--quiet"]
            t_det = _run(cmd)
        else:
            t_det = _run(cmd + ["-o", str(store), "--workers", str(workers), "--quiet", "--overwrite"])
    out = score_target(d, store, meta, 1, "truth_occluded.tif")
    out.update(seed=seed, simulate_s=t_sim, detect_s=t_det)
    if stereo:
        out["target2"] = score_target(d, store, meta, 2, "truth_occluded_target2.tif")
        out["dh"] = score_dh(d, store, meta)
        out["base_to_height"] = meta["stereo"]["base_to_height"]
    return out


def score_dh(d: Path, store: Path, meta: dict) -> dict:
    """The height sweep's ``dh`` of the pair against ``dsm_epoch2 - dsm``."""
    import xarray as xr

    from offnadir.simulate import truth as T

    ds = xr.open_zarr(store)
    if "dh" not in ds:
        return dict(measured=False)
    dh = np.asarray(ds["dh"].values[1], np.float64)
    vis = np.asarray(ds["visible"].values)
    true = _read(d / "dsm_epoch2.tif").astype(np.float64) - _read(d / "dsm.tif")
    sb = _read(d / "truth_structural.tif")
    pair = (vis[1] == 1) & (vis[2] == 1)
    changed = np.isin(sb, (T.LOSS, T.GAIN)) & pair
    unchanged = (sb == 0) & pair
    ok = np.isfinite(dh)
    err = np.abs(dh - true)
    return dict(measured=True, changed_cells=int(changed.sum()),
                changed_coverage=float((ok & changed).sum() / max(changed.sum(), 1)),
                changed_median_abs_err_m=float(np.median(err[ok & changed])) if (ok & changed).any() else math.nan,
                changed_median_abs_true_m=float(np.median(np.abs(true[changed]))) if changed.any() else math.nan,
                unchanged_median_abs_dh_m=float(np.median(np.abs(dh[ok & unchanged])))
                if (ok & unchanged).any() else math.nan,
                unchanged_coverage=float((ok & unchanged).sum() / max(unchanged.sum(), 1)))


def shadow_classes(pred_base, pred_target, shadow) -> dict:
    """Cells by how the predicted shadows (bool, no direct sun at the base / the target's date)
    match the true ones (``truth_shadow.tif``: bit 1 the base's date, bit 2 the new date):
    ``as_predicted`` (truly shadowed at a date, and every date's state predicted right),
    ``unexplained`` (truly shadowed at a date the prediction calls lit: a new or raised caster),
    ``missing`` (predicted shadowed at a date that is truly lit: a caster gone or lowered; not
    unexplained at the other date), ``lit`` (lit at both dates, and predicted so)."""
    s0, st = (shadow & 1) != 0, (shadow & 2) != 0
    unexpl = (s0 & ~pred_base) | (st & ~pred_target)
    missing = ((pred_base & ~s0) | (pred_target & ~st)) & ~unexpl
    return {"as_predicted": (s0 | st) & ~unexpl & ~missing, "unexplained": unexpl, "missing": missing,
            "lit": ~(s0 | st | pred_base | pred_target)}


def score_target(d: Path, store: Path, meta: dict, t: int, occluded_name: str) -> dict:
    """Scores of target image ``t`` of the store against the structural truth, with where the
    misses and false alarms are, and the sun the change stage used for every image."""
    import xarray as xr

    from offnadir.change.evaluate import evaluate, metrics
    from offnadir.simulate import truth as T

    ds = xr.open_zarr(store, mask_and_scale=False)  # the stored codes: change 2 (unobservable) is its CF _FillValue
    names = [str(v) for v in ds["image"].values]
    occ_path = d / occluded_name
    # a height-change reference (auto-detected)
    rep = evaluate(store, d / "truth_structural.tif", image=names[t], occluded=occ_path)
    rep_old = evaluate(store, d / "truth_change.tif", reference="binary", image=names[t], occluded=occ_path)
    res = rep["images"][names[t]]
    method = next(k for k in res if k not in ("ortho", "gain_f1", "reference"))
    out = dict(image=names[t], method=method,
               elevated=res[method]["elevated"], ground=res[method]["ground"],
               ortho_elevated=res["ortho"]["elevated"] if "ortho" in res else None,
               elevated_old_truth=rep_old["images"][names[t]][method]["elevated"],
               reference=res.get("reference", {}).get(method))
    # the same cells as evaluate: visible in both by the cube, visible in both by the truth
    vis = np.asarray(ds["visible"].values)
    chm = np.asarray(ds["change"].values[t])
    cls = _read(d / "truth_change_class.tif")
    occ = _read(occ_path)
    shadow = _read(d / "truth_shadow.tif")
    elev = _read(d / "truth_elevated.tif") == 1
    cells = (vis[0] == 1) & (vis[t] == 1) & (occ == 0)
    flag = chm == 1
    per = {}
    for code, name in T.CLASSES.items():
        for where, m in (("elevated", elev), ("ground", ~elev)):
            sel = cells & (cls == code) & m
            if sel.any():
                per[f"{name}/{where}"] = dict(n=int(sel.sum()), flagged=float(flag[sel].mean()),
                                              undecided=float((chm[sel] == 2).mean()))
    ground_none = cells & (cls == 0) & ~elev
    in_shadow = ground_none & (shadow != 0)
    lit = ground_none & (shadow == 0)
    out["ground_fa_shadow"] = float(flag[in_shadow].mean()) if in_shadow.any() else math.nan
    out["ground_fa_lit"] = float(flag[lit].mean()) if lit.any() else math.nan
    out["ground_fa_shadow_share"] = float((flag & in_shadow).sum() / max((flag & ground_none).sum(), 1))
    # by distance to the grid's edge: within half the evidence window its window is cut by the edge
    # (fewer surfaces averaged: a wider null; docs/change_detection.md, H2 seventh round)
    half = int(json.loads(ds.attrs.get("change_calibration", "{}") or "{}").get("window_cells", 41)) // 2
    ny, nx = flag.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    edge = np.minimum(np.minimum(yy, ny - 1 - yy), np.minimum(xx, nx - 1 - xx)) < half
    for k, m in (("edge", ground_none & edge), ("inner", ground_none & ~edge)):
        out[f"ground_fa_{k}"] = float(flag[m].mean()) if m.any() else math.nan
        out[f"ground_fa_{k}_cells"] = int((flag & m).sum())
    out["edge_cells"] = half
    # unchanged ground by how the old DSM's predicted shadows (the store's illumination, no direct
    # sun) match the true ones (truth_shadow bit 1: base date, bit 2: the new date) at both dates:
    # "as predicted" (shadowed at a date, every date's state right), "unexplained" (truly shadowed
    # where the prediction says lit: a new or raised caster), "missing" (predicted shadowed, truly
    # lit: a caster gone or lowered), "lit" (lit and predicted so at both dates)
    if "illumination" in ds:
        ill = np.asarray(ds["illumination"].values)
        for k, m in shadow_classes(ill[0] == 0, ill[t] == 0, shadow).items():
            m = ground_none & m
            out[f"ground_fa_shadow_{k}"] = float(flag[m].mean()) if m.any() else math.nan
            out[f"ground_fa_shadow_{k}_cells"] = int((flag & m).sum())
    out["per_class"] = per
    # where the misses and the false alarms are (counts of scored cells)
    from scipy.ndimage import distance_transform_edt

    sb = _read(d / "truth_structural.tif")
    changed = np.isin(sb, (T.LOSS, T.GAIN))
    scored = cells & (sb != T.IGNORE) & (chm != 2)
    miss = scored & changed & ~flag
    out["misses"] = {T.CLASSES[c]: int((miss & (cls == c)).sum()) for c in T.STRUCTURAL}
    near = distance_transform_edt(cls == 0) * float(meta["cell"]) <= NEAR_M
    fa = scored & (sb == 0) & flag
    # what the unchanged elevated cells are (the scene is regenerated from its seed: deterministic)
    from offnadir.simulate import scene as S

    model = S.generate(int(meta["seed"]), int(meta["size"]), float(meta["cell"]),
                       float(meta["heights"]["base_height"]))
    kind1 = S.rasterize(model)[1].kind
    tree = kind1 == S.TREE
    out["false_alarms"] = {"elevated, near a change": int((fa & elev & near).sum()),
                           "elevated roofs, elsewhere": int((fa & elev & ~near & ~tree).sum()),
                           "elevated trees, elsewhere": int((fa & elev & ~near & tree).sum()),
                           "ground, near a change": int((fa & ~elev & near).sum()),
                           "ground, shadow at either date": int((fa & ~elev & ~near & (shadow != 0)).sum()),
                           "ground, lit at both dates": int((fa & ~elev & ~near & (shadow == 0)).sum())}
    # buildings only: tree changes left out as well
    keep = scored & elev & ~np.isin(cls, (T.CODE["tree_cut"], T.CODE["tree_grown"]))
    out["elevated_buildings_only"] = metrics(changed[keep], flag[keep])
    # the sun the change stage used
    suns = json.loads(ds.attrs.get("change_sun", "null") or "null") or []
    out["sun"] = []
    for s, name in zip(suns, ("base", "target", "target2")):
        v = meta["views"][name]
        taz, tel = v["sun_azimuth_deg"], v["sun_elevation_deg"]
        if s.get("azimuth") is None:
            out["sun"].append(dict(image=name, source=s.get("source"), error_deg=math.inf, d_az=math.inf,
                                   d_el=math.inf, truth=(taz, tel)))
            continue
        daz = (s["azimuth"] - taz + 180) % 360 - 180
        out["sun"].append(dict(image=name, source=s.get("source"), azimuth=s["azimuth"], elevation=s["elevation"],
                               truth=(taz, tel), d_az=daz, d_el=s["elevation"] - tel,
                               error_deg=_angle(s["azimuth"], s["elevation"], taz, tel)))
    return out


def _f(v, n=3):
    return "nan" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{n}f}"


def _print_target(r, label=""):
    e, eo, g, b = r["elevated"], r["elevated_old_truth"], r["ground"], r["elevated_buildings_only"]
    print(f"  {label}elevated F1 {_f(e['f1'])} (P {_f(e['precision'])}, R {_f(e['recall'])}, {e['n']} cells) | "
          f"buildings only {_f(b['f1'])} (P {_f(b['precision'])}, R {_f(b['recall'])}) | old truth (height or "
          f"material) {_f(eo['f1'])} | ortho {_f(r['ortho_elevated']['f1']) if r['ortho_elevated'] else '-'}")
    ref = r["reference"]
    if ref:
        o = ref["objects"]
        print(f"  all decided cells: F1 {_f(ref['f1'])}, score AUC {_f(ref['auc'])}; changed objects >= "
              f"{o['min_area_m2']:g} m2 found {o.get('found', 0)}/{o.get('objects', 0)} (loss "
              f"{_f(o.get('loss_recall', math.nan))}, gain {_f(o.get('gain_recall', math.nan))})")
    print(f"  ground false alarms {_f(g['false_alarm_rate'])} (lit {_f(r['ground_fa_lit'])}, in shadow at either "
          f"date {_f(r['ground_fa_shadow'])}; {100 * r['ground_fa_shadow_share']:.0f} % of them in shadow)")
    print(f"  ground false alarms within {r['edge_cells']} cells (half the evidence window) of the grid's edge "
          f"{_f(r['ground_fa_edge'])} ({r['ground_fa_edge_cells']} cells), farther {_f(r['ground_fa_inner'])} "
          f"({r['ground_fa_inner_cells']} cells)")
    if "ground_fa_shadow_as_predicted" in r:
        print("  ground false alarms against the old DSM's predicted shadows: " + ", ".join(
            f"{k.replace('_', ' ')} {_f(r[f'ground_fa_shadow_{k}'])} ({r[f'ground_fa_shadow_{k}_cells']} cells)"
            for k in ("as_predicted", "unexplained", "missing", "lit")))
    for s in r["sun"]:
        print(f"  sun {s['image']:7}: {s['source']}, error {_f(s['error_deg'], 2)} deg (d_az {_f(s['d_az'], 2)}, "
              f"d_el {_f(s['d_el'], 2)}; truth az {s['truth'][0]:.2f} el {s['truth'][1]:.2f})")
    print(f"  {'truth class':<24} {'cells':>7} {'flagged':>8} {'undecided':>9}")
    for k, v in r["per_class"].items():
        print(f"  {k:<24} {v['n']:>7} {v['flagged']:>8.3f} {v['undecided']:>9.3f}")
    print("  misses (cells): " + ", ".join(f"{k} {v}" for k, v in r["misses"].items()))
    print("  false alarms (cells): " + ", ".join(f"{k} {v}" for k, v in r["false_alarms"].items()))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    # six seeds: a 256² hard scene holds 3-4 changed objects, so one seed's F1 moves by 0.2 with one
    # roof; the mean over six is the steadier figure (seeds 0-2 alone: `--seeds 0 1 2`)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--work", default="/tmp/eval_hard_sim")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--reuse", action="store_true", help="reuse scenes and stores already in --work")
    ap.add_argument("--json", help="write every figure to this JSON file")
    ap.add_argument("--stereo", action="store_true",
                    help="a same-date stereo pair at the second date (simulate --new-views 2), detected with the "
                         "three images and their dates; both targets scored, and the height change dh")
    ap.add_argument("--base-view", metavar="OFFNADIR,AZIMUTH",
                    help="the base view passed to offnadir simulate (default: the simulator's, 5,90)")
    ap.add_argument("--target-view", metavar="OFFNADIR,AZIMUTH",
                    help="the target view passed to offnadir simulate (default: the simulator's, 25,270); use a "
                         "--work of its own")
    ap.add_argument("--true-sun", action="store_true",
                    help="give every image its true sun (scene.json) instead of estimating it: an oracle of how "
                         "much of each figure the sun estimate costs; use a --work of its own")
    eval_config.add_argument(ap)
    a = ap.parse_args(argv)
    eval_config.check(a.config)  # a bad file fails now, before any scene is simulated
    views = tuple(x for k, v in (("--base-view", a.base_view), ("--target-view", a.target_view)) if v
                  for x in (k, v))
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in a.seeds:
        r = one_seed(seed, a.size, work, a.workers, a.reuse, stereo=a.stereo, sim_views=views, config=a.config,
                     true_sun=a.true_sun)
        rows.append(r)
        print(f"seed {seed} ({a.size}² cells, simulate {r['simulate_s']:.0f} s, detect {r['detect_s']:.0f} s)"
              + (f"; same-date pair B/H {r['base_to_height']:.2f}" if a.stereo else ""))
        _print_target(r, "target: " if a.stereo else "")
        if a.stereo:
            _print_target(r["target2"], "target2: ")
            h = r["dh"]
            if h["measured"]:
                print(f"  dh on changed cells: median abs error {_f(h['changed_median_abs_err_m'], 2)} m (true |dh| "
                      f"median {_f(h['changed_median_abs_true_m'], 1)} m), measured on "
                      f"{100 * h['changed_coverage']:.0f} % of {h['changed_cells']} changed cells seen by the pair; "
                      f"unchanged cells: median |dh| {_f(h['unchanged_median_abs_dh_m'], 2)} m "
                      f"({100 * h['unchanged_coverage']:.0f} % measured)")
            else:
                print("  dh: not in the store (no height sweep ran)")
    targets = [r for r in rows] + ([r["target2"] for r in rows] if a.stereo else [])
    f1s = [r["elevated"]["f1"] for r in targets]
    suns = [s["error_deg"] for r in rows for s in r["sun"]]
    fas = [r["ground"]["false_alarm_rate"] for r in targets]
    ok_f1 = all(f >= F1_TARGET for f in f1s)
    ok_sun = bool(suns) and all(s <= SUN_LIMIT_DEG for s in suns)
    print()
    what = "per seed (target's for every seed, then target2's)" if a.stereo else "per seed"
    print(f"elevated F1 (structural truth) {what}: {', '.join(_f(f) for f in f1s)} (mean "
          f"{_f(float(np.mean(f1s)))}) -> {'PASS' if ok_f1 else 'FAIL'} (target >= {F1_TARGET})")
    aucs = [r["reference"]["auc"] for r in targets if r.get("reference")]
    if aucs:
        print(f"score AUC on all decided cells {what}: {', '.join(_f(v) for v in aucs)} (mean "
              f"{_f(float(np.mean(aucs)))})")
    print(f"ground false-alarm rate {what}: {', '.join(_f(f) for f in fas)}")
    if all("ground_fa_shadow_as_predicted" in r for r in targets):
        print("ground false alarms (cells) in shadows as predicted / unexplained / missing, and on lit ground, "
              f"{what}: " + ", ".join("/".join(str(r[f"ground_fa_shadow_{k}_cells"]) for k in
                                               ("as_predicted", "unexplained", "missing", "lit")) for r in targets))
    print(f"ground false-alarm rate within half the evidence window of the grid's edge / farther {what}: "
          + ", ".join(f"{_f(r['ground_fa_edge'])}/{_f(r['ground_fa_inner'])}" for r in targets))
    tot_m = {k: sum(r["misses"][k] for r in targets) for k in rows[0]["misses"]}
    tot_f = {k: sum(r["false_alarms"][k] for r in targets) for k in rows[0]["false_alarms"]}
    nm, nf = max(sum(tot_m.values()), 1), max(sum(tot_f.values()), 1)
    print("misses over the seeds: " + ", ".join(f"{k} {v} ({100 * v / nm:.0f} %)" for k, v in tot_m.items()))
    print("false alarms over the seeds: " + ", ".join(f"{k} {v} ({100 * v / nf:.0f} %)" for k, v in tot_f.items()))
    if a.stereo:
        print("dh median abs error on changed cells per seed (m): "
              + ", ".join(_f(r["dh"].get("changed_median_abs_err_m"), 2) for r in rows))
    print(f"sun error per image (deg): {', '.join(_f(s, 2) for s in suns)} -> {'PASS' if ok_sun else 'FAIL'} "
          f"(target <= {SUN_LIMIT_DEG:g})")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0 if ok_f1 and ok_sun else 1


if __name__ == "__main__":
    sys.exit(eval_config.main_with_errors(main))
