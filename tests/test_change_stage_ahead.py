"""The change stage's context statistics started ahead (:meth:`Runner.start_context`, called by
:func:`offnadir.change.stage.detect_store` before the store's set-up when a cluster runs the
tasks): the same store as a run without a cluster (statistics computed in the pass itself), the
statistics' own error before the sun's, and no task of a run that stopped early still caching
the run's chunks after the run dropped them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from offnadir.store import _quiet_zarr

CHUNK = 40  # 80^2 scene: four tiles


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    """A cube store of a small two-date scene (no change stage), written once."""
    from distributed import Client

    from offnadir.config import validate
    from offnadir.pipeline import run_config
    from offnadir.simulate import simulate

    tmp = tmp_path_factory.mktemp("ahead")
    s = simulate(tmp / "sim", seed=2, size=80)
    cfg = validate({"dsm": {"path": str(s.paths["dsm"])},
                    "images": [{"path": str(s.paths["base"]), "date": "2020-05-01"},
                               {"path": str(s.paths["target"]), "date": "2023-07-02"}],
                    "output": {"path": str(tmp / "cube.zarr")}, "tiling": {"chunk": CHUNK},
                    "change": {"enabled": False}}, base=".", source="test")
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        out = run_config(cfg, quiet=True, client=client)
    return out


@pytest.fixture(scope="module")
def client():
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as c:
        yield c


def _arrays(path):
    import zarr

    with _quiet_zarr():
        g = zarr.open_group(str(path), mode="r", use_consolidated=False)
        return {k: g[k][...] for k in g.array_keys()}


def test_started_ahead_writes_what_the_pass_itself_writes(cube, client, tmp_path, monkeypatch):
    from offnadir.change import runner as R
    from offnadir.change.stage import detect_store

    started = []
    orig = R.Runner.start_context
    monkeypatch.setattr(R.Runner, "start_context",
                        lambda self: started.append(self._stats is None) or orig(self))
    a = detect_store(shutil.copytree(cube, tmp_path / "a.zarr"), quiet=True)  # threaded scheduler
    assert started == [True]  # only the pass itself started the statistics
    b = detect_store(shutil.copytree(cube, tmp_path / "b.zarr"), quiet=True, client=client)
    assert started == [True, True, False]  # started ahead, then taken up by the pass
    xa, xb = _arrays(a), _arrays(b)
    assert set(xa) == set(xb) and "probability" in xa and "patch" in xa
    for k in xa:
        assert np.array_equal(xa[k], xb[k], equal_nan=xa[k].dtype.kind == "f"), k
    assert np.any(xa["change"] > 0)  # the scene has changes: a wrong map would show


def test_statistics_error_comes_before_the_suns(cube, client, tmp_path, monkeypatch):
    """No base cell visible and a sun that fails: the run stops with the statistics' DataError, as
    when the statistics were computed before the sun."""
    import zarr

    from offnadir.change import context as C
    from offnadir.change.stage import detect_store
    from offnadir.errors import DataError

    out = shutil.copytree(cube, tmp_path / "c.zarr")
    with _quiet_zarr():
        vis = zarr.open_group(str(out), mode="r+", use_consolidated=False)["visible"]
        vis[0] = np.zeros(vis.shape[1:], vis.dtype)

    def boom(*a, **k):
        raise RuntimeError("sun failed")

    monkeypatch.setattr(C, "resolve_sun", boom)
    with pytest.raises(DataError, match="no DSM cell is visible in the base image"):
        detect_store(out, quiet=True, client=client)


def test_stopped_run_leaves_no_cached_chunks(cube, client, tmp_path, monkeypatch):
    """The set-up fails while the statistics run: the run waits for them before dropping its
    cached chunks, so none of that run is left in this process's cache."""
    from offnadir.change import stage as S
    from offnadir.change import tileio

    tokens = []
    orig_forget = S._forget
    monkeypatch.setattr(S, "_forget", lambda token, c: tokens.append(token) or orig_forget(token, c))

    def failing(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(S, "_set_up", failing)
    with pytest.raises(OSError, match="disk full"):
        S.detect_store(shutil.copytree(cube, tmp_path / "d.zarr"), quiet=True, client=client)
    assert len(tokens) == 1
    _idle(client)  # any task of the run still queued or running has finished now
    with tileio._CACHE.lock:
        left = [k for k in tileio._CACHE.chunks if k[0] == tokens[0]]
    assert left == []


def _idle(client, limit=30.0):
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        if not any(client.processing().values()) and not client.run_on_scheduler(
                lambda dask_scheduler: len(dask_scheduler.unrunnable) + len(dask_scheduler.queued)):
            time.sleep(0.2)  # a task picked up between the two looks
            if not any(client.processing().values()):
                return
        time.sleep(0.05)
