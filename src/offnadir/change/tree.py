"""The tiles of the change stage and the dask tree reductions of what their tasks return (wiring,
no math): a reduction is started and its result asked for later, so the client can work while
the workers compute (:meth:`offnadir.change.runner.Runner.start_context`)."""

from __future__ import annotations

import dask

from offnadir.cube.plan import Tile


def tiles_of(chunks_y, chunks_x):
    out, i0 = [], 0
    for a, cy in enumerate(chunks_y):
        j0 = 0
        for b, cx in enumerate(chunks_x):
            out.append(Tile(a, b, i0, i0 + cy, j0, j0 + cx))
            j0 += cx
        i0 += cy
    return out


def _tree(parts, combine, k=8):
    parts = list(parts)
    if not parts:
        return None
    while len(parts) > 1:
        parts = [dask.delayed(combine, pure=True)(*parts[i:i + k]) for i in range(0, len(parts), k)]
    return parts[0]


class Deferred:
    """A reduction computed when its result is asked for (no client: the current dask scheduler)."""

    def __init__(self, root):
        self.root = root

    def result(self):
        return None if self.root is None else self.root.compute()


def start(client, parts, combine):
    """The tree reduction of ``parts`` by ``combine``, started: on a cluster its future (the
    client is free until ``.result()``); without one a :class:`Deferred`, computed with the
    current dask scheduler when ``.result()`` is called."""
    root = _tree(parts, combine)
    if root is not None and client is not None:
        return client.compute(root)
    return Deferred(root)
