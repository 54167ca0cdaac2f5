"""The sun estimate stays inside the elevations its whole-sky search covered, and a best on that
range's edge (no maximum found inside it) is not accepted: the case of s2p's Réunion pair, whose
brightness follows the shading of smooth slopes rather than cast shadows (the estimate sank to
5.5 deg elevation against the 38.9 deg of its acquisition time)."""

from __future__ import annotations

import math

import numpy as np

from synthetic import random_boxes
from test_sun_estimate import _shadowed_image


def _hills(n=200, cell=0.5, seed=3):
    """Smooth terrain (Gaussian hills and hollows, ~70 m of relief over 100 m): no walls."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] * cell
    h = np.full((n, n), 2000.0)
    for _ in range(12):
        cy, cx = rng.uniform(0, n * cell, 2)
        s, a = rng.uniform(10, 30), rng.uniform(-25, 25)
        h += a * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    return h


def _slope_shaded_image(h, az, el, cell=0.5, seed=4):
    """Lambertian shading of the slopes (cos of the incidence angle; rows run south, columns
    east), with albedo texture, noise and a gamma: dark where a face turns from the sun, no cast
    shadows drawn."""
    gy, gx = np.gradient(h, cell)
    a, e = math.radians(az), math.radians(el)
    east, north, up = math.sin(a) * math.cos(e), math.cos(a) * math.cos(e), math.sin(e)
    cosi = (-gx * east + gy * north + up) / np.sqrt(gx ** 2 + gy ** 2 + 1)
    rng = np.random.default_rng(seed)
    rad = np.clip(cosi, 0.02, None) * rng.uniform(0.85, 1.0, h.shape)
    return 40.0 + 900.0 * rad ** 1.7 + rng.normal(0, 5, h.shape)


def test_slope_shading_gives_no_elevation_inside_the_range():
    from offnadir.change.sun_estimate import estimate_sun, fit_sun

    h = _hills()
    img = _slope_shaded_image(h, 30.0, 40.0)
    ok = np.ones(h.shape, bool)
    fit = fit_sun(h, img, ok, 0.5)
    # the score rises as a sinking sun marks more slopes dark: the best is the range's floor,
    # never below it (the refinements used to walk down to 1 deg)
    assert 10.0 <= fit.elevation <= 80.0
    assert fit.edge_range == (10.0, 80.0)
    assert not fit.accepted() and "edge of the searched elevations 10-80" in fit.describe()
    assert estimate_sun(h, img, ok, 0.5) is None


def test_a_sun_below_the_searched_range_is_not_accepted_at_its_edge():
    """Cast shadows of a known 20 deg sun, searched over 30-60 deg only: the refinements stop
    at 30 (never outside what the whole-sky search and its null covered) and the fit is refused
    there; over the default range the same image gives its sun, accepted."""
    from offnadir.change.sun_estimate import estimate_sun, fit_sun

    h = random_boxes(160, 1)
    img = _shadowed_image(h, 120.0, 20.0)
    ok = np.ones(h.shape, bool)
    fit = fit_sun(h, img, ok, 0.5, el_range=(30.0, 60.0))
    assert 30.0 <= fit.elevation <= 60.0 and fit.elevation - 30.0 <= 2 * fit.sigma_elevation
    assert fit.edge_range == (30.0, 60.0) and not fit.accepted()
    good = estimate_sun(h, img, ok, 0.5)
    assert good is not None and not good.edge_range
    assert abs(good.elevation - 20.0) < 2.0 and abs((good.azimuth - 120.0 + 180) % 360 - 180) < 2.0
