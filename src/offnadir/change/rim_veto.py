"""The near-sensor rim as a witness against the roof-wide shadow rules (numpy; the client's step after the patch
decisions; q1 tenth round).

The missing-shadow rule (:mod:`offnadir.change.missing_shadow`) decides a roof gone when its predicted shadow
reads lit, the longer-shadow rule (:mod:`offnadir.change.longer_shadow`) raised when its fringe reads shadow;
both read brightness, so a neighbour's new shadow or a shadow on a bright surface decides unchanged roofs too
(at 1024² these are most of the unchanged roofs flagged, always whole). A roof whose near-sensor rim is there at
both dates (:func:`offnadir.change.criteria.rim_kept`) did not move (:func:`offnadir.change.outline.rim_witness`
already holds its census evidence for that reason): :func:`rim_veto` takes the shadow rules' decision back
there, where the witness holds (the facade the target sees in the dark; for a claim of a raise, a raise that
moves the rim by a cell).
Measured in ``docs/change_detection.md``, section "Unchanged roofs flagged at 1024²: whole roofs, and the
rim as a witness against the shadow rules".
"""

from __future__ import annotations

import math

import numpy as np


def rim_veto(gone: dict, ids, kept: dict, facade_dark: dict, raised=None, moved=None, report=None, log=None) -> dict:
    """``gone`` (per target ``(ids, P)``: the roof-wide shadow rules' decisions, missing, longer and crown
    shadows) with ``P`` set to 0 on the patches whose near-sensor rim is there at both dates (``kept[t]``, a
    boolean per patch of ``ids``: :func:`offnadir.change.criteria.rim_kept`), on the targets whose facade facing
    the sensor is in the dark (``facade_dark[t]``, :func:`offnadir.change.rim_profile.facade_dark`).
    Demolished or raised, a roof loses that rim in the target (ground, or its shaded, textureless facade shows
    there: :mod:`offnadir.change.outline`); a rim that stayed is the geometric witness of "not moved" that
    already holds the roof's census evidence (:func:`offnadir.change.outline.rim_witness`), so a shadow read as
    gone or longer on such a roof is a neighbour's shadow or a bright surface, not the roof's own change. Where
    the facade is lit, a raised roof's facade | roof step can read as a kept rim (hard simulator, sun-side
    targets: a raised roof found by the longer-shadow rule alone), so there the rules decide as before.

    ``raised`` (per target ``(ids, P)``): the longer-shadow rule's own claims, the roofs it decided raised that
    the missing-shadow rule did not decide gone (:func:`raised_claims`). Where the least raise that rule asserts
    moves the rim by less than a cell (``moved[t]`` False, :func:`raise_moves_rim`) a raised roof may keep its
    rim, so those claims stand there; the claims of "gone" (the missing-shadow rule's, and the crowns' missing
    shadow, :mod:`offnadir.change.crown_shadow`) are still vetoed: a roof or crown that went loses its rim at
    any view. Recorded per target in ``report`` as ``shadow_rules_rim_vetoed`` and logged."""
    import logging

    log = log or logging.getLogger("offnadir.change.rim_veto")
    out = dict(gone)
    for t, (g_ids, post) in gone.items():
        k = kept.get(t)
        if k is None or not len(g_ids):
            continue
        if not facade_dark.get(t):
            if report is not None and t < len(report):
                report[t]["shadow_rules_rim_vetoed"] = "off: the facade facing the sensor is lit"
            continue
        held = np.isin(np.asarray(g_ids), np.asarray(ids)[np.asarray(k, bool)])
        if moved is not None and not moved.get(t, True):  # a raise may keep the rim: its claims stand
            r_ids, r_p = (raised or {}).get(t, (np.zeros(0, np.int64), np.zeros(0)))
            held &= ~np.isin(np.asarray(g_ids), np.asarray(r_ids)[np.asarray(r_p) >= 0.5])
        vetoed = held & (np.asarray(post) >= 0.5)
        out[t] = (g_ids, np.where(held, np.minimum(post, 0.0), post))
        if report is not None and t < len(report):
            report[t]["shadow_rules_rim_vetoed"] = int(vetoed.sum())
        log.info("image %s: %d roof(s) decided gone or raised by their shadow keep their near-sensor rim at both "
                 "dates (not moved): not decided changed", t, int(vetoed.sum()))
    return out


def for_run(gone: dict, missing: dict, patch_rules: dict, ids, per_target: dict, report, off_nadir,
            log=None) -> dict:
    """:func:`rim_veto` with the runner's tables: ``missing`` the missing-shadow rule's own decisions,
    ``patch_rules`` those after the longer-shadow rule, before the crowns' (the longer rule's own claims,
    :func:`raised_claims`), ``per_target[t]``'s ``rim_kept`` and ``facade_dark``, the targets' suns in
    ``report`` (the sun report) and their off-nadir angles (degrees) for :func:`raise_moves_rim`."""
    from offnadir.change.longer_shadow import BAND_CELLS

    rep = report or []
    moved = {t: raise_moves_rim(float(rep[t]["elevation"]), float(off_nadir[t]), BAND_CELLS)
             if t < len(rep) and rep[t].get("elevation") is not None else False for t in per_target}
    return rim_veto(gone, ids, {t: d.get("rim_kept") for t, d in per_target.items()},
                    {t: d.get("facade_dark", False) for t, d in per_target.items()},
                    raised_claims(missing, patch_rules), moved, report, log)


def raised_claims(missing: dict, patch_rules: dict) -> dict:
    """Per target ``(ids, P)``: ``patch_rules`` (the missing- and longer-shadow rules' decisions, merged by
    :func:`offnadir.change.longer_shadow.decide_targets`) with ``P`` 0 on the roofs ``missing`` (the
    missing-shadow rule's own decisions) decides gone: the longer-shadow rule's claims of a raise alone."""
    out = {}
    for t, (ids, post) in (patch_rules or {}).items():
        ids = np.asarray(ids)
        m_ids, m_p = (missing or {}).get(t, (np.zeros(0, np.int64), np.zeros(0)))
        gone = np.isin(ids, np.asarray(m_ids)[np.asarray(m_p) >= 0.5])
        out[t] = (ids, np.where(gone, 0.0, np.asarray(post, np.float64)))
    return out


def raise_moves_rim(sun_elevation_deg: float, off_nadir_deg: float, band: float = 4.0) -> bool:
    """Does the least raise the longer-shadow rule asserts (``band`` cells of shadow beyond the predicted
    edge: ``dz = band * cell * tan e``) move the roof's near-sensor rim by at least one cell in the target
    (``dz * tan(off-nadir) >= cell``)? If not, a raised roof can keep its rim and the rim is no witness
    against the rule (:func:`rim_veto`)."""
    return band * math.tan(math.radians(sun_elevation_deg)) * math.tan(math.radians(off_nadir_deg)) >= 1.0
