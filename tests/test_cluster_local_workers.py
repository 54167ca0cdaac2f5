"""Fixed costs of a run (issue 11): the local cluster's workers as threads for small plans, the
choice logged and stored, each step's wall time in the log, the collector managed for a process
that runs one command, and tile workers that do not import ``dask.array``."""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synthetic import affine_rpc, box_scene, write_dsm, write_image

from offnadir import cluster
from offnadir.cli import main
from offnadir.errors import ConfigError

SRC = str(Path(cluster.__file__).resolve().parents[1])


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


# ----------------------------------------------------------------------------- the choice
def test_auto_picks_threads_below_the_bound_and_processes_above():
    limit = cluster.THREADS_MAX_WORK_PER_WORKER
    processes, why = cluster.local_workers("auto", 1, limit, 1)  # cells x 1 image x 1 worker: the bound
    assert processes is False and "threads" in why
    processes, why = cluster.local_workers("auto", 1, limit + 1, 1)
    assert processes is True and "worker processes" in why
    # the bound is per worker: the same plan on more workers is small enough for threads again
    assert cluster.local_workers("auto", 4, 2 * limit, 2)[0] is False
    assert cluster.local_workers("auto", 2, 2 * limit, 2)[0] is True
    # images count: the same DSM with more images is more work
    assert cluster.local_workers("auto", 2, limit, 2)[0] is False
    assert cluster.local_workers("auto", 2, limit, 3)[0] is True


def test_explicit_choices_and_a_bad_value():
    assert cluster.local_workers("processes", 2, 10, 2) == (True, "cluster.local_workers: processes")
    assert cluster.local_workers("threads", 2, 10**12, 2)[0] is False
    with pytest.raises(ConfigError, match="local_workers.*auto, processes, threads"):
        cluster.local_workers("fibers", 2, 10, 2)


def test_without_a_thread_safe_numba_layer_auto_keeps_processes(monkeypatch):
    monkeypatch.setattr(cluster, "numba_threads_safe", lambda: False)
    processes, why = cluster.local_workers("auto", 2, 100, 2)
    assert processes is True and "workqueue" in why
    with pytest.raises(ConfigError, match="workqueue"):
        cluster.local_workers("threads", 2, 100, 2)


def test_threaded_local_cluster_runs_tasks_in_this_process_on_loopback():
    with cluster.dask_client(n_workers=2, quiet=True, processes=False) as client:
        info = client.scheduler_info()["workers"]
        assert len(info) == 1 and next(iter(info.values()))["nthreads"] == 2
        assert set(client.run(os.getpid).values()) == {os.getpid()}
        worker = next(iter(client.cluster.workers.values()))
        addresses = [s.getsockname()[0] for s in worker.http_server._sockets.values()]
        assert addresses and all(a.startswith("127.") for a in addresses), addresses
        assert client.submit(sum, [1, 2, 3]).result() == 6


# ----------------------------------------------------------------------------- a run
@pytest.fixture
def scene(tmp_path):
    heights = box_scene(n=150, boxes=((30, 60, 30, 70, 25.0), (90, 130, 80, 110, 12.0)))
    dsm = write_dsm(tmp_path / "dsm.tif", heights)
    a = write_image(tmp_path / "a.tif", affine_rpc(10.0, 60.0), acquired="2021-06-01T10:00:00")
    b = write_image(tmp_path / "b.tif", affine_rpc(25.0, 250.0), acquired="2023-06-01T10:00:00")
    return tmp_path, dsm, a, b


def test_a_small_run_logs_and_stores_its_choice_and_times_its_steps(scene, caplog):
    tmp, dsm, a, b = scene
    out = tmp / "cube.zarr"
    gc_before = gc.isenabled(), gc.get_freeze_count()
    with caplog.at_level(logging.INFO, logger="offnadir"):
        rc = main(["coregister", "--dsm", str(dsm), "--image", str(a), "--image", str(b), "--chunk", "64",
                   "--no-tie-bias", "--quiet", "-o", str(out)])
    assert rc == 0
    assert (gc.isenabled(), gc.get_freeze_count()) == gc_before  # main(argv) leaves the collector alone
    msgs = [r.getMessage() for r in caplog.records]
    choice = [m for m in msgs if m.startswith("local cluster workers:")]
    assert choice and "threads in this process" in choice[0]
    timings = [m for m in msgs if m.startswith("timings (s):")]
    assert len(timings) == 1
    steps = dict(part.rsplit(" ", 1) for part in timings[0].split(":", 1)[1].split(";")[0].split(", "))
    for step in ("open inputs", "cluster start", "plan", "store layout", "tiles", "finalize", "cluster close"):
        assert float(steps[step]) >= 0.0, step
    attrs = json.loads((out / ".zattrs").read_text())
    assert attrs["cluster_workers"].startswith("local cluster, ") and "threads in the client process" in \
        attrs["cluster_workers"]
    assert attrs["offnadir:status"] == "complete"


