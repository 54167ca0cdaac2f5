"""Nothing lost: --overwrite replaces only offnadir's own stores, --resume only the same plan, one
writer per output, readers refuse unfinished stores, failures leave nothing half-written without a
word (issue 12, items 1-3 and 7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import zarr
from test_cube_cli import scene  # noqa: F401  (fixture)

from offnadir import outputs, store
from offnadir.cli import main


def _args(dsm, images, out, *extra):
    a = ["coregister", "--dsm", str(dsm)]
    for im in images:
        a += ["--image", str(im)]
    return a + ["-o", str(out), "--quiet", "--workers", "1", *extra]


def _refused(argv, capsys, *needles):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("offnadir: error:")]
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ----------------------------------------------------------------------------- --overwrite
def test_overwrite_never_touches_what_offnadir_did_not_write(scene, capsys, monkeypatch):  # noqa: F811
    tmp, dsm, a, b = scene
    before = _tree(tmp)
    _refused(_args(dsm, [a], "/", "--overwrite"), capsys, "filesystem root")
    monkeypatch.setenv("HOME", str(tmp / "home"))
    (tmp / "home").mkdir()
    (tmp / "home" / "notes.txt").write_text("mine")
    _refused(_args(dsm, [a], "~", "--overwrite"), capsys, "home folder")
    _refused(_args(dsm, [a], dsm, "--overwrite"), capsys, "input file")
    _refused(_args(dsm, [a], tmp, "--overwrite"), capsys, "holds the input")
    monkeypatch.chdir(tmp)
    _refused(_args(dsm, [a], ".", "--overwrite"), capsys, "current folder")
    _refused(_args(dsm, [a], tmp.parent, "--overwrite"), capsys, "current folder or one of its parents")
    other = tmp / "unrelated"
    other.mkdir()
    (other / "data.txt").write_text("precious")
    _refused(_args(dsm, [a], other, "--overwrite"), capsys, "offnadir did not write", "--overwrite only replaces")
    assert (other / "data.txt").read_text() == "precious"
    _refused(_args(dsm, [a], tmp / "unrelated" / "data.txt", "--overwrite"), capsys, "a file")
    _refused(_args(dsm, [a], tmp / "unrelated" / "data.txt" / "o.zarr"), capsys, "is a file, not a folder")
    # a config whose output is its own folder (which holds the inputs)
    monkeypatch.chdir(tmp.parent)
    cfg = tmp / "job.yaml"
    cfg.write_text(f"dsm: {{path: {dsm}}}\nimages: [{{path: {a}}}]\noutput: {{path: ., overwrite: true}}\n")
    _refused(["run", str(cfg), "--quiet"], capsys, "holds the input")
    assert (tmp / "home" / "notes.txt").read_text() == "mine"
    assert set(before) <= set(_tree(tmp)), "an input or unrelated file was deleted"


def test_overwrite_replaces_an_offnadir_store(scene, capsys):  # noqa: F811
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    assert main(_args(dsm, [a], out, "--chunk", "75")) == 0
    assert store.status(out) == store.COMPLETE and store.is_offnadir_store(out)
    _refused(_args(dsm, [a], out), capsys, "already exists", "--overwrite")
    assert main(_args(dsm, [a, b], out, "--overwrite")) == 0
    assert xr.open_zarr(out)["visible"].shape == (2, 150, 150)
    assert not outputs.lock_path(out).exists(), "the lock file must go with the run"


# ----------------------------------------------------------------------------- --resume
def _interrupt(out, tiles):
    """What an interrupted run leaves: some tiles not written, the store marked incomplete."""
    g = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    for ti, tj in tiles:
        g["tile_done"][ti, tj] = 0
        g["visible"][:, ti * 50:(ti + 1) * 50, tj * 50:(tj + 1) * 50] = 2
    g.attrs[store.STATUS_ATTR] = store.INCOMPLETE
    zarr.consolidate_metadata(str(out))


def test_resume_refuses_another_plan_and_finishes_the_same_one(scene, capsys):  # noqa: F811
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    args = _args(dsm, [a, b], out, "--chunk", "50")
    assert main(args) == 0
    full = xr.open_zarr(out).load()
    _interrupt(out, [(0, 1), (2, 2)])
    # evaluate-style readers refuse the unfinished store
    with pytest.raises(Exception, match="incomplete .2 of 9 cube tiles|incomplete \\(7 of 9"):
        store.require_complete(out, "evaluate")
    msg = _refused(_args(dsm, [a, b], out, "--chunk", "64", "--resume"), capsys, "another plan",
                   "config.tiling.chunk: 50 -> 64", "--overwrite")
    assert "Traceback" not in msg
    _refused(_args(dsm, [b, a], out, "--chunk", "50", "--resume"), capsys, "another plan", "images[0].path")
    assert store.status(out) == store.INCOMPLETE  # refusals change nothing
    assert main(_args(dsm, [a, b], out, "--chunk", "50", "--resume")) == 0
    again = xr.open_zarr(out).load()
    for v in ("visible", "row", "col", "value", "dsm"):
        np.testing.assert_array_equal(again[v].values, full[v].values)
    assert store.status(out) == store.COMPLETE
    # resuming a complete store does nothing (and says so)
    meta = out / store.metadata_file(out)  # the root attributes' file, either Zarr format
    mtime = meta.stat().st_mtime_ns
    assert main(_args(dsm, [a, b], out, "--chunk", "50", "--resume")) == 0
    assert meta.stat().st_mtime_ns == mtime


def test_resume_counts_only_unfinished_tiles(scene, capsys):  # noqa: F811
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    argv = ["coregister", "--dsm", str(dsm), "--image", str(a), "-o", str(out), "--workers", "1", "--chunk", "50"]
    assert main(argv) == 0
    _interrupt(out, [(1, 0), (1, 1), (2, 0)])
    capsys.readouterr()
    assert main(argv + ["--resume"]) == 0
    assert "3 of 9 tiles to compute" in capsys.readouterr().err


def test_resume_of_a_store_without_a_plan_is_refused(scene, capsys):  # noqa: F811
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    zarr.open_group(str(out), mode="w")
    _refused(_args(dsm, [a], out, "--resume"), capsys, "records the plan", "--overwrite")


# ----------------------------------------------------------------------------- lock
def test_a_second_writer_is_refused_while_the_first_holds_the_lock(scene, capsys, caplog):  # noqa: F811
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from offnadir.outputs import OutputLock\n"
        f"lk = OutputLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert outputs.is_locked(out)
        _refused(_args(dsm, [a], out), capsys, "another offnadir run is writing", f"pid {holder.pid}")
        _refused(_args(dsm, [a], out, "--overwrite"), capsys, "another offnadir run is writing")
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock is stale, and the next run takes over
    assert outputs.lock_path(out).exists() and not outputs.is_locked(out)
    assert main(_args(dsm, [a], out)) == 0
    assert "stale lock" in caplog.text
    assert store.status(out) == store.COMPLETE


def test_evaluate_refuses_an_unfinished_store(scene, capsys):  # noqa: F811
    tmp, dsm, a, b = scene
    out = tmp / "o.zarr"
    assert main(_args(dsm, [a, b], out, "--chunk", "50")) == 0
    _interrupt(out, [(0, 0)])
    truth = tmp / "truth.tif"
    import shutil

    shutil.copy(dsm, truth)
    _refused(["evaluate", str(out), str(truth)], capsys, "incomplete (8 of 9 cube tiles written)", "--resume")


# ----------------------------------------------------------------------------- failures
@pytest.fixture
def tiny_disk(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up here ({r.stderr.strip()}); needs root")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_is_a_clean_error_and_the_store_is_resumable(scene, capsys, tiny_disk):  # noqa: F811
    tmp, dsm, a, b = scene
    out = tiny_disk / "o.zarr"
    code = main(_args(dsm, [a, b], out, "--chunk", "50"))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert "disk is full" in err and "--resume" in err
    if out.exists():  # kept only when it holds finished tiles, and then it says so
        done, n = store.progress(out)
        assert done > 0 and f"({done} of {n} cube tiles written)" in err
        assert store.status(out) == store.INCOMPLETE
    assert not outputs.lock_path(out).exists()


def test_read_only_target_is_refused_before_any_work(scene, capsys, tiny_disk):  # noqa: F811
    tmp, dsm, a, b = scene
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    _refused(_args(dsm, [a], tiny_disk / "o.zarr"), capsys, "cannot write into", "read-only")


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory):
    """A 480x480-cell scene in 144 tiles of 40 (long enough to interrupt) and its uninterrupted store."""
    from synthetic import affine_rpc, box_scene, write_dsm, write_image

    tmp = tmp_path_factory.mktemp("big")
    heights = box_scene(n=480, boxes=((30, 160, 30, 170, 25.0), (290, 430, 280, 410, 12.0)))
    dsm = write_dsm(tmp / "dsm.tif", heights)
    a = write_image(tmp / "a.tif", affine_rpc(10.0, 60.0, rows=1200, cols=1200))
    b = write_image(tmp / "b.tif", affine_rpc(25.0, 250.0, rows=1200, cols=1200))
    ref = tmp / "ref.zarr"
    assert main(_args(dsm, [a, b], ref, "--chunk", "40")) == 0
    return dsm, a, b, _store_cells(ref)


def _store_cells(path):
    ds = xr.open_zarr(path).load()
    return {v: ds[v].values for v in ("visible", "row", "col", "value", "dsm")}


@pytest.mark.slow
def test_whole_run_sigkill_then_resume_gives_the_same_cells(tmp_path, big_scene):
    """A real `offnadir coregister` process group killed with SIGKILL mid-run; --resume recomputes
    exactly the unfinished tiles and the store equals an uninterrupted run cell for cell."""
    dsm, a, b, want = big_scene
    out = tmp_path / "o.zarr"
    cmd = [sys.executable, "-m", "offnadir.cli"] + _args(dsm, [a, b], out, "--chunk", "40")
    proc = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL)
    n_tiles = 144
    assert _wait_for_tiles(out, proc, 5), "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done, n = store.progress(out)
    assert 0 < done < n == n_tiles
    assert store.status(out) == store.INCOMPLETE
    rc = subprocess.run([c for c in cmd if c != "--quiet"] + ["--resume"], capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    assert f"{n - done} of {n} tiles to compute" in rc.stderr, rc.stderr
    got = _store_cells(out)
    for v in want:
        np.testing.assert_array_equal(got[v], want[v], err_msg=v)
    assert store.status(out) == store.COMPLETE
    attrs = store.root_attrs(out)
    assert json.loads(attrs[store.PLAN_ATTR])["config"]["tiling"]["chunk"] == 40


def _wait_for_tiles(out, proc, at_least):
    t0 = time.monotonic()
    while time.monotonic() - t0 < 300 and proc.poll() is None:
        if any((out / "tile_done" / m).exists() for m in ("zarr.json", ".zarray")):  # Zarr v3 or v2
            try:
                if store.progress(out)[0] >= at_least:
                    return True
            except Exception:  # noqa: BLE001 - the store is being written
                pass
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.cluster
def test_worker_sigkill_mid_run_gives_the_same_cells(tmp_path, big_scene):
    """SIGKILL one worker of a real loopback cluster while `offnadir coregister --scheduler` runs:
    its nanny restarts it, dask reruns the lost tiles, and the store equals a local run."""
    from distributed import Client
    from test_cube_cli import loopback_cluster as fixture

    dsm, a, b, want = big_scene
    out = tmp_path / "o.zarr"
    gen = fixture.__wrapped__(tmp_path)
    addr = next(gen)
    try:
        cmd = [sys.executable, "-m", "offnadir.cli"] + [c for c in _args(dsm, [a, b], out, "--chunk", "40")
                                                         if c not in ("--workers", "1")] + ["--scheduler", addr]
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        assert _wait_for_tiles(out, proc, 5), "the run ended before a worker could be killed"
        with Client(addr, timeout="10s") as c:
            pids = c.run(os.getpid)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
    finally:
        gen.close()
    got = _store_cells(out)
    for v in want:
        np.testing.assert_array_equal(got[v], want[v], err_msg=v)
    assert store.progress(out) == (144, 144) and store.status(out) == store.COMPLETE
