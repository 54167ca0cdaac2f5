"""Fuzz profile of the camera-model readers and the GCP reader (long run; the suite runs a few
hundred cases of the same engine in ``tests/test_fuzz_readers.py``).

    python benchmarks/fuzz_readers.py --cases 10000 [--seed 0] [--show 5] [--json out.json]

Each case takes one real file of one format (``tests/fuzz_mutations.py``: every format
``read_camera`` reads, plus GCP GeoJSON/CSV/raster), applies 1-3 mutations (byte flips,
truncation, line deletion/duplication, numbers replaced with huge/NaN/empty/non-numeric values,
blank values, inserted bytes, encodings, deep nesting, JSON/YAML type changes), writes it under
its real file name to a fresh temporary folder and reads it with ``read_camera`` (or
``read_gcps``). Outcomes: a valid camera/GCP set, an ``OffnadirError`` (clean), or anything else
(a bug: counted, the first few shown with the mutation and traceback). A returned camera must pass
``RPC.validated()`` and have a positive integer size, or it counts as a bug too.

Cases are spread round-robin over the formats; ``--seed`` makes the run reproducible. Exit status
1 when any non-offnadir exception occurred.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import random
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_mutations import (  # noqa: E402
    CAMERA_SEEDS, GCP_SEEDS, RandomDraw, check_camera, check_gcps, mutate, seed_bytes, seed_name,
)

from offnadir.errors import OffnadirError  # noqa: E402


def run_case(fmt: str, rel: str, data: bytes, folder: Path):
    from offnadir.camera.gcps import read_gcps
    from offnadir.camera.readers import read_camera

    p = folder / seed_name(rel)
    p.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if fmt.startswith("gcp-"):
            check_gcps(read_gcps(p))
        else:
            check_camera(read_camera(p))


def _site(e: BaseException) -> str:
    """Exception type and the innermost offnadir frame it passed through (groups the bugs)."""
    where = "?"
    for fr in traceback.extract_tb(e.__traceback__):
        if "/offnadir/" in fr.filename:
            where = f"{Path(fr.filename).name}:{fr.lineno}"
    return f"{type(e).__name__} at {where}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--show", type=int, default=5, help="tracebacks of the first bad case of N distinct places")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    if a.cases < 1:
        ap.error("--cases must be >= 1")
    rng = random.Random(a.seed)
    draw = RandomDraw(rng)
    formats = {**CAMERA_SEEDS, **GCP_SEEDS}
    seeds = {rel: seed_bytes(rel) for rels in formats.values() for rel in rels}
    names = list(formats)
    stats = {f: collections.Counter() for f in names}
    errors_by_type = collections.Counter()
    bad = []
    sites = collections.Counter()
    noisy = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="offnadir-fuzz-") as tmp:
        for i in range(a.cases):
            fmt = names[i % len(names)]
            rel = draw.choice(formats[fmt])
            data, ops = mutate(seeds[rel], draw)
            case_dir = Path(tmp) / f"c{i}"
            case_dir.mkdir()
            noise = io.StringIO()
            try:
                with contextlib.redirect_stderr(noise):
                    run_case(fmt, rel, data, case_dir)
                stats[fmt]["valid"] += 1
            except OffnadirError as e:
                stats[fmt]["offnadir_error"] += 1
                errors_by_type[type(e).__name__] += 1
            except Exception as e:  # noqa: BLE001 - counting exactly these is the point
                stats[fmt]["other_exception"] += 1
                errors_by_type[f"NOT OFFNADIR: {type(e).__name__}"] += 1
                site = _site(e)
                sites[site] += 1
                if sites[site] == 1 and len(bad) < a.show:
                    keep = Path(tempfile.gettempdir()) / f"offnadir-fuzz-bad-{a.seed}-{i}-{seed_name(rel)}"
                    keep.write_bytes(data)
                    bad.append((i, fmt, rel, ops, str(keep), traceback.format_exc()))
            finally:
                if noise.getvalue().strip():
                    stats[fmt]["stderr_noise"] += 1
                    if len(noisy) < a.show:
                        keep = Path(tempfile.gettempdir()) / f"offnadir-fuzz-noisy-{a.seed}-{i}-{seed_name(rel)}"
                        keep.write_bytes(data)
                        noisy.append((i, fmt, ops, str(keep), noise.getvalue().strip()[-600:]))
                for f in case_dir.iterdir():
                    f.unlink()
                case_dir.rmdir()
    dt = time.perf_counter() - t0
    total = collections.Counter()
    print(f"fuzz_readers: {a.cases} cases, seed {a.seed}, {dt:.1f} s ({a.cases / dt:.0f} cases/s)\n")
    print("| format | cases | valid camera/GCPs | offnadir error | other exception | printed to stderr |")
    print("|---|---:|---:|---:|---:|---:|")
    for f in names:
        s = stats[f]
        n = sum(s.values())
        total.update(s)
        n -= s["stderr_noise"]  # counted twice: outcome + noise
        print(f"| {f} | {n} | {s['valid']} | {s['offnadir_error']} | {s['other_exception']} | "
              f"{s['stderr_noise']} |")
    print(f"| **total** | {sum(total.values()) - total['stderr_noise']} | {total['valid']} | "
          f"{total['offnadir_error']} | {total['other_exception']} | {total['stderr_noise']} |\n")
    print("errors by type: " + ", ".join(f"{k} {v}" for k, v in errors_by_type.most_common()))
    if sites:
        print("non-offnadir exceptions by place: " + "; ".join(f"{k} x{v}" for k, v in sites.most_common()))
    for i, fmt, rel, ops, keep, tb in bad:
        print(f"\n--- case {i} ({fmt}, {rel}, mutations {ops}); input kept at {keep}\n{tb}")
    for i, fmt, ops, keep, text in noisy:
        print(f"\n--- case {i} ({fmt}, mutations {ops}) printed to stderr; input kept at {keep}\n{text}")
    if a.json:
        a.json.write_text(json.dumps({"cases": a.cases, "seed": a.seed, "seconds": dt,
                                      "per_format": {f: dict(s) for f, s in stats.items()},
                                      "errors_by_type": dict(errors_by_type)}, indent=1))
    print(f"\nnon-offnadir exceptions: {total['other_exception']}; cases that printed to stderr: "
          f"{total['stderr_noise']}")
    return 1 if total["other_exception"] else 0


if __name__ == "__main__":
    sys.exit(main())
