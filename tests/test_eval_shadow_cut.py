"""benchmarks/eval_shadow_cut.py (issue 7, u3 thirteenth round): the unexplained-light blob and its caster test."""

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import eval_shadow_cut as E  # noqa: E402


def _scene(caster_changed):
    n = 64
    dsm = np.zeros((n, n))
    elev = np.zeros((n, n), bool)
    elev[40:50, 20:31] = True  # a 10 m roof; the sun in the south at 45 deg casts its shadow 20 cells north
    dsm[elev] = 10.0
    ill = np.ones((n, n), np.uint8)
    ill[20:40, 20:31] = 0
    lo = np.full((n, n), 3.0)  # seen shadow
    lo[24:31, 23:29] = -5.0  # a lit blob deep in the predicted shadow: a new roof rising out of it
    lo[ill != 0] = -3.0
    change = np.zeros((n, n), np.uint8)
    change[elev] = 1 if caster_changed else 0
    return dict(dsm=dsm, elev=elev, ill=ill, lo=lo, ok_t=np.ones((n, n), bool), change=change, cell=0.5,
                view_az=270.0, view_off=25.0, sun=dict(azimuth=180.0, grid_north_deg=0.0, elevation=45.0),
                cal=dict(window_cells=41), clf=SimpleNamespace(mean_llr_lit=-1.5, prior=-0.5))


def test_the_first_caster_up_sun_carries_its_decision():
    d = _scene(caster_changed=True)
    dec = E.first_caster_changed(d)
    assert dec[27, 25] == 1 and dec[27, 10] == -1
    assert (E.first_caster_changed(_scene(False))[27, 25]) == 0


def test_a_lit_blob_counts_only_where_its_caster_stands():
    fp, info = E.blob_footprint(_scene(caster_changed=False), "blob")
    assert info["blobs"] == 1 and info["blob_cells"] == 7 * 6
    # its footprint runs K cells towards the sensor (west, view azimuth 270), not away from it
    k = info["blob_K"]
    assert k == 10 and fp[27, 23 - k] == 1 and fp[27, 29] == 0
    fa, _ = E.blob_footprint(_scene(caster_changed=False), "blob_against")
    assert fa[27, 28 + k] == 1 and fa[27, 22] == 0
    # a caster decided changed explains the light (its shadow is missing): no blob
    fp2, info2 = E.blob_footprint(_scene(caster_changed=True), "blob")
    assert info2["blobs"] == 0 and not fp2.any()
    # the control without the caster test keeps it
    _, info3 = E.blob_footprint(_scene(caster_changed=True), "blob_anycaster")
    assert info3["blobs"] == 1


def test_a_blob_at_the_shadows_edge_or_too_small_is_no_witness():
    d = _scene(False)
    d["lo"][24:31, 23:29] = 3.0
    d["lo"][21:39, 20:23] = -5.0  # 54 cells along the predicted edge, 16 of them beyond its margin (col 22)
    d["lo"][34:37, 25:28] = -5.0  # 9 cells < (2 MARGIN + 1)^2
    _, info = E.blob_footprint(d, "blob")
    assert info["blobs"] == 0


def test_a_roof_decided_gone_is_left_out_where_its_shadow_is_cut_short_not_missing():
    import numpy as np

    d = _scene(caster_changed=True)
    d["patch"] = np.where(d["elev"], 7, 0).astype(np.int64)
    d["gone"] = d["elev"].copy()
    d["lo"][20:40, 20:31] = 3.0
    d["lo"][20:30, 20:31] = -5.0  # the half of its shadow farther from the caster seen lit, the nearer half shadowed
    vet, info = E.cut_short_gone(d, "veto")
    assert info["vetoed"] == 1 and vet[45, 25]
    d["lo"][30:40, 20:31] = -5.0  # all of it lit: the caster's shadow is missing, the decision stands
    vet, info = E.cut_short_gone(d, "veto")
    assert info["vetoed"] == 0 and not vet.any()
