"""The ``offnadir`` command line: a thin layer of argparse subcommands over the library.

Each subcommand lives in its own module ``offnadir.cli.<name>`` exposing

* ``add_parser(subparsers) -> argparse.ArgumentParser`` — add its sub-parser and arguments
  (keep heavy imports out of module level so ``offnadir --help`` stays fast);
* ``run(args) -> int`` — do the work, return the exit code.

Register a new subcommand by adding its module name to :data:`SUBCOMMANDS`.

Exit codes: 0 success; 2 bad input or usage (any :class:`~offnadir.errors.OffnadirError`, printed
as ``offnadir: error: <message>`` without a traceback, and argparse usage errors); 130 interrupted.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        mod = importlib.import_module(f"{__name__}.{name}")
        p = mod.add_parser(sub)
        p.set_defaults(_run=mod.run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help/--version (0) and usage errors (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
