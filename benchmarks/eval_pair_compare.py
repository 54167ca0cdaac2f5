"""Evaluation: census code pairs compared by their cells' sun-transition class (issue 7, H8), offline
on stored one-image-per-date runs.

The census evidence compares a cell's codes only where the old DSM predicts the same direct-sun
state at both dates (:func:`offnadir.change.sun_pairs.same_sun`): a moved cast shadow changes the
intensities. But a code is the *order* of two cells; an illumination change that multiplies both
cells by the same factor keeps it. Two cells that both go from lit to shadow (or both from shadow
to lit) share that factor up to their albedo-independent diffuse share, so the **pair** may be
compared though neither cell's state is the same at both dates. Pairs across a moved shadow edge
(one cell's state moved, the other's not, or moved the other way) stay excluded.

Labels per cell: 0 the current compare set (same state at both dates, or unknown), 1 lit -> shadow,
2 shadow -> lit; a code pair is kept where both cells carry the same label. Label 0 pairs are the
pairs the current rule keeps, so the pair rule only adds pairs.

Variants (the evidence recomputed from the store's cube with the run's own choices as
``eval_evidence_offline.py`` does, fine window included, then decided as
``eval_decision_offline.decide`` does with the pipeline's calibration):

* ``current``: the same-sun cell mask (the rule before f6c82b8: reproduces the evidence of stores
  made before it; largest difference printed);
* ``pairs``: the pair labels for every cell's evidence (the pipeline's rule since f6c82b8:
  reproduces the evidence of stores made since; largest difference printed);
* ``pairs_ground``: the pair labels for the ground cells' evidence (wide and fine window), the
  elevated cells keep the current evidence;
* ``pairs_ground_codes``: the ground cells' ground-only code pairs (the second term of
  ``stratum_evidence``'s smaller-of) by pair label, the whole window's pairs by the current cell
  mask (no extra census sweep: the pipeline's two sweeps, one with the pair labels);
* ``pairs_lit_gate``: ``pairs``, and a moved pair (label 1 or 2) compared only where its code at
  the shadowed date (the target for 1, the base for 2) is not 0: the shadow shrinks the pair's
  contrast, so a 0 code there may be lost contrast, not disagreement; a nonzero one is a larger
  contrast still at the lit date;
* ``pairs_shadow_band``: ``pairs``, and the dead band of a moved pair's code at its shadowed date
  (the target for label 1, the base for label 2) is ``DEADBAND`` times the noise sigma measured
  on that date's cells of that label (:func:`offnadir.change.evidence.noise_sigma` over them,
  at most the image's sigma; the image's where fewer than 16 second differences): the dead band
  follows the shadowed date's noise at its own signal level. Emulated exactly by dividing those
  cells' intensities by ``sigma_label / sigma_image`` (a moved pair's two cells share the label,
  pairs across labels are cleared by the pair word);
* ``pairs_shadow_band_ground``: ``pairs_shadow_band`` for the ground cells, ``pairs`` for the
  elevated cells;
* ``no_mask_ground``: no sun mask for the ground cells (the colleague's measurement in
  docs/change_detection.md, "Censored ground calibration": the upper bound of what the ground
  cells can gain, with every pair across a moved shadow edge compared).

    python benchmarks/eval_pair_compare.py --hard W --km K [--seeds ...] [--variants ...] [--default D]

``--default D``: also the default simulator's scenes of ``tests/test_change.py`` (seeds 0-2, views
A and B, 256² cells), simulated and detected with the CLI's defaults into ``D`` where not there yet
(``D/sim{seed}{view}`` and its ``.zarr``), scored like the hard scenes (elevated F1, ground false
alarms against ``truth_structural.tif``).

``W``/``K``: the ``--work`` of ``eval_hard_sim.py`` / ``--workdir`` of ``eval_change_real.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from offnadir.change import census as K
from offnadir.change import census_codes as CW
from offnadir.change import evidence as EV
from offnadir.change import localise as L
from offnadir.change import sun_pairs as SP

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_decision_offline as DO  # noqa: E402
import eval_evidence_offline as EO  # noqa: E402

VARIANTS = ("current", "pairs", "pairs_ground", "pairs_ground_codes", "no_mask_ground", "pairs_lit_gate",
            "pairs_shadow_band", "pairs_shadow_band_ground")


def shadow_gate(w, moved):
    """Clear the valid bits of ``w``'s code pairs flagged in ``moved`` (uint32, bits 0-7 per
    direction) whose code is 0 in ``w`` (below the dead band)."""
    nz = (w | (w >> np.uint32(8))) & np.uint32(0xFF)
    return w & ~((moved & ~nz) << np.uint32(16))


def shadow_scale(x, ok, lab, label):
    """``x`` with the cells of ``label`` divided by ``f = noise_sigma(x over them) / noise_sigma(x)``
    (f <= 1; 1 where fewer than 16 second differences or sigma 0): a census of the result with the
    dead band ``DEADBAND * sigma`` is the census with ``DEADBAND * f * sigma`` on pairs inside the
    label; returns (x', f)."""
    s, s_all = EV.noise_sigma(x, ok & (lab == label)), EV.noise_sigma(x, ok)
    f = min(1.0, s / s_all) if (s > 0 and s_all > 0) else 1.0
    return (np.where(lab == label, x / f, x) if f < 1.0 else x), f


def _struct(inp, mask, word, reversal, fine, gate=None, scaled=None):
    a, b = inp["inten"] if scaled is None else scaled
    oa, ob = inp["ok"]
    sa, sb = inp["sigmas"]
    wa = CW.census_words(a, oa & mask, EV.DEADBAND * sa, EV.RADIUS, EV._NEIGH)
    wb = CW.census_words(b, ob & mask, EV.DEADBAND * sb, EV.RADIUS, EV._NEIGH)
    if word is not None:
        wa, wb = wa & word, wb & word
    if gate is not None:  # moved pairs compared only where the shadowed date's code is not 0
        wa, wb = shadow_gate(wa, gate[0]), shadow_gate(wb, gate[1])
    res = K.min_census_ratio(wa, wb, inp["offsets"], inp["window"], None, reversal=reversal, fine=fine)
    res = res if isinstance(res, tuple) else (res,)
    for r in res:
        r[~(oa & ob)] = np.nan
    return res


def evidence(inp, el, mask, word, fine, ground_word=False, gate=None, scaled=None):
    """:func:`offnadir.change.cells.stratum_evidence` (without dh: roof evidence everywhere) with
    the cell mask ``mask`` and the pair word ``word`` (``ground_word``: the word for the ground
    cells' own code pairs only, the whole window's pairs with ``mask`` alone); returns (wide,
    fine) as stored (float32)."""
    e, rev, ef = _struct(inp, mask, None if ground_word else word, True, fine, gate, scaled)
    gmask = (np.ones(el.shape, bool) if ground_word else mask) & ~el
    eg, efg = _struct(inp, gmask, word, False, fine, gate, scaled)
    wide = np.where(el, EV.roof_evidence(e, rev), np.fmin(e, eg))
    loc = np.where(el, np.nan, np.fmin(ef, efg))
    return wide.astype(np.float32).astype(np.float64), loc.astype(np.float32).astype(np.float64)


def variants(d, names):
    inp = EO.inputs(d)
    el = d["elev"]
    fine = L.fine_window(inp["window"])
    ones = np.ones(el.shape, bool)
    same = inp["same_sun"] if inp["same_sun"] is not None else ones
    word = SP.pair_word(SP.sun_labels(d["ill"], d["t"])) if d["ill"] is not None else None
    cur = evidence(inp, el, same, None, fine)
    out = {"current": cur}
    if any(n.startswith("pairs") for n in names):
        pw = evidence(inp, el, ones, word, fine)
        out["pairs"] = pw
        out["pairs_ground"] = (np.where(el, cur[0], pw[0]), pw[1])
    if "pairs_ground_codes" in names:
        out["pairs_ground_codes"] = evidence(inp, el, same, word, fine, ground_word=True)
    if "pairs_lit_gate" in names:
        lab = SP.sun_labels(d["ill"], d["t"])
        low = SP.pair_word(lab) & np.uint32(0xFF)
        gate = (np.where(lab == 2, low, 0).astype(np.uint32), np.where(lab == 1, low, 0).astype(np.uint32))
        out["pairs_lit_gate"] = evidence(inp, el, ones, word, fine, gate=gate)
    if "pairs_shadow_band" in names or "pairs_shadow_band_ground" in names:
        lab = SP.sun_labels(d["ill"], d["t"])
        a, b = inp["inten"]
        oa, ob = inp["ok"]
        a2, fa = shadow_scale(a, oa, lab, 2)
        b2, fb = shadow_scale(b, ob, lab, 1)
        print(f"  pairs_shadow_band: base (label 2, {int(np.sum(lab == 2))} cells) f {fa:.3f}, target "
              f"(label 1, {int(np.sum(lab == 1))} cells) f {fb:.3f}", flush=True)
        sb = evidence(inp, el, ones, word, fine, scaled=(a2, b2))
        out["pairs_shadow_band"] = sb
        out["pairs_shadow_band_ground"] = (np.where(el, out["pairs"][0], sb[0]), sb[1])
    if "no_mask_ground" in names:
        nm = evidence(inp, el, ones, None, fine)
        out["no_mask_ground"] = (np.where(el, cur[0], nm[0]), nm[1])
    return {n: out[n] for n in names}


def run_store(store, names, scorer):
    d = DO.load(store)
    p0, _ = DO.decide(d, "current")
    with np.errstate(invalid="ignore"):
        gone = np.isfinite(d["prob"]) & (d["prob"] == np.float32(0.5)) & (p0 < 0.5)
    stored = d["ev"]
    ev = variants(EO.load_store(store), names)
    res = {}
    for name, (wide, loc) in ev.items():
        dd = dict(d, ev=wide, fine=loc if d["fine"] is not None else None)
        p, ch = DO.decide(dd, "current", gone)
        r = scorer(dd, p, ch)
        if name in ("current", "pairs"):
            both = np.isfinite(wide) & np.isfinite(stored)
            r["max_diff_ev"] = float(np.max(np.abs(wide[both] - stored[both]), initial=0.0))
            bp = np.isfinite(p) & np.isfinite(d["prob"])
            r["max_diff_p"] = float(np.max(np.abs(p[bp] - d["prob"][bp]), initial=0.0))
        res[name] = r
    return res


#: the views of tests/test_change.py: (base, target) as "off-nadir,azimuth"
DEFAULT_VIEWS = {"A": ("5,90", "25,270"), "B": ("5,270", "25,90")}


def default_store(w: Path, seed: int, view: str):
    """(store, scene) of the default simulator's scene ``seed``/``view`` under ``w``, made with the
    CLI (defaults, one worker) if not there."""
    scene, store = w / f"sim{seed}{view}", w / f"sim{seed}{view}.zarr"
    if not store.exists():
        bv, tv = DEFAULT_VIEWS[view]
        cli = [sys.executable, "-m", "offnadir.cli"]
        subprocess.run(cli + ["simulate", str(scene), "--seed", str(seed), "--size", "256", "--base-view", bv,
                              "--target-view", tv, "--overwrite"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(cli + ["detect", "--dsm", str(scene / "dsm.tif"), "--base", str(scene / "base.tif"),
                              "--target", str(scene / "target.tif"), "-o", str(store), "--workers", "1", "--quiet",
                              "--overwrite"], check=True, stdout=subprocess.DEVNULL)
    return store, scene


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    dflt = None
    if "--default" in argv:
        i = argv.index("--default")
        dflt = Path(argv[i + 1])
        del argv[i:i + 2]
    a = EO.stored_runs_args(__doc__, VARIANTS, argv)
    f = EO._f
    hard, km, sim = {}, {}, {}
    if dflt is not None:
        dflt.mkdir(parents=True, exist_ok=True)
        for s in (0, 1, 2):
            for v in DEFAULT_VIEWS:
                store, scene = default_store(dflt, s, v)
                sim[f"{s}{v}"] = run_store(store, a.variants, lambda d, p, ch, sc=scene: score_hard(d, p, ch, sc))
    for s in a.seeds:
        store, scene = EO.hard_store(a, s)
        hard[s] = run_store(store, a.variants, lambda d, p, ch, sc=scene: score_hard(d, p, ch, sc))
        for v in ("current", "pairs"):
            if v in hard[s]:
                c = hard[s][v]
                print(f"hard seed {s}: {v} vs stored, evidence {c['max_diff_ev']:.2g}, probability "
                      f"{c['max_diff_p']:.2g}", flush=True)
    for t in a.targets:
        store = a.km / f"km_post{t}.zarr"
        if not store.exists():
            sys.exit(f"{store} not found: run `python benchmarks/eval_change_real.py --workdir {a.km}` first")
        km[t] = run_store(store, a.variants, lambda d, p, ch: EO.score_km(d, p, ch))
        for v in ("current", "pairs"):
            if v in km[t]:
                c = km[t][v]
                print(f"Kahramanmaras img{t}: {v} vs stored, evidence {c['max_diff_ev']:.2g}, probability "
                      f"{c['max_diff_p']:.2g}", flush=True)
    print()
    for v in a.variants:
        print(f"== {v}")
        if hard:
            rows = [hard[s][v] for s in a.seeds]
            f1 = [r["elevated_f1"] for r in rows]
            print(f"  hard elevated F1 per seed {', '.join(f(x) for x in f1)} (mean {f(float(np.mean(f1)))}); "
                  f"all-cells F1 {', '.join(f(r['f1']) for r in rows)} (mean {f(float(np.mean([r['f1'] for r in rows])))})")
            print(f"  hard score AUC {', '.join(f(r['auc']) for r in rows)}; ground false alarms "
                  f"{', '.join(f(r['ground_fa']) for r in rows)}; ground gains missed "
                  f"{', '.join(str(r['ground_gain_missed']) for r in rows)}")
        if sim:
            rows = [r[v] for r in sim.values()]
            print(f"  default sim {' '.join(sim)}: elevated F1 {', '.join(f(r['elevated_f1']) for r in rows)} (mean "
                  f"{f(float(np.mean([r['elevated_f1'] for r in rows])))}); ground false alarms "
                  f"{', '.join(f(r['ground_fa']) for r in rows)} (mean "
                  f"{f(float(np.mean([r['ground_fa'] for r in rows])), 4)})")
        for t in a.targets:
            r = km[t][v]
            print(f"  Kahramanmaras img{t}: F1 {f(r['f1'], 4)}, AUC {f(r['auc'], 4)}, flagged {f(r['flagged'])}, "
                  f"objects {r['objects']}")
    return 0


def score_hard(d, p, ch, scene):
    """``eval_evidence_offline.score_hard`` plus the gained cells (truth 2) on the base's ground
    (the store's ``elevated`` not set: new buildings, grown trees) decided unchanged."""
    r = EO.score_hard(d, p, ch, d["ev"], scene)
    ref = EO._read(scene / "truth_structural.tif")
    occ = EO._read(scene / "truth_occluded.tif")
    t = d["t"]
    cells = (d["vis"][0] == 1) & (d["vis"][t] == 1) & (occ == 0) & (ch != 2)
    r["ground_gain_missed"] = int(np.sum(cells & (ref == 2) & ~d["elev"] & (ch == 0)))
    return r


if __name__ == "__main__":
    sys.exit(main())
