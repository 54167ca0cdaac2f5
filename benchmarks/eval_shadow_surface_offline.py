"""Offline replay of the missing-shadow rule (``change/missing_shadow.py``) on stores of
``benchmarks/eval_geometries.py`` / ``eval_hard_sim.py`` (``<geometry dir>/hard<seed>.zarr`` beside the
scene's truth ``hard<seed>/``): the same caster sums and decision (whole-window functions
``shadow_casters``, ``training_classes``, ``decide``), with the target's and base's shadow classifier
read on each cell's surface in one of several ways, and the cells of roofs decided gone scored
against the truth (false-alarm / hit cells and patches, six seeds summed). Measured, not wired.

    python benchmarks/eval_shadow_surface_offline.py VARIANT GEOMETRY_DIR [GEOMETRY_DIR ...]

VARIANT: ``pooled`` (the pipeline's classifier, all surfaces pooled); ``split`` (cells on elevated /
ground cells read by a classifier calibrated on that surface class only); ``centred`` (split, each
cell's log ratio moved by its class's midpoint to the pooled midpoint); ``ratio[N]`` (a cell on a roof
patch rescaled by (median of the image's sure-lit cells) / (median of that patch's own lit cells in
the same image, at least N, default 20) before the pooled classifier: shadow read relative to the
surface's own lit brightness); ``ratiox[N]`` (ratio, and roof cells without such a reference are not
counted); a trailing ``b`` (``ratiob``, ``ratioxb``): the factor at most 1 (only roofs brighter than
the lit class are read darker); ``ground`` (split, roof cells not counted). Writes nothing; prints per-patch diagnostics of
the remaining false alarms for the ratio variants."""
import sys, json, math, warnings
import numpy as np, xarray as xr, rasterio
from pathlib import Path
warnings.simplefilter('ignore')
from offnadir.change import missing_shadow as MS, shadow_observed as SO
def rd(p):
    with rasterio.open(p) as ds: return ds.read(1)
