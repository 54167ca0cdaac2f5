"""Evaluation: how often the sun estimate (:func:`offnadir.change.sun_estimate.estimate_sun`)
accepts a sun on an image that holds no shadow at all (pure noise over a DSM of boxes), i.e. the
false-acceptance rate of its test, and what the test costs.

Two tests are printed per image: the old one alone, ``z >= Z_MIN`` on the best candidate (the
best of hundreds of candidate suns, biased upwards under no association: the search's
multiplicity is not in it), and the one adopted, which adds the whole-sky search's best z against
the null threshold calibrated on the image itself (the same search with the image shifted against
the DSM; :func:`~offnadir.change.sun_estimate.null_threshold`). With ``--shadows`` it also runs
the same number of images that do hold the DSM's cast shadows (albedo texture, noise, gamma; a
sun drawn per image) and prints how many are accepted and their sun errors.

    python benchmarks/eval_sun_null.py [--images 12] [--size 256] [--shadows]
"""

from __future__ import annotations

import argparse
import sys
import time

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


def shadowed(h, az_grid, el, seed):
    """The simulator's cast shadows of ``h`` (0.5 m cells) under the sun, with albedo texture,
    noise and a gamma radiometry."""
    from offnadir.simulate.sun import sun_vector
    from offnadir.simulate.views import cast_shadows

    sh = cast_shadows(h, sun_vector(el, az_grid), 0.5, 0.3)
    rng = np.random.default_rng(seed)
    radiance = np.where(sh == 1, 0.3, 1.0) * rng.uniform(0.5, 1.0, h.shape)
    return 40.0 + 900.0 * radiance ** 1.7 + rng.normal(0, 10, h.shape)


def main(argv=None):
    import offnadir.change.sun_estimate as S

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--shadows", action="store_true", help="also images with the DSM's shadows")
    a = ap.parse_args(argv)
    old = new = 0
    cpu_fit = cpu_null = 0.0
    for seed in range(a.images):
        h = boxes(a.size, seed)
        x = np.random.default_rng(100 + seed).normal(0.0, 1.0, h.shape)  # no shadow anywhere
        t = time.process_time()
        fit = S.fit_sun(h, x, np.ones(h.shape, bool), 0.5)
        cpu_fit += time.process_time() - t
        o = fit.score > 0 and fit.z >= S.Z_MIN
        old, new = old + o, new + fit.accepted()
        print(f"noise {seed:2d}: best z {fit.z:5.2f} (old test {'ACCEPTS' if o else 'rejects'}), whole-sky z "
              f"{fit.z_sky:5.2f}, null threshold {fit.null_threshold:5.2f} (draws {min(fit.null_z):.2f}-"
              f"{max(fit.null_z):.2f}) -> {'ACCEPTED' if fit.accepted() else 'rejected'}")
    n = a.images
    print(f"false acceptance on {n} shadow-free images: old test (z >= {S.Z_MIN:g}) {old} of {n} "
          f"({100 * old / n:.0f} %), with the null threshold {new} of {n} ({100 * new / n:.0f} %; nominal "
          f"{100 * S.NULL_ALPHA:g} %)")
    # the added cost: the null draws alone, on the whole-sky search's grid
    h = boxes(a.size, 0)
    x = np.random.default_rng(100).normal(0.0, 1.0, h.shape)
    r = S._ranks(x, np.ones(h.shape, bool))
    lv = S._Level(S._block_mean(h, 2), S._block_mean(r, 2), 1.0, 0.3)
    azs, els = np.arange(0.0, 360.0, 10.0), np.arange(10.0, 80.0 + 1e-9, 5.0)
    t = time.process_time()
    S._search(lv, azs, els)
    t1 = time.process_time()
    S._search_with_nulls(lv, azs, els, S.null_shifts(*lv.h.shape))
    cpu_null = (time.process_time() - t1) - (t1 - t)
    print(f"CPU per image: fit with its null draws {cpu_fit / n:.2f} s, of which the null draws {cpu_null:.2f} s "
          f"({len(S.null_shifts(*lv.h.shape))} draws on the {lv.h.shape[0]}x{lv.h.shape[1]} whole-sky grid)")
    if a.shadows:
        acc, errs = 0, []
        for seed in range(n):
            h = boxes(a.size, 1000 + seed)
            rng = np.random.default_rng(2000 + seed)
            az, el = float(rng.uniform(0, 360)), float(rng.uniform(15, 75))
            fit = S.fit_sun(h, shadowed(h, az, el, seed), np.ones(h.shape, bool), 0.5)
            acc += fit.accepted()
            err = np.hypot((fit.azimuth - az + 180) % 360 - 180, fit.elevation - el)
            errs.append(err)
            print(f"shadows {seed:2d}: sun az {az:6.2f} el {el:5.2f}, error {err:.2f} deg, z {fit.z:5.2f}, whole-sky z "
                  f"{fit.z_sky:5.2f}, null threshold {fit.null_threshold:5.2f} -> "
                  f"{'accepted' if fit.accepted() else 'REJECTED'}")
        print(f"accepted on {n} shadowed images: {acc} of {n}; sun error {min(errs):.2f}-{max(errs):.2f} deg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
