"""The notebooks in ``notebooks/`` run: each one in a fresh kernel of this interpreter, from a
temporary folder (so nothing lands in the checkout), failing on the first cell error. Their own
cells assert the outcomes (scores against the simulator's truth, identical arrays on an existing
Client); this file checks that they execute, and that the committed ``.ipynb`` files are what
``notebooks/_build.py`` writes (no stale copies, no outputs committed)."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat (pip install -e '.[test]')")
nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient (pip install -e '.[test]')")
pytest.importorskip("ipykernel", reason="the test extra installs ipykernel (pip install -e '.[test]')")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
#: seconds a cell may take (nbclient's limit), generous for a loaded 2-core machine
CELL_TIMEOUT = 300
#: terminal colour codes in the kernel's tracebacks
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _build_module() -> dict:
    """notebooks/_build.py's globals (run_path compiles without writing a __pycache__ into notebooks/)."""
    return runpy.run_path(str(NOTEBOOKS / "_build.py"), run_name="offnadir_notebooks_build")


def _kernel_manager(tmp_path: Path):
    """A kernel manager whose ``python3`` kernel is this interpreter (``sys.executable``), whatever
    ``python`` on PATH is: a kernelspec written to a private folder and looked up there only."""
    from ipykernel.kernelspec import write_kernel_spec
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    kernels = tmp_path / "kernels"
    kernels.mkdir()
    write_kernel_spec(str(kernels / "python3"))
    ksm = KernelSpecManager(kernel_dirs=[str(kernels)])
    assert ksm.get_kernel_spec("python3").argv[0] == sys.executable
    return KernelManager(kernel_name="python3", kernel_spec_manager=ksm)


def test_committed_notebooks_are_what_the_generator_writes():
    build = _build_module()
    written = build["notebooks"]()
    assert set(written) == {p.name for p in NOTEBOOKS.glob("*.ipynb")}, "a notebook without a source in _build.py"
    for name, nb in written.items():
        on_disk = nbformat.read(NOTEBOOKS / name, as_version=4)
        assert build["content"](on_disk) == build["content"](nb), f"{name} is stale: run python notebooks/_build.py"
        nbformat.validate(on_disk)
        assert all(not c.get("outputs") and c.get("execution_count") is None
                   for c in on_disk.cells if c.cell_type == "code"), f"{name} has outputs committed"
    assert build["main"](["--check"]) == 0


def _execute(nb, tmp_path: Path) -> Path:
    """Run ``nb`` in place (outputs filled in) in a fresh kernel from ``tmp_path/work``; that folder."""
    work = tmp_path / "work"
    work.mkdir()
    nbclient.NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()
    return work


@pytest.mark.cluster
@pytest.mark.slow
@pytest.mark.timeout(600)  # per notebook; a hung kernel fails here instead of holding the suite
@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name, tmp_path):
    before = sorted(p.name for p in NOTEBOOKS.iterdir())
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    try:
        work = _execute(nb, tmp_path)
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{name}: a cell failed:\n{ANSI.sub('', str(e))}", pytrace=False)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), f"{name}: not every cell ran"
    assert any(work.iterdir()), f"{name} wrote nothing into its working folder"
    assert sorted(p.name for p in NOTEBOOKS.iterdir()) == before, f"{name} wrote into notebooks/"


@pytest.mark.timeout(120)
def test_a_failing_cell_stops_the_notebook(tmp_path):
    """The runner above fails on a cell's error (an assert in a notebook is a test) and runs the
    kernel in the working folder, with this interpreter."""
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("import os, sys\nprint(os.getcwd()); print(sys.executable)"),
                             new_code_cell("assert 1 + 1 == 3, 'arithmetic broke'"),
                             new_code_cell("print('never')")])
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="arithmetic broke"):
        _execute(nb, tmp_path)
    printed = nb.cells[0].outputs[0]["text"].split()
    assert printed == [str((tmp_path / "work").resolve()), sys.executable]
    assert nb.cells[2].execution_count is None and not nb.cells[2].outputs
