"""The sun estimate's candidate suns scored on a cluster's workers (offnadir.change.sun_tasks):
the same fit, field for field, as when the client scores them one after the other, and the
scoring really ran as tasks."""

from __future__ import annotations

import dataclasses

import numpy as np
from synthetic import random_boxes
from test_sun_estimate import _shadowed_image


def test_candidates_on_the_workers_give_the_same_fit():
    from distributed import get_task_stream

    from offnadir.change.sun_estimate import fit_sun
    from offnadir.change.sun_tasks import client_scoring
    from offnadir.cluster import dask_client

    h = random_boxes(200, 1)
    scenes = [_shadowed_image(h, 211.5, 30.0),  # shadows cast by the simulator: a clear fit
              np.random.default_rng(0).normal(0, 1, h.shape)]  # no shadows: a fit that is rejected
    usable = np.ones(h.shape, bool)
    usable[:7, :11] = False
    here = [fit_sun(h, img, usable, 0.5, 1.5) for img in scenes]
    with client_scoring(None):  # no cluster: scored here, as before
        assert [fit_sun(h, img, usable, 0.5, 1.5) for img in scenes] == here
    with dask_client(n_workers=2, quiet=True, processes=False) as client, get_task_stream(client) as ts:
        with client_scoring(client):
            there = [fit_sun(h, img, usable, 0.5, 1.5) for img in scenes]
    assert here[0].accepted() and not here[1].accepted()
    for a, b in zip(here, there):
        assert dataclasses.asdict(a) == dataclasses.asdict(b)
    batches = [t for t in ts.data if str(t["key"]).startswith("_score_batch")]
    # every search of both fits went through the workers: the whole-sky search (with its null
    # draws) and at least one refinement per level, each split over 2 threads x 2 batches
    assert len(batches) >= 2 * 3 * 4
