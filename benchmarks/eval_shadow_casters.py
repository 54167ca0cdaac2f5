"""Evaluation: the shadow rules' casters, one by one, on stored runs, and variants of their decision
(issue 7, point 4; H2 fifth round).

For each run (the stores ``eval_hard_sim.py --work W`` and ``eval_change_real.py --workdir K`` leave):
each image's shadow classifier from the run's suns (as the pipeline calibrates it), the caster sums
of :func:`offnadir.change.missing_shadow.tile_sums` and :func:`offnadir.change.longer_shadow.tile_sums`
over the whole grid as one tile (tested equal to any tiling), plus the sums of the squared per-cell
log likelihood ratios (the same call with a classifier whose per-bin ratios are squared), and the
decisions of target 1 under each ``--variants`` rule:

* ``current``: :func:`~offnadir.change.missing_shadow.decide` and
  :func:`~offnadir.change.longer_shadow.decide_targets` as the pipeline runs them;
* ``none``, ``no_missing``, ``no_longer``: both, or one of the two rules left out;
* ``need_base_missing`` / ``need_base_longer``: a caster whose prediction the base image cannot
  check (no base cells: ``n_0 = 0``) is not decided (nor counted in the prior's EM);
* ``surface``: the missing-shadow rule with its cells' shared surface as a noise model: per image
  the intra-caster correlation ``rho`` of the per-cell ratios (:func:`surface_spread`, one-way random
  effects on the run's casters of >= 81 cells) and each caster's evidence divided by the design
  effect ``1 + (k - 1) rho`` (``k = n / 9``; :func:`effective_evidence`), the prior re-estimated on it;
* ``standout``: the caster's mean ``log f_l / f_s`` must also stand 3 robust sigmas (1.4826 MAD)
  above the median of the run's casters' means (>= 81 cells), as well as reach the midpoint (H7's
  offline variant);
* ``midpoint_tau``: the mean must reach the midpoint plus the casters' shared-surface sd ``tau``;
* ``standing`` (``standing2``): the caster's rise in standing between the dates, ``d = z_t - z_0``
  (``z``: its mean's distance to the median of the run's casters' means in robust sds, per image),
  must reach 3 (2) robust sds of the run's rises above their median (casters of >= 81 cells at both
  dates); a shadow on a bright surface is bright at both dates, a gone caster's rises;
* ``gone_shadow_nuisance``: the current decisions, and the cells of the old DSM's ground in the
  target's predicted shadow of a caster decided gone capped at probability 0 (the shadow's
  disappearance, not the ground, made their codes disagree); ``standing_nuisance``: both;
  ``gone_shadow_nuisance_lit``: only where the target's shadow classifier sees the cell lit (3 x 3
  log-odds < 0, :func:`offnadir.change.shadow_observed.log_odds`): the explanation "the shadow went"
  predicts lit ground; a cell seen dark there (a new building's shadow or dark roof) keeps its evidence;
  ``gone_shadow_nuisance_base``: that, and only on cells the base too has in shadow (predicted): a
  cell lit in the base and in the target (its predicted shadow gone) saw no change of illumination;
* ``rim_veto`` (``rim_veto_missing`` / ``rim_veto_longer``: one rule only): no roof is decided gone or raised
  whose near-sensor rim is there at both dates (:func:`offnadir.change.criteria.rim_kept`, read from the stored
  patch table): the rim witness (:func:`offnadir.change.outline.rim_witness`) that already holds the census
  evidence of such a roof, applied to the roof-wide shadow rules too (q1 tenth round); ``rim_veto_dark``: only
  where the facade facing the target's sensor is in the dark (``change_sun[1]["facade_dark"]``,
  :func:`offnadir.change.rim_profile.facade_dark`): a lit facade's step to the roof can read as a rim;
  ``rim_veto_dark_s``: that, and the longer-shadow rule's decisions only where the least raise it asserts
  (``BAND_CELLS`` cells of shadow, ``dz = BAND_CELLS * cell * tan e``) moves the rim towards the sensor by at
  least one cell (``dz * tan(off-nadir) >= cell``, :func:`offnadir.change.rim_veto.raise_moves_rim`);
* ``fringe_unchanged``: the longer-shadow rule's target fringe sums without the fringe cells the run
  flags changed before the rules (a new building's dark roof in the fringe is no shadow), the
  fringes found by :func:`offnadir.change.longer_shadow.fringe` (the sums first checked equal to the
  pipeline's).

The probability before the shadow rules is the stored one except on the roofs the stored run lifted
to exactly 1/2 with them (there it is recomputed as the maps pass computes it before the rules:
``eval_roof_false_alarms.sources``); each variant's decisions are painted on it as the maps pass
paints them (:func:`~offnadir.change.missing_shadow.raise_gone`, not where the run has ``dh``).
``current`` reproduces the stored elevated F1 (checked on the 1024² hard stores to 4 digits).

Printed per run and variant: elevated F1, score AUC, all-cells F1 and the ground false-alarm rate
(hard simulator, structural truth), F1 and AUC (Kahramanmaras), and the casters decided per rule by the truth class of the majority of their
cells (``casters/cells``; hard simulator) with the cells of unchanged truth among them.
``--casters``: every decided caster (``n``, mean per-cell ``log f_l / f_s`` of the target and the
base, ``P``).

Figures and what they mean: docs/change_detection.md, "The shadow rules' false alarms, rule by rule".

    python benchmarks/eval_shadow_casters.py [--hard W] [--seeds 0 1 2] [--km K] [--variants current none]

The caster sums and the rules' decisions live in ``_shadow_casters_rules.py``; this script holds the variants'
post-processing, the scoring and the printed lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_evidence_offline as OFF  # noqa: E402
import eval_missing_shadow as EMS  # noqa: E402
from _shadow_casters_rules import (SPREAD_MIN_CASTERS, SPREAD_MIN_CELLS, caster_sums,  # noqa: E402, F401
                                   check_current, decisions, effective_evidence, surface_spread)

from offnadir.change import cells as P  # noqa: E402
from offnadir.change import longer_shadow as LS  # noqa: E402
from offnadir.change import missing_shadow as MS  # noqa: E402

NAMES = {0: "none", 1: "new", 2: "demolished", 3: "raised", 4: "reroofed", 5: "tree_cut", 6: "tree_grown",
         7: "below_parallax"}
VARIANTS = ("current", "none", "no_missing", "no_longer", "need_base_missing", "need_base_longer", "surface",
            "standout", "midpoint_tau", "standing", "standing2", "gone_shadow_nuisance", "standing_nuisance",
            "gone_shadow_nuisance_lit", "gone_shadow_nuisance_base", "fringe_unchanged", "rim_veto", "rim_veto_missing",
            "rim_veto_longer", "rim_veto_dark", "rim_veto_dark_s")


def fringe_unchanged(run, ctx, sums, p0, t: int = 1):
    """The ``lsh_n`` / ``lsh_s`` columns of target ``t`` recomputed without the fringe cells where
    ``p0`` >= 1/2 (a copy of ``sums``)."""
    from offnadir.change.options import ChangeOptions

    a = run["arr"]
    clf = ctx.shadow_classes[t]
    h = a["dsm"].astype(np.float64)
    lab = np.where(a["elevated"] == 1, a["patch"], 0)
    az, el = ctx.sun[t]
    usable = (a["visible"][0] == 1) & (a["visible"][t] == 1)
    ii, jj, lc = LS.fringe(h, lab, a["illumination"][t], usable, ctx.cell, az, el, ChangeOptions().sun_tolerance,
                           float(max(h.shape)), LS.BAND_CELLS)
    x = a["value"][t].astype(np.float64).mean(axis=0)[ii, jj]
    llr = clf.cell_log_odds(x) - clf.prior
    ids = np.asarray(sums["ids"])
    out = {"ids": ids, "rows": {k: v.copy() for k, v in sums["rows"].items()}}
    for name, keep in (("all", np.isfinite(x)), ("unchanged", np.isfinite(x) & ~(np.nan_to_num(p0[ii, jj]) >= 0.5))):
        u, inv = np.unique(lc[keep], return_inverse=True)
        k = np.searchsorted(ids, u)
        n, s = np.zeros(len(ids)), np.zeros(len(ids))
        n[k] = np.bincount(inv, minlength=len(u))
        s[k] = np.bincount(inv, llr[keep], minlength=len(u))
        if name == "all":
            assert np.array_equal(n, sums["rows"]["lsh_n"][:, t]) and np.allclose(s, sums["rows"]["lsh_s"][:, t])
    out["rows"]["lsh_n"][:, t], out["rows"]["lsh_s"][:, t] = n, s
    return out


def rim_veto(store, dec, rules=("missing", "longer"), dark_only: bool = False):
    """``dec`` with P set to 0 for the patches whose near-sensor rim is there at both dates (target 1), in
    ``rules`` (``dark_only``: only where the target's facade facing its sensor is dark)."""
    import json

    import xarray as xr

    import eval_decision_offline as DO

    ds = xr.open_zarr(store)
    sun = json.loads(ds.attrs["change_sun"])[1]
    if dark_only and not sun.get("facade_dark"):
        return dec
    if "longer-if-moved" in rules:
        from offnadir.change import rim_veto as RV

        off = float(np.asarray(ds["off_nadir"].values)[1])
        moved = RV.raise_moves_rim(float(sun["elevation"]), off)
        rules = tuple(r for r in rules if r != "longer-if-moved") + (("longer",) if moved else ())
    d = DO.load(store)
    kept_ids = d["ids"][DO.rim_kept(d)]
    out = dict(dec)
    for k in rules:
        if dec[k] is not None:
            ids, post = dec[k]
            out[k] = (ids, np.where(np.isin(ids, kept_ids), 0.0, post))
    return out


def pre_rule_probability(store, run, cur):
    """The stored probability of target 1 with the current rules' lift undone (see the docstring)."""
    import eval_roof_false_alarms as RFA

    a = run["arr"]
    p = a["probability"][1].astype(np.float64)
    lifted = np.zeros(p.shape, bool)
    for k in ("missing", "longer"):
        if cur[k] is not None:
            g = P.paint(a["patch"], *cur[k])
            with np.errstate(invalid="ignore"):
                lifted |= np.isfinite(g) & (g >= 0.5)
    lifted &= np.isfinite(p) & (p == np.float32(0.5))
    if "dh" in a:
        lifted &= ~np.isfinite(a["dh"][1])
    if not lifted.any():
        return p
    return np.where(lifted, RFA.sources(store)["full"], p)


def gone_shadow_cells(run, ctx, dec, t: int = 1):
    """Cells of the old DSM's ground (``elevated`` 0) in target ``t``'s predicted cast shadow of a
    caster decided gone (:func:`offnadir.change.missing_shadow.shadow_casters`)."""
    from offnadir.change.options import ChangeOptions

    a = run["arr"]
    if dec["missing"] is None:
        return np.zeros(a["patch"].shape, bool)
    ids, post = dec["missing"]
    h = a["dsm"].astype(np.float64)
    lab = np.where(a["elevated"] == 1, a["patch"], 0)
    az, el = ctx.sun[t]
    ci, cj = MS.shadow_casters(h, a["illumination"][t], ctx.cell, az, el, ChangeOptions().sun_tolerance,
                               float(max(h.shape)))
    clab = np.where(ci >= 0, lab[np.maximum(ci, 0), np.maximum(cj, 0)], 0)
    return np.isin(clab, ids[post >= 0.5]) & (a["elevated"] != 1)


def score_hard(run, p, scene):
    """Elevated F1 and score AUC (``eval_missing_shadow.score_hard``), all-cells F1 and the ground
    false-alarm rate on the structural truth."""
    from offnadir.change import reference as REF
    from offnadir.change.evaluate import metrics

    a = run["arr"]
    out = EMS.score_hard(run, p, scene)
    ref, occ = OFF._read(scene / "truth_structural.tif"), OFF._read(scene / "truth_occluded.tif")
    te = OFF._read(scene / "truth_elevated.tif") == 1
    cells = (a["visible"][0] == 1) & (a["visible"][1] == 1) & (ref != REF.IGNORE) & (occ == 0)
    ch = EMS._decided(p, a["visible"])
    out["all_f1"] = REF.height_scores(ref, ch, p, cells, run["cell"] ** 2)["f1"]
    dec = cells & (ch != 2) & ~te
    out["ground_fa"] = metrics(np.isin(ref, (1, 2))[dec], (ch == 1)[dec])["false_alarm_rate"]
    return out


def apply(run, p0, dec):
    """``p0`` with the decided casters' cells lifted to 1/2 (not where the run has ``dh``)."""
    a = run["arr"]
    p = p0
    for k in ("missing", "longer"):
        if dec[k] is None:
            continue
        g = P.paint(a["patch"], *dec[k])
        if "dh" in a:
            g[np.isfinite(a["dh"][1])] = np.nan
        p = MS.raise_gone(p, g)
    return p


def caster_rows(run, sums, dec, cls):
    """Per decided caster: rule, id, truth class (majority), cells, unchanged cells, n/mean of target
    and base, P."""
    a = run["arr"]
    ids = np.asarray(sums["ids"])
    rows = []
    for rule, (nk, sk) in (("missing", ("msh_n", "msh_llr")), ("longer", ("lsh_n", "lsh_s"))):
        if dec[rule] is None or nk not in sums["rows"]:
            continue
        did, post = dec[rule]
        n, s = sums["rows"][nk], sums["rows"][sk]
        for k in np.flatnonzero(post >= 0.5):
            j = int(np.searchsorted(ids, did[k]))
            m = a["patch"] == did[k]
            c = NAMES[int(np.bincount(cls[m], minlength=8).argmax())] if cls is not None else "?"
            rows.append(dict(rule=rule, id=int(did[k]), cls=c, cells=int(m.sum()),
                             unchanged=int(((cls == 0) & m).sum()) if cls is not None else -1,
                             n_t=int(n[j, 1]), m_t=float(s[j, 1] / max(n[j, 1], 1)), n_0=int(n[j, 0]),
                             m_0=float(s[j, 0] / max(n[j, 0], 1)), P=float(post[k])))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS[:4]), choices=VARIANTS)
    ap.add_argument("--casters", action="store_true", help="list every decided caster")
    a = ap.parse_args(argv)
    jobs = EMS.stored_jobs(a.hard, a.seeds, a.km)
    for name, store, scene in jobs:
        run = EMS.load(store)
        sums, suns, ctx = caster_sums(run)
        cur = decisions(sums, suns, "current")
        check_current(sums, suns, cur)
        p0 = pre_rule_probability(store, run, cur)
        cls = OFF._read(scene / "truth_change_class.tif") if scene is not None else None
        for v in a.variants:
            base_v = "current" if v.startswith("gone_shadow") else v.replace("_nuisance", "")
            if v.startswith("rim_veto"):
                dec = rim_veto(store, cur, {"rim_veto": ("missing", "longer"), "rim_veto_missing": ("missing",),
                                            "rim_veto_longer": ("longer",), "rim_veto_dark": ("missing", "longer"),
                                            "rim_veto_dark_s": ("missing", "longer-if-moved")}[v],
                               dark_only=v.startswith("rim_veto_dark"))
            elif v == "fringe_unchanged":
                dec = decisions(fringe_unchanged(run, ctx, sums, p0), suns, "current")
            else:
                dec = cur if base_v == "current" else decisions(sums, suns, base_v)
            p = apply(run, p0, dec)
            if "nuisance" in v:
                cap = gone_shadow_cells(run, ctx, dec) & np.isfinite(p)
                if v.endswith("_base"):
                    cap &= run["arr"]["illumination"][0] == 0
                if v.endswith("_lit") or v.endswith("_base"):
                    from offnadir.change import shadow_observed as SO

                    x = run["arr"]["value"][1].astype(np.float64).mean(axis=0)
                    with np.errstate(invalid="ignore"):
                        cap &= SO.log_odds(x, run["arr"]["visible"][1] == 1, MS.classifiers(suns)[1]) < 0
                p = np.where(cap, np.minimum(p, 0.0), p)
            sc = score_hard(run, p, scene) if scene is not None else EMS.score_km(run, p)
            rows = caster_rows(run, sums, dec, cls)
            by = {}
            for r in rows:
                key = f"{r['rule']}:{r['cls']}"
                n, c = by.get(key, (0, 0))
                by[key] = (n + 1, c + r["cells"])
            line = f"{name:9s} {v:17s} " + ", ".join(f"{k} {x:.4f}" for k, x in sc.items())
            line += " | decided: " + ", ".join(f"{k} {n}/{c}" for k, (n, c) in sorted(by.items()))
            if cls is not None:
                line += f" | unchanged cells in them: {sum(r['unchanged'] for r in rows)}"
            print(line, flush=True)
            if a.casters:
                for r in rows:
                    print("    {rule:7s} {id:8d} {cls:12s} cells {cells:5d} unchanged {unchanged:5d} n_t {n_t:4d} "
                          "m_t {m_t:6.2f} n_0 {n_0:4d} m_0 {m_0:6.2f} P {P:.3f}".format(**r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