VARIANT = sys.argv[1]
for g in sys.argv[2:]:
    tot = dict(fa=0, hit=0, fa_p=0, hit_p=0)
    for s in range(6):
        d = Path(g) / f'hard{s}'
        ds = xr.open_zarr(str(d) + '.zarr', mask_and_scale=False)
        rep = json.loads(ds.attrs['change_sun'])
        h = ds['dsm'].values.astype(np.float64); elev = ds['elevated'].values; patch = ds['patch'].values
        lab = np.where(elev == 1, patch, 0)
        vis = ds['visible'].values == 1; ill = ds['illumination'].values; val = ds['value'].values.astype(np.float64).mean(axis=1)
        cell = 0.5
        relief = float(np.nanmax(h) - np.nanmin(h))
        ns, ls = [], []
        for k in range(2):
            r = rep[k]
            if not r.get('shadow_classifier'):
                ns.append(np.zeros(0, np.int64)); ls.append(np.zeros(0)); continue
            clf = SO.ShadowClassifier.from_report(r['shadow_classifier'])
            az, el = math.radians(r['azimuth'] + r['grid_north_deg']), math.radians(r['elevation'])
            codes = ill[k]; x = val[k]
            ok = vis[k] & np.isfinite(x)
            sh, lit = SO.training_classes(codes, ok)
            ci, cj = MS.shadow_casters(h, codes, cell, az, el, 0.3, relief / (math.tan(el) * cell) + 2)
            m = sh & (ci >= 0)
            xl = x[m]; surf = elev[m] == 1
            llr = -(clf.cell_log_odds(xl) - clf.prior)
            if VARIANT.startswith('ratio'):
                from scipy import ndimage as ndi
                nmin = int(VARIANT.lstrip('ratiox').rstrip('b') or 20)
                mlit = float(np.median(x[lit]))
                litP = (elev == 1) & ok & (codes > 0) & (codes < 255) & (ndi.minimum_filter(((codes > 0) & (codes < 255) & ok).astype(np.uint8), size=3, mode='nearest') == 1)
                pl = np.where(litP, patch, 0)
                pids = patch[m]; onroof = (elev[m] == 1)
                u = np.unique(pids[onroof]); KEPT = []
                xs = xl.copy()
                for pid in u:
                    vv = x[pl == pid]
                    if len(vv) < nmin: continue
                    KEPT.append(pid)
                    sel = onroof & (pids == pid)
                    f = mlit / np.median(vv)
                    xs[sel] = xl[sel] * (min(f, 1.0) if VARIANT.endswith('b') else f)
                llr = -(clf.cell_log_odds(xs) - clf.prior)
                if VARIANT.startswith('ratiox'): llr[onroof & ~np.isin(pids, KEPT)] = np.nan
                if k == 1: DIAG = dict(lab=lab[ci[m], cj[m]], onroof=onroof, resc=np.isin(pids, KEPT) & onroof, llr=llr)
            elif VARIANT != 'pooled':
                for sv in (0, 1):
                    c2 = SO.calibrate(x, codes, ok & ((elev == 1) == bool(sv)))
                    if c2 is None: continue
                    sel = surf == bool(sv)
                    llr[sel] = -(c2.cell_log_odds(xl[sel]) - c2.prior)
                    if VARIANT == 'centred':
                        llr[sel] += -MS.midpoint(c2) + MS.midpoint(clf)
                    if k == 1 and s == 0: print(g, 'surf', sv, 'thr', c2.threshold, c2.n_shadow, c2.n_lit, 'pooled thr', clf.threshold)
            if VARIANT == 'ground': llr[surf] = np.nan
            labs = lab[ci[m], cj[m]]
            kp = (labs > 0) & np.isfinite(llr)
            ns.append(labs[kp]); ls.append(llr[kp])
        ids = np.unique(np.concatenate(ns))
        rows_n = np.zeros((len(ids), 2)); rows_s = np.zeros((len(ids), 2))
        for k in range(2):
            ix = np.searchsorted(ids, ns[k])
            np.add.at(rows_n[:, k], ix, 1); np.add.at(rows_s[:, k], ix, ls[k])
        out = {} if not len(ids) else MS.decide({"ids": ids, "rows": {"msh_n": rows_n, "msh_llr": rows_s}}, [1], report=rep)
        gid, post = out.get(1, (np.zeros(0), np.zeros(0)))
        gone = np.isin(patch, gid[post >= 0.5]) & (elev == 1)
        sb = rd(d/'truth_structural.tif'); occ = rd(d/'truth_occluded.tif'); te = rd(d/'truth_elevated.tif') == 1
        cells = vis[0] & vis[1] & (occ == 0) & te & (sb != 255)
        fa = cells & (sb == 0) & gone; hit = cells & np.isin(sb, (1, 2)) & gone
        if VARIANT.startswith('ratio') and 'DIAG' in dir():
            for pid in np.unique(patch[fa]):
                D = DIAG; q = D['lab'] == pid
                i = np.nonzero(ids == pid)[0]
                print(f'  seed {s} FA patch {pid}: n_t {q.sum()} on roof {(q&D["onroof"]).sum()} rescaled {(q&D["resc"]).sum()} mean llr ground {D["llr"][q&~D["onroof"]].mean() if (q&~D["onroof"]).any() else float("nan"):.2f} roof-rescaled {D["llr"][q&D["resc"]].mean() if (q&D["resc"]).any() else float("nan"):.2f} roof-unscaled {D["llr"][q&D["onroof"]&~D["resc"]].mean() if (q&D["onroof"]&~D["resc"]).any() else float("nan"):.2f}; base n {rows_n[i,0]} sum/9 {rows_s[i,0]/9}; mid {MS.midpoint(SO.ShadowClassifier.from_report(rep[1]["shadow_classifier"])):.2f}')
            del DIAG
        tot['fa'] += fa.sum(); tot['hit'] += hit.sum()
        # patches
        tot['fa_p'] += len(np.unique(patch[fa])); tot['hit_p'] += len(np.unique(patch[hit]))
    print(f'{VARIANT:8} {Path(g).name:9} gone-roof cells: FA {tot["fa"]} (patches {tot["fa_p"]})  hits {tot["hit"]} (patches {tot["hit_p"]})', flush=True)
