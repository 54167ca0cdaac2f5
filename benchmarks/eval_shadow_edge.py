"""Evaluation: the step at a predicted shadow's far edge as a witness for the missing-shadow rule, on
stored runs (issue 7, point 4; H2 sixth round).

The missing-shadow rule (:mod:`offnadir.change.missing_shadow`) decides a roof gone when its predicted
cast shadow *looks like lit ground* by brightness. A shadow cast on a surface brighter than the shadows
the image's classifier learnt looks so too (docs/change_detection.md, "The shadow rules' false alarms,
rule by rule"). A shadow that is there also makes a **step**: where the prediction ends, the same
surface goes from shadowed to lit, whatever its albedo; a shadow that went leaves none. Per caster and
image this script measures that step over the caster's far-edge pairs:

* a *far-edge cell* ``a``: predicted in the cast shadow of caster ``c`` (code 0, its caster by
  :func:`offnadir.change.missing_shadow.shadow_casters`) whose next cell away from the sun (``a + u``,
  ``u`` the unit step away from the sun, rounded to the nearest cell) is not;
* its pair: the inside cell ``a - D u`` and the outside cell ``a + (D + 1) u`` with ``D`` =
  :data:`offnadir.change.shadow_observed.MARGIN` (2: a predicted edge may be off by one cell of
  discretisation and one of resampling), every cell from ``a - D u`` to ``a`` predicted in ``c``'s
  shadow and every one from ``a + u`` to ``a + (D + 1) u`` predicted lit, both ends visible in the
  image, their DSM heights within the sun tolerance of each other (one surface: a shadow that ends
  at a facade's foot ends where another surface, with its own albedo, begins);
* the inside cell must be lit **without the caster** (the DSM with the caster's patch lowered to the
  median of the ground ring around it, :func:`unshadowed_without`): where a neighbour still shades it,
  a demolished caster's shadow keeps its step (the case that stopped this witness last round);
* the pair's step ``log x_in - log x_out`` (band mean, the image's values): about
  ``log E_diffuse / E_total`` < 0 for a shadow that is there, about 0 for one that went (both ends
  lit, one surface).

Noise model, from the run's own image: the same pair geometry (``2 D + 1`` cells along ``u``) between
two cells predicted lit far from any predicted shadow (:func:`lit_pairs`) gives the step's null
(median ``m0``, robust sd ``s0``, per pair). The *present* class's centre is the median step of the
run's casters (most roofs stand). Per caster: ``n`` pairs, mean step ``m``.

Variants of the missing-shadow decision (on top of ``current``; each adds a veto of "gone"; casters
with fewer than :data:`MIN_PAIRS` pairs are never vetoed):

* ``edge_mid``: the caster's far edge must look like no edge: ``m`` above the midpoint between the
  run's casters' median step ``mp`` and the lit pairs' median ``m0`` (the brightness test's midpoint
  rule, on the step);
* ``edge_z``: the step must not be below the null by more than 3 standard errors:
  ``m >= m0 - 3 s0 / sqrt(n / 3)`` (pairs along an edge share the resampling's 3 cells);
* ``edge_midz``: vetoed only where both say "a step is there" (below the midpoint *and* 3 standard
  errors below the null), and only where the run's two centres stand :data:`SEPARATION` null sds
  apart (``m0 - mp >= 2 s0``; closer, a caster's mean is decided by its pair count, not its class);
* ``edge_medz``: ``edge_midz`` with the caster's *median* step below the midpoint (most of its edge
  steps; a new building's unpredicted shadow across part of a demolished roof's predicted one steps a
  minority of it);
* ``edge_rise``: the step must have risen between the dates: ``m_t - m_b >= (m0 - mp) / 2`` (the base
  image's step of the same caster: a shadow on a bright surface keeps its step at both dates);
* ``edge_t``: a one-sample t test on the caster's own pairs' spread (``m < -3 sd / sqrt(n / 3)``,
  :data:`MIN_T_PAIRS`), no run-level null;
* suffixes: ``_plain`` without the "lit without the caster" check; ``_all`` the pairs across every
  edge of the predicted shadow (eight compass directions: the far edge alone has few pairs where
  shadows end on other roofs), without that check; ``_allx`` every edge with it;
* ``edge_mid_longer`` (``edge_mid_both``): the same witness for the longer-shadow rule (and both): a
  raised roof casts its shadow beyond the predicted edge, so no step there either (both ends dark).

``--step-gone``: the far edge's step as a raise witness (casters whose base far edge steps and whose
target far edge does not, by truth class; measured negative).

Figures: docs/change_detection.md, "Unchanged-roof false alarms and raised-roof misses today, and the
step at a predicted shadow's edge".

    python benchmarks/eval_shadow_edge.py --hard W [--seeds 2 4 5] [--km K] [--variants current edge_midz_all]
        [--casters] [--step-gone]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_evidence_offline as OFF  # noqa: E402
import eval_missing_shadow as EMS  # noqa: E402
import eval_shadow_casters as ESC  # noqa: E402

from offnadir.change import missing_shadow as MS  # noqa: E402
from offnadir.change import shadow_observed as SO  # noqa: E402

VARIANTS = ("current", "edge_mid", "edge_z", "edge_rise", "edge_mid_longer", "edge_mid_both", "edge_z_plain",
            "edge_z_all", "edge_t_all", "edge_t", "edge_mid_all", "edge_midz_all", "edge_midz_allx",
            "edge_medz_all")
#: least distance between the two classes' centres (run's casters' median step, lit pairs' median), in
#: lit pairs' robust sds, for the step to witness anything (``edge_midz``)
SEPARATION = 2.0
#: fewest edge pairs for the t test on the caster's own spread (3 groups of the resampling's 3 cells)
MIN_T_PAIRS = 9
#: fewest far-edge pairs for a veto (a caster whose edge is not seen keeps its decision)
MIN_PAIRS = 9


def _steps(u, k):
    return np.floor(k * u[0] + 0.5).astype(np.int64), np.floor(k * u[1] + 0.5).astype(np.int64)


def _logx(run, k):
    x = run["arr"]["value"][k].astype(np.float64).mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isfinite(x) & (x > 0), np.log(np.where(x > 0, x, 1.0)), np.nan)


def edge_pairs(run, ctx, k: int, every: bool = False):
    """Per far-edge pair of image ``k``: (caster label, inside (i, j), outside (i, j)). ``every``: the
    pairs across every edge of the predicted shadow (the eight compass directions, each edge cell
    paired along the direction in which it leaves the shadow), not only the far edge."""
    from offnadir.change.options import ChangeOptions

    a = run["arr"]
    h = a["dsm"].astype(np.float64)
    ny, nx = h.shape
    lab = np.where(a["elevated"] == 1, a["patch"], 0)
    codes = a["illumination"][k]
    az, el = ctx.sun[k]
    ci, cj = MS.shadow_casters(h, codes, ctx.cell, az, el, ChangeOptions().sun_tolerance, float(max(h.shape)))
    clab = np.where(ci >= 0, lab[np.maximum(ci, 0), np.maximum(cj, 0)], 0)
    dirs = [(math.cos(az), -math.sin(az))]  # away from the sun (the march goes (-cos, sin))
    if every:
        dirs = [(math.cos(q), math.sin(q)) for q in np.arange(8) * math.pi / 4]
    D = SO.MARGIN
    vis = a["visible"][k] == 1
    i0, j0 = np.nonzero(clab > 0)
    c0 = clab[i0, j0]
    out_c, out_in, out_out = [], ([], []), ([], [])
    for u in dirs:
        ok = np.ones(len(i0), bool)

        def at(kk):
            di, dj = _steps(u, kk)
            pi, pj = i0 + di, j0 + dj
            inside = (pi >= 0) & (pi < ny) & (pj >= 0) & (pj < nx)
            return np.clip(pi, 0, ny - 1), np.clip(pj, 0, nx - 1), inside

        for kk in range(-D, 0):
            pi, pj, ins = at(kk)
            ok &= ins & (clab[pi, pj] == c0)
        for kk in range(1, D + 2):
            pi, pj, ins = at(kk)
            ok &= ins & (codes[pi, pj] > 0) & (codes[pi, pj] < 255)
        pin, pjn, _ = at(-D)
        pout, pjout, _ = at(D + 1)
        ok &= vis[pin, pjn] & vis[pout, pjout]
        # one surface: the shadow must end on the level it falls on (a shadow that ends at a facade's
        # foot ends on another surface, whose albedo makes a step of its own)
        with np.errstate(invalid="ignore"):
            ok &= np.abs(h[pin, pjn] - h[pout, pjout]) <= ChangeOptions().sun_tolerance
        out_c.append(c0[ok])
        out_in[0].append(pin[ok])
        out_in[1].append(pjn[ok])
        out_out[0].append(pout[ok])
        out_out[1].append(pjout[ok])
    cat = np.concatenate
    return cat(out_c), (cat(out_in[0]), cat(out_in[1])), (cat(out_out[0]), cat(out_out[1]))


def unshadowed_without(run, ctx, k: int, caster: int, cells):
    """Bool per cell of ``cells`` ((i, j)): lit in image ``k`` by the DSM with ``caster``'s patch
    lowered to the median height of the non-elevated ring (3 cells) around it."""
    from scipy import ndimage as ndi

    from offnadir.change.options import ChangeOptions
    from offnadir.change.sun_kernels import caster_distances

    a = run["arr"]
    h = a["dsm"].astype(np.float64).copy()
    m = (a["patch"] == caster) & (a["elevated"] == 1)
    ring = ndi.binary_dilation(m, iterations=3) & ~m & (a["elevated"] != 1) & np.isfinite(h)
    h[m] = float(np.median(h[ring])) if ring.any() else float(np.nanmin(h))
    az, el = ctx.sun[k]
    dist = np.empty(h.shape)
    caster_distances(h, math.tan(max(el, 1e-6)) * ctx.cell, -math.cos(az), math.sin(az),
                     float(ChangeOptions().sun_tolerance), float(max(h.shape)), dist)
    return dist[cells] <= 0


def lit_pairs(run, ctx, k: int):
    """Steps ``log x(b) - log x(b + (2D+1) u)`` between cells predicted lit with every cell within D
    predicted lit (``training_classes``' lit class), both visible: the step's null in image ``k``."""
    a = run["arr"]
    codes = a["illumination"][k]
    _, lit = SO.training_classes(codes, a["visible"][k] == 1)
    az, _ = ctx.sun[k]
    u = (math.cos(az), -math.sin(az))
    di, dj = _steps(u, 2 * SO.MARGIN + 1)
    ny, nx = codes.shape
    ii, jj = np.nonzero(lit)
    pi, pj = ii + di, jj + dj
    ok = (pi >= 0) & (pi < ny) & (pj >= 0) & (pj < nx)
    ii, jj, pi, pj = ii[ok], jj[ok], pi[ok], pj[ok]
    ok = lit[pi, pj]
    lx = _logx(run, k)
    d = lx[ii[ok], jj[ok]] - lx[pi[ok], pj[ok]]
    return d[np.isfinite(d)]


def caster_steps(run, ctx, k: int, candidates=None, every=False):
    """{caster: (n pairs, mean step, sd of the steps, median step)} of image ``k``; the pairs of the
    ``candidates`` (casters to check) limited to inside cells lit without their caster; other casters:
    all their pairs."""
    c, pin, pout = edge_pairs(run, ctx, k, every)
    lx = _logx(run, k)
    d = lx[pin] - lx[pout]
    fin = np.isfinite(d)
    keep = fin.copy()
    for cc in (candidates if candidates is not None else ()):
        m = (c == cc) & fin
        if m.any():
            lit = unshadowed_without(run, ctx, k, int(cc), (pin[0][m], pin[1][m]))
            keep[np.flatnonzero(m)[~lit]] = False
    out = {}
    if keep.any():
        ids, inv = np.unique(c[keep], return_inverse=True)
        n = np.bincount(inv)
        s = np.bincount(inv, d[keep])
        s2 = np.bincount(inv, d[keep] ** 2)
        sd = np.sqrt(np.maximum(s2 / n - (s / n) ** 2, 0.0) * n / np.maximum(n - 1, 1))
        order = np.lexsort((d[keep], inv))  # each caster's steps, sorted, one run after the other
        start = np.concatenate([[0], np.cumsum(n)])
        dk = d[keep][order]
        med = [float(np.median(dk[a:b])) for a, b in zip(start[:-1], start[1:])]
        out = {int(i): (int(nn), float(ss / nn), float(q), md) for i, nn, ss, q, md in zip(ids, n, s, sd, med)}
    return out


def edge_stats(run, ctx, k: int, candidates, plain=False, every=False):
    steps = caster_steps(run, ctx, k, None if plain else candidates, every)
    null = lit_pairs(run, ctx, k)
    big = [m for n, m, _, _ in steps.values() if n >= MIN_PAIRS]
    m0 = float(np.median(null)) if len(null) else 0.0
    s0 = 1.4826 * float(np.median(np.abs(null - m0))) if len(null) else math.nan
    mp = float(np.median(big)) if big else math.nan
    return dict(steps=steps, m0=m0, s0=s0, mp=mp, casters=len(big))


def veto(variant, ids, post, st_t, st_0):
    """``post`` with the ``variant``'s veto applied to the casters decided gone."""
    post = post.copy()
    for q in np.flatnonzero(post >= 0.5):
        cid = int(ids[q])
        n, m, sd, med = st_t["steps"].get(cid, (0, math.nan, math.nan, math.nan))
        if variant == "edge_t":  # the caster's own pairs' spread: a one-sample t test of "no step"
            if n >= MIN_T_PAIRS and m < -3.0 * sd / math.sqrt(n / 3.0):
                post[q] = 0.0
            continue
        if n < MIN_PAIRS or not math.isfinite(st_t["mp"]):
            continue
        if variant == "edge_mid":
            bad = m < 0.5 * (st_t["mp"] + st_t["m0"])
        elif variant == "edge_z":
            bad = m < st_t["m0"] - 3.0 * st_t["s0"] / math.sqrt(n / 3.0)
        elif variant == "edge_medz":  # the majority of the edge must step (a median below the midpoint)
            bad = (st_t["m0"] - st_t["mp"] >= SEPARATION * st_t["s0"]) and med < 0.5 * (st_t["mp"] + st_t["m0"]) \
                and m < st_t["m0"] - 3.0 * st_t["s0"] / math.sqrt(n / 3.0)
        elif variant == "edge_midz":
            bad = (st_t["m0"] - st_t["mp"] >= SEPARATION * st_t["s0"]) and m < 0.5 * (st_t["mp"] + st_t["m0"]) \
                and m < st_t["m0"] - 3.0 * st_t["s0"] / math.sqrt(n / 3.0)
        elif variant == "edge_rise":
            n0, mb, _, _ = st_0["steps"].get(cid, (0, math.nan, math.nan, math.nan))
            if n0 < MIN_PAIRS:
                continue
            bad = (m - mb) < 0.5 * (st_t["m0"] - st_t["mp"])
        else:
            bad = False
        if bad:
            post[q] = 0.0
    return post


def step_gone(run, st, cur, cls, name):
    """``--step-gone``: the casters (>= MIN_PAIRS far-edge pairs at both dates, not decided gone)
    whose base step is below the base's midpoint and whose target step is not below the target's:
    the predicted far edge lost its step (a raise lengthens the shadow past it, a demolition removes
    it). Printed per truth class (majority of the patch's cells): casters, cells, cells the stored run
    does not flag."""
    mid = {k: 0.5 * (st[k]["mp"] + st[k]["m0"]) for k in (0, 1)}
    gone = set() if cur["missing"] is None else {int(i) for i in cur["missing"][0][cur["missing"][1] >= 0.5]}
    flagged = np.nan_to_num(run["arr"]["probability"][1].astype(np.float64)) >= 0.5
    by = {}
    for cid, (nt, mt, _, _) in st[1]["steps"].items():
        nb, mb, _, _ = st[0]["steps"].get(cid, (0, math.nan, math.nan, math.nan))
        if cid in gone or nt < MIN_PAIRS or nb < MIN_PAIRS or not (mb < mid[0]) or not (mt >= mid[1]):
            continue
        m = run["arr"]["patch"] == cid
        c = ESC.NAMES[int(np.bincount(cls[m], minlength=8).argmax())] if cls is not None else "?"
        r = by.setdefault(c, [0, 0, 0])
        r[0] += 1
        r[1] += int(m.sum())
        r[2] += int((m & ~flagged).sum())
    print(f"{name}: far edge's step went (casters/cells/not flagged): "
          + ", ".join(f"{c} {r[0]}/{r[1]}/{r[2]}" for c, r in sorted(by.items())), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hard", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--km", type=Path)
    ap.add_argument("--variants", nargs="+", default=["current", "edge_midz_all"], choices=VARIANTS)
    ap.add_argument("--casters", action="store_true", help="list every caster the current rule decides gone")
    ap.add_argument("--step-gone", action="store_true",
                    help="casters whose far edge stepped in the base and no longer steps in the target, by truth class")
    a = ap.parse_args(argv)
    jobs = EMS.stored_jobs(a.hard, a.seeds, a.km)
    for name, store, scene in jobs:
        run = EMS.load(store)
        sums, suns, ctx = ESC.caster_sums(run)
        cur = ESC.decisions(sums, suns, "current")
        ESC.check_current(sums, suns, cur)
        p0 = ESC.pre_rule_probability(store, run, cur)
        cls = OFF._read(scene / "truth_change_class.tif") if scene is not None else None
        gone = []
        for rule in ("missing", "longer"):
            if cur[rule] is not None:
                gone += [int(i) for i in cur[rule][0][cur[rule][1] >= 0.5]]
        st = {k: edge_stats(run, ctx, k, gone) for k in (0, 1)}
        sta = {k: edge_stats(run, ctx, k, gone, plain=True, every=True) for k in (0, 1)}
        stx = ({k: edge_stats(run, ctx, k, gone, every=True) for k in (0, 1)}
               if any(v.endswith("_allx") for v in a.variants) else sta)
        stp = {k: edge_stats(run, ctx, k, gone, plain=True) for k in (0, 1)} if "edge_z_plain" in a.variants else st
        print(f"{name}: step null (lit pairs) median {st[1]['m0']:.3f} sd {st[1]['s0']:.3f}; casters' median "
              f"{st[1]['mp']:.3f} ({st[1]['casters']} casters >= {MIN_PAIRS} pairs); base: null {st[0]['m0']:.3f} "
              f"sd {st[0]['s0']:.3f}, casters {st[0]['mp']:.3f}; every edge: casters' median {sta[1]['mp']:.3f} "
              f"({sta[1]['casters']} casters), base {sta[0]['mp']:.3f}", flush=True)
        for rule in ("missing", "longer") if a.casters else ():
            if cur[rule] is None:
                continue
            ids, post = cur[rule]
            for q in np.flatnonzero(post >= 0.5):
                cid = int(ids[q])
                m = run["arr"]["patch"] == cid
                c = ESC.NAMES[int(np.bincount(cls[m], minlength=8).argmax())] if cls is not None else "?"
                un = int(((cls == 0) & m).sum()) if cls is not None else -1
                nt, mt, _, _ = st[1]["steps"].get(cid, (0, math.nan, math.nan, math.nan))
                nb, mb, _, _ = st[0]["steps"].get(cid, (0, math.nan, math.nan, math.nan))
                na, ma, sa, mda = sta[1]["steps"].get(cid, (0, math.nan, math.nan, math.nan))
                print(f"    {rule:7s} {cid:8d} {c:12s} cells {int(m.sum()):5d} unchanged {un:5d} edge pairs t {nt:4d} "
                      f"step {mt:6.2f} | base {nb:4d} step {mb:6.2f} | every edge t {na:4d} step {ma:6.2f} "
                      f"sd {sa:5.2f} median {mda:6.2f}")
        if a.step_gone:
            step_gone(run, st, cur, cls, name)
        for v in a.variants:
            dec = dict(cur)
            for rule in ("missing", "longer"):
                applies = v.endswith(("_longer", "_both")) if rule == "longer" else not v.endswith("_longer")
                if cur[rule] is None or v == "current" or not applies:
                    continue
                ids, post = cur[rule]
                sv = stp if v.endswith("_plain") else sta if v.endswith("_all") else stx if v.endswith("_allx") else st
                vv = v
                for tail in ("_longer", "_both", "_plain", "_allx", "_all"):
                    vv = vv.replace(tail, "")
                dec[rule] = (ids, veto(vv, ids, post, sv[1], sv[0]))
            p = ESC.apply(run, p0, dec)
            sc = ESC.score_hard(run, p, scene) if scene is not None else EMS.score_km(run, p)
            rows = ESC.caster_rows(run, sums, dec, cls)
            by = {}
            for r in rows:
                key = f"{r['rule']}:{r['cls']}"
                n, c = by.get(key, (0, 0))
                by[key] = (n + 1, c + r["cells"])
            line = f"{name:9s} {v:10s} " + ", ".join(f"{k} {x:.4f}" for k, x in sc.items())
            line += " | decided: " + ", ".join(f"{k} {n}/{c}" for k, (n, c) in sorted(by.items()))
            if cls is not None:
                line += f" | unchanged cells in them: {sum(r['unchanged'] for r in rows)}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
