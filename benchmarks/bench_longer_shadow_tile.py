"""Per-tile cost of the longer-shadow sums (``change.longer_shadow.tile_sums``), from memory.

    python benchmarks/bench_longer_shadow_tile.py capture OUT.pkl -- DETECT ARGS...
    python benchmarks/bench_longer_shadow_tile.py time OUT.pkl [--repeat 7] [--check]

``capture``: runs ``offnadir detect DETECT ARGS --workers 1 --local-workers threads`` in this
process with ``longer_shadow.tile_sums`` (and ``missing_shadow.tile_sums``, for comparison) wrapped:
every call's arguments, the arrays it read from the store (each read recorded by name and key)
and its result are pickled to OUT.pkl. ``time``: replays every captured tile on one core from
memory (the recorded reads), warm (one untimed call first), the minimum over ``--repeat`` runs
of the CPU time (``time.process_time``) per tile and function; with ``--check`` the replayed
results must equal the captured ones exactly, so a change to the code replayed against a capture
of the code before it is an exact A/B check (machinery: ``benchmarks/_tile_replay.py``).
"""

from __future__ import annotations

import sys

import _tile_replay  # benchmarks/ is the script's directory

LABELS = ("longer_shadow.tile_sums", "missing_shadow.tile_sums")

if __name__ == "__main__":
    sys.exit(_tile_replay.main(__doc__, LABELS, repeat=7))
