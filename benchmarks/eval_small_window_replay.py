"""Evaluation (issue 7, s1 eleventh round): the change stage's use of ``dh`` replayed
(``eval_dh_offline.py``'s ``p_final`` on its ``--prepare`` copies) with ``dh``/``dh_sigma`` combined from
the 13² and a smaller window's sweeps (dumps of ``eval_small_window_dump.py``) by a rule:

* ``base``: the 13² maps; ``all7``: the small window everywhere;
* ``edge:S:HOW[:pre][:coh3]``: a 13² "within" answer whose window holds at least S (empty: the quadrant)
  of coherent beyond-bound answers takes the small window's where HOW: ``any``, ``beyond``, ``nbans``
  (beyond, the neighbours' sign), ``nb`` (within a storey of the neighbours' mean dh), ``nbb`` (beyond and
  ``nb``: the wired rule, :mod:`offnadir.cube.sweep_small`);
* ``step:HOW[:WHERE[:firm][:lower]]``: cells whose 13² window straddles a DSM step of more than B (``zero``: a
  13² beyond answer replaced by a small zero); WHERE the step (:func:`step_cells`: ``win`` the 13² window's
  DSM range, the default; ``own3``, ``win3``, ``lands``, ``minor``: t3 twelfth round); ``firm``: only a small
  zero that rejects the 13² height by two of its standard errors; ``lower``: only 13² answers below the DSM;
  a ``:soft`` suffix floors the sigma at ``|dh_small - dh_13| / 2``; ``:sig`` keeps the 13² dh with that floor on
  its sigma (the sweep's dh unchanged, only its certainty); ``+`` joins rules.
  ``edge::nbans+step:zero:win:firm:sig`` is t3's rule (twelfth round; ``edge::nbb`` before); the wired rule
  (u1 thirteenth round) reads the narrow roof's small window at two heights only (``sweep_small.two_heights``,
  ``rejects``), which the dumps do not hold: the replay approximates it by ``firm``;
  ``edge::nbans+step:zero:win:firm`` was wired and taken back (Kahramanmaraş dh vs CARS 1.16 -> 1.23 m).

    python benchmarks/eval_small_window_replay.py --work W --dump D [--small 3] --all-cells --rules base edge::nbb
    python benchmarks/eval_small_window_replay.py --km STORE COPY REFERENCE --dump D --rules base edge::nbb
"""
import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_dh_offline as eo  # noqa: E402

B = 2.5
SMALL = 3
ALLC = False


def answer(x):
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(x), np.sign(x) * (np.abs(x) > B), np.nan)


def group(z):
    return [k[:-6] for k in z.files if k.endswith("ref_dh")][0]


def combine_rule(rule, z, h):
    """(dh, sigma) of the group under ``rule`` from the dump ``z`` (both radii) and the DSM ``h``."""
    g = group(z)
    dh6, s6 = z[g + "r6_dh"].astype(np.float64), z[g + "r6_sigma"].astype(np.float64)
    rs = SMALL
    dh3, s3 = z[g + f"r{rs}_dh"].astype(np.float64), z[g + f"r{rs}_sigma"].astype(np.float64)
    if rule == "base":
        return dh6, s6
    take = np.zeros(dh6.shape, bool)
    soft = np.zeros(dh6.shape, bool)
    keep = np.zeros(dh6.shape, bool)
    for r in rule.split("+"):
        t = take_mask(r.replace(":soft", "").replace(":sig", ""), z, h)
        if r.endswith(":sig"):  # the 13² dh stays, uncertain by the two windows' difference / 2
            keep |= t
            continue
        take |= t
        if r.endswith(":soft"):
            soft |= t
    sig = np.where(take, s3, s6)
    with np.errstate(invalid="ignore"):
        sig = np.where(soft, np.fmax(sig, np.abs(dh3 - dh6) / 2.0), sig)
        sig = np.where(keep & ~take, np.fmax(s6, np.abs(dh3 - dh6) / 2.0), sig)
    return np.where(take, dh3, dh6), sig


