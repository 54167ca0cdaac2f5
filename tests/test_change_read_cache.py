"""The client's reads of the cube in the context pass (the sun's estimate and classifiers) through
the run's chunk cache (``tileio.read_through_cache``): the same arrays (values, dtypes, dask chunks)
and the same sun report as the cube opened from the store; the cube itself where this process holds
none of the run's chunks (worker processes) or without a run token."""

from __future__ import annotations

import json
import uuid

import dask
import numpy as np
from conftest import coregistered_sim

from offnadir.change import tileio as TI
from offnadir.change.illumination import resolve_suns, small_coords_loaded
from offnadir.store import open_dataset


def test_sun_read_through_the_cache_is_the_sun_read_from_the_store(tmp_path):
    path = coregistered_sim(tmp_path, seed=1, size=160)
    cube = small_coords_loaded(open_dataset(path))
    io = TI.StoreIO(path, run=uuid.uuid4().hex)
    assert TI.read_through_cache(cube, io) is cube  # nothing decoded here yet
    assert TI.read_through_cache(cube, TI.StoreIO(path)) is cube
    try:
        for n in ("dsm", "visible", "value"):  # what the context pass's tasks decode
            io.read(n, tuple(slice(None) for _ in cube[n].shape))
        assert TI.holds(io.run)
        cached = TI.read_through_cache(cube, io)
        assert cached is not cube
        for n in ("dsm", "visible", "value"):
            a, b = cube[n], cached[n]
            assert a.dtype == b.dtype and a.data.chunks == b.data.chunks and a.attrs == b.attrs
            assert np.array_equal(a.values, b.values, equal_nan=True), n
            assert np.array_equal(a.isel(image=-1).mean("band").values if n == "value" else a.values,
                                  b.isel(image=-1).mean("band").values if n == "value" else b.values, equal_nan=True)
        with dask.config.set(scheduler="sync"):
            ra, rb = resolve_suns(cube, tol=0.3), resolve_suns(cached, tol=0.3)
        assert all(r.get("shadow_classifier") for r in rb)  # the classifiers read the windows
        assert json.dumps(ra, default=str, sort_keys=True) == json.dumps(rb, default=str, sort_keys=True)
    finally:
        TI.forget(io.run)
    assert not TI.holds(io.run)
