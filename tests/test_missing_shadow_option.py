"""The switch of the missing-shadow loss rule (``change.missing_shadows``): on by default; off, the
rule decides no roof (its tile sums are not even gathered), says so in the log and in the store's
``change_sun`` attribute, and a wrong value in a config file is a clear error naming the field."""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import coregistered_sim

from offnadir.change import missing_shadow as MS
from offnadir.change.options import ChangeOptions


def _sums_with_a_gone_roof():
    """Caster sums where roof 3's predicted shadow is seen in the base and seen lit in the target
    (large positive log likelihood ratio), the other roofs' shadows are there at both dates."""
    ids = np.array([1, 2, 3, 4])
    n = np.array([[40.0, 40.0], [50.0, 50.0], [60.0, 60.0], [30.0, 30.0]])
    llr = np.array([[-80.0, -70.0], [-100.0, -90.0], [-120.0, 150.0], [-60.0, -50.0]])
    return {"ids": ids, "rows": {"msh_n": n, "msh_llr": llr}}


def test_default_is_on_and_the_switch_is_a_change_option():
    assert ChangeOptions().missing_shadows is True
    assert ChangeOptions.from_config({"missing_shadows": False}).missing_shadows is False
    assert json.loads(json.dumps(ChangeOptions.from_config({}, missing_shadows=False).as_dict()))[
        "missing_shadows"] is False  # what the store's change_options attribute records


def test_off_decides_no_roof_and_records_it(caplog):
    sums = _sums_with_a_gone_roof()
    on_report = [{}, {}]
    on = MS.decide(sums, (1,), ["base", "target"], on_report)
    assert 3 in on[1][0][on[1][1] >= 0.5]  # the rule, on, accuses roof 3 (the test below can fail)
    assert on_report[1]["missing_shadows"]["casters_gone"] >= 1
    report = [{}, {}]
    with caplog.at_level(logging.INFO, logger="offnadir.change.missing_shadow"):
        off = MS.decide(sums, (1,), ["base", "target"], report, enabled=False)
    assert off == {}
    assert report[1]["missing_shadows"]["rule"].startswith("off") and "casters_gone" not in report[1]["missing_shadows"]
    assert "missing-shadow rule off" in caplog.text


def test_off_gathers_no_tile_sums():
    """The sums pass asks nothing of the tiles when the rule is off (no read, no caster march)."""
    class NoIO:
        def read(self, *a, **k):
            raise AssertionError("a tile was read with the rule off")

    ctx = SimpleNamespace(shadow_classes=(object(), object()), n_images=2, use_sun=True,
                          opts=ChangeOptions(missing_shadows=False))
    out = MS.tile_sums(NoIO(), ctx, tile=None)
    assert len(out["ids"]) == 0 and out["rows"]["msh_n"].shape == (0, 2)


def test_a_config_file_with_a_wrong_value_names_the_field(tmp_path):
    from offnadir.config_validate import validate
    from offnadir.errors import OffnadirError

    with pytest.raises(OffnadirError, match="missing_shadows"):
        validate({"change": {"missing_shadows": "sometimes"}}, base=tmp_path)


def test_a_run_with_the_rule_off_records_it_in_the_store(tmp_path):
    """A small simulated scene through the change stage with the option off: ``change_options`` and
    each target's ``change_sun`` entry say so; the shadow classifiers (also used by other rules)
    are still calibrated."""
    import xarray as xr

    import offnadir.change as C

    out = coregistered_sim(tmp_path)
    C.detect(str(out), missing_shadows=False)
    attrs = xr.open_zarr(out).attrs
    assert json.loads(attrs["change_options"])["missing_shadows"] is False
    suns = json.loads(attrs["change_sun"])
    assert suns[0]["shadow_classifier"] is not None and math.isfinite(suns[1]["azimuth"])
    assert suns[1]["missing_shadows"] == {"rule": "off (change.missing_shadows: false)"}
