"""Evaluation (issue 7, s1 eleventh round): ``offnadir detect`` (arguments after ``--``) run in-process
with the height sweep patched so that every tile is also swept, without the second window of
:mod:`offnadir.cube.sweep_small`, at several window radii (default 6 and 3) sharing the samples (window
test, unresolved zeros, off-level test and noise peak at each window's N), every map dumped to NPZ
(keys ``g<members>_r<radius>_<map>``; ``..._ref_dh`` the store's ``dh``). The replay
(``eval_small_window_replay.py``) combines them. docs/change_detection.md, "The sweep's second,
smaller window".

    python benchmarks/eval_small_window_dump.py [--radii 6,4,2] OUT.npz -- detect --dsm ... -o X.zarr ...
"""
import math
import sys
import threading

import numpy as np

from offnadir.cube import sweep
from offnadir.cube import sweep_level as SL
from offnadir.cube import sweep_noise as SN
from offnadir.cube import sweep_views as SV
from offnadir.cube import sweep_kernels as swk
from offnadir.cube.tile import height_block, lonlat_block

RADII = tuple(int(r) for r in (sys.argv[2].split(",") if len(sys.argv) > 2 and sys.argv[1] == "--radii" else "6,3".split(",")))
LOCK = threading.Lock()
PARTS = []
ORIG = sweep.sweep_tile


def diag(plan, tile, geom, relief, vis6, radii):
    """The off-level sweep at several radii sharing the samples: per radius the core's maps."""
    step = geom["step_m"]
    R = max(radii)
    I0, I1, J0, J1 = sweep.block_bounds(plan, tile, R)
    h_all = np.ascontiguousarray(height_block(plan, I0, I1, J0, J1), dtype=np.float64)
    z0, n = sweep.height_range(plan.h_min, plan.h_max, step)
    views = [SV.View(plan, plan.images[k], I0, I1, J0, J1, z0, z0 + (n - 1) * step) for k in geom["members"]]
    vi0, vi1, vj0, vj1 = sweep.visibility_bounds(plan, tile, geom, relief)
    vsl = (slice(I0 - vi0, I1 - vi0), slice(J0 - vj0, J1 - vj0))
    hidden_all = None if vis6 is None else [np.asarray(v)[vsl] != 1 for v in vis6]
    lon, lat = lonlat_block(plan, I0, I1, J0, J1)
    at_dsm_all = SV.samples_at(views, lon, lat, h_all, hidden_all)
    out = {}
    st = {}
    for r in radii:
        i0, i1, j0, j1 = sweep.block_bounds(plan, tile, r)
        sl = (slice(i0 - I0, i1 - I0), slice(j0 - J0, j1 - J0))
        shape = (i1 - i0, j1 - j0)
        st[r] = dict(sl=sl, shape=shape, o=(i0, j0), best=np.full(shape, -np.inf, np.float32),
                     best_k=np.full(shape, -1, np.int32), s_prev=np.full(shape, np.nan, np.float32),
                     s_next=np.full(shape, np.nan, np.float32), last=np.full(shape, np.nan, np.float32),
                     score=np.empty(shape, np.float32), ncc=np.empty(shape, np.float32), work=np.empty((7,) + shape),
                     core=(slice(tile.i0 - i0, tile.i1 - i0), slice(tile.j0 - j0, tile.j1 - j0)))
    for k in range(n):
        z = z0 + k * step
        samples = [v.sample(z).copy() for v in views]
        for r in radii:
            q = st[r]
            smp = [np.ascontiguousarray(s[q["sl"]]) for s in samples]
            sweep._agreement(smp, geom["pairs"], r, sweep.MIN_WINDOW_FRACTION * (2 * r + 1) ** 2, q["ncc"],
                             q["work"], q["score"], q["o"])
            swk.update_best(q["score"], k, q["best"], q["best_k"], q["s_prev"], q["s_next"], q["last"])
    for r in radii:
        q = st[r]
        sl, shape = q["sl"], q["shape"]
        h = np.ascontiguousarray(h_all[sl])
        at_dsm = [np.ascontiguousarray(a[sl]) for a in at_dsm_all]
        hidden = None if hidden_all is None else [np.ascontiguousarray(x[sl]) for x in hidden_all]
        i0, i1, j0, j1 = sweep.block_bounds(plan, tile, r)
        rviews = [SV.View(plan, plan.images[k], i0, i1, j0, j1, z0, z0 + (n - 1) * step) for k in geom["members"]]
        min_count = sweep.MIN_WINDOW_FRACTION * (2 * r + 1) ** 2
        ncc, work = q["ncc"], q["work"]
        s_dsm = np.empty(shape, np.float32)
        sweep._agreement(at_dsm, geom["pairs"], r, min_count, ncc, work, s_dsm, q["o"])
        zz = np.empty(shape)
        curv = np.empty(shape)
        swk.refine(q["best"], q["best_k"], q["s_prev"], q["s_next"], n, z0, step, zz, curv)
        n_win = (2 * r + 1) ** 2
        s = q["best"].astype(np.float64)
        s0 = s_dsm.astype(np.float64)
        with np.errstate(invalid="ignore"):
            offset = zz - h
        explained, no_peak = SN.window_test(s, s0, np.full(shape, np.nan), offset, curv, n_win, sweep.SE_FACTOR)
        win_kept = explained.copy()
        tie = SN.unresolved(explained, s, s0, n_win, sweep.SE_FACTOR)
        level = step / sweep.STEP_FRACTION
        off = SL.off_level_explained(rviews, at_dsm, hidden, geom["pairs"], h, q["best"], q["best_k"], z0, step,
                                     explained, level, r, min_count, sweep.SE_FACTOR)
        explained |= off
        dh = np.where(explained, 0.0, offset)
        ok = np.isfinite(dh) & np.isfinite(h) & np.isfinite(s) & np.isfinite(curv) & ~no_peak
        ok &= q["best"] > SN.noise_peak(n_win, int(math.ceil(relief / step)) + 2 * sweep.MARGIN_STEPS + 1)
        if hidden is not None:
            ok &= ~np.any(hidden, axis=0)
        with np.errstate(invalid="ignore"):
            undecided = np.where(tie | off, np.abs(offset) / sweep.SE_FACTOR, 0.0)
        c = q["core"]
        dh, curv, s_, s0_, ok, explained, undecided = (a[c] for a in (dh, curv, s, s0, ok, explained, undecided))
        s_used = np.where(explained, s0_, s_)
        with np.errstate(invalid="ignore", divide="ignore"):
            sigma = np.sqrt(2.0 * np.clip(1.0 - s_used, 0.0, None) / (n_win * curv) + step * step / 12.0)
            sigma = np.fmax(sigma, undecided)
        ok &= np.isfinite(s_used) & np.isfinite(sigma)
        out[r] = {"dh": np.where(ok, dh, np.nan).astype(np.float32),
                  "sigma": np.where(ok, sigma, np.nan).astype(np.float32),
                  "s": s_.astype(np.float32), "s0": s0_.astype(np.float32),
                  "offset": offset[c].astype(np.float32), "curv": curv.astype(np.float32),
                  "win_kept": win_kept[c], "tie": tie[c], "off": off[c], "ok": ok}
    return out


