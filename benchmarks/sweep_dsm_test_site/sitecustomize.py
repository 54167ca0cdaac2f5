"""Run any offnadir command with another test of the DSM height in the same-date sweep, for the
benchmarks whose commands take no config (``offnadir detect``, ``benchmarks/eval_hard_sim.py``)::

    PYTHONPATH=benchmarks/sweep_dsm_test_site OFFNADIR_SWEEP_DSM_TEST=off_level \\
        python benchmarks/eval_hard_sim.py --stereo

Python imports this module at start-up (``sitecustomize``, here only when this folder is on
``PYTHONPATH``; subprocesses inherit it). It wraps :func:`offnadir.cube.sweep.sweep_tile` so that
every tile uses the test named by ``OFFNADIR_SWEEP_DSM_TEST`` (one of ``sweep.DSM_TESTS``);
without that variable it does nothing. The store's ``height_sweep`` attribute still names the
configured test. With a config, use ``height_sweep: {dsm_test: ...}`` instead."""

import os

_TEST = os.environ.get("OFFNADIR_SWEEP_DSM_TEST")
if _TEST:
    from offnadir.cube import sweep as _sweep

    if _TEST not in _sweep.DSM_TESTS:
        raise SystemExit(f"OFFNADIR_SWEEP_DSM_TEST must be one of {', '.join(_sweep.DSM_TESTS)}, not {_TEST!r}")
    _tile = _sweep.sweep_tile
    _bounds = _sweep.visibility_bounds

    def _forced_tile(*args, **kwargs):
        kwargs["dsm_test"] = _TEST
        return _tile(*args, **kwargs)

    def _forced_bounds(plan, tile, geom, relief, dsm_test=None, *args, **kwargs):
        return _bounds(plan, tile, geom, relief, _TEST, *args, **kwargs)

    _sweep.sweep_tile = _forced_tile
    _sweep.visibility_bounds = _forced_bounds
