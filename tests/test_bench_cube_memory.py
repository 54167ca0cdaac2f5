"""``benchmarks/bench_cube.py memory --store DIR`` makes DIR when it is missing (it used to fail),
writes real tiles there and cleans up after itself. A tiny procedural plan on one worker."""

from __future__ import annotations


import pytest
from conftest import benchmark_module


bench_cube = benchmark_module("bench_cube")


def test_store_root_makes_missing_dirs_and_refuses_a_file(bench_cube, tmp_path):
    root, made = bench_cube.store_root(str(tmp_path / "a" / "b"))
    assert made and root.is_dir()
    again, made = bench_cube.store_root(str(root))
    assert again == root and not made
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SystemExit, match="not a directory"):
        bench_cube.store_root(str(f))


def test_memory_mode_writes_into_a_missing_store_dir(bench_cube, tmp_path, capsys):
    store = tmp_path / "not" / "yet"
    rc = bench_cube.main(["memory", "--size", "256", "--chunk", "128", "--workers", "1", "--gsd", "0.5",
                          "--store", str(store), "--quiet", "--keep"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "4 of 4 tiles computed" in out
    cube = store / "cube.zarr"
    from offnadir import store as store_mod

    assert store_mod.progress(cube) == (4, 4)   # every tile written and marked done
    # without --keep the cube goes, the directory the user named stays
    rc = bench_cube.main(["memory", "--size", "256", "--chunk", "128", "--workers", "1", "--gsd", "0.5",
                          "--store", str(store), "--quiet"])
    assert rc == 0
    assert store.is_dir() and not cube.exists()
