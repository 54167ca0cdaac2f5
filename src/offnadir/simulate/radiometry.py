"""Radiance to digital numbers: gain, offset, gamma, panchromatic band, noise (numpy only)."""

from __future__ import annotations

import numpy as np

#: DN per unit of radiance (reflectance × irradiance)
DN_SCALE = 2500.0


def to_dn(rad, rmeta, bands, rng, noise_dn):
    """Radiance (4, rows, cols) float32 -> uint16 DN: per band ``gain · DN_SCALE · rad^gamma + offset``
    (one panchromatic band: the mean of the four band radiances, mean gain and offset) plus
    Gaussian noise, one band at a time (the noise stream is drawn in band order, as one
    ``(bands, rows, cols)`` draw would be)."""
    gain, offset = np.asarray(rmeta["gain"], np.float64), np.asarray(rmeta["offset"], np.float64)
    gamma = [float(g) for g in rmeta["gamma"]]

    def band(k):
        if any(g != 1.0 for g in gamma):
            return np.maximum(rad[k], np.float32(0.0)) ** np.float64(gamma[k])
        return rad[k]

    if bands == 1:
        acc = band(0).copy()
        for k in range(1, rad.shape[0]):
            acc += band(k)
        planes = [(np.true_divide(acc, rad.shape[0], dtype=acc.dtype), gain.mean(), offset.mean())]
    else:
        planes = [(band(k), gain[k], offset[k]) for k in range(rad.shape[0])]
    out = np.empty((len(planes),) + rad.shape[1:], np.uint16)
    for k, (r, g, o) in enumerate(planes):
        dn = r * (DN_SCALE * g) + o
        if noise_dn > 0:
            dn = dn + rng.normal(0.0, noise_dn, dn.shape)
        out[k] = np.clip(np.rint(dn), 0, 65535)
    return out
