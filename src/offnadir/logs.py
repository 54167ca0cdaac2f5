"""How offnadir talks to a terminal or a batch log: the ``logging`` module under the ``offnadir``
logger, set up by the command line's ``-v``/``-q``.

* default: warnings and errors, plus the progress and choice lines of long commands;
* ``-v``: also every INFO record (each automatic choice: sun, bias, thresholds, halo ...);
  ``-vv``: DEBUG, with the module name;
* ``-q``: errors only, and no progress lines.

Lines are written to ``sys.stderr`` as found when they are written (so a caller that swaps
stderr, a test or a notebook, gets them), prefixed ``offnadir:``."""

from __future__ import annotations

import logging
import sys

LOGGER = "offnadir"


class _Stderr(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is at the time of each record."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property always answers sys.stderr
        pass


def level_for(verbosity: int, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    return logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING


def configure(verbosity: int = 0, quiet: bool = False):
    """Attach offnadir's stderr handler at the level ``-v``/``-q`` ask for; returns a function that
    undoes it (the CLI calls it on exit, so in-process callers are left as they were)."""
    logger = logging.getLogger(LOGGER)
    level = level_for(verbosity, quiet)
    handler = _Stderr()
    fmt = "offnadir [%(name)s] %(levelname)s: %(message)s" if level <= logging.DEBUG else "offnadir: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)

    def undo():
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    return undo


def say(logger: logging.Logger, msg: str, quiet: bool = False) -> None:
    """A progress or choice line: logged at INFO, and printed as ``offnadir: msg`` unless ``quiet``
    or the log already shows INFO records (``-v``), so it is never written twice."""
    logger.info(msg)
    if not quiet and not logger.isEnabledFor(logging.INFO):
        print(f"offnadir: {msg}", file=sys.stderr)