def take_mask(rule, z, h):
    from offnadir.change.dh_evidence import coherent_mask, coherent_min_share

    g = group(z)
    dh6 = z[g + "r6_dh"].astype(np.float64)
    rs = SMALL
    dh3 = z[g + f"r{rs}_dh"].astype(np.float64)
    parts = rule.split(":")
    a6, a3 = answer(dh6), answer(dh3)
    fin3 = np.isfinite(dh3) & np.isfinite(dh6)
    coh3 = coherent_mask(a3, rs, 0.5)
    if parts[0] == "all7":
        take = fin3
    elif parts[0] == "edge":  # edge:S:take
        S = float(parts[1]) if parts[1] else coherent_min_share(6)
        coh6 = coherent_mask(a6, 6, 0.5)
        beyond = coh6 & (np.abs(np.nan_to_num(a6)) > 0)
        share = ndi.uniform_filter(beyond.astype(float), 13, mode="constant")
        sdh = ndi.uniform_filter(np.where(beyond, dh6, 0.0), 13, mode="constant")
        with np.errstate(invalid="ignore", divide="ignore"):
            nb = np.where(share > 0, sdh / share, np.nan)
        sus = (a6 == 0) & (share >= S - 1e-9) & fin3
        if "pre" in parts[3:]:
            off6 = z[g + "r6_offset"].astype(np.float64)
            with np.errstate(invalid="ignore"):
                sus &= np.abs(off6 - nb) <= 3.0
        if "coh" in parts[1:]:
            sus &= coh6
        how = parts[2]
        if how == "any":
            take = sus
        elif how == "beyond":
            take = sus & (a3 != 0)
        elif how == "nb":
            take = sus & (np.abs(dh3 - nb) <= 3.0)
        elif how == "nbb":
            take = sus & (np.abs(dh3 - nb) <= 3.0) & (a3 != 0)
        elif how == "nbans":
            take = sus & (a3 != 0) & (np.sign(dh3) == np.sign(nb))
        else:
            raise KeyError(how)
        if "coh3" in parts[3:]:
            take &= coh3
    elif parts[0] == "step":  # step:take[:where]: the 13² window straddles a DSM step of more than B
        sus = step_cells(parts[2] if len(parts) > 2 and parts[2] else "win", h, dh6) & fin3
        how = parts[1]
        if how == "any":
            take = sus
        elif how == "differ":
            take = sus & (a3 != a6)
        elif how == "zero":  # only a 7² zero replaces a 13² beyond (the narrow roof)
            take = sus & (a3 == 0) & (a6 != 0)
        elif how == "beyond":  # only a 7² beyond replaces a 13² zero
            take = sus & (a3 != 0) & (a6 == 0)
        else:
            raise KeyError(how)
        if "coh3" in parts[3:]:
            take &= coh3
        if "firm" in parts[3:]:  # the small zero rejects the 13² height at the sweep's two standard errors
            s3 = z[g + f"r{rs}_sigma"].astype(np.float64)
            with np.errstate(invalid="ignore"):
                take &= np.abs(dh6 - dh3) > 2.0 * s3
        if "lower" in parts[3:]:  # only a 13² answer below the DSM (the narrow roof measured at the ground)
            take &= dh6 < 0
    else:
        raise KeyError(rule)
    return take


def step_cells(where, h, dh6):
    """Cells whose 13² answer a DSM step may have drawn to the other surface (the narrow roof), by ``where``:
    ``win`` the 13² window's DSM range beyond B (s1); ``own3`` the cell's own 3x3 DSM range beyond B (as the
    on-level test's ``rim_out``); ``win3`` a 3x3 step beyond B inside the 13² window; ``lands`` the 13²
    answer lands within a storey of the window's lowest or highest DSM height while that lies beyond B
    of the cell's; ``minor`` the cell's own DSM surface (within a storey) holds less than half its window."""
    st = 3.0
    if where == "win":
        return ndi.maximum_filter(h, 13) - ndi.minimum_filter(h, 13) > B
    r3 = ndi.maximum_filter(h, 3, mode="nearest") - ndi.minimum_filter(h, 3, mode="nearest")
    if where == "own3":
        return r3 > B
    if where == "win3":
        return ndi.maximum_filter((r3 > B).astype(np.uint8), 13) > 0
    if where == "lands":
        lo, hi = ndi.minimum_filter(h, 13), ndi.maximum_filter(h, 13)
        t = h + np.nan_to_num(dh6)
        with np.errstate(invalid="ignore"):
            return ((np.abs(t - lo) <= st) & (h - lo > B)) | ((np.abs(t - hi) <= st) & (hi - h > B))
    if where == "minor":
        pad = np.pad(h, 6, mode="edge")
        share = np.zeros(h.shape)
        for dy in range(13):
            for dx in range(13):
                share += np.abs(pad[dy:dy + h.shape[0], dx:dx + h.shape[1]] - h) <= st
        return share / 169.0 < 0.5
    if where.startswith("own3&"):
        return step_cells("own3", h, dh6) & step_cells(where[5:], h, dh6)
    raise KeyError(where)


