"""Scores against a height-change reference raster (numpy/scipy only).

A height-change reference (e.g. picanteo's, from two CARS DSMs) codes every DSM cell as
0 no change, 1 loss (height went down), 2 gain (height went up), 255 ignore. A binary truth
(0/1, the simulator's) is the other kind. :func:`kind` tells them apart.

On the **decided** cells (the map says 0 or 1, the reference is not 255):

* precision, recall, F1, Cohen's kappa as in :func:`offnadir.change.evaluate.metrics`, with
  "changed" = loss or gain;
* score AUC: the probability that a changed cell has a higher ``probability`` than an unchanged
  one (Mann-Whitney U / (n1 n0), ties count one half), from the map's probability/score;
* object recall: the reference's changed cells (loss or gain) form 8-connected blobs; a blob of
  at least ``min_area`` m² (default 100 m²) counts as found when at least half of its decided
  cells are flagged (a majority of the object). Reported overall and for loss and gain blobs.
"""

from __future__ import annotations

import math

import numpy as np

KINDS = ("auto", "binary", "height")
IGNORE = 255
MIN_OBJECT_AREA = 100.0
#: fraction of an object's decided cells that must be flagged for it to count as found
OBJECT_FOUND = 0.5


def kind(ref, requested: str = "auto") -> str:
    """``height`` when the raster only holds 0/1/2/255 and has a 2 or a 255; else ``binary``."""
    if requested != "auto":
        return requested
    vals = np.unique(np.asarray(ref))
    if set(vals.tolist()) <= {0, 1, 2, IGNORE} and (2 in vals or IGNORE in vals):
        return "height"
    return "binary"


def auc(y, s) -> float:
    """Area under the ROC curve of scores ``s`` for boolean labels ``y`` (NaN scores dropped;
    NaN when a class is empty)."""
    from scipy.stats import rankdata

    y = np.asarray(y, bool).ravel()
    s = np.asarray(s, np.float64).ravel()
    f = np.isfinite(s)
    y, s = y[f], s[f]
    n1 = int(y.sum())
    n0 = int(y.size - n1)
    if n1 == 0 or n0 == 0:
        return math.nan
    r = rankdata(s)
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def object_recall(ref, pred, decided, cell_area: float, min_area: float = MIN_OBJECT_AREA) -> dict:
    """Found/total changed blobs of at least ``min_area`` m², overall and per loss/gain."""
    from scipy import ndimage as ndi

    changed = (ref == 1) | (ref == 2)
    lab, n = ndi.label(changed, structure=np.ones((3, 3), bool))
    out = {"min_area_m2": float(min_area)}
    if n == 0:
        return out | {"objects": 0, "found": 0, "recall": math.nan}
    idx = np.arange(1, n + 1)
    area = ndi.sum(np.ones_like(lab, np.float64), lab, idx) * cell_area
    dec = ndi.sum(decided.astype(np.float64), lab, idx)
    hit = ndi.sum((decided & pred).astype(np.float64), lab, idx)
    loss = ndi.sum((ref == 1).astype(np.float64), lab, idx)
    gain = ndi.sum((ref == 2).astype(np.float64), lab, idx)
    big = (area >= min_area) & (dec > 0)
    found = big & (hit >= OBJECT_FOUND * np.maximum(dec, 1))
    out.update(objects=int(big.sum()), found=int(found.sum()),
               recall=float(found.sum() / big.sum()) if big.any() else math.nan)
    for name, m in (("loss", loss >= gain), ("gain", gain > loss)):
        b = big & m
        out[f"{name}_objects"] = int(b.sum())
        out[f"{name}_recall"] = float((found & m).sum() / b.sum()) if b.any() else math.nan
    return out


def height_scores(ref, change, prob, cells, cell_area: float) -> dict:
    """All scores of one map against a height-change reference on ``cells`` (bool mask)."""
    from offnadir.change.evaluate import metrics

    ref = np.asarray(ref)
    decided = cells & (ref != IGNORE) & ((change == 0) | (change == 1))
    truth = (ref == 1) | (ref == 2)
    pred = change == 1
    out = metrics(truth[decided], pred[decided])
    out["auc"] = auc(truth[decided], prob[decided]) if prob is not None else math.nan
    out["objects"] = object_recall(ref, pred, decided, cell_area)
    out["flagged"] = float(pred[decided].mean()) if decided.any() else math.nan
    return out
