"""How many tie points the bias fit needs: the staged fit against the fit on every block.

    python benchmarks/eval_tie_stages.py [km] [marseille] [sim DIR ...] [--repeat 3]

For each scene, ``offnadir.cube.tiebias.fit_tie_bias`` as the pipeline runs it (blocks measured in
stages while the fit is short of its target: ``tiebias.short_of_target``) and with every stage
forced (``short_of_target`` always true: the points, rounds and correction of the fit before the
stages, bit for bit, see ``tests/test_tiebias_rounds.py``). Printed per image: blocks measured,
inlier points, the correction's standard deviation over the DSM footprint (independent points,
and cluster-robust by block), the largest difference between the two corrections over the
footprint and that difference in units of the staged fit's block standard deviation, and the CPU
seconds of each fit (best of ``--repeat``, this process, dask's synchronous scheduler).

Scenes: ``km`` Kahramanmaras (CNES picanteo: pre_event_img1 2016, post_event_img1 and _img2 2023
as a same-date pair, CARS DSM), ``marseille`` (s2p triplet img_01..03 with its DSM), ``sim DIR``
a folder of ``offnadir simulate`` (dsm.tif, base.tif, target.tif), e.g. bench_detect's
``WORKDIR/sim2048``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def scene(name: str, arg: str | None = None):
    """(dsm, [(image, date)]) of a scene."""
    if name == "km":
        d = bc.REAL / "picanteo" / "docs" / "tutorials" / "data"
        return bc.REAL / "picanteo" / "derived" / "cars_1.3.0" / "pre" / "dsm.tif", [
            (d / "pre_event_img1.tif", "2016-04-23"), (d / "post_event_img1.tif", "2023-04-15"),
            (d / "post_event_img2.tif", "2023-04-15")]
    if name == "marseille":
        t = bc.REAL / "s2p" / "tests" / "data"
        return t / "expected_output" / "triplet" / "dsm.tif", [(t / "input_triplet" / f"img_0{k}.tif", None)
                                                               for k in (1, 2, 3)]
    d = Path(arg)
    return d / "dsm.tif", [(d / "base.tif", None), (d / "target.tif", None)]


def run(label, dsm, images, repeat: int) -> None:
    import dask

    from offnadir.camera.bias_robust import apply_affine
    from offnadir.config import validate
    from offnadir.cube import tiebias
    from offnadir.cube.tiepoints import TieOptions
    from offnadir.io.dsm import open_dsm_source
    from offnadir.pipeline import load_images, plan_cube

    raw = {"dsm": {"path": str(dsm)}, "images": [{"path": str(p), **({"date": d} if d else {})} for p, d in images],
           "output": {"path": "/dev/null/unused.zarr"}}
    cfg = validate(raw, base=".", source="eval_tie_stages")
    d = cfg["dsm"]
    with dask.config.set(scheduler="synchronous"):
        plan = plan_cube(open_dsm_source(d["path"], geoid=d["geoid"], vertical_datum=d["vertical_datum"],
                                         band=d["band"]), load_images(cfg["images"]), chunk=cfg["tiling"]["chunk"])
        out = {}
        real_short = tiebias.short_of_target
        for mode in ("staged", "every block"):
            if mode == "every block":
                tiebias.short_of_target = lambda fit, footprint, points=None: True
            try:
                best = np.inf
                for _ in range(repeat):
                    c0 = _cpu()
                    _, report = tiebias.fit_tie_bias(plan, TieOptions(), image_configs=cfg["images"])
                    best = min(best, _cpu() - c0)
            finally:
                tiebias.short_of_target = real_short
            out[mode] = (best, report)
    print(f"{label}: tie-point fit CPU {out['staged'][0]:.3f} s staged, {out['every block'][0]:.3f} s every block")
    for k in range(1, len(plan.images)):
        es, ea = out["staged"][1][k], out["every block"][1][k]
        if not es.get("applied") or not ea.get("applied"):
            print(f"  {es['image']}: not fitted ({es.get('warning', '')})")
            continue
        fp = tiebias._footprint(plan, k)
        diff = float(np.hypot(*(np.column_stack(apply_affine(es["bias"], *fp.T))
                                - np.column_stack(apply_affine(ea["bias"], *fp.T))).T).max())
        sd_b = es.get("correction_sd_blocks_px", float("nan"))
        print(f"  {es['image']:<16} ({es['role']}): blocks {es['blocks_measured'][0]}/{es['blocks_measured'][1]} "
              f"vs {ea['blocks_measured'][0]}, points {es['n_points']} vs {ea['n_points']}, model {es['model']} vs "
              f"{ea['model']}; sd {es['correction_sd_px']:.4f} (blocks {sd_b:.4f}) vs {ea['correction_sd_px']:.4f} "
              f"(blocks {ea.get('correction_sd_blocks_px', float('nan')):.4f}) px; "
              f"difference {diff:.4f} px = {diff / sd_b:.2f} block sd")
        print("   ", json.dumps({"staged_bias": es["bias"], "every_block_bias": ea["bias"]}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenes", nargs="*", default=["km", "marseille"],
                    help="km, marseille, or sim followed by a folder of offnadir simulate")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args(argv)
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    names = list(a.scenes)
    while names:
        n = names.pop(0)
        arg = names.pop(0) if n == "sim" else None
        dsm, images = scene(n, arg)
        run(f"{n} {arg or ''}".strip(), dsm, images, a.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
