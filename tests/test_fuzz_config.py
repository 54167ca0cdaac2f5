"""Property: any config built from the schema with values of any type or size either validates or
raises ConfigError; never another exception (issue 12: hypothesis over the config schema)."""

from __future__ import annotations

import math

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from offnadir.config import LIST_SECTIONS, schema, validate
from offnadir.errors import ConfigError

ODD = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 1e400, -1e400, math.nan, 1e-320, 0.5]),
    st.text(max_size=12), st.sampled_from(["", "auto", "patch", "max", "none", "tcp://127.0.0.1:1", "1e400"]),
    st.lists(st.one_of(st.integers(), st.text(max_size=4), st.lists(st.integers(), max_size=2)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


BASE = {"dsm": {"path": "dsm.tif"}, "images": [{"path": "a.tif"}, {"path": "b.tif"}],
        "output": {"path": "out.zarr"}}


@st.composite
def configs(draw):
    """A valid config with one to three fields (or whole sections) replaced by odd values."""
    import copy

    sch = schema()
    raw = copy.deepcopy(BASE)
    keys = [(sec, name) for sec, fields in sch.items() for name in fields] + [(sec, None) for sec in sch]
    keys += [("unknown_section", None), ("dsm", "bogus")]
    for sec, name in draw(st.lists(st.sampled_from(keys), min_size=1, max_size=3, unique=True)):
        value = draw(ODD)
        if name is None:
            raw[sec] = value
            continue
        if sec in LIST_SECTIONS:
            entries = raw.get(sec) if isinstance(raw.get(sec), list) else [{"path": "a.tif"}]
            entries = [dict(e) if isinstance(e, dict) else {"path": "a.tif"} for e in entries] or [{"path": "a.tif"}]
            entries[draw(st.integers(0, len(entries) - 1))][name] = value
            raw[sec] = entries
        else:
            section = raw.get(sec) if isinstance(raw.get(sec), dict) else {}
            raw[sec] = {**section, name: value}
    return raw


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(configs())
def test_any_config_validates_or_raises_config_error(raw):
    from offnadir.pipeline import stage_hooks

    try:
        out = validate(raw, base=".", source="fuzz")
        stage_hooks(out)  # what `offnadir run` checks next, before any cluster (change options)
    except ConfigError as e:
        msg = str(e)
        assert msg and len(msg) < 20_000  # every value quoted in a message is cut short
        return
    assert isinstance(out, dict) and out["images"]