def sim(seeds, rules, work, off, dump):
    table = {r: [] for r in rules}
    classes = {}
    grounds = {r: [] for r in rules}
    alls = {}
    for seed in seeds:
        d = eo.load(work, off, seed)
        z = np.load(dump / f"s{seed}.npz")
        dh0, sg0 = d["dh"].copy(), d["dh_sigma"].copy()
        line = [f"seed {seed}"]
        for r in rules:
            ndh, nsg = combine_rule(r, z, d["dsm"].astype(np.float64))
            for t in (1, 2):
                d["dh"] = dh0.copy()
                d["dh_sigma"] = sg0.copy()
                d["dh"][t] = ndh.astype(np.float32)
                d["dh_sigma"][t] = nsg.astype(np.float32)
                stored = np.where(d["change"][t] == 2, np.nan, d["probability"][t].astype(np.float64))
                p = eo.p_final(d, t, eo.variant(d, t, "current"))
                p = np.where(np.isfinite(stored), p, np.nan)
                f = eo.f1(d, t, p)
                table[r].append((seed, t, f[0]))
                grounds[r].append(eo.ground_false(d, t, p))
                if ALLC:
                    alls.setdefault(r, []).append(eo.all_cells(d, t, p)[0])
                eo.miss_by_class(d, t, p, classes.setdefault(r, {}))
                line.append(f"{r} t{t} {f[0]:.3f}")
        print(" | ".join(line), flush=True)
    for r in rules:
        xs = sorted(table[r], key=lambda x: (x[1], x[0]))
        print(f"{r:28s} mean {np.mean([x[2] for x in xs]):.4f} ground {np.mean(grounds[r]):.4f}  "
              + " ".join(f"{x[2]:.3f}" for x in xs))
    for r, c in classes.items():
        print(f"{r:28s} " + ", ".join(f"{k} {n}" for k, n in c.items()))
    for r, x in alls.items():
        print(f"{r:28s} all-cells F1 mean {np.mean(x):.4f}")


def km(rules, store, copy, reference, dump):
    from offnadir.change.cells import DECISION_P
    from offnadir.change.reference import height_scores

    d, ref = eo.load_km(store, copy, reference)
    z = np.load(dump)
    dh0, sg0 = d["dh"].copy(), d["dh_sigma"].copy()
    vis = d["visible"]
    for r in rules:
        ndh, nsg = combine_rule(r, z, d["dsm"].astype(np.float64))
        line = [f"{r:28s}"]
        changed = int((np.isfinite(ndh) & (ndh != dh0[1])).sum())
        for t in range(1, vis.shape[0]):
            d["dh"] = dh0.copy()
            d["dh_sigma"] = sg0.copy()
            d["dh"][t] = ndh.astype(np.float32)
            d["dh_sigma"][t] = nsg.astype(np.float32)
            cells = (vis[0] == 1) & (vis[t] == 1)
            p = eo.p_final(d, t, eo.variant(d, t, "current"))
            ch = np.where(d["change"][t] == 2, 2, (p >= DECISION_P).astype(np.uint8))
            res = height_scores(ref, ch, p, cells, 0.25)
            line.append(f"F1 {res['f1']:.3f} P {res['precision']:.3f} R {res['recall']:.3f} AUC {res['auc']:.3f} "
                        f"obj {res['objects']['found']}/{res['objects']['objects']}")
        print(" | ".join(line) + f" | dh changed on {changed} cells", flush=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    ap.add_argument("--rules", nargs="+", default=["base"])
    ap.add_argument("--km", type=Path, nargs=3, metavar=("STORE", "COPY", "REFERENCE"),
                    help="the README's Kahramanmaraş detect store, its eval_dh_offline copy, reference_change.tif")
    ap.add_argument("--work", type=Path, help="the --work of eval_hard_sim.py --stereo")
    ap.add_argument("--off", type=Path, help="eval_dh_offline.py's copies (default WORK/offline)")
    ap.add_argument("--small", type=int, default=3)
    ap.add_argument("--dump", type=Path, required=True, help="eval_small_window_dump.py's NPZ folder (s<seed>.npz, km.npz)")
    ap.add_argument("--all-cells", action="store_true")
    a = ap.parse_args()
    ALLC = a.all_cells
    SMALL = a.small
    if a.km:
        km(a.rules, a.km[0], a.km[1], a.km[2], a.dump / "km.npz")
    else:
        sim(a.seeds, a.rules, a.work, a.off or a.work / "offline", a.dump)