def test_config_and_command_line_name_the_option(scene, capsys):
    tmp, dsm, a, b = scene
    rc = main(["coregister", "--dsm", str(dsm), "--image", str(a), "--image", str(b), "--local-workers", "many",
               "-o", str(tmp / "x.zarr")])
    assert rc == 2 and "--local-workers" in capsys.readouterr().err
    from offnadir.config import validate

    with pytest.raises(ConfigError, match="cluster.local_workers"):
        validate({"dsm": {"path": str(dsm)}, "images": [{"path": str(a)}], "output": {"path": str(tmp / "y.zarr")},
                  "cluster": {"local_workers": "fibers"}}, base=".", source="test")


# ----------------------------------------------------------------------------- processes
def test_a_process_run_for_one_command_manages_the_collector():
    """``main()`` without argv (the script): GC paused during the command's imports, which are
    frozen; enabled while the command runs; frozen again at the end."""
    code = ("import gc, sys, offnadir.cli as c\n"
            "seen = []\n"
            "orig = c.importlib.import_module\n"
            "def spy(name, *a):\n"
            "    seen.append((name, gc.isenabled()))\n"
            "    return orig(name, *a)\n"
            "c.importlib.import_module = spy\n"
            "sys.argv = ['offnadir', 'template-config']\n"
            "import offnadir.cli.template_config as t\n"
            "t.IMPORTS = ('offnadir.errors',)\n"
            "run = t.run\n"
            "t.run = lambda args: seen.append(('run', gc.isenabled())) or run(args)\n"
            "rc = c.main()\n"
            "print(repr([s for s in seen if s[0] in ('offnadir.errors', 'run')]), gc.isenabled(),"
            " gc.get_freeze_count() > 0, rc, file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stderr.strip().splitlines()[-1] == "[('offnadir.errors', False), ('run', True)] True True 0"


def test_tile_workers_do_not_import_dask_array():
    code = ("import sys\nimport offnadir.cube.graph, offnadir.store, offnadir.cube.tile\n"
            "print(sorted(m for m in ('dask.array', 'xarray', 'pandas') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- --overwrite
def test_overwrite_deletes_the_old_store_on_a_thread_and_leaves_nothing(tmp_path):
    from offnadir import store

    old = tmp_path / "out.zarr"
    (old / "value" / "0").mkdir(parents=True)
    (old / ".zgroup").write_text('{"zarr_format": 2}')
    (old / ".zattrs").write_text(json.dumps({store.STATUS_ATTR: store.COMPLETE}))
    for k in range(50):
        (old / "value" / "0" / str(k)).write_bytes(b"x" * 1000)
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = tmp_path / f".out.zarr{store.ASIDE_TAG}{int(p.stdout)}-0"  # a killed run's half-deleted store
    (dead / "x").mkdir(parents=True)
    alive = tmp_path / f".out.zarr{store.ASIDE_TAG}{os.getpid()}-99"  # a running process's: not touched
    alive.mkdir()
    assert store.prepare(old, overwrite=True) == store.NEW
    assert not old.exists()
    store.wait_for_removals()
    assert sorted(q.name for q in tmp_path.iterdir()) == [alive.name]


def test_a_store_that_is_not_offnadirs_is_still_refused(tmp_path):
    from offnadir import store
    from offnadir.errors import OutputExistsError

    other = tmp_path / "theirs.zarr"
    other.mkdir()
    (other / "keep.txt").write_text("data")
    with pytest.raises(OutputExistsError, match="not a store written by offnadir"):
        store.prepare(other, overwrite=True)
    assert (other / "keep.txt").read_text() == "data"
    assert sorted(q.name for q in tmp_path.iterdir()) == ["theirs.zarr"]


def _slow_write(path, fail):
    import time as _t

    if fail:
        raise ValueError("a tile failed")
    _t.sleep(1.0)
    Path(path).write_text("late")
    return 1


@pytest.mark.parametrize("processes", [False, True])
def test_a_failed_run_returns_only_when_no_cancelled_task_still_writes(tmp_path, processes):
    """Cancelling a future does not stop a running task: run_tasks must wait for it before it
    re-raises, or removing the half-written store races the task's late write (CI: "Directory
    not empty" on Ctrl-C)."""
    import dask

    late = tmp_path / "late.txt"
    with cluster.dask_client(n_workers=2, quiet=True, processes=processes) as client:
        tasks = [dask.delayed(_slow_write)(str(late), False, dask_key_name="slow"),
                 dask.delayed(_slow_write)(str(late), True, dask_key_name="fails")]
        with pytest.raises(ValueError, match="a tile failed"):
            cluster.run_tasks(client, tasks, quiet=True)
        assert late.exists(), "run_tasks re-raised while a cancelled task was still running"
