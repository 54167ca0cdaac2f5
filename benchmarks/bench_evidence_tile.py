"""Per-tile cost of the change stage's evidence and maps tasks (``change.cells.evidence_tile``,
``change.cells.probability_tile``), from memory: an exact A/B of a code change on captured tiles.

    python benchmarks/bench_evidence_tile.py capture OUT.pkl -- DETECT ARGS...
    python benchmarks/bench_evidence_tile.py time OUT.pkl [--repeat 5] [--check] [--only cells.evidence_tile]

``capture``: runs ``offnadir detect DETECT ARGS --workers 1 --local-workers threads`` in this
process with both functions wrapped: every call's arguments, the arrays it read from the store
(by name and key), the store's ``has`` answers, what it wrote (by name and key) and its result are
pickled to OUT.pkl. ``time``: replays every captured call on one core from memory, warm (one
untimed call first), and prints the minimum over ``--repeat`` runs of the CPU time
(``time.process_time``) per call and the totals per function; with ``--check`` every write and the
result must equal the capture exactly (``np.array_equal``, NaN equal to NaN, recursively through
dicts, lists and tuples), so replaying a capture of the code before a change is an exact A/B
check. Run ``time`` with the two trees alternately (``PYTHONPATH=tree/src``) to compare them.
"""

from __future__ import annotations

import sys

import _tile_replay  # benchmarks/ is the script's directory

LABELS = ("cells.evidence_tile", "cells.probability_tile")

if __name__ == "__main__":
    sys.exit(_tile_replay.main(__doc__, LABELS, repeat=5))
