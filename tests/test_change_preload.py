"""The change stage's client-side imports started in the background (offnadir.change.preload):
importing the module costs nothing, the thread imports the heavy libraries, and only once."""

from __future__ import annotations

import subprocess
import sys


def test_preload_imports_in_a_thread_once():
    code = ("import sys\nimport offnadir.change.preload as p\n"
            "before = sorted(m for m in ('xarray', 'pandas', 'rioxarray', 'dask.array') if m in sys.modules)\n"
            "t = p.start()\nt.join(120)\n"
            "after = sorted(m for m in ('xarray', 'pandas', 'rioxarray', 'dask.array') if m in sys.modules)\n"
            "print(before, after, p.start() is None, 'offnadir.change.stage' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[] ['dask.array', 'pandas', 'rioxarray', 'xarray'] True True"
