"""Which census code pairs the structural evidence may compare when the old DSM predicts a cell's
direct-sun state to differ between the dates (a cast shadow moved with the sun): per-cell
transition labels and the pair mask word in :func:`offnadir.change.census_codes.pack`'s layout
(numpy; used by :func:`offnadir.change.cells.evidence_tile`)."""

from __future__ import annotations

import numpy as np

from offnadir.change import evidence as EV


def same_sun(lit, t):
    """Cells whose direct-sun state (:mod:`offnadir.change.illumination`: 0 none, 255 unknown)
    is the same at both dates or unknown (None: all)."""
    if lit is None:
        return None
    unknown = (lit[0] == 255) | (lit[t] == 255)
    return unknown | ((lit[0] == 0) == (lit[t] == 0))


def sun_labels(lit, t):
    """Per cell, its direct-sun transition from the base to target ``t`` as the old DSM predicts it
    (:mod:`offnadir.change.illumination`: 0 no direct sun, 255 unknown): 0 the same state at both
    dates or unknown (:func:`same_sun`), 1 lit -> shadow, 2 shadow -> lit."""
    moved = ~same_sun(lit, t)
    lab = np.zeros(lit.shape[1:], np.uint8)
    lab[moved & (lit[0] != 0)] = 1
    lab[moved & (lit[0] == 0)] = 2
    return lab


def pair_word(labels):
    """(y, x) uint32 word in :func:`offnadir.change.census_codes.pack`'s layout (-1, +1 and
    valid bits of every direction of :data:`offnadir.change.evidence._NEIGH` at
    :data:`~offnadir.change.evidence.RADIUS`) that keeps a cell's code towards a neighbour only
    where both carry the same label (directions leaving the array: kept; their codes are invalid).
    One numba pass (:func:`offnadir.change.census_codes.same_label_word`; the words of
    :func:`pair_word_numpy`, tested equal)."""
    from offnadir.change import census_codes as CW

    return CW.same_label_word(labels, EV.RADIUS, EV._NEIGH)


def pair_word_numpy(labels):
    """:func:`pair_word` as numpy expressions, direction by direction (the reference of its tests)."""
    ny, nx = labels.shape
    out = np.zeros(labels.shape, np.uint32)
    for d, (di, dj) in enumerate(EV._NEIGH):
        di, dj = di * EV.RADIUS, dj * EV.RADIUS
        bits = np.uint32((1 << d) | (1 << (d + 8)) | (1 << (d + 16)))
        keep = np.full(labels.shape, True)
        src = (slice(max(di, 0), ny + min(di, 0)), slice(max(dj, 0), nx + min(dj, 0)))
        dst = (slice(max(-di, 0), ny + min(-di, 0)), slice(max(-dj, 0), nx + min(-dj, 0)))
        keep[dst] = labels[src] == labels[dst]
        out[keep] |= bits
    return out


def sun_pair_word(lit, t):
    """The census code pairs the structural evidence compares (:func:`pair_word` of
    :func:`sun_labels`; None without illumination codes: all). A code is the order of two cells;
    a change of illumination that multiplies both by the same factor keeps it. Two cells with the
    same predicted transition (both keep their state, both go into a moved shadow, or both come
    out of one) share that factor (their direct-sun share is lost or gained alike), so their pair
    is compared; a pair across a moved shadow edge (one cell's state moved, the other's not, or
    the other way) is not: its order is the shadow's. Measured offline against the per-cell
    same-sun mask: ``benchmarks/eval_pair_compare.py`` (docs/change_detection.md, "Code pairs by
    sun transition")."""
    if lit is None:
        return None
    return pair_word(sun_labels(lit, t))
