"""From reduced per-patch sums to decisions: thresholds, criteria, combination rule.

Combination rule: every enabled criterion gives a score in [0, 1] that is 0.5 at its threshold
(see :mod:`offnadir.change.criteria`). With ``combination: max`` (default) a patch's ``score`` is
the **largest** criterion score and it is **changed when score >= 0.5**, i.e. when any criterion
passes its threshold (a logical OR of the tests); ``noisy_or`` uses ``1 - prod(1 - score)``.

Patches that are vegetation at both dates (mean NDVI above each image's threshold: Otsu's
threshold of the image's NDVI histogram over the compared cells, at least 0.2, unless
``ndvi_threshold`` is set) are not changed: vegetation stayed vegetation, whatever phenology and
crown shading did to its colour and texture. Patches without evidence (fewer than ``min_cells``
compared cells) get score 0 from every criterion that compares their cells (radiometry, texture);
a criterion marked ``own_evidence`` (``outline``: the roof's rim pairs) gates itself.
"""

from __future__ import annotations

import numpy as np

from offnadir.change.criteria import CRITERIA, TargetTable, corr, rim_kept


def target_table(red: dict, t: int, p: int, scales: list, shift_cells, model0=None, cell: float = 1.0) -> TargetTable:
    ids, rows = red["ids"], red["rows"]
    n = len(ids)
    used = rows[f"used_{t}"]
    with np.errstate(all="ignore"):
        mean_rob = np.where(used[:, None] > 0, rows[f"M_{t}"] / used[:, None], np.nan)
        frac_above = np.where(used[:, None] > 0, rows[f"levels_{t}"] / used[:, None], np.nan)
    elevated = rows["n_elev"] > 0.5 * rows["n_cells"]
    prof = pos = pairs = None
    nk = 0
    if f"prof_{t}" in red["erows"] and len(red["eids"]):  # elevated patches' rows only (no dense copy)
        prof = red["erows"][f"prof_{t}"]
        pos = np.searchsorted(ids, red["eids"])
        if isinstance(prof, tuple):  # tile.sparse_profile's (keys, sums, nk): the non-empty pairs only
            keys, sums, nk = prof
            pairs = (np.searchsorted(red["eids"], keys // nk), keys % nk, sums)
            prof = None
    tb = TargetTable(ids=ids, n_cells=rows["n_cells"], elevated=elevated, used=used, mean_rob=mean_rob,
                     frac_above=frac_above, c0=rows[f"c0_{t}"], profile=prof,
                     shift_cells=np.asarray(shift_cells, np.float64), profile_rows=pos, profile_pairs=pairs,
                     profile_nk=int(nk))
    if f"ndvi_b_{t}" in rows:
        with np.errstate(all="ignore"):
            tb.ndvi_base = np.where(used > 0, rows[f"ndvi_b_{t}"] / used, np.nan)
            tb.ndvi_target = np.where(used > 0, rows[f"ndvi_t_{t}"] / used, np.nan)
    tb.extra["illum"] = rows[f"illum_{t}"]
    if "plane" in rows:  # the patches' DSM plane-fit sums (criteria.rigid)
        tb.extra["plane"] = rows["plane"]
    tb.outline = rows.get(f"outline_{t}")
    if f"rimprof_{t}" in red["erows"] and len(red["eids"]):  # elevated patches' rim profiles
        from offnadir.change.rim_profile import dense

        tb.extra["rim_profile"] = (np.searchsorted(ids, red["eids"]), dense(red["eids"], red["erows"][f"rimprof_{t}"]))
    if f"incid_{t}" in rows:
        inc = rows[f"incid_{t}"]
        with np.errstate(all="ignore"):
            tb.extra["incidence_change"] = np.where(inc[:, 0] > 0, inc[:, 1] / inc[:, 0], 0.0)
    tb.cell = float(cell)
    if model0 is not None and scales[0] is not None:
        tb.noise_var = float((scales[0][0] * model0.sigma[0]) ** 2 / 2.0)
    return tb


def otsu(counts, lo, hi) -> float:
    """Otsu's threshold of a histogram over [lo, hi] (maximum between-class variance)."""
    counts = np.asarray(counts, np.float64)
    edges = np.linspace(lo, hi, len(counts) + 1)
    c = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(counts)
    w1 = w0[-1] - w0
    m0 = np.cumsum(counts * c)
    with np.errstate(all="ignore"):
        mu0 = m0 / w0
        mu1 = (m0[-1] - m0) / w1
        between = w0 * w1 * (mu0 - mu1) ** 2
    between = np.where(np.isfinite(between), between, -1.0)
    return float(edges[int(np.argmax(between)) + 1])


def evidence(tb: TargetTable, opts):
    """Patches that can be judged: at least ``min_cells`` compared cells."""
    return tb.used >= opts.min_cells


def decide(tb: TargetTable, opts) -> dict:
    """Criteria values, scores and the combined decision for one target's table."""
    out = {"corr0": corr(tb.c0)}
    veg = np.zeros(len(tb.ids), bool)
    if opts.vegetation and tb.ndvi_base is not None and tb.ndvi_thresholds is not None:
        tb_, tt_ = tb.ndvi_thresholds
        with np.errstate(invalid="ignore"):
            veg = (tb.ndvi_base > tb_) & (tb.ndvi_target > tt_)
    out["vegetation"] = veg
    score = np.zeros(len(tb.ids))
    keep = np.ones(len(tb.ids))
    for name in opts.criteria:
        fn = CRITERIA[name]
        value, s = fn(tb, opts)
        s = np.asarray(s, np.float64)
        if not getattr(fn, "own_evidence", False):  # the compared cells' count gates the radiometric ones
            s = np.where(evidence(tb, opts), s, 0.0)
        s = np.where(veg, 0.0, s)
        out[f"{name}"] = np.asarray(value, np.float64)
        out[f"{name}_score"] = s
        score = np.maximum(score, s)
        keep = keep * (1.0 - s)
    if opts.combination == "noisy_or":
        score = 1.0 - keep
    out.update(tb.extra)
    # roofs whose near-sensor rim stayed: the maps pass keeps their census evidence below the decision
    out["rim_kept"] = rim_kept(tb)
    out["score"] = score.astype(np.float32)
    out["change"] = (score >= 0.5).astype(np.uint8)
    return out
