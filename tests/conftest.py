"""Shared fixtures. Real data is read in place from ../shared/data/real (never copied)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("OFFNADIR_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))
BENCH = ROOT / "benchmarks"


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.fail(f"real test data not found at {REAL}; CI checks out ../shared beside the project")
    return REAL


def real(path: str) -> Path:
    """Path of a file under shared/data/real (for parametrize lists at import time)."""
    return REAL / path


def benchmark_module(name: str):
    """A module-scoped fixture that imports ``benchmarks/NAME.py`` (the benchmarks folder on
    ``sys.path`` while the fixture lives, for the script's own sibling imports)."""

    @pytest.fixture(scope="module")
    def _module():
        sys.path.insert(0, str(BENCH))
        try:
            yield importlib.import_module(name)
        finally:
            sys.path.remove(str(BENCH))

    return _module


def coregistered_sim(tmp_path: Path, seed: int = 0, size: int = 128) -> Path:
    """A simulated scene (``offnadir simulate``) in ``tmp_path/scene`` and its base/target cube written by
    ``offnadir coregister`` to ``tmp_path/out.zarr`` (one worker); returns the store's path."""
    from offnadir.cli import main

    d = tmp_path / "scene"
    assert main(["simulate", str(d), "--seed", str(seed), "--size", str(size)]) == 0
    out = tmp_path / "out.zarr"
    assert main(["coregister", "--dsm", str(d / "dsm.tif"), "--image", str(d / "base.tif"), "--image",
                 str(d / "target.tif"), "-o", str(out), "--workers", "1", "--quiet"]) == 0
    return out

