"""Evaluation: how often the sun estimate (:func:`offnadir.change.sun_estimate.estimate_sun`)
accepts a sun on an image that holds no shadow at all (pure noise over a DSM of boxes), i.e. the
false-acceptance rate of its test ``z >= Z_MIN``.

The ``z`` is the best candidate's score over its jackknife standard error; the best is the maximum
over the whole search (hundreds of candidate suns), so under no association it is biased upwards
(the multiplicity of the search is not in the test). Prints each image's best ``z`` (with the test
disabled, to see it) and the share at or above ``Z_MIN``.

    python benchmarks/eval_sun_null.py [--images 12] [--size 256]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def boxes(n: int, seed: int) -> np.ndarray:
    """Flat ground at 100 m with 25 boxes 8-28 cells wide, 4-20 m high (0.5 m cells)."""
    rng = np.random.default_rng(seed)
    h = np.full((n, n), 100.0)
    for _ in range(25):
        i, j = rng.integers(0, n - 30, 2)
        a, b = rng.integers(8, 28, 2)
        h[i:i + a, j:j + b] = np.maximum(h[i:i + a, j:j + b], 100 + rng.uniform(4, 20))
    return h


def main(argv=None):
    import offnadir.change.sun_estimate as S

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args(argv)
    z_min, zs = S.Z_MIN, []
    for seed in range(a.images):
        h = boxes(a.size, seed)
        x = np.random.default_rng(100 + seed).normal(0.0, 1.0, h.shape)  # no shadow anywhere
        S.Z_MIN = -np.inf  # see every best fit's z
        try:
            fit = S.estimate_sun(h, x, np.ones(h.shape, bool), 0.5)
        finally:
            S.Z_MIN = z_min
        zs.append(np.nan if fit is None else fit.z)
    zs = np.asarray(zs)
    print("best-fit z on pure-noise images:", ", ".join(f"{z:.2f}" for z in zs))
    print(f"accepted (z >= {z_min:g}): {int(np.sum(zs >= z_min))} of {len(zs)} "
          f"({100 * np.mean(zs >= z_min):.0f} %; a calibrated 3-sigma test would accept ~0.1 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
