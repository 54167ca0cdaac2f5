"""-v/-q on the command line: the logging module under 'offnadir', at the level asked for, written
once to stderr; every subcommand takes them after its name too."""

import logging

import pytest

from offnadir import logs
from offnadir.cli import build_parser, main

LOG = logging.getLogger("offnadir.test_cli_logging")


def _subparsers(parser=None):
    parser = parser or build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0]))]
    return action.choices


def test_every_subcommand_takes_v_and_q():
    for name, p in _subparsers().items():
        assert {"-v", "--verbose", "-q"} <= set(p._option_string_actions), name


@pytest.mark.parametrize("verbosity, quiet, shown", [
    (0, False, {"warning", "error"}),
    (1, False, {"info", "warning", "error"}),
    (2, False, {"debug", "info", "warning", "error"}),
    (2, True, {"error"}),
])
def test_levels(capsys, verbosity, quiet, shown):
    undo = logs.configure(verbosity, quiet)
    try:
        for lvl in ("debug", "info", "warning", "error"):
            getattr(LOG, lvl)(f"line at {lvl}")
    finally:
        undo()
    err = capsys.readouterr().err
    assert {lvl for lvl in ("debug", "info", "warning", "error") if f"line at {lvl}" in err} == shown
    LOG.warning("after undo")  # no handler of ours left behind
    assert "offnadir: after undo" not in capsys.readouterr().err


@pytest.mark.parametrize("verbosity, quiet, times", [(0, False, 1), (1, False, 1), (0, True, 0)])
def test_say_writes_a_choice_once(capsys, verbosity, quiet, times):
    undo = logs.configure(verbosity, quiet)
    try:
        logs.say(LOG, "sun 135.0/40.0 from the acquisition time", quiet)
    finally:
        undo()
    assert capsys.readouterr().err.count("sun 135.0/40.0 from the acquisition time") == times


def test_global_and_subcommand_flags_reach_the_run(monkeypatch):
    seen = {}

    def fake_run(args):
        seen.update(quiet=args.quiet, shown=logs._shown)
        return 0

    parser = build_parser()
    monkeypatch.setattr("offnadir.cli.build_parser", lambda: parser)
    for p in _subparsers(parser).values():
        p.set_defaults(_run=fake_run)
    assert main(["-q", "evaluate", "a.zarr", "b.tif"]) == 0 and seen["quiet"] and seen["shown"] == logging.ERROR
    assert main(["evaluate", "-vv", "a.zarr", "b.tif"]) == 0 and seen["shown"] == logging.DEBUG
    assert main(["-v", "evaluate", "a.zarr", "b.tif"]) == 0 and seen["shown"] == logging.INFO
    assert main(["evaluate", "a.zarr", "b.tif"]) == 0 and seen["shown"] == logging.WARNING and not seen["quiet"]
    assert logs._shown is None  # detached again


def test_default_level_leaves_info_records_to_other_listeners(caplog):
    """A test's or an application's own handler still gets offnadir's INFO records."""
    caplog.set_level(logging.INFO)
    undo = logs.configure(0, False)
    try:
        LOG.info("a choice")
    finally:
        undo()
    assert "a choice" in caplog.text
