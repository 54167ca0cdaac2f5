"""Kahramanmaraş (Pleiades pan 2016 -> 2023, picanteo data): `offnadir detect` with defaults only,
scored with `offnadir evaluate` against the CARS height-change reference on decided cells.

Thresholds (issue 7, "Must show"): F1 >= 0.5 and score AUC >= 0.8 for each single post-event
image. Prints the figures, the timings and PASS/FAIL; exit status 1 when a threshold fails.

    python3 benchmarks/eval_change_real.py [--workdir /tmp/eval_change_real] [--targets 1 2]
                                           [--criteria spectral structural] [--config FILE]

``--criteria`` (ablation only, not the defaults) runs the same job through ``offnadir run`` with a
config whose ``change.criteria`` is the given list, e.g. ``--criteria structural`` to see what the
IR-MAD spectral criterion adds to the decisions.

``--config FILE``: a YAML run config merged over the job (e.g. ``height_sweep: {dsm_test:
off_level}``), validated as ``offnadir run`` validates (:mod:`eval_config`), the job then run as
``offnadir run`` of it; exit status 2 with one line when FILE is not a valid config. Use a
``--workdir`` of its own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_config  # noqa: E402

D = Path("/work/shared/data/real/picanteo")
TUT = D / "docs/tutorials/data"
DSM = D / "derived/cars_1.3.0/pre/dsm.tif"
REF = D / "derived/cars_1.3.0/reference_change.tif"
F1_MIN, AUC_MIN = 0.5, 0.8


def run(target: int, workdir: Path, criteria=None, config: Path | None = None) -> dict:
    from offnadir.change.evaluate import evaluate

    out = workdir / f"km_post{target}{'_' + '_'.join(criteria) if criteria else ''}.zarr"
    cmd = ["offnadir", "detect", "--dsm", str(DSM),
           "--base", str(TUT / "pre_event_img1.tif"), "--model", str(TUT / "pre_event_img1.geom"),
           "--target", str(TUT / f"post_event_img{target}.tif"), "--model", str(TUT / f"post_event_img{target}.geom"),
           "-o", str(out), "--overwrite"]
    if criteria or config:  # the same job as a run config: change.criteria set (an ablation), FILE's options
        job = {"dsm": {"path": str(DSM)},
               "images": [{"path": str(TUT / "pre_event_img1.tif"), "model": str(TUT / "pre_event_img1.geom")},
                          {"path": str(TUT / f"post_event_img{target}.tif"),
                           "model": str(TUT / f"post_event_img{target}.geom")}],
               "output": {"path": str(out), "overwrite": True},
               "change": {"enabled": True, **({"criteria": list(criteria)} if criteria else {})}}
        cfg = eval_config.write_job(job, config, out.with_suffix(".job.json"))
        cmd = ["offnadir", "run", str(cfg)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dt = time.perf_counter() - t0
    rep = evaluate(out, REF)
    (name, res), = rep["images"].items()
    return {"image": name, "seconds": dt, **{m: r for m, r in res["reference"].items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/eval_change_real"))
    ap.add_argument("--targets", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--criteria", nargs="+", help="ablation: change.criteria of the run (default: the defaults)")
    eval_config.add_argument(ap)
    a = ap.parse_args(argv)
    eval_config.check(a.config)
    a.workdir.mkdir(parents=True, exist_ok=True)
    ok = True
    print(f"{'target':<16} {'method':<7} {'P':>6} {'R':>6} {'F1':>6} {'kappa':>6} {'AUC':>6} {'flag':>6} "
          f"{'objects':>9} {'detect s':>8}  verdict")
    for t in a.targets:
        r = run(t, a.workdir, a.criteria, a.config)
        for method in ("patch", "ortho"):
            if method not in r:
                continue
            m = r[method]
            o = m["objects"]
            verdict = ""
            if method == "patch":
                good = m["f1"] >= F1_MIN and m["auc"] >= AUC_MIN
                ok &= good
                verdict = f"{'PASS' if good else 'FAIL'} (F1 >= {F1_MIN}, AUC >= {AUC_MIN})"
            print(f"{r['image']:<16} {method:<7} {m['precision']:6.3f} {m['recall']:6.3f} {m['f1']:6.3f} "
                  f"{m['kappa']:6.3f} {m['auc']:6.3f} {m['flagged']:6.3f} {o['found']:>4}/{o['objects']:<4} "
                  f"{r['seconds']:8.1f}  {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(eval_config.main_with_errors(main))
