"""The shadow rules' caster decisions of ``eval_shadow_casters.py`` (issue 7, point 4; H2 fifth round): the
caster sums of the sums pass over the whole grid with the sums of the squared ratios (:func:`caster_sums`), the
casters' shared-surface spread (:func:`surface_spread`) and design-effect evidence
(:func:`effective_evidence`), and the missing- and longer-shadow decisions re-implemented with each variant's
change (:func:`decisions`), checked equal to the pipeline's for ``current`` (:func:`check_current`). What the
variants mean: ``eval_shadow_casters.py``'s docstring.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import eval_missing_shadow as EMS  # noqa: E402

from offnadir.change import longer_shadow as LS  # noqa: E402
from offnadir.change import missing_shadow as MS  # noqa: E402


#: casters whose mean enters the run-level spread estimates: nine observations of 9 cells
SPREAD_MIN_CELLS = 81
#: fewest such casters for them (else rho 0, no standout bound)
SPREAD_MIN_CASTERS = 20


def surface_spread(n, s, s2) -> dict:
    """Intra-caster correlation ``rho`` of the per-cell log likelihood ratios of one image's casters
    (``n`` cells, sums ``s`` and ``s2`` of the ratio and its square). The cells of one shadow lie on
    one surface, whose brightness all of them share. One-way random effects, ``x = mu + b_c + e``:
    on the casters of >= :data:`SPREAD_MIN_CELLS` cells, ``sigma^2`` the median within-caster
    variance, ``tau^2`` the robust variance of their means (1.4826 MAD, squared) less its within part
    (median ``9 sigma^2 / n``), ``rho = tau^2 / (tau^2 + sigma^2)``. Also the robust centre and sd of
    the means (``median``, ``mad``)."""
    n, s, s2 = (np.asarray(v, np.float64) for v in (n, s, s2))
    big = n >= SPREAD_MIN_CELLS
    out = dict(rho=0.0, tau=math.nan, sigma=math.nan, median=math.nan, mad=math.nan, casters=int(big.sum()))
    if big.sum() < SPREAD_MIN_CASTERS:
        return out
    nb = n[big]
    mean = s[big] / nb
    sig2 = float(np.median(np.maximum(s2[big] - nb * mean**2, 0.0) / (nb - 1.0)))
    med = float(np.median(mean))
    mad = 1.4826 * float(np.median(np.abs(mean - med)))
    tau2 = max(mad**2 - float(np.median(sig2 * MS.CORRELATED / nb)), 0.0)
    rho = tau2 / (tau2 + sig2) if tau2 + sig2 > 0 else 0.0
    return dict(rho=rho, tau=math.sqrt(tau2), sigma=math.sqrt(sig2), median=med, mad=mad, casters=int(big.sum()))


def effective_evidence(n, s, rho: float):
    """``S / 9`` divided by the design effect ``1 + (k - 1) rho``, ``k = n / 9`` (Kish: ``k``
    observations with intra-class correlation ``rho`` weigh as ``k / (1 + (k - 1) rho)`` independent
    ones, at most ``1 / rho``)."""
    k = np.asarray(n, np.float64) / MS.CORRELATED
    return np.asarray(s, np.float64) / MS.CORRELATED / (1.0 + np.maximum(k - 1.0, 0.0) * rho)


def caster_sums(run):
    """(sums table of the sums pass over the whole grid with ``msh_llr2``/``lsh_s2`` added, the
    run's suns with their classifiers, ctx)."""

    from offnadir.change.options import ChangeOptions
    from offnadir.change.tileio import Context, MemoryIO
    from offnadir.cube.plan import Tile

    a = run["arr"]
    n_img = a["visible"].shape[0]
    suns = EMS.fitted_suns(run)
    arrays = {k: a[k] for k in ("dsm", "visible", "value", "illumination", "patch", "elevated")}
    h = a["dsm"].astype(np.float64)
    grid = tuple((math.radians(s["azimuth"] + s["grid_north_deg"]), math.radians(s["elevation"])) for s in suns)
    clfs = MS.classifiers(suns)
    ctx = Context(shape=h.shape, n_images=n_img, n_bands=a["value"].shape[1], cell=run["cell"], opts=ChangeOptions(),
                  targets=tuple(range(1, n_img)), h_range=(float(np.nanmin(h)), float(np.nanmax(h))), sun=grid,
                  shadow_classes=clfs)
    io, tile = MemoryIO(arrays), Tile(0, 0, 0, h.shape[0], 0, h.shape[1])
    sums = MS.add_sums(MS.tile_sums(io, ctx, tile), LS.tile_sums(io, ctx, tile))
    # the same sums of the squared ratios: a classifier whose per-bin log ratio r is -r^2 gives, as
    # the missing-shadow sums' -(log odds - prior), r^2 (and +r^2 ... as the fringe's, sign flipped)
    sq = tuple(None if c is None else dataclasses.replace(c, log_lr=tuple(-v * v for v in c.log_lr)) for c in clfs)
    ctx2 = dataclasses.replace(ctx, shadow_classes=sq)
    s2 = MS.add_sums(MS.tile_sums(io, ctx2, tile), LS.tile_sums(io, ctx2, tile))
    assert np.array_equal(s2["ids"], sums["ids"])
    sums["rows"]["msh_llr2"] = s2["rows"]["msh_llr"]
    sums["rows"]["lsh_s2"] = -s2["rows"]["lsh_s"]
    return sums, suns, ctx


def decide_missing(sums, clfs, t: int, variant: str):
    """(ids, P(gone)) of target ``t``: :func:`offnadir.change.missing_shadow.decide`'s rule, with the
    ``variant``'s change."""
    ids = np.asarray(sums["ids"])
    r = sums["rows"]
    n, s, s2 = r["msh_n"], r["msh_llr"], r["msh_llr2"]
    sp = [surface_spread(n[:, k], s[:, k], s2[:, k]) for k in range(n.shape[1])]
    rho = [x["rho"] if variant == "surface" else 0.0 for x in sp]
    tested = n[:, t] > 0
    if variant == "need_base_missing":
        tested &= n[:, 0] > 0
    lt = effective_evidence(n[:, t], s[:, t], rho[t])
    lb = np.where(n[:, 0] > 0, -effective_evidence(n[:, 0], s[:, 0], rho[0]), np.inf)
    llr = np.where(tested, np.minimum(lt, lb), np.nan)
    prior = MS.prior_log_odds(llr[tested])
    post = 1.0 / (1.0 + np.exp(-np.clip(np.where(tested, llr, -np.inf) + prior, -50.0, 50.0)))
    thr = MS.midpoint(clfs[t])
    if variant == "standout" and math.isfinite(sp[t]["median"]):
        thr = max(thr, sp[t]["median"] + 3.0 * sp[t]["mad"])
    if variant == "midpoint_tau" and math.isfinite(sp[t]["tau"]):
        thr = thr + sp[t]["tau"]
    with np.errstate(invalid="ignore", divide="ignore"):
        post = np.where(s[:, t] / np.maximum(n[:, t], 1) >= thr, post, np.minimum(post, 0.0))
    if variant.startswith("standing") and all(math.isfinite(sp[k]["mad"]) and sp[k]["mad"] > 0 for k in (0, t)):
        # the caster's standing among the run's casters at the target against the base's: a shared
        # surface keeps it; the rise must stand out from the run's casters' rises (>= 81 cells at both)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = [(s[:, k] / n[:, k] - sp[k]["median"]) / sp[k]["mad"] for k in (0, t)]
        d = z[1] - z[0]
        both = (n[:, 0] >= SPREAD_MIN_CELLS) & (n[:, t] >= SPREAD_MIN_CELLS)
        if both.sum() >= SPREAD_MIN_CASTERS:
            md = float(np.median(d[both]))
            sd = 1.4826 * float(np.median(np.abs(d[both] - md)))
            bound = float(variant[len("standing"):] or 3)
            post = np.where((n[:, 0] == 0) | ((d - md) >= bound * sd), post, np.minimum(post, 0.0))
    return ids, post, dict(prior=prior, threshold=thr, rho=rho[t], **{k: sp[t][k] for k in ("tau", "median", "mad")})


def decide_longer(sums, clfs, t: int, variant: str):
    """(ids, P(raised)) of target ``t``: :func:`offnadir.change.longer_shadow.decide` on the tested
    casters, with the ``variant``'s change."""
    ids = np.asarray(sums["ids"])
    r = sums["rows"]
    n, s = r["lsh_n"][:, t], r["lsh_s"][:, t]
    n0, s0 = r["lsh_n"][:, 0], r["lsh_s"][:, 0]
    tested = n > 0
    if variant == "need_base_longer":
        tested &= n0 > 0
    post = np.zeros(len(ids))
    if tested.any() and clfs[t] is not None:
        post[tested] = LS.decide(n[tested], s[tested], clfs[t], n0[tested], s0[tested])
    return ids, post


def decisions(sums, suns, variant: str, t: int = 1):
    """{"missing": (ids, P) or None, "longer": (ids, P) or None} of target ``t`` under ``variant``."""
    clfs = MS.classifiers(suns)
    out = {"missing": None, "longer": None}
    if variant == "none" or clfs[t] is None:
        return out
    if variant != "no_missing":
        ids, post, _ = decide_missing(sums, clfs, t, variant)
        out["missing"] = (ids, post)
    if variant != "no_longer" and "lsh_n" in sums["rows"]:
        out["longer"] = decide_longer(sums, clfs, t, variant)
    return out


def check_current(sums, suns, dec, t: int = 1):
    """The re-implemented ``current`` decisions equal the pipeline's functions' (raises otherwise)."""
    import logging

    quiet = logging.getLogger("eval_shadow_casters.quiet")
    quiet.disabled = True
    rep = [dict(s) for s in suns]
    g = MS.decide(sums, (t,), None, rep, quiet)
    if t in g:
        assert np.allclose(g[t][1], dec["missing"][1]), "missing-shadow decisions differ from the pipeline's"
    g = LS.decide_targets(sums, {}, (t,), MS.classifiers(rep), None, rep, quiet)
    if t in g:
        assert np.allclose(g[t][1], dec["longer"][1]), "longer-shadow decisions differ from the pipeline's"
