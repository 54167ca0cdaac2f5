"""calibrate.interp: numpy's np.interp bit for bit on the calibration tables' grids and beyond."""

import numpy as np

from offnadir.change import calibrate as C


def test_interp_equals_numpy_on_the_table_grid_and_irregular_grids():
    rng = np.random.default_rng(7)
    xp = C.centres()
    fp = np.maximum.accumulate(rng.random(len(xp)))
    x = np.concatenate([rng.normal(0, 5, 20000), rng.uniform(-12, 12, 20000), xp, np.nextafter(xp, 20),
                        np.nextafter(xp, -20), [np.nan, np.inf, -np.inf, -9.2, 9.2, 0.0, -0.0]])
    for f in (fp, np.where(rng.random(len(xp)) < 0.1, np.inf, fp), rng.normal(0, 1e3, len(xp))):
        a, b = C.interp(x, xp, f), np.interp(x, xp, f)
        assert np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))
    irregular = np.cumsum(rng.exponential(1.0, 50)) - 25  # the mean spacing's guess corrected
    f = rng.normal(0, 1, 50)
    x2 = rng.uniform(-40, 40, (30, 40))
    a = C.interp(x2, irregular, f)
    assert a.shape == x2.shape and np.array_equal(a, np.interp(x2, irregular, f))
    # a grid numpy's search handles and the kernel does not (ties): numpy's answer
    assert np.array_equal(C.interp(x, [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]), np.interp(x, [0.0, 0.0, 1.0], [1.0, 2.0, 3.0]),
                          equal_nan=True)


def test_probability_is_the_tables_interpolation():
    model = {"table": list(np.linspace(0, 1, C.N_BINS))}
    e = np.array([np.nan, 0.0, 0.5, 0.9, 1.0, np.inf])
    p = C.probability(e, model)
    ref = np.interp(C.to_z(e), C.centres(), np.asarray(model["table"]))
    ref[~np.isfinite(e)] = np.nan
    assert np.array_equal(p, ref, equal_nan=True) and 0.49 < p[2] < 0.51
