"""The sun estimate's candidate suns scored as tasks on a cluster's workers (dask wiring only; the
scoring is :func:`offnadir.change.sun_estimate._score_batch`).

Each search of :func:`offnadir.change.sun_estimate.fit_sun` scores up to a few hundred candidate
suns, each independent of the others (one illumination run and its per-block sums). On the client
they run one after the other while the workers wait (Kahramanmaras stereo: ~700 runs, 3.5-5 s of
the change stage with both workers idle). Here each search's candidates are split into batches
submitted to the workers, and their results put back in the candidates' order: each candidate is
scored by the same function on the same data, so the sums, the scores and the choice are the same
as on the client.
"""

from __future__ import annotations

import contextlib
import logging

log = logging.getLogger("offnadir.change.sun_tasks")

#: batches per worker thread: the candidates' costs differ (a low sun's rays are longer), so two
#: interleaved batches per thread let a thread that finishes early take another
BATCHES_PER_THREAD = 2


class _ClientBatches:
    """``run(fn, items, *shared)`` (:data:`offnadir.change.sun_estimate._RUN`) on ``client``: the
    shared arguments scattered once (kept while the estimate runs), ``items`` dealt into
    interleaved batches (item k to batch k mod n), one task per batch."""

    def __init__(self, client):
        self.client = client
        self.n = BATCHES_PER_THREAD * max(1, sum(client.nthreads().values()))
        self._shared = {}

    def _future(self, obj):
        if obj is None:
            return None
        key = id(obj)
        if key not in self._shared:  # the object is kept with its future: its id stays its own
            self._shared[key] = (obj, self.client.scatter(obj, broadcast=True, hash=False))
        return self._shared[key][1]

    def __call__(self, fn, items, *shared):
        n = min(self.n, len(items))
        if n <= 1:
            return fn(*shared, items)
        args = [self._future(s) for s in shared]
        futs = [self.client.submit(fn, *args, items[k::n], pure=False) for k in range(n)]
        out = [None] * len(items)
        for k, res in enumerate(self.client.gather(futs)):
            out[k::n] = res
        return out

    def close(self):
        for _, fut in self._shared.values():
            fut.release()
        self._shared.clear()


@contextlib.contextmanager
def client_scoring(client):
    """Within it, the sun estimate's searches score their candidates on ``client``'s workers;
    ``client`` None: on this thread, one after the other."""
    from offnadir.change.sun_estimate import candidate_runner

    if client is None:
        yield
        return
    run = _ClientBatches(client)
    log.debug("sun estimate: candidate suns scored in batches of 1/%d of each search on the cluster's workers", run.n)
    try:
        with candidate_runner(run):
            yield
    finally:
        run.close()
