"""cube.tiebias._measure runs the blocks on threads: the same points in the same order as one
block after the other (real search kernels on a synthetic image with known shifts)."""

import numpy as np

from offnadir.camera.camera import IDENTITY
from offnadir.cube import tiebias
from offnadir.cube.tiepoints import measure_windows


def _block(rng, img, shift, n_win=12, half=5):
    side = 2 * half + 1
    di, dj = np.mgrid[-half:half + 1, -half:half + 1]
    ci = rng.uniform(20, img.shape[0] - 20, n_win).round()
    cj = rng.uniform(20, img.shape[1] - 20, n_win).round()
    rows = (ci[:, None] + di.ravel()[None, :]).astype(np.float64)
    cols = (cj[:, None] + dj.ravel()[None, :]).astype(np.float64)
    # the templates: the image where the window really is (moved by ``shift``)
    tpl = img[(rows + shift[0]).astype(int), (cols + shift[1]).astype(int)].astype(np.float64)
    assert tpl.shape == (n_win, side * side)
    ground = np.column_stack([ci, cj, np.zeros(n_win)])
    return {"tpl": tpl, "rows": rows, "cols": cols, "origin": (0, 0), "img": img, "ground": ground}


def test_threaded_measure_equals_serial(monkeypatch):
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    img = gaussian_filter(rng.normal(size=(160, 160)), 2.0) * 50 + 100
    data = [_block(rng, img, (k % 3 - 1, 1 - k % 2)) for k in range(7)]
    serial = np.concatenate([measure_windows(d, IDENTITY, 4) for d in data], axis=0)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)  # 3 threads
    threaded = tiebias._measure(data, IDENTITY, 4)
    assert len(serial) > 40  # the windows were found
    np.testing.assert_array_equal(threaded, serial)
    # the shifts measured are the ones built in (the kernels ran, not a copy of the input)
    assert np.isin(np.round(serial[:, 5]), [-1, 0, 1]).all()
