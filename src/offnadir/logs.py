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


#: the level offnadir's stderr handler shows while the command line has one attached (None: not attached)
_shown: int | None = None


def configure(verbosity: int = 0, quiet: bool = False):
    """Attach offnadir's stderr handler at the level ``-v``/``-q`` ask for; returns a function that
    undoes it (the CLI calls it on exit, so in-process callers are left as they were). The level is
    the handler's: the logger is only opened further when ``-v`` needs it, so records still reach
    whatever else listens (a test's capture, an application's own handlers)."""
    global _shown
    logger = logging.getLogger(LOGGER)
    level = level_for(verbosity, quiet)
    handler = _Stderr()
    handler.setLevel(level)
    fmt = "offnadir [%(name)s] %(levelname)s: %(message)s" if level <= logging.DEBUG else "offnadir: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    old_level, old_shown = logger.level, _shown
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    _shown = level

    def undo():
        global _shown
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        _shown = old_shown

    return undo


def say(logger: logging.Logger, msg: str, quiet: bool = False) -> None:
    """A progress or choice line: logged at INFO, and printed as ``offnadir: msg`` unless ``quiet``
    or offnadir's handler already shows INFO records (``-v``), so it is never written twice."""
    logger.info(msg)
    if not quiet and not (_shown is not None and _shown <= logging.INFO):
        print(f"offnadir: {msg}", file=sys.stderr)
