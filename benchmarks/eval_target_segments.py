"""Evaluation: the census evidence pooled over segments of the TARGET image (issue 7, H3 sixth round),
screened offline on stored runs, one image per date.

The 41-cell census window dilutes a small new building (docs/change_detection.md, "New buildings
and trees, one image per date: where the evidence stops"); the fine 11-cell window's null is twice as
wide. The base segmentation cannot follow a new building (it is not in the base), but the target
image sees it: its samples on the DSM grid (the cube's target layer; on ground, an ortho of the
target) segmented as the segment pass segments the base (grid-anchored SLIC on the ground cells,
split into 4-connected pieces, small pieces merged: :mod:`offnadir.change.slic_kernels`,
:mod:`offnadir.change.segment_kernels`) give regions that follow the new roof. Here the census
code pairs (the pipeline's codes, noise sigmas, parallax offsets, sun-pair word and ground-pair rule)
are pooled over each target segment instead of a square window: ``R_seg = H / H_chance`` of the
segment's pairs, smallest over the offsets, the smaller of all pairs and ground pairs only.

Printed per stored run:

* the lower-half spread of ``log R_seg`` per octave of segment size (the null's width);
* the separation of new buildings from unchanged ground (cell AUC and the best F1 any single
  threshold gives) for the wide window's stored ratio, the fine window's, ``R_seg``, ``R_seg``
  standardised by its null spread per segment size (:func:`standardise`), the segment mean of the
  fine window's ``log R_11`` (:func:`segment_mean`) and the combinations the variants use; per
  new-building footprint, the share of its cells whose target segment is mostly that building (the
  segment follows the object) and the cell AUC of each evidence;
* with ``--variants``: decisions as the maps pass takes them (``eval_decision_offline``'s ``finish``:
  calibration, the localisation, rim witness, patch criteria, roofs whose shadow went), with the
  fine window's evidence replaced by or followed by the segment evidence (:data:`VARIANTS`), scored
  on the hard scenes (elevated F1, AUC, ground false alarms, new-building misses) and Kahramanmaras.

    python benchmarks/eval_target_segments.py --hard DIR [--seeds 0 1 2] [--km DIR] [--step 16]
                                              [--variants current seg_local ...]

``--hard``: ``benchmarks/eval_hard_sim.py --work DIR``; ``--km``: ``benchmarks/eval_change_real.py
--workdir DIR``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import eval_decision_offline as ED  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402

from offnadir.change import calibrate as C  # noqa: E402
from offnadir.change import cells as P  # noqa: E402

VARIANTS = {
    "current": "the maps pass as it is (fine window localisation)",
    "no_local": "without any localisation",
    "seg_local": "the localisation's fine evidence replaced by the target-segment ratio R_seg",
    "seg_after": "the fine window's localisation, then a second one with R_seg (its own mixture, same gates)",
    "seg_censor": "seg_local with the segment mixture censored below its median (as the wide ground stratum)",
    "segz_local": "seg_local with R_seg standardised per segment size (null spread from the lower half)",
    "seg_max": "the fine window's localisation, or the segment one where it gives the larger probability",
    "gmseg": "ground cells' evidence sqrt(R_41 R_seg) (calibrated as the ground stratum), then the localisation",
    "gmseg0.5": "the same with R_seg at half weight: R_41^(2/3) R_seg^(1/3)",
    "fineseg_local": "the localisation's fine evidence R_11 replaced by exp(mean log R_11 over the cell's target "
                     "segment): the fine witness smoothed within the object's own outline",
    "finegm_local": "the localisation's fine evidence sqrt(R_11 * that segment mean)",
    "gmfs_iv": "ground cells' log evidence the inverse-variance mean of log R_41 and the segment mean of log R_11 "
               "(variances: the squared lower-half spreads of each over the run's ground cells), then the localisation",
    "gmfs": "the same, equal weights: sqrt(R_41 * segment mean of R_11)",
    "gmseg_iv": "ground cells' log evidence the inverse-variance mean of log R_41 and log R_seg, each variance the "
                "run's null spread (lower half, 1.4826 MAD below the median; R_seg's per segment size octave)",
}


# ----------------------------------------------------------------------------- segmentation
def target_segments(values, dsm, ok, ground, step=16, compactness=0.5, iterations=4, min_cells=10):
    """Grid-anchored SLIC of the target's samples (bands, y, x) on the ground cells it sees, split
    into 4-connected pieces, pieces under ``min_cells`` merged (the segment pass's base rule,
    :func:`offnadir.change.segment.segment_window`, on the whole grid). Returns int64 labels (0: none)."""
    from offnadir.change import segment as SG
    from offnadir.change import segment_kernels as K

    v = np.asarray(values, np.float64)
    v = v[None] if v.ndim == 2 else v
    mask = ok & ground
    scale = np.array([max(float(np.nanstd(b[mask])), 1e-12) for b in v])
    feat = np.empty(v.shape, np.float64)
    seg = np.empty(dsm.shape, bool)
    vis = np.where(mask, 1, 0).astype(np.uint8)
    K.slic_features(np.ascontiguousarray(dsm, np.float64), np.ascontiguousarray(v), vis, scale, feat, seg)
    gmask = seg & mask
    ny, nx = dsm.shape
    blk = np.zeros(dsm.shape, np.int64)
    K.slic_blocks(feat, gmask, 0, 0, int(step), -(-nx // int(step)), float(compactness), int(iterations), blk)
    lab = np.zeros(dsm.shape, np.int64)
    h = np.ascontiguousarray(dsm, np.float64)
    K.label_components(blk, h, 0.0, False, 0, 0, nx, lab)
    if SG.merge_fragments(blk, lab, int(min_cells), (0, 0), nx):
        K.label_components(blk, h, 0.0, False, 0, 0, nx, lab)
    return lab


# ----------------------------------------------------------------------------- pooled census ratio
def _pop(x):
    return np.bitwise_count(x).astype(np.int64)


def pooled_counts(wa, wb, labels):
    """Per label: valid code pairs ``n``, differing pairs ``dif``, and the per-code counts of each
    image over those pairs (codes -1, 0, +1), from packed words (``census_codes.pack`` layout)."""
    v = ((wa >> 16) & (wb >> 16)) & np.uint32(0xFF)
    na, pa = wa & v, (wa >> 8) & v
    nb, pb = wb & v, (wb >> 8) & v
    n = _pop(v)
    dif = _pop((na ^ nb) | (pa ^ pb))
    qa = (_pop(na), _pop(pa))
    qb = (_pop(nb), _pop(pb))
    lab = labels.ravel()
    m = int(lab.max()) + 1 if lab.size else 1

    def s(a):
        return np.bincount(lab, weights=a.ravel().astype(np.float64), minlength=m)

    N, D = s(n), s(dif)
    A = (s(qa[0]), s(qa[1]))
    B = (s(qb[0]), s(qb[1]))
    return N, D, A, B


def pooled_ratio(N, D, A, B):
    """``R = H / H_chance`` per label from :func:`pooled_counts` (NaN: no pair, 0: no code variety)."""
    a0, b0 = N - A[0] - A[1], N - B[0] - B[1]
    agree = A[0] * B[0] + A[1] * B[1] + a0 * b0
    with np.errstate(invalid="ignore", divide="ignore"):
        h = D / N
        chance = 1.0 - agree / (N * N)
        r = np.where(chance > 1e-6, h / np.where(chance > 1e-6, chance, 1.0), 0.0)
    return np.where(N > 0, r, np.nan)


def segment_ratio(base, target, ok_base, ok_target, ground, labels, offsets, sigmas, compare=None, pairs=None,
                  radii=(1,)):
    """Per label the census ratio pooled over the label's cells, smallest over the parallax ``offsets``
    (target shifted as :func:`offnadir.change.evidence.structural_evidence` shifts it), the smaller of
    all code pairs and ground code pairs only (``cells.stratum_evidence``'s ground rule). ``radii``:
    census neighbour distances whose code pairs are pooled together (the pipeline's: 1); ``pairs``:
    the sun-pair word of radius 1, or a dict radius -> word."""
    from offnadir.change import census_codes as CW
    from offnadir.change import evidence as EV

    cm = np.ones(base.shape, bool) if compare is None else compare
    pw = pairs if isinstance(pairs, dict) or pairs is None else {1: pairs}
    best = None
    for m in (cm, cm & ground):
        words = []
        for r in radii:
            wa = CW.census_words(base, ok_base & m, EV.DEADBAND * sigmas[0], r, EV._NEIGH)
            wb = CW.census_words(target, ok_target & m, EV.DEADBAND * sigmas[1], r, EV._NEIGH)
            if pw is not None:
                wa, wb = wa & pw[r], wb & pw[r]
            words.append((wa, wb))
        for di, dj in offsets:
            tot = None
            for wa, wb in words:
                wbs = EV.shift(wb, di, dj, np.uint32(0)) if (di or dj) else wb
                c = pooled_counts(wa, wbs, labels)
                tot = c if tot is None else (tot[0] + c[0], tot[1] + c[1], (tot[2][0] + c[2][0], tot[2][1] + c[2][1]),
                                             (tot[3][0] + c[3][0], tot[3][1] + c[3][1]))
            r = pooled_ratio(*tot)
            best = r if best is None else np.fmin(best, r)
    best[0] = np.nan
    return best


def pair_words(lit, t, radii):
    """The sun-pair word (:func:`offnadir.change.sun_pairs.pair_word`'s rule) at each census radius."""
    from offnadir.change import evidence as EV
    from offnadir.change import sun_pairs as SP

    if lit is None:
        return None
    lab = SP.sun_labels(lit, t)
    ny, nx = lab.shape
    out = {}
    for r in radii:
        w = np.zeros(lab.shape, np.uint32)
        for d, (di, dj) in enumerate(EV._NEIGH):
            di, dj = di * r, dj * r
            bits = np.uint32((1 << d) | (1 << (d + 8)) | (1 << (d + 16)))
            keep = np.full(lab.shape, True)
            src = (slice(max(di, 0), ny + min(di, 0)), slice(max(dj, 0), nx + min(dj, 0)))
            dst = (slice(max(-di, 0), ny + min(-di, 0)), slice(max(-dj, 0), nx + min(-dj, 0)))
            keep[dst] = lab[src] == lab[dst]
            w[keep] |= bits
        out[r] = w
    return out


def standardise(r, size, lower=0.5):
    """``log R`` of each segment minus the median of its size class, over the spread (1.4826 MAD) of
    the segments below that median (the lower half is unchanged ground on any scene where change is
    a minority; censored as the wide calibration), mapped back to a ratio-like value
    ``exp(z * s_ref + m_ref)`` with the reference the largest size class: segments of every size get
    the same null. Size classes: octaves of cells."""
    z = np.log(np.where(r > 0, r, np.nan))
    cls = np.floor(np.log2(np.maximum(size, 1))).astype(int)
    out = np.full(z.shape, np.nan)
    stats = {}
    for c in np.unique(cls[np.isfinite(z)]):
        k = (cls == c) & np.isfinite(z)
        if k.sum() < 20:
            continue
        med = np.median(z[k])
        lo = z[k & (z <= med)]
        s = 1.4826 * np.median(np.abs(lo - med)) if lo.size >= 10 else np.nan
        stats[int(c)] = (int(k.sum()), float(med), float(s))
    if not stats:
        return r.copy(), stats
    ref = max(stats, key=lambda c: stats[c][0] * 2 ** c)  # the class holding the most cells
    mref, sref = stats[ref][1], stats[ref][2]
    for c, (_, med, s) in stats.items():
        k = cls == c
        if np.isfinite(s) and s > 0:
            out[k] = np.exp((z[k] - med) / s * sref + mref)
    return out, stats


def lower_spread(z):
    """1.4826 MAD of the values below their median about it (the null side of a census ratio)."""
    z = z[np.isfinite(z)]
    if z.size < 10:
        return float("nan")
    med = np.median(z)
    lo = z[z <= med]
    return float(1.4826 * np.median(np.abs(lo - med)))


def iv_combined(wide, r, size, labels, ground):
    """Per cell ``exp`` of the inverse-variance mean of ``log R_41`` and ``log R_seg`` (variances the
    squared :func:`lower_spread` of the ground cells' wide ratio, and of the segments' ratios per
    size octave); cells without a segment estimate keep ``R_41``."""
    zw = np.log(np.where(wide > 0, wide, np.nan))
    sw = lower_spread(zw[ground])
    zs = np.log(np.where(r > 0, r, np.nan))
    cls = np.floor(np.log2(np.maximum(size, 1))).astype(int)
    ss = np.full(r.shape, np.nan)
    for c in np.unique(cls[np.isfinite(zs)]):
        k = (cls == c) & np.isfinite(zs)
        if k.sum() >= 20:
            ss[k] = lower_spread(zs[k])
    ss[0] = np.nan
    s_cell, z_cell = ss[labels], zs[labels]
    ok = ground & np.isfinite(s_cell) & (s_cell > 0) & np.isfinite(z_cell) & np.isfinite(zw)
    out = wide.copy()
    a, b = 1.0 / sw**2, 1.0 / np.where(ok, s_cell, 1.0) ** 2
    out[ok] = np.exp((a * zw[ok] + b[ok] * z_cell[ok]) / (a + b[ok]))
    return out


def iv_pair(a, b, ground, equal=False):
    """``exp`` of the inverse-variance mean of ``log a`` and ``log b`` per cell, each variance the
    squared :func:`lower_spread` over the ``ground`` cells (``equal``: weights 1/2); NaN where either
    is missing."""
    za, zb = np.log(np.where(a > 0, a, np.nan)), np.log(np.where(b > 0, b, np.nan))
    wa, wb = (1.0, 1.0) if equal else (lower_spread(za[ground]) ** -2, lower_spread(zb[ground]) ** -2)
    return np.exp((wa * za + wb * zb) / (wa + wb))


def segment_mean(e, labels, ground):
    """Per cell ``exp`` of the mean ``log e`` over its segment's ground cells with a finite positive
    ``e`` (NaN off segments)."""
    z = np.log(np.where(e > 0, e, np.nan))
    ok = ground & np.isfinite(z) & (labels > 0)
    n = np.bincount(labels[ok], minlength=labels.max() + 1)
    s = np.bincount(labels[ok], weights=z[ok], minlength=labels.max() + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.exp(s / n)
    m[0] = np.nan
    return m[labels]


def cell_segment_evidence(st, inp, step, pairs, radii=(1,)):
    """Per cell, R_seg of its target segment (NaN off segments and on elevated cells), the standardised
    one, and the labels."""
    t = st["t"]
    ground = ~st["elev"]
    lab = target_segments(st["val"][t], st["dsm"], inp["ok"][1], ground, step=step)
    r = segment_ratio(inp["inten"][0], inp["inten"][1], inp["ok"][0], inp["ok"][1], ground, lab, inp["offsets"],
                      inp["sigmas"], pairs=pairs, radii=radii)
    size = np.bincount(lab.ravel())
    rz, stats = standardise(r, size.astype(np.float64))
    rz[0] = np.nan
    cellr, cellz = r[lab], rz[lab]
    cellr[lab == 0] = np.nan
    cellz[lab == 0] = np.nan
    return dict(seg=cellr, segz=cellz, labels=lab, stats=stats, r=r, size=size)


# ----------------------------------------------------------------------------- decisions
def _fit_local(e, g, censor=None):
    return C.fit(C.histogram(P.ratio_evidence(e), g & np.isfinite(e)), anchor=P.ANCHOR["local"], censor=censor)


def decide(d, name, ev, gone):
    """The maps pass on a stored run (``eval_decision_offline``), with variant ``name``'s localisation."""
    from offnadir.change import localise as L

    e, el = d["ev"], d["elev"]
    g = ~el
    seg, segz = ev["seg"], ev["segz"]
    if name == "gmseg_iv":
        e = np.where(g & np.isfinite(ev["iv"]), ev["iv"], e)
    elif name in ("gmfs_iv", "gmfs"):
        comb = iv_pair(e, ev["fineseg"], g, equal=name == "gmfs")
        e = np.where(g & np.isfinite(comb), comb, e)
    elif name.startswith("gmseg"):
        k = 1.0 if name == "gmseg" else 0.5
        with np.errstate(divide="ignore", invalid="ignore"):
            comb = np.exp((np.log(e) + k * np.log(seg)) / (1.0 + k))
        e = np.where(g & np.isfinite(comb), comb, e)
    p = np.full(e.shape, np.nan)
    models = {}
    for s, m in ((1, el), (0, g)):
        models[s] = ED.refit(C.histogram(P.ratio_evidence(e), m), s)
        p[m] = C.probability(P.ratio_evidence(e[m]), models[s])
    fm = _fit_local(d["fine"], g)
    info = {}
    if name in ("fineseg_local", "finegm_local"):
        fe = ev["fineseg"] if name == "fineseg_local" else np.sqrt(d["fine"] * ev["fineseg"])
        fe = np.where(np.isfinite(fe), fe, d["fine"])
        fm = _fit_local(fe, g)
        info["seg_model"] = fm
        p[g] = L.localise(p[g], fe[g], models[0], fm)
        kept = ED.rim_kept(d)
        pp, ch = ED.finish(d, p, kept, ED.criteria_score(d, kept), gone)
        return pp, ch, info
    if name in ("current", "seg_after", "seg_max", "gmfs", "gmfs_iv") or name.startswith("gmseg"):
        p1 = p.copy()
        p1[g] = L.localise(p[g], d["fine"][g], models[0], fm)
    if name == "no_local":
        pass
    elif name in ("current", "gmfs", "gmfs_iv") or name.startswith("gmseg"):
        p = p1
    else:
        src = segz if name == "segz_local" else seg
        sm = _fit_local(src, g, censor=0.5 if name == "seg_censor" else None)
        info["seg_model"] = sm
        if name == "seg_after":
            p[g] = L.localise(p1[g], src[g], models[0], sm)
        elif name == "seg_max":
            q = p.copy()
            q[g] = L.localise(p[g], src[g], models[0], sm)
            p = np.fmax(p1, q)
        else:
            p[g] = L.localise(p[g], src[g], models[0], sm)
    kept = ED.rim_kept(d)
    pp, ch = ED.finish(d, p, kept, ED.criteria_score(d, kept), gone)
    return pp, ch, info


# ----------------------------------------------------------------------------- scores
def _auc(pos, neg):
    from scipy.stats import mannwhitneyu

    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not pos.size or not neg.size:
        return float("nan")
    return float(mannwhitneyu(pos, neg).statistic / (pos.size * neg.size))


def _best_f1(a, b):
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    best = 0.0
    for th in np.quantile(np.r_[a, b], np.linspace(0.7, 0.999, 300)):
        tp, fp = float((a >= th).sum()), float((b >= th).sum())
        best = max(best, 2 * tp / (tp + a.size + fp))
    return best


def _state(m):
    if m is None:
        return "none"
    if m.get("fallback"):
        return "fallback (" + ("pinned" if m.get("pinned") else (m.get("reason") or "").split(":")[0]) + ")"
    return f"pi1 {m['pi'][1]:.3f}, means {m['mean'][0]:.2f}/{m['mean'][1]:.2f}, sds {m['sd'][0]:.2f}/{m['sd'][1]:.2f}"


#: footprint bins (cells of a new building): the fine window's area (11^2), a quarter and the whole
#: of the wide window's (41^2 / 4, 41^2), as eval_small_object_misses.SIZE_BINS
SIZE_BINS = (0, 121, 420, 1681, 10**9)


def by_size(newmask, new, un, lab, evs):
    """Per footprint bin of the new buildings (4-connected objects of the truth's ``new`` class):
    scored cells, the share of them whose target segment is mostly (>= 1/2) that building's cells
    (the segment follows the object), and each evidence's cell AUC against unchanged ground."""
    from scipy import ndimage as ndi

    obj, _ = ndi.label(newmask)
    size = np.bincount(obj.ravel())
    # purity: per segment, its most frequent object's share
    both = (lab > 0) & (obj > 0)
    key = lab[both].astype(np.int64) * (obj.max() + 1) + obj[both]
    k, cnt = np.unique(key, return_counts=True)
    seg_n = np.bincount(lab.ravel())
    share = np.zeros(lab.shape)
    share[both] = (cnt[np.searchsorted(k, key)] / seg_n[lab[both]])
    rows = []
    for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]):
        ids = np.nonzero((size >= lo) & (size < hi))[0]
        ids = ids[ids > 0]
        m = new & np.isin(obj, ids)
        if not m.any():
            continue
        aucs = {n: _auc(np.log(np.where(e[m] > 0, e[m], np.nan)), np.log(np.where(e[un] > 0, e[un], np.nan)))
                for n, e in evs.items()}
        rows.append((lo, hi, len(ids), int(m.sum()), float((share[m] >= 0.5).mean()), aucs))
    return rows


def run_store(store, scene, names, step, radii=(1,)):
    from offnadir.change import sun_pairs as SP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st = EO.load_store(store)
        d = ED.load(store)
    inp = EO.inputs(st)
    pairs = pair_words(st["ill"], 1, radii)
    if pairs is not None:
        assert np.array_equal(pairs[1], SP.sun_pair_word(st["ill"], 1))  # the pipeline's word at radius 1
    ev = cell_segment_evidence(st, inp, step, pairs, radii)
    seg, segz, lab, stats = ev["seg"], ev["segz"], ev["labels"], ev["stats"]
    g = ~d["elev"]
    ev["iv"] = iv_combined(d["ev"], ev["r"], ev["size"], lab, g)
    ev["fineseg"] = segment_mean(d["fine"], lab, g)
    out = {"segments": int(len(np.unique(lab)) - 1), "size_stats": stats}
    if scene is not None:
        from offnadir.simulate import truth as T

        cls, sb = EO._read(scene / "truth_change_class.tif"), EO._read(scene / "truth_structural.tif")
        occ = EO._read(scene / "truth_occluded.tif")
        cells = (d["vis"][0] == 1) & (d["vis"][1] == 1) & (occ == 0) & (sb != T.IGNORE)
        new, un = cells & g & (cls == T.CODE["new"]), cells & g & (sb == 0)
        sep = {}
        for k, e in (("wide", d["ev"]), ("fine", d["fine"]), ("seg", seg), ("segz", segz),
                     ("wide+fine", np.sqrt(d["ev"] * d["fine"])), ("wide+seg", np.sqrt(d["ev"] * seg)),
                     ("iv", ev["iv"]), ("fineseg", ev["fineseg"]),
                     ("wide+fineseg iv", iv_pair(d["ev"], ev["fineseg"], g)), ("fine+seg", np.sqrt(d["fine"] * seg))):
            z = np.log(np.where(e > 0, e, np.nan))
            sep[k] = (_auc(z[new], z[un]), _best_f1(z[new], z[un]))
        out["separation"] = sep
        out["n_new"] = int(new.sum())
        out["by_size"] = by_size(cls == T.CODE["new"], new, un, lab, {"wide": d["ev"], "fine": d["fine"], "seg": seg,
                                                                       "iv": ev["iv"], "fineseg": ev["fineseg"]})
    p0, _, _ = decide(d, "current", ev, None)
    with np.errstate(invalid="ignore"):
        gone = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    p0, _, _ = decide(d, "current", ev, gone)
    out["current_vs_store"] = float(np.nanmax(np.abs(p0 - d["prob"])))
    for name in names:
        p, ch, info = decide(d, name, ev, gone)
        if scene is None:
            r = EO.score_km(d, p, ch)
        else:
            r = EO.score_hard(d, p, ch, d["ev"], scene)
            c2 = cells & (ch != 2)
            miss = c2 & np.isin(sb, (T.LOSS, T.GAIN)) & (ch == 0)
            fa = c2 & (sb == 0) & (ch == 1)
            r["miss_new"] = int((miss & (cls == T.CODE["new"])).sum())
            r["fa_ground"] = int((fa & g).sum())
        r["seg_model"] = _state(info.get("seg_model")) if "seg_model" in info else ""
        out[name] = r
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path, help="eval_hard_sim.py --work")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--km", type=Path, help="eval_change_real.py --workdir")
    ap.add_argument("--step", type=int, default=16, help="target SLIC grid step (cells; the base's default 16)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["current"])
    ap.add_argument("--radii", type=int, nargs="+", default=[1],
                    help="census neighbour distances pooled in R_seg (the pipeline's: 1)")
    a = ap.parse_args(argv)
    runs = []
    if a.hard:
        runs += [(f"hard seed {s}", a.hard / f"hard{s}.zarr", a.hard / f"hard{s}") for s in a.seeds]
    if a.km:
        runs += [(f"Kahramanmaras img{t}", a.km / f"km_post{t}.zarr", None) for t in (1, 2)]
    res = {}
    for title, store, scene in runs:
        if not store.exists():
            sys.exit(f"{store} not found: run the evaluation with --work/--workdir first")
        r = res[title] = run_store(store, scene, a.variants, a.step, tuple(a.radii))
        print(f"== {title}: {r['segments']} target segments; current vs stored probability "
              f"{r['current_vs_store']:.2g}", flush=True)
        print("   size classes (log2 cells: segments, median log R_seg, lower-half sd): "
              + ", ".join(f"{c}: {n} {m:.2f} {s:.2f}" for c, (n, m, s) in sorted(r["size_stats"].items())))
        if "separation" in r:
            print(f"   new buildings ({r['n_new']} cells) vs unchanged ground, cell AUC / best F1: "
                  + ", ".join(f"{k} {auc:.3f}/{f1:.3f}" for k, (auc, f1) in r["separation"].items()))
            for lo, hi, n, m, fol, aucs in r["by_size"]:
                print(f"     footprint [{lo}, {hi if hi < 10**9 else 'inf'}): {n} objects, {m} cells, in a segment "
                      f"mostly theirs {fol:.2f}; AUC " + ", ".join(f"{k} {v:.3f}" for k, v in aucs.items()))
        for v in a.variants:
            x = r[v]
            if scene is None:
                print(f"   {v:11s} F1 {x['f1']:.4f} AUC {x['auc']:.4f} flagged {x['flagged']:.3f} objects "
                      f"{x['objects']} {x['seg_model']}")
            else:
                print(f"   {v:11s} elevated F1 {x['elevated_f1']:.3f} AUC {x['auc']:.3f} ground FA "
                      f"{x['ground_fa']:.3f} ({x['fa_ground']} cells) new missed {x['miss_new']} {x['seg_model']}")
    for v in a.variants:
        hard = [res[k][v] for k in res if k.startswith("hard")]
        if hard:
            print(f"== {v}: hard elevated F1 mean {np.mean([x['elevated_f1'] for x in hard]):.3f}, AUC mean "
                  f"{np.mean([x['auc'] for x in hard]):.3f}, ground FA cells {sum(x['fa_ground'] for x in hard)}, "
                  f"new missed {sum(x['miss_new'] for x in hard)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
