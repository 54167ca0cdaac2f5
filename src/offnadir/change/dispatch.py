"""How the change stage's runner runs its tasks: on a ``distributed`` client when it has one
(``self.client``), else with the current dask scheduler; the passes' per-tile results reduced by
dask trees. Wiring only (:class:`offnadir.change.runner.Runner` inherits it)."""

from __future__ import annotations

import dask


def _tree(parts, combine, k=8):
    parts = list(parts)
    if not parts:
        return None
    while len(parts) > 1:
        parts = [dask.delayed(combine, pure=True)(*parts[i:i + k]) for i in range(0, len(parts), k)]
    return parts[0]


class Dispatch:
    """Running and reducing tasks for a runner with ``client`` (or None), ``quiet`` and a dict
    ``_futures`` (the scattered objects it keeps alive)."""

    def compute(self, tasks, desc="tiles"):
        if not tasks:
            return []
        if self.client is not None:
            from offnadir.cluster import run_tasks

            return run_tasks(self.client, tasks, desc=desc, quiet=self.quiet)
        return list(dask.compute(*tasks))

    def reduce(self, parts, combine):
        return self.reduce_many((parts, combine))[0]

    def submit(self, parts, combine):
        """:meth:`reduce` started, not waited for: :meth:`fetch` gives its result."""
        root = _tree(parts, combine)
        return self.client.compute(root) if self.client is not None and root is not None else root

    def fetch(self, handle):
        return None if handle is None else handle.result() if self.client is not None else handle.compute()

    def reduce_many(self, *jobs):
        """:meth:`reduce` of several ``(parts, combine)`` in one computation: their tasks share the
        workers, with no barrier between the reductions."""
        roots = [_tree(p, c) for p, c in jobs]
        live = [r for r in roots if r is not None]
        if self.client is not None:
            done = iter(f.result() for f in self.client.compute(live))
        else:
            done = iter(dask.compute(*live))
        return [None if r is None else next(done) for r in roots]

    def shared(self, obj):
        """A large argument shared by many tasks (scattered once on a cluster)."""
        if self.client is not None:
            # keep one future per object alive for the whole run (re-scattering an object whose
            # earlier future was released loses the data under running tasks)
            key = id(obj)
            if key not in self._futures:
                self._futures[key] = (obj, self.client.scatter(obj, broadcast=True, hash=False))
            return self._futures[key][1]
        return dask.delayed(obj, pure=True, traverse=False)
