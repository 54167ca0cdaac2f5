"""Shared fixtures. Real data is read in place from ../shared/data/real (never copied)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("OFFNADIR_REAL_DATA", ROOT.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL.is_dir():
        pytest.fail(f"real test data not found at {REAL}; CI checks out ../shared beside the project")
    return REAL


def real(path: str) -> Path:
    """Path of a file under shared/data/real (for parametrize lists at import time)."""
    return REAL / path
