"""The images' pixel noise, one number per image for the whole run: per tile, a histogram of the
absolute 2x2 second difference of each image's intensity (cells where all four corners are visible
and finite), summed over the tiles by the runner, and the robust sigma read from it
(:func:`noise_sigma`). Moved out of :mod:`offnadir.change.cells`, which re-exports both."""
from __future__ import annotations

import numpy as np

from offnadir.change import evidence as EV


def noise_tile(io, ctx, tile):
    """Histograms of the 2x2 second difference per image (for the global noise sigmas)."""
    from offnadir.change import kernels as K

    yx = (slice(tile.i0, tile.i1), slice(tile.j0, tile.j1))
    vis = io.read("visible", (slice(None),) + yx)
    val = io.read("value", (slice(None), slice(None)) + yx)
    out = {}
    for k in range(ctx.n_images):
        x = EV.intensity(val[k])  # widened to float64 there, one image at a time
        d = K.second_differences(x, vis[k])  # where all four corners are visible and finite
        out[k] = np.histogram(np.log10(np.maximum(d, 1e-6)), bins=NOISE_BINS, range=NOISE_RANGE)[0]
    return out


NOISE_BINS, NOISE_RANGE = 800, (-6.0, 10.0)


def noise_sigma(counts) -> float:
    """``1.4826 median |d| / 2`` from a :func:`noise_tile` histogram (the second difference of
    white noise has zero median and sd 2 sigma)."""
    c = np.cumsum(counts)
    if c[-1] == 0:
        return 0.0
    k = int(np.searchsorted(c, 0.5 * c[-1]))
    edges = np.linspace(*NOISE_RANGE, NOISE_BINS + 1)
    return float(1.4826 * 10 ** (0.5 * (edges[k] + edges[k + 1])) / 2.0)
