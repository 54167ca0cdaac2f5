"""RPC throughput: offnadir against GDAL (via rasterio), rpcm and shareloc, in one run.

    python benchmarks/bench_rpc.py [--points 2000000] [--repeat 5] [--json out.json]

Every contender gets the same real RPC (default: the Pleiades model in the GeoTIFF tags of
s2p's ``input_pair/img_01.tif``) and the same random points, uniform in the model's validity
domain (lon/lat/height offset ± scale). Two tables:

* **project** (ground -> image): offnadir ``Camera.project`` (public API, allocates its outputs,
  numba threads for large inputs) and the raw kernels ``project_parallel`` / ``project_serial``
  on preallocated outputs; GDAL's RPC transformer through ``rasterio.transform.RPCTransformer
  .rowcol`` (one thread, and two threads on two halves, one transformer each); rpcm
  ``RPCModel.projection`` (numpy); shareloc ``RPC.inverse_loc`` (numba, parallel), its numba kernel
  ``compute_rational_function_polynomial`` alone on pre-normalised inputs, and ``RPCoptim``
  (C++ bindings).
* **localize** (image -> ground at given heights): the pixels are offnadir's projections of the
  same points; offnadir ``Camera.localize`` and the raw kernels; GDAL ``RPCTransformer.xy`` at
  its default pixel-error threshold (0.1 px) and at offnadir's tolerance (1e-7 px); rpcm
  ``RPCModel.localization`` (iterative, numpy); shareloc ``direct_loc_h`` (``RPC`` and
  ``RPCoptim``).

Each call is warmed up (numba compilation, caches), then timed ``--repeat`` times, contenders
interleaved round-robin so that load from elsewhere hits all alike. The tables give best-of-N
and median throughput, CPU/wall (about the number of busy cores), the agreement of every output
with offnadir's (max |Δpx| after converting pixel conventions; for localize the round trip:
offnadir re-projects each contender's lon/lat and compares with the input pixel), and the
ratios offnadir / contender.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

DEFAULT_IMAGE = bc.REAL / "s2p/tests/data/input_pair/img_01.tif"
GOAL = 100.0


# ---------------------------------------------------------------------------- contenders
def load_kernels(path):
    """The kernels module at ``path`` (e.g. an older ``kernels.py`` from git), loaded beside the
    installed one, for before/after rows in the same run."""
    name = "offnadir_kernels_under_test"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # numba's cache finds the module by name
    spec.loader.exec_module(mod)
    return mod


def _with_kernels(mod, fn):
    """``fn`` run with ``Camera`` using the kernels module ``mod`` (None: the installed one)."""
    if mod is None:
        return fn
    import offnadir.camera.camera as camera_mod

    def f():
        saved = camera_mod.kernels
        camera_mod.kernels = mod
        try:
            return fn()
        finally:
            camera_mod.kernels = saved
    return f


def offnadir_contenders(cam, kernels, lon, lat, h, tag=""):
    """``tag`` labels rows of another kernels module (``kernels`` then is that module)."""
    norm, coefs, aff = cam.kernel_params()
    n = lon.size
    r_out, c_out = np.empty(n), np.empty(n)
    other = kernels if tag else None

    def k_par():
        kernels.project_parallel(lon, lat, h, norm, coefs, aff, r_out, c_out)
        return r_out, c_out

    def k_ser():
        kernels.project_serial(lon, lat, h, norm, coefs, aff, r_out, c_out)
        return r_out, c_out

    return {
        f"offnadir{tag} Camera.project": ("public API, numpy in/out",
                                          _with_kernels(other, lambda: cam.project(lon, lat, h))),
        f"offnadir{tag} project_parallel": ("raw kernel, preallocated, numba threads", k_par),
        f"offnadir{tag} project_serial": ("raw kernel, preallocated, 1 thread", k_ser),
    }


def offnadir_localize(cam, kernels, row, col, h, tag=""):
    from offnadir.camera.camera import invert_affine

    norm, coefs, _ = cam.kernel_params()
    inv = np.asarray(invert_affine(cam.affine), dtype=np.float64)
    guess = cam._guess  # what Camera.localize passes (fitted once per camera, cached)
    n = row.size
    lo, la, st = np.empty(n), np.empty(n), np.empty(n, dtype=np.int32)
    other = kernels if tag else None

    def k_par():
        kernels.localize_parallel(row, col, h, norm, coefs, inv, guess, 1e-7, 60, lo, la, st)
        return lo, la

    def k_ser():
        kernels.localize_serial(row, col, h, norm, coefs, inv, guess, 1e-7, 60, lo, la, st)
        return lo, la

    return {
        f"offnadir{tag} Camera.localize": ("public API, tol 1e-7 px",
                                           _with_kernels(other, lambda: cam.localize(row, col, h))),
        f"offnadir{tag} localize_parallel": ("raw kernel, preallocated, numba threads", k_par),
        f"offnadir{tag} localize_serial": ("raw kernel, preallocated, 1 thread", k_ser),
    }


class _TwoThreads:
    """Run ``fn(transformer, slice)`` on two halves of the points in two threads, one GDAL
    transformer per thread (a GDAL transformer is not shared between threads)."""

    def __init__(self, make, n):
        self.pool = ThreadPoolExecutor(2)
        self.tr = [make(), make()]
        self.halves = [slice(0, n // 2), slice(n // 2, n)]

    def __call__(self, fn):
        parts = list(self.pool.map(lambda i: fn(self.tr[i], self.halves[i]), (0, 1)))
        return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))


def gdal_contenders(path, lon, lat, h, row, col, hl):
    import rasterio
    from rasterio.transform import RPCTransformer

    with rasterio.open(path) as ds:
        rpcs = ds.rpcs
    tr = RPCTransformer(rpcs)
    two = _TwoThreads(lambda: RPCTransformer(rpcs), lon.size)
    # op=np.positive: a ufunc applied in place, so rasterio keeps the float pixel coordinates
    # (op=None floors to int; a Python lambda is mapped point by point in Python).

    def rowcol(t, s):
        r, c = t.rowcol(lon[s], lat[s], h[s], op=np.positive)
        return r - 0.5, c - 0.5  # GDAL pixel = native + 0.5

    project = {
        "GDAL RPCTransformer.rowcol": ("rasterio, 1 thread", lambda: rowcol(tr, slice(None))),
        "GDAL RPCTransformer.rowcol x2": ("rasterio, 2 threads x half the points (rasterio holds the GIL)",
                                          lambda: two(rowcol)),
    }
    # localize: xy() adds 0.5 (offset='center'), so native pixels go in as they are
    tr_tight = RPCTransformer(rpcs, RPC_PIXEL_ERROR_THRESHOLD=1e-7)
    two_tight = _TwoThreads(lambda: RPCTransformer(rpcs, RPC_PIXEL_ERROR_THRESHOLD=1e-7), row.size)

    def xy(t, s):
        return t.xy(row[s], col[s], hl[s])

    localize = {
        "GDAL RPCTransformer.xy": ("rasterio, 1 thread, default threshold 0.1 px",
                                   lambda: xy(tr, slice(None))),
        "GDAL RPCTransformer.xy 1e-7": ("rasterio, 1 thread, RPC_PIXEL_ERROR_THRESHOLD=1e-7",
                                        lambda: xy(tr_tight, slice(None))),
        "GDAL RPCTransformer.xy 1e-7 x2": ("rasterio, 2 threads x half, threshold 1e-7 (GIL held)",
                                           lambda: two_tight(xy)),
    }
    return project, localize, (tr, tr_tight, two, two_tight)


def rpcm_contenders(path, lon, lat, h, row, col, hl):
    note = ""
    if importlib.util.find_spec("srtm4") is None:
        # rpcm imports srtm4 (SRTM download) at module level but projection/localization never
        # use it; it does not build here, so an empty module stands in (rpcm installed --no-deps)
        sys.modules["srtm4"] = types.ModuleType("srtm4")
        note = " (srtm4 stubbed: unused by these calls)"
    import rpcm

    m = rpcm.rpc_from_geotiff(str(path))

    def proj():
        c, r = m.projection(lon, lat, h)
        return r, c

    def loc():
        return m.localization(col, row, hl)

    return ({"rpcm RPCModel.projection": ("numpy, vectorised" + note, proj)},
            {"rpcm RPCModel.localization": ("numpy, iterative (its convergence test)" + note, loc)},
            rpcm.__version__)


def shareloc_contenders(path, lon, lat, h, row, col, hl):
    import shareloc
    from shareloc.geomodels import GeoModel
    from shareloc.geomodels.rpc import compute_rational_function_polynomial

    m = GeoModel(str(path), "RPC")
    mo = GeoModel(str(path), "RPCoptim")

    def inv(model):
        def f():
            r, c, _ = model.inverse_loc(lon, lat, h)
            return r - 0.5, c - 0.5  # shareloc pixel = native + 0.5
        return f

    # the numba kernel alone, on inputs normalised beforehand (not timed): its best case
    ln = (lon - m.offset_x) / m.scale_x
    la = (lat - m.offset_y) / m.scale_y
    al = (h - m.offset_alt) / m.scale_alt

    def raw():
        r, c = compute_rational_function_polynomial(
            ln, la, al, m.num_col, m.den_col, m.num_row, m.den_row,
            m.scale_col, m.offset_col, m.scale_row, m.offset_row)
        return r - 0.5, c - 0.5

    def direct(model):
        def f():
            g = model.direct_loc_h(row + 0.5, col + 0.5, hl)
            return g[:, 0], g[:, 1]
        return f

    project = {
        "shareloc RPC.inverse_loc": ("numba parallel, fastmath", inv(m)),
        "shareloc numba kernel": ("compute_rational_function_polynomial, pre-normalised inputs", raw),
        "shareloc RPCoptim.inverse_loc": ("C++ bindings", inv(mo)),
    }
    localize = {
        "shareloc RPC.direct_loc_h": ("numba + numpy Newton, eps 1e-6 px, <= 10 iterations", direct(m)),
        "shareloc RPCoptim.direct_loc_h": ("C++ bindings", direct(mo)),
    }
    return project, localize, getattr(shareloc, "__version__", "?")


# ---------------------------------------------------------------------------- running
def points(cam, n, seed):
    lon0, lon1, lat0, lat1, h0, h1 = cam.rpc.domain
    rng = np.random.default_rng(seed)
    return (rng.uniform(lon0, lon1, n), rng.uniform(lat0, lat1, n), rng.uniform(h0, h1, n))


def run_table(title, contenders, ref, n, repeat, agree, agree_label, api_name, kernel_name):
    """Time every contender, check agreement, compute ratios; returns rows."""
    print(f"\n== {title}: {n:,} points, best of {repeat} (contenders interleaved) ==", flush=True)
    fns = {k: v[1] for k, v in contenders.items()}
    timings = bc.interleaved(fns, repeat=repeat, warmup=1, n_items=n)
    rows = []
    for name, (what, fn) in contenders.items():
        t = timings[name]
        out = fn()
        rows.append({
            "contender": name,
            "what": what,
            "best_ms": t.best_s * 1e3,
            "median_ms": t.median_s * 1e3,
            "mpts_best": t.rate("best") / 1e6,
            "mpts_median": t.rate("median") / 1e6,
            "cpu_per_wall": t.cpu_s / sum(t.times_s),
            # points per CPU-second of this process (all threads): insensitive to time lost to
            # other processes, but counts threads that spin while waiting
            "mpts_per_cpu_s": n * len(t.times_s) / t.cpu_s / 1e6 if t.cpu_s > 0 else None,
            "agree_px": agree(out, ref),
            "times_s": t.times_s,
        })
    by = {r["contender"]: r for r in rows}
    peers = [r for r in rows if not r["contender"].startswith("offnadir")]
    # offnadir rows of another kernels module (--kernels) are neither peers nor the reference
    for r in rows:
        r["api_x"] = by[api_name]["mpts_best"] / r["mpts_best"]
        r["kernel_x"] = by[kernel_name]["mpts_best"] / r["mpts_best"]
    print(bc.table(rows, ["contender", "best_ms", "median_ms", "mpts_best", "mpts_median",
                          "cpu_per_wall", "mpts_per_cpu_s", "agree_px", "api_x", "kernel_x"],
                   ["contender", "best ms", "median ms", "Mpt/s best", "Mpt/s median", "CPU/wall",
                    "Mpt per CPU-s",
                    agree_label,
                    f"{api_name.split()[-1]} ×", f"{kernel_name.split()[-1]} ×"]))
    fastest = max(peers, key=lambda r: r["mpts_best"])
    summary = {
        "fastest_peer": fastest["contender"],
        "fastest_peer_mpts": fastest["mpts_best"],
        "api_vs_fastest": by[api_name]["mpts_best"] / fastest["mpts_best"],
        "kernel_vs_fastest": by[kernel_name]["mpts_best"] / fastest["mpts_best"],
        "api_vs_fastest_median": by[api_name]["mpts_median"] / fastest["mpts_median"],
        "kernel_vs_fastest_median": by[kernel_name]["mpts_median"] / fastest["mpts_median"],
    }
    print(f"fastest peer: {fastest['contender']} ({fastest['what']}) at {fastest['mpts_best']:.2f} "
          f"Mpt/s. {api_name}: {summary['api_vs_fastest']:.1f}x it "
          f"(median {summary['api_vs_fastest_median']:.1f}x); {kernel_name}: "
          f"{summary['kernel_vs_fastest']:.1f}x (median {summary['kernel_vs_fastest_median']:.1f}x).")
    for r in rows:
        print(f"  {r['contender']}: {r['what']}")
    return rows, summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=2_000_000, help="points per call (default 2e6)")
    ap.add_argument("--localize-points", type=int, default=None,
                    help="points for the localize table (default: --points)")
    ap.add_argument("--repeat", type=int, default=5, help="timed calls per contender (default 5)")
    ap.add_argument("--image", type=Path, default=DEFAULT_IMAGE, help="GeoTIFF with RPC tags")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write every figure to this JSON file")
    ap.add_argument("--kernels", type=Path, default=None,
                    help="also time this kernels.py (rows tagged with its file name) beside the installed "
                         "one: before/after comparisons, e.g. with "
                         "`git show HEAD:src/offnadir/camera/kernels.py > /tmp/k_head.py`")
    a = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # rasterio NotGeoreferencedWarning on sensor-geometry images

    n = a.points
    nl = a.localize_points or n
    facts_before = bc.machine_facts()
    # offnadir first: its parallel kernels pick numba's default threading layer (shareloc sets
    # numba.config.THREADING_LAYER = "omp" on import; imported after, it finds the layer chosen)
    import offnadir

    cam = offnadir.read_camera(a.image)
    lon, lat, h = points(cam, n, a.seed)
    from offnadir.camera import kernels

    proj = offnadir_contenders(cam, kernels, lon, lat, h)
    ref_r, ref_c = cam.project(lon, lat, h)
    # localize inputs: offnadir's pixels of the first nl points, at their heights
    lr, lc, lh = ref_r[:nl].copy(), ref_c[:nl].copy(), h[:nl].copy()
    loc = offnadir_localize(cam, kernels, lr, lc, lh)
    if a.kernels:
        old = load_kernels(a.kernels)
        tag = f"[{a.kernels.name}]"
        proj.update(offnadir_contenders(cam, old, lon, lat, h, tag))
        loc.update(offnadir_localize(cam, old, lr, lc, lh, tag))
    versions = {}

    g_proj, g_loc, _keep = gdal_contenders(a.image, lon, lat, h, lr, lc, lh)
    proj.update(g_proj)
    loc.update(g_loc)
    for name, fn in (("rpcm", rpcm_contenders), ("shareloc", shareloc_contenders)):
        try:
            p, lz, ver = fn(a.image, lon, lat, h, lr, lc, lh)
            proj.update(p)
            loc.update(lz)
            versions[name] = ver
        except Exception as e:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
            print(f"{name}: not run ({type(e).__name__}: {e})")
            versions[name] = None

    def agree_project(out, ref):
        return float(max(np.nanmax(np.abs(np.asarray(out[0]) - ref[0])),
                         np.nanmax(np.abs(np.asarray(out[1]) - ref[1]))))

    def roundtrip(out, ref):
        rr, cc = cam.project(np.asarray(out[0], dtype=np.float64), np.asarray(out[1], dtype=np.float64), lh)
        return float(max(np.nanmax(np.abs(rr - lr)), np.nanmax(np.abs(cc - lc))))

    p_rows, p_sum = run_table("project (ground -> image)", proj, (ref_r, ref_c), n, a.repeat,
                              agree_project, "max Δpx vs offnadir", "offnadir Camera.project",
                              "offnadir project_parallel")
    l_rows, l_sum = run_table("localize (image -> ground at given heights)", loc, None, nl, a.repeat,
                              roundtrip, "round trip max px", "offnadir Camera.localize",
                              "offnadir localize_parallel")

    facts = bc.machine_facts({"rpcm": versions.get("rpcm"), "shareloc": versions.get("shareloc"),
                              "loadavg_before": facts_before["loadavg_1_5_15"]})
    print()
    bc.print_machine(facts)
    print(f"model: {a.image} ({cam.model_format}); domain lon/lat/h {cam.rpc.domain}; seed {a.seed}")
    print(f"offnadir kernels: {kernels.__file__}" + (f"; rows tagged [{a.kernels.name}]: {a.kernels}"
                                                      if a.kernels else ""))
    for what, s in (("project", p_sum), ("localize", l_sum)):
        ok = s["api_vs_fastest"] >= GOAL and s["kernel_vs_fastest"] >= GOAL
        print(f"goal >= {GOAL:.0f}x the fastest peer ({what}): API {s['api_vs_fastest']:.1f}x, "
              f"raw kernel {s['kernel_vs_fastest']:.1f}x -> {'MET' if ok else 'NOT MET'}")
    if a.json:
        bc.write_json(a.json, {"machine": facts, "args": vars(a), "project": p_rows,
                               "project_summary": p_sum, "localize": l_rows, "localize_summary": l_sum})
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
