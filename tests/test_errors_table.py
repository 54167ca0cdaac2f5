"""docs/errors.md is what docs/make_errors_table.py writes from tests/error_cases.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_committed_error_table_is_up_to_date():
    spec = importlib.util.spec_from_file_location("make_errors_table", ROOT / "docs" / "make_errors_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.run_cases()
    assert all(code == 2 for _, _, _, code in rows)
    assert all(msg.startswith("offnadir: error:") and "Traceback" not in msg for _, _, msg, _ in rows)
    assert (ROOT / "docs" / "errors.md").read_text() == mod.render(rows), \
        "docs/errors.md is out of date: run python docs/make_errors_table.py"
