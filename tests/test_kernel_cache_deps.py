"""The run's numba kernels call only kernels of their own file.

numba keys a cached kernel by its own source file only: a kernel that calls (or inlines) a kernel
of another file keeps running the old machine code after that other file is edited, until its
own file changes (numba's documented cache limitation). So every kernel module of a run
(``offnadir.warmup.PIPELINE_MODULES``) is one compilation unit; what a kernel needs from another
module is computed before it is called and passed in (as ``visibility_los`` does with the
geometry of its ahead bound, ``offnadir.cube.visibility_bound_kernels``)."""

from __future__ import annotations

import types

from numba.core.registry import CPUDispatcher

from offnadir import warmup as W


def _foreign_calls(d) -> list[str]:
    """Names a kernel uses that are numba kernels, or offnadir modules, of another file."""
    mod = d.py_func.__module__
    out = []
    for name in d.py_func.__code__.co_names:
        obj = d.py_func.__globals__.get(name)
        if isinstance(obj, CPUDispatcher) and obj.py_func.__module__ != mod:
            out.append(f"{name} ({obj.py_func.__module__})")
        elif isinstance(obj, types.ModuleType) and obj.__name__.startswith("offnadir"):
            out.append(f"{name} (module {obj.__name__})")
    return out


def test_pipeline_kernels_call_no_kernel_of_another_file():
    disp = W.kernels(W.PIPELINE_MODULES)
    assert len(disp) >= 25  # the run's kernels were found
    bad = {k: f for k, d in disp.items() if (f := _foreign_calls(d))}
    assert bad == {}, f"kernels calling kernels of another file (stale numba cache after edits there): {bad}"


def test_the_check_sees_a_call_into_another_file():
    # the simulator's renderer calls the bounded-ray kernels of offnadir.simulate.bounded
    disp = W.kernels(("offnadir.simulate.tiles",))
    assert any(_foreign_calls(d) for d in disp.values())
