"""Evaluation: what the same-date stereo pair still misses and falsely flags on the hard simulator,
region by region, with how the height change ``dh`` stood there (issue 7, n6 ninth round).

Works on the stores of ``benchmarks/eval_hard_sim.py --stereo --work W`` and the copies that
``benchmarks/eval_dh_offline.py --work W --prepare`` makes (the change stage rerun with the dh
combination off, so the structural probability ``ps`` of every cell is known).

``census``: per target, the 8-connected regions of missed and falsely flagged elevated cells (scored
as the eval scores them) of at least ``--min`` cells, each with its main truth class, the true
``dh``, how ``dh`` stood (not measured, incoherent, kept by the small-object rule, within the bound,
beyond it, as :func:`eval_dh_offline.diagnose`), the measured ``dh`` (median, error against the
truth, share right within 1 m), how many were zeros, their ``dh_sigma`` and ``p_dh``, and ``ps``.

``zeros``: the coherent zeros (``dh = 0``, kept by the DSM tests) where the structural probability
alone says "changed" (``ps >= 0.5``): how many are changed against unchanged cells (elevated and
ground), and the replayed elevated F1 / ground false-alarm rate when a zero's sigma is floored at one
cell of relative displacement of the pair (``cell / (B/H)``: the sweep cannot resolve a height step
that moves the images by less; ``--step``) or when zeros are no measurement.

    python benchmarks/eval_stereo_census.py --work W [--seeds 0 5] [--min 30] [--step 1.67] [--zeros]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_dh_offline as E  # noqa: E402


def states(d, t):
    from offnadir.change.dh_evidence import dh_answer, small_object_removal

    b = d["bound"]
    dh = d["dh"][t].astype(np.float64)
    dhc = E.coherent(dh, b)
    state = np.full(dh.shape, "unmeas", object)
    state[np.isfinite(dh)] = "incoh"
    state[np.isfinite(dh) & ~np.isfinite(dhc) & small_object_removal(dh_answer(dh, b), d["elevated_dsm"])] = "object"
    fin = np.isfinite(dhc)
    state[fin & (np.abs(np.nan_to_num(dhc)) <= b)] = "within"
    state[fin & (np.abs(np.nan_to_num(dhc)) > b)] = "beyond"
    return state


def census(d, t, min_cells):
    from scipy import ndimage as ndi

    from offnadir.change.dh_evidence import dh_probability
    from offnadir.simulate.truth import CLASSES

    dh = d["dh"][t].astype(np.float64)
    sig = d["dh_sigma"][t].astype(np.float64)
    state = states(d, t)
    m = E.scored(d, t) & d["elev"]
    flag = d["change"][t] == 1
    truth = np.isin(d["truth"], (1, 2))
    p, ps = d["probability"][t], d["p_struct"][t]
    pdh = dh_probability(dh, sig, d["bound"])
    for what, sel in (("MISS", m & truth & ~flag), ("FALSE", m & ~truth & flag)):
        lab, n = ndi.label(sel, np.ones((3, 3)))
        sizes = ndi.sum(sel, lab, np.arange(1, n + 1))
        big = 0
        for i in np.argsort(-sizes):
            if sizes[i] < min_cells:
                break
            c = lab == i + 1
            big += int(c.sum())
            ys, xs = np.nonzero(c)
            name = CLASSES.get(int(np.argmax(np.bincount(d["cls"][c].astype(int)))), "?")
            st = {s: int((c & (state == s)).sum()) for s in ("unmeas", "incoh", "object", "within", "beyond")}
            s = (f"  {what:5s} {int(c.sum()):5d} {name:11s} y{int(ys.mean()):3d} x{int(xs.mean()):3d} true dh "
                 f"{np.median(d['true_dh'][c]):6.1f} | " + " ".join(f"{k} {v}" for k, v in st.items() if v))
            mz = c & np.isfinite(dh)
            if mz.any():
                e = np.abs(dh - d["true_dh"])[mz]
                s += (f" | dh {np.median(dh[mz]):6.1f} (err {np.median(e):4.1f}, right {np.mean(e < 1):.2f}) zeros "
                      f"{int((mz & (dh == 0)).sum())} sigma {np.median(sig[mz]):.2f} p_dh {np.median(pdh[mz]):.3f}")
            s += f" | ps {np.median(ps[c]):.3g} p {np.median(p[c]):.3g} dsm-elevated {np.mean(d['elevated_dsm'][c]):.2f}"
            print(s)
        print(f"  {what} total {int(sel.sum())}, in regions of >= {min_cells} cells: {big}")


def zeros(d, t, step, acc):
    from offnadir.change.cells import DECISION_P
    from offnadir.change.dh_evidence import dh_probability

    b = d["bound"]
    dh, sig = d["dh"][t].astype(np.float64), d["dh_sigma"][t].astype(np.float64)
    dhc = E.coherent(dh, b, objects=d["elevated_dsm"])
    zero = np.isfinite(dhc) & (dhc == 0)
    ps = d["p_struct"][t]
    truth = np.isin(d["truth"], (1, 2))
    for lab, m in (("elevated", E.scored(d, t) & d["elev"]),
                   ("ground", E.scored(d, t) & ~d["elev"] & (d["truth"] == 0))):
        z = m & zero & (ps >= DECISION_P)
        for k, v in ((f"{lab} changed", z & truth), (f"{lab} unchanged", z & ~truth)):
            acc["veto"][k] = acc["veto"].get(k, 0) + int(v.sum())
    pdh = dh_probability(dhc, sig, b)
    for k, v in (("current", pdh),
                 ("zero sigma >= step", dh_probability(dhc, np.where(zero, np.maximum(sig, step), sig), b)),
                 ("zero unmeasured", np.where(zero, np.nan, pdh))):
        p = E.p_final(d, t, v)
        acc.setdefault(k, []).append((E.f1(d, t, p)[0], E.ground_false(d, t, p)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--off", type=Path, default=None, help="the eval_dh_offline.py copies (default WORK/offline)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 5])
    ap.add_argument("--min", type=int, default=30, help="smallest region listed (cells)")
    ap.add_argument("--zeros", action="store_true")
    ap.add_argument("--step", type=float, default=1.67, help="one cell of relative displacement (m): cell / (B/H)")
    a = ap.parse_args(argv)
    off = a.off or a.work / "offline"
    acc = {"veto": {}}
    for seed in a.seeds:
        d = E.load(a.work, off, seed)
        for t in (1, 2):
            if a.zeros:
                zeros(d, t, a.step, acc)
            else:
                print(f"seed {seed} target{'' if t == 1 else '2'}: elevated F1 {E.f1(d, t, d['probability'][t])[0]:.3f}")
                census(d, t, a.min)
    if a.zeros:
        print("coherent zeros where ps >= 0.5: " + ", ".join(f"{k} {v}" for k, v in acc.pop("veto").items()))
        for k, v in acc.items():
            f, g = np.array(v).T
            print(f"{k:20s} elevated F1 mean {f.mean():.4f} ({' '.join(f'{x:.3f}' for x in f)}); "
                  f"ground false-alarm rate mean {g.mean():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
