"""How a tie-point gather is split into dask tasks (offnadir.cube.tie_tasks.task_groups): the split
decides only which thread computes a block, never the block's data."""

from __future__ import annotations

import dask
import numpy as np
import pytest

from offnadir.cube import tie_tasks, tiepoints
from offnadir.cube.tiepoints import TieOptions


@pytest.mark.parametrize("n_blocks", [0, 1, 2, 3, 9, 17, 18, 36])
@pytest.mark.parametrize("n_threads", [1, 2, 3, 8, 64])
def test_task_groups_are_balanced_runs_of_consecutive_blocks(n_blocks, n_threads):
    groups = tie_tasks.task_groups(n_blocks, n_threads)
    assert [n for g in groups for n in g] == list(range(n_blocks))      # every block once, in tile order
    assert len(groups) == min(n_blocks, n_threads)
    sizes = [len(g) for g in groups]
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_scheduler_threads_counts_the_clients_worker_threads():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=3, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        with dask.config.set(scheduler=client):
            assert tie_tasks.scheduler_threads() == 3


@pytest.fixture(scope="module")
def plan256(tmp_path_factory):
    from offnadir.pipeline import plan_cube
    from offnadir.simulate import simulate

    d = tmp_path_factory.mktemp("tietasks")
    simulate(d, seed=1, size=256)
    with dask.config.set(scheduler="threads", num_workers=2):
        return plan_cube(d / "dsm.tif", [d / "base.tif", d / "target.tif"], chunk=256)


def test_block_data_is_the_same_however_the_blocks_are_split(plan256, monkeypatch):
    opts = TieOptions()
    tiles = tiepoints.block_tiles(plan256, opts)
    dh = {1: tiepoints.STEP_PX / tiepoints.parallax_sensitivity(plan256, 1)}
    suns = tiepoints.plan_suns(plan256, None)
    got = {}
    for threads in (1, 2, 5, len(tiles)):
        monkeypatch.setattr(tie_tasks, "scheduler_threads", lambda t=threads: t)
        with dask.config.set(scheduler="threads", num_workers=2):
            got[threads] = tie_tasks.gather(plan256, tiles, opts, dh, suns)
    ref = got.pop(1)
    assert len(ref) == len(tiles) > 4 and sum(1 in b for b in ref) > 4    # blocks with windows to compare
    for blocks in got.values():
        for a, b in zip(ref, blocks):
            assert a.keys() == b.keys()
            for k in a:
                for key in a[k]:
                    if isinstance(a[k][key], np.ndarray):
                        assert np.array_equal(a[k][key], b[k][key], equal_nan=True), key
                    else:
                        assert a[k][key] == b[k][key], key


@pytest.mark.parametrize("sigma", [0.8, 0.5, 1.3])
def test_the_smoothing_kernel_is_scipys_gaussian_filter_to_the_bit(sigma, monkeypatch):
    """The tie windows' pre-filter (numba, nogil) against scipy.ndimage.gaussian_filter, which it
    replaced: identical values on random images of many shapes (one row/column included), with
    NaN holes, and on integer-valued band means as the images give."""
    from scipy.ndimage import gaussian_filter

    monkeypatch.setattr(tiepoints, "SMOOTH_SIGMA_PX", sigma)
    rng = np.random.default_rng(7)
    for t in range(40):
        ny, nx = (int(v) for v in rng.integers(1, 70, 2))
        a = rng.normal(0, 1000, (ny, nx)) if t % 2 else rng.integers(0, 4000, (ny, nx)) / 4.0
        if t % 3 == 0:
            a[rng.random(a.shape) < 0.05] = np.nan
        got = tiepoints._smooth(a)
        assert np.array_equal(got, gaussian_filter(a, sigma, mode="nearest"), equal_nan=True), (t, ny, nx)


def test_the_shadow_dilation_is_scipys_binary_dilation():
    from scipy.ndimage import binary_dilation

    from offnadir.cube.tiepoint_shade import dilate_cross

    rng = np.random.default_rng(3)
    for shape in [(1, 1), (1, 9), (9, 1), (30, 41)]:
        m = rng.random(shape) < 0.1
        assert np.array_equal(dilate_cross(m), binary_dilation(m, iterations=1)), shape


def test_the_fits_import_is_made_in_the_background_once():
    import sys

    from offnadir.cube import tiebias

    name = "colorsys"                      # a module nothing here imports
    sys.modules.pop(name, None)
    thread = tiebias._import_meanwhile(name)
    assert thread is not None
    thread.join(30)
    assert name in sys.modules
    assert tiebias._import_meanwhile(name) is None                 # imported already: no thread
    assert tiebias._import_meanwhile("offnadir_no_such_module") is not None   # a failure stays in the thread
