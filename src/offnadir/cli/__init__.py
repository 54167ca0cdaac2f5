"""The ``offnadir`` command line: a thin layer of argparse subcommands over the library.

Each subcommand lives in its own module ``offnadir.cli.<name>`` exposing

* ``add_parser(subparsers) -> argparse.ArgumentParser`` — add its sub-parser and arguments
  (keep heavy imports out of module level so ``offnadir --help`` stays fast);
* ``run(args) -> int`` — do the work, return the exit code.

Register a new subcommand by adding its module name to :data:`SUBCOMMANDS`. A subcommand may
list the heavy modules its run needs in ``IMPORTS`` (see :func:`main`: a process started for one
command imports them with the garbage collector paused).

Exit codes: 0 success; 2 bad input or usage (any :class:`~offnadir.errors.OffnadirError`, printed
as ``offnadir: error: <message>`` without a traceback, and argparse usage errors); 130 interrupted.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import warnings

from offnadir._version import __version__
from offnadir.errors import OffnadirError

#: subcommand modules under offnadir.cli, in the order ``--help`` lists them
SUBCOMMANDS = (
    "info",
    "coregister",
    "detect",
    "append",
    "evaluate",
    "run",
    "template_config",
    "simulate",
    "demo",
    "export",
    "quicklook",
    "stac",
    "warmup",
)

PROG = "offnadir"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Change detection between off-nadir VHR satellite images (RPC back-projection of a "
                    "DSM, occlusion, patch-wise co-registration).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, dest="g_verbose",
                        help="log every automatic choice (INFO); -vv: DEBUG")
    parser.add_argument("-q", "--quiet", action="store_true", dest="g_quiet", help="errors only, no progress")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        mod = importlib.import_module(f"{__name__}.{name}")
        p = mod.add_parser(sub)
        _add_log_options(p)
        p.set_defaults(_run=mod.run, _imports=tuple(getattr(mod, "IMPORTS", ())))
    return parser


def _add_log_options(p: argparse.ArgumentParser) -> None:
    """``-v``/``-q`` after the subcommand too (``offnadir detect -v ...``), next to a subcommand's own
    ``--quiet`` (which keeps its meaning: no progress)."""
    opts = p._option_string_actions
    p.add_argument("-v", "--verbose", action="count", default=0, dest="verbose",
                   help="log every automatic choice (INFO); -vv: DEBUG")
    if "--quiet" in opts and "-q" not in opts:
        p.add_argument("-q", action="store_true", dest="quiet", help="same as --quiet")
    elif "--quiet" not in opts:
        p.add_argument("-q", "--quiet", action="store_true", dest="quiet", help="errors only")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Called without ``argv`` (the ``offnadir`` script, ``python -m offnadir.cli``), this process
    exists for one command, and the garbage collector is managed for that (measured with
    ``benchmarks/bench_cube.py e2e``): paused while the command's modules are imported (imports
    only create objects that live as long as the process; collecting during them cost ~0.2 CPU-s),
    which are then frozen out of later collections; and everything is frozen again before the
    interpreter exits, whose final collection over every object of a run took 0.5-2 s of wall time
    after the work was done. Called with ``argv`` (tests, other programs), it leaves the collector
    alone."""
    whole_process = argv is None
    if whole_process:
        gc.disable()
    try:
        return _main(argv, whole_process)
    finally:
        if whole_process:
            gc.freeze()  # nothing left to collect that matters: skip the exit's full collection
            gc.enable()


def _main(argv, whole_process: bool) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help/--version (0) and usage errors (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    from offnadir.logs import configure

    quiet = bool(args.g_quiet or getattr(args, "quiet", False))
    if quiet:
        args.quiet = True
    undo_logs = configure(args.g_verbose + getattr(args, "verbose", 0), quiet)
    if whole_process:
        for name in args._imports:
            importlib.import_module(name)
        gc.freeze()
        gc.enable()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args._run(args) or 0)
        except OffnadirError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return int(getattr(e, "exit_code", 2))
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        finally:
            undo_logs()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