def patched(plan, tile, geom, relief, visible=None, radius=sweep.WINDOW_RADIUS, dsm_test=sweep.DSM_TEST, bound=2.5):
    res = ORIG(plan, tile, geom, relief, visible, radius, dsm_test, bound)  # the store's (with the second window)
    d = diag(plan, tile, geom, relief, visible, RADII)
    with LOCK:
        PARTS.append((tile.i0, tile.i1, tile.j0, tile.j1, tuple(geom["members"]), d, res["dh"], plan.dsm.shape))
    return res


def save(path):
    ny, nx = PARTS[0][7]
    full = {}
    for i0, i1, j0, j1, mem, d, dh_ref, _ in PARTS:
        g = "g" + "_".join(map(str, mem))
        full.setdefault(f"{g}_ref_dh", np.full((ny, nx), np.nan, np.float32))[i0:i1, j0:j1] = dh_ref
        for r, m in d.items():
            for k, a in m.items():
                key = f"{g}_r{r}_{k}"
                if key not in full:
                    full[key] = np.zeros((ny, nx), a.dtype) if a.dtype == bool else np.full((ny, nx), np.nan, a.dtype)
                full[key][i0:i1, j0:j1] = a
    np.savez_compressed(path, **full)


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[0] == "--radii":
        args = args[2:]
    out = args[0]
    cli_args = args[2:] if args[1] == "--" else args[1:]
    sweep.sweep_tile = patched
    from offnadir.cli import main

    rc = main(cli_args)
    save(out)
    g = [k for k in np.load(out).files if k.endswith("_ref_dh")]
    z = np.load(out)
    for k in g:
        p = k[:-len("ref_dh")]
        a, b = z[k], z[p + f"r{RADII[0]}_dh"]
        print(k, "first radius == stored dh (False where the second window moved cells):", np.array_equal(np.nan_to_num(a, nan=-999), np.nan_to_num(b, nan=-999)),
              "measured", np.isfinite(a).mean(), [(r, float(np.isfinite(z[p + f'r{r}_dh']).mean())) for r in RADII])
    sys.exit(rc)
